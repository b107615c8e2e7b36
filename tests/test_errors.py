"""The public exceptions: what a program may do with one besides catching it."""

from __future__ import annotations

import copy
import pickle

import pytest

from wsserver import ConnectionClosedError, ConnectionClosedOK, HandshakeError, ProtocolError


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionClosedOK(1000, "bye"),
        ConnectionClosedError(1006),
        ProtocolError("invalid UTF-8", 1007),
        HandshakeError(403, "origin refused", [("X-Why", "origin")]),
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_an_exception_copied_or_pickled_is_the_same(exc: Exception) -> None:
    # Sent to another process (multiprocessing, a process pool, a test
    # runner's workers) or copied: a ConnectionClosed said its message twice
    # ("connection closed: connection closed: 1000 bye", its code the
    # message), a ProtocolError lost its close code, a HandshakeError could
    # not be unpickled at all (its __init__ takes more than the message).
    for again in (copy.copy(exc), pickle.loads(pickle.dumps(exc))):
        assert type(again) is type(exc)
        assert str(again) == str(exc)
        assert vars(again) == vars(exc)
