"""Port-forward over ``spdy``, ``ws-tunnel`` (SPDY inside WebSocket) and ``ws-legacy``.

``open_port_forward`` returns a session; ``session.connect(port)`` opens one forwarded connection
(``read``/``write``/``close_write``/``aclose``). SPDY and the tunnel carry any number of
connections to any ports over one session (a data and an error stream per connection, paired by
``requestid`` as client-go does). Legacy WebSocket carries one connection per port per WebSocket, so
each ``connect`` opens a new WebSocket and the legacy protocol has no half-close.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

import websockets.exceptions as ws_exc
from websockets.asyncio.client import ClientConnection

from conformance.clients.command_target import port_forward_target
from conformance.clients.protocols import PortForwardProtocol, port_forward_protocol
from conformance.model import Evidence
from conformance.transport.channel import WebSocketTunnel
from conformance.transport.endpoint import Endpoint
from conformance.transport.errors import ProtocolMismatch, StreamingError, map_exception
from conformance.transport.spdy_session import SpdySession, SpdyStream
from conformance.transport.timeouts import Deadline, Phase, Timeouts
from conformance.transport.upgrade import spdy_upgrade
from conformance.transport.websocket import (
    TUNNEL_MAX_MESSAGE,
    TUNNEL_MAX_QUEUE,
    close_websocket,
    receiving,
    websocket_connect,
)
from conformance.wire.portforward import (
    PORT_FORWARD_PROTOCOL,
    WEBSOCKET_PORT_FORWARD_SUBPROTOCOLS,
    PortForwardData,
    PortForwardError,
    PortForwardStreamType,
    WebSocketPortForwardCodec,
    port_forward_headers,
    tunnelled_protocol,
)
from conformance.wire.role import Role

# What an error stream/channel may tell us (a Go error string); more is cut.
MAX_ERROR_TEXT = 16 * 1024
WRITE_CHUNK = 64 * 1024


class ForwardedConnection(Protocol):
    port: int
    error_text: str

    async def read(self, n: int = ...) -> bytes: ...

    async def write(self, data: bytes) -> None: ...

    async def close_write(self) -> None: ...

    async def aclose(self) -> None: ...


class SpdyForwardedConnection:
    def __init__(self, port: int, data: SpdyStream, error: SpdyStream, deadline: Deadline) -> None:
        self.port = port
        self.data = data
        self.error = error
        self.deadline = deadline
        self.error_text = ""

    async def read(self, n: int = 1 << 20) -> bytes:
        return await self.data.read(n)

    async def write(self, data: bytes) -> None:
        await self.data.write(data)

    async def close_write(self) -> None:
        await self.data.close_write()

    async def aclose(self) -> None:
        """Reset the data stream, then read what the server said on the error stream (bounded).

        client-go waits for the error stream once the remote side finished. If we cut the
        connection ourselves the server owes us nothing, so we only take what already arrived.
        """
        remote_finished = self.data.fin_received or self.data.reset_status is not None
        with contextlib.suppress(StreamingError):
            await self.data.reset()
        text = bytearray()
        wait = self.deadline.timeouts.close if remote_finished else 0.0
        with contextlib.suppress(StreamingError, TimeoutError):
            async with asyncio.timeout(wait):
                while len(text) < MAX_ERROR_TEXT and (chunk := await self.error.read()):
                    text += chunk
        with contextlib.suppress(StreamingError):
            await self.error.reset()
        self.error_text = text[:MAX_ERROR_TEXT].decode("utf-8", "replace")


class LegacyForwardedConnection:
    """One legacy WebSocket = one TCP connection to one port (PROTOCOLS.md 5.4)."""

    def __init__(self, port: int, ws: ClientConnection, codec: WebSocketPortForwardCodec, deadline: Deadline,
                 evidence: Evidence) -> None:
        self.port = port
        self.ws = ws
        self.codec = codec
        self.deadline = deadline
        self.evidence = evidence
        self.error_text = ""
        self._eof = False

    async def read(self, n: int = 0) -> bytes:
        while not self._eof:
            try:
                async with receiving(self.ws, self.deadline, self.evidence):
                    message = await self.ws.recv()
            except ws_exc.ConnectionClosedOK:
                self._eof = True
                break
            except ws_exc.ConnectionClosedError as exc:
                raise map_exception(exc, phase=Phase.STREAM, evidence=self.evidence) from exc
            event = self.codec.decode(message)
            if isinstance(event, PortForwardError):
                if len(self.error_text) < MAX_ERROR_TEXT:
                    self.error_text += event.data.decode("utf-8", "replace")
            elif isinstance(event, PortForwardData) and event.data:
                return event.data
        return b""

    async def write(self, data: bytes) -> None:
        for i in range(0, len(data), WRITE_CHUNK):
            async with self.deadline.phase(Phase.STREAM):
                await self.ws.send(self.codec.encode_data(0, data[i : i + WRITE_CHUNK]))

    async def close_write(self) -> None:
        """The legacy protocol cannot half-close a connection; only closing the WebSocket ends it."""

    async def aclose(self) -> None:
        await close_websocket(self.ws, self.deadline)


class PortForwardSession:
    """One port-forward session; ``connect`` opens forwarded connections. Use ``async with``."""

    def __init__(self, endpoint: Endpoint, namespace: str, pod: str, protocol: PortForwardProtocol,
                 deadline: Deadline, evidence: Evidence) -> None:
        self.endpoint = endpoint
        self.namespace = namespace
        self.pod = pod
        self.protocol = protocol
        self.deadline = deadline
        self.evidence = evidence
        self.negotiated = ""
        self.spdy: SpdySession | None = None
        self._request_id = 0
        self._legacy: set[LegacyForwardedConnection] = set()

    async def start(self) -> None:
        if self.protocol is PortForwardProtocol.SPDY:
            up = await spdy_upgrade(self.endpoint, port_forward_target(self.namespace, self.pod),
                                    self.protocol.offer, self.deadline, self.evidence)
            if up.negotiated != PORT_FORWARD_PROTOCOL:
                up.stream.abort()
                raise ProtocolMismatch(f"server chose {up.negotiated!r}, not {PORT_FORWARD_PROTOCOL}",
                                       phase=Phase.UPGRADE, evidence=self.evidence)
            self.negotiated = up.negotiated
            self.spdy = SpdySession(up.stream, self.deadline, self.evidence)
        elif self.protocol is PortForwardProtocol.WS_TUNNEL:
            ws = await websocket_connect(self.endpoint, port_forward_target(self.namespace, self.pod),
                                         self.protocol.offer, self.deadline, self.evidence,
                                         max_message=TUNNEL_MAX_MESSAGE, max_queue=TUNNEL_MAX_QUEUE)
            self.negotiated = ws.subprotocol or ""
            try:
                if self.negotiated not in self.protocol.offer:
                    raise ProtocolMismatch(f"asked for {self.protocol.offer[0]!r}, the server chose "
                                           f"{self.negotiated!r}", phase=Phase.UPGRADE, evidence=self.evidence)
                tunnelled_protocol(self.negotiated)
            except BaseException:
                await close_websocket(ws, self.deadline)
                raise
            self.spdy = SpdySession(WebSocketTunnel(ws, self.deadline), self.deadline, self.evidence)
        self.evidence.protocol_negotiated = self.negotiated or None

    async def connect(self, port: int) -> ForwardedConnection:
        if self.protocol is PortForwardProtocol.WS_LEGACY:
            return await self._connect_legacy(port)
        assert self.spdy is not None, "start() first"
        request_id = self._request_id
        self._request_id += 1
        # client-go: error stream first, then data, same port and requestid; the client FINs the error stream.
        error = await self.spdy.open_stream(port_forward_headers(PortForwardStreamType.ERROR, port, request_id))
        data = await self.spdy.open_stream(port_forward_headers(PortForwardStreamType.DATA, port, request_id))
        await asyncio.gather(error.wait_reply(), data.wait_reply())
        await error.close_write()
        return SpdyForwardedConnection(port, data, error, self.deadline)

    async def _connect_legacy(self, port: int) -> LegacyForwardedConnection:
        evidence = self.evidence if not self.negotiated else Evidence()
        ws = await websocket_connect(self.endpoint, port_forward_target(self.namespace, self.pod, [port]),
                                     self.protocol.offer, self.deadline, evidence)
        negotiated = ws.subprotocol or ""
        if negotiated not in self.protocol.offer or negotiated not in WEBSOCKET_PORT_FORWARD_SUBPROTOCOLS:
            await close_websocket(ws, self.deadline)
            raise ProtocolMismatch(f"asked for {self.protocol.offer[0]!r}, the server chose {negotiated!r}",
                                   phase=Phase.UPGRADE, evidence=evidence)
        self.negotiated = negotiated
        self.evidence.protocol_negotiated = negotiated
        codec = WebSocketPortForwardCodec([port], subprotocol=negotiated, role=Role.CLIENT)
        conn = LegacyForwardedConnection(port, ws, codec, self.deadline, self.evidence)
        self._legacy.add(conn)
        return conn

    async def aclose(self) -> None:
        for conn in list(self._legacy):
            await conn.aclose()
        self._legacy.clear()
        if self.spdy is not None:
            await self.spdy.aclose()

    async def __aenter__(self) -> PortForwardSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


async def open_port_forward(endpoint: Endpoint, namespace: str, pod: str, *, protocol: str = "spdy",
                            timeouts: Timeouts | None = None, deadline: Deadline | None = None) -> PortForwardSession:
    """Upgrade (spdy, ws-tunnel) or prepare (ws-legacy: one WebSocket per connect) a session."""
    proto = port_forward_protocol(str(protocol))
    deadline = deadline or Deadline(timeouts or Timeouts())
    evidence = Evidence(protocol_requested=",".join(proto.offer))
    session = PortForwardSession(endpoint, namespace, pod, proto, deadline, evidence)
    await session.start()
    return session
