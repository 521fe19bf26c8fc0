"""Known client races: bugs of a client itself that break a session now and then, told by the client's own log.

kubectl 1.29 (WebSocket forced by its gate) to 1.33 (WebSocket by default from 1.30) start reading a WebSocket
session before they have created its streams (kubernetes/kubernetes#131189; fixed in 1.34 by
kubernetes/kubernetes#131203, which waits for the streams before the read loop starts). When the server's
first frame lands in that window kubectl drops it and logs `Unknown stream id 1, discarding message` (the
output is lost, kubectl exits 0); when the server's close lands first, every stream creation fails and
kubectl prints `error: closed all streams`. Nothing on the path causes either: the same bytes arrive, and
kubectl's goroutines lose a race. Under CPU load about 1 in 100 sessions of 1.32 and 1.33, none of 1.34 and
later (docs/kubectl.md; `benchmarks/kubectl_race.py`).

A cell that failed while its client logged one of these is asked again (`--client-race-retries`, default 2),
and every earlier attempt is kept in the evidence; a cell that hits the race on every attempt fails.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from conformance.model import ErrorClass

# What a lost frame or a failed stream creation can make of a cell: never an identity, authentication,
# refusal, timing or availability verdict, so a retry cannot wash one of those away.
RACE_CLASSES = frozenset({
    ErrorClass.DATA_MISMATCH, ErrorClass.TRUNCATED, ErrorClass.PROTOCOL_ERROR, ErrorClass.MISSING_EXIT_STATUS,
    ErrorClass.RESET,
})


@dataclass(frozen=True, slots=True)
class ClientRace:
    ref: str  # the upstream issue
    what: str  # a few words for a person
    first_minor: int  # kubectl minors affected, inclusive
    last_minor: int
    log: re.Pattern[str]  # a kubectl log message that proves it
    error: re.Pattern[str]  # or kubectl's own error line


KUBECTL_WEBSOCKET_DEMUX = ClientRace(
    ref="kubernetes/kubernetes#131189",
    what="kubectl read the WebSocket before creating its streams",
    first_minor=29,  # the first WebSocket executor (behind KUBECTL_REMOTE_COMMAND_WEBSOCKETS)
    last_minor=33,
    log=re.compile(r"Unknown stream id \d+, discarding message"),
    error=re.compile(r"^error: closed all streams$", re.MULTILINE),
)
KNOWN_KUBECTL_RACES = (KUBECTL_WEBSOCKET_DEMUX,)


def kubectl_races(minor: int, log: list[str], own_stderr: str) -> list[str]:
    """The known races a kubectl run of version 1.`minor` shows in its log messages or its own stderr, each as
    one line of evidence ("kubectl 1.32: <what> (<ref>): <the line>")."""
    seen = []
    for race in KNOWN_KUBECTL_RACES:
        if not race.first_minor <= minor <= race.last_minor:
            continue
        line = next((m for m in log if race.log.search(m)), None)
        if line is None and (found := race.error.search(own_stderr)):
            line = found.group(0)
        if line is not None:
            seen.append(f"kubectl 1.{minor}: {race.what} ({race.ref}): {line.strip()[:120]}")
    return seen
