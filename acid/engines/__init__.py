"""The engine contract: ordered byte-key stores with transactions.

An engine hands out transactions; a transaction reads and writes ``bytes``
keys and values and iterates them in byte order::

    >>> engine = from_url("skiplist:/")
    >>> with engine.begin(write=True) as txn:
    ...     txn.put(b"b", b"2")
    ...     txn.put(b"a", b"1")
    >>> with engine.begin() as txn:
    ...     list(txn.iter(b""))
    [(b'a', b'1'), (b'b', b'2')]
    >>> engine.close()

Engines are named by URLs, ``scheme:path?param=value&...``, parsed once by
:func:`parse_url` (``acid/engines/_url.py``). The built-in schemes are
``skiplist`` (in memory), ``lmdb`` and ``leveldb``; other packages add schemes
with :func:`register` or through the entry-point group ``acid.engines``. See
``docs/engines.md``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import re
import sys
import threading
import weakref
from collections.abc import Callable, Hashable, Iterator
from types import TracebackType
from typing import Any

from acid.engines._url import (
    EngineURL,
    Param,
    check_params,
    check_path,
    check_timeout,
    lock_wait,
    make_dirs,
    parse_bool,
    parse_seconds,
    parse_size,
    parse_url,
    resolve_params,
)
from acid.errors import ConfigError, EngineError, TxnError, TxnTimeout

__all__ = [
    "DEFAULT_LOCK_TIMEOUT",
    "Engine",
    "EngineURL",
    "Param",
    "Txn",
    "WriterLock",
    "check_params",
    "check_path",
    "check_timeout",
    "from_url",
    "known_schemes",
    "make_dirs",
    "parse_bool",
    "parse_seconds",
    "parse_size",
    "parse_url",
    "read_only",
    "register",
    "resolve_params",
]

#: Seconds a writer waits for another writer when neither ``begin(timeout=)``
#: nor the URL parameter ``lock_timeout`` says otherwise.
DEFAULT_LOCK_TIMEOUT = 30.0

_current_thread = threading.current_thread


class Raiser:
    """A stand-in for a method that may no longer be called: raises
    ``error(message)`` whatever the arguments.

    Installed on a transaction's instance (or class) instead of a checked
    flag, so that the live methods never test whether they may run. It holds
    no reference to the transaction, so installing it makes no cycle.
    """

    __slots__ = ("error", "message")

    def __init__(self, error: type[Exception], message: str) -> None:
        self.error = error
        self.message = message

    def __call__(self, *args: object, **kwargs: object) -> Any:
        raise self.error(self.message)


#: ``put``/``delete``/``replace``/``pop`` of a read transaction.
read_only = Raiser(
    TxnError, "write in a read transaction; begin the transaction with write=True"
)

_OPERATIONS = ("get", "put", "delete", "replace", "pop", "iter")
_COMMITTED = "transaction already committed; begin a new one"
_ABORTED = "transaction already aborted; begin a new one"


class _Ended:
    """An operation of an ended transaction: raises ``TxnError`` saying how
    it ended. A data descriptor, so it also hides what an engine stored on
    the instance (a bound native ``get``, say)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, txn: Any, owner: type | None = None) -> Any:
        if txn is None:
            return self
        return Raiser(TxnError, txn._how)

    def __set__(self, txn: Any, value: Any) -> None:
        txn.__dict__[self.name] = value


