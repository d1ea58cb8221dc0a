"""``memory:`` - the in-memory engine, optionally saved to a file.

Committed data live in a persistent B+tree (:mod:`acid.engines._btree`): a
version is the tree's root. A read transaction pins the root current when
it began and reads it without locks; a commit builds a new root by copying
only the nodes on the paths to the keys it changes (O(changes x log n),
whatever readers are pinned) and publishes it with one assignment. An old
version is freed by reference counting when its last reader ends.

Writers take turns under a lock (``writers=serial``, the default), or with
``writers=optimistic`` several write transactions run at once and a commit
that conflicts with one committed since its snapshot raises
:class:`~acid.errors.ConflictError` (see :class:`_OptimisticTxn`). A write
transaction buffers its changes (:mod:`acid.engines._overlay`) and reads
through them.

``memory:/`` keeps nothing; ``memory:/path/file.acid`` loads the file at
open and saves it (:mod:`acid.engines._memfile`): with ``sync=manual`` at
:meth:`MemoryEngine.flush` (``Store.sync()``) and ``close()``, with
``sync=commit`` by logging every commit before it lands. ``skiplist:/`` is
the same engine.

>>> engine = MemoryEngine()
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

import os
import threading
import weakref
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator
from typing import Any

from acid.engines import (
    DEFAULT_LOCK_TIMEOUT,
    Engine,
    EngineURL,
    Param,
    Txn,
    WriterLock,
    _btree,
    _memfile,
    check_params,
    check_path,
    check_timeout,
    closed_engine,
    make_dirs,
    read_only,
    resolve_params,
)
from acid.engines._btree import EMPTY, Node
from acid.engines._overlay import (
    DELETED,
    Overlay,
    OverlayWrites,
    live_iter,
    merge,
    ordered,
)
from acid.errors import (
    ConfigError,
    ConflictError,
    CorruptionError,
    EngineError,
    TxnError,
)

__all__ = ["MemoryEngine"]

#: The log is compacted into the snapshot once it is larger than the
#: snapshot and at least this large.
COMPACT_MIN = 4 << 20


def _choice(*names: str) -> Any:
    def parse(text: str) -> str:
        if text not in names:
            raise ValueError(" or ".join(names))
        return text

    def check(value: Any) -> str:
        if value not in names or not isinstance(value, str):
            raise ValueError(" or ".join(repr(n) for n in names))
        return str(value)

    return parse, check


_SYNC = _choice("manual", "commit")
_WRITERS = _choice("serial", "optimistic")


class MemoryEngine(Engine):
    """In-memory ordered engine with snapshot readers; optionally a file."""

    snapshots = True
    multi_process = False
    persistent = False
    concurrent_writers = False

    PARAMS = {
        "lock_timeout": Param(
            Param.SECONDS, DEFAULT_LOCK_TIMEOUT, "seconds a writer waits"
        ),
        "sync": Param(_SYNC[0], "manual", "when a file is written", check=_SYNC[1]),
        "writers": Param(
            _WRITERS[0],
            "serial",
            "serial or optimistic",
            check=_WRITERS[1],
        ),
    }

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        sync: str = "manual",
        writers: str = "serial",
        scheme: str = "memory",
    ) -> None:
        check_params(
            scheme, self.PARAMS, lock_timeout=lock_timeout, sync=sync, writers=writers
        )
        self.lock_timeout = float(lock_timeout)
        self.sync_mode = sync
        self._root: Node = EMPTY
        #: ``(commit number, root)``: what an optimistic writer starts from.
        self._state: tuple[int, Node] = (0, EMPTY)
        self._writer = WriterLock()
        self._closed = False
        self._path: str | None = None
        self._file: _Persistence | None = None
        if writers == "optimistic":
            self.concurrent_writers = True
            self._commit_lock = threading.Lock()
            #: Keys written by recent commits, for the conflict checks.
            self._recent: list[tuple[int, list[bytes], frozenset[bytes]]] = []
            self._open: weakref.WeakSet[_OptimisticTxn] = weakref.WeakSet()
        if path is None:
            self.url = f"{scheme}:/"
            if sync != "manual":
                raise ConfigError(
                    f"{scheme}: sync={sync} needs a file; name one, e.g. "
                    f"{scheme}:/var/data/app.acid?sync={sync}"
                )
            return
        full = check_path(scheme, path)
        self._path = full
        self.url = f"{scheme}:{full}"
        self.persistent = True
        self._file = _Persistence(full, sync)
        self._root = self._file.root
        self._state = (0, self._root)

    @classmethod
    def from_url(cls, url: EngineURL) -> MemoryEngine:
        params = resolve_params(url, cls.PARAMS)
        path = None if url.path in ("", "/") else url.path
        return cls(path, scheme=url.scheme, **params)

    # -- reads ------------------------------------------------------------

    def get(self, key: bytes) -> bytes | None:
        if self._closed:
            raise closed_engine(self.url)
        return _btree.lookup(self._root, key)

    def begin(self, write: bool = False, timeout: float | None = None) -> Txn:
        if timeout is not None:
            check_timeout(timeout)
        if self._closed:
            raise closed_engine(self.url)
        if not write:
            return _ReadTxn(self._root)
        if self.concurrent_writers:
            txn = _OptimisticTxn(self)
            self._open.add(txn)
            return txn
        lock = self._writer
        lock.acquire(timeout, self.lock_timeout, self.url)
        try:
            return _WriteTxn(self, lock)
        except BaseException:
            lock.release()
            raise

    # -- commits ----------------------------------------------------------

    def _publish(self, puts: dict[bytes, bytes]) -> None:
        """Land a serial writer's writes (its writer lock is held)."""
        if self._closed:
            raise closed_engine(self.url)
        keys = sorted(puts)
        vals = list(map(puts.__getitem__, keys))
        root = _btree.apply(self._root, keys, vals)
        file = self._file
        if file is None:
            self._root = root
            self._state = (self._state[0] + 1, root)
            return
        with file.lock:  # logged and published at once (see flush())
            file.append(keys, vals)
            self._root = root
            self._state = (self._state[0] + 1, root)
        file.compact_if_due(self._current)

    def _current(self) -> Node:
        return self._root

    def _publish_checked(self, txn: _OptimisticTxn) -> None:
        """Land an optimistic writer's writes unless they conflict."""
        puts = txn._puts
        with self._commit_lock:
            if self._closed:
                raise closed_engine(self.url)
            seq, root = self._state
            if seq != txn._seq:
                txn._check(self._recent)
            keys = sorted(puts)
            vals = list(map(puts.__getitem__, keys))
            root = _btree.apply(root, keys, vals)
            file = self._file
            if file is not None:
                with file.lock:
                    file.append(keys, vals)
                    self._root = root
                    self._state = (seq + 1, root)
            else:
                self._root = root
                self._state = (seq + 1, root)
            self._remember(seq + 1, keys, txn)
        if file is not None:
            file.compact_if_due(self._current)

    def _remember(self, seq: int, keys: list[bytes], done: _OptimisticTxn) -> None:
        """Keep the keys of commit ``seq`` while an open writer's snapshot
        is older than it; forget commits no open writer needs."""
        oldest = min((t._seq for t in self._open if t is not done), default=seq)
        recent = self._recent
        if recent and recent[0][0] <= oldest:
            recent[:] = [entry for entry in recent if entry[0] > oldest]
        if oldest < seq:
            recent.append((seq, keys, frozenset(keys)))

    # -- files and closing ------------------------------------------------

    def flush(self) -> None:
        """Write the file now (a no-op without one): a snapshot, which
        also empties the log of ``sync=commit``."""
        if self._closed:
            raise closed_engine(self.url)
        if self._file is not None:
            self._file.save(self._current)

    def close(self) -> None:
        """Close the engine; a write transaction still open is aborted, and
        a file is saved.

        Read transactions keep reading the snapshot they pinned (it is plain
        memory; nothing native is held).
        """
        if self._closed:
            return
        self._closed = True
        writer = self._writer.holder
        if writer is not None:
            writer.close_for_engine(self.url)
        if self.concurrent_writers:
            for txn in list(self._open):
                txn.close_for_engine(self.url)
        if self._file is not None:
            self._file.close(self._current)


