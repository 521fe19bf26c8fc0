"""Known client races (conformance.client_races): recognised from kubectl's own log, and a cell that failed
with one is asked again, with every earlier attempt kept; without the race, or past the retries, it fails."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conformance.adapters.base import OpResult, Session
from conformance.adapters.kubectl import KubectlAdapter, split_klog
from conformance.client_races import kubectl_races
from conformance.model import ErrorClass, Evidence, Outcome
from tests.judging.test_cell_runner import ALICE, FakeExec, _token, config, run  # noqa: F401 (_token: autouse)

UNKNOWN = "Unknown stream id 1, discarding message"
# A real -v=6 stderr of kubectl 1.33 that lost the output of `echo` (benchmarks/kubectl_race.py).
LOST_STDERR = (
    b'I1202 04:10:11.123456   4242 round_trippers.go:632] "Response" verb="GET" '
    b'url="http://127.0.0.1:18555/api/v1/namespaces/ns/pods/p/exec?command=echo" '
    b'status="101 Switching Protocols" milliseconds=3\n'
    b"E1202 04:10:11.124000   4242 websocket.go:515] " + UNKNOWN.encode() + b"\n"
)


@pytest.mark.parametrize("minor", [29, 30, 31, 32, 33])
def test_the_race_is_read_from_the_log_of_an_affected_version(minor: int) -> None:
    own, log = split_klog(LOST_STDERR)
    races = kubectl_races(minor, log, own.decode())
    assert len(races) == 1 and "kubernetes/kubernetes#131189" in races[0] and UNKNOWN in races[0]


def test_closed_all_streams_is_the_same_race() -> None:
    assert kubectl_races(32, [], "error: closed all streams\n")
    assert not kubectl_races(32, [], "error: unable to upgrade connection: closed all streams for real\n")


@pytest.mark.parametrize("minor", [28, 34, 37])
def test_versions_without_the_race_are_not_excused(minor: int) -> None:
    # 1.34 has the fix: the same line there is something else (a server writing to a stream never asked for).
    _, log = split_klog(LOST_STDERR)
    assert kubectl_races(minor, log, "error: closed all streams") == []


def test_the_adapter_notes_the_race_on_the_session_and_in_the_evidence(tmp_path: Path) -> None:
    adapter = KubectlAdapter(tmp_path / "kubectl", "v1.33.9", 33)
    session = Session(endpoint=None, token="", namespace="ns", user_agent="ua", timeout_s=5)  # type: ignore[arg-type]
    evidence = Evidence()
    own = adapter._read_log(session, LOST_STDERR, evidence, "130000000000ns")
    assert own == b""
    assert session.client_races and session.client_races == [n for n in evidence.notes if "131189" in n]
    assert evidence.protocol_negotiated == "websocket"


class RacyExec(FakeExec):
    """The first `lose` runs lose their output and log kubectl's race, like kubectl 1.30-1.33 now and then."""

    def __init__(self, audit: Path, event: dict[str, Any] | None, lose: int, *, log_race: bool = True) -> None:
        super().__init__(audit, event)
        self.lose, self.calls, self.log_race = lose, 0, log_race

    async def exec(self, s: Session, pod: str, container: str, command: list[str], **kw: Any) -> OpResult:
        result = await super().exec(s, pod, container, command, **kw)
        self.calls += 1
        if self.calls <= self.lose:
            result.stdout = b""
            if self.log_race:
                s.client_races.append(f"kubectl 1.33: raced (kubernetes/kubernetes#131189): {UNKNOWN}")
        return result


def test_a_cell_that_lost_a_run_to_the_race_is_asked_again_and_says_so(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    client = RacyExec(cfg.audit_log, ALICE, lose=1)  # type: ignore[arg-type]
    result = run(cfg, client)
    assert client.calls == 2
    assert result.outcome is Outcome.PASS
    assert len(result.evidence.earlier_attempts) == 1
    first = result.evidence.earlier_attempts[0]
    assert first.startswith("attempt 1: data-mismatch: ") and "131189" in first
    assert result.evidence.client_races == []  # the attempt that passed was clean


def test_a_cell_that_hits_the_race_every_time_fails(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    client = RacyExec(cfg.audit_log, ALICE, lose=99)  # type: ignore[arg-type]
    result = run(cfg, client)
    assert client.calls == 3  # the first attempt and 2 retries (the default)
    assert result.outcome is Outcome.FAIL
    assert len(result.evidence.earlier_attempts) == 2
    assert "known client race on each of 3 attempt(s)" in result.message


def test_without_the_race_in_the_log_a_failure_is_never_retried(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    client = RacyExec(cfg.audit_log, ALICE, lose=1, log_race=False)  # type: ignore[arg-type]
    result = run(cfg, client)
    assert client.calls == 1
    assert result.outcome is Outcome.FAIL and result.evidence.earlier_attempts == []


def test_retries_zero_fails_on_the_first_race(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    client = RacyExec(cfg.audit_log, ALICE, lose=1)  # type: ignore[arg-type]
    result = run(cfg, client, client_race_retries=0)
    assert client.calls == 1
    assert result.outcome is Outcome.FAIL and result.error_class is not ErrorClass.NONE


def test_a_race_never_washes_out_an_identity_verdict(tmp_path: Path) -> None:
    # The API server saw mallory: wrong-identity is not something a lost frame can cause, so no retry.
    cfg = config(tmp_path)
    mallory = {"user": {"username": "mallory", "groups": ["devs", "system:authenticated"]}}
    client = RacyExec(cfg.audit_log, mallory, lose=0)  # type: ignore[arg-type]
    original = client.exec

    async def exec_and_race(s: Session, *args: Any, **kw: Any) -> OpResult:
        s.client_races.append("kubectl 1.33: raced (kubernetes/kubernetes#131189): " + UNKNOWN)
        return await original(s, *args, **kw)

    client.exec = exec_and_race  # type: ignore[method-assign]
    result = run(cfg, client)
    assert client.calls == 1
    assert result.outcome is Outcome.FAIL and result.error_class is ErrorClass.WRONG_IDENTITY
    assert result.evidence.earlier_attempts == []
