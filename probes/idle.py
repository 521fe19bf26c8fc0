"""Idle truth: how long a silent session lasted, and what a cut means against the path's declared timeout.

A session cut while silent, at or after the path's declared idle timeout, is `idle-cut` (the declared
behaviour; the lab profile expects it on alb and ingress). Cut *before* the declared timeout is `reset`,
so that an expected `idle-cut` never absorbs it. A path that declares no idle timeout and cuts anyway is
`idle-cut` too, and the message says that nothing was declared.
"""

from __future__ import annotations

from conformance.model import ErrorClass

IDLE_MARGIN_S = 5.0  # silence beyond the declared timeout
DEFAULT_IDLE_S = 65.0  # where no timeout is declared (or it is beyond the cap): a minute of silence, and 5 s
# A declared timeout + margin above this is not waited out in a run (NLB 350 s, squid 900 s): those paths get
# the default silence, which checks that nothing cuts *before* their declared timeout.
IDLE_CAP_S = 90.0
TOLERANCE_S = 2.0  # timers of real proxies fire a little early, and a loaded client notices a little late


def idle_silence(declared_s: float | None, default_s: float = DEFAULT_IDLE_S) -> float:
    """How long an idle cell stays silent on a path."""
    if declared_s and declared_s + IDLE_MARGIN_S <= max(IDLE_CAP_S, default_s):
        return declared_s + IDLE_MARGIN_S
    return default_s


def cut_verdict(survived_s: float, declared_s: float | None, how: str) -> tuple[ErrorClass, str]:
    """The class and message for a session that was cut after `survived_s` seconds of silence."""
    if declared_s is None:
        return ErrorClass.IDLE_CUT, (
            f"{how} after {survived_s:.1f} s of silence, before the declared timeout: the path declares none"
        )
    if survived_s + TOLERANCE_S >= declared_s:
        return ErrorClass.IDLE_CUT, (
            f"{how} after {survived_s:.1f} s of silence, at the path's declared idle timeout of {declared_s:.0f} s"
        )
    return ErrorClass.RESET, (
        f"{how} after {survived_s:.1f} s of silence, before the declared idle timeout of {declared_s:.0f} s"
    )
