"""Ambient transactions: where the active one lives, and ``begin()`` blocks.

The active transaction is kept in a :class:`TxnContext` (a ContextVar, so
threads and asyncio tasks each have their own). Stores over one storage
share one context. Callbacks registered with :func:`on_abort` undo effects
on live Python objects when a transaction rolls back.
"""

from __future__ import annotations

import contextvars
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from acid._retry import Backoff, retrying
from acid.errors import AbortError, ConflictError, TxnError

if TYPE_CHECKING:
    from acid.engines import Txn

T = TypeVar("T")
H = TypeVar("H", bound=Callable[[], None])

__all__ = [
    "Block",
    "TxnContext",
    "TxnContextLike",
    "abort",
    "active",
    "alone",
    "before_commit",
    "context_for",
    "pending_hook",
    "on_abort",
    "run_alone",
    "spoil",
]


class TxnContext:
    """Where the active transaction lives: a :class:`contextvars.ContextVar`.

    Each thread and each asyncio task sees its own value. Replace it (the
    ``txn_context`` argument of :class:`Store`) to keep transactions in some
    other request-local place; the replacement needs ``get``, ``set`` and
    ``reset`` with these meanings.
    """

    __slots__ = ("_var", "get", "set", "reset", "__weakref__")

    def __init__(self) -> None:
        self._var: contextvars.ContextVar[Txn | None] = contextvars.ContextVar(
            "acid_txn", default=None
        )
        # Bound C methods, not Python wrappers: get() runs on every operation.
        self.get: Callable[[], Txn | None] = self._var.get
        self.set: Callable[[Txn | None], Any] = self._var.set
        self.reset: Callable[[Any], None] = self._var.reset


class TxnContextLike(Protocol):
    def get(self) -> Txn | None: ...
    def set(self, txn: Txn | None) -> Any: ...
    def reset(self, token: Any) -> None: ...


# Stores over one storage share its ambient transaction, so a block begun on
# one of them covers writes through the others (one storage, one writer).
# Engines opened twice on one path share an ``identity`` object.
_contexts: weakref.WeakKeyDictionary[Any, TxnContext] = weakref.WeakKeyDictionary()
_contexts_lock = threading.Lock()


def context_for(engine: Any) -> TxnContext:
    identity = getattr(engine, "identity", engine)
    with _contexts_lock:
        try:
            ctx = _contexts.get(identity)
            if ctx is None:
                ctx = _contexts[identity] = TxnContext()
        except TypeError:  # not weakly referenceable: a context of its own
            ctx = TxnContext()
        return ctx


# Callbacks to run if a transaction aborts, by id(txn): schema changes and
# registrations undo their effect on live Python objects. _Block pops them.
_undo: dict[int, list[Callable[[], None]]] = {}


def on_abort(txn: Txn, callback: Callable[[], None]) -> None:
    """Run ``callback()`` after ``txn`` aborts (once per callback and txn)."""
    hooks = _undo.setdefault(id(txn), [])
    if callback not in hooks:
        hooks.append(callback)


# Work to do just before a transaction commits, by id(txn): ``(txn, {owner:
# hook})``. Written at commit, dropped on abort (_commit and _roll_back pop
# it). The layers above keep per-transaction state in the hooks (the record
# counts of the collections written: one counter write per commit instead
# of one per record). Holding ``txn`` keeps its id from being reused.
_before: dict[int, tuple[Txn, dict[Any, Callable[[], None]]]] = {}


def before_commit(txn: Txn, owner: Any, make: Callable[[Txn], H]) -> H:
    """The hook ``owner`` registered on ``txn``, made with ``make(txn)`` on
    first use. Hooks are called (in registration order) just before the
    transaction commits, in its own thread; if one raises, the transaction
    aborts instead. On abort they are dropped without being called."""
    entry = _before.get(id(txn))
    if entry is None or entry[0] is not txn:
        entry = _before[id(txn)] = (txn, {})
    hooks = entry[1]
    hook = hooks.get(owner)
    if hook is None:
        hook = hooks[owner] = make(txn)
    return hook  # type: ignore[return-value]


def pending_hook(txn: Txn, owner: Any) -> Any:
    """The hook ``owner`` registered on ``txn`` with :func:`before_commit`,
    or ``None``."""
    entry = _before.get(id(txn)) if _before else None
    if entry is None or entry[0] is not txn:
        return None
    return entry[1].get(owner)


#: ``id()`` of every transaction whose ``begin()`` block (or :func:`run_alone`
#: call) is still running; each is referenced by its block meanwhile.
_running: set[int] = set()


def check_ended(txn: Txn) -> None:
    """For an ended ``txn`` found in a context: return if its block is over
    (a task inherited the context; it goes on without a transaction), raise
    :class:`TxnError` if its block still runs (the engine ended it: an
    earlier error, say a full LMDB map), since whatever ran now on its own
    would land without the rest of the block."""
    if id(txn) in _running:
        raise TxnError(
            "the transaction of this begin() block has already ended (an "
            "earlier error aborted it); nothing more can be done in it: leave "
            "the block and run it again"
        )


def inherited(txn: Txn) -> bool:
    """Whether ended ``txn`` came with a context whose block is over, so
    the caller may run on its own (see :func:`check_ended`)."""
    return id(txn) not in _running


def active(ctx: TxnContextLike) -> Txn | None:
    """The live transaction in ``ctx``, or ``None``.

    A task created inside a block copies the context, transaction included;
    once that block is over its transaction is no longer anybody's active
    one. A transaction ended while its block still runs raises ``TxnError``.
    """
    txn = ctx.get()
    if txn is not None and txn.ended:
        check_ended(txn)
        return None
    return txn