class Txn:
    """A transaction. Engines subclass this; callers never construct it.

    ``write`` says whether writes are allowed. ``commit`` lands every write
    atomically, ``abort`` discards them; afterwards every call raises
    :class:`~acid.errors.TxnError`, except ``abort``, which is a no-op so
    that cleanup code may call it unconditionally. As a context manager the
    transaction commits when the block succeeds and aborts when it raises.

    The life cycle lives here, once: *active*, then *committed* or *aborted*.
    An engine implements hooks: :meth:`_commit` (land the writes) and
    :meth:`_abort` (discard them), called for write transactions, and
    :meth:`_release` (drop native references), called for every
    transaction. The base class calls exactly one of the first two, then
    ``_release``, then releases the writer lock, each exactly once, even
    when :meth:`Engine.close` ends the transaction from another thread.
    Ending swaps the instance's class for a subclass whose operations raise
    (made for each engine class), so live operations never test a flag.
    """

    write: bool = False
    #: ``True`` once ended; iterators test it between steps.
    ended: bool = False
    #: How it ended: the message of every later call.
    _how: str = ""
    #: The writer lock a write transaction holds (see :meth:`WriterLock.hold`).
    _writer: WriterLock | None = None
    #: One item while ending is still to claim (see :meth:`_claim`).
    _token: list[None] | None = None
    #: Set by :meth:`poison`: what every later call and ``commit`` raise.
    failure: Raiser | None = None
    #: The classes an instance takes when it ends (made per subclass).
    _committed_class: type[Txn]
    _aborted_class: type[Txn]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "_how" in cls.__dict__:
            return  # one of the ended classes made below
        ops: dict[str, Any] = {name: _Ended(name) for name in _OPERATIONS}
        cls._committed_class = type(
            cls.__name__, (cls,), {**ops, "_how": _COMMITTED, "ended": True}
        )
        cls._aborted_class = type(
            cls.__name__, (cls,), {**ops, "_how": _ABORTED, "ended": True}
        )

    def get(self, key: bytes) -> bytes | None:
        """The value stored under ``key``, or ``None``."""
        raise NotImplementedError

    def put(self, key: bytes, value: bytes) -> None:
        """Store ``value`` under ``key``, replacing any previous value."""
        raise NotImplementedError

    def delete(self, key: bytes) -> bool:
        """Remove ``key``; ``True`` if it existed."""
        raise NotImplementedError

    def iter(self, key: bytes, reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
        """``(key, value)`` pairs from the first key ``>= key`` upwards, or
        with ``reverse`` from the last key ``<= key`` downwards.

        The iterator stays valid while this transaction writes: after it
        yielded ``k``, its next item is the first key after ``k`` (before
        ``k`` when reversed) in the transaction's view at that moment,
        including the transaction's own puts and deletes.
        """
        raise NotImplementedError

    def replace(self, key: bytes, value: bytes) -> bytes | None:
        """Store ``value`` under ``key`` and return the previous value."""
        old = self.get(key)
        self.put(key, value)
        return old

    def pop(self, key: bytes) -> bytes | None:
        """Remove ``key`` and return its value (``None`` if it was absent)."""
        old = self.get(key)
        if old is not None:
            self.delete(key)
        return old

    def commit(self) -> None:
        """Land every write of this transaction atomically and end it.

        If landing fails nothing landed: the transaction ends aborted and
        the error propagates.
        """
        token = self._token
        if self.ended or not (token is None or self._claim()):
            raise TxnError(self._how or "transaction already ended; begin a new one")
        if not self.write:  # nothing to land: ``_end`` cut short
            try:
                self._release()
            finally:
                self.__class__ = self._committed_class
            return
        try:
            if self.failure is not None:
                self.failure()
            self._commit()
        except BaseException:
            self._end(False, quiet=True)
            raise
        # ``_end(True)`` inlined: this is every write transaction's path.
        self.ended = True
        try:
            self._release()
        finally:
            self.__class__ = self._committed_class
            writer = self._writer
            if writer is not None:
                self._writer = None
                writer.release()

    def abort(self) -> None:
        """Discard this transaction's writes and end it; no-op once ended."""
        if self.ended:
            return
        if self.write:
            if self._token is None or self._claim():
                self._end(False)
            return
        # A reader has nothing to discard and nothing to race with: ``_end``
        # cut short, since scans outside a transaction end one reader each.
        try:
            self._release()
        finally:
            self.__class__ = self._aborted_class

    @property
    def closed(self) -> bool:
        """``True`` once the transaction was committed or aborted."""
        return self.ended

    def __enter__(self) -> Txn:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.abort()
        elif not self.ended:
            self.commit()

    # -- hooks for engines ------------------------------------------------

    def _commit(self) -> None:
        """Land the writes. Raising means nothing landed."""

    def _abort(self) -> None:
        """Discard the writes (also called after a failed ``_commit``)."""

    def _release(self) -> None:
        """Drop native references once the transaction ended, so that what
        they hold (a reader slot, a snapshot) is freed even while the
        application still references this object."""

    # -- the machinery ----------------------------------------------------

    def _claim(self) -> bool:
        """``True`` for exactly one caller: the one that ends a write
        transaction a :class:`WriterLock` holds, when its thread and
        :meth:`Engine.close` race (``list.pop`` is atomic)."""
        try:
            self._token.pop()  # type: ignore[union-attr]
        except IndexError:
            return False
        return True

    def _end(self, committed: bool, quiet: bool = False, how: str = "") -> None:
        """End a write transaction: ``_abort`` unless ``committed``, then
        ``_release``, the class swap and the writer lock."""
        try:
            if not committed:
                self._abort()
        except Exception:
            if not quiet:
                raise
        finally:
            self.ended = True
            try:
                self._release()
            finally:
                self.__class__ = (
                    self._committed_class if committed else self._aborted_class
                )
                if how:
                    self._how = how
                writer = self._writer
                if writer is not None:
                    self._writer = None
                    writer.release()

    def poison(self, error: type[Exception], message: str) -> None:
        """Mark a transaction the engine can no longer use (LMDB after
        MAP_FULL): every later call and ``commit`` raise ``error(message)``,
        ``commit`` then ends it aborted; ``abort`` ends it as usual."""
        self.failure = stub = Raiser(error, message)
        for name in _OPERATIONS:
            setattr(self, name, stub)

    def close_for_engine(self, url: str) -> None:
        """End this transaction because its engine closes (any thread)."""
        if not self.ended and (self._token is None or self._claim()):
            how = f"transaction aborted: its engine {url!r} was closed"
            self._end(False, quiet=True, how=how)

    def abandon(self) -> None:
        """Abort a transaction dropped without commit or abort, quietly;
        engines call it from ``__del__`` (so the writer lock is given back
        now, not when the engine closes)."""
        if not self.ended:
            try:
                self.abort()
            except Exception:
                pass


_SAME_THREAD = (
    "{what}: this thread already holds the writer lock, in another write "
    "transaction that has not ended; waiting for it here would wait forever. "
    "Finish the other write transaction first (commit or abort it). In "
    "asyncio, do not let a write transaction span an await, or run it in a "
    "thread with asyncio.to_thread (an asyncio API is planned)."
)


class WriterLock:
    """The lock serializing the writers of one storage in this process.

    It knows the thread holding it: a thread that asks for it again (a
    second ``begin(write=True)`` before the first ended, or a second asyncio
    task of the same event loop while the first task's write transaction
    spans an ``await``) gets ``TxnError`` at once instead of waiting for
    itself. Other threads wait up to their timeout. It also knows the write
    transaction holding it, so that :meth:`Engine.close` can end it.

    >>> lock = WriterLock()
    >>> owner = lock.acquire(None, 1.0, "demo")
    >>> lock.acquire(None, 1.0, "demo")
    Traceback (most recent call last):
    ...
    acid.errors.TxnError: demo: this thread already holds the writer lock, ...
    >>> lock.release()
    """

    __slots__ = ("__weakref__", "_lock", "_owner", "_txn")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owner: threading.Thread | None = None
        self._txn: weakref.ref[Txn] | None = None

    def acquire(
        self, timeout: float | None, default: float, what: str
    ) -> threading.Thread:
        """Take the lock, waiting at most ``timeout`` seconds (``None``:
        ``default``; ``inf``: no limit), or raise ``TxnTimeout`` saying why.
        Returns the calling thread (the owner), so callers need not look it
        up again.
        """
        wait = default if timeout is None else check_timeout(timeout)
        me = _current_thread()
        if self._lock.acquire(False):  # uncontended: the common case, and cheapest
            self._owner = me
            return me
        if self._owner is me:
            raise TxnError(_SAME_THREAD.format(what=what))
        if not self._lock.acquire(timeout=lock_wait(wait)):
            raise TxnTimeout(
                f"{what}: another write transaction held the writer lock for "
                f"{wait:g} s; commit or abort it, or pass a longer timeout "
                "(begin(write=True, timeout=...) or the URL parameter lock_timeout)"
            )
        self._owner = me
        return me

    def hold(self, txn: Txn) -> None:
        """Record ``txn`` as the holder; it releases the lock when it ends."""
        txn._writer = self
        txn._token = [None]
        self._txn = weakref.ref(txn)  # weak: an abandoned writer must be freed

    def release(self) -> None:
        self._owner = None
        self._txn = None
        self._lock.release()

    @property
    def holder(self) -> Txn | None:
        """The live write transaction holding the lock, if any."""
        ref = self._txn
        return None if ref is None else ref()

    @property
    def owner(self) -> threading.Thread | None:
        """The thread that took the lock, while it is held."""
        return self._owner


class Engine:
    """An ordered key-value store handing out transactions.

    Capabilities are class attributes, so callers and tests can branch on
    what an engine can do rather than on its class:

    ``snapshots``
        a read transaction sees one stable snapshot for its whole life.
    ``multi_process``
        several processes may open the same location at once.
    ``persistent``
        data survive ``close()`` and reopening the same URL.
    ``max_key_size``
        the longest key the engine stores, ``None`` for no limit. Keys must
        be non-empty (LMDB cannot store the empty key).
    """

    snapshots: bool = True
    multi_process: bool = False
    persistent: bool = False
    max_key_size: int | None = None
    url: str = ""

    @property
    def identity(self) -> Hashable:
        """The same (hashable, weak-referenceable) object for every engine
        opened on the same storage in this process; the engine itself unless
        engines share storage (two ``lmdb:`` engines on one path share one
        environment and one writer lock). The store layer keys its ambient
        transaction on it, so that a block begun through one store covers
        writes through the others instead of waiting for itself.
        """
        return self

    def begin(self, write: bool = False, timeout: float | None = None) -> Txn:
        """Start a transaction.

        A writer waits at most ``timeout`` seconds for another writer
        (``None``: the engine's ``lock_timeout``; ``inf``: no limit) and then
        raises :class:`~acid.errors.TxnTimeout`. A thread that already holds
        the writer lock gets :class:`~acid.errors.TxnError` at once. Readers
        never wait.
        """
        raise NotImplementedError

    def get(self, key: bytes) -> bytes | None:
        """One read in a snapshot of its own: ``begin()``, ``get``, ``abort``.

        The layer above calls this for reads outside any transaction, so an
        engine may override it with something cheaper that means the same.
        """
        txn = self.begin()
        try:
            return txn.get(key)
        finally:
            txn.abort()

    def close(self) -> None:
        """Release the engine; further use raises ``EngineError``.

        Closing never waits for transactions: a write transaction still
        open is aborted (later calls on it raise ``TxnError``) and the writer
        lock is given back. Closing again is a no-op.
        """
        raise NotImplementedError

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url!r}>"


