"""``lmdb:/path`` - LMDB through py-lmdb: native transactions, many processes.

Readers run on LMDB's MVCC snapshots and never wait. LMDB serializes
writers with a lock that blocks in C without a timeout, so within one
process a :class:`~acid.engines.WriterLock` with a timeout sits in front of
it; across processes a second writer waits in LMDB itself. Opening the same
path twice in one process shares one native environment (LMDB forbids
opening it twice), one writer lock and one :attr:`~LMDBEngine.identity`.

LMDB's own writer lock belongs to the thread that began the write
transaction: only that thread can release it. So a write transaction is
committed in the thread that began it, and one ended from elsewhere (by
``close()``, or dropped and freed in another thread) while that thread still
runs is *orphaned*: it keeps the writer lock until its thread begins another
write transaction or ends, and then it is aborted natively.

>>> import tempfile
>>> with LMDBEngine(tempfile.mkdtemp() + "/db") as engine:
...     with engine.begin(write=True) as txn:
...         txn.put(b"k", b"v")
...     engine.begin().get(b"k")
b'v'
"""

from __future__ import annotations

import os
import stat
import sys
import threading
from collections.abc import Hashable, Iterator, Sequence
from typing import Any

import lmdb

from acid.engines import (
    DEFAULT_LOCK_TIMEOUT,
    IS_64BIT,
    Engine,
    EngineURL,
    Param,
    ThreadToken,
    Txn,
    WriterLock,
    check_params,
    check_path,
    check_timeout,
    closed_engine,
    is_this_thread,
    make_dirs,
    read_only,
    resolve_params,
    thread_name,
)
from acid.errors import (
    ConfigError,
    EngineError,
    Error,
    MapFullError,
    TxnError,
    TxnTimeout,
)

__all__ = ["LMDBEngine"]

_DEFAULT_MAP = 2**40 if IS_64BIT else 2**30
_C_INT_MAX = 2**31 - 1


class _Writer(WriterLock):
    """The writer lock of one environment; it also keeps the native write
    transaction, so that one freed without ending (its Python object
    dropped) is aborted in the right thread."""

    __slots__ = ("native", "shared")

    def __init__(self, shared: _Shared) -> None:
        super().__init__()
        self.shared = shared
        #: The native transaction of the current (or last) writer.
        self.native: lmdb.Transaction | None = None

    def _abandoned(self) -> None:
        # Called from a weak reference's callback, maybe by the garbage
        # collector in another thread: only the thread that began the
        # transaction may abort it natively; otherwise it is orphaned.
        native, self.native = self.native, None
        owner = self._owner
        if owner is None or is_this_thread(owner) or owner() is None:
            _abort_native(native)
            super()._abandoned()
        else:
            self.shared.orphan = (native, owner)


class _Shared:
    """One native environment per storage per process, shared by engines."""

    def __init__(self, env: lmdb.Environment, options: dict[str, Any]) -> None:
        self.env = env
        self.options = options
        self.writer = _Writer(self)
        self.users = 0
        #: Where ``_open`` files it (see ``_storage_key``).
        self.key: Hashable = None
        #: A write transaction ended from another thread while the thread
        #: that began it still runs: ``(native txn, that thread's token)``.
        #: It keeps ``writer`` held, as it keeps LMDB's own writer lock.
        self.orphan: tuple[Any, ThreadToken | None] | None = None
        # Re-entrant, like _open_lock: the garbage collector may close an
        # engine (``__del__``) in the middle of this very code.
        self._reap_lock = threading.RLock()

    def reap(self) -> bool:
        """Abort the orphan natively once that is safe (in its own thread,
        or after that thread ended); ``True`` when none is left."""
        with self._reap_lock:
            orphan = self.orphan
            if orphan is None:
                return True
            native, owner = orphan
            if owner is not None and not is_this_thread(owner) and owner() is not None:
                return False
            if self.orphan is not orphan:
                return True  # reaped meanwhile (a nested call from the GC)
            self.orphan = None
        _abort_native(native)
        self.writer.release()
        return True


#: Open environments by storage (see ``_storage_key``).
_open: dict[Hashable, _Shared] = {}
_open_lock = threading.RLock()


