"""An in-process TLS test server built on the project's own codecs, with fault modes.

It speaks what the clients speak: the SPDY/3.1 upgrade (h11) then exec or port-forward over a
``SpdyConnection(Role.SERVER)``, and WebSocket (websockets' sans-IO ``ServerProtocol``) with the
``channel.k8s.io`` family or legacy port-forward. It runs on its own event loop in a thread so the
client's loop can be checked for leftover tasks, and counts its open connections so tests can wait
for it before counting file descriptors.

Commands (the ``command`` query): ``echo WORDS...``, ``exit N``, ``cat`` (echo stdin until EOF).
Faults (``FakeServer.fault``) apply after the upgrade unless noted: ``stall``, ``reset`` (some output,
then a TCP RST), ``garbage``, ``huge-frame``, ``unknown-stream``, ``no-exit-status``, ``refuse``
(answers the upgrade itself with ``refuse_status``/``refuse_headers``/``refuse_body``), and on exec stdout
and port-forward echoes ``truncate-after`` (``after`` good bytes, then a clean end: FIN, or exit Success
and a close) and ``corrupt-after`` (one byte flipped at offset ``after``); ``swallow-eof``: the client's end
of stdin never reaches ``cat``, which never exits. ``pattern N`` writes N bytes.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
import struct
import threading
import traceback
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import h11
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

from conformance.wire.channels import ChannelCodec, ChannelData
from conformance.wire.portforward import WebSocketPortForwardCodec
from conformance.wire.remotecommand import encode_status_exit_code, encode_status_success
from conformance.wire.role import Role
from conformance.wire.spdy_connection import ConnectionClosed, SpdyConnection, StreamError
from conformance.wire.spdy_frames import Data, Ping, RstStream, SynStream
from conformance.wire.spdy_headers import header_value

WS_SUBPROTOCOLS = ["v5.channel.k8s.io", "v4.channel.k8s.io", "channel.k8s.io", "base64.channel.k8s.io",
                   "v4.base64.channel.k8s.io"]
SPDY_PROTOCOLS = ["v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io"]


@dataclass
class Fault:
    mode: str = "ok"
    refuse_status: int = 403
    refuse_reason: str = "Forbidden"
    refuse_headers: list[tuple[str, str]] = field(default_factory=list)
    refuse_body: bytes = b""
    after: int = 0  # truncate-after / corrupt-after: how many good bytes of each stream pass first


class _Mangler:
    """One stream's bytes through the truncate-after / corrupt-after faults: N good bytes, then a clean end
    (truncate) or one flipped byte (corrupt)."""

    def __init__(self, fault: Fault) -> None:
        self.fault = fault
        self.passed = 0
        self.ended = False

    def __call__(self, data: bytes) -> bytes:
        mode, after = self.fault.mode, self.fault.after
        start, self.passed = self.passed, self.passed + len(data)
        if mode == "truncate-after":
            keep = max(0, after - start)
            self.ended = self.ended or len(data) >= keep
            return data[:keep]
        if mode == "corrupt-after" and start <= after < start + len(data):
            i = after - start
            return data[:i] + bytes([data[i] ^ 0x5A]) + data[i + 1 :]
        return data


class FakeServer:
    def __init__(self, cert: Path, key: Path) -> None:
        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ctx.load_cert_chain(cert, key)
        self.fault = Fault()
        self.connections = 0
        self.requests: list[str] = []
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._server: asyncio.AbstractServer | None = None
        self.port = 0

    def start(self) -> FakeServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.ctx)
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        async def stop() -> None:
            assert self._server is not None
            self._server.close()
            for task in [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]:
                task.cancel()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """True once every connection the server accepted has been closed on its side."""
        import time

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.connections == 0:
                return True
            time.sleep(0.02)
        return False

    # --- per connection ---------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.requests.append(head.decode("latin-1"))
            if self.fault.mode == "refuse":
                await self._refuse(writer)
            elif b"upgrade: websocket" in head.lower():
                await self._websocket(head, reader, writer)
            else:
                await self._spdy(head, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, OSError, asyncio.CancelledError):
            pass
        except Exception:  # a bug in the fake server: show it in the test output
            traceback.print_exc()
            raise
        finally:
            if not writer.transport.is_closing():
                writer.transport.abort()
            try:  # count the connection as gone only once its socket is really closed
                await asyncio.wait_for(writer.wait_closed(), 1.0)
            except BaseException:  # noqa: S110 - closing a test server connection: nothing to report
                pass
            self.connections -= 1

    async def _refuse(self, writer: asyncio.StreamWriter) -> None:
        f = self.fault
        lines = [f"HTTP/1.1 {f.refuse_status} {f.refuse_reason}", f"Content-Length: {len(f.refuse_body)}",
                 *[f"{k}: {v}" for k, v in f.refuse_headers]]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + f.refuse_body)
        await writer.drain()
        writer.close()

    async def _after_upgrade_fault(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                                   partial: bytes) -> bool:
        """Faults that ignore the protocol entirely. True if one was applied."""
        mode = self.fault.mode
        if mode == "stall":
            while await reader.read(65536):
                pass
            return True
        if mode == "reset" and partial:
            writer.write(partial)
            await writer.drain()
            await asyncio.sleep(0.05)
            _rst(writer)
            return True
        if mode == "garbage":
            writer.write(partial + b"\xff\xfe garbage that is no frame at all \x00" * 4)
            await writer.drain()
            while await reader.read(65536):
                pass
            return True
        return False

    # --- SPDY -------------------------------------------------------------------------------------

    async def _spdy(self, head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER)
        conn.receive_data(head)
        request = conn.next_event()
        assert isinstance(request, h11.Request)
        offered = [v.decode() for k, v in request.headers if k == b"x-stream-protocol-version"]
        target = urllib.parse.urlsplit(request.target.decode())
        port_forward = target.path.endswith("/portforward")
        supported = ["portforward.k8s.io"] if port_forward else SPDY_PROTOCOLS
        chosen = next((p for p in offered if p in supported), None)
        if chosen is None:
            accepted = "".join(f"X-Accepted-Stream-Protocol-Versions: {p}\r\n" for p in supported)
            body = b"unable to upgrade: no common protocol"
            writer.write(f"HTTP/1.1 403 Forbidden\r\n{accepted}Content-Length: {len(body)}\r\n\r\n".encode() + body)
            await writer.drain()
            return
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
                     + f"X-Stream-Protocol-Version: {chosen}\r\n\r\n".encode())
        await writer.drain()
        spdy = SpdyConnection(Role.SERVER)
        if port_forward:
            await self._spdy_port_forward(spdy, reader, writer)
        else:
            query = urllib.parse.parse_qs(target.query)
            await self._spdy_exec(spdy, query, reader, writer)

    async def _spdy_exec(self, spdy: SpdyConnection, query: dict[str, list[str]], reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        wanted = {"error"} | {name for name in ("stdin", "stdout", "stderr") if query.get(name) == ["true"]}
        streams: dict[str, int] = {}
        stdin = bytearray()
        stdin_done = "stdin" not in wanted
        while True:
            data = await reader.read(65536)
            spdy.receive_data(data)
            for event in spdy.events():
                if isinstance(event, SynStream):
                    streams[header_value(event.headers, "streamtype") or ""] = event.stream_id
                    writer.write(spdy.send(event.response()))
                elif isinstance(event, Ping | StreamError):
                    writer.write(spdy.send(event.response()))
                elif isinstance(event, Data) and event.stream_id == streams.get("stdin"):
                    stdin += event.data
                    stdin_done = stdin_done or (event.fin and self.fault.mode != "swallow-eof")
                elif isinstance(event, RstStream) and event.stream_id == streams.get("stdin"):
                    stdin_done = True
                elif isinstance(event, ConnectionClosed):
                    return
            if not data:
                return
            if wanted <= streams.keys() and (stdin_done or _command(query)[:1] != ["cat"]):
                break
        await writer.drain()
        out, code = _run(_command(query), bytes(stdin))
        out_id, err_id = streams["stdout"], streams["error"]
        mode = self.fault.mode
        if await self._after_upgrade_fault(reader, writer, spdy.send_data(out_id, out[:100] or b"partial")):
            return
        if mode == "huge-frame":
            writer.write(struct.pack(">II", out_id, 0xFFFFFF))  # announces 16 MiB, beyond our 1 MiB limit
        elif mode == "unknown-stream":
            writer.write(struct.pack(">II", 99, 5) + b"hello")  # an odd id the client never opened
        else:
            writer.write(spdy.send_data(out_id, _Mangler(self.fault)(out), fin=True))
            if mode != "no-exit-status":
                status = encode_status_success() if code == 0 else encode_status_exit_code(code, f"exit status {code}")
                writer.write(spdy.send_data(err_id, status))
            writer.write(spdy.send_fin(err_id))
            for sid in spdy.open_stream_ids:
                writer.write(spdy.send_rst(sid))
            writer.write(spdy.send_goaway())
        await writer.drain()
        while await reader.read(65536):  # until the client hangs up
            pass

    async def _spdy_port_forward(self, spdy: SpdyConnection, reader: asyncio.StreamReader,
                                 writer: asyncio.StreamWriter) -> None:
        data_streams: dict[int, _Mangler] = {}
        while data := await reader.read(65536):
            spdy.receive_data(data)
            for event in spdy.events():
                if isinstance(event, SynStream):
                    writer.write(spdy.send(event.response()))
                    if header_value(event.headers, "streamtype") == "data":
                        data_streams[event.stream_id] = _Mangler(self.fault)
                        if self.fault.mode == "unknown-stream":
                            writer.write(struct.pack(">II", 97, 1) + b"x")
                elif isinstance(event, Ping | StreamError):
                    writer.write(spdy.send(event.response()))
                elif isinstance(event, Data) and event.stream_id in data_streams:
                    if self.fault.mode == "stall":
                        continue
                    mangle = data_streams[event.stream_id]
                    if mangle.ended:
                        continue
                    if event.data:
                        echoed = mangle(event.data)
                        if echoed:
                            writer.write(spdy.send_data(event.stream_id, echoed))
                        if mangle.ended:
                            writer.write(spdy.send_fin(event.stream_id))
                            continue
                    if event.fin:
                        writer.write(spdy.send_fin(event.stream_id))
            await writer.drain()
        spdy.receive_data(b"")
        list(spdy.events())

    # --- WebSocket --------------------------------------------------------------------------------

    async def _websocket(self, head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        target = urllib.parse.urlsplit(head.split(b" ", 2)[1].decode())
        port_forward = target.path.endswith("/portforward")

        def select(_: ServerProtocol, offered: list[Subprotocol]) -> Subprotocol | None:
            supported = ["v4.channel.k8s.io"] if port_forward else WS_SUBPROTOCOLS
            return next((Subprotocol(p) for p in offered if p in supported), None)

        ws = ServerProtocol(select_subprotocol=select, max_size=None)
        ws.receive_data(head)
        request = ws.events_received()[0]
        assert isinstance(request, Request)
        response = ws.accept(request)
        ws.send_response(response)
        writer.write(b"".join(ws.data_to_send()))
        await writer.drain()
        if response.status_code != 101:
            return
        subprotocol = response.headers.get("Sec-WebSocket-Protocol", "")
        query = urllib.parse.parse_qs(target.query)
        if port_forward:
            await self._ws_port_forward(ws, subprotocol, [int(p) for p in query["ports"]], reader, writer)
        else:
            await self._ws_exec(ws, subprotocol, query, reader, writer)

    async def _ws_exec(self, ws: ServerProtocol, subprotocol: str, query: dict[str, list[str]],
                       reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        codec = ChannelCodec(subprotocol, role=Role.SERVER)
        command = _command(query)
        stdin = bytearray()
        if command[:1] == ["cat"]:
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                ws.receive_data(data)
                done = False
                for frame in ws.events_received():
                    if frame.opcode in (Opcode.BINARY, Opcode.TEXT):
                        event = codec.decode(frame.data if frame.opcode is Opcode.BINARY else frame.data.decode())
                        if isinstance(event, ChannelData) and event.channel == 0:
                            stdin += event.data
                        elif event is not None and not isinstance(event, ChannelData):
                            done = self.fault.mode != "swallow-eof"  # v5 CLOSE for stdin
                if done:
                    break
        out, code = _run(command, bytes(stdin))

        def send(channel: int, payload: bytes) -> bytes:
            message = codec.encode(channel, payload)
            if isinstance(message, str):
                ws.send_text(message.encode())
            else:
                ws.send_binary(message)
            return b"".join(ws.data_to_send())

        mode = self.fault.mode
        if await self._after_upgrade_fault(reader, writer, send(1, out[:100] or b"partial")):
            return
        if mode == "huge-frame":
            writer.write(b"\x82\x7f" + struct.pack(">Q", 1 << 40))  # a 1 TiB binary frame header
        elif mode == "unknown-stream":
            writer.write(send(9, b"nobody listens on channel 9") + send(1, out))
            writer.write(send(3, encode_status_success()))
        else:
            writer.write(send(1, _Mangler(self.fault)(out)))
            if mode != "no-exit-status" and codec.subprotocol.startswith(("v4", "v5")):
                status = encode_status_success() if code == 0 else encode_status_exit_code(code, f"exit status {code}")
                writer.write(send(3, status))
            elif mode != "no-exit-status" and code:
                writer.write(send(3, f"command terminated with non-zero exit code: exit status {code}".encode()))
        if mode != "huge-frame":
            ws.send_close(1000)
            writer.write(b"".join(ws.data_to_send()))
        await writer.drain()
        # RFC 6455 7.1.1: the server closes TCP once the close handshake is done (as Go servers do).
        while data := await reader.read(65536):
            ws.receive_data(data)
            ws.events_received()
            if ws.close_rcvd is not None:
                writer.close()
                return

    async def _ws_port_forward(self, ws: ServerProtocol, subprotocol: str, ports: list[int],
                               reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        codec = WebSocketPortForwardCodec(ports, subprotocol=subprotocol, role=Role.SERVER)
        for message in codec.initial_messages():
            assert isinstance(message, bytes)
            ws.send_binary(message)
        writer.write(b"".join(ws.data_to_send()))
        manglers: dict[int, _Mangler] = {}
        while data := await reader.read(65536):
            ws.receive_data(data)
            for frame in ws.events_received():
                if isinstance(frame, Frame) and frame.opcode is Opcode.BINARY:
                    event = codec.decode(bytes(frame.data))
                    if event is not None and event.data and self.fault.mode != "stall":
                        mangle = manglers.setdefault(event.port_index, _Mangler(self.fault))
                        if mangle.ended:
                            continue
                        echoed = mangle(event.data)
                        if echoed:
                            message = codec.encode_data(event.port_index, echoed)
                            assert isinstance(message, bytes)
                            ws.send_binary(message)
                        if mangle.ended and ws.close_sent is None:  # a clean end: close the session
                            ws.send_close(1000)
            writer.write(b"".join(ws.data_to_send()))
            await writer.drain()
            if ws.close_sent is not None and ws.close_rcvd is not None:
                writer.close()  # the close handshake is done: the server ends TCP (RFC 6455 7.1.1)
                return


def _command(query: dict[str, list[str]]) -> list[str]:
    """The command, with the probes' `sh -c "cat # marker"` read as `cat`."""
    command = query.get("command", [])
    if command[:2] == ["sh", "-c"] and len(command) > 2 and command[2].split("#")[0].strip() == "cat":
        return ["cat"]
    return command


def _run(command: list[str], stdin: bytes) -> tuple[bytes, int]:
    if command[:1] == ["echo"]:
        return (" ".join(command[1:]) + "\n").encode(), 0
    if command[:1] == ["exit"]:
        return b"", int(command[1])
    if command[:1] == ["cat"]:
        return stdin, 0
    if command[:1] == ["pattern"]:
        return bytes(i % 251 for i in range(int(command[1]))), 0
    return b"", 127


def _rst(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST (SO_LINGER 0) instead of a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
