"""SpdyConnection in both roles over an in-memory link: sessions as Kubernetes runs them, every stream
and session rule, limits at N and N+1, and fuzzing of the receive path."""

from __future__ import annotations

import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance.wire.errors import HeaderBlockTooLarge, LocalProtocolError, ReceiveBufferFull, RemoteProtocolError
from conformance.wire.limits import SpdyLimits
from conformance.wire.role import Role
from conformance.wire.spdy_codec import FrameWriter
from conformance.wire.spdy_connection import ConnectionClosed, PingAcknowledged, SpdyConnection, StreamError
from conformance.wire.spdy_dictionary import SPDY3_DICTIONARY
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
    SynReply,
    SynStream,
    WindowUpdate,
)
from conformance.wire.spdy_state import StreamState

from .helpers import FUZZ, LinkedPair, chunkings, control_frame, data_frame, u32


def test_exec_session_as_kubernetes_runs_it() -> None:
    pair = LinkedPair()
    c, s = pair.client, pair.server
    ids = {}
    for kind in ("error", "stdin", "stdout", "stderr"):  # PROTOCOLS.md 3.2 creation order
        sid = c.next_stream_id
        [syn] = pair.to_server(c.send_syn_stream(sid, {"streamtype": kind}))
        assert syn == SynStream(stream_id=sid, headers=(("streamtype", kind),))
        assert pair.to_client(s.send(syn.response())) == [SynReply(stream_id=sid)]
        ids[kind] = sid
    assert list(ids.values()) == [1, 3, 5, 7]
    assert pair.to_server(c.send_data(ids["stdin"], b"echo hi\n") + c.send_fin(ids["stdin"])) == [
        Data(stream_id=3, data=b"echo hi\n"),
        Data(stream_id=3, fin=True),
    ]
    status = b'{"metadata":{},"status":"Success"}'
    out = (
        s.send_data(ids["stdout"], b"hi\n", fin=True)
        + s.send_fin(ids["stderr"])
        + s.send_data(ids["error"], status, fin=True)
    )
    events = pair.to_client(out)
    assert events == [
        Data(stream_id=5, data=b"hi\n", fin=True),
        Data(stream_id=7, fin=True),
        Data(stream_id=1, data=status, fin=True),
    ]
    # Server: stdin got FIN, we FIN it too; then GOAWAY (last good = highest client id) and close.
    assert s.stream_state(3) is StreamState.HALF_CLOSED_REMOTE
    pair.to_client(s.send_fin(3))
    assert s.open_stream_ids == (1, 5, 7)
    assert all(s.stream_state(i) is StreamState.HALF_CLOSED_LOCAL for i in (1, 5, 7))
    assert pair.to_client(s.send_goaway()) == [GoAway(last_good_stream_id=7, status=GoAwayStatus.OK)]
    c.receive_data(b"")
    assert list(c.events()) == [ConnectionClosed(unfinished_stream_ids=())]
    assert c.next_event() is None


def test_port_forward_session_and_rejected_stream() -> None:
    pair = LinkedPair()
    c, s = pair.client, pair.server
    err = pair.open_stream((("streamtype", "error"), ("port", "80"), ("requestid", "0")))
    pair.to_server(c.send_fin(err))  # the client Close()s the error stream right away
    data = pair.open_stream((("streamtype", "data"), ("port", "80"), ("requestid", "0")))
    pair.to_client(s.send_data(data, b"HTTP/1.1 200 OK\r\n"))
    # A stream the server refuses: RST(CANCEL) instead of a reply.
    bad = c.next_stream_id
    [syn] = pair.to_server(c.send_syn_stream(bad, {"streamtype": "bogus"}))
    assert isinstance(syn, SynStream)
    assert pair.to_client(s.send_rst(syn.stream_id)) == [RstStream(stream_id=bad, status=RstStatus.CANCEL)]
    assert c.stream_state(bad) is StreamState.CLOSED
    # The client resets the data stream when it is done (Go's Stream.Reset()).
    assert pair.to_server(c.send_rst(data)) == [RstStream(stream_id=data, status=RstStatus.CANCEL)]
    assert s.stream_state(data) is StreamState.CLOSED


