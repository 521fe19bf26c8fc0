"""Issue 3 acceptance: the native clients against the lab, directly and through kube-oidc-proxy (jetstack)."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from conformance.clients import (
    Endpoint,
    Timeouts,
    attach,
    cp_download,
    cp_upload,
    exec_,
    logs_follow,
    port_forward_echo,
)
from conformance.model import ErrorClass
from conformance.transport.errors import StreamingError, UnsupportedByProtocol
from tests.conftest import RunningLab

pytestmark = pytest.mark.lab
TARGETS = ("direct", "jetstack")
NS, POD, CONTAINER = "conformance", "probe-0", "main"
ECHO_PORT = 8080
MiB = 1024 * 1024
EXEC_PROTOCOLS = ("spdy", "ws-v5", "ws-v4", "ws-v1", "ws-base64", "ws-v4-base64")
STDIN_EOF_PROTOCOLS = ("spdy", "ws-v5")
PORT_FORWARD_PROTOCOLS = ("spdy", "ws-tunnel", "ws-legacy")
TIMEOUTS = Timeouts(read=30, total=180)


def endpoint(lab: RunningLab, target: str, user: str = "alice") -> Endpoint:
    return Endpoint.from_kubeconfig(lab.kubeconfig(target, user))


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("protocol", EXEC_PROTOCOLS)
def test_exec_stdout_stderr_and_exit_codes(running_lab: RunningLab, target: str, protocol: str) -> None:
    ep = endpoint(running_lab, target)

    async def both() -> tuple[object, object]:
        ok = await exec_(ep, NS, POD, CONTAINER, ["sh", "-c", "echo out-$((6*7)); echo err-line >&2"],
                         protocol=protocol, timeouts=TIMEOUTS)
        three = await exec_(ep, NS, POD, CONTAINER, ["sh", "-c", "echo x; exit 3"], protocol=protocol,
                            timeouts=TIMEOUTS)
        return ok, three

    ok, three = asyncio.run(both())
    assert (ok.stdout, ok.stderr, ok.exit_code) == (b"out-42\n", b"err-line\n", 0)  # type: ignore[attr-defined]
    assert three.exit_code == 3, three.status_message  # type: ignore[attr-defined]
    # What the 101 said, never just what we asked for.
    expected = "v4.channel.k8s.io" if protocol == "spdy" else ok.evidence.protocol_requested  # type: ignore[attr-defined]
    assert ok.negotiated == ok.evidence.protocol_negotiated == expected  # type: ignore[attr-defined]
    assert ok.evidence.status_line == "HTTP/1.1 101 Switching Protocols"  # type: ignore[attr-defined]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("protocol", STDIN_EOF_PROTOCOLS)
def test_cat_with_stdin_half_close_returns_exactly_1_mib(running_lab: RunningLab, target: str, protocol: str) -> None:
    payload = os.urandom(MiB)
    result = asyncio.run(exec_(endpoint(running_lab, target), NS, POD, CONTAINER, ["cat"], protocol=protocol,
                               stdin=payload, timeouts=TIMEOUTS))
    assert result.exit_code == 0
    assert result.stdout_bytes == MiB and result.stdout == payload


@pytest.mark.parametrize("protocol", ("ws-v4", "ws-v1", "ws-base64", "ws-v4-base64"))
def test_stdin_eof_is_refused_where_the_protocol_has_none(running_lab: RunningLab, protocol: str) -> None:
    with pytest.raises(UnsupportedByProtocol):
        asyncio.run(exec_(endpoint(running_lab, "direct"), NS, POD, CONTAINER, ["cat"], protocol=protocol,
                          stdin=b"x"))


def test_spdy_offering_only_v5_is_a_protocol_mismatch(running_lab: RunningLab) -> None:
    """The kubelet has no v5 over SPDY: offering only v5 is refused, never reported as v5 working."""
    with pytest.raises(StreamingError) as caught:
        asyncio.run(exec_(endpoint(running_lab, "direct"), NS, POD, CONTAINER, ["true"],
                          spdy_offer=("v5.channel.k8s.io",), timeouts=TIMEOUTS))
    assert caught.value.error_class is ErrorClass.PROTOCOL_MISMATCH
    assert caught.value.evidence.protocol_negotiated is None


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("protocol", STDIN_EOF_PROTOCOLS)
def test_cp_64_mib_both_ways_byte_exact(running_lab: RunningLab, target: str, protocol: str, tmp_path: Path) -> None:
    src = tmp_path / "upload.bin"
    digest = hashlib.sha256()
    with src.open("wb") as fh:
        for _ in range(64):
            block = os.urandom(MiB)
            digest.update(block)
            fh.write(block)
    remote = f"native-cp-{target}-{protocol}-{os.getpid()}.bin"
    ep = endpoint(running_lab, target)
    dst = tmp_path / "download.bin"

    async def both_ways() -> None:
        up = await cp_upload(ep, NS, POD, CONTAINER, src, remote, protocol=protocol, timeouts=TIMEOUTS)
        assert up.bytes == 64 * MiB and up.sha256 == digest.hexdigest() == up.remote_sha256
        down = await cp_download(ep, NS, POD, CONTAINER, remote, dst, protocol=protocol, timeouts=TIMEOUTS)
        assert down.bytes == 64 * MiB and down.sha256 == digest.hexdigest()
        await exec_(ep, NS, POD, CONTAINER, ["rm", "-f", remote], protocol=protocol, timeouts=TIMEOUTS)

    asyncio.run(both_ways())
    with dst.open("rb") as fh:
        assert hashlib.file_digest(fh, "sha256").hexdigest() == digest.hexdigest()


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("protocol", PORT_FORWARD_PROTOCOLS)
def test_port_forward_64_mib_byte_exact(running_lab: RunningLab, target: str, protocol: str) -> None:
    result = asyncio.run(port_forward_echo(endpoint(running_lab, target), NS, POD, ECHO_PORT, protocol=protocol,
                                           size=64 * MiB, timeouts=TIMEOUTS))
    assert result.ok and result.bytes_echoed == 64 * MiB
    assert result.evidence.bytes_verified == 64 * MiB
    assert result.negotiated == result.evidence.protocol_negotiated


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("protocol", PORT_FORWARD_PROTOCOLS)
def test_port_forward_20_concurrent_connections_byte_exact(running_lab: RunningLab, target: str,
                                                           protocol: str) -> None:
    result = asyncio.run(port_forward_echo(endpoint(running_lab, target), NS, POD, ECHO_PORT, protocol=protocol,
                                           size=MiB, connections=20, timeouts=TIMEOUTS))
    assert result.ok and len(result.connections) == 20
    assert all(c.byte_exact and c.received == MiB for c in result.connections)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("protocol", ("spdy", "ws-v5"))
def test_attach_follows_the_ticking_log(running_lab: RunningLab, target: str, protocol: str) -> None:
    result = asyncio.run(attach(endpoint(running_lab, target), NS, POD, CONTAINER, protocol=protocol,
                                max_duration=2.5, timeouts=TIMEOUTS))
    assert result.detached and b"tick" in result.stdout


@pytest.mark.parametrize("target", TARGETS)
def test_logs_follow_bounded_by_time(running_lab: RunningLab, target: str) -> None:
    result = asyncio.run(logs_follow(endpoint(running_lab, target), NS, POD, CONTAINER, max_duration=2.5,
                                     tail_lines=1, timeouts=TIMEOUTS))
    assert result.ended_by == "duration" and result.lines >= 2 and b"tick" in result.data
    assert result.evidence.status_line == "HTTP/1.1 200 OK"


@pytest.mark.parametrize("target", TARGETS)
def test_exec_forbidden_for_bob_is_forbidden_with_status_body(running_lab: RunningLab, target: str) -> None:
    with pytest.raises(StreamingError) as caught:
        asyncio.run(exec_(endpoint(running_lab, target, "bob"), NS, POD, CONTAINER, ["true"], timeouts=TIMEOUTS))
    assert caught.value.error_class is ErrorClass.FORBIDDEN
    assert caught.value.evidence.status_line == "HTTP/1.1 403 Forbidden"


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for i in range(0, len(data), 7919):
        yield data[i : i + 7919]


def test_exec_stdin_from_an_async_stream(running_lab: RunningLab) -> None:
    payload = os.urandom(300_000)
    result = asyncio.run(exec_(endpoint(running_lab, "direct"), NS, POD, CONTAINER, ["sha256sum"],
                               stdin=_chunks(payload), timeouts=TIMEOUTS))
    assert result.stdout.split()[0].decode() == hashlib.sha256(payload).hexdigest()


@pytest.mark.parametrize("protocol", ("spdy", "ws-v5"))
def test_exec_through_the_labs_https_proxy_kubeconfig(running_lab: RunningLab, protocol: str) -> None:
    """proxy-url from the kubeconfig: CONNECT through the lab's forward proxy, then TLS to the API server."""
    from conformance.lab import lab

    try:
        path = lab.kubeconfig("direct", "alice", path="https-proxy")
    except Exception as exc:  # the lab may run without that path
        pytest.skip(f"lab has no https-proxy path: {exc}")
    ep = Endpoint.from_kubeconfig(path)
    assert ep.proxy_url
    result = asyncio.run(exec_(ep, NS, POD, CONTAINER, ["echo", "via-proxy"], protocol=protocol, timeouts=TIMEOUTS))
    assert result.stdout == b"via-proxy\n" and result.exit_code == 0
    assert any(line.startswith("proxy: CONNECT") for line in result.evidence.transcript)


@pytest.mark.parametrize("protocol", ("spdy", "ws-v5"))
def test_tty_gets_the_initial_terminal_size(running_lab: RunningLab, protocol: str) -> None:
    from conformance.clients import TerminalSize

    # stdin is given (even empty): kwok crashes on a tty exec without stdin.
    command = ["sh", "-c", "sleep 0.3; stty size"]
    result = asyncio.run(exec_(endpoint(running_lab, "direct"), NS, POD, CONTAINER, command, tty=True,
                               stdin=b"", terminal_size=TerminalSize(width=100, height=40), timeouts=TIMEOUTS))
    assert result.stdout == b"40 100\r\n" and result.exit_code == 0
