"""The memory engine before the B+tree (``git show main:acid/engines/skiplist.py``
at the time it was replaced), kept only so that bench/memory_bench.py can
compare against it.

Committed data live in a *version*: a dict (point reads) plus a
:class:`~acid.engines._sortedkeys.SortedKeys` (order). A read transaction
pins the current version and reads it directly, so its ``get`` is the
dict's own ``get``. A version pinned by a reader is never modified: the
next commit copies it and publishes the copy, and the old version is freed
by reference counting when its last reader ends. An unpinned version is
updated in place, so a single-threaded program never copies.

A reader pins a version by referencing its dict (its ``get`` is bound to
it), and so does a scan; a commit finds out whether anything does from the
dict's reference count. Readers thus need no bookkeeping at all, and one
dropped without ending unpins as it is freed.

Writers are serialized by a lock; a write transaction buffers its changes in
a dict (sorted into an :class:`~acid.engines._overlay.Overlay` when a scan
needs order) and publishes them on commit.

>>> engine = SkipListEngine()
>>> with engine.begin(write=True) as txn:
...     txn.put(b"k", b"v")
>>> reader = engine.begin()
>>> with engine.begin(write=True) as txn:
...     txn.delete(b"k")
True
>>> reader.get(b"k"), engine.begin().get(b"k")
(b'v', None)
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from itertools import chain

from acid.engines import (
    DEFAULT_LOCK_TIMEOUT,
    Engine,
    EngineURL,
    Param,
    Txn,
    WriterLock,
    check_params,
    check_timeout,
    closed_engine,
    read_only,
    resolve_params,
)
from acid.engines._overlay import (
    DELETED,
    Overlay,
    OverlayWrites,
    live_iter,
    merge,
    ordered,
)
from acid.engines._sortedkeys import SortedKeys
from acid.errors import ConfigError, TxnError

__all__ = ["SkipListEngine"]

#: Largest commit applied in place while new readers wait for it; bigger
#: commits build a new version beside the old one instead.
INPLACE_MAX = 4096


#: References to a version's dict that pin nothing: the version's own, the
#: committing writer's bound ``get`` and ``sys.getrefcount``'s argument.
#: Without ``sys.getrefcount`` (not CPython) every version counts as pinned.
_UNPINNED = 3
_refcount = getattr(sys, "getrefcount", lambda obj: _UNPINNED + 1)


class _Version:
    """One committed state: immutable once a reader pinned it."""

    __slots__ = ("data", "keys")

    def __init__(self, data: dict[bytes, bytes], keys: SortedKeys) -> None:
        self.data = data
        self.keys = keys

    def scan(
        self, key: bytes, reverse: bool, inclusive: bool = True
    ) -> Iterator[tuple[bytes, bytes]]:
        data = self.data
        for k in self.keys.irange(key, reverse, inclusive):
            yield k, data[k]

    def apply(self, puts: dict[bytes, bytes], copy: bool) -> _Version:
        """This version with ``puts`` applied (a new one if ``copy``)."""
        data = self.data.copy() if copy else self.data
        if len(puts) * 4 > len(data):  # bulk: rebuild the order in C
            for k, v in puts.items():
                if v is DELETED:
                    data.pop(k, None)
                else:
                    data[k] = v
            merged = dict.fromkeys(sorted(chain(self.keys, puts)))
            ordered = list(filter(data.__contains__, merged))
            keys = SortedKeys.from_sorted(ordered)
        else:
            keys = self.keys.copy() if copy else self.keys
            for k, v in puts.items():
                if v is DELETED:
                    if data.pop(k, None) is not None:
                        keys.discard(k)
                else:
                    if k not in data:
                        keys.add(k)
                    data[k] = v
        if copy or keys is not self.keys:
            return _Version(data, keys)
        return self


class SkipListEngine(Engine):
    """In-memory ordered engine with snapshot readers and one writer."""

    snapshots = True
    multi_process = False
    persistent = False

    PARAMS = {
        "lock_timeout": Param(
            Param.SECONDS, DEFAULT_LOCK_TIMEOUT, "seconds a writer waits"
        ),
    }

    def __init__(self, *, lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> None:
        check_params("skiplist", self.PARAMS, lock_timeout=lock_timeout)
        self.url = "skiplist:/"
        self.lock_timeout = float(lock_timeout)
        self._current = _Version({}, SortedKeys())
        self._pin_lock = threading.Lock()
        self._writer = WriterLock()
        self._closed = False

    @classmethod
    def from_url(cls, url: EngineURL) -> SkipListEngine:
        if url.path not in ("", "/"):
            raise ConfigError(
                f"skiplist: the engine is in memory and takes no path, got "
                f"{url.path!r}; use skiplist:/ (persistence is not supported yet)"
            )
        params = resolve_params(url, cls.PARAMS)
        return cls(**params)

    def get(self, key: bytes) -> bytes | None:
        if self._closed:
            raise closed_engine(self.url)
        with self._pin_lock:  # an in-place commit holds it while it applies
            return self._current.data.get(key)

    def begin(self, write: bool = False, timeout: float | None = None) -> Txn:
        if timeout is not None:
            check_timeout(timeout)
        if self._closed:
            raise closed_engine(self.url)
        if write:
            lock = self._writer
            lock.acquire(timeout, self.lock_timeout, self.url)
            try:
                return _WriteTxn(self, lock)
            except BaseException:
                lock.release()
                raise
        with self._pin_lock:  # not while an in-place commit applies
            return _ReadTxn(self._current)

    def close(self) -> None:
        """Close the engine; a write transaction still open is aborted.

        Read transactions keep reading the snapshot they pinned (it is plain
        memory; nothing native is held).
        """
        self._closed = True
        writer = self._writer.holder
        if writer is not None:
            writer.close_for_engine(self.url)

    def _publish(self, puts: dict[bytes, bytes]) -> None:
        """Apply a committing writer's writes (the writer lock is held)."""
        if self._closed:
            raise closed_engine(self.url)
        with self._pin_lock:
            current = self._current
            if len(puts) <= INPLACE_MAX and _refcount(current.data) <= _UNPINNED:
                self._current = current.apply(puts, copy=False)
                return
        # Readers may pin ``current`` meanwhile: it is not modified.
        new = current.apply(puts, copy=True)
        self._current = new


