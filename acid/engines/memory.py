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
import sys
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
from acid.engines._btree import EMPTY, Node, count
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

#: Largest commit applied in place to a version nobody pinned (readers that
#: begin meanwhile wait for it); bigger commits copy the paths they change.
INPLACE_MAX = 16384

#: ``sys.getrefcount``; without it (not CPython) every version counts as
#: pinned, and every commit copies the paths it changes.
_refcount = getattr(sys, "getrefcount", lambda obj: 4)


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
        #: The current version; a reader pins it by referencing it.
        self._current = _Version(EMPTY)
        #: Commits so far (optimistic writers compare it).
        self._seq = 0
        #: The token of the nodes that commits may change in place (see
        #: _btree): replaced whenever a commit finds the current version pinned.
        self._owner = object()
        #: Held by a commit that changes the tree in place, and by whatever
        #: pins the current version (readers wait for such a commit).
        self._pin_lock = threading.Lock()
        #: The current version as a dict too, for point reads at dict speed:
        #: valid for a reader while its ``_cell[0]`` is true. A commit that
        #: changes it while readers pin the version clears their cell first
        #: (they then read their tree) and starts a new one.
        self._latest: dict[bytes, bytes] = {}
        self._cell = [True]
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
            #: Guards ``_open``: a set iterated while another thread adds to
            #: it raises, and a writer joins it with the snapshot it pins.
            self._open_lock = threading.Lock()
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
        # The files of the symlink's target: a snapshot renamed over the link
        # would replace it, and another name for the file would get its own
        # lock (two engines saving over each other).
        self._file = _Persistence(os.path.realpath(full), sync, self._owner)
        self._current = _Version(self._file.root)
        self._latest = dict(zip(*_btree.items(self._file.root), strict=True))

    @classmethod
    def from_url(cls, url: EngineURL) -> MemoryEngine:
        params = resolve_params(url, cls.PARAMS)
        path = None if url.path in ("", "/") else url.path
        return cls(path, scheme=url.scheme, **params)

    # -- reads ------------------------------------------------------------

    def get(self, key: bytes) -> bytes | None:
        if self._closed:
            raise closed_engine(self.url)
        with self._pin_lock:  # not while a commit changes the data in place
            return self._latest.get(key)

    def _pin(self) -> tuple[int, _Version]:
        """The current version and its commit number, pinned by the caller's
        reference: commits copy what they change from now on."""
        with self._pin_lock:
            return self._seq, self._current

    def begin(self, write: bool = False, timeout: float | None = None) -> Txn:
        if timeout is not None:
            check_timeout(timeout)
        if self._closed:
            raise closed_engine(self.url)
        if not write:
            with self._pin_lock:  # not while a commit changes the data in place
                return _ReadTxn(self._current, self._cell, self._latest.get)
        if self.concurrent_writers:
            # Pinned and registered at once: a commit in between would not
            # be remembered for this writer's conflict check.
            with self._open_lock:
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
        self._land(keys, list(map(puts.__getitem__, keys)))

    def _land(self, keys: list[bytes], vals: list[bytes]) -> None:
        """Log (``sync=commit``) and publish a commit; the caller excludes
        other commits. Raising means nothing landed."""
        file = self._file
        if file is None:
            self._apply(keys, vals)
            return
        with file.lock:  # logged and published at once (see flush())
            file.append(keys, vals)
            self._apply(keys, vals)
        file.compact_if_due(self._pin)  # never raises: the commit landed

    def _apply(self, keys: list[bytes], vals: list[bytes]) -> None:
        with self._pin_lock:
            current = self._current
            # References: self._current, ``current`` and getrefcount's own.
            if len(keys) <= INPLACE_MAX and _refcount(current) <= 3:
                # Nobody pinned this version: change it in place, as a
                # hand-written structure would (readers wait meanwhile).
                current.root = _btree.apply(current.root, keys, vals, self._owner)
                _update(self._latest, keys, vals)
                self._seq += 1
                return
        # Readers may pin ``current`` meanwhile: it is not changed. Every
        # node it has is shared from now on, so commits take a new token.
        self._owner = owner = object()
        new = _Version(_btree.apply(current.root, keys, vals, owner))
        with self._pin_lock:
            self._cell[0] = False  # before the dict changes (see _ReadTxn.get)
            _update(self._latest, keys, vals)
            self._cell = [True]
            self._current = new
            self._seq += 1

    def _publish_checked(self, txn: _OptimisticTxn) -> None:
        """Land an optimistic writer's writes unless they conflict."""
        puts = txn._puts
        with self._commit_lock:
            if self._closed:
                raise closed_engine(self.url)
            if self._seq != txn._seq:
                txn._check(self._recent)
            txn._unpin()
            keys = sorted(puts)
            self._land(keys, list(map(puts.__getitem__, keys)))
            self._remember(self._seq, keys, txn)

    def _remember(self, seq: int, keys: list[bytes], done: _OptimisticTxn) -> None:
        """Keep the keys of commit ``seq`` while an open writer's snapshot
        is older than it; forget commits no open writer needs."""
        with self._open_lock:
            seqs = [t._seq for t in self._open if t is not done]
        oldest = min(seqs, default=seq)
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
            self._file.save(self._pin)

    def stats(self) -> dict[str, Any]:
        """What the engine holds: keys, the commit number, its file."""
        if self._closed:
            raise closed_engine(self.url)
        seq, version = self._pin()
        return {"keys": count(version.root), "commit": seq, "file": self._path}

    def close(self) -> None:
        """Close the engine; a write transaction still open is aborted, and
        a file is saved.

        Read transactions keep reading the snapshot they pinned (it is plain
        memory; nothing native is held). If the file cannot be saved (a full
        disk), ``EngineError`` says so and the engine keeps the data and the
        file's lock: calling ``close()`` again tries again.
        """
        if self._closed:
            if self._file is not None and not self._file.closed:
                self._file.close(self._pin)  # the save failed: again
            return
        self._closed = True
        writer = self._writer.holder
        if writer is not None:
            writer.close_for_engine(self.url)
        if self.concurrent_writers:
            with self._open_lock:
                txns = list(self._open)
            for txn in txns:
                txn.close_for_engine(self.url)
        if self._file is not None:
            self._file.close(self._pin)


