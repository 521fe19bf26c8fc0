"""In-process pieces for the fault hop's unit tests: a TLS upstream that records what reaches it and plays
a script after the upgrade, a hop in front of it, and a raw TLS client. No lab, loopback only."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import h11

from conformance.lab.fault_credentials import LabTokens
from conformance.lab.fault_hop import FaultHop, HopConfig
from conformance.lab.fault_spec import parse_fault
from conformance.lab.fault_streams import _unmask, parse_ws_header
from conformance.lab.pki import Pki

READ_DEADLINE_S = 10.0
ISSUER_URL = "https://127.0.0.1:1"


@dataclass
class Upstream:
    """Answers `GET` with 200 and a small body; answers an upgrade request with 101 and `upgrade_headers`,
    then sends `script` and records what the client sends until it closes (or closes after the script
    when `close_after_script`)."""

    pki: Pki
    upgrade_headers: list[tuple[bytes, bytes]] = field(default_factory=lambda: [(b"Upgrade", b"test-bytes")])
    script: bytes = b""
    close_after_script: bool = False
    requests: list[h11.Request] = field(default_factory=list)
    peer_certs: list[dict[str, object] | None] = field(default_factory=list)
    received: bytearray = field(default_factory=bytearray)
    upgraded_done: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = 0
    _server: asyncio.Server | None = None

    async def start(self) -> int:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(self.pki.ca.cert))
        ctx.verify_mode = ssl.CERT_OPTIONAL  # records the hop's client certificate when it sends one
        ctx.load_cert_chain(self.pki.serving.kube_apiserver.cert, self.pki.serving.kube_apiserver.key)
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=ctx)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER)
        self.peer_certs.append(writer.get_extra_info("peercert"))
        try:
            while True:
                event = await _next(conn, reader)
                if isinstance(event, h11.ConnectionClosed):
                    return
                assert isinstance(event, h11.Request)
                self.requests.append(event)
                while not isinstance(await _next(conn, reader), h11.EndOfMessage):
                    pass
                if any(name.lower() == b"upgrade" for name, _ in event.headers.raw_items()):
                    writer.write(conn.send(h11.InformationalResponse(status_code=101, headers=self.upgrade_headers)))
                    writer.write(self.script)
                    await writer.drain()
                    if self.close_after_script:
                        return
                    while data := await reader.read(65536):
                        self.received += data
                    return
                body = b"hello\n"
                writer.write(conn.send(h11.Response(status_code=200, headers=[(b"Content-Length", b"6")])))
                writer.write(conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage()))
                await writer.drain()
                conn.start_next_cycle()
        except (OSError, ssl.SSLError, h11.ProtocolError):
            return
        finally:
            self.upgraded_done.set()
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 2)


async def _next(conn: h11.Connection, reader: asyncio.StreamReader) -> object:
    while (event := conn.next_event()) is h11.NEED_DATA:
        conn.receive_data(await reader.read(65536))
    return event


@contextlib.asynccontextmanager
async def hop_in_front(
    pki: Pki, upstream: Upstream, fault: str, *, client_cert: bool = False, log: list[str] | None = None
) -> AsyncIterator[FaultHop]:
    await upstream.start()
    serving = pki.make_serving_cert("fault-hop")
    config = HopConfig(
        fault=parse_fault(fault),
        cert=serving.cert,
        key=serving.key,
        upstream_port=upstream.port,
        upstream_ca=pki.ca.cert,
        upstream_client_cert=(pki.clients.kube_oidc_proxy.cert, pki.clients.kube_oidc_proxy.key)
        if client_cert
        else None,
        tokens=LabTokens(pki.oidc_signing_key, ISSUER_URL),
    )
    hop = FaultHop(config, log=(log.append if log is not None else lambda _line: None))
    await hop.start()
    try:
        yield hop
    finally:
        await hop.aclose()
        await upstream.aclose()


@dataclass
class Client:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    @classmethod
    async def connect(cls, pki: Pki, port: int) -> Client:
        ctx = ssl.create_default_context(cafile=str(pki.ca.cert))
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
        return cls(reader, writer)

    async def request(self, method: str, path: str, headers: list[tuple[str, str]]) -> tuple[int, bytes, bytes]:
        """Send a request; return (status, head, body or, for a 101, the bytes already read after it)."""
        lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers), "", ""]
        self.writer.write("\r\n".join(lines).encode())
        await self.writer.drain()
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = await asyncio.wait_for(self.reader.read(65536), READ_DEADLINE_S)
            assert chunk, f"closed before a response head: {buf!r}"
            buf += chunk
        head, rest = buf.split(b"\r\n\r\n", 1)
        status = int(head.split(b" ", 2)[1])
        if status == 101:
            return status, head, rest
        length = next(
            (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")),
            0,
        )
        while len(rest) < length:
            rest += await asyncio.wait_for(self.reader.read(65536), READ_DEADLINE_S)
        return status, head, rest

    async def read_to_eof(self, limit: int = 64 << 20) -> bytes:
        data = bytearray()
        while len(data) <= limit:
            chunk = await asyncio.wait_for(self.reader.read(65536), READ_DEADLINE_S)
            if not chunk:
                return bytes(data)
            data += chunk
        raise AssertionError("more data than expected")

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.writer.wait_closed(), 2)


def upgrade_headers(kind: str = "test-bytes") -> list[tuple[str, str]]:
    return [("Connection", "Upgrade"), ("Upgrade", kind)]


def cert_cn(cert: dict[str, object] | None) -> str | None:
    if not cert:
        return None
    subject = cert.get("subject", ())
    for rdn in subject:  # type: ignore[attr-defined]
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


def ws_payloads(data: bytes) -> list[bytes]:
    """The (unmasked) payload of each WebSocket frame in `data`."""
    out = []
    while data:
        header = parse_ws_header(data)
        assert header is not None
        out.append(_unmask(data[header.size : header.size + header.length], header.mask, 0))
        data = data[header.size + header.length :]
    return out
