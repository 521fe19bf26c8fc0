"""Every byte, checked: a stream cut or corrupted after N bytes, for N anywhere below the payload size, is
caught by the native clients, as `truncated` ("N of M bytes") or `data-mismatch` (with the offset)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conformance.clients import exec_, port_forward_echo
from conformance.model import ErrorClass
from conformance.transport.endpoint import Endpoint
from conformance.transport.errors import DataMismatch, Truncated
from conformance.transport.timeouts import Timeouts
from tests.transport.conftest import run, run_expecting
from tests.transport.fake_server import FakeServer, Fault

FAST = Timeouts(connect=2, tls=2, upgrade=2, read=2, close=0.5, total=10)
SIZE = 300 * 1024  # more than one write chunk and one read buffer
CUTS = st.integers(min_value=0, max_value=SIZE - 1)
FIXTURES = [HealthCheck.function_scoped_fixture]


@pytest.mark.parametrize("protocol", ["spdy", "ws-legacy"])
@settings(max_examples=6, deadline=None, suppress_health_check=FIXTURES)
@given(n=CUTS)
def test_port_forward_truncated_after_n_bytes(server: FakeServer, endpoint: Endpoint, protocol: str, n: int) -> None:
    server.fault = Fault(mode="truncate-after", after=n)
    exc = run_expecting(port_forward_echo(endpoint, "ns", "pod", 8080, protocol=protocol, size=SIZE,
                                          timeouts=FAST), Truncated)
    assert exc.error_class is ErrorClass.TRUNCATED  # type: ignore[attr-defined]
    assert f"{n} of {SIZE} bytes" in str(exc)
    assert server.wait_idle()


@pytest.mark.parametrize("protocol", ["spdy", "ws-legacy"])
@settings(max_examples=6, deadline=None, suppress_health_check=FIXTURES)
@given(n=CUTS)
def test_port_forward_corrupted_at_n(server: FakeServer, endpoint: Endpoint, protocol: str, n: int) -> None:
    server.fault = Fault(mode="corrupt-after", after=n)
    exc = run_expecting(port_forward_echo(endpoint, "ns", "pod", 8080, protocol=protocol, size=SIZE,
                                          timeouts=FAST), DataMismatch)
    assert f"different byte at offset {n} " in str(exc)
    assert server.wait_idle()


def test_port_forward_untouched_passes(server: FakeServer, endpoint: Endpoint) -> None:
    server.fault = Fault(mode="corrupt-after", after=SIZE)  # the flip would land past the end
    result = run(port_forward_echo(endpoint, "ns", "pod", 8080, protocol="spdy", size=SIZE, timeouts=FAST))
    assert result.ok and result.evidence.bytes_verified == SIZE


@pytest.mark.parametrize("protocol", ["spdy", "ws-v5", "ws-v4"])
@pytest.mark.parametrize("mode", ["truncate-after", "corrupt-after"])
@settings(max_examples=4, deadline=None, suppress_health_check=FIXTURES)
@given(n=CUTS)
def test_exec_stdout_cut_or_corrupted_differs(server: FakeServer, endpoint: Endpoint, protocol: str, mode: str,
                                              n: int) -> None:
    """The exec client hands over what arrived; the caller's digest and length check sees the difference
    (probes.common.verify_bytes), even though the server then reports success."""
    from probes.common import verify_bytes

    server.fault = Fault(mode=mode, after=n)
    want = bytes(i % 251 for i in range(SIZE))
    result = run(exec_(endpoint, "ns", "pod", "c", ["pattern", str(SIZE)], protocol=protocol, timeouts=FAST))
    assert result.exit_code == 0
    problem = verify_bytes(want, result.stdout)
    assert problem is not None
    cls, message = problem
    if mode == "truncate-after":
        assert cls is ErrorClass.TRUNCATED and f"{n} of {SIZE} bytes" in message
    else:
        assert cls is ErrorClass.DATA_MISMATCH and f"offset {n}" in message


@pytest.mark.parametrize("protocol", ["spdy", "ws-v5"])
@pytest.mark.parametrize(("mode", "expected"), [("ok", ErrorClass.NONE), ("swallow-eof", ErrorClass.EOF_LOST)])
def test_a_half_close_that_never_arrives_is_eof_lost(server: FakeServer, endpoint: Endpoint, protocol: str,
                                                     mode: str, expected: ErrorClass) -> None:
    """The native client half-closes stdin; the server swallows it and `cat` never exits: `eof-lost`, not a
    plain timeout (probes.exec)."""
    import asyncio

    from conformance.adapters.base import Session
    from conformance.adapters.native import NativeAdapter
    from conformance.config import Endpoint as ConfigEndpoint
    from conformance.config import Workload
    from probes.common import ProbeContext
    from probes.exec import probe_exec_stdin

    server.fault = Fault(mode=mode)
    ep = ConfigEndpoint(server=endpoint.server, ca_file=endpoint.ca_file)
    session = Session(endpoint=ep, token="t", namespace="ns", user_agent="test", timeout_s=3)
    ctx = ProbeContext(client=NativeAdapter(), session=session,
                       workload=Workload(namespace="ns", pods=("pod",), container="c", port=8080),
                       protocol=protocol, marker="m")
    obs = asyncio.run(probe_exec_stdin(ctx))
    assert obs.error_class is expected, obs.message
    assert "half-close" in obs.message
