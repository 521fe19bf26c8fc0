"""Clients against the in-process fake server: happy paths, every fault mode, and refusals."""

from __future__ import annotations

import asyncio
import time

import pytest

from conformance.clients import exec_, port_forward_echo
from conformance.model import ErrorClass
from conformance.transport.endpoint import Endpoint
from conformance.transport.errors import StreamingError, UnsupportedByProtocol
from conformance.transport.timeouts import Timeouts
from tests.transport.conftest import run, run_expecting
from tests.transport.fake_server import FakeServer, Fault

FAST = Timeouts(connect=2, tls=2, upgrade=2, read=0.5, close=0.5, total=5)
EXEC_PROTOCOLS = ["spdy", "ws-v5"]
ALL_WS = ["ws-v5", "ws-v4", "ws-v1", "ws-base64", "ws-v4-base64"]


@pytest.mark.parametrize("protocol", ["spdy", *ALL_WS])
def test_exec_echo_and_exit_code(server: FakeServer, endpoint: Endpoint, protocol: str) -> None:
    result = run(exec_(endpoint, "ns", "pod", "c", ["echo", "hello", "world"], protocol=protocol, timeouts=FAST))
    assert (result.stdout, result.exit_code) == (b"hello world\n", 0)
    failed = run(exec_(endpoint, "ns", "pod", "c", ["exit", "3"], protocol=protocol, timeouts=FAST))
    assert failed.exit_code == 3
    assert failed.evidence.status_line == "HTTP/1.1 101 Switching Protocols"
    assert failed.evidence.timings.connect_s is not None and failed.evidence.timings.tls_s is not None


def test_spdy_offer_reports_negotiated_v4_not_v5(server: FakeServer, endpoint: Endpoint) -> None:
    result = run(exec_(endpoint, "ns", "pod", "c", ["echo", "x"], protocol="spdy", timeouts=FAST))
    assert result.evidence.protocol_requested.startswith("v5.channel.k8s.io")
    assert result.negotiated == result.evidence.protocol_negotiated == "v4.channel.k8s.io"


@pytest.mark.parametrize("protocol", EXEC_PROTOCOLS)
def test_cat_with_stdin_half_close_returns_every_byte(server: FakeServer, endpoint: Endpoint, protocol: str) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB
    result = run(exec_(endpoint, "ns", "pod", "c", ["cat"], protocol=protocol, stdin=payload, timeouts=FAST))
    assert result.stdout == payload and result.stdin_bytes == len(payload) and result.exit_code == 0


def test_stdin_eof_on_v4_websocket_is_refused_before_any_io(server: FakeServer, endpoint: Endpoint) -> None:
    requests = len(server.requests)
    run_expecting(exec_(endpoint, "ns", "pod", "c", ["cat"], protocol="ws-v4", stdin=b"x"), UnsupportedByProtocol)
    assert len(server.requests) == requests


FAULTS = [
    ("stall", ErrorClass.TIMEOUT),
    ("reset", ErrorClass.RESET),
    ("garbage", ErrorClass.PROTOCOL_ERROR),
    ("huge-frame", ErrorClass.PROTOCOL_ERROR),
    ("no-exit-status", ErrorClass.MISSING_EXIT_STATUS),
]


@pytest.mark.parametrize("protocol", EXEC_PROTOCOLS)
@pytest.mark.parametrize(("mode", "error_class"), FAULTS)
def test_exec_fault_yields_typed_error_within_deadline(server: FakeServer, endpoint: Endpoint, protocol: str,
                                                       mode: str, error_class: ErrorClass) -> None:
    server.fault = Fault(mode=mode)
    started = time.monotonic()
    exc = run_expecting(exec_(endpoint, "ns", "pod", "c", ["echo", "some", "output"], protocol=protocol,
                              timeouts=FAST), StreamingError)
    assert isinstance(exc, StreamingError)
    assert time.monotonic() - started < FAST.total
    assert exc.error_class is error_class, exc
    assert exc.evidence.status_line == "HTTP/1.1 101 Switching Protocols"
    assert exc.evidence.error
    if mode in ("garbage", "reset"):
        assert exc.bytes_so_far, "the bytes received so far are the evidence"


def test_spdy_frame_for_unknown_stream_is_a_protocol_error(server: FakeServer, endpoint: Endpoint) -> None:
    server.fault = Fault(mode="unknown-stream")
    exc = run_expecting(exec_(endpoint, "ns", "pod", "c", ["echo", "x"], timeouts=FAST), StreamingError)
    assert isinstance(exc, StreamingError) and exc.error_class is ErrorClass.PROTOCOL_ERROR
    assert "stream 99" in str(exc)


def test_websocket_data_on_unknown_channel_is_noted_not_fatal(server: FakeServer, endpoint: Endpoint) -> None:
    server.fault = Fault(mode="unknown-stream")
    result = run(exec_(endpoint, "ns", "pod", "c", ["echo", "x"], protocol="ws-v5", timeouts=FAST))
    assert result.exit_code == 0 and any("channel 9" in n for n in result.evidence.notes)