class _Persistence:
    """The file of a file-backed engine: load, log, save (see _memfile)."""

    def __init__(self, path: str, sync: str) -> None:
        self.path = path
        self.sync = sync
        #: Held while a commit is logged and published, and while a snapshot
        #: is saved, so that a snapshot never misses a logged commit.
        self.lock = threading.RLock()
        make_dirs("memory", os.path.dirname(path))
        self.lock_fd = _memfile.lock_file(path)
        try:
            self._load()
        except BaseException:
            os.close(self.lock_fd)
            raise

    def _load(self) -> None:
        path = self.path
        snap = _memfile.read_snapshot(path)
        if snap is None:
            self.generation, root = 0, EMPTY
            self.snapshot_size = 0
        else:
            self.generation, keys, vals = snap
            root = _btree.build(keys, vals)
            self.snapshot_size = os.path.getsize(path)
        log_path = path + ".log"
        log = _memfile.read_log(log_path)
        length = None
        replayed = False
        if log is not None:
            generation, commits, good = log
            if generation > self.generation:
                raise CorruptionError(
                    f"memory: the log {log_path!r} is newer (generation "
                    f"{generation}) than the snapshot {path!r} (generation "
                    f"{self.generation}); was the snapshot replaced by an "
                    "older copy?"
                )
            if generation == self.generation:
                for keys, vals in commits:
                    root = _btree.apply(root, keys, vals)
                length = good
                replayed = bool(commits)
        self.root = root
        #: The root the file holds (nothing to save while it is current).
        self.saved: Node | None = None if replayed else root
        self.log: _memfile.Log | None = None
        if self.sync == "commit":
            self.log = _memfile.Log(log_path, self.generation, length)
            empty = self.log.size == _memfile.LOG_HEADER_SIZE
            self.saved = root if empty else None

    def append(self, keys: list[bytes], vals: list[bytes]) -> None:
        """Make a commit durable before it lands (``sync=commit``); the
        caller holds ``lock``."""
        log = self.log
        if log is not None:
            if log.fd < 0:
                raise EngineError(f"memory: {self.path!r} was closed")
            log.append(_memfile.encode_commit(keys, vals))

    def compact_if_due(self, current: Callable[[], Node]) -> None:
        log = self.log
        if log is not None and log.size > max(COMPACT_MIN, self.snapshot_size):
            self.save(current)

    def save(self, current: Callable[[], Node]) -> None:
        """Write a snapshot of ``current()`` and start an empty log."""
        with self.lock:
            root = current()
            if root is self.saved:
                return
            keys, vals = _btree.items(root)
            generation = self.generation + 1
            _memfile.write_snapshot(self.path, generation, keys, vals)
            self.generation = generation
            self.saved = root
            self.snapshot_size = os.path.getsize(self.path)
            log_path = self.path + ".log"
            if self.log is not None:
                self.log.close()
                self.log = _memfile.Log(log_path, generation, None)
            else:
                try:
                    os.unlink(log_path)  # replayed, and now in the snapshot
                except FileNotFoundError:
                    pass

    def close(self, current: Callable[[], Node]) -> None:
        with self.lock:  # a commit in flight lands (and is saved) first
            try:
                self.save(current)
            finally:
                if self.log is not None:
                    self.log.close()
                os.close(self.lock_fd)