def test_no_flow_control_stall() -> None:
    pair = LinkedPair()
    sid = pair.open_stream()
    payload = bytes(range(256)) * 4096  # 1 MiB, 16 x the SPDY initial window, no WINDOW_UPDATE
    events = pair.to_server(pair.client.send_data(sid, payload))
    assert b"".join(e.data for e in events if isinstance(e, Data)) == payload
    assert len(events) == len(payload) // pair.client.limits.send_data_chunk


def test_settings_and_window_updates_are_reported_not_enforced() -> None:
    pair = LinkedPair()
    frames: list[Settings | WindowUpdate] = [
        Settings(entries=(SettingsEntry(id=7, value=1),)),
        WindowUpdate(stream_id=0, delta=5),
    ]
    assert pair.to_server(b"".join(pair.client.send(f) for f in frames)) == frames


def test_pings_echo_and_acknowledge() -> None:
    pair = LinkedPair()
    c, s = pair.client, pair.server
    assert (c.next_ping_id, s.next_ping_id) == (1, 2)
    [ping] = pair.to_server(c.send_ping(1))
    assert isinstance(ping, Ping) and ping == Ping(ping_id=1)
    assert pair.to_client(s.send(ping.response())) == [PingAcknowledged(ping_id=1)]
    assert c.next_ping_id == 3
    # A server ping (even) is echoed by the client.
    [ping] = pair.to_client(s.send_ping(2))
    assert isinstance(ping, Ping)
    assert pair.to_server(c.send_ping(ping.ping_id)) == [PingAcknowledged(ping_id=2)]
    # SPDY/3 2.6.5: an own-parity PING we never sent is ignored.
    assert pair.to_client(FrameWriter().encode(Ping(ping_id=99))) == []
    assert c.ignored_frames == 1


def test_outstanding_ping_limit_n_and_n_plus_one() -> None:
    conn = SpdyConnection(Role.CLIENT, limits=SpdyLimits(max_outstanding_pings=2))
    conn.send_ping(1)
    with pytest.raises(LocalProtocolError, match="outstanding"):
        conn.send_ping(1)
    conn.send_ping(3)
    with pytest.raises(LocalProtocolError, match="unanswered"):
        conn.send_ping(5)


def test_local_stream_id_rules() -> None:
    c = SpdyConnection(Role.CLIENT)
    with pytest.raises(LocalProtocolError):
        c.send_syn_stream(2)  # server parity
    c.send_syn_stream(5)  # skipping ids is allowed, going back is not
    with pytest.raises(LocalProtocolError):
        c.send_syn_stream(3)
    assert c.next_stream_id == 7
    with pytest.raises(LocalProtocolError):
        c.send(SynStream(stream_id=7, unidirectional=True))
    s = SpdyConnection(Role.SERVER)
    assert s.next_stream_id == 2
    s.send_syn_stream(2)


def test_last_stream_id_then_exhaustion() -> None:
    c = SpdyConnection(Role.CLIENT)
    c.send_syn_stream(0x7FFFFFFF)
    with pytest.raises(LocalProtocolError):
        c.send_syn_stream(c.next_stream_id)


def test_go_peer_send_rules() -> None:
    pair = LinkedPair()
    c, s = pair.client, pair.server
    pair.to_server(c.send_syn_stream(1))
    # Go drops data on a stream it has not replied to: refuse to send it.
    with pytest.raises(LocalProtocolError, match="SEND_DATA"):
        c.send_data(1, b"x")
    with pytest.raises(LocalProtocolError, match="AWAITING_REPLY"):
        c.send_fin(1)
    with pytest.raises(LocalProtocolError):
        s.send_data(1, b"x")  # server must reply first
    with pytest.raises(LocalProtocolError, match="HEADERS"):
        c.send(Headers(stream_id=1))
    pair.to_client(s.send_reply(1))
    with pytest.raises(LocalProtocolError):
        s.send_reply(1)  # one reply only
    pair.to_server(c.send_fin(1))
    with pytest.raises(LocalProtocolError):
        c.send_data(1, b"after fin")
    with pytest.raises(LocalProtocolError):
        c.send_data(9, b"never opened")
    with pytest.raises(LocalProtocolError):
        c.send_rst(9)


