"""Expiry of records: deadlines, the expiry queue, and live-record filters.

A collection with expiry enabled (its ``"table"`` metadata names an
``expiry`` space id ``E``) keeps, for each record that has a deadline:

- ``P + pack((E, 0)) + rkey`` -> ``pack((deadline,))``: found by record key,
  so every read can tell whether the record it found is still alive;
- ``P + pack((E, 1, deadline)) + SEP + rkey`` -> ``rkey``: the expiry queue,
  in deadline order, so sweeping costs O(expired), not O(records).

A record is expired when ``deadline <= clock()``. Expired records are
invisible to every read path of the collection and of its indexes at once,
and removed by :meth:`acid.Store.expire` or when a write touches them.
Collections without expiry never reach this module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import islice
from typing import TYPE_CHECKING, Any

from acid import _query, keylib
from acid._layout import SEP
from acid.errors import CorruptionError

if TYPE_CHECKING:
    from acid.engines import Txn
    from acid.store import CheckReport, Store

__all__ = ["Expiry"]

_DEAD: Any = object()


class Expiry:
    """The expiry state of one collection (``coll.expiry``)."""

    def __init__(
        self, store: Store, space_id: int, default: float | None, coll_name: str
    ) -> None:
        self.store = store
        self.space_id = space_id
        #: Seconds a record put with ``ttl=None`` lives, or None (forever).
        self.default = default
        self.coll_name = coll_name
        self._by_key = keylib.pack((space_id, 0), store.prefix)
        self._queue = keylib.pack((space_id, 1), store.prefix)
        self._queue_start, self._queue_stop = keylib.prefix_range(
            (space_id, 1), store.prefix
        )

    # -- one record -------------------------------------------------------

    def deadline(self, txn: Txn, rkey: bytes) -> float | None:
        """The deadline of the record ``rkey`` (packed key), or None."""
        raw = txn.get(self._by_key + rkey)
        if raw is None:
            return None
        try:
            (when,) = keylib.unpack(raw)
            return float(when)
        except (ValueError, TypeError) as exc:
            raise CorruptionError(
                f"collection {self.coll_name!r}: an expiry deadline is unreadable"
            ) from exc

    def alive(self, txn: Txn, rkey: bytes, now: float | None = None) -> bool:
        """Whether the record ``rkey`` has not expired (at ``now``)."""
        when = self.deadline(txn, rkey)
        if when is None:
            return True
        return when > (self.store.clock() if now is None else now)

    def set_deadline(self, txn: Txn, rkey: bytes, when: float | None) -> None:
        """Give the record ``rkey`` the deadline ``when`` (None: none)."""
        old = self.deadline(txn, rkey)
        if old == when:
            return
        if old is not None:
            txn.delete(self._queue_key(old, rkey))
        if when is None:
            txn.delete(self._by_key + rkey)
        else:
            txn.put(self._by_key + rkey, keylib.pack((when,)))
            txn.put(self._queue_key(when, rkey), rkey)

    def _queue_key(self, when: float, rkey: bytes) -> bytes:
        return keylib.pack((when,), self._queue) + SEP + rkey

    def due(self, txn: Txn, now: float, limit: int) -> list[bytes]:
        """Packed keys of up to ``limit`` records whose deadline is <= now."""
        stop = keylib.prefix_range((now,), self._queue)[1]
        out: list[bytes] = []
        for k, v in txn.iter(self._queue_start):
            if k >= stop or len(out) >= limit:
                break
            out.append(v)
        return out

    # -- reads ------------------------------------------------------------

    def scan(
        self,
        start: bytes,
        stop: bytes,
        reverse: Any,
        max: int | None,
        fn: Callable[[Any, bytes, bytes], Any],
        rkey_of: Callable[[bytes, bytes], bytes],
    ) -> Iterator[Any]:
        """``_query.scan`` of ``fn`` rows, skipping expired records.

        ``rkey_of(key, value)`` gives the packed record key of a row.
        """
        _query.check_max(max)
        now = self.store.clock()
        alive = self.alive

        def row(txn: Any, k: bytes, v: bytes) -> Any:
            return fn(txn, k, v) if alive(txn, rkey_of(k, v), now) else _DEAD

        rows = _query.scan(self.store, start, stop, reverse, None, row)
        live = (r for r in rows if r is not _DEAD)
        return live if max is None else islice(live, max)

    # -- consistency ------------------------------------------------------

    def check(self, records: set[bytes], report: CheckReport) -> None:
        """Compare the two expiry spaces with each other and the records.

        ``records`` are the packed keys of the collection's records.
        Differences are reported as entries of the index ``"(expiry)"``.
        """
        skip_key = len(self._by_key)
        by_key: dict[bytes, float] = {}
        queued: set[tuple[float, bytes]] = set()
        txn = self.store.active()
        for k, v in txn.iter(self._by_key):
            if not k.startswith(self._by_key):
                break
            rkey = k[skip_key:]
            by_key[rkey] = keylib.unpack(v)[0]
        for k, _ in txn.iter(self._queue_start):
            if k >= self._queue_stop:
                break
            (when,), rkey = keylib.unpacks(k, self._queue)
            queued.add((when, keylib.pack(rkey)))
        report.checked_entries += len(by_key) + len(queued)
        expected = {(when, rkey) for rkey, when in by_key.items()}
        name = "(expiry)"
        for when, rkey in sorted(expected - queued):
            report.missing.append((self.coll_name, name, (when,), keylib.unpack(rkey)))
        for when, rkey in sorted(queued - expected):
            report.stale.append((self.coll_name, name, (when,), keylib.unpack(rkey)))
        for rkey in sorted(by_key.keys() - records):
            report.stale.append(
                (self.coll_name, name, (by_key[rkey],), keylib.unpack(rkey))
            )
