"""The public exceptions: what a program may do with one besides catching it."""

from __future__ import annotations

import copy
import pickle

import pytest

from wsserver import ConnectionClosedError, ConnectionClosedOK, HandshakeError, ProtocolError


class Kicked(ConnectionClosedError):
    """An application's own, its __init__ taking other arguments than its base's."""

    def __init__(self, user: str) -> None:
        super().__init__(4000, f"kicked {user}")
        self.user = user


class NotFound(HandshakeError):
    """Sanic's NotFound, as an application may write it."""

    def __init__(self, message: str = "Not Found") -> None:
        super().__init__(404, message)


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionClosedOK(1000, "bye"),
        ConnectionClosedError(1006),
        ProtocolError("invalid UTF-8", 1007),
        HandshakeError(403, "origin refused", [("X-Why", "origin")]),
        Kicked("bob"),
        NotFound("no such room"),
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_an_exception_copied_or_pickled_is_the_same(exc: Exception) -> None:
    # Sent to another process (multiprocessing, a process pool, a test
    # runner's workers) or copied: a ConnectionClosed said its message twice
    # ("connection closed: connection closed: 1000 bye", its code the
    # message), a ProtocolError lost its close code, a HandshakeError could
    # not be unpickled at all (its __init__ takes more than the message).
    # A subclass of theirs with an __init__ of its own (Sanic's NotFound
    # written as a HandshakeError) is made again without it, as it was.
    for again in (copy.copy(exc), pickle.loads(pickle.dumps(exc))):
        assert type(again) is type(exc)
        assert str(again) == str(exc)
        assert vars(again) == vars(exc)