def test_local_protocol_error_leaves_connection_usable() -> None:
    pair = LinkedPair()
    sid = pair.open_stream()
    with pytest.raises(LocalProtocolError):
        pair.client.send_data(sid + 2, b"x")
    assert pair.to_server(pair.client.send_data(sid, b"ok")) == [Data(stream_id=sid, data=b"ok")]


def test_syn_stream_with_fin() -> None:
    pair = LinkedPair()
    [syn] = pair.to_server(pair.client.send_syn_stream(1, fin=True))
    assert isinstance(syn, SynStream) and syn.fin
    assert pair.server.stream_state(1) is StreamState.REPLY_DUE_REMOTE_CLOSED
    pair.to_client(pair.server.send_reply(1, fin=True))
    assert pair.client.stream_state(1) is StreamState.CLOSED
    assert pair.server.stream_state(1) is StreamState.CLOSED


# --- peer violations -----------------------------------------------------------------------------


def _server_fed(*raw: bytes) -> tuple[SpdyConnection, list[object]]:
    server = SpdyConnection(Role.SERVER)
    server.receive_data(b"".join(raw))
    return server, list(server.events())


def test_syn_stream_id_not_increasing_is_a_stream_error() -> None:
    writer = FrameWriter()
    # PROTOCOLS.md 1.2: spdystream answers RST_STREAM(PROTOCOL_ERROR) and drops the frame.
    server, events = _server_fed(writer.encode(SynStream(stream_id=5)), writer.encode(SynStream(stream_id=3)))
    error = events[1]
    assert isinstance(error, StreamError)
    assert (error.stream_id, error.status) == (3, RstStatus.PROTOCOL_ERROR)
    rst = server.send(error.response())
    assert rst == bytes.fromhex("80030003 00000008 00000003 00000001")
    assert server.stream_state(5) is StreamState.REPLY_DUE


def test_syn_stream_with_our_parity_is_fatal() -> None:
    server = SpdyConnection(Role.SERVER)
    server.receive_data(FrameWriter().encode(SynStream(stream_id=2)))
    with pytest.raises(RemoteProtocolError, match="parity"):
        server.next_event()


def test_data_before_reply_is_a_stream_error() -> None:
    pair = LinkedPair()
    pair.to_server(pair.client.send_syn_stream(1))
    [err] = pair.to_client(data_frame(1, b"early"))
    assert isinstance(err, StreamError) and err.status is RstStatus.PROTOCOL_ERROR
    assert pair.client.stream_state(1) is StreamState.CLOSED
    # Later frames on the stream we reset are in-flight leftovers: ignored and counted.
    assert pair.to_client(data_frame(1, b"more")) == []
    assert pair.client.ignored_frames == 1


def test_duplicate_reply_through_shared_context() -> None:
    pair = LinkedPair()
    writer = FrameWriter()
    pair.client.send_syn_stream(1)
    assert pair.to_client(writer.encode(SynReply(stream_id=1))) == [SynReply(stream_id=1)]
    [err] = pair.to_client(writer.encode(SynReply(stream_id=1)))
    assert err == StreamError(stream_id=1, status=RstStatus.STREAM_IN_USE, reason=err.reason)  # type: ignore[union-attr]


def test_data_after_fin_is_stream_already_closed() -> None:
    pair = LinkedPair()
    sid = pair.open_stream()
    pair.to_client(pair.server.send_fin(sid))
    [err] = pair.to_client(data_frame(sid, b"late"))
    assert isinstance(err, StreamError) and err.status is RstStatus.STREAM_ALREADY_CLOSED