class _Persistence:
    """The file of a file-backed engine: load, log, save (see _memfile)."""

    def __init__(self, path: str, sync: str, owner: object) -> None:
        self.path = path
        self.sync = sync
        self.owner = owner
        #: Held while a commit is logged and published, and while a snapshot
        #: is saved, so that a snapshot never misses a logged commit.
        self.lock = threading.RLock()
        #: The log size below which compaction is not tried again (after a
        #: failed one), and whether close() ran.
        self.compact_at = 0
        self.closed = False
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
            root = _btree.build(keys, vals, self.owner)
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
                    root = _btree.apply(root, keys, vals, self.owner)
                length = good
                replayed = bool(commits)
        self.root = root
        #: The engine's commit number that the snapshot holds (commits are
        #: counted from 0 at open); ``-1``: the log holds commits to fold in.
        self.saved = -1 if replayed else 0
        self.log: _memfile.Log | None = None
        if self.sync == "commit":
            self.log = _memfile.Log(log_path, self.generation, length)
            empty = self.log.size == _memfile.LOG_HEADER_SIZE
            self.saved = 0 if empty else -1

    def append(self, keys: list[bytes], vals: list[bytes]) -> None:
        """Make a commit durable before it lands (``sync=commit``), or check
        that a snapshot can hold it (``sync=manual``); the caller holds
        ``lock``."""
        log = self.log
        if log is None:
            _memfile.check_sizes(keys, vals)  # or no snapshot could hold it
        else:
            if log.fd < 0:
                if self.closed:
                    raise EngineError(f"memory: {self.path!r} was closed")
                # A snapshot was saved but its new log could not be started
                # (a full disk): start it now, or land nothing.
                log = self.log = _memfile.Log(self.path + ".log", self.generation, None)
            log.append(_memfile.encode_commit(keys, vals, log.checked))

    def compact_if_due(self, pin: Callable[[], tuple[int, _Version]]) -> None:
        """Fold the log into a snapshot if it grew enough. A commit that
        landed calls it: a failure (a full disk) must not make that commit
        look failed, so it is kept quiet, and tried again once the log
        doubled; ``flush()`` and ``close()`` still report it."""
        log = self.log
        due = max(COMPACT_MIN, self.snapshot_size, self.compact_at)
        if log is None or log.size <= due or self.closed:
            return
        try:
            self.save(pin)
        except EngineError:
            self.compact_at = 2 * log.size
        else:
            self.compact_at = 0

    def save(self, pin: Callable[[], tuple[int, _Version]]) -> None:
        """Write a snapshot of the version ``pin()`` returns (pinned while
        it is written) and start an empty log."""
        with self.lock:
            if self.closed:  # a compaction that came after close()
                raise EngineError(f"memory: {self.path!r} was closed")
            seq, version = pin()
            if seq == self.saved:
                return
            keys, vals = _btree.items(version.root)
            generation = self.generation + 1
            try:
                _memfile.write_snapshot(self.path, generation, keys, vals)
            except EngineError:
                if _memfile.snapshot_generation(self.path) != generation:
                    raise  # the old snapshot and log stand
                # Renamed into place, then the directory failed to sync: the
                # old log is stale now, start the new one before reporting.
                self._saved(seq, generation)
                raise
            self._saved(seq, generation)

    def _saved(self, seq: int, generation: int) -> None:
        """Bookkeeping after the snapshot ``generation`` of commit ``seq``
        took the file's name: start its log."""
        self.generation = generation
        self.saved = seq
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

    def close(self, pin: Callable[[], tuple[int, _Version]]) -> None:
        with self.lock:  # a commit in flight lands (and is saved) first
            try:
                self.save(pin)
            except EngineError as exc:
                raise EngineError(
                    f"{exc}; nothing committed since the last save is lost "
                    "yet: make room and call close() again"
                ) from exc
            self.closed = True
            if self.log is not None:
                self.log.close()
            os.close(self.lock_fd)


