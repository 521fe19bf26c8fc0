"""An asyncio SPDY/3 client session over a ``ByteChannel``, driving the sans-IO ``SpdyConnection``.

One reader task feeds received bytes to the codec and routes its events: SYN_REPLY completes a
stream's opening, DATA goes to that stream's bounded inbox, RST_STREAM and FIN end a stream, PINGs
are echoed, GOAWAY stops new streams, and the end of the byte stream ends every stream. When a
stream's inbox is full the reader stops reading, so TCP pushes back on the peer instead of us
buffering without bound (Go's spdystream does the same with its per-worker queues).

Writes go through one lock, because encoding (the shared zlib header context) and writing must happen
in the same order. The reader never takes that lock itself: PING echoes and RSTs are queued for a
small control-writer task, so a writer blocked on a full socket cannot stop us from reading.

A peer protocol violation (garbage, an oversized frame, a frame for a stream we never opened) fails
the whole session with ``PeerProtocolError``; we answer GOAWAY(PROTOCOL_ERROR) as spdystream would.
``aclose()`` resets open streams, sends GOAWAY, closes the channel, and leaves no task behind.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable

from conformance.model import Evidence
from conformance.transport.channel import ByteChannel
from conformance.transport.errors import ConnectionReset, PeerProtocolError, StreamingError, map_exception
from conformance.transport.timeouts import Deadline, Phase
from conformance.wire.errors import LocalProtocolError
from conformance.wire.role import Role
from conformance.wire.spdy_connection import ConnectionClosed, PingAcknowledged, SpdyConnection, StreamError
from conformance.wire.spdy_frames import Data, GoAway, GoAwayStatus, Ping, RstStatus, RstStream, SynReply, SynStream
from conformance.wire.spdy_headers import HeadersLike

# Per-stream receive buffer before the reader stops reading (plus at most one frame past it).
MAX_STREAM_BUFFER = 512 * 1024
# Control frames (PING echoes, RSTs) waiting for the writer. A peer that outruns this is flooding us.
MAX_PENDING_CONTROL = 256
RECEIVE_CHUNK = 256 * 1024


class SpdyStream:
    """One stream we opened. Reads return ``b""`` at FIN, RST or the end of the connection."""

    def __init__(self, session: SpdySession, stream_id: int, headers: HeadersLike) -> None:
        self.session = session
        self.id = stream_id
        self.headers = headers
        self.bytes_received = 0
        self.bytes_sent = 0
        self.fin_received = False
        self.reset_status: int | None = None  # RST_STREAM status the peer sent
        self.ended_with_connection = False  # EOF came from the connection closing, not FIN/RST
        self._reply: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._inbox: deque[bytes] = deque()
        self._buffered = 0
        self._eof = False
        self._readable = asyncio.Event()
        self._space = asyncio.Event()
        self._space.set()

    # --- called by the session -------------------------------------------------------------------

    def _feed(self, data: bytes) -> None:
        if data:
            self._inbox.append(data)
            self._buffered += len(data)
            self.bytes_received += len(data)
            if self._buffered >= self.session.max_stream_buffer:
                self._space.clear()
        self._readable.set()

    def _feed_eof(self) -> None:
        self._eof = True
        self._readable.set()
        self._space.set()
        if not self._reply.done():
            self._reply.set_exception(ConnectionReset(
                f"stream {self.id} refused or cut before its SYN_REPLY"
                + (f" (RST_STREAM status {self.reset_status})" if self.reset_status else "")))
            self._reply.exception()  # retrieved: no "never retrieved" warning when nobody waits

    # --- application API -------------------------------------------------------------------------

    async def wait_reply(self) -> None:
        """Wait for the SYN_REPLY (client-go waits 30 s; we wait the read budget)."""
        if self.session.failure is not None:
            raise self.session.failure
        async with self.session.deadline.phase(Phase.STREAM):
            await asyncio.shield(self._reply)

    async def read(self, n: int = 1 << 20) -> bytes:
        """Up to ``n`` bytes; ``b""`` at end of stream. Raises the session's failure, or timeout when idle."""
        while not self._inbox:
            if self.session.failure is not None:
                raise self.session.failure
            if self._eof:
                return b""
            self._readable.clear()
            async with self.session.deadline.phase(Phase.STREAM):
                await self._readable.wait()
        chunk = self._inbox.popleft()
        if len(chunk) > n:
            self._inbox.appendleft(chunk[n:])
            chunk = chunk[:n]
        self._buffered -= len(chunk)
        if self._buffered < self.session.max_stream_buffer:
            self._space.set()
        return chunk

    async def write(self, data: bytes) -> None:
        if self.reset_status is not None:
            raise ConnectionReset(f"stream {self.id} was reset by the peer (status {self.reset_status})")
        await self.session.send(lambda conn: conn.send_data(self.id, data))
        self.bytes_sent += len(data)

    async def close_write(self) -> None:
        """Half-close (empty DATA with FIN), as Go's ``Stream.Close()``."""
        if self.reset_status is None and not self._eof_by_reset():
            await self.session.send(lambda conn: conn.send_fin(self.id))

    async def reset(self) -> None:
        """RST_STREAM(CANCEL), as Go's ``Stream.Reset()``; a no-op on a stream already closed."""
        self._space.set()
        # Unread data is dropped with the stream: a long session must not keep every closed stream's bytes.
        self._inbox.clear()
        self._buffered = 0
        self.session.streams.pop(self.id, None)
        if self.id in self.session.conn.open_stream_ids:
            await self.session.send(lambda conn: conn.send_rst(self.id))

    def _eof_by_reset(self) -> bool:
        return self.id not in self.session.conn.open_stream_ids


