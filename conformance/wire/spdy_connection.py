"""A sans-IO SPDY/3 session (client or server role), as Kubernetes' Go peers speak it.

Bytes in: ``receive_data(chunk)`` (``b""`` means the peer closed the byte stream), then drain
``next_event()`` / ``events()``. Bytes out: every ``send*`` method returns the bytes to write and
changes state only if it succeeds. A ``LocalProtocolError`` leaves the connection untouched.

Received events are the frame classes of ``spdy_frames`` plus three connection-level ones:
``PingAcknowledged`` (the echo of one of our PINGs), ``StreamError`` (the peer broke one stream's rules;
the stream is now closed and ``send(event.response())`` resets it, as spdystream does) and
``ConnectionClosed``. A ``RemoteProtocolError`` from ``next_event()`` is fatal: the connection is in
ERROR, later calls re-raise it, and only ``send_goaway()`` still works (send its ``goaway_status``).

What the Go peer expects, and therefore what we do (PROTOCOLS.md 1.5):
* No flow control. Go never sends WINDOW_UPDATE and keeps no send window, so a window-respecting
  sender would stall forever. WINDOW_UPDATE and SETTINGS are reported and otherwise ignored; we do
  not enforce the 64 KiB initial window in either direction.
* SYN_REPLY before data: we refuse to send DATA on our stream before its SYN_REPLY (Go drops it) and
  on the peer's stream before we replied; receiving DATA before the peer's SYN_REPLY is a StreamError.
* We never send HEADERS frames (Go blocks a worker on them) nor unidirectional streams.
* After our GOAWAY we send only PING echoes and RST_STREAM (Go stops reading at GOAWAY), so put data
  and FINs first.
* Frames for streams we reset, or that were forgotten, are ignored and counted (frames in flight are
  legal after a RST); frames for a stream that ended cleanly are a StreamError(STREAM_ALREADY_CLOSED).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from conformance.wire import limits as wire_limits
from conformance.wire.errors import LocalProtocolError, RemoteProtocolError
from conformance.wire.role import Role
from conformance.wire.spdy_codec import FrameReader, FrameWriter
from conformance.wire.spdy_frames import (
    Data,
    Frame,
    GoAway,
    GoAwayStatus,
    Headers,
    Ping,
    RstStatus,
    RstStream,
    Settings,
    SynReply,
    SynStream,
    WindowUpdate,
)
from conformance.wire.spdy_headers import HeadersLike, normalize_headers
from conformance.wire.spdy_state import StreamInput, StreamState, StreamTransitionError, next_state


@dataclass(frozen=True, slots=True, kw_only=True)
class PingAcknowledged:
    """The peer echoed one of our PINGs."""

    ping_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamError:
    """The peer violated one stream's rules. The stream is closed; reset it with ``response()``."""

    stream_id: int
    status: RstStatus
    reason: str

    def response(self) -> RstStream:
        return RstStream(stream_id=self.stream_id, status=self.status)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionClosed:
    """The peer closed the byte stream on a frame boundary.

    ``unfinished_stream_ids`` lists streams the peer never FINed or reset: every read on them is now
    EOF, but the missing FIN is evidence (e.g. an error stream that never carried its Status).
    """

    unfinished_stream_ids: tuple[int, ...] = ()


Event = Frame | PingAcknowledged | StreamError | ConnectionClosed

_TO_STATE_ON_CREATE = {False: StreamState.AWAITING_REPLY, True: StreamState.AWAITING_REPLY_LOCAL_CLOSED}


