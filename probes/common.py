"""What every probe gets: the client, the session, the workload, and the cell's unique marker."""

from __future__ import annotations

import os
import secrets
import threading
from dataclasses import dataclass

from conformance.adapters.base import ClientAdapter, OpResult, Session
from conformance.classify import Answer
from conformance.config import Workload
from conformance.model import ErrorClass, Evidence, Observation
from probes.idle import DEFAULT_IDLE_S

DEFAULT_PAYLOAD_MIB = 16

# One random block per process (made again, larger, when a larger payload is asked for), handed out rotated
# by a random offset: every session still carries its own bytes (two cells share a payload with odds of one in the
# block's length), at a copy's cost instead of os.urandom's (~35 ms per 16 MiB, on the loop that runs every
# cell; a run asks for about two thousand).
_BLOCK: bytes = b""
_BLOCK_LOCK = threading.Lock()


def random_payload(size: int) -> bytes:
    """`size` bytes that no other session of this run carries, cheaply."""
    global _BLOCK
    if size <= 0:
        return b""
    with _BLOCK_LOCK:
        if len(_BLOCK) < size:
            _BLOCK = os.urandom(size)
        block = _BLOCK
    at = secrets.randbelow(len(block))
    end = at + size
    return block[at:end] if end <= len(block) else block[at:] + block[: end - len(block)]


@dataclass
class ProbeContext:
    client: ClientAdapter
    session: Session
    workload: Workload
    protocol: str
    marker: str  # unique per cell run; probes put it in the request (args or user agent) for the audit log
    payload_bytes: int = DEFAULT_PAYLOAD_MIB * 1024 * 1024  # cp both ways, port-forward (--payload-mib)
    idle_timeout_s: float | None = None  # the path's declared idle timeout
    idle_s: float = DEFAULT_IDLE_S  # how long idle cells stay silent on this path (probes.idle.idle_silence)
    workload_ticks: bool = False  # the workload is the lab's, whose main process writes `tick N` lines
    # Refusals the hops of this cell declare as their own (path first), for attributing a refusal.
    answers: tuple[Answer, ...] = ()
    quiet_cut_s: float | None = None  # the target's declared cut of a silent plain response (watch-quiet)

    @property
    def pod(self) -> str:
        return self.workload.pods[0]

    @property
    def container(self) -> str:
        return self.workload.container


def observed(result: OpResult, message: str = "") -> Observation:
    return Observation(
        error_class=result.error_class,
        evidence=result.evidence,
        message=message or result.message or ("worked" if result.error_class is ErrorClass.NONE else ""),
    )


def mismatch(result: OpResult, what: str) -> Observation:
    """The operation completed but the data was wrong."""
    result.evidence.error = what
    return Observation(error_class=ErrorClass.DATA_MISMATCH, evidence=result.evidence, message=what)


def verify_bytes(want: bytes, got: bytes, what: str = "bytes") -> tuple[ErrorClass, str] | None:
    """None when `got` is `want`; else TRUNCATED ("N of M bytes", a clean early end) or DATA_MISMATCH (with
    the first differing offset)."""
    if got == want:
        return None
    common = min(len(want), len(got))
    at = next((i for i in range(0, common, 4096) if got[i : min(i + 4096, common)] != want[i : min(i + 4096, common)]),
              None)
    if at is not None:
        at += next(j for j in range(4096) if got[at + j] != want[at + j])
        return ErrorClass.DATA_MISMATCH, f"{what} differ at offset {at} ({len(got)} of {len(want)} arrived)"
    if len(got) < len(want):
        return ErrorClass.TRUNCATED, f"{what} ended early: {len(got)} of {len(want)} bytes"
    return ErrorClass.DATA_MISMATCH, f"{len(got)} {what} arrived, {len(want)} expected"


def verify_digest(want_len: int, want_sha: str, got_len: int, got_sha: str, what: str = "bytes") -> tuple[
        ErrorClass, str] | None:
    """The same judgement from digests and lengths alone (the data never passed through the harness)."""
    if got_len == want_len and got_sha == want_sha:
        return None
    if got_len < want_len:
        return ErrorClass.TRUNCATED, f"{what} ended early: {got_len} of {want_len} bytes"
    return ErrorClass.DATA_MISMATCH, (
        f"{what}: {got_len} bytes with sha256 {got_sha[:16]}..., expected {want_len} bytes with {want_sha[:16]}..."
    )


def failed(result: OpResult, error_class: ErrorClass, message: str) -> Observation:
    """The operation completed but the data was wrong (short, or different)."""
    result.evidence.error = message
    return Observation(error_class=error_class, evidence=result.evidence, message=message)


# A session that ended (reset, or closed without an exit status) after part of the data: the data decides.
ENDED_EARLY = (ErrorClass.RESET, ErrorClass.MISSING_EXIT_STATUS)


def ended_early(result: OpResult, got_len: int, want_len: int, what: str) -> Observation | None:
    """TRUNCATED with the byte counts when a session ended early after delivering part of the data (the
    transport's words kept in the message); None otherwise."""
    if result.error_class not in ENDED_EARLY or not 0 <= got_len < want_len:
        return None
    why = f"{result.error_class.value}: {result.message}" if result.message else result.error_class.value
    return failed(result, ErrorClass.TRUNCATED, f"{what} ended early: {got_len} of {want_len} bytes ({why})")


def no_idle_probe(ctx: ProbeContext) -> Observation:
    """The skip of an idle cell whose client has no idle probe (only the native client has one)."""
    return Observation(
        error_class=ErrorClass.NONE,
        evidence=Evidence(),
        skipped=True,
        message=f"client {ctx.client.name} has no idle probe",
    )
