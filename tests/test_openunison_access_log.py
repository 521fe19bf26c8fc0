"""The OpenUnison access-log parser and request matcher (no lab needed)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from conformance.openunison_access_log import find_request, outcome, parse_line, read_log

EXEC = "/api/v1/namespaces/conformance/pods/probe-0/exec"
OK = (
    "[2026-12-01 21:05:30,537][XNIO-1 task-1] INFO  AccessLog - [AzSuccess] - apiserver - "
    f"https://127.0.0.1:17410{EXEC} - sub=alice,ou=oauth2,o=Tremolo - devs [127.0.0.1] - [5f0c-1]"
)
AU = OK.replace("[AzSuccess]", "[AuSuccess]").replace(" - devs [", " - NONE [")
FAIL = (
    "[2026-12-01 21:05:31,000][XNIO-1 task-1] INFO  AccessLog - [AuFail] - apiserver - "
    f"https://127.0.0.1:17410{EXEC} - NONE - NONE [127.0.0.2] - [77]"
)
T0 = datetime(2026, 12, 1, 21, 5, 30, 537000, tzinfo=UTC).timestamp()


def test_parses_a_line_into_its_fields() -> None:
    line = parse_line(OK + "\n")
    assert line is not None
    assert line.as_dict() == {
        "time": T0,
        "level": "INFO",
        "result": "AzSuccess",
        "application": "apiserver",
        "url": f"https://127.0.0.1:17410{EXEC}",
        "sub": "alice",
        "groups": ["devs"],
        "remote_ip": "127.0.0.1",
        "session_id": "5f0c-1",
    }
    assert line.path == EXEC
    failed = parse_line(FAIL)
    assert failed is not None and failed.sub is None and failed.groups == () and failed.result == "AuFail"


def test_other_lines_are_not_access_log_lines() -> None:
    for text in ("", "[2026-12-01 21:05:30.537][1][info][lua] hello", OK.replace("[AzSuccess]", "[Maybe]"), OK[:80]):
        assert parse_line(text) is None, text


def test_finds_a_request_by_path_user_and_window(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text(f"{AU}\n{OK}\n{FAIL}\npartial line without end")
    lines, offset = read_log(log)
    assert [line.result for line in lines] == ["AuSuccess", "AzSuccess", "AuFail"]
    assert offset == len(f"{AU}\n{OK}\n{FAIL}\n")
    found = find_request(lines, path=EXEC, sub="alice", start=T0 - 0.2, end=T0 + 0.1)
    assert [line.result for line in found] == ["AuSuccess", "AzSuccess"]
    only = outcome(found)
    assert only is not None and only.result == "AzSuccess"
    assert find_request(lines, path=EXEC, sub="alice", start=T0 + 5, end=T0 + 6) == []
    assert find_request(lines, path=EXEC + "x", start=T0 - 1, end=T0 + 1) == []
    assert [line.result for line in find_request(lines, path=EXEC, start=T0, end=T0 + 1, results=["AuFail"])] == [
        "AuFail"
    ]
    # Two outcomes in one window: ambiguous, no single line.
    assert outcome(find_request(lines, path=EXEC, start=T0 - 1, end=T0 + 2)) is None


def test_the_access_log_chain_complete_broken_and_unverified() -> None:
    from conformance.model import Identity
    from conformance.proxy_audit import access_log_chain

    ok, au = parse_line(OK), parse_line(AU)
    assert ok is not None and au is not None
    alice = Identity(user="alice", groups=["devs", "system:authenticated"], source="audit")
    assert access_log_chain([au, ok], alice).trail == "complete"
    bob = Identity(user="bob", groups=["system:authenticated"], source="audit")
    assert access_log_chain([au, ok], bob).broken == "the proxy let 'alice' through but the API server ran 'bob'"
    assert access_log_chain([ok, ok], alice).trail.startswith("unverified: 2 access-log lines")
    assert access_log_chain([], alice).trail.startswith("unverified: no access-log line")
