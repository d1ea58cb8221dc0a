"""``leveldb:/path`` - LevelDB through plyvel (``pip install 'acid[leveldb]'``).

LevelDB has no transactions, so this engine builds them: a read
transaction reads one LevelDB snapshot; a write transaction buffers its puts
and deletes in an overlay that its own reads and scans see, and lands them
in one atomic ``WriteBatch`` on commit. Writers are serialized by a lock, and
LevelDB locks its directory (one process, and one engine object, at a time),
so a writer reads the database itself: nothing else can write to it before
the writer ends, and a snapshot would only cost its making.

Closing never frees the database under a call in flight. plyvel's calls
release the GIL, and ``plyvel.DB.close()`` frees the native database (and
its iterators) even while another thread is inside one of them, which
crashes the process. So :meth:`LevelDBEngine.close` only ends every open
transaction, which drops their snapshots and iterators, and drops its own
reference; it calls ``close()`` itself only when nothing else references
the ``plyvel.DB`` (the usual case: then the directory is unlocked at once).
Otherwise CPython frees the database, closing it and unlocking the
directory, when the last reference goes: a call in flight holds one until
it returns. An iterator takes its native iterator, at each step, from a
list that the transaction empties when it ends, so a suspended iterator
does not keep the database open after ``close()``.

>>> import tempfile
>>> with LevelDBEngine(tempfile.mkdtemp() + "/db", sync=False) as engine:
...     with engine.begin(write=True) as txn:
...         txn.put(b"k", b"v")
...         txn.get(b"k")
...     engine.begin().get(b"k")
b'v'
b'v'
"""

from __future__ import annotations

import os
import sys
import threading
import weakref
from collections.abc import Iterator, Sequence
from typing import Any

import plyvel

from acid.engines import (
    DEFAULT_LOCK_TIMEOUT,
    Engine,
    EngineURL,
    Param,
    Txn,
    WriterLock,
    check_params,
    check_path,
    check_timeout,
    closed_engine,
    make_dirs,
    read_only,
    resolve_params,
)
from acid.engines._overlay import (
    DELETED,
    Overlay,
    OverlayWrites,
    bad_put,
    live_iter,
    merge,
    ordered,
)
from acid.errors import EngineError, Error, TxnError

__all__ = ["LevelDBEngine"]

_C_INT_MAX = 2**31 - 1
_ref = weakref.ref


def _compression(text: str) -> str | None:
    lowered = text.strip().lower()
    if lowered in ("snappy", "none"):
        return None if lowered == "none" else "snappy"
    raise ValueError("snappy or none")


def _check_compression(value: Any) -> str | None:
    if value is None or value == "snappy":
        return value
    raise ValueError("'snappy' or None")