class _ReadTxn(Txn):
    # ``get`` is a slot holding the version's ``dict.get``: a reader's
    # point read is one C call.
    __slots__ = ("_version", "get")
    write = False
    put = delete = replace = pop = read_only

    def __init__(self, version: _Version) -> None:
        self._version = version
        self.get = version.data.get  # type: ignore[method-assign,assignment]

    def iter(self, key: bytes, reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
        return self._scan(self._version.data, self._version.keys, key, reverse)

    def _scan(
        self, data: dict[bytes, bytes], keys: SortedKeys, key: bytes, reverse: bool
    ) -> Iterator[tuple[bytes, bytes]]:
        # ``data`` is an argument, not looked up in the generator: an
        # iterator pins the version from its creation.
        for k in keys.irange(key, reverse):
            if self.ended:
                raise TxnError("iterator used after its transaction ended")
            yield k, data[k]

    def _release(self) -> None:
        # Unpin: nothing of this transaction references the version now.
        self._version = _NO_VERSION
        self.get = _NO_VERSION.data.get  # type: ignore[method-assign,assignment]


class _WriteTxn(OverlayWrites, Txn):
    """A write transaction; no ``__del__``: its :class:`WriterLock` gives
    itself back when one is freed without ending."""

    __slots__ = ("_base", "_base_get", "_engine", "_overlay", "_puts", "_writes")
    write = True

    def __init__(self, engine: SkipListEngine, lock: WriterLock) -> None:
        self._engine = engine
        self._base = base = engine._current
        self._base_get = base.data.get  # one of the references _UNPINNED counts
        self._puts: dict[bytes, bytes] = {}
        self._overlay: Overlay | None = None  # see OverlayWrites
        self._writes = 0
        lock.hold(self)

    def get(self, key: bytes) -> bytes | None:
        value = self._puts.get(key)
        if value is None:
            return self._base_get(key)
        return None if value is DELETED else value

    def iter(self, key: bytes, reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
        return live_iter(self, self._scan, key, reverse)

    def _scan(
        self, key: bytes, reverse: bool, inclusive: bool
    ) -> Iterator[tuple[bytes, bytes]]:
        base = self._base.scan(key, reverse, inclusive)
        if not self._puts:
            return base
        return merge(base, ordered(self).scan(key, reverse, inclusive), reverse)

    def _commit(self) -> None:
        if self._puts:
            self._engine._publish(self._puts)

    def _release(self) -> None:
        # Free the buffered writes and the base version now, even while the
        # application keeps this object.
        self._writes += 1  # wakes live iterators so that they raise
        self._overlay = None
        self._puts = _NO_PUTS
        self._base = _NO_VERSION
        self._base_get = _NO_VERSION.data.get


#: What ended transactions point at instead of their data (never written).
_NO_VERSION = _Version({}, SortedKeys())
_NO_PUTS: dict[bytes, bytes] = {}
