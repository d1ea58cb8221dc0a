"""Running a transaction again when it lost a race: the retry policy.

:meth:`acid.Store.transact` (and ``acid.aio``'s) retries a write transaction
that failed with an error whose ``retryable`` is true (``ConflictError``,
``TxnTimeout``), sleeping between attempts. The sleeps grow exponentially
up to a cap, with full jitter (a random fraction of the step), so that
writers that collided once do not collide again in lock step.

>>> backoff = Backoff(base=0.01, cap=0.05, rng=lambda: 1.0)
>>> [backoff.delay(n) for n in (1, 2, 3, 4)]
[0.01, 0.02, 0.04, 0.05]
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from acid.errors import Error

T = TypeVar("T")

__all__ = [
    "DEFAULT_BACKOFF",
    "Backoff",
    "check_fn",
    "check_result",
    "check_retries",
    "is_async",
    "retrying",
    "retrying_async",
    "transactional",
]


@dataclass(frozen=True)
class Backoff:
    """How long to wait before each retry.

    The wait before retry ``n`` (1 for the first) is ``min(cap, base *
    2**(n-1)) * rng()`` seconds. ``sleep`` does the waiting (``time.sleep``;
    tests inject a fake); ``rng`` returns a float in ``[0, 1)``. ``on_retry``,
    if given, is called as ``on_retry(error, attempt)`` before each wait:
    a place to count or log conflicts.
    """

    base: float = 0.002
    cap: float = 0.25
    sleep: Callable[[float], Any] = time.sleep
    rng: Callable[[], float] = random.random
    on_retry: Callable[[BaseException, int], Any] | None = None

    def __post_init__(self) -> None:
        for name in ("base", "cap"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"Backoff {name} must be a number of seconds")
            if not 0 <= value < float("inf"):
                raise ValueError(f"Backoff {name} must be finite and >= 0, got {value}")
        for name in ("sleep", "rng"):
            if not callable(getattr(self, name)):
                raise TypeError(f"Backoff {name} must be callable")
        if self.on_retry is not None and not callable(self.on_retry):
            raise TypeError("Backoff on_retry must be callable or None")

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1-based)."""
        step = self.cap if retry > 60 else min(self.cap, self.base * 2 ** (retry - 1))
        fraction = self.rng()
        if isinstance(fraction, bool) or not isinstance(fraction, int | float):
            raise TypeError(
                f"Backoff rng must return a float in [0, 1], not "
                f"{type(fraction).__name__}"
            )
        if not 0 <= fraction <= 1:  # NaN too
            raise ValueError(
                f"Backoff rng must return a float in [0, 1], got {fraction}"
            )
        return float(step * fraction)

    def before_retry(self, error: BaseException, attempt: int) -> float:
        """Report ``error`` of attempt ``attempt``; return the wait before the next."""
        if self.on_retry is not None:
            self.on_retry(error, attempt)
        return self.delay(attempt)


DEFAULT_BACKOFF = Backoff()


def check_retries(retries: Any, backoff: Any) -> Backoff:
    """Validate ``retries`` and ``backoff``; return the backoff to use."""
    if isinstance(retries, bool) or not isinstance(retries, int):
        raise TypeError(f"retries must be an int, not {type(retries).__name__}")
    if retries < 0:
        raise ValueError(f"retries must be >= 0 (0 runs once), got {retries}")
    if backoff is None:
        return DEFAULT_BACKOFF
    if not isinstance(backoff, Backoff):
        raise TypeError(
            f"backoff must be an acid.Backoff or None, not {type(backoff).__name__}"
        )
    return backoff


def check_fn(fn: Any, *, asynchronous: bool = False) -> None:
    """Refuse what cannot run as a transaction body."""
    if not callable(fn):
        raise TypeError(f"transact() needs a callable to run, not {type(fn).__name__}")
    if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
        raise TypeError(
            f"{_name(fn)} is a generator function: its body would run after the "
            "transaction ended; return a list instead"
        )
    if not asynchronous and is_async(fn):
        raise TypeError(
            f"{_name(fn)} is a coroutine function; run it with acid.aio "
            "(await store.transact(fn)) instead"
        )


