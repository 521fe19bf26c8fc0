"""The audit tail: each poll of a search reads only lines that came since, and still finds the newest match."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from conformance.identity import AuditTail


def _line(marker: str, user: str = "alice", subresource: str = "exec") -> str:
    event = {
        "requestURI": f"/api/v1/namespaces/conformance/pods/p/{subresource}?command={marker}",
        "userAgent": "kubectl/v1.35.4",
        "objectRef": {"subresource": subresource},
        "user": {"username": user},
    }
    return json.dumps(event) + "\n"


def _append(path: Path, *lines: str) -> None:
    with open(path, "a") as f:
        f.writelines(lines)


def test_only_events_written_after_the_tail_began_are_seen(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    _append(log, _line("m-old"))
    tail = AuditTail(log)
    _append(log, _line("m-new"))
    assert tail.find(["m-old"], None, 0) is None
    assert tail.find(["m-new"], "exec", 0) is not None


def test_the_newest_matching_event_wins(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.touch()
    tail = AuditTail(log)
    _append(log, _line("m1", user="first"), _line("m1", user="second"))
    event = tail.find(["m1"], "exec", 0)
    assert event is not None and event["user"]["username"] == "second"


def test_an_event_written_while_a_search_polls_is_found(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.touch()
    tail = AuditTail(log)
    _append(log, *(_line(f"other-{i}") for i in range(50)))
    writer = threading.Timer(0.3, _append, (log, _line("late", subresource="attach")))
    writer.start()
    try:
        started = time.monotonic()
        event = tail.find(["late"], "attach", 5)
    finally:
        writer.join()
    assert event is not None and time.monotonic() - started < 5
    # A later search starts over: it sees everything the tail still holds.
    assert tail.find(["other-3"], "exec", 0) is not None


def test_a_wrong_subresource_is_not_a_match(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.touch()
    tail = AuditTail(log)
    _append(log, _line("m", subresource="attach"))
    assert tail.find(["m"], "exec", 0) is None


def test_trimmed_lines_are_not_looked_at_again_and_new_ones_are(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.touch()
    tail = AuditTail(log)
    tail.MAX_EVENTS = 10
    _append(log, *(_line(f"a-{i}") for i in range(25)))
    assert tail.find(["a-24"], "exec", 0) is not None
    assert tail.find(["a-3"], "exec", 0) is None  # trimmed: older than the last 10
    assert tail.dropped == 15 and len(tail.lines) == 10
    writer = threading.Timer(0.3, _append, (log, *(_line(f"b-{i}") for i in range(30))))
    writer.start()
    try:
        event = tail.find(["b-29"], "exec", 5)
    finally:
        writer.join()
    assert event is not None and tail.dropped == 45


def test_a_search_from_a_mark_sees_only_what_came_after_it(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.touch()
    tail = AuditTail(log)
    _append(log, _line("m", user="before"))
    mark = tail.mark()
    assert mark == 1
    assert tail.find(["m"], "exec", 0, since=mark) is None  # the cell's request has not been made yet
    _append(log, _line("m", user="after"))
    event = tail.find(["m"], "exec", 0, since=mark)
    assert event is not None and event["user"]["username"] == "after"
    assert tail.find(["m"], "exec", 0)["user"]["username"] == "after"  # type: ignore[index]
