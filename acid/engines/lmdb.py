"""``lmdb:/path`` - LMDB through py-lmdb: native transactions, many processes.

Readers run on LMDB's MVCC snapshots and never wait. LMDB serializes
writers with a lock that blocks in C without a timeout, so within one
process a Python lock with a timeout sits in front of it; across processes
a second writer waits in LMDB itself. Opening the same path twice in one
process shares one native environment (LMDB forbids opening it twice).

>>> import tempfile
>>> with LMDBEngine(tempfile.mkdtemp() + "/db") as engine:
...     with engine.begin(write=True) as txn:
...         txn.put(b"k", b"v")
...     engine.begin().get(b"k")
b'v'
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

import lmdb

from acid.engines import (
    DEFAULT_LOCK_TIMEOUT,
    IS_64BIT,
    Engine,
    EngineURL,
    Param,
    Txn,
    acquire_writer,
    closed_engine,
    resolve_params,
    txn_ended,
)
from acid.errors import ConfigError, EngineError, Error, MapFullError, TxnError

__all__ = ["LMDBEngine"]

_DEFAULT_MAP = 2**40 if IS_64BIT else 2**30


class _Shared:
    """One native environment per path per process, shared by engines."""

    def __init__(self, env: lmdb.Environment, options: dict[str, Any]) -> None:
        self.env = env
        self.options = options
        self.writer = threading.Lock()
        self.users = 0


_open: dict[str, _Shared] = {}
_open_lock = threading.Lock()


class LMDBEngine(Engine):
    """LMDB environment at ``path`` (a directory unless ``subdir=False``)."""

    snapshots = True
    multi_process = True
    persistent = True
    max_key_size = 511

    PARAMS = {
        "map_size": Param(Param.SIZE, _DEFAULT_MAP, "maximum database size"),
        "max_dbs": Param(Param.INT, 0, "named sub-databases"),
        "max_readers": Param(Param.INT, 126, "concurrent read transactions"),
        "sync": Param(Param.BOOL, True, "fsync on commit"),
        "readonly": Param(Param.BOOL, False, "open read-only"),
        "subdir": Param(Param.BOOL, True, "path is a directory"),
        "lock_timeout": Param(Param.SECONDS, DEFAULT_LOCK_TIMEOUT, "writer wait"),
    }

    def __init__(
        self,
        path: str,
        *,
        map_size: int = _DEFAULT_MAP,
        max_dbs: int = 0,
        max_readers: int = 126,
        sync: bool = True,
        readonly: bool = False,
        subdir: bool = True,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    ) -> None:
        if not path:
            raise ConfigError("lmdb: a path is required, e.g. lmdb:/var/data/app")
        self.path = os.path.abspath(path)
        self.url = f"lmdb:{self.path}"
        self.lock_timeout = lock_timeout
        self.readonly = readonly
        options = dict(
            map_size=map_size,
            max_dbs=max_dbs,
            max_readers=max_readers,
            sync=sync,
            readonly=readonly,
            subdir=subdir,
        )
        self._shared = _acquire(self.path, options)
        self._env: lmdb.Environment | None = self._shared.env

    @classmethod
    def from_url(cls, url: EngineURL) -> LMDBEngine:
        return cls(url.path, **resolve_params(url, cls.PARAMS))

    def begin(self, write: bool = False, timeout: float | None = None) -> Txn:
        env = self._env
        if env is None:
            raise closed_engine(self.url)
        if not write:
            try:
                return _LMDBReader(self, env.begin())  # buffers=False is the default
            except lmdb.Error as exc:
                raise _translate(exc, self) from exc
        if self.readonly:
            raise TxnError(
                f"{self.url} was opened with readonly=true; reopen it without "
                "readonly to write"
            )
        lock = self._shared.writer
        acquire_writer(lock, timeout, self.lock_timeout, self.url)
        try:
            native = env.begin(write=True, buffers=False)
        except BaseException as exc:
            lock.release()
            if isinstance(exc, lmdb.Error):
                raise _translate(exc, self) from exc
            raise
        return _LMDBTxn(self, native, True)

    def get(self, key: bytes) -> bytes | None:
        env = self._env
        if env is None:
            raise closed_engine(self.url)
        try:
            with env.begin() as txn:  # no wrapper object: the autocommit read path
                return txn.get(key)
        except lmdb.Error as exc:
            if key == b"" and isinstance(exc, lmdb.BadValsizeError):
                return None
            raise _translate(exc, self, key) from exc

    def close(self) -> None:
        if self._env is not None:
            self._env = None
            _release(self.path, self._shared)

    def __del__(self) -> None:
        if getattr(self, "_env", None) is not None:
            self.close()


def _acquire(path: str, options: dict[str, Any]) -> _Shared:
    with _open_lock:
        shared = _open.get(path)
        if shared is None:
            shared = _Shared(_open_env(path, options), options)
            _open[path] = shared
        elif shared.options != options:
            raise ConfigError(
                f"lmdb:{path} is already open in this process with different "
                f"parameters ({_describe(shared.options)}); LMDB allows one "
                "environment per path per process, so open it with the same ones"
            )
        shared.users += 1
        return shared


def _release(path: str, shared: _Shared) -> None:
    with _open_lock:
        shared.users -= 1
        if shared.users == 0:
            if _open.get(path) is shared:
                del _open[path]
            shared.env.close()


def _describe(options: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in options.items())


def _open_env(path: str, options: dict[str, Any]) -> lmdb.Environment:
    sync = options["sync"]
    parent = path if options["subdir"] else os.path.dirname(path)
    try:
        if not options["readonly"]:
            os.makedirs(parent, exist_ok=True)
        return lmdb.open(
            path,
            map_size=options["map_size"],
            max_dbs=options["max_dbs"],
            max_readers=options["max_readers"],
            subdir=options["subdir"],
            readonly=options["readonly"],
            sync=sync,
            metasync=sync,
            lock=True,
        )
    except lmdb.Error as exc:
        raise EngineError(
            f"lmdb:{path}: cannot open the environment ({exc}); check that the "
            "path is an LMDB directory (or file with subdir=false) you may "
            "access, and that map_size fits in the address space"
        ) from exc
    except OSError as exc:
        raise EngineError(f"lmdb:{path}: cannot create the directory: {exc}") from exc


def _translate(exc: lmdb.Error, engine: LMDBEngine, key: bytes = b"?") -> Error:
    """Map a native LMDB error onto acid's tree, with the remedy."""
    if isinstance(exc, lmdb.MapFullError):
        size = engine._shared.options["map_size"]
        return MapFullError(
            f"LMDB map of {engine.url} is full (map_size={size} bytes); reopen "
            f"with a larger map_size, e.g. {engine.url}?map_size="
            f"{max(2 * size, 2**30) // 2**20}MiB"
        )
    if isinstance(exc, lmdb.ReadersFullError):
        return EngineError(
            f"all LMDB reader slots of {engine.url} are in use; end read "
            "transactions sooner or reopen with a larger max_readers"
        )
    if isinstance(exc, lmdb.BadValsizeError):
        return EngineError(
            f"LMDB keys must be 1 to {LMDBEngine.max_key_size} bytes, got "
            f"{len(key) if isinstance(key, bytes) else '?'}"
        )
    if isinstance(exc, lmdb.ReadonlyError):
        return TxnError(f"{engine.url} is read-only; reopen it without readonly")
    if "closed/deleted/dropped" in str(exc):
        return TxnError("transaction already committed or aborted (or engine closed)")
    return EngineError(f"LMDB error on {engine.url}: {exc}")


