"""Whether a built-in record encoder gives a record back exactly: pure Python.

Part of the pure-Python twin (:mod:`acid._keylib_py` re-exports these);
``acid/_keylib.c`` has the same functions, which must give the same answers
(``tests/keylib/test_keylib_exact.py``). The write path of a collection
calls them on every record, to index it without decoding what it encoded
when the encoder gives it back unchanged (docs/guide.md, "What a record
looks like once stored").

>>> exact_json({"a": [1, "x"]}), exact_json({"a": (1, "x")})
(True, False)
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from uuid import UUID

__all__ = ["exact_json", "exact_msgpack", "exact_pickle"]

#: Containers nested deeper than this are "not exact" (decode to know), as
#: in the C twin, whose recursion this bounds (the key encoding's limit).
MAX_DEPTH = 64
# Which built-in record encoder an exact_* function speaks for.
_JSON = 0
_MSGPACK = 1
_PICKLE = 2

_SCALARS = frozenset((str, int, float, bool, type(None)))
#: More values pickle gives back equal and of the same type (a datetime or
#: time too, when its tzinfo is None or a ``datetime.timezone``).
_PICKLED = frozenset((complex, date, timedelta, UUID))
#: Dict key types each encoder gives back as they were, by kind. No float:
#: a NaN key comes back as another NaN object, which a lookup by the first
#: one does not find.
_KEYS = (
    frozenset((str,)),
    frozenset((str, bytes, int, bool, type(None))),
    frozenset((str, bytes, int, bool, type(None))),
)


def exact_json(obj: Any) -> bool:
    """Whether the JSON encoder surely gives ``obj`` back as it is.

    ``True`` promises that decoding the encoded ``obj`` gives an equal value
    of the same types all the way down, so that what an index function sees
    in ``obj`` is what it will see in the stored record: ``obj`` holds only
    ``dict`` (with ``str`` keys), ``list``, ``str``, ``int``, ``float``,
    ``bool`` and ``None``, those exact types (no subclass), and nests at
    most ``MAX_DEPTH`` containers deep. ``False`` means "decode to know": a
    tuple (it comes back a list), an ``int`` key (a ``str``), a subclass,
    anything else, or deeper nesting. Types are checked, values are not: a
    NaN is exact, and an integer the encoder cannot hold is left to the
    encoder to refuse. No Python code runs during the check, so nothing can
    change the record under it.

    >>> exact_json({"a": [1, 2.5, None, True]}), exact_json({"a": (1,)})
    (True, False)
    >>> exact_json({1: "x"}), exact_json(b"x")
    (False, False)
    """
    return _exact(obj, _JSON, 0)


def exact_msgpack(obj: Any) -> bool:
    """:func:`exact_json` for the msgpack encoder: ``bytes`` too, and dict
    keys of type ``str``, ``bytes``, ``int``, ``bool`` or ``None``.

    >>> exact_msgpack({1: b"x", None: [1.5]}), exact_msgpack([(1,)])
    (True, False)
    """
    return _exact(obj, _MSGPACK, 0)


def exact_pickle(obj: Any) -> bool:
    """:func:`exact_msgpack` for the pickle encoder: ``tuple`` too; tuple
    dict keys (of non-float scalars and such tuples); ``set`` and
    ``frozenset`` of what may be a key; ``complex``, ``UUID``, ``date``,
    ``timedelta``, and ``datetime`` and ``time`` whose tzinfo is None or a
    ``datetime.timezone`` (another tzinfo class may pickle as it likes).

    >>> exact_pickle({(1, "a"): (b"x", [None], {2, (3,)})}), exact_pickle({1.5: 1})
    (True, False)
    >>> from datetime import datetime, timezone
    >>> exact_pickle([datetime(2024, 1, 1, tzinfo=timezone.utc), 1j])
    True
    """
    return _exact(obj, _PICKLE, 0)


def _exact(obj: Any, kind: int, depth: int) -> bool:
    t = type(obj)
    if t in _SCALARS:
        return True
    if t is bytes:
        return kind != _JSON
    if kind == _PICKLE:
        if t in _PICKLED:
            return True
        if t is datetime or t is time:
            return obj.tzinfo is None or type(obj.tzinfo) is timezone
        if t is set or t is frozenset:
            return _exact_key(obj, depth)
    if t is list or (t is tuple and kind == _PICKLE):
        if depth >= MAX_DEPTH:
            return False
        return all(_exact(v, kind, depth + 1) for v in obj)
    if t is dict:
        if depth >= MAX_DEPTH:
            return False
        keys = _KEYS[kind]
        for k, v in obj.items():
            if type(k) not in keys:
                if kind != _PICKLE or type(k) is not tuple:
                    return False
                if not _exact_key(k, depth + 1):
                    return False
            if not _exact(v, kind, depth + 1):
                return False
        return True
    return False


def _exact_key(key: tuple | set | frozenset, depth: int) -> bool:
    """A tuple key or a set for pickle: non-float scalars and such tuples."""
    if depth >= MAX_DEPTH:
        return False
    keys = _KEYS[_PICKLE]
    for k in key:
        if type(k) in keys:
            continue
        if type(k) is not tuple or not _exact_key(k, depth + 1):
            return False
    return True