class SpdyConnection:
    """One SPDY/3 session. Not thread-safe; one owner drives both directions."""

    def __init__(self, role: Role, *, limits: wire_limits.SpdyLimits | None = None) -> None:
        self.role = role
        self.limits = limits or wire_limits.SpdyLimits()
        self._reader = FrameReader(limits=self.limits)
        self._writer = FrameWriter(limits=self.limits)
        self._parity = 1 if role is Role.CLIENT else 0
        self._next_stream_id = 1 if role is Role.CLIENT else 2
        self._next_ping_id = self._next_stream_id
        self._highest_remote_stream_id = 0
        self._streams: dict[int, StreamState] = {}
        # Recently closed ids -> True if reset (frames still in flight are expected and ignored).
        self._closed: dict[int, bool] = {}
        self._outstanding_pings: set[int] = set()
        self._eof = False
        self._closed_event_sent = False
        self._error: RemoteProtocolError | None = None
        self.goaway_sent: GoAway | None = None
        self.goaway_received: GoAway | None = None
        self.ignored_frames = 0  # evidence: frames dropped as in-flight leftovers

    # --- introspection ---------------------------------------------------------------------------

    @property
    def next_stream_id(self) -> int:
        """The id to pass to ``send_syn_stream`` for the next stream we open."""
        return self._next_stream_id

    @property
    def next_ping_id(self) -> int:
        """The id to pass to ``send_ping`` for our next PING (odd for clients, even for servers)."""
        return self._next_ping_id

    def stream_state(self, stream_id: int) -> StreamState | None:
        """Current state, CLOSED for a remembered closed stream, None for unknown ids."""
        if stream_id in self._streams:
            return self._streams[stream_id]
        return StreamState.CLOSED if stream_id in self._closed else None

    @property
    def open_stream_ids(self) -> tuple[int, ...]:
        return tuple(self._streams)

    # --- receiving -------------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the peer; ``b""`` means it closed the byte stream."""
        if self._error is not None:
            raise self._error
        if self._eof:
            raise LocalProtocolError("receive_data() after end of stream")
        if not data:
            self._eof = True
            return
        self._reader.receive_data(data)

    def events(self) -> Iterator[Event]:
        """Every event available now."""
        while (event := self.next_event()) is not None:
            yield event

    def next_event(self) -> Event | None:
        """The next event, or None when more bytes are needed."""
        if self._error is not None:
            raise self._error
        try:
            while True:
                frame = self._reader.next_frame()
                if frame is None:
                    return self._at_end_of_buffer()
                event = self._handle(frame)
                if event is not None:
                    return event
                self.ignored_frames += 1
        except RemoteProtocolError as exc:
            self._error = exc
            raise

    def _at_end_of_buffer(self) -> Event | None:
        if not self._eof or self._closed_event_sent:
            return None
        if self._reader.buffered:
            raise RemoteProtocolError(f"connection closed inside a frame ({self._reader.buffered} bytes)")
        self._closed_event_sent = True
        remote_open = (StreamState.HALF_CLOSED_REMOTE, StreamState.REPLY_DUE_REMOTE_CLOSED)
        unfinished = tuple(sid for sid, state in self._streams.items() if state not in remote_open)
        return ConnectionClosed(unfinished_stream_ids=unfinished)

    def _handle(self, frame: Frame) -> Event | None:
        match frame:
            case SynStream():
                return self._on_syn_stream(frame)
            case SynReply():
                return self._on_stream_frame(frame, StreamInput.RECV_REPLY)
            case Data() | Headers():
                return self._on_stream_frame(frame, StreamInput.RECV_DATA)
            case RstStream():
                return self._on_rst(frame)
            case Ping():
                return self._on_ping(frame)
            case GoAway():
                if self.goaway_received is not None:
                    return None  # like spdystream: only the first GOAWAY counts
                self.goaway_received = frame
                return frame
            case Settings() | WindowUpdate():
                return frame  # reported, never enforced (module docstring)
        raise AssertionError(f"unhandled frame {frame!r}")  # pragma: no cover - Frame is closed

    def _on_syn_stream(self, frame: SynStream) -> Event | None:
        sid = frame.stream_id
        if self.goaway_received is not None:
            raise RemoteProtocolError(f"SYN_STREAM {sid} after the peer's own GOAWAY")
        if self._is_local_id(sid):
            raise RemoteProtocolError(f"SYN_STREAM {sid} uses our id parity")
        if self.goaway_sent is not None:
            return None  # SPDY/3 2.6.6: "the sender must ignore all SYN_STREAMS for new streams"
        if sid <= self._highest_remote_stream_id:
            # PROTOCOLS.md 1.2: spdystream "rejects a SYN_STREAM whose id is lower than the next id
            # it expects: it answers RST_STREAM(PROTOCOL_ERROR) and drops the frame."
            return self._stream_error(sid, RstStatus.PROTOCOL_ERROR, "stream id not above the last one")
        self._highest_remote_stream_id = sid
        if frame.unidirectional:
            return self._stream_error(sid, RstStatus.REFUSED_STREAM, "unidirectional streams unsupported")
        if len(self._streams) >= self.limits.max_concurrent_streams:
            return self._stream_error(sid, RstStatus.REFUSED_STREAM, "too many concurrent streams")
        self._closed.pop(sid, None)  # an id a StreamError named while idle is now opened
        self._streams[sid] = StreamState.REPLY_DUE
        if frame.fin:
            self._apply(sid, StreamInput.RECV_FIN)
        return frame

    def _on_stream_frame(self, frame: SynReply | Data | Headers, event: StreamInput) -> Event | None:
        sid = frame.stream_id
        state = self._streams.get(sid)
        if state is None:
            if not self._was_opened(sid):
                return self._stream_error(sid, RstStatus.INVALID_STREAM, f"{type(frame).__name__} on idle stream")
            if self._closed.get(sid, True):
                return None  # reset or forgotten: in-flight leftovers
            return self._stream_error(sid, RstStatus.STREAM_ALREADY_CLOSED, "frame after the stream ended")
        try:
            new_state = next_state(state, event)
            if frame.fin:
                new_state = next_state(new_state, StreamInput.RECV_FIN)
        except StreamTransitionError:
            if event is StreamInput.RECV_REPLY:
                return self._stream_error(sid, RstStatus.STREAM_IN_USE, f"SYN_REPLY in state {state.name}")
            if state in (StreamState.AWAITING_REPLY, StreamState.AWAITING_REPLY_LOCAL_CLOSED):
                # PROTOCOLS.md 1.5: "A server must therefore send SYN_REPLY before any data."
                return self._stream_error(sid, RstStatus.PROTOCOL_ERROR, "data before SYN_REPLY")
            return self._stream_error(sid, RstStatus.STREAM_ALREADY_CLOSED, "data after the peer's FIN")
        self._set_state(sid, new_state, reset=False)
        return frame

    def _on_rst(self, frame: RstStream) -> Event | None:
        if frame.stream_id not in self._streams:
            # SPDY/3 2.4.2: never answer a RST_STREAM with a RST_STREAM; leftovers are ignored.
            return None
        self._set_state(frame.stream_id, StreamState.CLOSED, reset=True)
        return frame

    def _on_ping(self, frame: Ping) -> Event | None:
        if not self._is_local_id(frame.ping_id):
            return frame  # the peer's PING: the owner must echo it (send(frame.response()))
        if frame.ping_id in self._outstanding_pings:
            self._outstanding_pings.discard(frame.ping_id)
            return PingAcknowledged(ping_id=frame.ping_id)
        return None  # SPDY/3 2.6.5: a PING we did not initiate with our parity "MUST" be ignored

    def _stream_error(self, sid: int, status: RstStatus, reason: str) -> StreamError:
        self._set_state(sid, StreamState.CLOSED, reset=True)
        return StreamError(stream_id=sid, status=status, reason=reason)

    # --- sending ---------------------------------------------------------------------------------

    def send(self, frame: Frame) -> bytes:
        """Encode any frame we may send, after checking it against the session and stream state."""
        # Go stops reading at GOAWAY, so data sent after ours would vanish. PING echoes and RSTs stay
        # allowed so every event's response() can still be sent.
        if self.goaway_sent is not None and not isinstance(frame, Ping | RstStream):
            raise LocalProtocolError(f"GOAWAY already sent: a Go peer stops reading at GOAWAY ({frame!r})")
        if self._error is not None and not isinstance(frame, GoAway):
            raise LocalProtocolError(f"connection is in ERROR ({self._error.message}); send GOAWAY")
        match frame:
            case SynStream():
                return self._send_syn_stream(frame)
            case SynReply():
                return self._send_stream_frame(frame, StreamInput.SEND_REPLY)
            case Data():
                return self._send_stream_frame(frame, StreamInput.SEND_DATA)
            case RstStream():
                return self._send_rst(frame)
            case Ping():
                return self._send_ping(frame)
            case GoAway():
                self.goaway_sent = frame
                return self._writer.encode(frame)
            case Headers():
                raise LocalProtocolError("HEADERS frames block Go peers; put headers in SYN_STREAM/SYN_REPLY")
            case Settings() | WindowUpdate():
                return self._writer.encode(frame)
        raise LocalProtocolError(f"not a SPDY frame: {frame!r}")

    def send_syn_stream(
        self, stream_id: int, headers: HeadersLike = (), *, fin: bool = False, priority: int = 0
    ) -> bytes:
        return self.send(SynStream(stream_id=stream_id, headers=normalize_headers(headers), fin=fin, priority=priority))

    def send_reply(self, stream_id: int, headers: HeadersLike = (), *, fin: bool = False) -> bytes:
        return self.send(SynReply(stream_id=stream_id, headers=normalize_headers(headers), fin=fin))

    def send_data(self, stream_id: int, data: bytes, *, fin: bool = False) -> bytes:
        """Data split into frames of at most ``limits.send_data_chunk`` bytes; FIN on the last."""
        chunk = self.limits.send_data_chunk
        if len(data) <= chunk:
            return self.send(Data(stream_id=stream_id, data=data, fin=fin))
        self._check_send(stream_id, StreamInput.SEND_DATA)  # fail before encoding any piece
        pieces = [data[i : i + chunk] for i in range(0, len(data), chunk)]
        out = [self.send(Data(stream_id=stream_id, data=piece)) for piece in pieces[:-1]]
        return b"".join([*out, self.send(Data(stream_id=stream_id, data=pieces[-1], fin=fin))])

    def send_fin(self, stream_id: int) -> bytes:
        """Half-close: an empty DATA frame with FIN (Go's ``Stream.Close()``)."""
        return self.send(Data(stream_id=stream_id, fin=True))

    def send_rst(self, stream_id: int, status: int = RstStatus.CANCEL) -> bytes:
        """Reset a stream (Go's ``Stream.Reset()`` uses CANCEL, as do refusing servers)."""
        return self.send(RstStream(stream_id=stream_id, status=status))

    def send_ping(self, ping_id: int) -> bytes:
        """A new PING (our parity, see ``next_ping_id``) or the echo of the peer's (its parity)."""
        return self.send(Ping(ping_id=ping_id))

    def send_goaway(self, status: int = GoAwayStatus.OK, *, last_good_stream_id: int | None = None) -> bytes:
        """End the session. Kubernetes resets its streams first; last-good defaults as in Go."""
        if last_good_stream_id is None:
            last_good_stream_id = self._highest_remote_stream_id
        return self.send(GoAway(last_good_stream_id=last_good_stream_id, status=status))

    def _send_syn_stream(self, frame: SynStream) -> bytes:
        sid = frame.stream_id
        if self.goaway_received is not None:
            raise LocalProtocolError("the peer sent GOAWAY: no new streams")
        if not self._is_local_id(sid) or sid < self._next_stream_id:
            raise LocalProtocolError(f"stream id {sid}: next allowed is {self._next_stream_id}")
        if frame.unidirectional:
            raise LocalProtocolError("unidirectional streams are not used by Kubernetes")
        if len(self._streams) >= self.limits.max_concurrent_streams:
            raise LocalProtocolError(f"{len(self._streams)} streams open; limit reached")
        data = self._writer.encode(frame)
        self._next_stream_id = sid + 2
        self._streams[sid] = _TO_STATE_ON_CREATE[frame.fin]
        return data

    def _send_stream_frame(self, frame: SynReply | Data, event: StreamInput) -> bytes:
        new_state = self._check_send(frame.stream_id, event)
        if frame.fin:
            new_state = self._check_state(frame.stream_id, new_state, StreamInput.SEND_FIN)
        data = self._writer.encode(frame)
        self._set_state(frame.stream_id, new_state, reset=False)
        return data

    def _send_rst(self, frame: RstStream) -> bytes:
        sid = frame.stream_id
        # Allowed for live streams, closed ones, and ids a StreamError named (even idle ones).
        if sid not in self._streams and sid not in self._closed and not self._was_opened(sid):
            raise LocalProtocolError(f"RST_STREAM for stream {sid}, which never existed")
        data = self._writer.encode(frame)
        self._set_state(sid, StreamState.CLOSED, reset=True)
        return data

    def _send_ping(self, frame: Ping) -> bytes:
        pid = frame.ping_id
        if self._is_local_id(pid):
            if pid in self._outstanding_pings:
                raise LocalProtocolError(f"PING {pid} is still outstanding")
            if len(self._outstanding_pings) >= self.limits.max_outstanding_pings:
                raise LocalProtocolError(f"{len(self._outstanding_pings)} PINGs unanswered; peer is gone")
            data = self._writer.encode(frame)
            self._outstanding_pings.add(pid)
            # Past the 32-bit range Ping() itself refuses the id: no wrap-around, as in Go.
            self._next_ping_id = max(self._next_ping_id, pid + 2)
            return data
        return self._writer.encode(frame)  # echo; PROTOCOLS.md 1.5: "Every endpoint MUST echo"

    def _check_send(self, sid: int, event: StreamInput) -> StreamState:
        state = self._streams.get(sid)
        if state is None:
            raise LocalProtocolError(f"stream {sid} is not open", stream_id=sid)
        return self._check_state(sid, state, event)

    @staticmethod
    def _check_state(sid: int, state: StreamState, event: StreamInput) -> StreamState:
        try:
            return next_state(state, event)
        except StreamTransitionError as exc:
            raise LocalProtocolError(f"stream {sid}: {exc}", stream_id=sid) from None

    # --- bookkeeping -----------------------------------------------------------------------------

    def _is_local_id(self, value: int) -> bool:
        return value % 2 == self._parity

    def _was_opened(self, sid: int) -> bool:
        if self._is_local_id(sid):
            return sid < self._next_stream_id
        return sid <= self._highest_remote_stream_id

    def _apply(self, sid: int, event: StreamInput) -> None:
        self._set_state(sid, next_state(self._streams[sid], event), reset=False)

    def _set_state(self, sid: int, state: StreamState, *, reset: bool) -> None:
        if state is not StreamState.CLOSED:
            self._streams[sid] = state
            return
        self._streams.pop(sid, None)
        was_reset = self._closed.pop(sid, False)  # re-inserted so it is the newest entry
        self._closed[sid] = reset or was_reset
        while len(self._closed) > self.limits.max_remembered_closed_streams:
            del self._closed[next(iter(self._closed))]


__all__ = [
    "ConnectionClosed",
    "Event",
    "PingAcknowledged",
    "Role",
    "SpdyConnection",
    "StreamError",
]