def test_data_after_clean_close_is_stream_already_closed() -> None:
    pair = LinkedPair()
    sid = pair.open_stream()
    pair.to_client(pair.server.send_fin(sid))
    pair.to_server(pair.client.send_fin(sid))
    assert pair.client.stream_state(sid) is StreamState.CLOSED
    [err] = pair.to_client(data_frame(sid, b"late"))
    assert isinstance(err, StreamError) and err.status is RstStatus.STREAM_ALREADY_CLOSED
    assert pair.to_client(data_frame(sid, b"later")) == []  # now reset by us: ignored


def test_data_on_idle_stream_is_invalid_stream() -> None:
    _, events = _server_fed(data_frame(1, b"x"))
    assert isinstance(events[0], StreamError) and events[0].status is RstStatus.INVALID_STREAM


def test_rst_on_unknown_stream_is_ignored() -> None:
    server, events = _server_fed(control_frame(3, u32(9, 5)))
    assert events == [] and server.ignored_frames == 1


def test_headers_frame_is_reported_and_fin_closes() -> None:
    writer = FrameWriter()
    server, events = _server_fed(
        writer.encode(SynStream(stream_id=1)),
        writer.encode(Headers(stream_id=1, headers=(("x", "y"),), fin=True)),
    )
    assert events[1] == Headers(stream_id=1, headers=(("x", "y"),), fin=True)
    assert server.stream_state(1) is StreamState.REPLY_DUE_REMOTE_CLOSED


def test_unidirectional_stream_is_refused() -> None:
    raw = control_frame(1, u32(1, 0) + b"\0\0" + FrameWriter()._compressor.compress(()), flags=2)
    _, events = _server_fed(raw)
    assert isinstance(events[0], StreamError) and events[0].status is RstStatus.REFUSED_STREAM


def test_concurrent_stream_limit_n_and_n_plus_one() -> None:
    limits = SpdyLimits(max_concurrent_streams=2)
    writer = FrameWriter()
    server = SpdyConnection(Role.SERVER, limits=limits)
    server.receive_data(b"".join(writer.encode(SynStream(stream_id=i)) for i in (1, 3, 5)))
    events = list(server.events())
    assert [type(e) for e in events] == [SynStream, SynStream, StreamError]
    assert events[2].status is RstStatus.REFUSED_STREAM  # type: ignore[union-attr]
    client = SpdyConnection(Role.CLIENT, limits=limits)
    client.send_syn_stream(1)
    client.send_syn_stream(3)
    with pytest.raises(LocalProtocolError, match="limit"):
        client.send_syn_stream(5)


def test_remembered_closed_streams_are_bounded() -> None:
    pair = LinkedPair(
        client=SpdyConnection(Role.CLIENT, limits=SpdyLimits(max_remembered_closed_streams=2)),
    )
    for _ in range(3):
        sid = pair.open_stream()
        pair.to_client(pair.server.send_fin(sid))
        pair.to_server(pair.client.send_fin(sid))
    assert pair.client.stream_state(1) is None  # forgotten
    assert pair.client.stream_state(5) is StreamState.CLOSED
    assert pair.to_client(data_frame(1, b"late")) == []  # forgotten: treated as a leftover
    [err] = pair.to_client(data_frame(5, b"late"))
    assert isinstance(err, StreamError)


def test_receive_buffer_limit_on_connection() -> None:
    conn = SpdyConnection(Role.SERVER, limits=SpdyLimits(max_receive_buffer=8))
    conn.receive_data(b"\0" * 8)
    with pytest.raises(ReceiveBufferFull):
        conn.receive_data(b"\0")


# --- GOAWAY and the end of a session -------------------------------------------------------------


