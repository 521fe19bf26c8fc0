"""SPDY/3 frame reader and writer: bytes to frame events and back (PROTOCOLS.md sections 1.1-1.4).

The reader is the layer that can say "need more data": it buffers up to one frame, checks the
announced length against our limits as soon as the 8-byte header is in (so an oversized frame is
refused before its payload is buffered), then decodes, inflating header blocks with the shared
per-direction zlib context. It knows nothing about stream state; ``SpdyConnection`` does.

Deliberate strictness (the spec or Go is laxer, we refuse; a harness should notice the peer):
* control frames of a version other than 3 (Go does not check the version);
* unknown control types (the spec says ignore; Go ends the session, so we do too);
* flag bits a frame type does not define, and fixed-size frames of the wrong length.
"""

from __future__ import annotations

import struct

from conformance.wire import limits as wire_limits
from conformance.wire.errors import (
    FrameTooLarge,
    LocalProtocolError,
    ReceiveBufferFull,
    RemoteProtocolError,
)
from conformance.wire.spdy_frames import (
    DATA_FLAG_FIN,
    SETTINGS_FLAG_CLEAR,
    SPDY_VERSION,
    ControlFlag,
    Data,
    Frame,
    FrameType,
    GoAway,
    Headers,
    Ping,
    RstStatus,
    RstStream,
    Settings,
    SettingsEntry,
    SynReply,
    SynStream,
    WindowUpdate,
)
from conformance.wire.spdy_headers import HeaderCompressor, HeaderDecompressor

FRAME_HEADER_SIZE = 8
_HEADER = struct.Struct(">II")
_U32 = struct.Struct(">I")
_U32_PAIR = struct.Struct(">II")
_CONTROL_BIT = 0x80000000
_ID_MASK = 0x7FFFFFFF  # the high "X" bit of id fields is reserved and ignored

# Flags each control type may carry (SPDY/3 section 2.6); any other bit is refused.
_ALLOWED_FLAGS: dict[FrameType, int] = {
    FrameType.SYN_STREAM: ControlFlag.FIN | ControlFlag.UNIDIRECTIONAL,
    FrameType.SYN_REPLY: ControlFlag.FIN,
    FrameType.HEADERS: ControlFlag.FIN,
    FrameType.SETTINGS: SETTINGS_FLAG_CLEAR,
    FrameType.RST_STREAM: 0,
    FrameType.PING: 0,
    FrameType.GOAWAY: 0,
    FrameType.WINDOW_UPDATE: 0,
}
# Payload length: exact for fixed frames, minimum for the rest (SPDY/3 section 2.6).
_EXACT_LENGTH = {FrameType.RST_STREAM: 8, FrameType.PING: 4, FrameType.GOAWAY: 8, FrameType.WINDOW_UPDATE: 8}
_MIN_LENGTH = {FrameType.SYN_STREAM: 10, FrameType.SYN_REPLY: 4, FrameType.HEADERS: 4, FrameType.SETTINGS: 4}


