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
``memory`` (also ``skiplist``, its old name; in memory, optionally saved to a
file), ``lmdb``, ``leveldb`` and ``postgresql``; other packages add schemes
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
from collections.abc import Callable, Hashable, Iterator, Sequence
from types import MemberDescriptorType, TracebackType
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
    "ThreadToken",
    "is_this_thread",
    "this_thread",
    "thread_name",
    "thread_of",
]

#: Seconds a writer waits for another writer when neither ``begin(timeout=)``
#: nor the URL parameter ``lock_timeout`` says otherwise.
DEFAULT_LOCK_TIMEOUT = 30.0

_ref = weakref.ref


class Raiser:
    """A stand-in for a method that may no longer be called: raises
    ``error(message)`` whatever the arguments.

    Installed on a transaction's class instead of a checked flag, so that
    the live methods never test whether they may run. It holds no reference
    to the transaction, so installing it makes no cycle.
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

_OPERATIONS = (
    "get",
    "put",
    "delete",
    "replace",
    "pop",
    "iter",
    "put_many",
    "get_many",
)
_COMMITTED = "transaction already committed; begin a new one"
_ABORTED = "transaction already aborted; begin a new one"
_ENDED = "transaction already ended; begin a new one"
_RACED = (
    "transaction ended by another thread meanwhile (its engine was closed, "
    "say); begin a new one"
)


class _Stub:
    """An operation of an ended (or poisoned) transaction's class: raises
    what the transaction says. A data descriptor, so it also hides what an
    engine keeps in a slot of the same name (the memory engine's readers
    keep the dict's own ``get`` there)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, txn: Any, owner: type | None = None) -> Any:
        if txn is None:
            return self
        return self.raiser(txn)

    def raiser(self, txn: Any) -> Raiser:
        return Raiser(TxnError, txn._ended_how())

    def __set__(self, txn: Any, value: Any) -> None:
        # Store where the live class keeps it: a slot, or the instance dict.
        for klass in type(txn).__mro__:
            slot = klass.__dict__.get(self.name)
            if isinstance(slot, MemberDescriptorType):
                slot.__set__(txn, value)
                return
        txn.__dict__[self.name] = value


class _Failed(_Stub):
    """An operation (or ``_commit``) of a poisoned transaction."""

    __slots__ = ()

    def raiser(self, txn: Any) -> Raiser:
        failure: Raiser = txn.failure
        return failure


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

    Write transactions must be registered with :meth:`WriterLock.hold`,
    which stores the lock in the slot ``_writer``: whoever deletes that slot
    (the transaction's thread, or ``close()`` in another) ends the
    transaction; deleting a slot is one atomic step, and fails when it is
    already empty. The engines' classes declare ``__slots__``: swapping the
    class of an instance with a ``__dict__`` would copy the dict each time.
    """

    __slots__ = ("__weakref__", "_why", "_writer", "failure")

    write: bool = False
    #: ``True`` once ended (a class attribute of the ended classes);
    #: iterators test it between steps.
    ended: bool = False
    #: How it ended: the message of every later call (see ``_why``).
    _how: str = ""
    #: ``True`` for engines whose writers must commit in the thread that
    #: began them (LMDB); ``_owner`` is then that thread's :func:`this_thread`.
    _thread_bound: bool = False
    _owner: ThreadToken | None
    # Slots: ``_writer``, the lock, while ending is unclaimed (see above);
    # ``_why``, a message replacing ``_how`` (close()); ``failure``, set by
    # :meth:`poison`.
    _writer: WriterLock
    _why: str
    failure: Raiser
    #: The classes an instance takes when it ends or is poisoned (made for
    #: each subclass).
    _committed_class: type[Txn]
    _aborted_class: type[Txn]
    _poisoned_class: type[Txn]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "_variant" in cls.__dict__:
            return  # one of the classes made below
        same: dict[str, Any] = {
            "__slots__": (),  # the same layout, so that instances can switch
            "__module__": cls.__module__,
            "__qualname__": cls.__qualname__,
            "_variant": True,
        }
        # ``commit`` raises and ``abort`` does nothing once ended, so that the
        # live methods need not test whether the transaction ended.
        ended: dict[str, Any] = {name: _Stub(name) for name in _OPERATIONS}
        ended.update(same, commit=_Stub("commit"), abort=_ended_abort, ended=True)
        cls._committed_class = type(cls.__name__, (cls,), {**ended, "_how": _COMMITTED})
        cls._aborted_class = type(cls.__name__, (cls,), {**ended, "_how": _ABORTED})
        failed: dict[str, Any] = {name: _Failed(name) for name in _OPERATIONS}
        failed["_commit"] = _Failed("_commit")
        if cls.commit is not Txn.commit:  # a wrapper: its commit calls no _commit
            failed["commit"] = _poisoned_commit
        cls._poisoned_class = type(cls.__name__, (cls,), {**failed, **same})

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

    def put_many(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        """Store every ``(key, value)`` pair, in order (a later pair wins).

        Not atomic on its own: if a pair is refused, the pairs before it
        may be stored (the layer above undoes them, as after a failed
        ``put``). Engines with a batch path override it.
        """
        if not self.write:
            read_only()
        put = self.put
        for key, value in items:
            put(key, value)

    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        """The values under ``keys`` (``None`` where absent), aligned with them."""
        get = self.get
        return [get(key) for key in keys]

    # ``commit`` and ``abort`` are every transaction's path: they call the
    # hooks and give the writer lock back inline, without helper calls.

    def commit(self) -> None:
        """Land every write of this transaction atomically and end it.

        If landing fails nothing landed: the transaction ends aborted and
        the error propagates.
        """
        if not self.write:  # nothing to land, nothing to race with
            try:
                self._release()
            finally:
                self.__class__ = self._committed_class
            return
        if self._thread_bound:
            try:
                me = _marks.token  # this_thread(), inline
            except AttributeError:
                me = this_thread()
            if self._owner is not me:
                raise self._wrong_thread()
        try:  # claim the ending (see the class doc)
            writer = self._writer
            del self._writer
        except AttributeError:  # close() ended it from another thread meanwhile
            raise TxnError(getattr(self, "_why", None) or _RACED) from None
        try:
            self._commit()
        except BaseException:
            self._finish(writer, quiet=True)
            raise
        try:
            self._release()
        finally:
            self.__class__ = self._committed_class
            writer._txn = None  # first: once released, the lock is another's
            writer._owner = None
            writer._lock.release()

    def abort(self) -> None:
        """Discard this transaction's writes and end it; no-op once ended."""
        if not self.write:
            try:
                self._release()
            finally:
                self.__class__ = self._aborted_class
            return
        try:
            writer = self._writer
            del self._writer
        except AttributeError:
            return  # close() is ending it, or ended it
        # ``_finish(writer)``, inline.
        keep = None
        try:
            keep = self._abort()
        finally:
            try:
                self._release()
            finally:
                self.__class__ = self._aborted_class
                writer._txn = None
                if not keep:
                    writer._owner = None
                    writer._lock.release()

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

    def _abort(self) -> bool | None:
        """Discard the writes (also called after a failed ``_commit``).

        Return ``True`` to keep the writer lock held: the engine gives it
        back itself later (LMDB, when only another thread can end the
        native transaction)."""
        return None

    def _release(self) -> None:
        """Drop native references once the transaction ended, so that what
        they hold (a reader slot, a snapshot) is freed even while the
        application still references this object. For a read transaction
        that the engine's ``close()`` ends (:meth:`close_for_engine`) it may
        run twice, in two threads at once: it must then be idempotent."""

    # -- the machinery ----------------------------------------------------

    def _finish(self, writer: WriterLock, quiet: bool = False, how: str = "") -> None:
        """End a write transaction whose ending this thread claimed, aborted:
        ``_abort``, ``_release``, the class swap, then the writer lock."""
        keep = None
        try:
            keep = self._abort()
        except Exception:
            if not quiet:
                raise
        finally:
            try:
                self._release()
            finally:
                if how:
                    self._why = how
                self.__class__ = self._aborted_class
                writer._txn = None
                if not keep:
                    writer._owner = None
                    writer._lock.release()

    def _ended_how(self) -> str:
        """The message of calls after the end."""
        return getattr(self, "_why", None) or self._how or _ENDED

    def _wrong_thread(self) -> TxnError:
        return TxnError(
            "commit a write transaction of this engine in the thread that "
            f"began it ({thread_name(self._owner)}); its native writer lock "
            "belongs to that thread"
        )

    def poison(self, error: type[Exception], message: str) -> None:
        """Mark a transaction the engine can no longer use (LMDB after
        MAP_FULL): every later call and ``commit`` raise ``error(message)``,
        ``commit`` then ends it aborted; ``abort`` ends it as usual."""
        self.failure = Raiser(error, message)
        self.__class__ = self._poisoned_class

    def close_for_engine(self, url: str) -> None:
        """End this transaction because its engine closes (any thread).

        A write transaction is aborted unless its own thread is ending it
        at the same moment; a read transaction is ended as by ``abort``.
        Later calls raise ``TxnError`` saying the engine was closed.
        """
        how = f"transaction aborted: its engine {url!r} was closed"
        if self.write:
            try:
                writer = self._writer
                del self._writer
            except AttributeError:
                return
            self._finish(writer, quiet=True, how=how)
        elif not self.ended:
            self._why = how
            try:
                self._release()
            finally:
                self.__class__ = self._aborted_class

    def abandon(self) -> None:
        """Abort a transaction dropped without commit or abort, quietly.

        The built-in engines need not call it: a :class:`WriterLock` notices
        when the write transaction holding it is freed (a weak reference's
        callback) and gives itself back. Engines with something else to give
        back may call it from ``__del__``.
        """
        if not self.ended:
            try:
                self.abort()
            except Exception:
                pass


def _poisoned_commit(self: Txn) -> None:
    """``commit`` of a poisoned transaction whose class overrides ``commit``
    (a wrapper engine's): abort, then raise the failure."""
    failure = self.failure
    self.abort()
    raise failure.error(failure.message)


def _ended_abort(self: Txn) -> None:
    """``abort`` of an ended transaction: nothing to do."""


class _ThreadMark:
    """One per thread that asked for it, kept in thread-local storage, so
    that it is freed when its thread ends."""

    __slots__ = ("__weakref__", "thread")

    def __init__(self) -> None:
        self.thread = threading.current_thread()


#: What :func:`this_thread` returns: a weak reference to a per-thread mark.
ThreadToken = weakref.ref[_ThreadMark]

#: Where :func:`this_thread` keeps each thread's mark and token. Hot paths
#: read ``_marks.token`` directly (``AttributeError``: not asked for yet in
#: this thread, so it owns nothing).
_marks = threading.local()


def this_thread() -> ThreadToken:
    """A token for the calling thread: the same object on every call in one
    thread, unlike any other thread's (``get_ident()`` values are reused as
    soon as a thread ends), and *dead* (calling it returns ``None``) once
    its thread ended. As cheap as ``threading.get_ident()`` after the first
    call in a thread: one thread-local attribute.

    >>> me = this_thread()
    >>> me is this_thread(), thread_of(me) is threading.current_thread()
    (True, True)
    """
    try:
        token: ThreadToken = _marks.token
    except AttributeError:
        _marks.mark = mark = _ThreadMark()
        _marks.token = token = _ref(mark)
    return token


def is_this_thread(token: ThreadToken | None) -> bool:
    """Whether ``token`` is the calling thread's :func:`this_thread`.

    Never makes a token, so it is safe where ``this_thread()`` is not: in a
    garbage-collector callback (``threading.current_thread()`` may take a
    lock that the interrupted code holds)."""
    return token is not None and getattr(_marks, "token", None) is token


def thread_of(token: ThreadToken | None) -> threading.Thread | None:
    """The thread a :func:`this_thread` token stands for, while it runs."""
    mark = None if token is None else token()
    return None if mark is None else mark.thread


def thread_name(token: ThreadToken | None) -> str:
    """The quoted name of the thread ``token`` stands for, for messages."""
    thread = thread_of(token)
    return "(a thread that ended)" if thread is None else repr(thread.name)


_SAME_THREAD = (
    "{what}: this thread already holds the writer lock, in another write "
    "transaction that has not ended; waiting for it here would wait forever. "
    "Finish the other write transaction first (commit or abort it). In "
    "asyncio, do not let a write transaction span an await, or run it in a "
    "thread with asyncio.to_thread, or use acid.aio."
)


class WriterLock:
    """The lock serializing the writers of one storage in this process.

    It knows the thread holding it: a thread that asks for it again (a
    second ``begin(write=True)`` before the first ended, or a second asyncio
    task of the same event loop while the first task's write transaction
    spans an ``await``) gets ``TxnError`` at once instead of waiting for
    itself. Other threads wait up to their timeout. It also knows the write
    transaction holding it, so that :meth:`Engine.close` can end it, and
    gives itself back when that transaction is freed without ending.

    >>> lock = WriterLock()
    >>> me = lock.acquire(None, 1.0, "demo")
    >>> lock.acquire(None, 1.0, "demo")
    Traceback (most recent call last):
    ...
    acid.errors.TxnError: demo: this thread already holds the writer lock, ...
    >>> lock.release()
    """

    __slots__ = ("__weakref__", "_freed", "_lock", "_owner", "_txn")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: The :func:`this_thread` token of the thread holding it.
        self._owner: ThreadToken | None = None
        self._txn: weakref.ref[Txn] | None = None
        # The callback of ``_txn``, made once. It reaches this lock through a
        # weak reference: a bound method would make a cycle, left to the
        # cyclic collector, for every lock (one per optimistic writer).
        me = _ref(self)

        def freed(ref: weakref.ref[Txn]) -> None:
            lock = me()
            if lock is not None:
                lock._holder_freed(ref)

        self._freed = freed

    def acquire(self, timeout: float | None, default: float, what: str) -> ThreadToken:
        """Take the lock, waiting at most ``timeout`` seconds (``None``:
        ``default``; ``inf``: no limit), or raise ``TxnTimeout`` saying why.
        Returns the calling thread's :func:`this_thread` token.
        """
        try:
            me = _marks.token  # this_thread(), inline: the common case
        except AttributeError:
            me = this_thread()
        if self._lock.acquire(False):  # uncontended: the common case, and cheapest
            self._owner = me
            return me
        wait = default if timeout is None else check_timeout(timeout)
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
        """Record ``txn`` as the holder; it releases the lock when it ends,
        and the lock releases itself if ``txn`` is freed before that."""
        txn._writer = self  # also the token deciding who ends it: see Txn
        self._txn = _ref(txn, self._freed)  # weak: an abandoned writer must be freed

    def release(self) -> None:
        """Give the lock back (the transactions' ending does it inline)."""
        self._txn = None
        self._owner = None
        self._lock.release()

    def _holder_freed(self, ref: weakref.ref[Txn]) -> None:
        # The write transaction holding the lock was freed without ending
        # (dropped, or collected with a reference cycle), in any thread.
        if self._txn is ref:
            self._txn = None
            self._abandoned()

    def _abandoned(self) -> None:
        """Give the lock back for a holder freed before it ended; engines
        with a native lock of their own override it."""
        self._owner = None
        self._lock.release()

    @property
    def holder(self) -> Txn | None:
        """The live write transaction holding the lock, if any."""
        ref = self._txn
        return None if ref is None else ref()

    @property
    def owner(self) -> threading.Thread | None:
        """The thread that took the lock, while it is held (and running)."""
        return thread_of(self._owner)


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
    ``concurrent_writers``
        several write transactions may be open at once; a commit that
        conflicts with one committed since it began raises
        :class:`~acid.errors.ConflictError`. Otherwise writers take turns
        (a second writer waits, then raises :class:`~acid.errors.TxnTimeout`).
    """

    snapshots: bool = True
    multi_process: bool = False
    concurrent_writers: bool = False
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
        never wait, but a bad ``timeout`` (``nan``, negative, not a number)
        is :class:`~acid.errors.ConfigError` for every ``begin``.
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

    def flush(self) -> None:
        """Make every committed transaction durable now, for engines that
        save on request (the memory engine with a file and ``sync=manual``);
        a no-op for engines that need nothing. ``Store.sync()`` calls it."""

    def close(self) -> None:
        """Release the engine; further use raises ``EngineError``.

        Closing never waits for transactions: a write transaction still
        open is aborted (later calls on it raise ``TxnError``) and the writer
        lock is given back; a call another thread has in flight finishes
        first. Closing again is a no-op.
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


register("memory", _builtin("acid.engines.memory", "MemoryEngine"))
register("skiplist", _builtin("acid.engines.memory", "MemoryEngine"))  # its old name
register("lmdb", _builtin("acid.engines.lmdb", "LMDBEngine"))
register("leveldb", _builtin("acid.engines.leveldb", "LevelDBEngine", "leveldb"))
_postgresql = _builtin("acid.engines.postgresql", "PostgreSQLEngine", "postgresql")
register("postgresql", _postgresql)
register("postgres", _postgresql)


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
    "MemoryEngine": "acid.engines.memory",
    "SkipListEngine": "acid.engines.skiplist",
    "SkiplistEngine": "acid.engines.skiplist",  # the seed API's spelling
    "LMDBEngine": "acid.engines.lmdb",
    "LevelDBEngine": "acid.engines.leveldb",
    "TraceEngine": "acid.engines.trace",
    "PostgreSQLEngine": "acid.engines.postgresql",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'acid.engines' has no attribute {name!r}")
    return getattr(
        importlib.import_module(module), name.replace("Skiplist", "SkipList")
    )