def test_goaway_sent_stops_all_sending_and_new_peer_streams_are_ignored() -> None:
    pair = LinkedPair()
    sid = pair.open_stream()
    pair.to_client(pair.server.send_goaway())
    with pytest.raises(LocalProtocolError, match="GOAWAY"):
        pair.server.send_data(sid, b"x")
    with pytest.raises(LocalProtocolError):
        pair.client.send_syn_stream(pair.client.next_stream_id)  # the client saw GOAWAY
    raw = FrameWriter()
    raw.encode(SynStream(stream_id=1))  # keep this context in step with the client's
    assert pair.to_server(raw.encode(SynStream(stream_id=3))) == []
    assert pair.server.ignored_frames == 1
    assert pair.to_server(data_frame(sid, b"still delivered")) == [Data(stream_id=sid, data=b"still delivered")]
    # Responses to events stay sendable: PING echo and RST.
    [ping] = pair.to_server(pair.client.send_ping(1))
    assert isinstance(ping, Ping)
    pair.server.send(ping.response())
    pair.server.send_rst(sid)
    with pytest.raises(LocalProtocolError):
        pair.server.send_goaway()


def test_syn_stream_after_peer_goaway_is_fatal_and_second_goaway_ignored() -> None:
    writer = FrameWriter()
    server = SpdyConnection(Role.SERVER)
    server.receive_data(writer.encode(GoAway()) + writer.encode(GoAway(status=2)))
    assert list(server.events()) == [GoAway()]
    assert server.goaway_received == GoAway()
    server.receive_data(writer.encode(SynStream(stream_id=1)))
    with pytest.raises(RemoteProtocolError, match="GOAWAY"):
        server.next_event()


def test_error_state_re_raises_and_allows_only_goaway() -> None:
    pair = LinkedPair()
    sid = pair.open_stream()
    pair.server.receive_data(control_frame(5))
    with pytest.raises(RemoteProtocolError) as exc:
        pair.server.next_event()
    with pytest.raises(RemoteProtocolError) as again:
        pair.server.receive_data(b"more")
    assert again.value is exc.value
    with pytest.raises(RemoteProtocolError):
        pair.server.next_event()
    with pytest.raises(LocalProtocolError, match="ERROR"):
        pair.server.send_data(sid, b"x")
    goaway = pair.server.send_goaway(exc.value.goaway_status or 0)
    assert goaway == bytes.fromhex("80030007 00000008 00000001 00000001")


def test_eof_inside_a_frame_is_fatal() -> None:
    conn = SpdyConnection(Role.CLIENT)
    conn.receive_data(data_frame(2, b"abc")[:-1])
    conn.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match="inside a frame"):
        conn.next_event()


def test_receive_after_eof_is_a_local_error() -> None:
    conn = SpdyConnection(Role.CLIENT)
    conn.receive_data(b"")
    with pytest.raises(LocalProtocolError):
        conn.receive_data(b"x")


def test_session_bytes_in_any_chunking_give_the_same_events() -> None:
    writer = FrameWriter()
    frames: list[Frame] = [
        SynStream(stream_id=1, headers=(("streamtype", "stdin"),)),
        Data(stream_id=1, data=b"abc", fin=True),
        Ping(ping_id=2),
    ]
    raw = b"".join(writer.encode(f) for f in frames)
    for label, chunks in chunkings(raw):
        server = SpdyConnection(Role.SERVER)
        got: list[object] = []
        for chunk in chunks:
            server.receive_data(chunk)
            got += server.events()
        # The even PING has the server's own parity and was never sent by it: ignored.
        assert got == frames[:2], label
        assert server.ignored_frames == 1


# --- fuzz ----------------------------------------------------------------------------------------

_frame_strategy = st.one_of(
    st.builds(SynStream, stream_id=st.integers(1, 12), fin=st.booleans()),
    st.builds(SynReply, stream_id=st.integers(1, 12), fin=st.booleans()),
    st.builds(Headers, stream_id=st.integers(1, 12), fin=st.booleans()),
    st.builds(Data, stream_id=st.integers(1, 12), data=st.binary(max_size=8), fin=st.booleans()),
    st.builds(RstStream, stream_id=st.integers(1, 12), status=st.integers(1, 12)),
    st.builds(Ping, ping_id=st.integers(1, 6)),
    st.builds(GoAway, last_good_stream_id=st.integers(0, 12)),
    st.builds(WindowUpdate, stream_id=st.integers(0, 12), delta=st.integers(1, 10)),
)


