"""The connection's state table: every state, every transition, and what is derived from them."""

from __future__ import annotations

import pytest

from wsserver.errors import InvalidState
from wsserver.protocol.state import (
    CLIENT_SIDE,
    OPEN_STATES,
    SERVER_SIDE,
    TRANSITIONS,
    ConnectionState,
    State,
    Trigger,
    transition,
)

S = ConnectionState


def test_every_state_but_closed_can_end_with_eof() -> None:
    for state in S:
        assert transition(state, Trigger.EOF) is S.CLOSED


@pytest.mark.parametrize(
    ("path", "end"),
    [
        ([Trigger.SEND_CLOSE, Trigger.RECEIVE_CLOSE], S.CLOSED),  # we close first
        ([Trigger.RECEIVE_CLOSE, Trigger.SEND_CLOSE], S.CLOSED),  # the peer closes first
        ([Trigger.VIOLATION, Trigger.SEND_CLOSE, Trigger.RECEIVE_CLOSE], S.CLOSED),
        ([Trigger.VIOLATION, Trigger.RECEIVE_CLOSE, Trigger.SEND_CLOSE], S.CLOSED),
        ([Trigger.SEND_CLOSE, Trigger.VIOLATION], S.LOCAL_CLOSING),
        ([Trigger.VIOLATION], S.FAILING),
        ([Trigger.RECEIVE_CLOSE], S.REMOTE_CLOSING),
    ],
)
def test_lives_of_a_connection(path: list[Trigger], end: ConnectionState) -> None:
    state = S.OPEN
    for trigger in path:
        state = transition(state, trigger)
    assert state is end


@pytest.mark.parametrize(
    ("state", "trigger"),
    [
        (S.LOCAL_CLOSING, Trigger.SEND_CLOSE),  # a second close frame
        (S.REMOTE_CLOSING, Trigger.RECEIVE_CLOSE),
        (S.CLOSED, Trigger.SEND_CLOSE),
        (S.CLOSED, Trigger.RECEIVE_CLOSE),
        (S.REMOTE_CLOSING, Trigger.VIOLATION),  # nothing is parsed after the peer's close
        (S.FAILING, Trigger.VIOLATION),  # only the first violation counts
    ],
)
def test_impossible_moves_raise(state: ConnectionState, trigger: Trigger) -> None:
    assert (state, trigger) not in TRANSITIONS
    with pytest.raises(InvalidState, match=f"{trigger.name}.*{state.name}"):
        transition(state, trigger)


def test_what_the_application_sees() -> None:
    # open: nothing closed yet; a failing connection still delivers earlier messages.
    assert {S.OPEN, S.FAILING} == OPEN_STATES
    assert [SERVER_SIDE[s] for s in S] == [
        State.OPEN, State.OPEN, State.CLOSING, State.OPEN, State.CLOSED
    ]  # fmt: skip
    assert [CLIENT_SIDE[s] for s in S] == [
        State.OPEN, State.OPEN, State.OPEN, State.CLOSING, State.CLOSED
    ]  # fmt: skip
    assert list(S) == [S.OPEN, S.FAILING, S.LOCAL_CLOSING, S.REMOTE_CLOSING, S.CLOSED]
