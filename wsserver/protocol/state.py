"""The life of a WebSocket connection after the opening handshake: every state and transition.

Theory of operation
-------------------
A connection is closed by an exchange of close frames, either side first, or
ends abruptly when TCP goes away. A server also *fails* connections: when the
peer breaks the protocol, its close frame goes out only once the application
has taken the messages that arrived before the violation. So the states are:

``OPEN``
    Messages flow both ways.
``FAILING``
    The peer broke the protocol; our close frame (1002, 1007, 1009, ...) is
    due but not sent yet. Received frames are discarded, except close frames.
    Messages that arrived before the violation are still being delivered, and
    the application may still send.
``LOCAL_CLOSING``
    We sent our close frame; the peer's has not arrived.
``REMOTE_CLOSING``
    The peer's close frame arrived; ours is not sent yet. A healthy connection
    answers at once, so it passes through this state within one call; a
    failing one stays here until the failure's close frame is sent.
``CLOSED``
    Both close frames were exchanged, or TCP is gone (the peer closed it, or
    it was lost): nothing more is sent or received.

The events that move a connection are our close frame going out
(``SEND_CLOSE``), the peer's arriving (``RECEIVE_CLOSE``), a protocol violation
(``VIOLATION``) and the end of TCP (``EOF``). :data:`TRANSITIONS` lists every
allowed move; anything else is a bug, and :func:`transition` raises
:class:`~wsserver.errors.InvalidState` for it. Everything that changes a
connection's state goes through :func:`transition`: this module is the one place
to read them all.

What the application sees is derived from the state alone: whether the
connection is :data:`open <OPEN_STATES>`, and the state of each side
(:data:`SERVER_SIDE`, :data:`CLIENT_SIDE`) as the public :class:`State`.
"""

from __future__ import annotations

import enum

from ..errors import InvalidState

__all__ = [
    "ConnectionState",
    "Trigger",
    "State",
    "TRANSITIONS",
    "OPEN_STATES",
    "SERVER_SIDE",
    "CLIENT_SIDE",
    "transition",
]


class ConnectionState(enum.Enum):
    """Where a connection is in its life (see the module's theory of operation)."""

    # Members are compared by identity: hash them so too. (Enum's own
    # __hash__ is a Python function, and TRANSITIONS and OPEN_STATES hash a
    # state at every transition and every ``ws.open``.)
    __hash__ = object.__hash__

    OPEN = "open"
    FAILING = "failing"
    LOCAL_CLOSING = "local closing"
    REMOTE_CLOSING = "remote closing"
    CLOSED = "closed"


class Trigger(enum.Enum):
    """What moves a connection from one state to another."""

    __hash__ = object.__hash__  # as ConnectionState's

    SEND_CLOSE = "our close frame goes out"
    RECEIVE_CLOSE = "the peer's close frame arrives"
    VIOLATION = "the peer breaks the protocol"
    EOF = "TCP ends"


class State(enum.Enum):
    """One side's view of the connection, as handlers see it (``ws.server_state``)."""

    OPEN = 1
    CLOSING = 2
    CLOSED = 3


_OPEN = ConnectionState.OPEN
_FAILING = ConnectionState.FAILING
_LOCAL_CLOSING = ConnectionState.LOCAL_CLOSING
_REMOTE_CLOSING = ConnectionState.REMOTE_CLOSING
_CLOSED = ConnectionState.CLOSED

#: (state, event) -> the next state. A pair that is not here is not allowed.
TRANSITIONS: dict[tuple[ConnectionState, Trigger], ConnectionState] = {
    (_OPEN, Trigger.SEND_CLOSE): _LOCAL_CLOSING,
    (_OPEN, Trigger.RECEIVE_CLOSE): _REMOTE_CLOSING,
    (_OPEN, Trigger.VIOLATION): _FAILING,
    (_OPEN, Trigger.EOF): _CLOSED,
    (_FAILING, Trigger.SEND_CLOSE): _LOCAL_CLOSING,  # the failure's close frame
    (_FAILING, Trigger.RECEIVE_CLOSE): _REMOTE_CLOSING,
    (_FAILING, Trigger.EOF): _CLOSED,
    (_LOCAL_CLOSING, Trigger.RECEIVE_CLOSE): _CLOSED,
    (_LOCAL_CLOSING, Trigger.VIOLATION): _LOCAL_CLOSING,  # input is discarded from here on
    (_LOCAL_CLOSING, Trigger.EOF): _CLOSED,
    (_REMOTE_CLOSING, Trigger.SEND_CLOSE): _CLOSED,
    (_REMOTE_CLOSING, Trigger.EOF): _CLOSED,
    (_CLOSED, Trigger.EOF): _CLOSED,
}

#: The states in which messages can still be sent and received (``ws.open``).
#: FAILING is one: the messages before the violation are still delivered, and
#: the application may answer them until the failure's close frame goes out.
OPEN_STATES = frozenset({_OPEN, _FAILING})

#: Our side's state in each connection state: CLOSING once our close frame is sent.
SERVER_SIDE: dict[ConnectionState, State] = {
    _OPEN: State.OPEN,
    _FAILING: State.OPEN,
    _LOCAL_CLOSING: State.CLOSING,
    _REMOTE_CLOSING: State.OPEN,
    _CLOSED: State.CLOSED,
}

#: The peer's side in each connection state: CLOSING once its close frame arrived.
CLIENT_SIDE: dict[ConnectionState, State] = {
    _OPEN: State.OPEN,
    _FAILING: State.OPEN,
    _LOCAL_CLOSING: State.OPEN,
    _REMOTE_CLOSING: State.CLOSING,
    _CLOSED: State.CLOSED,
}


def transition(state: ConnectionState, event: Trigger) -> ConnectionState:
    """The state that ``event`` leads to from ``state``.

    Raises:
        InvalidState: the event cannot happen in that state.
    """
    try:
        return TRANSITIONS[state, event]
    except KeyError:
        raise InvalidState(f"{event.name} is not allowed in state {state.name}") from None