def check_result(fn: Any, result: Any, *, asynchronous: bool = False) -> None:
    """Refuse a lazy result whose body would run outside the transaction."""
    lazy = inspect.isgenerator(result) or inspect.isasyncgen(result)
    hint = "return a value (a list, say) instead"
    if not asynchronous and inspect.isawaitable(result):
        if inspect.iscoroutine(result):
            result.close()  # never awaited: no warning, it will not run
        lazy = True
        hint = "make it an async def and run it with acid.aio's transact"
    if lazy:
        raise TypeError(
            f"{_name(fn)} returned {type(result).__name__}, which would run "
            f"after the transaction ended; {hint}"
        )


def is_async(fn: Any) -> bool:
    """Whether calling ``fn`` makes a coroutine to await: a coroutine
    function, or an object whose ``__call__`` is one."""
    if inspect.iscoroutinefunction(fn):
        return True
    if inspect.isroutine(fn) or isinstance(fn, type) or not callable(fn):
        return False
    return inspect.iscoroutinefunction(type(fn).__call__)


def retrying(
    attempt: Callable[[], T],
    retries: int,
    policy: Backoff,
    only: type[Error] = Error,
) -> T:
    """``attempt()``, run again after each retryable error (of class
    ``only``), ``retries`` times at most; then the last error propagates
    with ``attempts`` set."""
    n = 1
    while True:
        try:
            return attempt()
        except Error as exc:
            if not exc.retryable or not isinstance(exc, only):
                raise
            if n > retries:
                exc.attempts = n  # type: ignore[attr-defined]
                raise
            waited = policy.sleep(policy.before_retry(exc, n))
            if inspect.isawaitable(waited):
                if inspect.iscoroutine(waited):
                    waited.close()  # never awaited: no warning
                raise TypeError(
                    "Backoff sleep returned an awaitable, which a blocking "
                    "transact() cannot wait for; use it with acid.aio"
                ) from exc
        n += 1


async def retrying_async(
    attempt: Callable[[], Awaitable[T]], retries: int, policy: Backoff
) -> T:
    """:func:`retrying` for a coroutine; the default wait is ``asyncio.sleep``
    and an injected ``sleep`` may return an awaitable."""
    n = 1
    while True:
        try:
            return await attempt()
        except Error as exc:
            if not exc.retryable:
                raise
            if n > retries:
                exc.attempts = n  # type: ignore[attr-defined]
                raise
            seconds = policy.before_retry(exc, n)
            if policy.sleep is time.sleep:
                await asyncio.sleep(seconds)
            else:
                waited = policy.sleep(seconds)
                if inspect.isawaitable(waited):
                    await waited
        n += 1


def transactional(
    store: Any, *, retries: int = 10, backoff: Backoff | None = None
) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Decorate a function so that every call runs through ``store.transact``.

    ``store`` is an :class:`acid.Store` (or an ``acid.aio`` store: the
    decorated function then returns an awaitable). ``retries`` and
    ``backoff`` are checked now and passed to ``transact`` on each call.

    >>> import acid
    >>> store = acid.open("skiplist:/")
    >>> @acid.transactional(store, retries=3)
    ... def visit(page):
    ...     return store.count(page)
    >>> visit("home"), visit("home")
    (1, 2)
    """
    transact = getattr(store, "transact", None)
    if not callable(transact):
        hint = (
            "; write @acid.transactional(store), not @acid.transactional"
            if callable(store)
            else ""
        )
        raise TypeError(
            f"transactional() needs a store, not {type(store).__name__}{hint}"
        )
    check_retries(retries, backoff)
    asynchronous = inspect.iscoroutinefunction(transact)

    def decorate(fn: Any) -> Any:
        if isinstance(fn, staticmethod | classmethod):
            # Above @staticmethod/@classmethod: decorate the function inside.
            return type(fn)(decorate(fn.__func__))
        check_fn(fn, asynchronous=asynchronous)
        if asynchronous:
            # A coroutine function, so that inspect.iscoroutinefunction (and
            # the frameworks that ask it) knows it must be awaited.
            @functools.wraps(fn)
            async def awaitable(*args: Any, **kwargs: Any) -> Any:
                return await transact(
                    fn, *args, retries=retries, backoff=backoff, **kwargs
                )

            return awaitable

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return transact(fn, *args, retries=retries, backoff=backoff, **kwargs)

        return wrapper

    return decorate


def _name(fn: Any) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)
