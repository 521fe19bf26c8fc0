"""The fault hop's byte-level faults on an upgraded stream: sans-IO filters, bytes in, bytes out.

After the 101 the hop relays two byte streams. Each direction gets one filter (`feed(chunk) -> bytes to
forward`; `finished` says "close now"), chosen from the fault and the negotiated protocol:

* `Passthrough`: every byte as it came (the `none` control is byte-transparent).
* `Truncator(n, tracker)`: the stream up to the first frame boundary at or after byte n, then finished
  (the hop closes cleanly).
* `Corruptor(n, tracker)`: flips one payload byte at or after stream offset n, once. The tracker knows
  the framing (SPDY/3 frames, WebSocket frames, SPDY tunnelled in WebSocket messages) and hands out only
  the bytes of data payload, never frame headers, control frames or a message's channel byte, so a
  client sees wrong data rather than a broken frame.
* `SpdyEofSwallower`: client->server SPDY; clears FIN on the stdin stream (on its SYN_STREAM or a DATA
  frame) and forwards everything else as it came. Control frames are decoded with the project's own
  `FrameReader` (the header blocks share one zlib context, so every control frame is fed in order).
* `WebSocketEofSwallower`: client->server WebSocket v5; drops the CLOSE message of stdin (`0xFF 0x00`,
  decoded with `ChannelCodec`), forwards everything else.

Frame boundaries are followed with small header parsers (8 bytes for SPDY, 2-14 for WebSocket); payloads
are never buffered except a control frame's (bounded by the SPDY limits) and a tiny WebSocket message
that may be a CLOSE signal. A stream that is not what the framing says raises `FaultStreamError`.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Protocol

from websockets.utils import apply_mask

from conformance.wire import limits as wire_limits
from conformance.wire.channels import BASE64_SUBPROTOCOLS, CLOSE_SIGNAL_SUBPROTOCOLS, ChannelClosed, ChannelCodec
from conformance.wire.errors import ProtocolError
from conformance.wire.portforward import TUNNEL_SUBPROTOCOL_PREFIX
from conformance.wire.remotecommand import StreamType
from conformance.wire.role import Role
from conformance.wire.spdy_codec import FRAME_HEADER_SIZE, FrameReader
from conformance.wire.spdy_frames import DATA_FLAG_FIN, ControlFlag, SynStream
from conformance.wire.spdy_headers import header_value

_SPDY_HEADER = struct.Struct(">II")
_CONTROL_BIT = 0x80000000
_ID_MASK = 0x7FFFFFFF
# RFC 6455 5.2: opcodes. Data frames are continuation (0), text (1), binary (2); 8 and up are control.
WS_CONTINUATION, WS_TEXT, WS_BINARY = 0, 1, 2
WS_CONTROL_MIN = 8
WS_MAX_HEADER = 14  # 2 + 8-byte extended length + 4-byte mask
# A WebSocket CLOSE signal is [0xFF, channel]: a binary message this short is held whole to look at it.
WS_SIGNAL_MAX_PAYLOAD = 2
# The largest SPDY control frame the swallower holds (the wire codec refuses larger ones anyway).
MAX_HELD_CONTROL_FRAME = FRAME_HEADER_SIZE + wire_limits.MAX_CONTROL_FRAME_PAYLOAD
BASE64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


class FaultStreamError(Exception):
    """The stream is not in the framing the fault expected (the hop then closes the connection)."""


class Framing(enum.Enum):
    RAW = "raw"  # unknown upgrade: every byte counts as payload
    SPDY = "spdy"
    WS_CHANNEL = "ws-channel"  # [channel byte][payload] binary messages
    WS_BASE64 = "ws-base64"  # text messages: channel digit, then base64
    WS_TUNNEL = "ws-tunnel"  # SPDY/3.1 bytes carried in binary messages


def framing_for(upgrade: str, subprotocol: str) -> Framing:
    """The framing of an upgraded stream, from the 101's `Upgrade` and `Sec-WebSocket-Protocol`."""
    upgrade = upgrade.strip().lower()
    if upgrade.startswith("spdy/"):
        return Framing.SPDY
    if upgrade != "websocket":
        return Framing.RAW
    if subprotocol.startswith(TUNNEL_SUBPROTOCOL_PREFIX):
        return Framing.WS_TUNNEL
    if subprotocol in BASE64_SUBPROTOCOLS:
        return Framing.WS_BASE64
    return Framing.WS_CHANNEL


# --- framing trackers: which bytes of a chunk are data payload ---------------------------------------


