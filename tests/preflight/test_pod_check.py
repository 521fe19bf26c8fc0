"""An existing pod's fitness, with the streaming clients faked: missing tools are named, a refused exec or
port-forward is unknown (it says nothing about the pod and must skip nothing), a port that does not echo is
absent."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from conformance import pod_check
from conformance.clients.results import ConnectionTransfer, ExecResult
from conformance.transport.endpoint import Endpoint
from conformance.transport.errors import ConnectionReset, Forbidden

EP = Endpoint(server="https://127.0.0.1:1", token="t")


def forbidden() -> Forbidden:
    return Forbidden("pods/exec is forbidden", status=403, status_line="HTTP/1.1 403 Forbidden", headers=[], body=b"")


def tools(monkeypatch: pytest.MonkeyPatch, outcome: Any) -> tuple[tuple[str, ...] | None, str]:
    async def fake_exec(*args: Any, **kwargs: Any) -> ExecResult:
        assert args[4] == ["sh", "-c", pod_check.TOOLS_SCRIPT]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    monkeypatch.setattr(pod_check, "exec_", fake_exec)
    return asyncio.run(pod_check.check_tools(EP, "ns", "p", "main"))


def test_present_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    assert tools(monkeypatch, ExecResult(protocol="spdy", negotiated="v4", exit_code=0, stdout=b"")) == ((), "present")


def test_a_missing_tool_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    result = ExecResult(protocol="spdy", negotiated="v4", exit_code=0, stdout=b"tar\n")
    assert tools(monkeypatch, result) == (("tar",), "missing: tar")


def test_no_sh_means_nothing_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    result = ExecResult(protocol="spdy", negotiated="v4", exit_code=None,
                        status_message='exec: "sh": executable file not found in $PATH')
    missing, why = tools(monkeypatch, result)
    assert missing == ("sh", "cat", "tar") and why.startswith("sh did not start")


def test_a_refused_exec_is_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    missing, why = tools(monkeypatch, forbidden())
    assert missing is None and "forbidden" in why


class FakeSession:
    def __init__(self, connect: Any) -> None:
        self._connect = connect
        self.closed = False

    async def connect(self, port: int) -> Any:
        return await self._connect(port)

    async def aclose(self) -> None:
        self.closed = True


def echo(monkeypatch: pytest.MonkeyPatch, session: Any, transfer: ConnectionTransfer | None = None) -> Any:
    async def fake_open(*args: Any, **kwargs: Any) -> Any:
        if isinstance(session, Exception):
            raise session
        return session

    async def fake_transfer(conn: Any, size: int, **_: Any) -> ConnectionTransfer:
        assert transfer is not None
        return transfer

    monkeypatch.setattr(pod_check, "open_port_forward", fake_open)
    monkeypatch.setattr(pod_check, "echo_transfer", fake_transfer)
    return asyncio.run(pod_check.check_echo(EP, "ns", "p", 8080))


def _transfer(received: int, exact: bool) -> ConnectionTransfer:
    return ConnectionTransfer(port=8080, sent=pod_check.ECHO_BYTES, received=received, sent_sha256="a",
                              received_sha256="a" if exact else "b")


def test_an_echo_is_present(monkeypatch: pytest.MonkeyPatch) -> None:
    async def connect(port: int) -> object:
        return object()

    session = FakeSession(connect)
    assert echo(monkeypatch, session, _transfer(pod_check.ECHO_BYTES, True)) == (True, "port 8080 echoes")
    assert session.closed


def test_nothing_listening_is_absent(monkeypatch: pytest.MonkeyPatch) -> None:
    async def connect(port: int) -> object:
        raise ConnectionReset("error forwarding port 8080: connection refused")

    present, why = echo(monkeypatch, FakeSession(connect))
    assert present is False and why.startswith("nothing echoed on port 8080")


def test_a_refused_port_forward_is_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    present, why = echo(monkeypatch, forbidden())
    assert present is None and why.startswith("could not open a port-forward")


def test_a_port_that_answers_without_echoing_is_absent(monkeypatch: pytest.MonkeyPatch) -> None:
    async def connect(port: int) -> object:
        return object()

    present, why = echo(monkeypatch, FakeSession(connect), _transfer(10, False))
    assert present is False and why == f"port 8080 did not echo (10 of {pod_check.ECHO_BYTES} bytes back)"
