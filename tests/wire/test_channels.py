"""WebSocket channel framing (PROTOCOLS.md 5.2-5.3): vectors per subprotocol and role, CLOSE, fuzz."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance.wire.channels import (
    BASE64_SUBPROTOCOLS,
    BINARY_SUBPROTOCOLS,
    CLOSE_INVALID_PAYLOAD,
    CLOSE_UNSUPPORTED_DATA,
    Channel,
    ChannelClosed,
    ChannelCodec,
    ChannelData,
)
from conformance.wire.errors import LocalProtocolError, RemoteProtocolError
from conformance.wire.role import Role

from .helpers import FUZZ

ALL_SUBPROTOCOLS = sorted(BINARY_SUBPROTOCOLS | BASE64_SUBPROTOCOLS)


def test_binary_vectors() -> None:
    server = ChannelCodec("v5.channel.k8s.io", role=Role.SERVER)
    assert server.encode(Channel.STDOUT, b"hi") == b"\x01hi"
    assert server.encode(Channel.STDOUT) == b"\x01"  # readiness message: "the single byte 01"
    client = ChannelCodec("v5.channel.k8s.io", role=Role.CLIENT)
    assert client.decode(b"\x01") == ChannelData(channel=1, data=b"")
    assert client.decode(b"\x02err") == ChannelData(channel=2, data=b"err")
    assert client.encode(Channel.STDIN, b"ls\n") == b"\x00ls\n"


def test_base64_vectors() -> None:
    server = ChannelCodec("v4.base64.channel.k8s.io", role=Role.SERVER)
    assert server.encode(Channel.STDOUT, b"hello") == "1aGVsbG8="
    assert server.encode(Channel.STDOUT) == "1"  # readiness: "in base64 protocols it is the text "1""
    client = ChannelCodec("base64.channel.k8s.io", role=Role.CLIENT)
    assert client.decode("1aGVsbG8=") == ChannelData(channel=1, data=b"hello")
    # "decodes client frames the same way, whether they arrive as text or binary"
    assert server.decode(b"0bHM=") == ChannelData(channel=0, data=b"ls")
    assert server.decode("0bHM=") == ChannelData(channel=0, data=b"ls")


def test_v5_close_signal() -> None:
    client = ChannelCodec("v5.channel.k8s.io", role=Role.CLIENT)
    assert client.encode_close(Channel.STDIN) == b"\xff\x00"
    server = ChannelCodec("v5.channel.k8s.io", role=Role.SERVER)
    assert server.decode(b"\xff\x00") == ChannelClosed(channel=0)
    assert server.decode(b"\xff\x04") == ChannelClosed(channel=4)


@pytest.mark.parametrize("message", [b"\xff", b"\xff\x00\x00", b"\xff\x05", b"\xff\xff"])
def test_v5_close_signal_must_be_two_bytes_naming_a_known_channel(message: bytes) -> None:
    with pytest.raises(RemoteProtocolError, match="CLOSE"):
        ChannelCodec("v5.channel.k8s.io", role=Role.SERVER).decode(message)


def test_close_channel_count_n_and_n_plus_one() -> None:
    server = ChannelCodec("v5.channel.k8s.io", role=Role.SERVER, channel_count=3)
    assert server.decode(b"\xff\x02") == ChannelClosed(channel=2)
    with pytest.raises(RemoteProtocolError):
        server.decode(b"\xff\x03")


def test_close_signal_rules() -> None:
    with pytest.raises(RemoteProtocolError, match="only clients"):
        ChannelCodec("v5.channel.k8s.io", role=Role.CLIENT).decode(b"\xff\x00")
    with pytest.raises(LocalProtocolError):
        ChannelCodec("v5.channel.k8s.io", role=Role.SERVER).encode_close(0)
    with pytest.raises(LocalProtocolError, match="only v5"):
        ChannelCodec("v4.channel.k8s.io", role=Role.CLIENT).encode_close(0)
    with pytest.raises(LocalProtocolError):
        ChannelCodec("v5.channel.k8s.io", role=Role.CLIENT).encode_close(5)
    with pytest.raises(LocalProtocolError):
        ChannelCodec("v5.channel.k8s.io", role=Role.CLIENT).encode(255, b"")
    # Before v5, 255 is just an unknown channel.
    assert ChannelCodec("v4.channel.k8s.io", role=Role.SERVER).decode(b"\xff\x00") == ChannelData(
        channel=255, data=b"\x00"
    )


def test_text_on_binary_protocol() -> None:
    with pytest.raises(RemoteProtocolError) as exc:
        ChannelCodec("v5.channel.k8s.io", role=Role.CLIENT).decode("\x01hi")
    assert exc.value.close_code == CLOSE_UNSUPPORTED_DATA
    # The Go server reads text frames as bytes.
    assert ChannelCodec("v4.channel.k8s.io", role=Role.SERVER).decode("\x00ls") == ChannelData(channel=0, data=b"ls")


def test_empty_messages() -> None:
    assert ChannelCodec("channel.k8s.io", role=Role.SERVER).decode(b"") is None
    with pytest.raises(RemoteProtocolError):
        ChannelCodec("channel.k8s.io", role=Role.CLIENT).decode(b"")


@pytest.mark.parametrize("message", ["1aGVsbG8", "1a=GV", "1aGVs bG8=", "/aGVsbG8=", "1\u00e9", b"1\xff"])
def test_bad_base64_is_refused(message: str | bytes) -> None:
    with pytest.raises(RemoteProtocolError) as exc:
        ChannelCodec("v4.base64.channel.k8s.io", role=Role.CLIENT).decode(message)
    assert exc.value.close_code in (CLOSE_INVALID_PAYLOAD, 1002)


def test_base64_channel_range_n_and_n_plus_one() -> None:
    codec = ChannelCodec("base64.channel.k8s.io", role=Role.SERVER)
    assert codec.encode(79, b"") == "\x7f"
    assert codec.decode("\x7f") == ChannelData(channel=79)
    with pytest.raises(LocalProtocolError):
        codec.encode(80, b"")


def test_unknown_subprotocol_and_channel_range() -> None:
    with pytest.raises(LocalProtocolError):
        ChannelCodec("v5.base64.channel.k8s.io", role=Role.CLIENT)  # "There is no base64 form of v5."
    with pytest.raises(LocalProtocolError):
        ChannelCodec("channel.k8s.io", role=Role.CLIENT).encode(256, b"")


@FUZZ
@given(st.sampled_from(ALL_SUBPROTOCOLS), st.sampled_from(Role), st.integers(0, 79), st.binary(max_size=64))
def test_round_trip(subprotocol: str, role: Role, channel: int, data: bytes) -> None:
    if subprotocol in BINARY_SUBPROTOCOLS and subprotocol.startswith("v5") and channel == 255:
        return
    sender = ChannelCodec(subprotocol, role=role)
    receiver = ChannelCodec(subprotocol, role=Role.SERVER if role is Role.CLIENT else Role.CLIENT)
    assert receiver.decode(sender.encode(channel, data)) == ChannelData(channel=channel, data=data)


@FUZZ
@given(
    st.sampled_from(ALL_SUBPROTOCOLS),
    st.sampled_from(Role),
    st.one_of(st.binary(max_size=64), st.text(max_size=64)),
)
def test_arbitrary_messages_only_raise_remote_protocol_error(
    subprotocol: str, role: Role, message: bytes | str
) -> None:
    try:
        ChannelCodec(subprotocol, role=role).decode(message)
    except RemoteProtocolError:
        pass
