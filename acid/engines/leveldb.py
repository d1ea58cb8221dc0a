"""``leveldb:/path`` - LevelDB through plyvel (``pip install 'acid[leveldb]'``).

LevelDB has no transactions, so this engine builds them: a read
transaction reads one LevelDB snapshot; a write transaction reads a snapshot
too, buffers its puts and deletes in an overlay that its own reads and
scans see, and lands them in one atomic ``WriteBatch`` on commit. Writers
are serialized by a lock. LevelDB locks its directory: one process, and one
engine object, at a time.

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
from collections.abc import Iterator
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
    closed_engine,
    make_dirs,
    read_only,
    resolve_params,
)
from acid.engines._overlay import DELETED, Overlay, OverlayWrites, live_iter, merge
from acid.errors import EngineError, Error, TxnError

__all__ = ["LevelDBEngine"]

_C_INT_MAX = 2**31 - 1


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
        db = self._db
        if db is None:
            raise closed_engine(self.url)
        if not write:
            return _LevelDBReader(self, db.snapshot())
        lock = self._writer
        lock.acquire(timeout, self.lock_timeout, self.url)
        try:
            txn = _LevelDBTxn(self, db.snapshot())
        except BaseException:
            lock.release()
            raise
        lock.hold(txn)
        return txn

    def close(self) -> None:
        """Close the database; a write transaction still open is aborted.
        Read transactions raise ``EngineError`` from then on."""
        db, self._db = self._db, None
        if db is None:
            return
        writer = self._writer.holder
        if writer is not None:
            writer.close_for_engine(self.url)
        db.close()

    def __del__(self) -> None:
        if getattr(self, "_db", None) is not None:
            self.close()


def _text(exc: BaseException) -> str:
    arg = exc.args[0] if exc.args else exc
    if isinstance(arg, bytes):
        return arg.decode(errors="replace")
    return str(exc) if isinstance(exc, OSError) else str(arg)


class _LevelDBTxn(OverlayWrites, Txn):
    """A write transaction (and, through :class:`_LevelDBReader`, a read one)."""

    write = True

    def __init__(self, engine: LevelDBEngine, snapshot: Any) -> None:
        self._engine = engine
        self._snapshot = snapshot
        self._sget = snapshot.get
        self._writes = 0
        self._overlay = Overlay()
        self._puts = self._overlay.puts

    def get(self, key: bytes) -> bytes | None:
        value = self._puts.get(key)
        if value is None:
            try:
                return self._sget(key)
            except (plyvel.Error, RuntimeError) as exc:
                raise self._fail(exc) from exc
        return None if value is DELETED else value

    def iter(self, key: bytes, reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
        if self.write:
            return live_iter(self, self._scan, key, reverse)
        try:
            native = self._native(key, reverse, True)
        except (plyvel.Error, RuntimeError) as exc:
            raise self._fail(exc) from exc
        return self._read_scan(native)

    def _native(
        self, key: bytes, reverse: bool, inclusive: bool
    ) -> Iterator[tuple[bytes, bytes]]:
        snap = self._snapshot
        if reverse:
            return snap.iterator(stop=key, include_stop=inclusive, reverse=True)
        return snap.iterator(start=key if inclusive else key + b"\x00")

    def _read_scan(
        self, native: Iterator[tuple[bytes, bytes]]
    ) -> Iterator[tuple[bytes, bytes]]:
        try:
            for item in native:
                if self.ended:
                    raise TxnError("iterator used after its transaction ended")
                yield item
        except (plyvel.Error, RuntimeError) as exc:
            raise self._fail(exc) from exc

    def _scan(
        self, key: bytes, reverse: bool, inclusive: bool
    ) -> Iterator[tuple[bytes, bytes]]:
        base = self._native(key, reverse, inclusive)
        if not self._puts:
            return base
        return merge(base, self._overlay.scan(key, reverse, inclusive), reverse)

    def _commit(self) -> None:
        if self._puts:
            self._write_batch()

    def _write_batch(self) -> None:
        db = self._engine._db
        if db is None:
            raise closed_engine(self._engine.url)
        try:
            batch = db.write_batch(sync=self._engine.sync)
            for key, value in self._puts.items():
                if value is DELETED:
                    batch.delete(key)
                else:
                    batch.put(key, value)
            batch.write()
        except (plyvel.Error, RuntimeError) as exc:
            raise EngineError(
                f"{self._engine.url}: commit failed, nothing was written: {_text(exc)}"
            ) from exc

    def _release(self) -> None:
        # Close the snapshot and drop every reference to it (``_sget`` is
        # bound to it), even while the application keeps this object.
        self._writes += 1  # wakes live iterators so that they raise
        self._overlay = _NO_OVERLAY
        self._puts = _NO_OVERLAY.puts
        snapshot, self._snapshot, self._sget = self._snapshot, None, None
        try:
            snapshot.close()
        except RuntimeError:
            pass  # the database closed first, taking the snapshot with it

    def _fail(self, exc: BaseException) -> Error:
        if self.ended:
            return TxnError("iterator used after its transaction ended")
        if self._engine._db is None:
            return closed_engine(self._engine.url)
        return EngineError(f"LevelDB error on {self._engine.url}: {_text(exc)}")

    def __del__(self) -> None:
        if self.write:  # a reader's snapshot goes with the plyvel object
            self.abandon()


#: What ended transactions point at instead of their writes (never written).
_NO_OVERLAY = Overlay()


class _LevelDBReader(_LevelDBTxn):
    write = False
    put = delete = replace = pop = read_only
