"""Threads that run blocking calls for :mod:`acid.aio` and hand the results
to asyncio futures."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["Worker"]

T = TypeVar("T")
_STOP = object()


class Worker:
    """Threads running calls from one queue: with one thread, in submission
    order (a transaction's home); with several, the autocommit pool.

    A call's result goes straight to an asyncio future of the caller's loop;
    a call whose future was cancelled before it started is skipped.
    """

    def __init__(self, threads: int = 1, name: str = "acid-aio") -> None:
        self._calls: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._main, daemon=True, name=name)
            for _ in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._calls.put((loop, future, fn))
        return future

    def stop(self) -> None:
        for _ in self._threads:
            self._calls.put(_STOP)

    def _main(self) -> None:
        get = self._calls.get
        while True:
            item = get()
            if item is _STOP:
                return
            loop, future, fn = item
            if future.cancelled():  # its task was cancelled before it started
                continue
            try:
                outcome = (True, fn())
            except BaseException as exc:
                outcome = (False, exc)
            try:
                loop.call_soon_threadsafe(_settle, future, *outcome)
            except RuntimeError:  # the loop closed: nobody is waiting
                pass
            del item, loop, future, fn, outcome  # drop them before waiting again


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if not future.cancelled():
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
