"""Time to live: the values a ``ttl`` argument takes, checked in one place.

simplekv's conventions: ``None`` means "the default" (of the collection or
blob store), :data:`FOREVER` means "never expires", a positive number is
seconds from now. ``0``, a negative number, NaN or anything that is not a
number raises ``ValueError``.

>>> deadline(10, None, lambda: 100.0)
110.0
>>> deadline(None, None, lambda: 100.0) is None
True
>>> deadline(FOREVER, 5, lambda: 100.0) is None
True
>>> deadline(0, None, lambda: 100.0)
Traceback (most recent call last):
...
ValueError: ttl must be a positive number of seconds, acid.FOREVER or None; got 0
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

__all__ = ["FOREVER", "KEEP", "check_ttl", "checked_clock", "deadline"]

#: A ``ttl`` meaning "never expires" (also the value of an infinite ttl).
FOREVER: float = math.inf
#: A ``ttl`` for acid's own rewrites (``incr``, ``append``): the record keeps
#: the deadline it has.
KEEP: Any = type("Keep", (), {"__repr__": lambda self: "KEEP"})()


def check_ttl(ttl: Any, *, allow_none: bool = True) -> float | None:
    """``ttl`` as seconds (``inf`` for :data:`FOREVER`), or ``None``."""
    if (ttl is None and allow_none) or ttl is KEEP:
        return None
    if (
        isinstance(ttl, bool)
        or not isinstance(ttl, int | float)
        or (isinstance(ttl, float) and math.isnan(ttl))
        or ttl <= 0
    ):
        raise ValueError(
            "ttl must be a positive number of seconds, acid.FOREVER or None; "
            f"got {ttl!r}"
        )
    try:
        return float(ttl)
    except OverflowError:  # an int beyond any float: longer than time itself
        return FOREVER


def deadline(
    ttl: Any, default: float | None, clock: Callable[[], float]
) -> float | None:
    """The clock time after which a value written now expires, or ``None``.

    ``default`` (already checked) replaces a ``ttl`` of ``None``.
    """
    secs = check_ttl(ttl)
    if secs is None:
        secs = default
    if secs is None or secs == math.inf:
        return None
    due = clock() + secs
    return None if due == math.inf else due  # beyond any clock: never


def checked_clock(clock: Callable[[], Any]) -> Callable[[], float]:
    """``clock`` made safe for deadlines: it returns a finite float or raises.

    A clock returning NaN would make every comparison with a deadline false
    (records hidden, blobs listed by none), an infinite one would expire
    everything, an int would be packed apart from equal float deadlines.

    >>> checked_clock(lambda: 5)()
    5.0
    >>> checked_clock(lambda: float("nan"))()
    Traceback (most recent call last):
    ...
    ValueError: clock() returned nan; it must return a finite number of seconds
    """

    def now() -> float:
        t = clock()
        if (
            isinstance(t, bool)
            or not isinstance(t, int | float)
            or not math.isfinite(t)
        ):
            raise ValueError(
                f"clock() returned {t!r}; it must return a finite number of seconds"
            )
        return float(t)

    return now
