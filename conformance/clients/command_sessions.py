"""The two ways to carry a remote command: SPDY streams, or channels in WebSocket messages.

Both adapters offer the same small surface to ``remotecommand.run_command``: ``send_stdin``,
``close_stdin``, ``send_resize``, ``receive(sinks)`` (returns when the server has finished every
output) and ``aclose``. Nothing here decides what an exit status means.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import websockets.exceptions as ws_exc
from websockets.asyncio.client import ClientConnection

from conformance.clients.command_target import CommandSpec
from conformance.clients.protocols import CommandProtocol
from conformance.model import Evidence
from conformance.transport.endpoint import Endpoint
from conformance.transport.errors import ProtocolMismatch, UnsupportedByProtocol, map_exception
from conformance.transport.spdy_session import SpdySession, SpdyStream
from conformance.transport.timeouts import Deadline, Phase
from conformance.transport.upgrade import spdy_upgrade
from conformance.transport.websocket import close_websocket, receiving, websocket_connect
from conformance.wire.channels import Channel, ChannelCodec, ChannelData
from conformance.wire.remotecommand import STREAM_TYPE_HEADER, RemoteCommandProtocol, StreamType, spdy_stream_types
from conformance.wire.role import Role

Sink = Callable[[bytes], Awaitable[None]]
# Largest stdin piece per write/message (client-go copies through 32 KiB buffers).
STDIN_CHUNK = 32 * 1024


class SpdyCommand:
    def __init__(self, session: SpdySession, streams: dict[StreamType, SpdyStream], negotiated: str) -> None:
        self.session = session
        self.streams = streams
        self.negotiated = negotiated
        self.json_status = RemoteCommandProtocol(negotiated).has_json_status

    @classmethod
    async def open(cls, endpoint: Endpoint, spec: CommandSpec, offer: tuple[str, ...], deadline: Deadline,
                   evidence: Evidence) -> SpdyCommand:
        upgraded = await spdy_upgrade(endpoint, spec.target(), offer, deadline, evidence)
        if upgraded.negotiated not in offer or upgraded.negotiated not in RemoteCommandProtocol._value2member_map_:
            upgraded.stream.abort()
            raise ProtocolMismatch(f"server chose {upgraded.negotiated!r}, which we did not offer",
                                   phase=Phase.UPGRADE, evidence=evidence)
        version = RemoteCommandProtocol(upgraded.negotiated).version
        session = SpdySession(upgraded.stream, deadline, evidence)
        try:
            types = spdy_stream_types(stdin=spec.stdin, stdout=spec.stdout, stderr=spec.stderr, tty=spec.tty,
                                      version=version)
            # Pipelined: every SYN_STREAM first, then the replies (client-go waits for each in turn).
            streams = {t: await session.open_stream({STREAM_TYPE_HEADER: t.value}) for t in types}
            await asyncio.gather(*(s.wait_reply() for s in streams.values()))
        except BaseException:
            await session.aclose()
            raise
        return cls(session, streams, upgraded.negotiated)

    async def send_stdin(self, data: bytes) -> None:
        await self.streams[StreamType.STDIN].write(data)

    async def close_stdin(self) -> None:
        await self.streams[StreamType.STDIN].close_write()

    async def send_resize(self, payload: bytes) -> None:
        if StreamType.RESIZE in self.streams:
            await self.streams[StreamType.RESIZE].write(payload)

    async def receive(self, stdout: Sink, stderr: Sink, error: Sink) -> None:
        sinks = {StreamType.STDOUT: stdout, StreamType.STDERR: stderr, StreamType.ERROR: error}

        async def pump(stream: SpdyStream, sink: Sink) -> None:
            while chunk := await stream.read():
                await sink(chunk)

        await asyncio.gather(*(pump(self.streams[t], sink) for t, sink in sinks.items() if t in self.streams))
        error_stream = self.streams[StreamType.ERROR]
        if error_stream.ended_with_connection or error_stream.reset_status is not None:
            how = "the connection closed" if error_stream.ended_with_connection else "RST_STREAM"
            self.session.evidence.notes.append(f"error stream ended by {how}, not FIN")

    async def aclose(self) -> None:
        await self.session.aclose()


class WebSocketCommand:
    def __init__(self, ws: ClientConnection, codec: ChannelCodec, deadline: Deadline, evidence: Evidence) -> None:
        self.ws = ws
        self.codec = codec
        self.deadline = deadline
        self.evidence = evidence
        self.negotiated = codec.subprotocol
        self.json_status = RemoteCommandProtocol(codec.subprotocol).has_json_status

    @classmethod
    async def open(cls, endpoint: Endpoint, spec: CommandSpec, protocol: CommandProtocol, deadline: Deadline,
                   evidence: Evidence) -> WebSocketCommand:
        ws = await websocket_connect(endpoint, spec.target(), [protocol.subprotocol], deadline, evidence)
        negotiated = ws.subprotocol or ""
        if negotiated != protocol.subprotocol:
            await close_websocket(ws, deadline)
            raise ProtocolMismatch(f"asked for {protocol.subprotocol!r}, the server chose {negotiated!r}",
                                   phase=Phase.UPGRADE, evidence=evidence)
        return cls(ws, ChannelCodec(negotiated, role=Role.CLIENT), deadline, evidence)

    async def _send(self, message: bytes | str) -> None:
        async with self.deadline.phase(Phase.STREAM):
            await self.ws.send(message)

    async def send_stdin(self, data: bytes) -> None:
        await self._send(self.codec.encode(Channel.STDIN, data))

    async def close_stdin(self) -> None:
        if not self.codec.has_close_signal:
            raise UnsupportedByProtocol(f"{self.negotiated} has no way to close stdin (only v5 has CLOSE)")
        await self._send(self.codec.encode_close(Channel.STDIN))

    async def send_resize(self, payload: bytes) -> None:
        await self._send(self.codec.encode(Channel.RESIZE, payload))

    async def receive(self, stdout: Sink, stderr: Sink, error: Sink) -> None:
        sinks = {Channel.STDOUT: stdout, Channel.STDERR: stderr, Channel.ERROR: error}
        while True:
            try:
                async with receiving(self.ws, self.deadline, self.evidence):
                    message = await self.ws.recv()
            except ws_exc.ConnectionClosedOK:
                return  # close 1000: the clean end of the session
            except ws_exc.ConnectionClosedError as exc:
                raise map_exception(exc, phase=Phase.STREAM, evidence=self.evidence) from exc
            event = self.codec.decode(message)
            if isinstance(event, ChannelData) and event.data:
                sink = sinks.get(Channel(event.channel)) if event.channel in Channel._value2member_map_ else None
                if sink is None:
                    self.evidence.notes.append(f"ignored data on channel {event.channel}")
                    continue
                await sink(event.data)

    async def aclose(self) -> None:
        await close_websocket(self.ws, self.deadline)


CommandSession = SpdyCommand | WebSocketCommand
