"""asyncio: the same names as the blocking API, awaitable, and never blocking
the event loop.

>>> import asyncio, acid.aio
>>> async def main():
...     store = await acid.aio.open("skiplist:/")
...     people = await store.add_collection("people")
...     await people.add_index("name", lambda p: p["name"])
...     async with store.begin(write=True):
...         await people.put({"name": "Ada"})
...         await people.put({"name": "Alan"})
...     names = [p["name"] async for p in people.values()]
...     ada = await people.indices["name"].get("Ada")
...     await store.close()
...     return names, ada
>>> asyncio.run(main())
(['Ada', 'Alan'], {'name': 'Ada'})

Every engine call runs on a thread, never on the loop's:

- A transaction (``async with store.begin():``) gets a thread of its own for
  its whole life, because LMDB binds a write transaction to the thread that
  began it. Its operations run there one after another, in the order they
  were awaited; iterators fetch their rows from there in batches.
- An operation outside any transaction (autocommit) runs on a small pool.
- Readers run at once, side by side. Writers take turns on an
  :class:`asyncio.Lock` (waiting without blocking the loop) unless the
  engine declares ``concurrent_writers``; then they run side by side, and
  :meth:`Store.transact` retries the losers of conflicts.
- The active transaction lives in a :class:`contextvars.ContextVar`, so each
  task has its own. A task created inside a block shares the block's
  transaction while the block lasts.
- Cancelling a task inside a block aborts its transaction: the abort runs on
  the transaction's thread after the call in flight, and the writer turn is
  given back.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import itertools
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

from acid._aio_threads import Worker, WorkerStopped
from acid._query import many
from acid._retry import (
    Backoff,
    check_fn,
    check_result,
    check_retries,
    is_async,
    retrying_async,
)
from acid._txn import TxnContext, active
from acid.collection import Collection as BlockingCollection
from acid.engines import DEFAULT_LOCK_TIMEOUT, check_timeout
from acid.errors import AbortError, EngineError, TxnError, TxnTimeout
from acid.index import Index as BlockingIndex
from acid.store import CheckReport, open_url
from acid.store import Store as BlockingStore

__all__ = ["BATCH", "Collection", "Index", "Store", "Transaction", "open"]

T = TypeVar("T")

#: Rows an iterator fetches per trip to its transaction's thread.
BATCH = 256
#: Idle transaction threads a store keeps for the next transactions.
_IDLE_WORKERS = 8


async def open(  # shadows the builtin, as acid.open does
    url: str,
    trace_path: Any = None,
    txn_context: Any = None,
    *,
    prefix: bytes | str = b"",
    clock: Any = None,
    pool_size: int = 4,
) -> Store:
    """Open the engine at ``url`` (on a thread) and return an async :class:`Store`.

    Arguments as for :func:`acid.open`; ``pool_size`` threads run the
    operations made outside any transaction.
    """
    opener = functools.partial(
        open_url, url, trace_path, txn_context, prefix=prefix, clock=clock
    )
    blocking = await asyncio.to_thread(opener)
    try:
        return Store(blocking, pool_size=pool_size)
    except BaseException:
        blocking.close()
        raise


class Transaction:
    """An asynchronous transaction; ``store.begin()`` returns one.

    Use it as ``async with store.begin(write=True):``. The block commits
    when it ends normally; an exception (cancellation included) aborts and
    propagates; :func:`acid.abort` aborts and leaves the block quietly.
    """

    def __init__(self, store: Store, write: bool, timeout: float | None) -> None:
        self.store = store
        self.write = write
        self._timeout = timeout
        self._block = store.blocking.begin(write, timeout=timeout)
        self._worker: Worker | None = None
        self._home: Worker | None = None  # the thread it began on, kept
        self._scans: set[_Scan] = set()  # its live iterators
        self._turn: asyncio.Lock | None = None  # the writers' turn it holds
        self._loop: asyncio.AbstractEventLoop | None = None  # the turn's
        self._token: contextvars.Token[Transaction | None] | None = None
        self._blocking_token: Any = None
        #: ``True`` once the block began ending (no more calls join it).
        self.ended = False
        self._used = False

    def __repr__(self) -> str:
        state = "ended" if self.ended else "active" if self._worker else "new"
        return f"<acid.aio.Transaction {'write' if self.write else 'read'} {state}>"

    async def __aenter__(self) -> Transaction:
        current = self.store.txn
        if current is not None:
            raise TxnError(
                "a transaction is already active in this task; nested begin() is "
                "not supported (await store.transact(fn) joins the active one)"
            )
        self.store._refuse_blocking_txn()
        await self.start()
        self._token = self.store._current.set(self)
        context = self.store.blocking.context
        if isinstance(context, TxnContext):  # per task, as ours is
            self._blocking_token = context.set(_InAioBlock(self))  # type: ignore[arg-type]
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        for var, token in (
            (self.store._current, self._token),
            (self.store.blocking.context, self._blocking_token),
        ):
            if token is not None:
                try:
                    var.reset(token)
                except ValueError:
                    # Exited in another context than entered (a dropped
                    # task closed by the garbage collector, in whatever task
                    # runs then): leave that one alone. Ended, this
                    # transaction is nobody's active one anyway.
                    pass
        self._token = self._blocking_token = None
        return await self.finish(exc_type, exc, tb)

    async def start(self) -> None:
        """Take the writer turn and a thread, and begin there (no ambient)."""
        if self._used:
            raise TxnError("this begin() block was already used; call begin() again")
        self._used = True
        store = self.store
        store._check_open()
        self._loop = asyncio.get_running_loop()
        if self.write:
            self._turn = await store._take_turn(self._timeout)
        try:
            store._check_open()
            self._worker = self._home = store._take_worker()
        except BaseException:
            self._give_back()
            raise
        try:
            await self._worker.submit(self._block.__enter__)
        except BaseException as exc:
            # Failed or cancelled: end whatever began, then give back.
            self.ended = True
            if _unawaitable(exc):
                self._end_unawaited(self._abort_if_begun)
            else:
                self._end_in_thread(self._abort_if_begun)
            raise

    async def finish(
        self, exc_type: Any = None, exc: Any = None, tb: Any = None
    ) -> bool:
        """Commit (or, with an exception, abort) on the transaction's thread."""
        if self.ended:
            return False
        self.ended = True
        if _unawaitable(exc):
            # The coroutine is being closed (its task was dropped, its loop
            # closed): nothing can be awaited. Abort on the thread anyway.
            self._end_unawaited(lambda: self._block.__exit__(exc_type, exc, tb))
            return False
        done = self._end_in_thread(lambda: self._block.__exit__(exc_type, exc, tb))
        # Shielded: a second cancellation must not leave the writer turn held;
        # the thread ends the transaction and gives everything back anyway.
        return bool(await asyncio.shield(done))

    def _end_in_thread(self, fn: Callable[[], Any]) -> asyncio.Future[Any]:
        """``fn()`` (the end) on the thread, which then goes back to the
        store by itself: its loop may be gone by then (a commit outliving
        ``asyncio.run``). The turn is given back through the loop."""
        worker, self._worker = self._worker, None
        assert worker is not None
        store = self.store

        def end() -> Any:
            try:
                return fn()
            finally:
                store._give_worker(worker)

        done = worker.submit(end)
        done.add_done_callback(lambda _: self._give_back())
        return done

    def _end_unawaited(self, fn: Callable[[], Any]) -> None:
        """``fn()`` on the transaction's thread with nobody waiting; then
        give the turn back (through its loop, if that still runs) and the
        thread."""
        worker, self._worker = self._worker, None
        turn, self._turn = self._turn, None
        loop, store = self._loop, self.store

        def give_turn() -> None:
            if turn is not None and loop is not None and not loop.is_closed():
                try:
                    loop.call_soon_threadsafe(turn.release)
                except RuntimeError:  # closed meanwhile: nobody waits
                    pass

        if worker is None:
            give_turn()
            return

        def end() -> None:
            try:
                fn()
            finally:
                give_turn()
                store._give_worker(worker)

        worker.call(end)

    def __del__(self) -> None:
        # Dropped while active, its block never exited: an async iterator
        # collected after its loop closed, say. Abort it, or it would keep
        # its thread, its snapshot (an LMDB reader slot) or the writer lock.
        if getattr(self, "_worker", None) is not None and not self.ended:
            self.ended = True
            self._end_unawaited(self._abort_if_begun)

    def _on_thread(self, fn: Callable[[], Any]) -> None:
        """``fn()`` on the transaction's thread after the calls before it
        (its end included, if under way), waited on by nobody."""
        if self._home is not None:
            self._home.call(fn)

    def _abort_if_begun(self) -> None:
        if self._block.txn is not None:
            self._block.__exit__(AbortError, AbortError(), None)

    def _give_back(self) -> None:
        turn, self._turn = self._turn, None
        if turn is not None:
            turn.release()
        worker, self._worker = self._worker, None
        if worker is not None:
            self.store._give_worker(worker)

    async def run(self, fn: Callable[[], T], changes: bool = True) -> T:
        """``fn()`` on this transaction's thread, with it active there.

        ``changes``: whether ``fn`` may write; iterators of this transaction
        then stop short of their prefetched rows (see :class:`_Scan`).
        """
        if self.ended or self._worker is None:
            raise TxnError("transaction already ended; begin a new one")
        self.store._check_open()
        if changes and self._scans:
            scans = tuple(self._scans)
            for scan in scans:
                scan.pending = True
            fn = functools.partial(_synced, scans, fn)
        return await self._worker.submit(fn)


