"""What a fault hop does wrong: `corrupt:N`, `truncate:N`, `idle-cut:S`, ... parsed into a `Fault`.

One fault per hop. The text form is what `conformance lab fault --fault` takes, what the hop's command
line takes and what the harness config records for the path (docs/paths.md, "Fault hop"):

    none                      a clean hop (the control): bytes pass untouched
    corrupt:N                 flip one payload byte of the server->client stream at or after byte N of the
                              upgraded stream (frame headers are skipped, so the client sees wrong data,
                              not a broken frame)
    corrupt-c2s:N             the same on the client->server stream
    truncate:N                end the upgraded stream (clean close) after N server->client bytes, at the
                              first frame boundary at or after N (whole frames, then the end)
    idle-cut:S                close a connection that has been silent (both ways) for S seconds
    swap-credential:USER      replace the client's bearer token with one of lab user USER
    extra-group:GROUP         replace a valid lab token with one for the same user plus group GROUP
    anonymous-as:USER         a request without a credential is forwarded with USER's token
    swallow-eof               drop the client's end of stdin (SPDY: FIN on the stdin stream; WebSocket
                              v5: the CLOSE message of channel 0); everything else passes
    latency:MS                deliver each forwarded chunk MS milliseconds after it arrived
    pass-impersonation        a broken impersonating proxy: authenticate the token, forward as the lab's
                              kube-oidc-proxy identity with the client's Impersonate-* headers unchanged

Errors: a malformed or out-of-range fault raises `ConfigError` naming what is accepted.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from conformance.errors import ConfigError
from conformance.lab.issuer import LAB_USERS

# Bounds, each checked in `parse_fault`.
MAX_BYTES = 1 << 40  # an offset beyond any stream a probe moves
IDLE_RANGE_S = (0.1, 3600.0)  # below 0.1 s even a busy session looks idle; an hour is an ALB's maximum
LATENCY_RANGE_MS = (1, 10_000)  # beyond 10 s every probe deadline is gone anyway
MAX_GROUP_LENGTH = 253
_GROUP_RE = re.compile(r"^[\x21-\x7e]+$")  # printable, no spaces: one header value, one claim entry


class FaultKind(enum.StrEnum):
    NONE = "none"
    CORRUPT = "corrupt"
    CORRUPT_C2S = "corrupt-c2s"
    TRUNCATE = "truncate"
    IDLE_CUT = "idle-cut"
    SWAP_CREDENTIAL = "swap-credential"
    EXTRA_GROUP = "extra-group"
    ANONYMOUS_AS = "anonymous-as"
    SWALLOW_EOF = "swallow-eof"
    LATENCY = "latency"
    PASS_IMPERSONATION = "pass-impersonation"  # noqa: S105 - a fault name, not a password


# What each kind's argument is; kinds not listed take none.
_ARGUMENT = {
    FaultKind.CORRUPT: "bytes",
    FaultKind.CORRUPT_C2S: "bytes",
    FaultKind.TRUNCATE: "bytes",
    FaultKind.IDLE_CUT: "seconds",
    FaultKind.LATENCY: "milliseconds",
    FaultKind.SWAP_CREDENTIAL: "user",
    FaultKind.ANONYMOUS_AS: "user",
    FaultKind.EXTRA_GROUP: "group",
}
# The target a kind must stand in front of, where it matters.
REQUIRED_TARGET = {FaultKind.PASS_IMPERSONATION: "direct"}
# Kinds that touch credentials: the hop needs the lab issuer's signing key.
CREDENTIAL_KINDS = frozenset(
    {FaultKind.SWAP_CREDENTIAL, FaultKind.EXTRA_GROUP, FaultKind.ANONYMOUS_AS, FaultKind.PASS_IMPERSONATION}
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Fault:
    kind: FaultKind
    count: int = 0  # bytes: corrupt, corrupt-c2s, truncate
    seconds: float = 0.0  # idle-cut
    millis: int = 0  # latency
    user: str = ""  # swap-credential, anonymous-as
    group: str = ""  # extra-group

    def __str__(self) -> str:
        arg = {
            "bytes": str(self.count),
            "seconds": f"{self.seconds:g}",
            "milliseconds": str(self.millis),
            "user": self.user,
            "group": self.group,
        }.get(_ARGUMENT.get(self.kind, ""), "")
        return f"{self.kind}:{arg}" if arg else str(self.kind)


def _usage() -> str:
    kinds = [f"{k}:{_ARGUMENT[k].upper()}" if k in _ARGUMENT else str(k) for k in FaultKind]
    return ", ".join(kinds)


def parse_fault(text: str) -> Fault:
    """`"corrupt:1048576"` -> Fault(kind=CORRUPT, count=1048576); raises ConfigError on anything else."""
    name, sep, arg = text.strip().partition(":")
    try:
        kind = FaultKind(name)
    except ValueError:
        raise ConfigError(f"unknown fault {name!r}: choose one of {_usage()}") from None
    want = _ARGUMENT.get(kind)
    if want is None:
        if sep:
            raise ConfigError(f"fault {kind} takes no argument, got {text!r}")
        return Fault(kind=kind)
    if not arg:
        raise ConfigError(f"fault {kind} needs {want}: {kind}:{want.upper()}")
    if want == "bytes":
        if not arg.isdigit() or not 0 <= int(arg) <= MAX_BYTES:
            raise ConfigError(f"fault {kind}: {arg!r} is not a byte count from 0 to {MAX_BYTES}")
        return Fault(kind=kind, count=int(arg))
    if want == "seconds":
        low, high = IDLE_RANGE_S
        try:
            seconds = float(arg)
        except ValueError:
            seconds = -1.0
        if not low <= seconds <= high:
            raise ConfigError(f"fault {kind}: {arg!r} is not a number of seconds from {low:g} to {high:g}")
        return Fault(kind=kind, seconds=seconds)
    if want == "milliseconds":
        low_ms, high_ms = LATENCY_RANGE_MS
        if not arg.isdigit() or not low_ms <= int(arg) <= high_ms:
            raise ConfigError(f"fault {kind}: {arg!r} is not whole milliseconds from {low_ms} to {high_ms}")
        return Fault(kind=kind, millis=int(arg))
    if want == "user":
        if arg not in LAB_USERS:
            raise ConfigError(f"fault {kind}: {arg!r} is not a lab user ({', '.join(LAB_USERS)})")
        return Fault(kind=kind, user=arg)
    if len(arg) > MAX_GROUP_LENGTH or not _GROUP_RE.match(arg):
        raise ConfigError(f"fault {kind}: group {arg!r} must be 1 to {MAX_GROUP_LENGTH} printable characters")
    return Fault(kind=kind, group=arg)
