"""The per-stream state table: listed transitions work, everything else raises."""

from __future__ import annotations

import itertools

import pytest

from conformance.wire.spdy_state import (
    TRANSITIONS,
    StreamInput,
    StreamState,
    StreamTransitionError,
    next_state,
)

S, I = StreamState, StreamInput  # noqa: E741 - short aliases keep the table readable


def test_closed_is_terminal() -> None:
    assert not [key for key in TRANSITIONS if key[0] is S.CLOSED]


@pytest.mark.parametrize(("state", "event"), list(itertools.product(StreamState, StreamInput)))
def test_every_pair_is_in_the_table_or_raises(state: StreamState, event: StreamInput) -> None:
    if (state, event) in TRANSITIONS:
        assert next_state(state, event) is TRANSITIONS[state, event]
    else:
        with pytest.raises(StreamTransitionError):
            next_state(state, event)


def test_rst_in_either_direction_closes_every_live_state() -> None:
    for state in StreamState:
        if state is not S.CLOSED:
            assert next_state(state, I.SEND_RST) is S.CLOSED
            assert next_state(state, I.RECV_RST) is S.CLOSED


def test_go_peer_rules() -> None:
    # We never send data (or FIN) on our stream before the SYN_REPLY: Go would drop it.
    for event in (I.SEND_DATA, I.SEND_FIN):
        with pytest.raises(StreamTransitionError):
            next_state(S.AWAITING_REPLY, event)
    # Data before *our* reply is accepted, as the draft allows.
    assert next_state(S.REPLY_DUE, I.RECV_DATA) is S.REPLY_DUE
    # A full exec stdin lifecycle from the server's side.
    state = S.REPLY_DUE
    for event in (I.SEND_REPLY, I.RECV_DATA, I.RECV_FIN, I.SEND_FIN):
        state = next_state(state, event)
    assert state is S.CLOSED
