"""What every probe gets: the client, the session, the workload, and the cell's unique marker."""

from __future__ import annotations

from dataclasses import dataclass

from conformance.adapters.base import ClientAdapter, OpResult, Session
from conformance.classify import Answer
from conformance.config import Workload
from conformance.model import ErrorClass, Observation


@dataclass
class ProbeContext:
    client: ClientAdapter
    session: Session
    workload: Workload
    protocol: str
    marker: str  # unique per cell run; probes put it in the request (args or user agent) for the audit log
    payload_bytes: int = 1024 * 1024
    idle_timeout_s: float | None = None  # the path's idle timeout, for the idle probe
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
