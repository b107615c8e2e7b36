"""What a program ported from Sanic is told when it reads a name it had there.

:func:`say_instead` gives a class attributes of those names (Sanic's
``app.middleware``, ``request.ip``, ``File.name``) that raise
``AttributeError`` saying what does the same here. Each is a descriptor of
its own name: an attribute lookup on the class stays as fast as without it
(a ``__getattr__`` would slow every lookup of the class's own attributes,
and hide the ``AttributeError`` a property raises by mistake), ``hasattr()``
says False, and type checkers do not see the names (they are set after the
class is made).
"""

from __future__ import annotations

from typing import Any, NoReturn

__all__ = ["say_instead"]


class _Instead:
    """A class attribute that raises ``AttributeError(message)`` when read."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message

    def __get__(self, instance: object, owner: type | None = None) -> NoReturn:
        raise AttributeError(self.message)


def say_instead(cls: type, messages: dict[str, str]) -> None:
    """Give ``cls`` an attribute for each name of ``messages`` that raises
    ``AttributeError`` with its message when read (an instance's own value,
    set on one that has a ``__dict__``, is read as usual)."""
    for name, message in messages.items():
        if name in vars(cls):
            raise ValueError(f"{cls.__name__}.{name} is an attribute of its own")
        instead: Any = _Instead(message)
        setattr(cls, name, instead)