class LevelDBEngine(Engine):
    """LevelDB database directory at ``path``."""

    snapshots = True
    multi_process = False
    persistent = True

    PARAMS = {
        "block_cache": Param(
            Param.SIZE, 64 * 2**20, "LRU cache of blocks", low=0, high=sys.maxsize
        ),
        "write_buffer": Param(
            Param.SIZE, 16 * 2**20, "memtable size", low=1, high=sys.maxsize
        ),
        "bloom_bits": Param(
            Param.INT, 10, "bloom filter bits per key (0: off)", low=0, high=_C_INT_MAX
        ),
        "compression": Param(
            _compression, "snappy", "snappy or none", check=_check_compression
        ),
        "max_open_files": Param(
            Param.INT, 1000, "table files kept open", low=1, high=_C_INT_MAX
        ),
        "sync": Param(Param.BOOL, True, "fsync on commit"),
        "lock_timeout": Param(Param.SECONDS, DEFAULT_LOCK_TIMEOUT, "writer wait"),
    }

    def __init__(
        self,
        path: str,
        *,
        block_cache: int = 64 * 2**20,
        write_buffer: int = 16 * 2**20,
        bloom_bits: int = 10,
        compression: str | None = "snappy",
        max_open_files: int = 1000,
        sync: bool = True,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    ) -> None:
        self._db: Any = None
        check_params(
            "leveldb",
            self.PARAMS,
            block_cache=block_cache,
            write_buffer=write_buffer,
            bloom_bits=bloom_bits,
            compression=compression,
            max_open_files=max_open_files,
            sync=sync,
            lock_timeout=lock_timeout,
        )
        self.path = check_path("leveldb", path)
        self.url = f"leveldb:{self.path}"
        self.sync = sync
        self.lock_timeout = float(lock_timeout)
        self._writer = WriterLock()
        #: Weak references to the open read transactions, for close(); a
        #: reference removes itself when its transaction is freed.
        self._readers: set[weakref.ref[_LevelDBReader]] = set()
        self._forget = self._readers.discard
        self._close_lock = threading.Lock()
        make_dirs("leveldb", os.path.dirname(self.path))
        try:
            self._db = plyvel.DB(
                self.path,
                create_if_missing=True,
                lru_cache_size=block_cache,
                write_buffer_size=write_buffer,
                bloom_filter_bits=bloom_bits,
                compression=compression,
                max_open_files=max_open_files,
            )
        except plyvel.IOError as exc:
            if "lock" in str(exc):
                raise EngineError(
                    f"{self.url} is locked: LevelDB is single-process and the "
                    "database is already open (in another process, or by another "
                    "engine in this one); close that first, or use lmdb: when "
                    "several processes must share a database"
                ) from exc
            raise EngineError(f"{self.url}: cannot open: {_text(exc)}") from exc
        except (plyvel.Error, OSError) as exc:
            raise EngineError(f"{self.url}: cannot open: {_text(exc)}") from exc

    @classmethod
    def from_url(cls, url: EngineURL) -> LevelDBEngine:
        return cls(url.path, **resolve_params(url, cls.PARAMS))

    def begin(self, write: bool = False, timeout: float | None = None) -> Txn:
        # No local variable holds the database while something may raise: a
        # traceback kept by the application would keep it open after close().
        if timeout is not None:
            check_timeout(timeout)
        if self._db is None:
            raise closed_engine(self.url)
        txn: Txn
        if not write:
            txn = _LevelDBReader(self, self._snapshot())
        else:
            lock = self._writer
            lock.acquire(timeout, self.lock_timeout, self.url)
            try:
                # The writer reads the database itself, not a snapshot: it
                # holds the writer lock, so nothing else writes until it ends,
                # and a snapshot would only cost its making (issue 8).
                txn = _LevelDBTxn(self, self._live_db(), lock)
            except BaseException:
                lock.release()
                raise
        if self._db is None:  # close() ran meanwhile and may not have seen it
            txn.abort()
            raise closed_engine(self.url)
        return txn

    def get(self, key: bytes) -> bytes | None:
        # The latest committed value, as a snapshot of its own would give,
        # without one. The call holds the database until it returns.
        try:
            return self._db.get(key)
        except AttributeError:
            raise closed_engine(self.url) from None
        except (plyvel.Error, RuntimeError) as exc:
            raise EngineError(f"LevelDB error on {self.url}: {_text(exc)}") from exc

    def _live_db(self) -> Any:
        db = self._db
        if db is None:
            raise closed_engine(self.url)
        return db

    def _snapshot(self) -> Any:
        db = self._db
        if db is None:
            raise closed_engine(self.url)
        return db.snapshot()

    def stats(self) -> dict[str, Any]:
        """LevelDB's properties: ``leveldb.stats``, files per level, sizes."""
        db = self._db
        if db is None:
            raise closed_engine(self.url)

        def prop(name: str) -> str | None:
            value = db.get_property(name.encode())
            return None if value is None else value.decode(errors="replace")

        return {
            "leveldb.stats": prop("leveldb.stats"),
            "leveldb.sstables": prop("leveldb.sstables"),
            "leveldb.approximate-memory-usage": prop(
                "leveldb.approximate-memory-usage"
            ),
            "files_per_level": [
                int(prop(f"leveldb.num-files-at-level{n}") or 0) for n in range(7)
            ],
            "approximate_size": db.approximate_size(b"", b"\xff" * 16),
        }

    def close(self) -> None:
        """Close the database without waiting for anything.

        Every open transaction is ended (later calls raise ``TxnError``; a
        write transaction is aborted). A call that another thread has in
        flight finishes first, holding the database open until it returns.
        """
        with self._close_lock:
            db, self._db = self._db, None
        if db is None:
            return
        writer = self._writer.holder
        if writer is not None:
            writer.close_for_engine(self.url)
        for ref in list(self._readers):
            reader = ref()
            if reader is not None:
                reader.close_for_engine(self.url)
        # ``db`` and getrefcount's argument: nothing else holds the database,
        # so no other thread can be inside it. Otherwise it closes when freed.
        if sys.getrefcount(db) <= 2:
            db.close()

    def __del__(self) -> None:
        if getattr(self, "_db", None) is not None:
            self.close()