class LMDBEngine(Engine):
    """LMDB environment at ``path`` (a directory unless ``subdir=False``)."""

    snapshots = True
    multi_process = True
    persistent = True
    max_key_size = 511

    PARAMS = {
        "map_size": Param(
            Param.SIZE, _DEFAULT_MAP, "maximum database size", low=1, high=sys.maxsize
        ),
        "max_dbs": Param(Param.INT, 0, "named sub-databases", low=0, high=_C_INT_MAX),
        "max_readers": Param(
            Param.INT, 126, "concurrent read transactions", low=1, high=_C_INT_MAX
        ),
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
        options = dict(
            map_size=map_size,
            max_dbs=max_dbs,
            max_readers=max_readers,
            sync=sync,
            readonly=readonly,
            subdir=subdir,
        )
        check_params("lmdb", self.PARAMS, lock_timeout=lock_timeout, **options)
        self.path = check_path("lmdb", path)
        self.url = f"lmdb:{self.path}"
        self.lock_timeout = float(lock_timeout)
        self.readonly = readonly
        self._env: lmdb.Environment | None = None
        self._shared = _acquire(self.path, options)
        self._env = self._shared.env

    @classmethod
    def from_url(cls, url: EngineURL) -> LMDBEngine:
        return cls(url.path, **resolve_params(url, cls.PARAMS))

    @property
    def identity(self) -> Hashable:
        """The environment shared by every engine on this path."""
        return self._shared

    def begin(self, write: bool = False, timeout: float | None = None) -> Txn:
        if timeout is not None:
            check_timeout(timeout)
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
        shared = self._shared
        if shared.orphan is not None and not shared.reap():
            raise _orphaned(self.url, shared.orphan)  # waiting cannot help
        lock = shared.writer
        try:
            owner = lock.acquire(timeout, self.lock_timeout, self.url)
        except TxnTimeout:
            orphan = shared.orphan
            if orphan is not None:
                raise _orphaned(self.url, orphan) from None
            raise
        try:
            # (db, parent, write) positionally: py-lmdb parses keywords
            # slowly, and buffers=False is the default.
            lock.native = native = env.begin(None, None, True)
        except BaseException as exc:
            lock.release()
            if isinstance(exc, lmdb.Error):
                raise _translate(exc, self) from exc
            raise
        txn = _LMDBTxn(self, native, owner, lock)
        if self._env is None:  # close() ran meanwhile and may not have seen it
            txn.abort()
            raise closed_engine(self.url)
        return txn

    def get(self, key: bytes) -> bytes | None:
        env = self._env
        if env is None:
            raise closed_engine(self.url)
        try:
            with env.begin() as txn:  # no wrapper object: the autocommit read path
                return txn.get(key)
        except lmdb.BadValsizeError:
            return None  # empty or longer than LMDB allows: cannot exist
        except lmdb.Error as exc:
            raise _translate(exc, self, key) from exc

    def stats(self) -> dict[str, Any]:
        """LMDB's own figures: ``env.stat()``, ``env.info()`` and map use."""
        env = self._env
        if env is None:
            raise closed_engine(self.url)
        stat, info = env.stat(), env.info()
        used = (info["last_pgno"] + 1) * stat["psize"]
        return {
            "stat": dict(stat),
            "info": dict(info),
            "map_used_bytes": used,
            "map_use": used / info["map_size"],
        }

    def backup(self, path: str) -> int:
        """Write a compacted copy of the environment to the new ``path``.

        One read transaction: consistent while writers go on. Returns the
        number of keys in the copy.
        """
        env = self._env
        if env is None:
            raise closed_engine(self.url)
        path = check_path("lmdb", path)
        make_dirs(
            "lmdb", path if self._shared.options["subdir"] else os.path.dirname(path)
        )
        try:
            env.copy(path, compact=True)
        except lmdb.Error as exc:
            raise _translate(exc, self) from exc
        copy = lmdb.open(
            path, subdir=self._shared.options["subdir"], readonly=True, lock=False
        )
        try:
            return int(copy.stat()["entries"])
        finally:
            copy.close()

    def close(self) -> None:
        """Close the engine without waiting for anything.

        A write transaction of this engine still open is aborted (later
        calls on it raise ``TxnError``) and the writer lock given back; if
        another thread began it and still runs, it is orphaned instead (see
        the module documentation) and the environment stays open for reuse.
        Read transactions end when the environment closes, that is when the
        last engine on this path closes.
        """
        with _open_lock:  # two threads closing must release the path once
            if self._env is None:
                return
            self._env = None
        shared = self._shared
        writer = shared.writer.holder
        if isinstance(writer, _LMDBTxn) and writer._engine is self:
            writer.close_for_engine(self.url)
        _release(shared)

    def __del__(self) -> None:
        if getattr(self, "_env", None) is not None:
            self.close()


def _orphaned(url: str, orphan: tuple[Any, ThreadToken | None] | None) -> TxnTimeout:
    name = thread_name(orphan[1] if orphan is not None else None)
    return TxnTimeout(
        f"{url}: the writer lock belongs to a write transaction of thread "
        f"{name} that was ended from another thread (by close(), or freed "
        "elsewhere) while that thread still runs; LMDB lets only the thread "
        "that began a write transaction release the lock, so it is released "
        "when that thread begins another write transaction or ends. "
        "Commit or abort write transactions in the thread that began them."
    )


def _storage_key(path: str) -> Hashable:
    """What identifies the storage at ``path``: the device and inode of the
    directory (or file, with ``subdir=false``), so that spellings through a
    symlink, ``..`` or a hard link find the one environment; ``None`` if
    nothing is there yet (then nothing can be open there either)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _acquire(path: str, options: dict[str, Any]) -> _Shared:
    with _open_lock:
        key = _storage_key(path)
        shared = _open.get(key) if key is not None else None
        if shared is not None:
            shared.users += 1  # at once: a collected engine may release meanwhile
            if shared.options == options:
                return shared
            shared.users -= 1
            raise ConfigError(
                f"lmdb:{path} is already open in this process with different "
                f"parameters ({_describe(shared.options)}); LMDB allows one "
                "environment per path per process, so open it with the same ones"
            )
        shared = _Shared(_open_env(path, options), options)
        shared.users = 1
        shared.key = _storage_key(path)  # exists now
        _open[shared.key] = shared
        return shared


def _release(shared: _Shared) -> None:
    with _open_lock:
        shared.users -= 1
        if shared.users or not shared.reap():
            # Other engines use it, or an orphaned writer still holds LMDB's
            # lock (closing would wait for its thread): keep it for reuse.
            return
        if _open.get(shared.key) is shared:
            del _open[shared.key]
        shared.env.close()


def _describe(options: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in options.items())


def _open_env(path: str, options: dict[str, Any]) -> lmdb.Environment:
    sync = options["sync"]
    subdir = options["subdir"]
    if not options["readonly"]:
        make_dirs("lmdb", path if subdir else os.path.dirname(path))
    _check_existing(path, subdir)
    try:
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
    except (MemoryError, lmdb.MemoryError) as exc:
        raise ConfigError(
            f"lmdb:{path}: cannot map map_size={options['map_size']} bytes into "
            "the address space; choose a smaller map_size"
        ) from exc
    except lmdb.Error as exc:
        raise EngineError(
            f"lmdb:{path}: cannot open the environment ({exc}); check that the "
            "path is an LMDB directory (or file with subdir=false) you may "
            "access, and that map_size fits in the address space"
        ) from exc
    except OSError as exc:
        raise EngineError(f"lmdb:{path}: cannot open the environment: {exc}") from exc


def _check_existing(path: str, subdir: bool) -> None:
    """``ConfigError`` when what is at ``path`` cannot be an environment: a
    regular file above it, or a file where ``subdir`` wants a directory (or
    the reverse). ``make_dirs`` finds the first case for writers only."""
    try:
        mode = os.stat(path).st_mode
    except NotADirectoryError as exc:
        raise ConfigError(
            f"lmdb:{path}: the path is below a regular file, so it cannot be "
            "an environment"
        ) from exc
    except OSError:
        return  # missing or unreadable: LMDB's own error says so
    if subdir and not stat.S_ISDIR(mode):
        raise ConfigError(
            f"lmdb:{path} is a file, not a directory; open it with subdir=false"
        )
    if not subdir and stat.S_ISDIR(mode):
        raise ConfigError(
            f"lmdb:{path} is a directory; open it with subdir=true (the default)"
        )


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
            f"LMDB keys must be 1 to {LMDBEngine.max_key_size} bytes "
            f"(max_key_size), got {len(key) if isinstance(key, bytes) else '?'}"
        )
    if isinstance(exc, lmdb.ReadonlyError):
        return TxnError(f"{engine.url} is read-only; reopen it without readonly")
    if engine._env is None:
        return TxnError(f"transaction ended: its engine {engine.url!r} was closed")
    if "closed/deleted/dropped" in str(exc):
        return TxnError("transaction already committed or aborted")
    return EngineError(f"LMDB error on {engine.url}: {exc}")


def _abort_native(native: lmdb.Transaction | None) -> None:
    if native is None:
        return
    try:
        native.abort()
    except lmdb.Error:
        pass  # already invalidated by the environment closing


class _LMDBReader(Txn):
    """A read transaction: one LMDB snapshot, nothing to count or re-seek.

    Kept apart from the writer because scans outside a transaction create
    one each: construction and abort are on a hot path. Ending it drops the
    native transaction, which gives its reader slot back even while the
    application keeps this object (py-lmdb keeps the slot of an aborted
    transaction until the object is freed).
    """

    __slots__ = ("_engine", "_native")
    write = False
    put = delete = replace = pop = read_only

    def __init__(self, engine: LMDBEngine, native: lmdb.Transaction) -> None:
        self._engine = engine
        self._native: Any = native

    def get(self, key: bytes) -> bytes | None:
        try:
            return self._native.get(key)  # buffers=False: bytes
        except lmdb.BadValsizeError:
            return None  # empty or longer than LMDB allows: cannot exist
        except lmdb.Error as exc:
            raise _translate(exc, self._engine, key) from exc

    def iter(self, key: bytes, reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
        try:
            cur = self._native.cursor()
        except lmdb.Error as exc:
            raise _translate(exc, self._engine, key) from exc
        return self._iter(cur, key, reverse)

    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        try:
            get = self._native.get
            return [get(key) for key in keys]
        except lmdb.Error:  # a key LMDB refuses: the careful path says which
            return [self.get(key) for key in keys]

    def _iter(
        self, cur: lmdb.Cursor, key: bytes, reverse: bool
    ) -> Iterator[tuple[bytes, bytes]]:
        try:
            if _seek(cur, key, reverse, True):
                yield from (cur.iterprev if reverse else cur.iternext)()  # type: ignore[misc]
        except lmdb.Error as exc:
            if self.ended:
                raise TxnError("iterator used after its transaction ended") from exc
            raise _translate(exc, self._engine, key) from exc

    def _release(self) -> None:
        native, self._native = self._native, None
        try:
            native.abort()
        except lmdb.Error:
            pass  # already invalidated by the environment closing


class _LMDBTxn(Txn):
    """A write transaction, holding the writer lock until it ends.

    No ``__del__``: one dropped without ending is noticed by the writer
    lock (see :class:`_Writer`), so ended ones are freed at no cost.
    """

    __slots__ = ("_engine", "_native", "_owner", "_writes")
    write = True
    _thread_bound = True  # LMDB's writer lock belongs to the beginning thread

    def __init__(
        self,
        engine: LMDBEngine,
        native: lmdb.Transaction,
        owner: ThreadToken | None,
        lock: _Writer,
    ) -> None:
        self._engine = engine
        self._native: Any = native
        self._owner = owner  # the thread that began it (and holds LMDB's lock)
        self._writes = 0  # bumped by every write: live iterators re-seek
        lock.hold(self)

    # The native methods are looked up on each call: with LOAD_METHOD that
    # is as fast as calling a stored bound method, and begin is cheaper.

    def get(self, key: bytes) -> bytes | None:
        try:
            return self._native.get(key)
        except lmdb.BadValsizeError:
            return None  # empty or longer than LMDB allows: cannot exist
        except lmdb.Error as exc:
            raise self._fail(exc, key) from exc

    def put(self, key: bytes, value: bytes) -> None:
        try:
            self._native.put(key, value)
        except lmdb.Error as exc:
            raise self._fail(exc, key) from exc
        self._writes += 1

    def delete(self, key: bytes) -> bool:
        try:
            existed: bool = self._native.delete(key)
        except lmdb.BadValsizeError:
            return False
        except lmdb.Error as exc:
            raise self._fail(exc, key) from exc
        self._writes += 1
        return existed

    def replace(self, key: bytes, value: bytes) -> bytes | None:
        try:
            old: bytes | None = self._native.replace(key, value)
        except lmdb.Error as exc:
            raise self._fail(exc, key) from exc
        self._writes += 1
        return old

    def pop(self, key: bytes) -> bytes | None:
        try:
            old: bytes | None = self._native.pop(key)
        except lmdb.BadValsizeError:
            return None
        except lmdb.Error as exc:
            raise self._fail(exc, key) from exc
        self._writes += 1
        return old

    def iter(self, key: bytes, reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
        try:
            cur = self._native.cursor()
        except lmdb.Error as exc:
            raise self._fail(exc, key) from exc
        return self._iter(cur, key, reverse)

    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        try:
            get = self._native.get
            return [get(key) for key in keys]
        except lmdb.Error:  # a key LMDB refuses: the careful path says which
            return [self.get(key) for key in keys]

    def put_many(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        # One native loop (Cursor.putmulti) instead of a call per pair.
        try:
            self._native.cursor().putmulti(items)
        except lmdb.Error as exc:
            limit = LMDBEngine.max_key_size
            bad = next((k for k, _ in items if not 0 < len(k) <= limit), b"?")
            raise self._fail(exc, bad) from exc
        finally:
            self._writes += 1

    def _iter(
        self, cur: lmdb.Cursor, key: bytes, reverse: bool
    ) -> Iterator[tuple[bytes, bytes]]:
        try:
            if not _seek(cur, key, reverse, True):
                return
            step = cur.iterprev if reverse else cur.iternext
            while True:
                stamp = self._writes
                for k, v in step():
                    yield k, v  # type: ignore[misc]
                    if self._writes != stamp:
                        break
                else:
                    return
                if self.ended:
                    raise TxnError("iterator used after its transaction ended")
                if not _seek(cur, k, reverse, False):  # type: ignore[arg-type]
                    return
        except lmdb.Error as exc:
            raise self._fail(exc, key) from exc

    def _wrong_thread(self) -> TxnError:
        return TxnError(
            f"{self._engine.url}: commit an LMDB write transaction in the "
            f"thread that began it ({thread_name(self._owner)}); LMDB's writer "
            "lock belongs to that thread"
        )

    def _commit(self) -> None:
        try:
            self._native.commit()
        except lmdb.Error as exc:
            raise _translate(exc, self._engine) from exc

    def _abort(self) -> bool:
        owner = self._owner
        if owner is None or is_this_thread(owner) or owner() is None:
            try:
                self._native.abort()
            except lmdb.Error:
                pass  # already invalidated by the environment closing
            return False
        # Only that thread can release LMDB's writer lock (see the module
        # doc): keep ours held until the orphan is reaped.
        self._engine._shared.orphan = (self._native, owner)
        return True

    def _release(self) -> None:
        self._writes += 1  # live iterators stop at their next step
        self._native = None

    def _fail(self, exc: lmdb.Error, key: bytes) -> Exception:
        if self.ended:
            return TxnError("iterator used after its transaction ended")
        failure = getattr(self, "failure", None)
        if failure is not None:
            return failure.error(failure.message)
        error = _translate(exc, self._engine, key)
        if isinstance(error, MapFullError):
            # LMDB marked the native transaction failed: it can only be
            # aborted. Say so on every later call, commit included.
            self.poison(MapFullError, f"{error}; this transaction can only be aborted")
        return error


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
