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
import threading
from collections.abc import Iterator
from typing import Any

import plyvel

from acid.engines import (
    DEFAULT_LOCK_TIMEOUT,
    Engine,
    EngineURL,
    Param,
    Txn,
    acquire_writer,
    closed_engine,
    resolve_params,
    txn_ended,
    txn_read_only,
)
from acid.engines._overlay import DELETED, Overlay, OverlayWrites, live_iter, merge
from acid.errors import ConfigError, EngineError, Error, TxnError

__all__ = ["LevelDBEngine"]


def _compression(text: str) -> str | None:
    lowered = text.strip().lower()
    if lowered in ("snappy", "none"):
        return None if lowered == "none" else "snappy"
    raise ValueError("snappy or none")


class LevelDBEngine(Engine):
    """LevelDB database directory at ``path``."""

    snapshots = True
    multi_process = False
    persistent = True

    PARAMS = {
        "block_cache": Param(Param.SIZE, 64 * 2**20, "LRU cache of blocks"),
        "write_buffer": Param(Param.SIZE, 16 * 2**20, "memtable size"),
        "bloom_bits": Param(Param.INT, 10, "bloom filter bits per key (0: off)"),
        "compression": Param(_compression, "snappy", "snappy or none"),
        "max_open_files": Param(Param.INT, 1000, "table files kept open"),
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
        if not path:
            raise ConfigError("leveldb: a path is required, e.g. leveldb:/var/db")
        self.path = os.path.abspath(path)
        self.url = f"leveldb:{self.path}"
        self.sync = sync
        self.lock_timeout = lock_timeout
        self._writer = threading.Lock()
        self._db: Any = None
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
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
            return _LevelDBTxn(self, db.snapshot(), False)
        acquire_writer(self._writer, timeout, self.lock_timeout, self.url)
        try:
            return _LevelDBTxn(self, db.snapshot(), True)
        except BaseException:
            self._writer.release()
            raise

    def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            db.close()

    def __del__(self) -> None:
        if getattr(self, "_db", None) is not None:
            self.close()


def _text(exc: BaseException) -> str:
    arg = exc.args[0] if exc.args else exc
    return arg.decode(errors="replace") if isinstance(arg, bytes) else str(arg)


class _LevelDBTxn(OverlayWrites, Txn):
    def __init__(self, engine: LevelDBEngine, snapshot: Any, write: bool) -> None:
        self._engine = engine
        self._snapshot = snapshot
        self._sget = snapshot.get
        self.write = write
        self._writes = 0
        self._overlay = Overlay()
        self._puts = self._overlay.puts
        if not write:
            self.put = self.delete = self.replace = self.pop = txn_read_only  # type: ignore[method-assign]

    def get(self, key: bytes) -> bytes | None:
        value = self._puts.get(key)
        if value is None:
            try:
                return self._sget(key)
            except (plyvel.Error, RuntimeError) as exc:
                raise self._fail(exc) from exc
        return None if value is DELETED else value

    def iter(self, key: bytes, reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
        if self._done:
            self._ended()
        if self.write:
            return live_iter(self, self._scan, key, reverse)
        return self._read_scan(key, reverse)

    def _native(
        self, key: bytes, reverse: bool, inclusive: bool
    ) -> Iterator[tuple[bytes, bytes]]:
        snap = self._snapshot
        if reverse:
            return snap.iterator(stop=key, include_stop=inclusive, reverse=True)
        return snap.iterator(start=key if inclusive else key + b"\x00")

    def _read_scan(self, key: bytes, reverse: bool) -> Iterator[tuple[bytes, bytes]]:
        try:
            for item in self._native(key, reverse, True):
                if self._done:
                    self._ended()
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

    def commit(self) -> None:
        if self._done:
            self._ended()
        try:
            if self._puts:
                self._write_batch()
        finally:
            self._finish()

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

    def abort(self) -> None:
        if not self._done:
            self._finish()

    def _fail(self, exc: BaseException) -> Error:
        if self._done:
            return TxnError("transaction already committed or aborted")
        if self._engine._db is None:
            return closed_engine(self._engine.url)
        return EngineError(f"LevelDB error on {self._engine.url}: {_text(exc)}")

    def _finish(self) -> None:
        self._done = True
        self._writes += 1
        self._overlay = Overlay()
        self._puts = {}
        self.get = self.put = self.delete = self.pop = txn_ended  # type: ignore[method-assign]
        snapshot, self._snapshot = self._snapshot, None
        try:
            if snapshot is not None:
                snapshot.close()
        except RuntimeError:
            pass  # the database closed first, taking the snapshot with it
        finally:
            if self.write:
                self._engine._writer.release()

    def __del__(self) -> None:
        if not self._done and getattr(self, "_snapshot", None) is not None:
            self._finish()