@dataclass(frozen=True, slots=True)
class Span:
    """Bytes [start, end) of a chunk are payload; `mask` and `offset` unmask them (WebSocket client frames)."""

    start: int
    end: int
    mask: bytes = b""
    offset: int = 0  # of `start` within its frame's payload, for the mask's phase
    base64: bool = False


class Tracker(Protocol):
    # After `spans(chunk)`: the chunk offsets where a frame ended (None: any offset is a boundary).
    ends: list[int] | None

    def spans(self, chunk: bytes) -> list[Span]: ...


class RawTracker:
    ends: list[int] | None = None

    def spans(self, chunk: bytes) -> list[Span]:
        return [Span(0, len(chunk))] if chunk else []


class SpdyTracker:
    """Follows SPDY/3 frame boundaries without buffering payloads: DATA payload bytes are payload."""

    def __init__(self) -> None:
        self._head = bytearray()
        self._left = 0
        self._data = False
        self.ends: list[int] | None = []

    def spans(self, chunk: bytes) -> list[Span]:
        spans, i, n = [], 0, len(chunk)
        ends: list[int] = []
        while i < n:
            if self._left:
                take = min(self._left, n - i)
                if self._data:
                    spans.append(Span(i, i + take))
                i += take
                self._left -= take
                if not self._left:
                    ends.append(i)
                continue
            piece = chunk[i : i + FRAME_HEADER_SIZE - len(self._head)]
            self._head += piece
            i += len(piece)
            if len(self._head) == FRAME_HEADER_SIZE:
                first, second = _SPDY_HEADER.unpack(self._head)
                self._head.clear()
                self._data = not first & _CONTROL_BIT
                self._left = second & 0xFFFFFF
                if not self._left:
                    ends.append(i)
        self.ends = ends
        return spans


@dataclass(slots=True)
class _WsHeader:
    fin: bool
    opcode: int
    mask: bytes
    length: int
    size: int  # of the header itself


def parse_ws_header(buf: bytes | bytearray) -> _WsHeader | None:
    """RFC 6455 5.2 base framing header, or None while incomplete."""
    if len(buf) < 2:
        return None
    b0, b1 = buf[0], buf[1]
    length, size = b1 & 0x7F, 2
    if length == 126:
        if len(buf) < 4:
            return None
        length, size = int.from_bytes(buf[2:4], "big"), 4
    elif length == 127:
        if len(buf) < 10:
            return None
        length, size = int.from_bytes(buf[2:10], "big"), 10
    mask = b""
    if b1 & 0x80:
        if len(buf) < size + 4:
            return None
        mask, size = bytes(buf[size : size + 4]), size + 4
    return _WsHeader(fin=bool(b0 & 0x80), opcode=b0 & 0x0F, mask=mask, length=length, size=size)


class WebSocketTracker:
    """Follows WebSocket frames: data-frame payload is payload, except each message's channel byte."""

    def __init__(self, *, channel_byte: bool, base64_text: bool) -> None:
        self._channel_byte = channel_byte
        self._base64 = base64_text
        self._head = bytearray()
        self._frame: _WsHeader | None = None
        self._done = 0  # payload bytes of the current frame already seen
        self._skip_channel = False
        self.ends: list[int] | None = []

    def spans(self, chunk: bytes) -> list[Span]:
        spans, i, n = [], 0, len(chunk)
        ends: list[int] = []
        while i < n:
            frame = self._frame
            if frame is None:
                # Headers are at most 14 bytes: take what may belong to one and keep only its size.
                before = len(self._head)
                self._head += chunk[i : i + WS_MAX_HEADER - before]
                header = parse_ws_header(self._head)
                if header is None:
                    i += len(self._head) - before
                    continue
                i += header.size - before
                self._head.clear()
                self._frame, self._done = header, 0
                if header.opcode in (WS_TEXT, WS_BINARY):
                    self._skip_channel = self._channel_byte
                if header.length == 0:
                    self._frame = None
                    ends.append(i)
                continue
            take = min(frame.length - self._done, n - i)
            start, offset = i, self._done
            if frame.opcode < WS_CONTROL_MIN and take and self._skip_channel:
                start, offset, self._skip_channel = start + 1, offset + 1, False
            if frame.opcode < WS_CONTROL_MIN and start < i + take:
                spans.append(Span(start, i + take, frame.mask, offset, self._base64))
            i += take
            self._done += take
            if self._done == frame.length:
                self._frame = None
                ends.append(i)
        self.ends = ends
        return spans


