"""Atomic record operations (Kyoto Tycoon's add, replace, cas, seize, incr,
append), mixed into :class:`~acid.Collection`.

Each one reads and writes in one transaction (the active one, or its own),
through the collection's ``get``, ``put`` and ``delete``, so indexes stay
exact; writers are serialized by the engine, so they are correct under
concurrent writers. An operation that refuses (bad input) raises before
writing anything.

>>> import acid
>>> store = acid.open("skiplist:/")
>>> hits = store.add_collection("hits")
>>> hits.add({"n": 0}, key="home")
True
>>> hits.add({"n": 5}, key="home")
False
>>> hits.incr("home", "n"), hits.incr("home", "n", 10)
(1, 11)
>>> hits.append("home", "log", "a", "b")
2
>>> hits.cas("home", {"n": 11, "log": ["a", "b"]}, {"n": 0})
True
>>> hits.seize("home"), hits.seize("home", "gone")
({'n': 0}, 'gone')
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from acid import _query, _ttl
from acid.errors import ConstraintError, NotFound

if TYPE_CHECKING:
    from acid.store import Store

__all__ = ["AtomicOps"]

T = TypeVar("T")
_ABSENT: Any = object()


def _number(value: Any, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{what} must be an int or a float, not {type(value).__name__}")


def _same(a: Any, b: Any) -> bool:
    """``a == b``, where the types must match too, all the way down."""
    if type(a) is not type(b):
        return False
    if type(a) is dict:
        if len(a) != len(b):
            return False
        for k, v in a.items():
            if k not in b or not _same(v, b[k]):
                return False
        if all(type(k) is str for k in a):
            return True
        # 1, 1.0 and True are one dict key: compare the keys' types too
        return {(type(k), k) for k in a} == {(type(k), k) for k in b}
    if type(a) is list or type(a) is tuple:
        return len(a) == len(b) and all(map(_same, a, b))
    if type(a) is float and a != a:
        return b != b  # NaN: the record holds the NaN it was given
    return bool(a == b)


def _as_key(key: Any) -> tuple[Any, ...]:
    return key if type(key) is tuple else _query.as_tuple(key)


class AtomicOps:
    """The atomic operations of a Collection (see the module docstring)."""

    if TYPE_CHECKING:  # what they use of Collection
        store: Store
        name: str
        key_func: Callable[[Any], Any] | None
        expiry: Any

        def get(self, key: Any, default: Any = None, raw: bool = False) -> Any: ...
        def put(
            self, rec: Any, key: Any = None, *, ttl: Any = None
        ) -> tuple[Any, ...]: ...
        def delete(self, key: Any) -> bool: ...

    def _atomic(self, func: Callable[[], T]) -> T:
        return self.store.in_txn(func, write=True)

    def _key_of(self, rec: Any, key: Any) -> tuple[Any, ...] | None:
        """The key ``put(rec, key)`` would write, or None for a counter key."""
        if key is not None:
            return _as_key(key)
        if self.key_func is None:
            return None
        return _as_key(self.key_func(rec))

    def _rewrite(self, key: tuple[Any, ...], rec: Any, keep: bool = False) -> None:
        """Put ``rec`` back under ``key``, which its key function must give.

        With ``keep`` an expiring record keeps its deadline (incr, append).
        """
        if self.key_func is not None and _as_key(self.key_func(rec)) != key:
            raise ConstraintError(
                f"collection {self.name!r}: the new record's key_func gives "
                f"{_as_key(self.key_func(rec))!r}, not its key {key!r}; change "
                "the key with delete() and put()"
            )
        if keep and self.expiry is not None:
            self.put(rec, key=key, ttl=_ttl.KEEP)
        else:
            self.put(rec, key=key)

    def add(self, rec: Any, key: Any = None) -> bool:
        """Put ``rec`` only if its key is absent; return whether it did."""

        def run() -> bool:
            k = self._key_of(rec, key)
            if k is not None and self.get(k, _ABSENT, raw=True) is not _ABSENT:
                return False
            self.put(rec, key=k)
            return True

        return self._atomic(run)

    def replace(self, rec: Any, key: Any = None) -> bool:
        """Put ``rec`` only if its key is present; return whether it did.

        Needs ``key`` or a key function (a counter key is always new).
        """

        def run() -> bool:
            k = self._key_of(rec, key)
            if k is None:
                raise TypeError(
                    f"collection {self.name!r} makes keys from a counter: "
                    "replace() needs key="
                )
            if self.get(k, _ABSENT, raw=True) is _ABSENT:
                return False
            self.put(rec, key=k)
            return True

        return self._atomic(run)

    def cas(self, key: Any, expected: Any, new: Any) -> bool:
        """Swap the record under ``key`` for ``new`` if it equals ``expected``.

        ``expected=None`` means "absent"; ``new=None`` deletes. Records are
        compared once decoded, by value and type, as keys are: ``1``,
        ``1.0`` and ``True`` differ (``==`` would let a record that another
        writer changed from ``1`` to ``True`` be swapped), a NaN matches a
        NaN. Returns whether it swapped.
        """
        k = _as_key(key)

        def run() -> bool:
            current = self.get(k, _ABSENT)
            if expected is None:
                if current is not _ABSENT:
                    return False
            elif current is _ABSENT or not _same(current, expected):
                return False
            if new is None:
                self.delete(k)
            else:
                self._rewrite(k, new)
            return True

        return self._atomic(run)

    def seize(self, key: Any, default: Any = None) -> Any:
        """Delete the record under ``key`` and return it (or ``default``)."""
        k = _as_key(key)

        def run() -> Any:
            current = self.get(k, _ABSENT)
            if current is _ABSENT:
                return default
            self.delete(k)
            return current

        return self._atomic(run)

    def _field(self, k: tuple[Any, ...], field: Any) -> tuple[dict, Any]:
        rec = self.get(k, _ABSENT)
        if rec is _ABSENT:
            raise NotFound(f"collection {self.name!r} has no record {k!r}")
        if not isinstance(rec, dict):
            raise TypeError(
                f"record {k!r} of {self.name!r} is a {type(rec).__name__}, "
                "not a dict with fields"
            )
        return rec, rec.get(field, _ABSENT)

    def incr(
        self, key: Any, field: Any, n: int | float = 1, init: Any = 0
    ) -> int | float:
        """Add ``n`` to the number in ``field`` of the record under ``key``.

        A missing field starts at ``init``. Returns the new value. A missing
        record raises :class:`~acid.errors.NotFound`, a field that holds no
        number ``TypeError``; neither changes anything.
        """
        _number(n, "n")
        _number(init, "init")
        k = _as_key(key)

        def run() -> int | float:
            rec, value = self._field(k, field)
            if value is _ABSENT:
                value = init
            elif isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(
                    f"field {field!r} of record {k!r} holds a "
                    f"{type(value).__name__}, not a number: cannot incr it"
                )
            result = value + n
            self._rewrite(k, {**rec, field: result}, keep=True)
            return result

        return self._atomic(run)

    def append(self, key: Any, field: Any, *items: Any) -> int:
        """Append ``items`` to the list in ``field`` of the record under ``key``.

        A missing field becomes a new list. Returns the list's new length.
        A missing record raises :class:`~acid.errors.NotFound`, a field that
        holds no list ``TypeError``; neither changes anything.
        """
        k = _as_key(key)

        def run() -> int:
            rec, value = self._field(k, field)
            if value is _ABSENT:
                value = []
            elif not isinstance(value, list):
                raise TypeError(
                    f"field {field!r} of record {k!r} holds a "
                    f"{type(value).__name__}, not a list: cannot append to it"
                )
            new = [*value, *items]
            self._rewrite(k, {**rec, field: new}, keep=True)
            return len(new)

        return self._atomic(run)