class SpdySession:
    def __init__(self, channel: ByteChannel, deadline: Deadline, evidence: Evidence, *,
                 max_stream_buffer: int = MAX_STREAM_BUFFER) -> None:
        self.channel = channel
        self.deadline = deadline
        self.evidence = evidence
        self.max_stream_buffer = max_stream_buffer
        self.conn = SpdyConnection(Role.CLIENT)
        self.streams: dict[int, SpdyStream] = {}
        self.failure: StreamingError | None = None
        self.goaway: GoAway | None = None
        self.pings_answered = 0
        self.unfinished_at_close: tuple[int, ...] = ()
        self._lock = asyncio.Lock()
        self._control: deque[Ping | RstStream | GoAway] = deque()
        self._control_ready = asyncio.Event()
        self._closed = False
        self._failed = asyncio.Event()
        self._reader = asyncio.create_task(self._read_loop(), name="spdy-reader")
        self._writer = asyncio.create_task(self._control_loop(), name="spdy-control-writer")

    # --- opening and sending ---------------------------------------------------------------------

    async def open_stream(self, headers: HeadersLike) -> SpdyStream:
        """Send SYN_STREAM; call ``wait_reply()`` on the result (several may be pipelined)."""
        holder: list[SpdyStream] = []

        def syn(conn: SpdyConnection) -> bytes:
            stream = SpdyStream(self, conn.next_stream_id, headers)
            data = conn.send_syn_stream(stream.id, headers)
            self.streams[stream.id] = stream
            holder.append(stream)
            return data

        await self.send(syn)
        return holder[0]

    async def send(self, encode: Callable[[SpdyConnection], bytes]) -> None:
        """Encode and write under the write lock, so frames leave in the order they were encoded."""
        if self.failure is not None:
            raise self.failure
        if self._closed:
            raise ConnectionReset("the SPDY session is closed", phase=Phase.STREAM, evidence=self.evidence)
        async with self._lock:
            try:
                data = encode(self.conn)
            except LocalProtocolError as exc:
                if self.goaway is not None or self.conn.goaway_received is not None:
                    raise ConnectionReset(f"the server sent GOAWAY: {exc.message}", phase=Phase.STREAM,
                                          evidence=self.evidence) from exc
                raise ConnectionReset(f"cannot send: {exc.message}", phase=Phase.STREAM,
                                      evidence=self.evidence) from exc
            try:
                await self.channel.write(data)
            except Exception as exc:
                err = map_exception(exc, phase=Phase.STREAM, evidence=self.evidence,
                                    bytes_so_far=bytes(self.channel.head))
                self._fail(err)
                raise err from exc

    # --- receiving -------------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        try:
            while True:
                # No idle limit here: operations wait on streams with the read budget and close us.
                data = await self.channel.read(RECEIVE_CHUNK, budget=self.deadline.remaining() + 1.0)
                self.conn.receive_data(data)
                for event in self.conn.events():
                    await self._dispatch(event)
                if not data:
                    return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            err = map_exception(exc, phase=Phase.STREAM, evidence=self.evidence, bytes_so_far=bytes(self.channel.head))
            if isinstance(err, PeerProtocolError):
                with contextlib.suppress(PeerProtocolError):
                    self._queue_control(GoAway(status=GoAwayStatus.PROTOCOL_ERROR))
            self._fail(err)

    async def _dispatch(self, event: object) -> None:
        match event:
            case Data(stream_id=sid, data=data, fin=fin):
                stream = self.streams.get(sid)
                if stream is None:
                    return
                stream._feed(data)
                if fin:
                    stream.fin_received = True
                    stream._feed_eof()
                if not stream._space.is_set():
                    await stream._space.wait()  # backpressure: stop reading until the app catches up
            case SynReply(stream_id=sid):
                stream = self.streams.get(sid)
                if stream is not None and not stream._reply.done():
                    stream._reply.set_result(None)
            case RstStream(stream_id=sid, status=status):
                stream = self.streams.get(sid)
                if stream is not None:
                    stream.reset_status = status
                    stream._feed_eof()
            case Ping():
                self.pings_answered += 1
                self._queue_control(event.response())
            case GoAway():
                self.goaway = event
                self.evidence.notes.append(f"server sent GOAWAY (status {event.status})")
            case StreamError(stream_id=sid, reason=reason):
                self._queue_control(event.response())
                raise PeerProtocolError(f"stream {sid}: {reason}", phase=Phase.STREAM, evidence=self.evidence,
                                        bytes_so_far=bytes(self.channel.head))
            case SynStream(stream_id=sid):
                # Kubernetes servers never open streams towards the client; refuse like spdystream would.
                self._queue_control(RstStream(stream_id=sid, status=RstStatus.REFUSED_STREAM))
            case ConnectionClosed(unfinished_stream_ids=unfinished):
                self.unfinished_at_close = unfinished
                for sid in unfinished:
                    if (stream := self.streams.get(sid)) is not None:
                        stream.ended_with_connection = True
                for stream in self.streams.values():
                    stream._feed_eof()
            case PingAcknowledged():
                pass
            case _:
                pass  # SETTINGS, WINDOW_UPDATE, HEADERS: reported by the codec, meaningless here

    def _queue_control(self, frame: Ping | RstStream | GoAway) -> None:
        if len(self._control) >= MAX_PENDING_CONTROL:
            raise PeerProtocolError(f"more than {MAX_PENDING_CONTROL} control frames to answer: peer floods us",
                                    phase=Phase.STREAM, evidence=self.evidence)
        self._control.append(frame)
        self._control_ready.set()

    async def _control_loop(self) -> None:
        while True:
            await self._control_ready.wait()
            self._control_ready.clear()
            while self._control:
                frame = self._control.popleft()
                try:
                    async with self._lock:
                        data = self.conn.send(frame)
                        await self.channel.write(data)
                except (LocalProtocolError, StreamingError):
                    continue
                except Exception as exc:
                    self._fail(map_exception(exc, phase=Phase.STREAM, evidence=self.evidence))
                    return

    def _fail(self, err: StreamingError) -> None:
        if self.failure is None:
            self.failure = err
            self._failed.set()
        for stream in self.streams.values():
            stream._readable.set()
            stream._space.set()
            if not stream._reply.done():
                stream._reply.set_exception(err)
                stream._reply.exception()

    # --- closing ---------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Reset open streams, GOAWAY, close the channel; bounded by the close budget. Never raises."""
        if self._closed:
            return
        self._closed = True
        try:
            async with asyncio.timeout(self.deadline.timeouts.close):
                async with self._lock:
                    data = b""
                    with contextlib.suppress(LocalProtocolError):
                        for sid in self.conn.open_stream_ids:
                            if sid % 2 == 1:
                                data += self.conn.send_rst(sid)
                        data += self.conn.send_goaway()
                    if data and self.failure is None:
                        await self.channel.write(data)
        except Exception:  # noqa: S110 - closing: the channel may already be gone; we abort below
            pass
        for task in (self._reader, self._writer):
            task.cancel()
        for task in (self._reader, self._writer):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.channel.aclose()

    async def wait_failed(self) -> StreamingError:
        await self._failed.wait()
        assert self.failure is not None
        return self.failure