class TunnelTracker:
    """SPDY/3.1 carried in WebSocket binary messages (port-forward's KEP-4006 tunnel)."""

    def __init__(self) -> None:
        self._outer = WebSocketTracker(channel_byte=False, base64_text=False)
        self._inner = SpdyTracker()
        self.ends: list[int] | None = []

    def spans(self, chunk: bytes) -> list[Span]:
        """Inner DATA payload; boundaries are the WebSocket frames' (the client sees whole messages)."""
        spans = []
        for outer in self._outer.spans(chunk):
            clear = _unmask(chunk[outer.start : outer.end], outer.mask, outer.offset)
            for inner in self._inner.spans(clear):
                spans.append(
                    Span(outer.start + inner.start, outer.start + inner.end, outer.mask, outer.offset + inner.start)
                )
        self.ends = self._outer.ends
        return spans


def tracker_for(framing: Framing) -> Tracker:
    if framing is Framing.SPDY:
        return SpdyTracker()
    if framing is Framing.WS_TUNNEL:
        return TunnelTracker()
    if framing in (Framing.WS_CHANNEL, Framing.WS_BASE64):
        return WebSocketTracker(channel_byte=True, base64_text=framing is Framing.WS_BASE64)
    return RawTracker()


def _unmask(data: bytes, mask: bytes, offset: int) -> bytes:
    if not mask:
        return data
    phase = offset % 4
    return apply_mask(data, mask[phase:] + mask[:phase])


# --- filters -------------------------------------------------------------------------------------------


class StreamFilter(Protocol):
    finished: bool

    def feed(self, chunk: bytes) -> bytes: ...


class Passthrough:
    finished = False

    def feed(self, chunk: bytes) -> bytes:
        return chunk


class Truncator:
    """Forwards the stream up to the first frame boundary at or after byte `limit` (any byte, for an unknown
    framing), then is finished: the hop closes both sides cleanly, so the client sees whole frames and then
    the end of the stream, not a broken frame."""

    def __init__(self, limit: int, tracker: Tracker | None = None) -> None:
        self._limit = limit
        self._tracker = tracker or RawTracker()
        self._pos = 0
        self.finished = limit == 0

    def feed(self, chunk: bytes) -> bytes:
        if self.finished:
            return b""
        self._tracker.spans(chunk)
        ends = self._tracker.ends
        candidates = (
            [max(self._limit - self._pos, 0)] if ends is None else [e for e in ends if self._pos + e >= self._limit]
        )
        self._pos += len(chunk)
        if candidates and candidates[0] <= len(chunk):
            self.finished = True
            return chunk[: candidates[0]]
        return chunk


class Corruptor:
    """Changes one payload byte, the first at or after stream offset `after`; `flipped_at` records where."""

    finished = False

    def __init__(self, after: int, tracker: Tracker) -> None:
        self._after = after
        self._tracker = tracker
        self._pos = 0
        self.flipped_at: int | None = None

    def feed(self, chunk: bytes) -> bytes:
        if self.flipped_at is not None:
            return chunk
        spans = self._tracker.spans(chunk)
        out = chunk
        for span in spans:
            at = max(span.start, self._after - self._pos)
            if at < span.end and (changed := _flip(chunk[at], span, at)) is not None:
                out = chunk[:at] + bytes([changed]) + chunk[at + 1 :]
                self.flipped_at = self._pos + at
                break
        self._pos += len(chunk)
        return out


def _flip(wire: int, span: Span, at: int) -> int | None:
    """A different byte for `wire`; in base64 text another alphabet character (never padding), so the
    message still decodes, to different data. None: this byte cannot change that way (padding)."""
    if not span.base64:
        return wire ^ 0xFF  # a masked byte flipped on the wire is flipped once unmasked, too
    key = span.mask[(span.offset + at - span.start) % 4] if span.mask else 0
    clear = wire ^ key
    index = BASE64_ALPHABET.find(bytes([clear]))
    if index < 0:
        return None
    return BASE64_ALPHABET[(index + 1) % len(BASE64_ALPHABET)] ^ key


