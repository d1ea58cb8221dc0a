"""Threads that run blocking calls for :mod:`acid.aio` and hand the results
to asyncio futures."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["Worker", "WorkerStopped"]

T = TypeVar("T")
_STOP = object()


class WorkerStopped(RuntimeError):
    """:meth:`Worker.submit` after :meth:`Worker.stop`."""


class Worker:
    """Threads running calls from one queue: with one thread, in submission
    order (a transaction's home); with several, the autocommit pool.

    A call's result goes straight to an asyncio future of the caller's loop;
    a call whose future was cancelled before it started is skipped.
    :meth:`call` runs one with nobody waiting (when there is no loop to
    wait on: a transaction ended by the garbage collector).
    """

    def __init__(self, threads: int = 1, name: str = "acid-aio") -> None:
        self._calls: queue.SimpleQueue[Any] = queue.SimpleQueue()
        # Orders submit() against stop(): nothing queued after the end.
        self._lock = threading.RLock()
        self._stopped = False
        self._threads: list[threading.Thread] = []
        try:
            for _ in range(threads):
                thread = threading.Thread(target=self._main, daemon=True, name=name)
                thread.start()  # may fail: "can't start new thread"
                self._threads.append(thread)
        except BaseException:
            self.stop()  # the ones that started
            raise

    def submit(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:
            if self._stopped:  # queued after the end, it would never run
                raise WorkerStopped("this worker was stopped")
            self._calls.put((loop, future, fn))
        return future

    def call(self, fn: Callable[[], Any]) -> None:
        """Run ``fn()`` on the thread, waited on by nobody; from any thread,
        even a finalizer (``SimpleQueue.put`` is reentrant)."""
        self._calls.put((None, None, fn))

    def stop(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            for _ in self._threads:
                self._calls.put(_STOP)

    def _main(self) -> None:
        get = self._calls.get
        while True:
            item = get()
            if item is _STOP:
                return
            loop, future, fn = item
            if loop is None:  # see call(): nobody to tell
                try:
                    fn()
                except BaseException:  # nobody could handle it
                    pass
                del item, fn
                continue
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
    if future.cancelled():
        return
    if ok:
        future.set_result(value)
        return
    if isinstance(value, StopIteration):
        # A future refuses StopIteration (it would end the awaiting
        # coroutine quietly); a coroutine raising it gets RuntimeError.
        error = RuntimeError(f"a blocking call raised StopIteration: {value!r}")
        error.__cause__ = value
        value = error
    future.set_exception(value)