class FrameReader:
    """Incremental SPDY/3 frame decoder for one direction of one connection."""

    def __init__(self, *, limits: wire_limits.SpdyLimits | None = None) -> None:
        self._limits = limits or wire_limits.SpdyLimits()
        self._buffer = bytearray()
        self._decompressor = HeaderDecompressor(
            max_block_size=self._limits.max_header_block_size,
            max_header_count=self._limits.max_header_count,
        )
        self._error: RemoteProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet decoded into a frame."""
        return len(self._buffer)

    def receive_data(self, data: bytes) -> None:
        if len(self._buffer) + len(data) > self._limits.max_receive_buffer:
            raise ReceiveBufferFull(f"{len(self._buffer)} bytes already buffered; drain frames before feeding more")
        self._buffer += data

    def next_frame(self) -> Frame | None:
        """The next complete frame, or None if more bytes are needed. Raises RemoteProtocolError."""
        if self._error is not None:
            raise self._error
        try:
            return self._next_frame()
        except RemoteProtocolError as exc:
            self._error = exc
            raise
        except LocalProtocolError as exc:
            # A frame class refused a decoded value: that value came from the peer.
            self._error = RemoteProtocolError(exc.message, stream_id=exc.stream_id)
            raise self._error from exc

    def _next_frame(self) -> Frame | None:
        if len(self._buffer) < FRAME_HEADER_SIZE:
            return None
        first, second = _HEADER.unpack_from(self._buffer)
        flags, length = second >> 24, second & 0xFFFFFF
        if first & _CONTROL_BIT:
            version, type_code = (first >> 16) & 0x7FFF, first & 0xFFFF
            frame_type = self._check_control_header(version, type_code, flags, length)
            payload = self._take_payload(length)
            if payload is None:
                return None
            return self._decode_control(frame_type, flags, payload)
        stream_id = first & _ID_MASK
        if length > self._limits.max_data_frame_payload:
            raise FrameTooLarge(
                f"data frame of {length} bytes on stream {stream_id}; limit is {self._limits.max_data_frame_payload}",
                stream_id=stream_id,
                rst_status=RstStatus.FRAME_TOO_LARGE,
            )
        if flags & ~DATA_FLAG_FIN:
            raise RemoteProtocolError(f"data frame flags {flags:#04x}: only FIN (0x01) is defined")
        payload = self._take_payload(length)
        if payload is None:
            return None
        return Data(stream_id=stream_id, data=payload, fin=bool(flags & DATA_FLAG_FIN))

    def _check_control_header(self, version: int, type_code: int, flags: int, length: int) -> FrameType:
        if version != SPDY_VERSION:
            raise RemoteProtocolError(f"control frame version {version}; only SPDY/3 is spoken")
        try:
            frame_type = FrameType(type_code)
        except ValueError:
            # PROTOCOLS.md 1.5: "An unknown control type ... makes the Go reader fail and ends the
            # session."
            raise RemoteProtocolError(f"unknown control frame type {type_code}") from None
        if length > self._limits.max_control_frame_payload:
            raise FrameTooLarge(
                f"{frame_type.name} of {length} bytes; limit is {self._limits.max_control_frame_payload}"
            )
        if flags & ~_ALLOWED_FLAGS[frame_type]:
            raise RemoteProtocolError(f"{frame_type.name} carries undefined flags {flags:#04x}")
        exact = _EXACT_LENGTH.get(frame_type)
        if exact is not None and length != exact:
            raise RemoteProtocolError(f"{frame_type.name} payload is {length} bytes, must be {exact}")
        if length < _MIN_LENGTH.get(frame_type, 0):
            raise RemoteProtocolError(f"{frame_type.name} payload of {length} bytes is too short")
        return frame_type

    def _take_payload(self, length: int) -> bytes | None:
        end = FRAME_HEADER_SIZE + length
        if len(self._buffer) < end:
            return None
        payload = bytes(self._buffer[FRAME_HEADER_SIZE:end])
        del self._buffer[:end]
        return payload

    def _decode_control(self, frame_type: FrameType, flags: int, payload: bytes) -> Frame:
        fin = bool(flags & ControlFlag.FIN)
        if frame_type is FrameType.SYN_STREAM:
            stream_id, assoc = _U32_PAIR.unpack_from(payload)
            headers = self._decompressor.decompress(payload[10:])
            return SynStream(
                stream_id=stream_id & _ID_MASK,
                associated_stream_id=assoc & _ID_MASK,
                priority=payload[8] >> 5,  # 3-bit priority; the low 5 bits are unused
                slot=payload[9],
                headers=headers,
                fin=fin,
                unidirectional=bool(flags & ControlFlag.UNIDIRECTIONAL),
            )
        if frame_type in (FrameType.SYN_REPLY, FrameType.HEADERS):
            (stream_id,) = _U32.unpack_from(payload)
            headers = self._decompressor.decompress(payload[4:])
            cls = SynReply if frame_type is FrameType.SYN_REPLY else Headers
            return cls(stream_id=stream_id & _ID_MASK, headers=headers, fin=fin)
        if frame_type is FrameType.RST_STREAM:
            stream_id, status = _U32_PAIR.unpack_from(payload)
            return RstStream(stream_id=stream_id & _ID_MASK, status=status)
        if frame_type is FrameType.SETTINGS:
            return self._decode_settings(flags, payload)
        if frame_type is FrameType.PING:
            (ping_id,) = _U32.unpack_from(payload)
            return Ping(ping_id=ping_id)
        if frame_type is FrameType.GOAWAY:
            last_good, status = _U32_PAIR.unpack_from(payload)
            return GoAway(last_good_stream_id=last_good & _ID_MASK, status=status)
        stream_id, delta = _U32_PAIR.unpack_from(payload)
        return WindowUpdate(stream_id=stream_id & _ID_MASK, delta=delta & _ID_MASK)

    @staticmethod
    def _decode_settings(flags: int, payload: bytes) -> Settings:
        (count,) = _U32.unpack_from(payload)
        if len(payload) != 4 + 8 * count:
            raise RemoteProtocolError(f"SETTINGS announces {count} entries in {len(payload)} bytes")
        entries = []
        for offset in range(4, len(payload), 8):
            flags_and_id, value = _U32_PAIR.unpack_from(payload, offset)
            entries.append(SettingsEntry(id=flags_and_id & 0xFFFFFF, value=value, flags=flags_and_id >> 24))
        return Settings(entries=tuple(entries), clear=bool(flags & SETTINGS_FLAG_CLEAR))


class FrameWriter:
    """SPDY/3 frame encoder for one direction of one connection (owns the compression context)."""

    def __init__(self, *, limits: wire_limits.SpdyLimits | None = None) -> None:
        self._limits = limits or wire_limits.SpdyLimits()
        self._compressor = HeaderCompressor(max_block_size=self._limits.max_header_block_size)

    def encode(self, frame: Frame) -> bytes:
        match frame:
            case Data():
                flags = DATA_FLAG_FIN if frame.fin else 0
                return _frame_header(frame.stream_id, flags, len(frame.data)) + frame.data
            case SynStream():
                flags = (ControlFlag.FIN if frame.fin else 0) | (
                    ControlFlag.UNIDIRECTIONAL if frame.unidirectional else 0
                )
                block = self._compressor.compress(frame.headers)
                body = _U32_PAIR.pack(frame.stream_id, frame.associated_stream_id) + bytes(
                    [frame.priority << 5, frame.slot]
                )
                return _control(FrameType.SYN_STREAM, flags, body + block)
            case SynReply() | Headers():
                frame_type = FrameType.SYN_REPLY if isinstance(frame, SynReply) else FrameType.HEADERS
                block = self._compressor.compress(frame.headers)
                flags = ControlFlag.FIN if frame.fin else 0
                return _control(frame_type, flags, _U32.pack(frame.stream_id) + block)
            case RstStream():
                return _control(FrameType.RST_STREAM, 0, _U32_PAIR.pack(frame.stream_id, frame.status))
            case Settings():
                body = _U32.pack(len(frame.entries)) + b"".join(
                    _U32_PAIR.pack(e.flags << 24 | e.id, e.value) for e in frame.entries
                )
                return _control(FrameType.SETTINGS, SETTINGS_FLAG_CLEAR if frame.clear else 0, body)
            case Ping():
                return _control(FrameType.PING, 0, _U32.pack(frame.ping_id))
            case GoAway():
                return _control(FrameType.GOAWAY, 0, _U32_PAIR.pack(frame.last_good_stream_id, frame.status))
            case WindowUpdate():
                return _control(FrameType.WINDOW_UPDATE, 0, _U32_PAIR.pack(frame.stream_id, frame.delta))
        raise LocalProtocolError(f"not a SPDY frame: {frame!r}")


def _frame_header(first_word: int, flags: int, length: int) -> bytes:
    # PROTOCOLS.md 1.1: "Largest payload: 2^24-1 (spdystream refuses to write a bigger data frame)."
    if length > wire_limits.SPDY_WIRE_MAX_PAYLOAD:
        raise LocalProtocolError(f"frame payload of {length} bytes does not fit the 24-bit length")
    return _HEADER.pack(first_word, flags << 24 | length)


def _control(frame_type: FrameType, flags: int, payload: bytes) -> bytes:
    return _frame_header(_CONTROL_BIT | SPDY_VERSION << 16 | frame_type, flags, len(payload)) + payload