REFUSALS = [
    (400, "Bad Request", [("Content-Type", "application/json")],
     b'{"kind":"Status","apiVersion":"v1","status":"Failure","message":"Upgrade request required","code":400}',
     ErrorClass.UPGRADE_REQUIRED),
    (401, "Unauthorized", [], b'{"kind":"Status","message":"Unauthorized","code":401}', ErrorClass.UNAUTHORIZED),
    (403, "Forbidden", [("Content-Type", "application/json")],
     b'{"kind":"Status","status":"Failure","message":"pods \\"p\\" is forbidden","reason":"Forbidden","code":403}',
     ErrorClass.FORBIDDEN),
    (403, "Forbidden", [("Content-Type", "text/plain")], b"RBAC: access denied", ErrorClass.UPGRADE_REFUSED),
    (500, "Internal Server Error", [("Content-Type", "text/html")],
     b"<html><head><title>Error</title></head><body>Internal Server Error</body></html>",
     ErrorClass.UPGRADE_REFUSED),
    (502, "Bad Gateway", [], b"upstream connect error", ErrorClass.PROXY_ERROR),
    (403, "Forbidden", [("X-Accepted-Stream-Protocol-Versions", "v4.channel.k8s.io")], b"no common protocol",
     ErrorClass.PROTOCOL_MISMATCH),
]


@pytest.mark.parametrize("protocol", EXEC_PROTOCOLS)
@pytest.mark.parametrize(("status", "reason", "headers", "body", "error_class"), REFUSALS)
def test_refused_upgrade_keeps_status_line_headers_and_body(
    server: FakeServer, endpoint: Endpoint, protocol: str, status: int, reason: str,
    headers: list[tuple[str, str]], body: bytes, error_class: ErrorClass,
) -> None:
    server.fault = Fault(mode="refuse", refuse_status=status, refuse_reason=reason, refuse_headers=headers,
                         refuse_body=body)
    exc = run_expecting(exec_(endpoint, "ns", "pod", "c", ["echo"], protocol=protocol, timeouts=FAST),
                        StreamingError)
    assert isinstance(exc, StreamingError)
    assert exc.error_class is error_class, exc
    assert exc.evidence.status_line == f"HTTP/1.1 {status} {reason}"
    for name, value in headers:
        assert exc.evidence.response_headers[name] == value  # original casing kept
    assert exc.evidence.body_excerpt == body.decode()


def test_token_never_appears_in_evidence(server: FakeServer, endpoint: Endpoint) -> None:
    server.fault = Fault(mode="refuse", refuse_status=401, refuse_reason="Unauthorized",
                         refuse_body=f"bad token {endpoint.token}".encode())
    exc = run_expecting(exec_(endpoint, "ns", "pod", "c", ["echo"], timeouts=FAST), StreamingError)
    assert isinstance(exc, StreamingError)
    assert endpoint.token is not None
    assert endpoint.token in server.requests[-1]  # it was sent ...
    assert endpoint.token not in repr(exc.evidence) and endpoint.token not in str(exc)  # ... and never kept


@pytest.mark.parametrize("protocol", ["spdy", "ws-legacy"])
def test_port_forward_echo_many_connections(server: FakeServer, endpoint: Endpoint, protocol: str) -> None:
    result = run(port_forward_echo(endpoint, "ns", "pod", 8080, protocol=protocol, size=256 * 1024, connections=5,
                                   timeouts=FAST))
    assert result.ok and len(result.connections) == 5 and result.bytes_echoed == 5 * 256 * 1024


@pytest.mark.parametrize("protocol", ["spdy", "ws-legacy"])
def test_port_forward_stall_times_out(server: FakeServer, endpoint: Endpoint, protocol: str) -> None:
    server.fault = Fault(mode="stall")
    started = time.monotonic()
    exc = run_expecting(port_forward_echo(endpoint, "ns", "pod", 8080, protocol=protocol, size=4096, timeouts=FAST),
                        StreamingError)
    assert isinstance(exc, StreamingError) and exc.error_class is ErrorClass.TIMEOUT
    assert time.monotonic() - started < FAST.total


def test_port_forward_unknown_stream_is_a_protocol_error(server: FakeServer, endpoint: Endpoint) -> None:
    server.fault = Fault(mode="unknown-stream")
    exc = run_expecting(port_forward_echo(endpoint, "ns", "pod", 8080, size=4096, timeouts=FAST), StreamingError)
    assert isinstance(exc, StreamingError) and exc.error_class is ErrorClass.PROTOCOL_ERROR


def test_spdy_stream_inbox_is_bounded_when_the_app_does_not_read(server: FakeServer, endpoint: Endpoint) -> None:
    """Backpressure: the reader stops at the inbox cap instead of buffering the whole echo."""
    from conformance.clients import open_port_forward
    from conformance.transport.spdy_session import MAX_STREAM_BUFFER
    from conformance.wire.limits import MAX_DATA_FRAME_PAYLOAD

    async def scenario() -> tuple[int, int]:
        session = await open_port_forward(endpoint, "ns", "pod", protocol="spdy", timeouts=FAST)
        try:
            conn = await session.connect(8080)
            data_stream = conn.data  # type: ignore[attr-defined]
            payload = b"z" * (4 * 1024 * 1024)
            writer = asyncio.create_task(conn.write(payload))
            await asyncio.sleep(0.3)  # the echo comes back; nobody reads it
            peak = data_stream._buffered
            got = 0
            while got < len(payload):
                got += len(await conn.read())
            await writer
            await conn.aclose()
            return peak, got
        finally:
            await session.aclose()

    peak, got = run(scenario())
    assert got == 4 * 1024 * 1024
    assert 0 < peak <= MAX_STREAM_BUFFER + MAX_DATA_FRAME_PAYLOAD
