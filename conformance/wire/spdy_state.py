"""The SPDY/3 per-stream state machine: one ``(state, input) -> next state`` table.

Role-blind and I/O-free: the connection feeds it "we sent X" / "peer sent Y" inputs and raises on
any pair missing from the table. A frame carrying FIN is fed as two inputs (the frame, then FIN), which
keeps the table small.

Deviation from the SPDY/3 draft, made for Go peers (PROTOCOLS.md 1.5): we refuse to *send* DATA (or a
FIN) on a stream we opened before its SYN_REPLY arrived. The draft allows it, but spdystream silently
drops data on a stream it has not replied to, so such bytes would vanish. Client-go also waits for the
reply. Data *received* before we replied is accepted, as the draft says.
"""

from __future__ import annotations

from enum import Enum, auto


class StreamState(Enum):
    # We sent SYN_STREAM and wait for SYN_REPLY.
    AWAITING_REPLY = auto()
    # We sent SYN_STREAM with FIN and wait for SYN_REPLY.
    AWAITING_REPLY_LOCAL_CLOSED = auto()
    # The peer sent SYN_STREAM; we owe SYN_REPLY (or RST_STREAM to refuse).
    REPLY_DUE = auto()
    # The peer sent SYN_STREAM and FIN before we replied.
    REPLY_DUE_REMOTE_CLOSED = auto()
    OPEN = auto()
    HALF_CLOSED_LOCAL = auto()  # we sent FIN; the peer may still send
    HALF_CLOSED_REMOTE = auto()  # the peer sent FIN; we may still send
    CLOSED = auto()


class StreamInput(Enum):
    SEND_REPLY = auto()
    SEND_DATA = auto()
    SEND_FIN = auto()
    SEND_RST = auto()
    RECV_REPLY = auto()
    RECV_DATA = auto()  # DATA or HEADERS
    RECV_FIN = auto()
    RECV_RST = auto()


S, I = StreamState, StreamInput  # noqa: E741 - short aliases keep the table readable

TRANSITIONS: dict[tuple[StreamState, StreamInput], StreamState] = {
    (S.AWAITING_REPLY, I.RECV_REPLY): S.OPEN,
    (S.AWAITING_REPLY, I.SEND_RST): S.CLOSED,
    (S.AWAITING_REPLY, I.RECV_RST): S.CLOSED,  # "stream reset": the peer refused the stream
    (S.AWAITING_REPLY_LOCAL_CLOSED, I.RECV_REPLY): S.HALF_CLOSED_LOCAL,
    (S.AWAITING_REPLY_LOCAL_CLOSED, I.SEND_RST): S.CLOSED,
    (S.AWAITING_REPLY_LOCAL_CLOSED, I.RECV_RST): S.CLOSED,
    (S.REPLY_DUE, I.SEND_REPLY): S.OPEN,
    (S.REPLY_DUE, I.SEND_RST): S.CLOSED,  # how Kubernetes servers refuse: RST(CANCEL)
    (S.REPLY_DUE, I.RECV_DATA): S.REPLY_DUE,
    (S.REPLY_DUE, I.RECV_FIN): S.REPLY_DUE_REMOTE_CLOSED,
    (S.REPLY_DUE, I.RECV_RST): S.CLOSED,
    (S.REPLY_DUE_REMOTE_CLOSED, I.SEND_REPLY): S.HALF_CLOSED_REMOTE,
    (S.REPLY_DUE_REMOTE_CLOSED, I.SEND_RST): S.CLOSED,
    (S.REPLY_DUE_REMOTE_CLOSED, I.RECV_RST): S.CLOSED,
    (S.OPEN, I.SEND_DATA): S.OPEN,
    (S.OPEN, I.SEND_FIN): S.HALF_CLOSED_LOCAL,
    (S.OPEN, I.SEND_RST): S.CLOSED,
    (S.OPEN, I.RECV_DATA): S.OPEN,
    (S.OPEN, I.RECV_FIN): S.HALF_CLOSED_REMOTE,
    (S.OPEN, I.RECV_RST): S.CLOSED,
    (S.HALF_CLOSED_LOCAL, I.SEND_RST): S.CLOSED,
    (S.HALF_CLOSED_LOCAL, I.RECV_DATA): S.HALF_CLOSED_LOCAL,
    (S.HALF_CLOSED_LOCAL, I.RECV_FIN): S.CLOSED,
    (S.HALF_CLOSED_LOCAL, I.RECV_RST): S.CLOSED,
    (S.HALF_CLOSED_REMOTE, I.SEND_DATA): S.HALF_CLOSED_REMOTE,
    (S.HALF_CLOSED_REMOTE, I.SEND_FIN): S.CLOSED,
    (S.HALF_CLOSED_REMOTE, I.SEND_RST): S.CLOSED,
    (S.HALF_CLOSED_REMOTE, I.RECV_RST): S.CLOSED,
}
del S, I


class StreamTransitionError(Exception):
    """The input is not allowed in this state. The connection maps it to a typed ProtocolError."""

    def __init__(self, state: StreamState, event: StreamInput) -> None:
        super().__init__(f"{event.name} not allowed in stream state {state.name}")
        self.state = state
        self.event = event


def next_state(state: StreamState, event: StreamInput) -> StreamState:
    try:
        return TRANSITIONS[state, event]
    except KeyError:
        raise StreamTransitionError(state, event) from None