def closed_engine(url: str) -> EngineError:
    return EngineError(f"engine {url!r} is closed; open it again with from_url()")


# -- Registry ---------------------------------------------------------------

Factory = Callable[[EngineURL], Engine]

_registry: dict[str, Factory] = {}
_registry_lock = threading.Lock()


def register(scheme: str, factory: Factory) -> None:
    """Make ``from_url`` open URLs of ``scheme`` with ``factory(EngineURL)``."""
    if not re.fullmatch(r"[A-Za-z][\w.-]*", scheme):
        raise ConfigError(f"bad engine scheme name {scheme!r}")
    with _registry_lock:
        _registry[scheme.lower()] = factory


def _builtin(module: str, attr: str, extra: str | None = None) -> Factory:
    def factory(url: EngineURL) -> Engine:
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:
            hint = f"pip install 'acid[{extra}]'" if extra else "reinstall acid"
            raise ConfigError(
                f"{url.scheme}: engine needs the package {exc.name!r}, which is "
                f"not installed; {hint}"
            ) from exc
        opened: Engine = getattr(mod, attr).from_url(url)
        return opened

    return factory


register("skiplist", _builtin("acid.engines.skiplist", "SkipListEngine"))
register("lmdb", _builtin("acid.engines.lmdb", "LMDBEngine"))
register("leveldb", _builtin("acid.engines.leveldb", "LevelDBEngine", "leveldb"))