class SpdyEofSwallower:
    """Client->server SPDY: the stdin stream never ends (FIN cleared on its SYN_STREAM and DATA frames)."""

    finished = False

    def __init__(self) -> None:
        self._reader = FrameReader()
        self._head = bytearray()
        self._control = bytearray()  # a control frame being held until it is whole
        self._left = 0
        self._stdin: set[int] = set()
        self.swallowed = 0

    def feed(self, chunk: bytes) -> bytes:
        out = bytearray()
        i, n = 0, len(chunk)
        while i < n:
            if self._control:
                take = min(self._left, n - i)
                self._control += chunk[i : i + take]
                i += take
                self._left -= take
                if not self._left:
                    out += self._release_control()
                continue
            if self._left:  # DATA payload streams through
                take = min(self._left, n - i)
                out += chunk[i : i + take]
                i += take
                self._left -= take
                continue
            piece = chunk[i : i + FRAME_HEADER_SIZE - len(self._head)]
            self._head += piece
            i += len(piece)
            if len(self._head) < FRAME_HEADER_SIZE:
                continue
            head = bytearray(self._head)
            self._head.clear()
            first, second = _SPDY_HEADER.unpack(head)
            length = second & 0xFFFFFF
            if first & _CONTROL_BIT:
                if FRAME_HEADER_SIZE + length > MAX_HELD_CONTROL_FRAME:
                    raise FaultStreamError(f"SPDY control frame of {length} bytes is beyond the codec's limit")
                self._control, self._left = head, length
                if not length:
                    out += self._release_control()
                continue
            if first & _ID_MASK in self._stdin and head[4] & DATA_FLAG_FIN:
                head[4] &= ~DATA_FLAG_FIN & 0xFF
                self.swallowed += 1
            out += head
            self._left = length
        return bytes(out)

    def _release_control(self) -> bytes:
        frame_bytes, self._control = self._control, bytearray()
        try:
            self._reader.receive_data(bytes(frame_bytes))
            frame = self._reader.next_frame()
        except ProtocolError as exc:
            raise FaultStreamError(f"the client's SPDY stream does not decode: {exc}") from exc
        if isinstance(frame, SynStream) and header_value(frame.headers, "streamtype") == StreamType.STDIN:
            self._stdin.add(frame.stream_id)
            if frame.fin:
                frame_bytes[4] &= ~ControlFlag.FIN & 0xFF
                self.swallowed += 1
        return bytes(frame_bytes)


class WebSocketEofSwallower:
    """Client->server WebSocket v5: the CLOSE message of stdin ([0xFF, 0]) is dropped."""

    finished = False

    def __init__(self, subprotocol: str) -> None:
        self._codec = ChannelCodec(subprotocol, role=Role.SERVER)
        self._head = bytearray()
        self._held = bytearray()  # a short binary message that may be a CLOSE signal
        self._frame: _WsHeader | None = None
        self._left = 0
        self.swallowed = 0

    def feed(self, chunk: bytes) -> bytes:
        out = bytearray()
        i, n = 0, len(chunk)
        while i < n:
            if self._frame is None:
                before = len(self._head)
                self._head += chunk[i : i + WS_MAX_HEADER - before]
                header = parse_ws_header(self._head)
                if header is None:
                    i += len(self._head) - before
                    continue
                i += header.size - before
                raw_header = bytes(self._head[: header.size])
                self._head.clear()
                self._frame, self._left = header, header.length
                hold = header.fin and header.opcode == WS_BINARY and header.length <= WS_SIGNAL_MAX_PAYLOAD
                if hold:
                    self._held = bytearray(raw_header)
                else:
                    out += raw_header
                if not header.length:
                    out += self._end_frame()
                continue
            take = min(self._left, n - i)
            (self._held if self._held else out).extend(chunk[i : i + take])
            i += take
            self._left -= take
            if not self._left:
                out += self._end_frame()
        return bytes(out)

    def _end_frame(self) -> bytes:
        frame, held = self._frame, bytes(self._held)
        self._frame, self._held = None, bytearray()
        if not held or frame is None:
            return b""
        payload = _unmask(held[frame.size :], frame.mask, 0)
        try:
            event = self._codec.decode(payload)
        except ProtocolError:
            event = None  # not ours to judge: the server will
        if isinstance(event, ChannelClosed) and event.channel == 0:
            self.swallowed += 1
            return b""
        return held


def c2s_swallower(framing: Framing, subprotocol: str) -> StreamFilter:
    """The EOF swallower for the negotiated protocol; other protocols have no end-of-stdin to drop."""
    if framing is Framing.SPDY:
        return SpdyEofSwallower()
    if framing is Framing.WS_CHANNEL and subprotocol in CLOSE_SIGNAL_SUBPROTOCOLS:
        return WebSocketEofSwallower(subprotocol)
    return Passthrough()


__all__ = [
    "BASE64_ALPHABET",
    "Corruptor",
    "FaultStreamError",
    "Framing",
    "Passthrough",
    "SpdyEofSwallower",
    "StreamFilter",
    "Truncator",
    "WebSocketEofSwallower",
    "c2s_swallower",
    "framing_for",
    "tracker_for",
]
