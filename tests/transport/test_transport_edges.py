"""Connect, TLS and proxy failures, kubeconfig loading, and the refusal classification rules."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from conformance.clients import exec_
from conformance.errors import ConfigError
from conformance.lab.pki import Pki
from conformance.model import ErrorClass
from conformance.redact import redact
from conformance.transport.endpoint import Endpoint
from conformance.transport.errors import (
    Forbidden,
    HopError,
    ProtocolMismatch,
    StreamingError,
    UpgradeRefused,
    UpgradeRequired,
    classify_refusal,
)
from conformance.transport.timeouts import Timeouts
from tests.transport.conftest import run, run_expecting
from tests.transport.fake_server import FakeServer

FAST = Timeouts(connect=1, tls=1, upgrade=2, read=1, close=0.5, total=5)


def test_connect_refused(server: FakeServer, pki: Pki) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connections are refused
        endpoint = Endpoint(server=f"https://127.0.0.1:{port}", ca_file=str(pki.ca.cert))
        exc = run_expecting(exec_(endpoint, "ns", "p", "c", ["echo"], timeouts=FAST), StreamingError)
    assert isinstance(exc, StreamingError) and exc.error_class is ErrorClass.CONNECT_REFUSED


def test_tls_failure_without_the_ca(server: FakeServer, endpoint: Endpoint) -> None:
    untrusted = Endpoint(server=endpoint.server)
    exc = run_expecting(exec_(untrusted, "ns", "p", "c", ["echo"], timeouts=FAST), StreamingError)
    assert isinstance(exc, StreamingError) and exc.error_class is ErrorClass.TLS
    assert exc.evidence.timings.connect_s is not None


def test_black_holed_tls_times_out_in_the_tls_phase(server: FakeServer, pki: Pki) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()  # accepts (kernel backlog) and never answers the ClientHello
        endpoint = Endpoint(server=f"https://127.0.0.1:{listener.getsockname()[1]}", ca_file=str(pki.ca.cert))
        exc = run_expecting(exec_(endpoint, "ns", "p", "c", ["echo"], timeouts=FAST), StreamingError)
    assert isinstance(exc, StreamingError) and exc.error_class is ErrorClass.TIMEOUT
    assert exc.phase == "tls"


@contextlib.contextmanager
def connect_proxy(refuse: bytes | None = None, tls: ssl.SSLContext | None = None) -> Iterator[str]:
    """A tiny HTTP CONNECT proxy in a thread; ``refuse`` is the raw response to send instead of 200."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    port: list[int] = []
    servers: list[asyncio.AbstractServer] = []
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if refuse is not None:
            writer.write(refuse)
            await writer.drain()
            writer.close()
            return
        host, _, target_port = head.split(b" ")[1].decode().rpartition(":")
        up_reader, up_writer = await asyncio.open_connection(host, int(target_port))
        writers.extend((writer, up_writer))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            # finally: a pipe cancelled at shutdown must close its socket too, or the fd check sees a leak.
            try:
                with contextlib.suppress(OSError):
                    while data := await src.read(65536):
                        dst.write(data)
                        await dst.drain()
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def start() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls)
        servers.append(server)
        port.append(server.sockets[0].getsockname()[1])
        ready.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(start()), loop.run_forever()), daemon=True)
    thread.start()
    ready.wait(5)
    try:
        yield f"{'https' if tls else 'http'}://user:pw-secret-123@127.0.0.1:{port[0]}"
    finally:
        async def stop() -> None:
            servers[0].close()
            for task in [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]:
                task.cancel()
            for writer in writers:
                writer.close()
            await asyncio.sleep(0.05)

        asyncio.run_coroutine_threadsafe(stop(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def test_exec_through_a_connect_proxy(server: FakeServer, endpoint: Endpoint) -> None:
    from dataclasses import replace

    with connect_proxy() as proxy:
        result = run(exec_(replace(endpoint, proxy_url=proxy), "ns", "p", "c", ["echo", "via", "proxy"],
                           timeouts=FAST))
    assert result.stdout == b"via proxy\n"
    assert any("CONNECT" in line for line in result.evidence.transcript)


@pytest.mark.parametrize("protocol", ["spdy", "ws-v5"])
def test_exec_through_a_tls_proxy_is_tls_inside_tls(server: FakeServer, endpoint: Endpoint, pki: Pki,
                                                    protocol: str) -> None:
    from dataclasses import replace

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(pki.serving.kube_apiserver.cert, pki.serving.kube_apiserver.key)
    with connect_proxy(tls=ctx) as proxy:
        result = run(exec_(replace(endpoint, proxy_url=proxy), "ns", "p", "c", ["echo", "tls", "in", "tls"],
                           protocol=protocol, timeouts=FAST))
    assert result.stdout == b"tls in tls\n"
    assert sum("TLS with" in note for note in result.evidence.notes) == 2


@pytest.mark.parametrize("protocol", ["spdy", "ws-v5"])
def test_refusing_proxy_is_a_proxy_error_with_its_status_line(server: FakeServer, endpoint: Endpoint,
                                                              protocol: str) -> None:
    from dataclasses import replace

    refusal = b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 6\r\n\r\ndenied"
    with connect_proxy(refuse=refusal) as proxy:
        exc = run_expecting(exec_(replace(endpoint, proxy_url=proxy), "ns", "p", "c", ["echo"], protocol=protocol,
                                  timeouts=FAST), StreamingError)
    assert isinstance(exc, StreamingError) and exc.error_class is ErrorClass.PROXY_ERROR
    assert getattr(exc, "status_line", None) == "HTTP/1.1 407 Proxy Authentication Required"
    assert base64.b64encode(b"user:pw-secret-123").decode() not in repr(exc.evidence)


# --- kubeconfig ------------------------------------------------------------------------------------


def _kubeconfig(tmp_path: Path, cluster: dict[str, object], user: dict[str, object]) -> Path:
    doc = {
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "k", "cluster": cluster}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u", "namespace": "team"}}],
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_kubeconfig_token_file_relative_and_registered(tmp_path: Path) -> None:
    (tmp_path / "tok").write_text("sekret-token-from-file\n")
    path = _kubeconfig(tmp_path, {"server": "https://10.0.0.1:6443", "certificate-authority": "ca.crt"},
                       {"tokenFile": "tok"})
    endpoint = Endpoint.from_kubeconfig(path)
    assert endpoint.token == "sekret-token-from-file"
    assert endpoint.ca_file == str(tmp_path / "ca.crt")
    assert endpoint.namespace == "team" and endpoint.port == 6443
    assert "sekret-token-from-file" not in redact("Authorization: x sekret-token-from-file")


def test_kubeconfig_embedded_data_and_client_cert(tmp_path: Path, pki: Pki) -> None:
    ca = base64.b64encode(pki.ca.cert.read_bytes()).decode()
    cert = base64.b64encode(pki.clients.admin.cert.read_bytes()).decode()
    key = base64.b64encode(pki.clients.admin.key.read_bytes()).decode()
    path = _kubeconfig(tmp_path, {"server": "https://127.0.0.1:1", "certificate-authority-data": ca},
                       {"client-certificate-data": cert, "client-key-data": key})
    endpoint = Endpoint.from_kubeconfig(path)
    ctx = endpoint.ssl_context()  # loads the chain from data through a private temporary file
    assert ctx.verify_mode.name == "CERT_REQUIRED"


def test_kubeconfig_insecure_and_exec_plugin(tmp_path: Path) -> None:
    path = _kubeconfig(tmp_path, {"server": "https://h:1", "insecure-skip-tls-verify": True}, {"token": "t" * 20})
    assert Endpoint.from_kubeconfig(path).ssl_context().check_hostname is False
    plugin = _kubeconfig(tmp_path, {"server": "https://h:1"}, {"exec": {"command": "aws"}})
    with pytest.raises(ConfigError, match="exec"):
        Endpoint.from_kubeconfig(plugin)
    with pytest.raises(ConfigError, match="no context named"):
        Endpoint.from_kubeconfig(path, "missing")


# --- classification --------------------------------------------------------------------------------

STATUS_403 = b'{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Forbidden","code":403}'


@pytest.mark.parametrize(("status", "headers", "body", "expected"), [
    (400, [], b'{"kind":"Status","message":"Upgrade request required"}', UpgradeRequired),
    (400, [], b"Upgrade request required", UpgradeRequired),
    (403, [], STATUS_403, Forbidden),
    (403, [], b"", UpgradeRefused),  # Envoy's upgrade_failed: no Status body
    (403, [("X-Accepted-Stream-Protocol-Versions", "v4.channel.k8s.io")], b"", ProtocolMismatch),
    (500, [], b"<html>Internal Server Error</html>", UpgradeRefused),
    (503, [], b"no healthy upstream", HopError),
    (200, [], b"OK", UpgradeRefused),  # a hop that answered the request as plain HTTP
])
def test_classify_refusal(status: int, headers: list[tuple[str, str]], body: bytes, expected: type) -> None:
    assert classify_refusal(status, headers, body) is expected
