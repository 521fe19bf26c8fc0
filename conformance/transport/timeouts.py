"""Timeouts split by phase, and the deadline arithmetic every await goes through.

One ``Timeouts`` object configures a whole operation. Each phase has its own budget, and ``total``
caps the lot: a phase waits ``min(phase budget, time left of total)``. A black-holed path therefore
ends as a typed ``TransportTimeout`` naming the phase, never as a hung suite.

Phases: ``connect`` (TCP, including the HTTPS proxy's CONNECT), ``tls`` (each TLS handshake),
``upgrade`` (request sent until the 101 or the refusal's body), ``read`` (idle: the longest wait for
the next bytes, or for a write to drain, once streaming), ``close`` (orderly shutdown before we
abort), ``total`` (the whole operation).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import StrEnum


class Phase(StrEnum):
    CONNECT = "connect"
    PROXY = "proxy"  # the CONNECT exchange with an HTTPS proxy (budgeted as connect)
    TLS = "tls"
    UPGRADE = "upgrade"
    STREAM = "stream"  # after the upgrade: opening streams, reading, writing
    CLOSE = "close"


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeouts:
    """Seconds per phase. Defaults suit a healthy cluster; probes tighten them per cell."""

    connect: float = 10.0
    tls: float = 10.0
    upgrade: float = 15.0
    read: float = 30.0  # idle: no byte received (or no write progress) for this long
    close: float = 2.0
    total: float = 300.0

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            if not getattr(self, name) > 0:
                raise ValueError(f"Timeouts.{name} must be positive")

    def budget(self, phase: Phase) -> float:
        return {
            Phase.CONNECT: self.connect,
            Phase.PROXY: self.connect,
            Phase.TLS: self.tls,
            Phase.UPGRADE: self.upgrade,
            Phase.STREAM: self.read,
            Phase.CLOSE: self.close,
        }[phase]


class PhaseTimeout(Exception):
    """Raised by ``Deadline.phase`` when a phase's budget runs out (mapped to TransportTimeout)."""

    def __init__(self, phase: Phase, seconds: float, *, total: bool) -> None:
        which = "the total budget" if total else f"the {phase} budget"
        super().__init__(f"{phase}: no progress within {seconds:.3g}s ({which})")
        self.phase = phase
        self.seconds = seconds
        self.total = total


class Deadline:
    """The clock of one operation: its start, its total deadline and per-phase waits."""

    def __init__(self, timeouts: Timeouts) -> None:
        self.timeouts = timeouts
        self.started = time.monotonic()
        self.expires = self.started + timeouts.total

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def remaining(self) -> float:
        return max(0.0, self.expires - time.monotonic())

    def wait_for(self, phase: Phase, budget: float | None = None) -> tuple[float, bool]:
        """Seconds to wait in ``phase`` and whether the total deadline is what limits it."""
        want = self.timeouts.budget(phase) if budget is None else budget
        left = self.remaining()
        return (left, True) if left < want else (want, False)

    @asynccontextmanager
    async def phase(self, phase: Phase, budget: float | None = None) -> AsyncIterator[None]:
        """Run the body within the phase budget (and the total); raises PhaseTimeout on expiry."""
        seconds, limited_by_total = self.wait_for(phase, budget)
        try:
            async with asyncio.timeout(seconds):
                yield
        except TimeoutError as exc:
            raise PhaseTimeout(phase, seconds, total=limited_by_total) from exc