def spoil(txn: Txn, message: str) -> None:
    """Leave ``txn`` half-written but unable to land: every later call and
    its commit raise :class:`~acid.errors.TxnError` (``message``), and its
    block or ``in_txn`` ends it aborted.

    Not aborted at once: an ended transaction is taken for one that a task
    inherited from a finished block, and writes after it would each commit
    on their own, outside the block that is still running. A transaction
    the engine already poisoned (LMDB after ``MAP_FULL``) keeps its error.
    """
    if txn.ended or getattr(txn, "failure", None) is not None:
        return
    try:
        txn.poison(TxnError, message)
    except Exception:  # an engine that cannot: end it, as before
        try:
            txn.abort()
        except Exception:
            pass


def abort() -> None:
    """Abort the active transaction and leave its ``with`` block quietly.

    >>> import acid
    >>> store = acid.open("skiplist:/")
    >>> with store.begin(write=True):
    ...     store.count("n")
    ...     acid.abort()
    1
    >>> store.count("n", 0)
    1
    """
    raise AbortError("transaction aborted by acid.abort()")


class Block:
    """The context manager returned by :meth:`Store.begin`."""

    __slots__ = ("_engine", "_ctx", "_write", "_timeout", "_token", "txn")

    def __init__(
        self, engine: Any, ctx: TxnContextLike, write: bool, timeout: float | None
    ) -> None:
        self._engine = engine
        self._ctx = ctx
        self._write = write
        self._timeout = timeout
        self._token: Any = None
        self.txn: Txn | None = None

    def __enter__(self) -> Txn:
        ctx = self._ctx
        current = ctx.get()  # active(ctx), inlined: the autocommit path
        if current is not None and current.ended:
            check_ended(current)
        elif current is not None:
            raise TxnError(
                "a transaction is already active here; nested begin() is not "
                "supported (use store.in_txn(func) to join the active one)"
            )
        if self.txn is not None:
            raise TxnError("this begin() block was already used; call begin() again")
        self.txn = self._engine.begin(write=self._write, timeout=self._timeout)
        self._token = ctx.set(self.txn)
        _running.add(id(self.txn))
        return self.txn

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        self._ctx.reset(self._token)
        txn = self.txn
        assert txn is not None
        _running.discard(id(txn))
        if exc_type is None:
            _commit(txn)
            return False
        _roll_back(txn)
        return issubclass(exc_type, AbortError)


_AUTOCOMMIT_BACKOFF = Backoff()

#: How often an autocommit write that lost a conflict runs again, on engines
#: with ``concurrent_writers`` (it is a whole transaction of its own).
AUTOCOMMIT_RETRIES = 10

#: ``[the transaction run_alone is running]`` (the last one begun, in any
#: thread; ``None`` between): a hint that a transaction will make only a
#: few writes, so deferring work to its commit would not pay.
alone: list[Txn | None] = [None]


def run_alone(
    engine: Any, ctx: TxnContextLike, write: bool, fn: Callable[..., T], *args: Any
) -> T:
    """``fn(*args)`` in a new transaction of its own, as a ``begin()`` block
    would run it (commit at the end, abort on an exception; after
    :func:`abort`, ``None``). The caller knows no transaction is active.

    One call instead of a block's three: this is every autocommit write. On
    an engine whose writers run at once, a write that lost a conflict
    (:class:`~acid.errors.ConflictError`) runs again, with backoff, as
    ``store.transact`` would: nothing of the lost attempt was committed.
    """
    if write and engine.concurrent_writers:
        return retrying(
            lambda: _alone(engine, ctx, write, fn, args),
            AUTOCOMMIT_RETRIES,
            _AUTOCOMMIT_BACKOFF,
            only=ConflictError,
        )
    return _alone(engine, ctx, write, fn, args)


def _alone(
    engine: Any, ctx: TxnContextLike, write: bool, fn: Callable[..., T], args: Any
) -> T:
    txn = engine.begin(write=write)
    token = ctx.set(txn)
    running = _running
    running.add(id(txn))
    alone[0] = txn
    try:
        result = fn(*args)
    except BaseException as exc:
        running.discard(id(txn))
        alone[0] = None
        ctx.reset(token)
        _roll_back(txn)
        if isinstance(exc, AbortError):
            return None  # type: ignore[return-value]
        raise
    running.discard(id(txn))
    alone[0] = None
    ctx.reset(token)
    if _undo or _before:
        _commit(txn)
        return result
    try:  # _commit(txn), inlined for the usual case: no hooks
        txn.commit()
    except BaseException:
        _quiet_abort(txn)
        raise
    return result


def _commit(txn: Txn) -> None:
    """Commit ``txn``; if that fails, abort it and undo its hooks."""
    if _before:
        entry = _before.pop(id(txn), None)
        if entry is not None and entry[0] is txn and not txn.ended:
            try:
                for hook in list(entry[1].values()):
                    hook()
            except BaseException:
                _roll_back(txn)
                raise
    undo = _undo.pop(id(txn), None) if _undo else None
    try:
        txn.commit()
    except BaseException:
        _quiet_abort(txn)
        _run(undo)
        raise


def _roll_back(txn: Txn) -> None:
    """Abort ``txn`` and run the undo hooks of what it changed."""
    if _before:
        _before.pop(id(txn), None)
    undo = _undo.pop(id(txn), None)
    _quiet_abort(txn)
    _run(undo)


def _quiet_abort(txn: Txn) -> None:
    try:
        txn.abort()
    except Exception:  # the original error matters more
        pass


def _run(callbacks: list[Callable[[], None]] | None) -> None:
    for callback in callbacks or ():
        callback()
