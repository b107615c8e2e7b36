"""A loop's default executor that knows its calls under way: a loop's end need not wait for them."""

from __future__ import annotations

import concurrent.futures
import threading
from typing import Any

__all__ = ["DefaultExecutor"]


class DefaultExecutor(concurrent.futures.ThreadPoolExecutor):
    """The loop's default executor (asyncio.to_thread()), knowing its calls under way.

    ``loop.shutdown_default_executor()`` joins its threads without a bound,
    even when cancelled; with this one set (``loop.set_default_executor()``,
    which uvloop takes too), the calls under way are waited for as long as
    one chooses: ``concurrent.futures.wait(executor.calls(), timeout=...)``.
    """

    def __init__(self) -> None:
        super().__init__(thread_name_prefix="asyncio")
        self._calls: set[concurrent.futures.Future[Any]] = set()
        self._calls_lock = threading.Lock()  # (a call ends in its own thread)

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        future = super().submit(fn, *args, **kwargs)
        with self._calls_lock:
            self._calls.add(future)
        future.add_done_callback(self._ended)
        return future

    def _ended(self, future: concurrent.futures.Future[Any]) -> None:
        with self._calls_lock:
            self._calls.discard(future)

    def calls(self) -> list[concurrent.futures.Future[Any]]:
        """The calls submitted that have not ended."""
        with self._calls_lock:
            return list(self._calls)
