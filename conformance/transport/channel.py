"""``ByteChannel``: the byte stream a SPDY session runs on, and its WebSocket-tunnel implementation.

A SPDY session needs only ``read()`` (``b""`` at EOF), ``write(data)``, ``aclose()`` and a few
counters. ``ByteStream`` (an upgraded TCP/TLS connection) provides them directly;
``WebSocketTunnel`` provides them over a KEP-4006 WebSocket, where SPDY bytes ride in binary
messages whose boundaries mean nothing (PROTOCOLS.md 5.5) and a close with code 1000 is EOF.
"""

from __future__ import annotations

from typing import Protocol

import websockets.exceptions as ws_exc
from websockets.asyncio.client import ClientConnection

from conformance.transport.errors import MAX_BYTES_SO_FAR
from conformance.transport.timeouts import Deadline, Phase
from conformance.wire import limits
from conformance.wire.portforward import unwrap_tunnel_message, wrap_tunnel_bytes


class ByteChannel(Protocol):
    bytes_read: int
    bytes_written: int
    head: bytearray

    async def read(self, n: int = ..., *, phase: Phase = ..., budget: float | None = ...) -> bytes: ...

    async def write(self, data: bytes, *, phase: Phase = ...) -> None: ...

    async def aclose(self) -> None: ...


class WebSocketTunnel:
    """SPDY bytes over a WebSocket (binary messages in, binary messages out)."""

    def __init__(self, ws: ClientConnection, deadline: Deadline) -> None:
        self.ws = ws
        self.deadline = deadline
        self.bytes_read = 0
        self.bytes_written = 0
        self.head = bytearray()
        self._eof = False

    async def read(self, n: int = 0, *, phase: Phase = Phase.STREAM, budget: float | None = None) -> bytes:
        """The next message's bytes (``n`` is ignored: messages are small); ``b""`` after close 1000."""
        while not self._eof:
            try:
                async with self.deadline.phase(phase, budget):
                    message = await self.ws.recv()
            except ws_exc.ConnectionClosedOK:
                self._eof = True
                break
            data = unwrap_tunnel_message(message)
            if not data:
                continue  # an empty message carries no bytes; EOF is the close frame
            self.bytes_read += len(data)
            if len(self.head) < MAX_BYTES_SO_FAR:
                self.head += data[: MAX_BYTES_SO_FAR - len(self.head)]
            return data
        return b""

    async def write(self, data: bytes, *, phase: Phase = Phase.STREAM) -> None:
        async with self.deadline.phase(phase):
            for message in wrap_tunnel_bytes(data, max_message=limits.MAX_TUNNEL_MESSAGE):
                await self.ws.send(message)
        self.bytes_written += len(data)

    async def aclose(self) -> None:
        from conformance.transport.websocket import close_websocket

        await close_websocket(self.ws, self.deadline)
