"""OpenUnison's access log (the `AccessLog` logger on its stdout): parse lines, find a request's line.

One line per event, in log4j's `[%d][%t] %-5p %c{1} - %m` layout:

    [2026-12-01 21:05:30,537][XNIO-1 task-1] INFO  AccessLog - [AzSuccess] - apiserver -
        https://127.0.0.1:17410/api/v1/namespaces/conformance/pods/probe-0/exec - sub=alice,ou=oauth2,o=Tremolo
        - devs [127.0.0.1] - [5f0c...]

(one line in the file). Results: AuSuccess (the token was accepted), AzSuccess (the application's rule let
the user in and the request went to the API server), AzFail (the proxy's own 403), AuFail (401), Error
(500: a SPDY upgrade, a refused WebSocket, an internal failure). The lab's openunison stand-in writes the
same lines (docs/paths.md); the time is UTC.

Finding a cell's request (`find_request`): the URL is logged **without its query**, so the marker a cell
puts in an exec command or a log query never appears. A line is matched by the URL's path, the user
(`sub`) and the time window of the cell (the line's time is when the request started; the stand-in
writes it when the request ends, so read the log after the cell is over). Limits: two requests of one
user to the same path within one window cannot be told apart (the harness runs a cell's requests one at
a time, and the matcher reports every candidate so that a caller can refuse an ambiguous match); the
session id is not visible to the client, so it cannot tie a line to a request; clocks must agree (the
lab: one machine).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

FORMAT = "openunison-access-log"
RESULTS = ("AuSuccess", "AzSuccess", "AzFail", "AuFail", "Error")
DN_SUFFIX = ",ou=oauth2,o=Tremolo"
NONE = "NONE"
DEFAULT_SLACK_S = 1.0
MAX_LINE = 16384  # a longer line is not one of OpenUnison's

_LINE = re.compile(
    r"^\[(?P<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]\[(?P<thread>[^\]]*)\] (?P<level>[A-Z]+)\s+AccessLog - "
    r"\[(?P<result>" + "|".join(RESULTS) + r")\] - (?P<app>\S+) - (?P<url>\S+) - (?P<dn>\S+) - "
    r"(?P<group>\S+) \[(?P<remote_ip>[^\]]*)\] - \[(?P<session_id>[^\]]*)\]$"
)


@dataclass(frozen=True, slots=True)
class AccessLogLine:
    time: float  # epoch seconds (UTC), millisecond precision
    level: str
    result: str
    application: str
    url: str  # scheme://host:port/path, never a query
    sub: str | None  # None when no user was authenticated (AuFail)
    groups: tuple[str, ...]  # the group the application's rule matched (OpenUnison logs one), or ()
    remote_ip: str
    session_id: str

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["groups"] = list(self.groups)
        return data


def parse_line(line: str) -> AccessLogLine | None:
    """One AccessLog line, or None for anything else (another logger's line, a partial line)."""
    if len(line) > MAX_LINE:
        return None
    m = _LINE.match(line.rstrip("\r\n"))
    if m is None:
        return None
    when = datetime.strptime(m["time"], "%Y-%m-%d %H:%M:%S,%f").replace(tzinfo=UTC).timestamp()
    dn = m["dn"]
    sub = dn[len("sub=") : -len(DN_SUFFIX)] if dn.startswith("sub=") and dn.endswith(DN_SUFFIX) else None
    group = m["group"]
    return AccessLogLine(
        time=when,
        level=m["level"],
        result=m["result"],
        application=m["app"],
        url=m["url"],
        sub=sub,
        groups=() if group == NONE else (group,),
        remote_ip=m["remote_ip"],
        session_id=m["session_id"],
    )


def parse_lines(lines: Iterable[str]) -> Iterator[AccessLogLine]:
    for line in lines:
        parsed = parse_line(line)
        if parsed is not None:
            yield parsed


def read_log(path: Path, offset: int = 0) -> tuple[list[AccessLogLine], int]:
    """The complete lines from byte `offset` on, and the offset after the last complete line."""
    with path.open("rb") as f:
        f.seek(offset)
        data = f.read()
    end = data.rfind(b"\n") + 1
    text = data[:end].decode("utf-8", "replace")
    return list(parse_lines(text.splitlines())), offset + end


def find_request(
    lines: Iterable[AccessLogLine],
    *,
    path: str,
    start: float,
    end: float,
    sub: str | None = None,
    results: Iterable[str] | None = None,
    slack_s: float = DEFAULT_SLACK_S,
) -> list[AccessLogLine]:
    """Every line for a request to `path` (no query) that started in [start - slack, end + slack], by
    `sub` if given, with one of `results` if given; oldest first. More than one request-outcome line
    means the match is ambiguous (see the module's docstring)."""
    wanted = set(results) if results is not None else None
    return sorted(
        (
            line
            for line in lines
            if line.path == path
            and start - slack_s <= line.time <= end + slack_s
            and (sub is None or line.sub == sub)
            and (wanted is None or line.result in wanted)
        ),
        key=lambda line: line.time,
    )


def outcome(candidates: list[AccessLogLine]) -> AccessLogLine | None:
    """The one request-outcome line (not AuSuccess) among `candidates`, or None if none or several."""
    outcomes = [line for line in candidates if line.result != "AuSuccess"]
    return outcomes[0] if len(outcomes) == 1 else None
