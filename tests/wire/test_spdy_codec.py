"""SPDY/3 frame reader/writer: PROTOCOLS.md 1.4 vectors, every chunking, invalid frames, limits, fuzz."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance.wire.errors import FrameTooLarge, LocalProtocolError, ReceiveBufferFull, RemoteProtocolError
from conformance.wire.limits import SPDY_WIRE_MAX_PAYLOAD, SpdyLimits
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
    SettingsEntry,
    SettingsId,
    SynReply,
    SynStream,
    WindowUpdate,
)
from conformance.wire.spdy_headers import HeaderCompressor

from .helpers import FUZZ, chunkings, control_frame, data_frame, drain, u32

# PROTOCOLS.md 1.4 test vectors. Each writer is fresh, so each header block is a "first" block.
VECTORS: list[tuple[str, Frame, str]] = [
    (
        "syn_stream",
        SynStream(stream_id=1, headers=(("streamtype", "error"),)),
        "80030001 00000028 00000001 00000000 0000 78f9e3c6a7c202a62346703a2b294a4dcc851625aca9a08006000000ffff",
    ),
    ("syn_reply", SynReply(stream_id=1), "80030002 00000014 00000001 78f9e3c6a7c202a6230600000000ffff"),
    ("data_fin", Data(stream_id=1, fin=True), "00000001 01000000"),
    ("rst_cancel", RstStream(stream_id=1, status=RstStatus.CANCEL), "80030003 00000008 00000001 00000005"),
    ("ping", Ping(ping_id=1), "80030006 00000004 00000001"),
    (
        "goaway_ok",
        GoAway(last_good_stream_id=0, status=GoAwayStatus.OK),
        "80030007 00000008 00000000 00000000",
    ),
]


@pytest.mark.parametrize(("name", "frame", "wire"), VECTORS, ids=[v[0] for v in VECTORS])
def test_vector_encodes_exactly(name: str, frame: Frame, wire: str) -> None:
    assert FrameWriter().encode(frame) == bytes.fromhex(wire)


@pytest.mark.parametrize(("name", "frame", "wire"), VECTORS, ids=[v[0] for v in VECTORS])
def test_vector_decodes_whole_bytewise_every_split_and_with_trailing_bytes(name: str, frame: Frame, wire: str) -> None:
    raw = bytes.fromhex(wire)
    for label, chunks in chunkings(raw):
        reader = FrameReader()
        assert drain(reader.receive_data, reader.next_frame, chunks) == [frame], label
    # Trailing bytes: the start of the next frame stays buffered, undecoded.
    reader = FrameReader()
    reader.receive_data(raw + raw[:5])
    assert reader.next_frame() == frame
    assert reader.next_frame() is None
    assert reader.buffered == 5


OTHER_FRAMES: list[Frame] = [
    SynStream(stream_id=3, headers=(("streamtype", "data"), ("port", "80")), priority=7, fin=True, slot=2),
    SynStream(stream_id=5, associated_stream_id=3),
    SynReply(stream_id=2, headers=(("a", "1"), ("a", "2")), fin=True),
    Headers(stream_id=3, headers=(("x", "y"),), fin=True),
    RstStream(stream_id=7, status=0xFFFFFFFF),
    Settings(entries=(SettingsEntry(id=SettingsId.INITIAL_WINDOW_SIZE, value=65536, flags=1),), clear=True),
    Settings(),
    Ping(ping_id=0xFFFFFFFF),
    GoAway(last_good_stream_id=0x7FFFFFFF, status=GoAwayStatus.INTERNAL_ERROR),
    WindowUpdate(stream_id=0, delta=0x7FFFFFFF),
    Data(stream_id=0x7FFFFFFF, data=b"\x00" * 1000),
]


def test_every_frame_type_round_trips_through_one_context() -> None:
    writer, reader = FrameWriter(), FrameReader()
    wire = b"".join(writer.encode(f) for f in OTHER_FRAMES)
    for label, chunks in [("whole", [wire]), ("bytewise", [wire[i : i + 1] for i in range(len(wire))])]:
        writer, reader = FrameWriter(), FrameReader()
        wire = b"".join(writer.encode(f) for f in OTHER_FRAMES)
        assert drain(reader.receive_data, reader.next_frame, chunks) == OTHER_FRAMES, label


def test_reserved_x_bits_and_priority_low_bits_are_ignored() -> None:
    block = HeaderCompressor().compress(())
    raw = control_frame(1, u32(0x80000001, 0x80000000) + bytes([0b111_11111, 0]) + block)
    reader = FrameReader()
    reader.receive_data(raw)
    assert reader.next_frame() == SynStream(stream_id=1, priority=7)


# Invalid wire data the writer cannot produce: (id, bytes, message fragment).
INVALID: list[tuple[str, bytes, str]] = [
    ("version-2", control_frame(6, u32(1), version=2), "version 2"),
    ("noop-type-5", control_frame(5), "unknown control frame type 5"),
    ("credential-type-10", control_frame(10, b"x" * 8), "unknown control frame type 10"),
    ("type-0", control_frame(0), "unknown control frame type 0"),
    ("ping-flags", control_frame(6, u32(1), flags=1), "undefined flags"),
    ("rst-flags", control_frame(3, u32(1, 5), flags=1), "undefined flags"),
    ("goaway-flags", control_frame(7, u32(0, 0), flags=1), "undefined flags"),
    ("window-flags", control_frame(9, u32(1, 1), flags=1), "undefined flags"),
    ("syn-stream-flag-4", control_frame(1, u32(1, 0) + b"\0\0", flags=4), "undefined flags"),
    ("syn-reply-unidirectional", control_frame(2, u32(1), flags=2), "undefined flags"),
    ("settings-flag-2", control_frame(4, u32(0), flags=2), "undefined flags"),
    ("data-flag-2", data_frame(1, b"", flags=2), "only FIN"),
    ("ping-short", control_frame(6, b"\0\0\1"), "must be 4"),
    ("ping-long", control_frame(6, u32(1, 0)), "must be 4"),
    ("rst-short", control_frame(3, u32(1)), "must be 8"),
    ("goaway-spdy2-length", control_frame(7, u32(0)), "must be 8"),
    ("window-long", control_frame(9, u32(1, 1, 1)), "must be 8"),
    ("syn-stream-short", control_frame(1, u32(1, 0)), "too short"),
    ("syn-reply-short", control_frame(2, b"\0\0"), "too short"),
    ("settings-short", control_frame(4, b""), "too short"),
    ("settings-count-mismatch", control_frame(4, u32(2, 1, 1)), "announces 2 entries"),
    ("rst-status-0", control_frame(3, u32(1, 0)), "status 0"),
    ("rst-stream-0", control_frame(3, u32(0, 5)), "stream id 0"),
    ("ping-id-0", control_frame(6, u32(0)), "ping id 0"),
    ("window-delta-0", control_frame(9, u32(1, 0)), "delta 0"),
    ("data-stream-0", data_frame(0, b"x"), "stream id 0"),
    ("syn-stream-0", control_frame(1, u32(0, 0) + b"\0\0" + HeaderCompressor().compress(())), "stream id 0"),
    ("syn-reply-empty-block", control_frame(2, u32(1)), "truncated"),
    (
        "syn-stream-host",
        control_frame(1, u32(1, 0) + b"\0\0" + HeaderCompressor().compress((("host", "h"),))),
        "refused",
    ),
]


@pytest.mark.parametrize(("raw", "match"), [(raw, m) for _, raw, m in INVALID], ids=[i for i, _, _ in INVALID])
def test_invalid_frames_raise_remote_protocol_error_and_poison_the_reader(raw: bytes, match: str) -> None:
    reader = FrameReader()
    reader.receive_data(raw)
    with pytest.raises(RemoteProtocolError, match=match) as first:
        reader.next_frame()
    assert first.value.goaway_status == GoAwayStatus.PROTOCOL_ERROR
    with pytest.raises(RemoteProtocolError) as again:
        reader.next_frame()
    assert again.value is first.value


def test_bad_header_is_refused_before_the_payload_arrives() -> None:
    reader = FrameReader()
    reader.receive_data(control_frame(5, b"x" * 100)[:8])
    with pytest.raises(RemoteProtocolError):
        reader.next_frame()


def test_control_frame_limit_n_and_n_plus_one() -> None:
    limits = SpdyLimits(max_control_frame_payload=12)
    ok = control_frame(4, u32(1, 7, 100))  # SETTINGS with one entry: 12 bytes
    reader = FrameReader(limits=limits)
    reader.receive_data(ok)
    assert reader.next_frame() == Settings(entries=(SettingsEntry(id=7, value=100),))
    too_big = control_frame(4, u32(1, 7, 100) + b"\0")
    reader = FrameReader(limits=limits)
    reader.receive_data(too_big[:8])  # refused on the header alone
    with pytest.raises(FrameTooLarge):
        reader.next_frame()


def test_data_frame_limit_n_and_n_plus_one() -> None:
    limits = SpdyLimits(max_data_frame_payload=100)
    reader = FrameReader(limits=limits)
    reader.receive_data(data_frame(1, b"x" * 100))
    assert reader.next_frame() == Data(stream_id=1, data=b"x" * 100)
    reader = FrameReader(limits=limits)
    reader.receive_data(data_frame(1, b"x" * 101)[:8])
    with pytest.raises(FrameTooLarge) as exc:
        reader.next_frame()
    assert exc.value.stream_id == 1
    assert exc.value.rst_status == RstStatus.FRAME_TOO_LARGE


def test_receive_buffer_limit_n_and_n_plus_one() -> None:
    reader = FrameReader(limits=SpdyLimits(max_receive_buffer=16))
    reader.receive_data(b"\0" * 10)
    reader.receive_data(b"\0" * 6)
    assert reader.buffered == 16
    with pytest.raises(ReceiveBufferFull):
        reader.receive_data(b"\0")
    assert reader.buffered == 16


def test_writer_refuses_payload_beyond_24_bit_length() -> None:
    writer = FrameWriter()
    assert len(writer.encode(Data(stream_id=1, data=bytes(SPDY_WIRE_MAX_PAYLOAD)))) == SPDY_WIRE_MAX_PAYLOAD + 8
    with pytest.raises(LocalProtocolError):
        writer.encode(Data(stream_id=1, data=bytes(SPDY_WIRE_MAX_PAYLOAD + 1)))


@pytest.mark.parametrize(
    "build",
    [
        lambda: SynStream(stream_id=0),
        lambda: SynStream(stream_id=1, priority=8),
        lambda: SynStream(stream_id=0x80000000),
        lambda: SynReply(stream_id=1, headers=(("Upper", "x"),)),
        lambda: RstStream(stream_id=1, status=0),
        lambda: Ping(ping_id=0),
        lambda: Ping(ping_id=1 << 32),
        lambda: GoAway(last_good_stream_id=-1),
        lambda: WindowUpdate(stream_id=1, delta=0),
        lambda: Data(stream_id=0),
        lambda: SettingsEntry(id=1 << 24, value=0),
    ],
)
def test_invalid_frames_cannot_be_built(build: object) -> None:
    with pytest.raises(LocalProtocolError):
        build()  # type: ignore[operator]


def _valid_stream() -> bytes:
    writer = FrameWriter()
    return b"".join(writer.encode(f) for f in [*(f for _, f, _ in VECTORS), *OTHER_FRAMES])


VALID_STREAM = _valid_stream()
SMALL = SpdyLimits(max_control_frame_payload=4096, max_data_frame_payload=2048, max_receive_buffer=8192)


def _decode_all(data: bytes, limits: SpdyLimits = SMALL) -> None:
    reader = FrameReader(limits=limits)
    try:
        for start in range(0, len(data), 1000):
            reader.receive_data(data[start : start + 1000])
            while reader.next_frame() is not None:
                pass
            # Bounded memory: never more than one maximal frame plus one chunk held.
            assert reader.buffered <= 8 + 4096 + 1000
    except RemoteProtocolError:
        pass


@FUZZ
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_only_raise_remote_protocol_error(data: bytes) -> None:
    _decode_all(data)


@FUZZ
@given(st.data())
def test_mutated_valid_streams_only_raise_remote_protocol_error(data: st.DataObject) -> None:
    raw = bytearray(VALID_STREAM)
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    _decode_all(bytes(raw[:cut]))


@FUZZ
@given(st.binary(min_size=1, max_size=64), st.integers(0, 7))
def test_control_frames_with_random_payloads_only_raise_remote_protocol_error(payload: bytes, kind: int) -> None:
    frame_type = [1, 2, 3, 4, 6, 7, 8, 9][kind]
    _decode_all(control_frame(frame_type, payload))
