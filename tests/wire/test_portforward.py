"""Port-forward framing (PROTOCOLS.md 4, 5.4, 5.5): SPDY stream headers and pairing, legacy WebSocket
channels with port prefixes, and a SPDY session tunnelled through tiny WebSocket messages."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance.wire.channels import ChannelCodec
from conformance.wire.errors import LocalProtocolError, RemoteProtocolError
from conformance.wire.portforward import (
    PortForwardData,
    PortForwardError,
    PortForwardPairer,
    PortForwardStream,
    PortForwardStreamType,
    WebSocketPortForwardCodec,
    parse_port_forward_stream,
    port_forward_headers,
    tunnel_subprotocol,
    tunnelled_protocol,
    unwrap_tunnel_message,
    wrap_tunnel_bytes,
)
from conformance.wire.role import Role
from conformance.wire.spdy_frames import Data, RstStatus, SynReply, SynStream
from conformance.wire.spdy_headers import HeaderList

from .helpers import FUZZ, LinkedPair

DATA, ERROR = PortForwardStreamType.DATA, PortForwardStreamType.ERROR


# --- SPDY streams ----------------------------------------------------------------------------------


def test_headers_are_lowercase_and_parse_back() -> None:
    headers = port_forward_headers(ERROR, 8080, 0)
    assert headers == (("streamtype", "error"), ("port", "8080"), ("requestid", "0"))
    assert parse_port_forward_stream(1, headers) == PortForwardStream(
        stream_id=1, stream_type=ERROR, port=8080, request_id="0"
    )


def test_parse_matches_names_case_insensitively() -> None:
    headers = (("StreamType", "data"), ("Port", "80"))
    assert parse_port_forward_stream(3, headers).request_id is None


@pytest.mark.parametrize(
    "headers",
    [
        (("streamtype", "data"),),
        (("streamtype", "data"), ("port", "0")),
        (("streamtype", "data"), ("port", "65536")),
        (("streamtype", "data"), ("port", "+80")),
        (("streamtype", "data"), ("port", "\uff18\uff10")),  # fullwidth digits
        (("streamtype", "data"), ("port", "")),
        (("streamtype", "Data"), ("port", "80")),
        (("port", "80"),),
    ],
)
def test_parse_refuses_with_rst_cancel(headers: HeaderList) -> None:
    with pytest.raises(RemoteProtocolError) as exc:
        parse_port_forward_stream(5, headers)
    assert (exc.value.stream_id, exc.value.rst_status, exc.value.goaway_status) == (5, RstStatus.CANCEL, None)


def test_port_range_n_and_n_plus_one() -> None:
    assert parse_port_forward_stream(1, (("streamtype", "data"), ("port", "65535"))).port == 65535
    assert parse_port_forward_stream(1, (("streamtype", "data"), ("port", "00001"))).port == 1
    # Go's ParseUint takes any number of leading zeros; Python's int() would refuse 4300+ digits.
    assert parse_port_forward_stream(1, (("streamtype", "data"), ("port", "0" * 5000 + "80"))).port == 80
    with pytest.raises(RemoteProtocolError):
        parse_port_forward_stream(1, (("streamtype", "data"), ("port", "9" * 5000)))
    with pytest.raises(LocalProtocolError):
        port_forward_headers(DATA, 65536, 0)


def _stream(sid: int, kind: PortForwardStreamType, request_id: str | None) -> PortForwardStream:
    return PortForwardStream(stream_id=sid, stream_type=kind, port=80, request_id=request_id)


def test_pairing_by_request_id_in_any_order() -> None:
    pairer = PortForwardPairer()
    assert pairer.add(_stream(5, DATA, "1"), now=0) is None
    assert pairer.add(_stream(7, ERROR, "2"), now=0) is None
    pair = pairer.add(_stream(3, ERROR, "1"), now=0)
    assert pair is not None and (pair.request_id, pair.data.stream_id, pair.error.stream_id) == ("1", 5, 3)
    assert pairer.pending == 1


def test_pairing_without_request_id_uses_stream_ids() -> None:
    # "the error stream's id becomes its own SPDY stream id, and the data stream's id ... - 2"
    pairer = PortForwardPairer()
    assert pairer.add(_stream(1, ERROR, None), now=0) is None
    pair = pairer.add(_stream(3, DATA, None), now=0)
    assert pair is not None and pair.request_id == "1"


def test_duplicate_type_in_a_pair() -> None:
    pairer = PortForwardPairer()
    pairer.add(_stream(1, ERROR, "0"), now=0)
    with pytest.raises(RemoteProtocolError, match="duplicate error") as exc:
        pairer.add(_stream(3, ERROR, "0"), now=0)
    assert exc.value.stream_id == 3 and exc.value.goaway_status is None


def test_pending_pairs_limit_n_and_n_plus_one_and_expiry() -> None:
    pairer = PortForwardPairer(max_pending=2)
    pairer.add(_stream(1, ERROR, "a"), now=0)
    pairer.add(_stream(3, ERROR, "b"), now=10)
    with pytest.raises(RemoteProtocolError) as exc:
        pairer.add(_stream(5, ERROR, "c"), now=10)
    assert exc.value.rst_status == RstStatus.REFUSED_STREAM
    assert pairer.expire(30) == []
    assert [s.stream_id for s in pairer.expire(30.5)] == [1]
    assert pairer.pending == 1


def test_port_forward_over_spdy_pair() -> None:
    pair = LinkedPair()
    pairer = PortForwardPairer()
    result = None
    for kind in (ERROR, DATA):
        sid = pair.client.next_stream_id
        [syn] = pair.to_server(pair.client.send_syn_stream(sid, port_forward_headers(kind, 8080, 0)))
        assert isinstance(syn, SynStream)
        result = pairer.add(parse_port_forward_stream(sid, syn.headers), now=0)
        assert pair.to_client(pair.server.send(syn.response())) == [SynReply(stream_id=sid)]
    assert result is not None and (result.error.stream_id, result.data.stream_id) == (1, 3)


# --- legacy WebSocket ------------------------------------------------------------------------------


def test_server_port_prefixes_vector() -> None:
    server = WebSocketPortForwardCodec([8080, 9090], subprotocol="v4.channel.k8s.io", role=Role.SERVER)
    # PROTOCOLS.md 5.4: "[0x00, 0x90, 0x1F] for port 8080 on channel 0 and [0x01, 0x90, 0x1F] on channel 1"
    assert server.initial_messages() == [b"\x00\x90\x1f", b"\x01\x90\x1f", b"\x02\x82\x23", b"\x03\x82\x23"]
    with pytest.raises(LocalProtocolError):
        server.initial_messages()


def test_client_strips_prefixes_then_passes_data() -> None:
    server = WebSocketPortForwardCodec([8080, 9090], subprotocol="", role=Role.SERVER)
    client = WebSocketPortForwardCodec([8080, 9090], subprotocol="", role=Role.CLIENT)
    assert [client.decode(m) for m in server.initial_messages()] == [None] * 4
    assert client.decode(server.encode_data(1, b"pong")) == PortForwardData(port_index=1, port=9090, data=b"pong")
    assert client.decode(server.encode_error(0, b"dial failed")) == PortForwardError(
        port_index=0, port=8080, data=b"dial failed"
    )
    # Data after the prefix in the same first message is kept.
    fresh = WebSocketPortForwardCodec([8080], subprotocol="", role=Role.CLIENT)
    assert fresh.decode(b"\x00\x90\x1fhello") == PortForwardData(port_index=0, port=8080, data=b"hello")


def test_base64_variant_carries_prefix_inside_base64() -> None:
    server = WebSocketPortForwardCodec([8080], subprotocol="v4.base64.channel.k8s.io", role=Role.SERVER)
    assert server.initial_messages() == ["0kB8=", "1kB8="]
    client = WebSocketPortForwardCodec([8080], subprotocol="v4.base64.channel.k8s.io", role=Role.CLIENT)
    assert client.decode("0kB8=") is None
    assert client.decode(server.encode_data(0, b"x")) == PortForwardData(port_index=0, port=8080, data=b"x")


def test_client_sends_raw_data_and_server_reads_it() -> None:
    client = WebSocketPortForwardCodec([80], subprotocol="v4.channel.k8s.io", role=Role.CLIENT)
    server = WebSocketPortForwardCodec([80], subprotocol="v4.channel.k8s.io", role=Role.SERVER)
    assert client.encode_data(0, b"GET /") == b"\x00GET /"
    assert server.decode(b"\x00GET /") == PortForwardData(port_index=0, port=80, data=b"GET /")
    assert server.decode(b"\x01ignored") is None  # client text on an error channel
    assert server.decode(b"\x09unknown") is None  # "silently drops data for channels it does not know"


@pytest.mark.parametrize(
    ("message", "match"),
    [(b"\x00\x90", "lacks"), (b"\x00\x91\x1f", "expected 8080"), (b"\x05\x00\x00", "only 1 ports")],
)
def test_client_refuses_bad_prefixes(message: bytes, match: str) -> None:
    client = WebSocketPortForwardCodec([8080], subprotocol="", role=Role.CLIENT)
    with pytest.raises(RemoteProtocolError, match=match):
        client.decode(message)


def test_websocket_codec_local_rules() -> None:
    with pytest.raises(LocalProtocolError, match="not a WebSocket port-forward subprotocol"):
        WebSocketPortForwardCodec([80], subprotocol="portforward.k8s.io", role=Role.CLIENT)
    with pytest.raises(LocalProtocolError):
        WebSocketPortForwardCodec([], subprotocol="", role=Role.CLIENT)
    with pytest.raises(LocalProtocolError):
        WebSocketPortForwardCodec([0], subprotocol="", role=Role.CLIENT)
    server = WebSocketPortForwardCodec([80], subprotocol="", role=Role.SERVER)
    with pytest.raises(LocalProtocolError, match="initial_messages"):
        server.encode_data(0, b"x")
    client = WebSocketPortForwardCodec([80], subprotocol="", role=Role.CLIENT)
    with pytest.raises(LocalProtocolError):
        client.encode_error(0, b"x")
    with pytest.raises(LocalProtocolError):
        client.encode_data(1, b"x")


def test_forwarded_ports_limit_n_and_n_plus_one() -> None:
    WebSocketPortForwardCodec([1] * 127, subprotocol="", role=Role.SERVER)
    with pytest.raises(LocalProtocolError):
        WebSocketPortForwardCodec([1] * 128, subprotocol="", role=Role.SERVER)


@FUZZ
@given(
    st.sampled_from(["", "v4.channel.k8s.io", "v4.base64.channel.k8s.io"]),
    st.sampled_from(Role),
    st.lists(st.one_of(st.binary(max_size=16), st.text(max_size=16)), max_size=6),
)
def test_arbitrary_websocket_messages_only_raise_remote_protocol_error(
    subprotocol: str, role: Role, messages: list[bytes | str]
) -> None:
    codec = WebSocketPortForwardCodec([8080, 9090], subprotocol=subprotocol, role=role)
    try:
        for message in messages:
            codec.decode(message)
    except RemoteProtocolError:
        pass


# --- KEP-4006 tunnel -------------------------------------------------------------------------------


def test_tunnel_subprotocol() -> None:
    assert tunnel_subprotocol() == "SPDY/3.1+portforward.k8s.io"
    assert tunnelled_protocol("SPDY/3.1+portforward.k8s.io") == "portforward.k8s.io"
    for bad in ("portforward.k8s.io", "SPDY/3.1+portforward", "v4.channel.k8s.io"):
        with pytest.raises(RemoteProtocolError):
            tunnelled_protocol(bad)


def test_tunnel_refuses_text_messages() -> None:
    with pytest.raises(RemoteProtocolError) as exc:
        unwrap_tunnel_message("text")
    assert exc.value.close_code == 1003


def test_wrap_limit_n_and_n_plus_one() -> None:
    assert wrap_tunnel_bytes(b"x" * 8, max_message=8) == [b"x" * 8]
    assert wrap_tunnel_bytes(b"x" * 9, max_message=8) == [b"x" * 8, b"x"]
    assert wrap_tunnel_bytes(b"") == []


@pytest.mark.parametrize("message_size", [2, 3, 4, 1000])
def test_spdy_session_through_tiny_websocket_messages(message_size: int) -> None:
    # Go sends one WebSocket message per write(), often 2-4 bytes: frames span many messages.
    pair = LinkedPair()

    def to_server(data: bytes) -> list[object]:
        out: list[object] = []
        for message in wrap_tunnel_bytes(data, max_message=message_size):
            pair.server.receive_data(unwrap_tunnel_message(message))
            out += pair.server.events()
        return out

    sid = pair.client.next_stream_id
    [syn] = to_server(pair.client.send_syn_stream(sid, port_forward_headers(DATA, 80, 0)))
    assert isinstance(syn, SynStream)
    pair.to_client(pair.server.send_reply(sid))
    assert to_server(pair.client.send_data(sid, b"payload", fin=True)) == [
        Data(stream_id=sid, data=b"payload", fin=True)
    ]


def test_channel_codec_is_reused_for_port_forward() -> None:
    # The port-forward codec is the channel codec plus prefixes: one framing implementation.
    codec = ChannelCodec("v4.channel.k8s.io", role=Role.CLIENT, channel_count=4)
    assert codec.encode(2, b"x") == b"\x02x"