def _text(exc: BaseException) -> str:
    arg = exc.args[0] if exc.args else exc
    if isinstance(arg, bytes):
        return arg.decode(errors="replace")
    return str(exc) if isinstance(exc, OSError) else str(arg)


class _EndedSnapshot:
    """What an ended transaction's ``_snapshot`` is: a call that was already
    running when another thread ended it (``close()``) fails here."""

    __slots__ = ()

    def get(self, key: bytes) -> bytes | None:
        raise TxnError("transaction ended: its engine was closed")

    def iterator(self, **options: Any) -> Iterator[tuple[bytes, bytes]]:
        raise TxnError("transaction ended: its engine was closed")


_ENDED = _EndedSnapshot()
#: Writes of ended transactions (never written).
_NO_PUTS: dict[bytes, bytes] = {}
_USED_AFTER_END = "iterator used after its transaction ended"


class _Base(Txn):
    """What readers and writers share: a snapshot, the native iterators
    made from it, and the scans over them."""

    __slots__ = ("_boxes", "_engine", "_snapshot")
    _engine: LevelDBEngine
    _snapshot: Any
    #: One ``[plyvel iterator]`` list per scan, emptied when the scan ends
    #: or the transaction does (``None``: no scan yet). Only these lists
    #: hold the native iterators: see :meth:`_steps`.
    _boxes: list[list[Any]] | None

    def _scan_native(
        self, key: bytes, reverse: bool, inclusive: bool
    ) -> Iterator[tuple[bytes, bytes]]:
        """A scan of the snapshot by a new native iterator (see :meth:`_steps`)."""
        try:
            if reverse:
                native = self._snapshot.iterator(
                    stop=key, include_stop=inclusive, reverse=True
                )
            else:
                start = key if inclusive else key + b"\x00"
                native = self._snapshot.iterator(start=start)
        except (plyvel.Error, RuntimeError) as exc:
            raise self._fail(exc) from exc
        box = [native]
        boxes = self._boxes
        if boxes is None:
            self._boxes = [box]
        else:
            boxes.append(box)
            if len(boxes) > 16:  # forget finished scans (a long-lived txn)
                boxes[:] = [b for b in boxes if b]
        return self._steps(box)

    def _steps(self, box: list[Any]) -> Iterator[tuple[bytes, bytes]]:
        # Each step takes the native iterator out of ``box``: a step in
        # flight holds it until it returns, but between steps this generator
        # holds neither it nor the database, so ending the transaction (which
        # empties the box) frees them even while the scan is suspended.
        try:
            while True:
                item = next(box[0], None)  # plyvel yields tuples, never None
                if item is None:
                    return
                yield item
        except IndexError:  # emptied: the transaction ended
            raise TxnError(_USED_AFTER_END) from None
        except (plyvel.Error, RuntimeError) as exc:
            raise self._fail(exc) from exc
        finally:
            box.clear()  # done, or dropped half-way: free the native iterator

    def _release(self) -> None:
        # Drop every native reference: another thread may be inside a call on
        # one of them (close()), so nothing is closed explicitly; what nobody
        # else references is freed here, the rest when its call returns.
        self._snapshot = _ENDED
        boxes = self._boxes
        if boxes is not None:
            self._boxes = None
            for box in boxes:
                box.clear()

    def _fail(self, exc: BaseException) -> Error:
        if self.ended:
            return TxnError(_USED_AFTER_END)
        if self._engine._db is None:
            return closed_engine(self._engine.url)
        return EngineError(f"LevelDB error on {self._engine.url}: {_text(exc)}")