def _entry_point(scheme: str) -> Factory | None:
    for ep in importlib.metadata.entry_points(group="acid.engines"):
        if ep.name.lower() == scheme:
            try:
                factory: Factory = ep.load()
            except Exception as exc:
                raise ConfigError(
                    f"{scheme}: loading the engine entry point {ep.value!r} "
                    f"failed: {exc}"
                ) from exc
            register(scheme, factory)
            return factory
    return None


def known_schemes() -> list[str]:
    """Every scheme ``from_url`` can open: registered and entry points."""
    names = set(_registry)
    names.update(
        ep.name.lower() for ep in importlib.metadata.entry_points(group="acid.engines")
    )
    return sorted(names)


def from_url(url: str | EngineURL) -> Engine:
    """Open the engine a URL names.

    >>> with from_url("skiplist:/") as engine:
    ...     engine.persistent
    False
    """
    parsed = url if isinstance(url, EngineURL) else parse_url(url)
    if parsed.module:
        try:
            importlib.import_module(parsed.module)
        except ImportError as exc:
            raise ConfigError(
                f"engine URL names module {parsed.module!r}, which cannot be "
                f"imported: {exc}"
            ) from exc
    factory = _registry.get(parsed.scheme) or _entry_point(parsed.scheme)
    if factory is None:
        raise ConfigError(
            f"unknown engine scheme {parsed.scheme!r}; known schemes are "
            f"{', '.join(known_schemes())}"
        )
    return factory(parsed)


IS_64BIT = sys.maxsize > 2**32


#: Engine classes by the names the API documents, imported on first use so
#: that ``import acid.engines`` never needs an optional package (plyvel).
_LAZY = {
    "SkipListEngine": "acid.engines.skiplist",
    "SkiplistEngine": "acid.engines.skiplist",  # the seed API's spelling
    "LMDBEngine": "acid.engines.lmdb",
    "LevelDBEngine": "acid.engines.leveldb",
    "TraceEngine": "acid.engines.trace",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'acid.engines' has no attribute {name!r}")
    return getattr(
        importlib.import_module(module), name.replace("Skiplist", "SkipList")
    )