class _LMDBReader(Txn):
    """A read transaction: one LMDB snapshot, nothing to count or re-seek.

    Kept apart from the writer because autocommit reads create one per
    operation: construction and abort are on the hot path. An abandoned
    reader gives its slot back when py-lmdb frees the native transaction.
    """

    __slots__ = ("_engine", "_native", "_done")
    write = False

    def __init__(self, engine: LMDBEngine, native: lmdb.Transaction) -> None:
        self._engine = engine
        self._native = native
        self._done = False

    def get(self, key: bytes) -> bytes | None:
        try:
            return self._native.get(key)  # type: ignore[return-value]  # buffers=False: bytes
        except lmdb.Error as exc:
            if key == b"" and isinstance(exc, lmdb.BadValsizeError):
                return None  # LMDB cannot store the empty key
            raise self._fail(exc, key) from exc

    put = delete = replace = pop = Txn._read_only

    def iter(self, key: bytes, reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
        if self._done:
            self._ended()
        return self._iter(key, reverse)

    def _iter(self, key: bytes, reverse: bool) -> Iterator[tuple[bytes, bytes]]:
        cur = self._native.cursor()
        try:
            if _seek(cur, key, reverse, True):
                yield from (cur.iterprev if reverse else cur.iternext)()  # type: ignore[misc]
        except lmdb.Error as exc:
            raise self._fail(exc, key) from exc

    def commit(self) -> None:
        if self._done:
            self._ended()
        self.abort()

    def abort(self) -> None:
        if not self._done:
            self._done = True
            try:
                self._native.abort()
            except lmdb.Error:
                pass  # already invalidated by the environment closing

    def _fail(self, exc: lmdb.Error, key: bytes) -> Error:
        if self._done:
            return TxnError("transaction already committed or aborted")
        return _translate(exc, self._engine, key)


class _LMDBTxn(Txn):
    """A write transaction, holding the engine's writer lock until it ends."""

    write = True

    def __init__(self, engine: LMDBEngine, native: lmdb.Transaction, write: bool):
        self._engine = engine
        self._native: lmdb.Transaction | None = native
        # Bound native methods, looked up once: these calls are the write path.
        self._nget = native.get
        self._nput = native.put
        self._nreplace = native.replace
        self._writes = 0

    def get(self, key: bytes) -> bytes | None:
        try:
            return self._nget(key)  # type: ignore[return-value]
        except lmdb.Error as exc:
            if key == b"" and isinstance(exc, lmdb.BadValsizeError):
                return None  # LMDB cannot store the empty key
            raise self._fail(exc, key) from exc

    def put(self, key: bytes, value: bytes) -> None:
        try:
            self._nput(key, value)
        except lmdb.Error as exc:
            raise self._fail(exc, key) from exc
        self._writes += 1

    def delete(self, key: bytes) -> bool:
        try:
            existed: bool = self._native.delete(key)  # type: ignore[union-attr]
        except lmdb.Error as exc:
            if key == b"" and isinstance(exc, lmdb.BadValsizeError):
                return False
            raise self._fail(exc, key) from exc
        self._writes += 1
        return existed

    def replace(self, key: bytes, value: bytes) -> bytes | None:
        try:
            old: bytes | None = self._nreplace(key, value)  # type: ignore[assignment]
        except lmdb.Error as exc:
            raise self._fail(exc, key) from exc
        self._writes += 1
        return old

    def pop(self, key: bytes) -> bytes | None:
        try:
            old: bytes | None = self._native.pop(key)  # type: ignore[union-attr,assignment]
        except lmdb.Error as exc:
            if key == b"" and isinstance(exc, lmdb.BadValsizeError):
                return None
            raise self._fail(exc, key) from exc
        self._writes += 1
        return old

    def iter(self, key: bytes, reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
        if self._done:
            self._ended()
        return self._iter(key, reverse)

    def _iter(self, key: bytes, reverse: bool) -> Iterator[tuple[bytes, bytes]]:
        assert self._native is not None
        cur = self._native.cursor()
        try:
            if not _seek(cur, key, reverse, True):
                return
            step = cur.iterprev if reverse else cur.iternext
            if not self.write:  # nothing can change under a reader
                yield from step()  # type: ignore[misc]
                return
            while True:
                stamp = self._writes
                for k, v in step():
                    yield k, v  # type: ignore[misc]
                    if self._writes != stamp:
                        break
                else:
                    return
                if self._done:
                    self._ended()
                if not _seek(cur, k, reverse, False):  # type: ignore[arg-type]
                    return
        except lmdb.Error as exc:
            raise self._fail(exc, key) from exc

    def commit(self) -> None:
        if self._done:
            self._ended()
        native = self._native
        try:
            native.commit()  # type: ignore[union-attr]
        except lmdb.Error as exc:
            raise _translate(exc, self._engine) from exc
        finally:
            self._finish()

    def abort(self) -> None:
        if self._done:
            return
        try:
            if self._native is not None:
                self._native.abort()
        except lmdb.Error:
            pass  # already invalidated by the environment closing
        finally:
            self._finish()

    def _fail(self, exc: lmdb.Error, key: bytes) -> Error:
        error = _translate(exc, self._engine, key)
        if self._done:
            return TxnError("transaction already committed or aborted")
        if isinstance(error, MapFullError) and self.write:
            self.abort()  # LMDB requires it; later calls raise TxnError
        return error

    def _finish(self) -> None:
        self._done = True
        self._native = None
        self._nget = txn_ended
        self.get = self.put = self.delete = txn_ended  # type: ignore[method-assign]
        self.replace = self.pop = txn_ended  # type: ignore[method-assign]
        self._writes += 1
        self._engine._shared.writer.release()

    def __del__(self) -> None:
        # An abandoned transaction gives back its reader slot (or the writer
        # lock) now, not when the engine closes.
        if not self._done and getattr(self, "_native", None) is not None:
            try:
                self.abort()
            except Error:
                pass


def _seek(cur: lmdb.Cursor, key: bytes, reverse: bool, inclusive: bool) -> bool:
    """Put ``cur`` on the first key >= ``key`` (> if not inclusive), or in
    reverse on the last key <= ``key`` (<); ``False`` if there is none."""
    if len(key) > LMDBEngine.max_key_size:
        # No stored key is that long: compare against its longest prefix
        # (callers seek to bounds such as b"\xff" * n).
        key = key[: LMDBEngine.max_key_size]
        inclusive = reverse
    if not reverse:
        if not key:
            return bool(cur.first())
        if not cur.set_range(key):
            return False
        return inclusive or cur.key() != key or bool(cur.next())
    if not key:
        return False
    if cur.set_range(key):
        if inclusive and cur.key() == key:
            return True
        return bool(cur.prev())
    return bool(cur.last())