@FUZZ
@given(st.lists(_frame_strategy, max_size=20), st.sampled_from(Role))
def test_any_valid_frame_sequence_only_yields_events_or_remote_protocol_error(frames: list[Frame], role: Role) -> None:
    writer = FrameWriter()
    conn = SpdyConnection(role, limits=SpdyLimits(max_concurrent_streams=3, max_remembered_closed_streams=2))
    conn.send_syn_stream(conn.next_stream_id)
    conn.send_ping(conn.next_ping_id)
    try:
        for frame in frames:
            conn.receive_data(writer.encode(frame))
            for event in conn.events():
                if isinstance(event, StreamError | Ping | SynStream):  # every response must stay sendable
                    conn.send(event.response())
                assert len(conn.open_stream_ids) <= 3
    except RemoteProtocolError:
        pass


@FUZZ
@given(st.binary(max_size=1024), st.sampled_from(Role))
def test_arbitrary_bytes_only_raise_remote_protocol_error(data: bytes, role: Role) -> None:
    conn = SpdyConnection(role, limits=SpdyLimits(max_control_frame_payload=512, max_data_frame_payload=512))
    try:
        if data:
            conn.receive_data(data)
        conn.receive_data(b"")
        list(conn.events())
    except RemoteProtocolError:
        pass


def test_zlib_bomb_in_syn_stream_ends_the_session_with_typed_error() -> None:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 15, 9, zlib.Z_DEFAULT_STRATEGY, SPDY3_DICTIONARY)
    block = compressor.compress(u32(1, 1) + b"x" + u32(16 * 1024 * 1024)) + compressor.compress(bytes(16 * 1024 * 1024))
    block += compressor.flush(zlib.Z_SYNC_FLUSH)
    server = SpdyConnection(Role.SERVER)
    server.receive_data(control_frame(1, u32(1, 0) + b"\0\0" + block))
    with pytest.raises(HeaderBlockTooLarge) as exc:
        server.next_event()
    assert exc.value.goaway_status == GoAwayStatus.PROTOCOL_ERROR


def _session_bytes() -> bytes:
    writer = FrameWriter()
    frames: list[Frame] = [
        SynStream(stream_id=1, headers=(("streamtype", "error"),)),
        SynStream(stream_id=3, headers=(("streamtype", "stdin"),)),
        Data(stream_id=3, data=b"input"),
        Data(stream_id=3, fin=True),
        Ping(ping_id=1),
        RstStream(stream_id=1, status=RstStatus.CANCEL),
        GoAway(last_good_stream_id=0),
    ]
    return b"".join(writer.encode(f) for f in frames)


SESSION = _session_bytes()


@FUZZ
@given(st.data())
def test_mutated_sessions_only_raise_remote_protocol_error(data: st.DataObject) -> None:
    raw = bytearray(SESSION)
    for _ in range(data.draw(st.integers(1, 6))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    server = SpdyConnection(Role.SERVER, limits=SpdyLimits(max_control_frame_payload=1024, max_data_frame_payload=64))
    try:
        server.receive_data(bytes(raw))
        for event in server.events():
            if isinstance(event, StreamError | Ping | SynStream):
                server.send(event.response())
    except RemoteProtocolError:
        pass


def test_eof_reports_streams_the_peer_never_finished() -> None:
    pair = LinkedPair()
    error_stream = pair.open_stream((("streamtype", "error"),))
    stdout = pair.open_stream((("streamtype", "stdout"),))
    pair.to_client(pair.server.send_fin(stdout))
    pair.client.receive_data(b"")
    # The error stream never got its Status nor a FIN: a proxy dropped it, or the server died.
    assert list(pair.client.events()) == [ConnectionClosed(unfinished_stream_ids=(error_stream,))]