class _LevelDBReader(_Base):
    """A read transaction: one snapshot, nothing buffered."""

    __slots__ = ("_ref",)
    write = False
    put = delete = replace = pop = read_only

    def __init__(self, engine: LevelDBEngine, snapshot: Any) -> None:
        self._engine = engine
        self._snapshot = snapshot
        self._boxes = None
        self._ref = ref = _ref(self, engine._forget)
        engine._readers.add(ref)

    def get(self, key: bytes) -> bytes | None:
        try:
            return self._snapshot.get(key)
        except (plyvel.Error, RuntimeError) as exc:
            raise self._fail(exc) from exc

    def iter(self, key: bytes, reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
        return self._scan_native(key, reverse, True)

    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        try:
            get = self._snapshot.get
            return [get(key) for key in keys]
        except (plyvel.Error, RuntimeError) as exc:
            raise self._fail(exc) from exc

    def _release(self) -> None:
        self._engine._forget(self._ref)
        _Base._release(self)


class _LevelDBTxn(OverlayWrites, _Base):
    """A write transaction: a snapshot plus the buffered writes."""

    __slots__ = ("_overlay", "_puts", "_writes")
    write = True

    def __init__(self, engine: LevelDBEngine, snapshot: Any, lock: WriterLock) -> None:
        self._engine = engine
        self._snapshot = snapshot
        self._boxes = None
        self._puts: dict[bytes, bytes] = {}
        self._overlay: Overlay | None = None  # see OverlayWrites
        self._writes = 0
        lock.hold(self)

    def get(self, key: bytes) -> bytes | None:
        value = self._puts.get(key)
        if value is None:
            try:
                return self._snapshot.get(key)
            except (plyvel.Error, RuntimeError) as exc:
                raise self._fail(exc) from exc
        return None if value is DELETED else value

    def iter(self, key: bytes, reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
        return live_iter(self, self._scan, key, reverse)

    def replace(self, key: bytes, value: bytes) -> bytes | None:
        old = self._puts.get(key)
        if old is None:
            try:
                old = self._snapshot.get(key)
            except (plyvel.Error, RuntimeError) as exc:
                raise self._fail(exc) from exc
        elif old is DELETED:
            old = None
        self.put(key, value)
        return old

    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        puts = self._puts
        try:
            get = self._snapshot.get
            out = []
            for key in keys:
                value = puts.get(key)
                if value is None:
                    out.append(get(key))
                else:
                    out.append(None if value is DELETED else value)
            return out
        except (plyvel.Error, RuntimeError) as exc:
            raise self._fail(exc) from exc

    def put_many(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        puts, overlay = self._puts, self._overlay
        try:
            for key, value in items:
                if type(key) is not bytes or type(value) is not bytes or not key:
                    bad_put(key, value)
                if overlay is not None and key not in puts:
                    overlay.note(key)
                puts[key] = value
        finally:
            self._writes += 1

    def _scan(
        self, key: bytes, reverse: bool, inclusive: bool
    ) -> Iterator[tuple[bytes, bytes]]:
        base = self._scan_native(key, reverse, inclusive)
        if not self._puts:
            return base
        return merge(base, ordered(self).scan(key, reverse, inclusive), reverse)

    def _commit(self) -> None:
        if self._puts:
            self._write_batch()

    def _write_batch(self) -> None:
        engine = self._engine
        db = engine._db
        if db is None:
            raise closed_engine(engine.url)
        try:
            batch = db.write_batch(sync=engine.sync)
            for key, value in self._puts.items():
                if value is DELETED:
                    batch.delete(key)
                else:
                    batch.put(key, value)
            batch.write()
        except (plyvel.Error, RuntimeError) as exc:
            db = batch = None  # a kept traceback must not keep the database
            raise EngineError(
                f"{engine.url}: commit failed, nothing was written: {_text(exc)}"
            ) from exc

    def _release(self) -> None:
        self._writes += 1  # wakes live iterators so that they raise
        self._overlay = None
        self._puts = _NO_PUTS
        _Base._release(self)
