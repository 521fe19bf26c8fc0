"""The byte-level fault filters alone (sans-IO): fed whole, byte by byte and split at every offset."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest
from websockets.frames import Frame, Opcode

from conformance.lab.fault_streams import (
    Corruptor,
    FaultStreamError,
    Framing,
    SpdyEofSwallower,
    StreamFilter,
    Truncator,
    WebSocketEofSwallower,
    c2s_swallower,
    framing_for,
    tracker_for,
)
from conformance.wire.portforward import tunnel_subprotocol
from conformance.wire.spdy_codec import FrameReader, FrameWriter
from conformance.wire.spdy_frames import Data, Ping, SynReply, SynStream
from conformance.wire.spdy_frames import Frame as Frame_
from tests.faults.helpers import ws_payloads


def _splits(data: bytes) -> list[list[bytes]]:
    """Whole, byte by byte, and cut once at every offset."""
    cuts = [[data], [data[i : i + 1] for i in range(len(data))]]
    cuts += [[data[:i], data[i:]] for i in range(1, len(data))]
    return cuts


def _run(make: Callable[[], StreamFilter], data: bytes) -> list[bytes]:
    outs = []
    for pieces in _splits(data):
        filt = make()
        outs.append(b"".join(filt.feed(p) for p in pieces))
    return outs


@pytest.mark.parametrize(
    ("upgrade", "subprotocol", "framing"),
    [
        ("SPDY/3.1", "", Framing.SPDY),
        ("websocket", "v5.channel.k8s.io", Framing.WS_CHANNEL),
        ("WebSocket", "", Framing.WS_CHANNEL),
        ("websocket", "v4.base64.channel.k8s.io", Framing.WS_BASE64),
        ("websocket", "SPDY/3.1+portforward.k8s.io", Framing.WS_TUNNEL),
        ("h2c", "", Framing.RAW),
    ],
)
def test_framing_from_the_101(upgrade: str, subprotocol: str, framing: Framing) -> None:
    assert framing_for(upgrade, subprotocol) is framing


def _spdy_server_stream() -> tuple[bytes, bytes]:
    writer = FrameWriter()
    frames = [
        writer.encode(SynReply(stream_id=1)),
        writer.encode(Ping(ping_id=2)),
        writer.encode(Data(stream_id=1, data=b"0123456789")),
        writer.encode(Data(stream_id=3, data=b"abc", fin=True)),
    ]
    payload = b"0123456789abc"
    return b"".join(frames), payload


def test_spdy_corruption_lands_in_data_payload_whatever_the_split() -> None:
    wire, _ = _spdy_server_stream()
    for after in range(len(wire)):
        for out in _run(lambda a=after: Corruptor(a, tracker_for(Framing.SPDY)), wire):  # type: ignore[misc]
            reader = FrameReader()
            reader.receive_data(out)
            frames = [reader.next_frame() for _ in range(4)]  # every frame still decodes
            data = b"".join(f.data for f in frames if isinstance(f, Data))
            changed = [i for i, (x, y) in enumerate(zip(data, b"0123456789abc", strict=True)) if x != y]
            # Offsets in headers or control frames move to the next payload byte; past the end: no change.
            assert len(changed) <= 1
            if after <= len(wire) - 3 - 1:
                assert len(changed) == 1


def test_websocket_channel_byte_and_headers_are_never_corrupted() -> None:
    messages = [b"\x01" + b"x" * 5, b"\x02" + b"y" * 300, b"\x01"]
    wire = b"".join(Frame(Opcode.BINARY, m).serialize(mask=False) for m in messages)
    wire += Frame(Opcode.PING, b"pp").serialize(mask=False)
    for after in range(0, len(wire), 7):
        for out in _run(lambda a=after: Corruptor(a, tracker_for(Framing.WS_CHANNEL)), wire):  # type: ignore[misc]
            diff = [i for i in range(len(wire)) if out[i] != wire[i]]
            assert len(diff) <= 1
            for i in diff:
                assert wire[i] in b"xy"  # only payload bytes, never a header, channel or ping byte


def test_base64_corruption_stays_valid_base64_and_changes_the_data() -> None:
    text = "1" + base64.b64encode(b"hello world!").decode()
    for mask in (False, True):
        wire = Frame(Opcode.TEXT, text.encode()).serialize(mask=mask)
        corruptor = Corruptor(0, tracker_for(Framing.WS_BASE64))
        out = corruptor.feed(wire)
        assert corruptor.flipped_at is not None
        (payload,) = ws_payloads(out)
        assert payload[:1] == b"1"
        assert base64.b64decode(payload[1:], validate=True) != b"hello world!"


def test_tunnelled_spdy_in_websocket_corrupts_inner_data_only() -> None:
    wire_spdy, _ = _spdy_server_stream()
    # The SPDY bytes cut into WebSocket messages at odd places, as a tunnel may.
    wire = b"".join(
        Frame(Opcode.BINARY, wire_spdy[i : i + 5]).serialize(mask=True) for i in range(0, len(wire_spdy), 5)
    )
    assert framing_for("websocket", tunnel_subprotocol("portforward.k8s.io")) is Framing.WS_TUNNEL
    for after in range(0, len(wire), 3):
        corruptor = Corruptor(after, tracker_for(Framing.WS_TUNNEL))
        out = corruptor.feed(wire)
        inner = b"".join(ws_payloads(out))
        reader = FrameReader()
        reader.receive_data(inner)
        frames = [reader.next_frame() for _ in range(4)]
        data = b"".join(f.data for f in frames if isinstance(f, Data))
        assert len(data) == 13


@pytest.mark.parametrize("limit", [0, 1, 5, 9])
def test_truncator_passes_exactly_n_bytes(limit: int) -> None:
    data = b"0123456789"
    for pieces in _splits(data):
        t = Truncator(limit)
        out = b""
        for p in pieces:
            out += t.feed(p)
            if t.finished:
                break
        assert out == data[:limit] and t.finished


def test_spdy_swallower_whatever_the_split() -> None:
    writer = FrameWriter()
    frames: list[Frame_] = [
        SynStream(stream_id=1, headers=(("streamtype", "error"),)),
        SynStream(stream_id=3, headers=(("streamtype", "stdin"),)),
        Data(stream_id=3, data=b"in"),
        Data(stream_id=3, fin=True),
        Data(stream_id=1, fin=True),
    ]
    wire = b"".join(writer.encode(f) for f in frames)
    for out in _run(SpdyEofSwallower, wire):
        reader = FrameReader()
        reader.receive_data(out)
        got = [reader.next_frame() for _ in frames]
        assert [getattr(f, "fin", None) for f in got] == [False, False, False, False, True]


def test_spdy_swallower_refuses_a_control_frame_beyond_the_codec_limit() -> None:
    head = bytes([0x80, 3, 0, 1, 0, 0x7F, 0xFF, 0xFF])  # SYN_STREAM of 8 MiB
    with pytest.raises(FaultStreamError, match="beyond the codec's limit"):
        SpdyEofSwallower().feed(head)


def test_websocket_swallower_whatever_the_split() -> None:
    messages = [b"\x00a", b"\xff\x00", b"\xff\x01", b"\x00" + b"b" * 130]
    wire = b"".join(Frame(Opcode.BINARY, m).serialize(mask=True) for m in messages)
    for out in _run(lambda: WebSocketEofSwallower("v5.channel.k8s.io"), wire):
        assert ws_payloads(out) == [b"\x00a", b"\xff\x01", b"\x00" + b"b" * 130]


def test_only_spdy_and_websocket_v5_have_an_end_of_stdin_to_swallow() -> None:
    assert isinstance(c2s_swallower(Framing.SPDY, ""), SpdyEofSwallower)
    assert isinstance(c2s_swallower(Framing.WS_CHANNEL, "v5.channel.k8s.io"), WebSocketEofSwallower)
    assert not isinstance(c2s_swallower(Framing.WS_CHANNEL, "v4.channel.k8s.io"), WebSocketEofSwallower)


def test_truncation_ends_at_the_first_frame_boundary_at_or_after_n() -> None:
    writer = FrameWriter()
    frames = [writer.encode(Data(stream_id=1, data=bytes([i]) * 10)) for i in range(5)]  # 18 bytes each
    wire = b"".join(frames)
    for limit in (1, 18, 19, 36, 89, 90):
        expected = wire[: -(-limit // 18) * 18]
        for pieces in _splits(wire):
            t = Truncator(limit, tracker_for(Framing.SPDY))
            out = b""
            for p in pieces:
                out += t.feed(p)
                if t.finished:
                    break
            assert out == expected and t.finished, (limit, pieces)
    ws = [Frame(Opcode.BINARY, b"\x01" + b"x" * 20).serialize(mask=False) for _ in range(3)]  # 23 bytes each
    t = Truncator(24, tracker_for(Framing.WS_CHANNEL))
    assert t.feed(b"".join(ws)) == ws[0] + ws[1] and t.finished
