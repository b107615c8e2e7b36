"""The application's tasks (handlers, hooks, ASGI runs), started so that each knows its own.

A handler may call :meth:`wsserver.Server.close`, directly or through
``asyncio.wait_for``, ``shield`` or ``gather``, which run it in a task of their
own (``wait_for`` does, up to Python 3.11). The server must not wait for the
handler that waits for it: :func:`start_app_task` starts each application task
in a context whose :data:`ROOT` names that task, which the tasks it starts
inherit, and :func:`calling_app_task` finds it again from wherever close() runs.
"""

from __future__ import annotations

import asyncio
import contextvars
import weakref
from collections.abc import Coroutine
from typing import Any

__all__ = ["adopt_context", "calling_app_task", "start_app_task"]

#: In an application task's context (and its children's): a one-item list
#: holding a weak reference to that task (filled once it exists). Weak: the
#: task holds its context, and a strong one would put every application task
#: in a reference cycle, and with it, through the traceback of what it ended
#: in (a handler's exception, its cancellation when its client left), the
#: frames that refer to its connection's objects, until the cyclic GC.
ROOT: contextvars.ContextVar[list[weakref.ref[asyncio.Task[Any]]]] = contextvars.ContextVar(
    "wsserver_root"
)


def start_app_task(
    loop: asyncio.AbstractEventLoop,
    coro: Coroutine[Any, Any, None],
    context: contextvars.Context | None = None,
) -> asyncio.Task[None]:
    """``loop.create_task(coro)``, in a context that names the task it makes
    (``context``, a copy of the current one by default)."""
    if context is None:
        context = contextvars.copy_context()
    cell: list[weakref.ref[asyncio.Task[Any]]] = []
    context.run(ROOT.set, cell)
    task = loop.create_task(coro, context=context)
    cell.append(weakref.ref(task))
    return task


def adopt_context(context: contextvars.Context) -> None:
    """Set in the current context what ``context`` (an application task's
    that ended) holds, but the task it names: what the startup hooks set (a
    ContextVar) is the start's, as when they ran in its task."""
    for var, value in context.items():
        if var is not ROOT:
            var.set(value)


def calling_app_task() -> asyncio.Task[Any] | None:
    """The application task the current code runs in (or was started from), if
    any (and still there: one that ended and nobody keeps is none)."""
    cell = ROOT.get(None)
    return cell[0]() if cell else None