class _ReadTxn(Txn):
    __slots__ = ("_root",)
    write = False
    put = delete = replace = pop = read_only

    def __init__(self, root: Node) -> None:
        self._root = root

    def get(self, key: bytes) -> bytes | None:
        # _btree.lookup, inline: this is every read of a read transaction.
        node = self._root
        while node.kids is not None:
            node = node.kids[bisect_right(node.keys, key)]
        keys = node.keys
        i = bisect_left(keys, key)
        if i < len(keys) and keys[i] == key:
            return node.vals[i]  # type: ignore[index]
        return None

    def iter(self, key: bytes, reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
        return self._scan(self._root, key, reverse)

    def _scan(
        self, root: Node, key: bytes, reverse: bool
    ) -> Iterator[tuple[bytes, bytes]]:
        # ``root`` is an argument: an iterator pins the version from its
        # creation, not from its first step.
        for item in _btree.scan(root, key, reverse):
            if self.ended:
                raise TxnError("iterator used after its transaction ended")
            yield item

    def _release(self) -> None:
        self._root = EMPTY  # unpin


class _WriteTxn(OverlayWrites, Txn):
    """A serial write transaction; no ``__del__``: its :class:`WriterLock`
    gives itself back when one is freed without ending."""

    __slots__ = ("_base", "_engine", "_overlay", "_puts", "_writes")
    write = True

    def __init__(self, engine: MemoryEngine, lock: WriterLock) -> None:
        self._engine = engine
        self._base = engine._root
        self._puts: dict[bytes, bytes] = {}
        self._overlay: Overlay | None = None  # see OverlayWrites
        self._writes = 0
        lock.hold(self)

    def get(self, key: bytes) -> bytes | None:
        value = self._puts.get(key)
        if value is None:
            return _btree.lookup(self._base, key)
        return None if value is DELETED else value

    def iter(self, key: bytes, reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
        return live_iter(self, self._scan, key, reverse)

    def _scan(
        self, key: bytes, reverse: bool, inclusive: bool
    ) -> Iterator[tuple[bytes, bytes]]:
        base = _btree.scan(self._base, key, reverse, inclusive)
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
        self._base = EMPTY


class _OptimisticTxn(_WriteTxn):
    """A write transaction of ``writers=optimistic``: it runs beside others
    and checks at commit that no transaction committed since its snapshot
    wrote a key it wrote, read, or scanned over (:meth:`_check`)."""

    __slots__ = ("_ranges", "_reads", "_seq")

    def __init__(self, engine: MemoryEngine) -> None:
        # A lock of its own, which nobody else takes: it gives the
        # transaction :class:`Txn`'s ending protocol.
        lock = WriterLock()
        lock.acquire(None, 0.0, engine.url)
        self._seq, root = engine._state
        _WriteTxn.__init__(self, engine, lock)
        self._base = root
        self._reads: set[bytes] = set()
        #: ``[low, high]`` key ranges scanned (``None``: unbounded).
        self._ranges: list[list[bytes | None]] = []

    def get(self, key: bytes) -> bytes | None:
        self._reads.add(key)
        value = self._puts.get(key)
        if value is None:
            return _btree.lookup(self._base, key)
        return None if value is DELETED else value

    def iter(self, key: bytes, reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
        span: list[bytes | None] = [key, key]
        self._ranges.append(span)
        return self._track(live_iter(self, self._scan, key, reverse), span, reverse)

    def _track(
        self,
        items: Iterator[tuple[bytes, bytes]],
        span: list[bytes | None],
        reverse: bool,
    ) -> Iterator[tuple[bytes, bytes]]:
        end = 0 if reverse else 1  # the side of the span a scan extends
        for item in items:
            span[end] = item[0]
            yield item
        span[end] = None  # ran to the end of the key space

    def _commit(self) -> None:
        if self._puts:
            self._engine._publish_checked(self)

    def _check(self, recent: list[tuple[int, list[bytes], frozenset[bytes]]]) -> None:
        """Raise ``ConflictError`` if a commit since the snapshot wrote what
        this transaction wrote, read or scanned."""
        for seq, keys, keyset in recent:
            if seq <= self._seq:
                continue
            clash = not keyset.isdisjoint(self._puts) or not keyset.isdisjoint(
                self._reads
            )
            for low, high in self._ranges:
                i = 0 if low is None else bisect_left(keys, low)
                if i < len(keys) and (high is None or keys[i] <= high):
                    clash = True
            if clash:
                raise ConflictError(
                    "write conflict: another transaction committed a key this "
                    "one wrote, read or scanned since it began; nothing was "
                    "written, run the transaction again (store.transact retries)"
                )

    def _release(self) -> None:
        _WriteTxn._release(self)
        self._reads = set()
        self._ranges = []
        self._engine._open.discard(self)


_NO_PUTS: dict[bytes, bytes] = {}