def _update(latest: dict[bytes, bytes], keys: list[bytes], vals: list[bytes]) -> None:
    if _DELETED_ID in map(id, vals):
        pop = latest.pop
        for k, v in zip(keys, vals, strict=True):
            if v is DELETED:
                pop(k, None)
            else:
                latest[k] = v
    else:
        latest.update(zip(keys, vals, strict=True))


_DELETED_ID = id(DELETED)


class _Version:
    """The current state of the data: a reference to it pins it (commits
    then copy what they change instead of changing it in place)."""

    __slots__ = ("__weakref__", "root")

    def __init__(self, root: Node) -> None:
        self.root = root


class _ReadTxn(Txn):
    __slots__ = ("_cell", "_get", "_pin", "_root")
    write = False
    put = delete = replace = pop = read_only

    def __init__(
        self, version: _Version, cell: list[bool], get: Callable[[bytes], bytes | None]
    ) -> None:
        self._pin = version
        self._root = version.root
        self._cell = cell
        self._get = get

    def get(self, key: bytes) -> bytes | None:
        # The engine's dict answers while no commit changed it since this
        # transaction began: the cell is cleared before the dict changes, so
        # a value read from it before the cell was found set is this
        # snapshot's. Otherwise _btree.lookup on the pinned tree, inline.
        value = self._get(key)
        if self._cell[0]:
            return value
        node = self._root
        while node[2] is not None:
            node = node[2][bisect_right(node[0], key)]
        keys = node[0]
        i = bisect_left(keys, key)
        if i < len(keys) and keys[i] == key:
            found: bytes = node[1][i]
            return found
        return None

    def iter(self, key: bytes, reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
        return self._scan(self._pin, self._root, key, reverse)

    def _scan(
        self, pin: _Version, root: Node, key: bytes, reverse: bool
    ) -> Iterator[tuple[bytes, bytes]]:
        # ``pin`` is an argument: an iterator pins the version from its
        # creation, not from its first step, until it is dropped.
        for item in _btree.scan(root, key, reverse):
            if self.ended:
                raise TxnError("iterator used after its transaction ended")
            yield item

    def _release(self) -> None:
        self._pin = _NO_VERSION  # unpin
        self._root = EMPTY
        self._get = _NO_PUTS.get


class _WriteTxn(OverlayWrites, Txn):
    """A serial write transaction; no ``__del__``: its :class:`WriterLock`
    gives itself back when one is freed without ending."""

    __slots__ = ("_base", "_base_get", "_engine", "_overlay", "_puts", "_writes")
    write = True

    def __init__(self, engine: MemoryEngine, lock: WriterLock) -> None:
        self._engine = engine
        # Only this transaction commits until it ends: its base cannot change,
        # and the engine's dict is its base too.
        self._base = engine._current.root
        self._base_get = engine._latest.get
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
        self._base_get = _NO_PUTS.get


class _OptimisticTxn(_WriteTxn):
    """A write transaction of ``writers=optimistic``: it runs beside others
    and checks at commit that no transaction committed since its snapshot
    wrote a key it wrote, read, or scanned over (:meth:`_check`)."""

    __slots__ = ("_ranges", "_reads", "_seq", "_version")

    def __init__(self, engine: MemoryEngine) -> None:
        # A lock of its own, which nobody else takes: it gives the
        # transaction :class:`Txn`'s ending protocol.
        lock = WriterLock()
        lock.acquire(None, 0.0, engine.url)
        _WriteTxn.__init__(self, engine, lock)
        # Pinned: other writers' commits copy what they change meanwhile.
        self._seq, self._version = engine._pin()
        self._base = self._version.root
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

    def _unpin(self) -> None:
        self._version = _NO_VERSION

    def _release(self) -> None:
        _WriteTxn._release(self)
        self._version = _NO_VERSION
        self._reads = set()
        self._ranges = []
        engine = self._engine
        with engine._open_lock:
            engine._open.discard(self)


_NO_PUTS: dict[bytes, bytes] = {}
#: What ended readers point at instead of their version.
_NO_VERSION = _Version(EMPTY)
