"""A write transaction's private changes and the merged view over a base.

Engines without native write transactions (the memory engine, LevelDB)
buffer a writer's puts and deletes here and read through it: point reads
check the overlay first, scans merge the overlay's sorted keys with the base
snapshot's scan. :func:`live_iter` keeps a scan valid while its transaction
keeps writing by re-seeking after the last key it yielded whenever the
transaction's write counter moved.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from acid.engines._sortedkeys import SortedKeys
from acid.errors import EngineError, TxnError

__all__ = [
    "DELETED",
    "Overlay",
    "OverlayWrites",
    "bad_put",
    "live_iter",
    "merge",
    "ordered",
]


class _Deleted(bytes):
    """Marker stored in an overlay for a deleted key (never a real value)."""

    def __repr__(self) -> str:
        return "DELETED"


#: Identity-compared marker: ``puts[key] is DELETED`` means "deleted here".
DELETED = _Deleted()

#: ``scan(key, reverse, inclusive)`` over a base snapshot.
Scan = Callable[[bytes, bool, bool], Iterator[tuple[bytes, bytes]]]


class Overlay:
    """Buffered puts and deletes of one write transaction, in order.

    ``puts`` may be a dict the transaction filled before it needed order
    (see :class:`OverlayWrites`): the first scan sorts it; later new keys
    are added through :meth:`put` or :meth:`note`.
    """

    __slots__ = ("_keys", "_pending", "puts")

    def __init__(self, puts: dict[bytes, bytes] | None = None) -> None:
        self.puts: dict[bytes, bytes] = {} if puts is None else puts
        self._keys: SortedKeys | None = None
        self._pending: list[bytes] = []  # new keys not yet in _keys

    def __len__(self) -> int:
        return len(self.puts)

    def put(self, key: bytes, value: bytes) -> None:
        puts = self.puts
        if key not in puts:
            self._pending.append(key)
        puts[key] = value

    def note(self, key: bytes) -> None:
        """``key`` is about to enter ``puts`` (it is not there yet)."""
        self._pending.append(key)

    @property
    def keys(self) -> SortedKeys:
        """The written keys in order, sorted only when a scan needs them.

        A transaction that only writes (a bulk load) never pays for order.
        """
        pending = self._pending
        if self._keys is None or len(pending) * 8 > len(self._keys):
            self._keys = SortedKeys.from_sorted(sorted(self.puts))
        else:
            for key in pending:
                self._keys.add(key)
        pending.clear()
        return self._keys

    def scan(
        self, key: bytes, reverse: bool, inclusive: bool
    ) -> Iterator[tuple[bytes, bytes]]:
        """The overlay's own entries, deletions included (as ``DELETED``)."""
        puts = self.puts
        for k in self.keys.irange(key, reverse, inclusive):
            yield k, puts[k]


def merge(
    base: Iterator[tuple[bytes, bytes]],
    over: Iterator[tuple[bytes, bytes]],
    reverse: bool,
) -> Iterator[tuple[bytes, bytes]]:
    """Merge two ordered scans; ``over`` wins ties and hides ``DELETED``."""
    ok, ov = next(over, (None, None))
    for bk, bv in base:
        while ok is not None and (ok > bk if reverse else ok < bk):
            if ov is not DELETED:
                yield ok, ov  # type: ignore[misc]
            ok, ov = next(over, (None, None))
        if ok == bk:
            if ov is not DELETED:
                yield ok, ov  # type: ignore[misc]
            ok, ov = next(over, (None, None))
        else:
            yield bk, bv
    while ok is not None:
        if ov is not DELETED:
            yield ok, ov  # type: ignore[misc]
        ok, ov = next(over, (None, None))


def live_iter(
    txn: object, scan: Scan, key: bytes, reverse: bool
) -> Iterator[tuple[bytes, bytes]]:
    """Scan ``scan`` from ``key``, re-seeking after every write of ``txn``.

    ``txn`` needs an int attribute ``_writes`` bumped on every write and a
    bool ``ended``. After yielding ``k`` the next item is the first key
    after ``k`` (before ``k`` when reversed) in the view at that moment.
    """
    inclusive = True
    while True:
        if txn.ended:  # type: ignore[attr-defined]
            raise TxnError("iterator used after its transaction ended")
        stamp = txn._writes  # type: ignore[attr-defined]
        for k, v in scan(key, reverse, inclusive):
            yield k, v
            if txn._writes != stamp or txn.ended:  # type: ignore[attr-defined]
                key, inclusive = k, False
                break
        else:
            return


class OverlayWrites:
    """``put``/``delete``/``pop`` of a transaction that buffers its writes.

    Mixed into write transactions that keep their writes in the dict
    ``self._puts`` (``DELETED`` for a delete), count them in
    ``self._writes`` (iterators re-seek when it moves) and read through
    them with ``self.get``. The sorted :class:`Overlay` over ``_puts`` is
    made by :func:`ordered` when a scan first needs it (``self._overlay``
    is ``None`` until then), so a transaction that only writes, or does
    nothing, never pays for order.
    """

    __slots__ = ()  # the transactions declare theirs
    _puts: dict[bytes, bytes]
    _overlay: Overlay | None
    _writes: int

    def get(self, key: bytes) -> bytes | None:  # pragma: no cover - overridden
        raise NotImplementedError

    def put(self, key: bytes, value: bytes) -> None:
        if type(key) is not bytes or type(value) is not bytes or not key:
            bad_put(key, value)
        # _buffer(key, value) inlined: this is every buffered put.
        puts = self._puts
        if key not in puts:
            overlay = self._overlay
            if overlay is not None:
                overlay.note(key)
        puts[key] = value
        self._writes += 1  # type: ignore[misc]  # a slot of the transaction

    def delete(self, key: bytes) -> bool:
        if self.get(key) is None:
            return False
        self._buffer(key, DELETED)
        return True

    def pop(self, key: bytes) -> bytes | None:
        old = self.get(key)
        if old is not None:
            self._buffer(key, DELETED)
        return old

    def _buffer(self, key: bytes, value: bytes) -> None:
        puts = self._puts
        if key not in puts:
            overlay = self._overlay
            if overlay is not None:
                overlay.note(key)
        puts[key] = value
        self._writes += 1  # type: ignore[misc]  # a slot of the transaction


def ordered(txn: OverlayWrites) -> Overlay:
    """The sorted overlay over ``txn``'s writes, made on first use."""
    overlay = txn._overlay
    if overlay is None:
        txn._overlay = overlay = Overlay(txn._puts)  # type: ignore[misc]
    return overlay


def bad_put(key: object, value: object) -> None:
    if type(key) is not bytes or type(value) is not bytes:
        raise TypeError("keys and values must be bytes")
    # Every engine refuses the empty key, as LMDB must, so that a session
    # behaves the same on all of them.
    raise EngineError("keys must be 1 byte or longer; got the empty key b''")