class Store:
    """The asynchronous face of an :class:`acid.Store` (``blocking``).

    Methods that touch the engine are coroutines; ``begin`` returns an
    async context manager; iteration methods of collections and indexes
    return async iterators.
    """

    def __init__(self, store: BlockingStore, *, pool_size: int = 4) -> None:
        if not isinstance(store, BlockingStore):
            raise TypeError(f"expected an acid.Store, not {type(store).__name__}")
        if isinstance(pool_size, bool) or not isinstance(pool_size, int):
            raise TypeError("pool_size must be an int")
        if pool_size < 1:
            raise ValueError(f"pool_size must be >= 1, got {pool_size}")
        self.blocking = store
        self.engine = store.engine
        # The active Transaction of each task, and the writers' turn, one
        # per event loop (an asyncio.Lock serves one): shared by the stores
        # over one storage, as their blocking stores share its transaction.
        self._current, self._turns = _storage_state(store.context)
        self._pool = Worker(pool_size, "acid-aio-auto")
        self._idle: list[Worker] = []
        # An unclosed store's parked threads end when it is collected.
        weakref.finalize(self, _stop_all, self._idle, self._pool)
        self._workers_lock = threading.Lock()
        self._concurrent = bool(getattr(store.engine, "concurrent_writers", False))
        self._closed = False

    def __repr__(self) -> str:
        return f"<acid.aio.Store over {self.blocking!r}>"

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    # -- the machinery (for Transaction, Collection and Index) -------------

    def _check_open(self) -> None:
        if self._closed:
            raise EngineError("this acid.aio store is closed; open it again")

    def _refuse_blocking_txn(self) -> None:
        """Refuse to start a transaction of our own (or autocommit) in a task
        where a blocking ``store.blocking.begin(write=True)`` block is active:
        it would neither see that block's writes nor, writing, get its lock."""
        txn = active(self.blocking.context)
        if txn is not None and not isinstance(txn, _InAioBlock) and txn.write:
            raise TxnError(
                "a blocking write transaction (store.blocking.begin()) is active in "
                "this task; acid.aio calls would run in another transaction on "
                "another thread, blind to its writes and waiting for its writer "
                "lock. End that block first, or keep to one API in it"
            )

    async def _take_turn(self, timeout: float | None) -> asyncio.Lock | None:
        """Wait (without blocking the loop) for the writers' turn; return the
        lock to release (``None`` when the engine has concurrent writers)."""
        if self._concurrent:
            return None
        loop = asyncio.get_running_loop()
        turn = self._turns.get(loop)
        if turn is None:
            turn = self._turns[loop] = asyncio.Lock()
        if timeout is None:
            timeout = getattr(self.engine, "lock_timeout", DEFAULT_LOCK_TIMEOUT)
        wait = None if timeout == float("inf") else timeout
        try:
            async with asyncio.timeout(wait):
                await turn.acquire()
        except TimeoutError:
            raise TxnTimeout(
                f"{self.engine.url}: another write transaction of this asyncio "
                f"store held the writers' turn for {timeout:g} s; commit it "
                "sooner, or pass a longer begin(write=True, timeout=...)"
            ) from None
        return turn

    def _take_worker(self) -> Worker:
        with self._workers_lock:
            if self._idle:
                return self._idle.pop()
        return Worker()

    def _give_worker(self, worker: Worker) -> None:
        with self._workers_lock:
            if not self._closed and len(self._idle) < _IDLE_WORKERS:
                self._idle.append(worker)
                return
        worker.stop()

    async def _call(
        self, write: bool, fn: Callable[[], T], changes: bool | None = None
    ) -> T:
        """``fn()`` (a blocking call) in the task's transaction, or autocommit.
        ``changes``: whether it may write in a transaction (``write`` unless
        said: a plain function may write in a write transaction it joins)."""
        txn = self.txn
        if txn is not None:
            return await txn.run(fn, changes=write if changes is None else changes)
        self._check_open()
        self._refuse_blocking_txn()
        if not write or self._concurrent:
            return await self._submit(fn)
        turn = await self._take_turn(None)
        assert turn is not None
        try:
            self._check_open()
            future = self._submit(fn)
        except BaseException:
            turn.release()
            raise
        future.add_done_callback(lambda _: turn.release())  # when it really ends
        return await asyncio.shield(future)

    def _submit(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        """``fn()`` on the pool (stopped by a close in another thread since
        the caller checked: closed, then)."""
        try:
            return self._pool.submit(fn)
        except WorkerStopped:
            raise EngineError("this acid.aio store is closed; open it again") from None

    async def _rows(self, make: Callable[[], Iterator[T]]) -> AsyncIterator[T]:
        """The rows of the blocking iterator ``make()`` returns, in batches
        fetched on the task's transaction thread (or a read transaction of
        the iterator's own, ended when it is exhausted or closed)."""
        txn = self.txn
        own = txn is None
        if txn is None:
            self._refuse_blocking_txn()
            txn = Transaction(self, False, None)
            await txn.start()
        # The blocking iterators live in ``scan``, touched by the thread
        # only: closed (dropped) anywhere else, an engine cursor would be
        # freed on the loop's thread while the transaction's thread writes
        # through the same transaction.
        scan: _Scan[T] = _Scan(make)
        txn._scans.add(scan)
        try:
            while True:
                scan.pending = False
                batch, last = await txn.run(scan.take, changes=False)
                dropped = False
                for row in batch:
                    if scan.pending and scan.ahead is not None:
                        dropped = True  # a write came after these rows
                        break
                    scan.consumed += 1
                    yield row
                if last and not dropped:
                    return
        finally:
            txn._scans.discard(scan)
            txn._on_thread(scan.close)
            if own:
                await txn.finish()

    # -- transactions ------------------------------------------------------

    def begin(
        self, write: bool = False, *, timeout: float | None = None
    ) -> Transaction:
        """An async context manager running its block in a new transaction.

        ``timeout`` bounds the wait for the writers' turn, as in
        :meth:`acid.Store.begin`.
        """
        if timeout is not None:
            timeout = check_timeout(timeout)
        return Transaction(self, bool(write), timeout)

    @property
    def txn(self) -> Transaction | None:
        """The active transaction of the calling task, or ``None``."""
        txn = self._current.get()
        return None if txn is None or txn.ended else txn

    async def transact(
        self,
        fn: Callable[..., Any],
        /,
        *args: Any,
        retries: int = 10,
        backoff: Backoff | None = None,
        **kwargs: Any,
    ) -> Any:
        """Run ``fn(*args, **kwargs)`` in a write transaction; return its value.

        As :meth:`acid.Store.transact`: retryable errors run it again (after
        ``await asyncio.sleep``), others propagate, :func:`acid.abort`
        returns ``None``, and inside an active write transaction ``fn``
        joins it once. ``fn`` is either a coroutine function (awaited in
        this task, using this API) or a plain function (run on the
        transaction's thread, using the blocking API).
        """
        policy = check_retries(retries, backoff)
        check_fn(fn, asynchronous=True)
        body = functools.partial(fn, *args, **kwargs)
        txn = self.txn
        if txn is not None:
            if not txn.write:
                raise TxnError(
                    "transact() needs a write transaction, but a read transaction "
                    "is active; call it outside the block or use begin(write=True)"
                )
            return await self._body(txn, fn, body)

        async def attempt() -> Any:
            result = None
            async with self.begin(write=True) as txn:
                result = await self._body(txn, fn, body)
            return result

        return await retrying_async(attempt, retries, policy)

    @staticmethod
    async def _body(txn: Transaction, fn: Any, body: Callable[[], Any]) -> Any:
        if is_async(fn):
            result = await body()
            check_result(fn, result, asynchronous=True)
            return result

        def run() -> Any:
            result = body()
            check_result(fn, result)
            return result

        return await txn.run(run)

    async def close(self) -> None:
        """Close the engine (on a thread). Open transactions are aborted: their
        next call raises ``TxnError``; new calls raise ``EngineError``."""
        if self._closed:
            return
        self._closed = True
        await asyncio.to_thread(self.blocking.close)
        with self._workers_lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.stop()
        self._pool.stop()

    # -- the blocking Store's methods, awaitable ----------------------------

    async def in_txn(self, func: Callable[[], T], write: bool = False) -> T:
        """:meth:`acid.Store.in_txn`: the plain function ``func`` (using the
        blocking API) in the active transaction, or in a new one, on the
        transaction's thread."""
        return await self._call(
            write, lambda: self.blocking.in_txn(func, write), changes=True
        )

    async def iter_meta(self, kind: str) -> list[tuple[tuple[Any, ...], dict]]:
        """:meth:`acid.Store.iter_meta`."""
        return await self._call(False, lambda: self.blocking.iter_meta(kind))

    async def get_encoder(self, name: str) -> Any:
        """:meth:`acid.Store.get_encoder`."""
        return await self._call(False, lambda: self.blocking.get_encoder(name))

    async def train_compressor(self, name: str, samples: Any, **kwargs: Any) -> Any:
        """:meth:`acid.Store.train_compressor`."""
        train = self.blocking.train_compressor
        return await self._call(True, lambda: train(name, samples, **kwargs))

    async def count(self, name: str, n: int | None = 1, init: int = 1) -> int:
        """:meth:`acid.Store.count`."""
        return await self._call(bool(n), lambda: self.blocking.count(name, n, init))

    async def get_meta(self, kind: str, name: Any) -> dict[str, Any] | None:
        """:meth:`acid.Store.get_meta`."""
        return await self._call(False, lambda: self.blocking.get_meta(kind, name))

    async def set_meta(self, kind: str, name: Any, dct: dict[str, Any] | None) -> None:
        """:meth:`acid.Store.set_meta`."""
        await self._call(True, lambda: self.blocking.set_meta(kind, name, dct))

    async def add_encoder(self, encoder: Any) -> None:
        """:meth:`acid.Store.add_encoder`."""
        await self._call(True, lambda: self.blocking.add_encoder(encoder))

    async def add_collection(self, name: str, **kwargs: Any) -> Collection:
        """:meth:`acid.Store.add_collection`, returning an async Collection."""
        coll = await self._call(
            True, lambda: self.blocking.add_collection(name, **kwargs)
        )
        return Collection(self, coll)

    async def collections(self) -> list[str]:
        """:meth:`acid.Store.collections`."""
        return await self._call(False, self.blocking.collections)

    def __getitem__(self, name: str) -> Collection:
        """The newest live collection declared for ``name`` (no I/O)."""
        return Collection(self, self.blocking[name])

    async def rename_collection(self, old: str, new: str) -> None:
        """:meth:`acid.Store.rename_collection`."""
        await self._call(True, lambda: self.blocking.rename_collection(old, new))

    async def drop_collection(self, name: str) -> None:
        """:meth:`acid.Store.drop_collection`."""
        await self._call(True, lambda: self.blocking.drop_collection(name))

    async def check(self) -> CheckReport:
        """:meth:`acid.Store.check`."""
        return await self._call(False, self.blocking.check)


_Current = contextvars.ContextVar["Transaction | None"]
_Turns = weakref.WeakKeyDictionary[Any, asyncio.Lock]
# By blocking transaction context: stores over one storage share it.
_states: weakref.WeakKeyDictionary[Any, tuple[_Current, _Turns]] = (
    weakref.WeakKeyDictionary()
)
_states_lock = threading.Lock()


def _storage_state(context: Any) -> tuple[_Current, _Turns]:
    """The active-transaction variable and the writers' turns of the stores
    whose blocking stores keep their transaction in ``context``."""
    with _states_lock:
        try:
            state = _states.get(context)
        except TypeError:  # not weakly referenceable: a state of its own
            return _new_state()
        if state is None:
            state = _states[context] = _new_state()
        return state


def _new_state() -> tuple[_Current, _Turns]:
    return contextvars.ContextVar("acid_aio_txn", default=None), (
        weakref.WeakKeyDictionary()
    )


class _InAioBlock:
    """What the blocking API finds as the active transaction in a task inside
    an ``async with store.begin()`` block (on the event loop's thread): not
    a transaction it can use, and an error that says why.

    Without it a blocking call there would run in a transaction of its own,
    blind to the block's writes, and a blocking write would wait (freezing
    the loop) for the writer lock the block itself holds.
    """

    __slots__ = ("_block",)

    def __init__(self, block: Transaction) -> None:
        self._block = block

    @property
    def ended(self) -> bool:
        return self._block.ended

    def __repr__(self) -> str:
        return f"<the acid.aio block of {self._block!r}>"

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # protocols (copy, pickle) ask politely
            raise AttributeError(name)
        raise TxnError(
            "the blocking API was called on the event loop's thread inside an "
            "acid.aio block (async with store.begin()); it cannot join that "
            "transaction, which lives on a thread of its own, and would block "
            "the loop. Await the acid.aio call instead, or run a plain "
            "function there with await store.in_txn(fn) or store.transact(fn)"
        )


def _unawaitable(exc: BaseException | None) -> bool:
    """Whether the coroutine seeing ``exc`` can no longer await: it is being
    closed, or runs with no event loop."""
    if isinstance(exc, GeneratorExit):
        return True
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return True
    return False


def _stop_all(idle: list[Worker], pool: Worker) -> None:
    for worker in [*idle, pool]:
        worker.stop()


class _Scan(Generic[T]):
    """An iterator's rows, fetched on its transaction's thread.

    Rows come ``BATCH`` at a time from ``ahead``. A write in the transaction
    while prefetched rows wait would leave them stale (the engine contract:
    after ``k`` an iterator yields the first key after ``k`` as the
    transaction sees it then, its own writes included). So before each
    write, :meth:`sync` moves a second iterator, ``exact``, past the rows
    the loop consumed (in the view they were read in: nothing wrote since
    the last sync); the loop drops the rows it had not reached, and the scan
    goes on from ``exact``, a row at a time (each fresh).

    ``consumed`` and ``pending`` are set by the loop; the rest is the
    thread's.
    """

    __slots__ = (
        "make",
        "ahead",
        "exact",
        "pulled",
        "tracked",
        "consumed",
        "pending",
        "error",
    )

    def __init__(self, make: Callable[[], Iterator[T]]) -> None:
        self.make = make
        self.ahead: Iterator[T] | None = None
        self.exact: Iterator[T] | None = None
        self.pulled = 0  # rows taken from ahead
        self.tracked = 0  # rows exact is past
        self.consumed = 0  # rows the loop yielded
        self.pending = False  # a write was submitted since the last fetch
        self.error: BaseException | None = None

    def take(self) -> tuple[list[T], bool]:
        """The next rows, and whether no more follow."""
        if self.error is not None:
            raise self.error
        if self.exact is None and self.ahead is None:
            self.ahead = self.make()
        if self.ahead is not None and self.pulled > self.consumed:
            # The loop dropped rows a write made stale: go on exactly.
            self.sync()
            _close(self.ahead)
            self.ahead = None
        if self.ahead is None:
            assert self.exact is not None
            rows = list(itertools.islice(self.exact, 1))
            self.tracked += len(rows)
            return rows, not rows
        rows = list(itertools.islice(self.ahead, BATCH))
        self.pulled += len(rows)
        return rows, len(rows) < BATCH

    def sync(self) -> None:
        """Before a write: move ``exact`` past the rows the loop consumed."""
        if self.exact is None:
            self.exact = self.make()
        behind = self.consumed - self.tracked
        if behind > 0:
            for _ in itertools.islice(self.exact, behind):
                pass
            self.tracked += behind

    def close(self) -> None:
        for it in (self.ahead, self.exact):
            _close(it)
        self.ahead = self.exact = None


def _synced(scans: tuple[_Scan[Any], ...], fn: Callable[[], T]) -> T:
    for scan in scans:
        if scan.error is None:
            try:
                scan.sync()
            except Exception as exc:  # the write goes on; the scan says it
                scan.error = exc
    return fn()


def _close(it: Any) -> None:
    close = getattr(it, "close", None)
    if close is not None:
        close()


class Collection:
    """The asynchronous face of an :class:`acid.Collection` (``blocking``)."""

    def __init__(self, store: Store, coll: BlockingCollection) -> None:
        self.store = store
        self.blocking = coll

    def __repr__(self) -> str:
        return f"<acid.aio.Collection {self.blocking.name!r}>"

    @property
    def name(self) -> str:
        return self.blocking.name

    @property
    def indices(self) -> dict[str, Index]:
        """The declared indexes, by name, as async :class:`Index` objects."""
        return {n: Index(self.store, i) for n, i in self.blocking.indices.items()}

    async def add_index(self, name: str, func: Callable[[Any], Any]) -> Index:
        """:meth:`acid.Collection.add_index`."""
        idx = await self.store._call(True, lambda: self.blocking.add_index(name, func))
        return Index(self.store, idx)

    async def drop_index(self, name: str) -> None:
        """:meth:`acid.Collection.drop_index`."""
        await self.store._call(True, lambda: self.blocking.drop_index(name))

    async def put(self, rec: Any, key: Any = None) -> tuple[Any, ...]:
        """:meth:`acid.Collection.put`."""
        return await self.store._call(True, lambda: self.blocking.put(rec, key))

    async def delete(self, key: Any) -> bool:
        """:meth:`acid.Collection.delete`."""
        return await self.store._call(True, lambda: self.blocking.delete(key))

    async def put_many(self, records: Iterable[Any]) -> list[tuple[Any, ...]]:
        """:meth:`acid.Collection.put_many` (``records`` is read here, on
        the loop, before the batch goes to a thread)."""
        recs = many(records, "records", "put_many")
        return await self.store._call(True, lambda: self.blocking.put_many(recs))

    async def get_many(self, keys: Iterable[Any], default: Any = None) -> list[Any]:
        """:meth:`acid.Collection.get_many`."""
        ks = many(keys, "keys", "get_many")
        return await self.store._call(
            False, lambda: self.blocking.get_many(ks, default)
        )

    async def delete_many(self, keys: Iterable[Any]) -> int:
        """:meth:`acid.Collection.delete_many`."""
        ks = many(keys, "keys", "delete_many")
        return await self.store._call(True, lambda: self.blocking.delete_many(ks))

    async def get(self, key: Any, default: Any = None, raw: bool = False) -> Any:
        """:meth:`acid.Collection.get`."""
        return await self.store._call(
            False, lambda: self.blocking.get(key, default, raw)
        )

    async def find(self, *args: Any, **kwargs: Any) -> Any:
        """:meth:`acid.Collection.find`."""
        return await self.store._call(
            False, lambda: self.blocking.find(*args, **kwargs)
        )

    async def findkey(self, *args: Any, **kwargs: Any) -> Any:
        """:meth:`acid.Collection.findkey`."""
        fn = self.blocking.findkey
        return await self.store._call(False, lambda: fn(*args, **kwargs))

    def items(self, *args: Any, **kwargs: Any) -> AsyncIterator[tuple[Any, Any]]:
        """:meth:`acid.Collection.items`, as an async iterator."""
        return self.store._rows(lambda: self.blocking.items(*args, **kwargs))

    def keys(self, *args: Any, **kwargs: Any) -> AsyncIterator[tuple[Any, ...]]:
        """:meth:`acid.Collection.keys`, as an async iterator."""
        return self.store._rows(lambda: self.blocking.keys(*args, **kwargs))

    def values(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        """:meth:`acid.Collection.values`, as an async iterator."""
        return self.store._rows(lambda: self.blocking.values(*args, **kwargs))

    async def check(self) -> CheckReport:
        """:meth:`acid.Collection.check`."""
        return await self.store._call(False, self.blocking.check)


class Index:
    """The asynchronous face of an :class:`acid.Index` (``blocking``)."""

    def __init__(self, store: Store, index: BlockingIndex) -> None:
        self.store = store
        self.blocking = index

    def __repr__(self) -> str:
        return f"<acid.aio.Index {self.blocking.name!r}>"

    @property
    def name(self) -> str:
        return self.blocking.name

    async def get(self, x: Any, default: Any = None, raw: bool = False) -> Any:
        """:meth:`acid.Index.get`."""
        return await self.store._call(False, lambda: self.blocking.get(x, default, raw))

    async def has(self, x: Any) -> bool:
        """:meth:`acid.Index.has`."""
        return await self.store._call(False, lambda: self.blocking.has(x))

    async def find(self, *args: Any, **kwargs: Any) -> Any:
        """:meth:`acid.Index.find`."""
        return await self.store._call(
            False, lambda: self.blocking.find(*args, **kwargs)
        )

    async def count(self, *args: Any, **kwargs: Any) -> int:
        """:meth:`acid.Index.count`."""
        return await self.store._call(
            False, lambda: self.blocking.count(*args, **kwargs)
        )

    def pairs(self, *args: Any, **kwargs: Any) -> AsyncIterator[tuple]:
        """:meth:`acid.Index.pairs`, as an async iterator."""
        return self.store._rows(lambda: self.blocking.pairs(*args, **kwargs))

    def tups(self, *args: Any, **kwargs: Any) -> AsyncIterator[tuple]:
        """:meth:`acid.Index.tups`, as an async iterator."""
        return self.store._rows(lambda: self.blocking.tups(*args, **kwargs))

    def keys(self, *args: Any, **kwargs: Any) -> AsyncIterator[tuple]:
        """:meth:`acid.Index.keys`, as an async iterator."""
        return self.store._rows(lambda: self.blocking.keys(*args, **kwargs))

    def items(self, *args: Any, **kwargs: Any) -> AsyncIterator[tuple]:
        """:meth:`acid.Index.items`, as an async iterator."""
        return self.store._rows(lambda: self.blocking.items(*args, **kwargs))

    def values(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        """:meth:`acid.Index.values`, as an async iterator."""
        return self.store._rows(lambda: self.blocking.values(*args, **kwargs))
