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

__all__ = ["FOREVER", "KEEP", "check_ttl", "deadline"]

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
        or math.isnan(ttl)
        or ttl <= 0
    ):
        raise ValueError(
            "ttl must be a positive number of seconds, acid.FOREVER or None; "
            f"got {ttl!r}"
        )
    return float(ttl)


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
    return float(clock()) + secs
