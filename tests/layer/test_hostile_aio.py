"""acid.aio, store.transact and @acid.transactional used as a hostile user
would: calls that raise StopIteration, tasks and iterators dropped with
their loop, decorators stacked in every order (docs/guide.md, "asyncio"
and "Retrying transactions")."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import random
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
from hooked_engine import HookedEngine, HookedTxn

import acid
import acid.aio
from acid.errors import EngineError, TxnTimeout

#: A hang fails the test instead of freezing the run.
HANG = 20


def run(main: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(main(), HANG)

    return asyncio.run(bounded())


def aio_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("acid-aio")}


def assert_threads_end(before: set[threading.Thread]) -> None:
    """Every acid.aio thread started since ``before`` ends (the store that
    started them is closed): none is parked with a transaction."""
    for thread in aio_threads() - before:
        thread.join(5)
        assert not thread.is_alive(), f"{thread.name} still runs"


# -- a blocking call raising StopIteration -----------------------------------


def test_stop_iteration_from_a_blocking_call_raises_and_frees_the_turn(
    store: acid.Store,
) -> None:
    """``next()`` on an empty iterator in a plain function: asyncio futures
    refuse StopIteration, which left the awaiting task (and the writers'
    turn) hanging forever."""
    astore = acid.aio.Store(store)
    coll = store.add_collection("c")

    def first_key() -> Any:
        return next(coll.keys())  # empty: StopIteration

    async def main() -> None:
        for call in (
            lambda: astore.transact(first_key),  # a transaction's thread
            lambda: astore.in_txn(first_key),  # the pool, reading
            lambda: astore.in_txn(first_key, write=True),  # the pool, writing
        ):
            with pytest.raises(RuntimeError, match="StopIteration") as info:
                await asyncio.wait_for(call(), 5)
            assert isinstance(info.value.__cause__, StopIteration)
        async with astore.begin(write=True):
            await astore["c"].put("kept", key=1)
            with pytest.raises(RuntimeError, match="StopIteration"):
                await asyncio.wait_for(astore.in_txn(lambda: next(iter(()))), 5)
        # The turn is free and the block above committed.
        async with astore.begin(write=True, timeout=1):
            assert await astore["c"].get(1) == "kept"
        await astore.close()

    run(main)


# -- transactions whose loop is gone -----------------------------------------


def test_a_task_dropped_with_its_loop_mid_write_gives_the_writer_lock_back(
    tmp_path: Path,
) -> None:
    """A loop closed while a task is inside a write block: the task's
    coroutine is closed by the garbage collector, where nothing can be
    awaited. Its transaction used to stay open on its thread forever, and
    with it LMDB's writer lock: nothing in the process could write again."""
    before = aio_threads()
    blocking = acid.open(f"lmdb:{tmp_path}/db?lock_timeout=2")
    astore = acid.aio.Store(blocking)
    coll = blocking.add_collection("c")
    loop = asyncio.new_event_loop()
    inside = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []

    async def writer() -> None:
        async with astore.begin(write=True):
            await astore["c"].put("dropped", key=1)
            inside.set()
            await asyncio.Event().wait()  # forever

    async def main() -> None:
        tasks.append(asyncio.ensure_future(writer()))
        await inside.wait()

    loop.run_until_complete(main())
    loop.close()  # with the writer still inside its block
    tasks.clear()
    gc.collect()
    # The blocking API (another "thread" of the application) writes again.
    coll.put("blocking", key=2)

    async def later() -> None:  # and so does a new loop
        await astore["c"].put("aio", key=3)
        async with astore.begin(write=True, timeout=2):
            await astore["c"].put("aio block", key=4)

    asyncio.run(later())
    assert list(coll.values()) == ["blocking", "aio", "aio block"]
    asyncio.run(astore.close())
    assert_threads_end(before)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_async_iterators_dropped_after_their_loop_closed_free_their_reader(
    tmp_path: Path,
) -> None:
    """An iterator made outside a transaction holds a read transaction (an
    LMDB reader slot) and a thread until it is exhausted or closed. Dropped
    after its loop closed, asyncio cannot close it (it says so, as an
    ignored exception); its transaction used to stay open, so that after
    ``max_readers`` of them nothing in the process could read."""
    before = aio_threads()
    blocking = acid.open(f"lmdb:{tmp_path}/db?max_readers=4")
    coll = blocking.add_collection("c")
    with blocking.begin(write=True):
        for i in range(acid.aio.BATCH * 2):
            coll.put(i, key=i)
    astore = acid.aio.Store(blocking)
    kept: list[Any] = []

    async def partly() -> None:
        rows = astore["c"].values()
        assert await anext(rows) == 0
        kept.append(rows)

    for _ in range(12):  # three times the reader slots
        loop = asyncio.new_event_loop()
        loop.run_until_complete(partly())
        loop.close()
        kept.clear()
        gc.collect()
    assert len(list(coll.keys())) == acid.aio.BATCH * 2
    assert blocking.check().ok

    async def again() -> list[Any]:
        return [v async for v in astore["c"].values(max=3)]

    assert asyncio.run(again()) == [0, 1, 2]
    asyncio.run(astore.close())
    assert_threads_end(before)


def test_a_task_dropped_while_its_loop_runs_aborts_its_block(
    store: acid.Store,
) -> None:
    """A task nobody references, waiting on a future nobody references, is
    collected while its loop runs: its block aborts and the turn comes back
    (it used to await inside GeneratorExit: "coroutine ignored GeneratorExit")."""
    astore = acid.aio.Store(store)
    coll = store.add_collection("c")

    async def main() -> None:
        inside = asyncio.Event()

        async def writer() -> None:
            async with astore.begin(write=True):
                await astore["c"].put("dropped", key=1)
                inside.set()
                await asyncio.get_running_loop().create_future()  # forever

        asyncio.ensure_future(writer())  # the only reference: the loop's weak one
        await inside.wait()
        await asyncio.sleep(0)
        gc.collect()
        async with astore.begin(write=True, timeout=5):
            await astore["c"].put("next", key=2)
        assert list(coll.values()) == ["next"]
        await astore.close()

    run(main)


# -- @acid.transactional stacked in every order --------------------------------


def test_transactional_over_staticmethod_and_classmethod(store: acid.Store) -> None:
    """Above @staticmethod the wrapper became a plain function, so calls on
    an instance passed the instance as an argument: "takes 1 positional
    argument but 2 were given". Above @classmethod it refused the object."""

    class Visits:
        @acid.transactional(store)
        @staticmethod
        def hit(page: str) -> int:
            return store.count(page)

        @acid.transactional(store, retries=2)
        @classmethod
        def hit_named(cls, page: str) -> tuple[str, int]:
            return cls.__name__, store.count(page)

        @staticmethod
        @acid.transactional(store)
        def hit_below(page: str) -> int:
            return store.count(page)

    visits = Visits()
    assert visits.hit("home") == 1 and Visits.hit("home") == 2
    assert visits.hit_named("home") == ("Visits", 3)
    assert Visits.hit_named("home") == ("Visits", 4)
    assert visits.hit_below("home") == 5
    assert Visits.hit.__name__ == "hit"
    with pytest.raises(TypeError, match="generator function"):

        class Bad:
            @acid.transactional(store)
            @staticmethod
            def gen() -> Any:
                yield 1


def test_transactional_on_an_aio_store_is_a_coroutine_function(
    store: acid.Store,
) -> None:
    """Frameworks ask ``inspect.iscoroutinefunction`` whether to await a
    handler or run it on a thread; the decorated function said "no" and
    returned an awaitable all the same."""
    astore = acid.aio.Store(store)

    @acid.transactional(astore, retries=2)
    async def visit(page: str) -> int:
        return await astore.count(page)

    @acid.transactional(astore)
    def visit_blocking(page: str) -> int:  # plain: runs on the thread
        return astore.blocking.count(page)

    class Pages:
        @acid.transactional(astore)
        @staticmethod
        async def visit(page: str) -> int:
            return await astore.count(page)

    assert inspect.iscoroutinefunction(visit)
    assert inspect.iscoroutinefunction(visit_blocking)
    assert inspect.iscoroutinefunction(Pages.visit)
    assert visit.__name__ == "visit"

    async def main() -> list[int]:
        got = [await visit("p"), await visit_blocking("p"), await Pages().visit("p")]
        async with astore.begin(write=True):  # joins the block
            got.append(await visit("p"))
            acid.abort()
        got.append(await astore.count("p", 0))
        await astore.close()
        return got

    assert run(main) == [1, 2, 3, 4, 4]


def test_writer_turn_timeout_still_reads_clearly(tmp_path: Path) -> None:
    """The fixes above keep the documented turn timeout (a regression guard
    for the turn given back through the loop)."""

    async def main() -> None:
        store = await acid.aio.open(f"lmdb:{tmp_path}/db?lock_timeout=0.05")
        release = asyncio.Event()

        async def holder() -> None:
            async with store.begin(write=True):
                await release.wait()

        task = asyncio.create_task(holder())
        await asyncio.sleep(0.01)
        with pytest.raises(TxnTimeout, match="turn"):
            async with store.begin(write=True):
                pass
        release.set()
        await task
        await store.close()
        with pytest.raises(EngineError, match="closed"):
            await store.count("n")

    run(main)


def test_a_task_collected_mid_block_leaves_the_running_block_alone(
    store: acid.Store,
) -> None:
    """A dropped task is closed by the garbage collector in whatever task
    runs then; its block's exit reset "the active transaction" of that
    other task, whose next writes left its block: autocommitted (waiting
    for the turn the block itself held) and kept after its abort."""
    astore = acid.aio.Store(store)
    coll = store.add_collection("c")

    async def main() -> None:
        inside = asyncio.Event()

        async def dropped_reader() -> None:
            async with astore.begin():
                inside.set()
                await asyncio.get_running_loop().create_future()  # forever

        asyncio.ensure_future(dropped_reader())  # only the loop's weak reference
        await inside.wait()
        await asyncio.sleep(0)
        async with astore.begin(write=True) as txn:
            await astore["c"].put("first", key=1)
            gc.collect()  # closes the dropped task's coroutine, here
            assert astore.txn is txn
            await asyncio.wait_for(astore["c"].put("second", key=2), 5)
            acid.abort()
        assert list(coll.keys()) == []
        await astore.close()

    run(main)


# -- the blocking API and acid.aio mixed in one task ---------------------------


@pytest.mark.parametrize("url", ["skiplist:/?lock_timeout=2", "lmdb"])
def test_blocking_calls_inside_an_aio_block_refuse_at_once(
    tmp_path: Path, url: str
) -> None:
    """On the loop's thread inside ``async with store.begin(write=True)``,
    a blocking read ran in another snapshot, blind to the block's writes (a
    wrong answer), and a blocking write waited for the writer lock the
    block holds: the loop froze for the lock timeout (30 s by default;
    eleven times that through blocking ``transact``), then a misleading
    "another write transaction held the writer lock"."""
    if url == "lmdb":
        url = f"lmdb:{tmp_path}/db?lock_timeout=2"

    async def main() -> None:
        astore = await acid.aio.open(url)
        coll = await astore.add_collection("c")
        blocking = coll.blocking
        async with astore.begin(write=True):
            await coll.put("aio", key=1)
            calls: list[Callable[[], Any]] = [
                lambda: blocking.get(1),
                lambda: list(blocking.keys()),
                lambda: blocking.put("blocking", key=2),
                lambda: astore.blocking.count("n"),
                lambda: astore.blocking.transact(lambda: blocking.put("t", key=3)),
                lambda: astore.blocking.begin().__enter__(),
            ]
            for call in calls:
                with pytest.raises(acid.errors.TxnError):
                    call()
            # A thread with this task's context (asyncio.to_thread) too.
            with pytest.raises(acid.errors.TxnError, match="event loop"):
                await asyncio.to_thread(blocking.put, "thread", key=4)
            # The way that works: a plain function on the block's thread.
            assert await astore.in_txn(lambda: blocking.get(1)) == "aio"
            child = asyncio.create_task(asyncio.sleep(0.05))
        await child
        # After the block, the blocking API (on the loop, briefly) is free.
        assert blocking.get(1) == "aio" and astore.blocking.txn is None
        blocking.put("after", key=5)

        async def inherited() -> None:  # a task made in a block that ended
            blocking.put("inherited", key=6)

        async with astore.begin(write=True):
            task = asyncio.create_task(inherited())
        await task
        assert [k async for k in coll.keys()] == [(1,), (5,), (6,)]
        await astore.close()

    run(main)


@pytest.mark.parametrize("url", ["skiplist:/?lock_timeout=2", "lmdb"])
def test_aio_calls_inside_a_blocking_write_block_refuse_at_once(
    tmp_path: Path, url: str
) -> None:
    """The reverse: a blocking write block open on the loop's thread, then
    an awaited call. It ran in another transaction on another thread: a
    write waited (the loop free, the task stuck) for the lock the block
    holds, then TxnTimeout; a read did not see the block's writes."""
    if url == "lmdb":
        url = f"lmdb:{tmp_path}/db?lock_timeout=2"

    async def main() -> None:
        astore = await acid.aio.open(url)
        coll = await astore.add_collection("c")
        with astore.blocking.begin(write=True):
            coll.blocking.put("blocking", key=1)
            for call in (
                lambda: coll.put("aio", key=2),
                lambda: coll.get(1),
                lambda: astore.transact(lambda: None),
                lambda: astore.begin().__aenter__(),
            ):
                with pytest.raises(acid.errors.TxnError, match="blocking write"):
                    await asyncio.wait_for(call(), 1.5)
            with pytest.raises(acid.errors.TxnError, match="blocking write"):
                [_ async for _ in coll.keys()]
        with astore.blocking.begin():  # a read block: no lock, no writes
            assert await coll.get(1) == "blocking"
            await coll.put("aio", key=2)
        assert [k async for k in coll.keys()] == [(1,), (2,)]
        await astore.close()

    run(main)


# -- abandoned iterators --------------------------------------------------------


class _RecordingEngine(HookedEngine):
    """Records the thread on which each engine iterator is closed."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.closed_on: list[str] = []

    def begin(self, write: bool = False, timeout: float | None = None) -> Any:
        return _RecordingTxn(self, self.inner.begin(write, timeout))


class _RecordingTxn(HookedTxn):
    _engine: _RecordingEngine

    def iter(self, key: bytes, reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
        try:
            yield from super().iter(key, reverse)
        finally:
            self._engine.closed_on.append(threading.current_thread().name)


def test_an_abandoned_iterator_is_closed_on_its_transactions_thread(
    tmp_path: Path,
) -> None:
    """``break`` out of ``async for`` inside a block: asyncio closes the
    iterator later, in a task of its own. It used to drop the engine's
    iterator (an LMDB cursor of the write transaction) on the loop's thread,
    while the block's thread went on writing through that transaction."""
    inner = acid.engines.from_url(f"lmdb:{tmp_path}/db")
    engine = _RecordingEngine(inner)
    astore = acid.aio.Store(acid.Store(engine))

    async def main() -> None:
        coll = await astore.add_collection("c")
        await coll.add_index("v", lambda r: r["v"])
        async with astore.begin(write=True):
            for i in range(acid.aio.BATCH + 5):
                await coll.put({"v": i}, key=i)
            for i in range(20):
                async for _ in coll.values():
                    break  # abandoned, not closed
                gc.collect()
                await asyncio.sleep(0)  # asyncio's finalizer closes it now
                await coll.put({"v": -i}, key=-i)
            rows = coll.items()
            await anext(rows)
            with pytest.raises(ValueError, match="thrown in"):
                await rows.athrow(ValueError("thrown in"))  # type: ignore[call-overload]
            with pytest.raises(StopAsyncIteration):
                await anext(rows)
        async for _ in coll.keys():  # outside a block: its own read
            break
        gc.collect()
        await asyncio.sleep(0.01)
        async with contextlib.aclosing(coll.keys()) as keys:
            await anext(keys)
        await astore.close()

    run(main)
    assert len(engine.closed_on) >= 23, engine.closed_on
    assert engine.closed_on, "no iterator was closed"
    assert "MainThread" not in engine.closed_on, engine.closed_on


# -- the retry policy fed nonsense ---------------------------------------------


def _conflict() -> None:
    raise acid.errors.ConflictError("injected")


@pytest.mark.parametrize("fraction", [-0.5, 1.5, float("nan"), None, True])
def test_a_backoff_rng_out_of_range_says_so(fraction: Any) -> None:
    """``rng`` returned -0.5: ``time.sleep`` raised "sleep length must be
    non-negative" from inside transact (``asyncio.sleep`` waited not at
    all); 1.5 waited past the cap; NaN or None, errors that named neither."""
    store = acid.open("skiplist:/")
    policy = acid.Backoff(rng=lambda: fraction, sleep=lambda s: None)
    error = ValueError if isinstance(fraction, float) else TypeError
    with pytest.raises(error, match="rng"):
        store.transact(_conflict, backoff=policy)

    async def main() -> None:
        astore = acid.aio.Store(store)
        with pytest.raises(error, match="rng"):
            await astore.transact(_conflict, backoff=acid.Backoff(rng=lambda: fraction))
        await astore.close()

    run(main)


def test_an_async_sleep_in_the_blocking_transact_is_refused() -> None:
    """An ``async def`` sleep made the blocking retry loop spin without
    waiting (and warn "coroutine was never awaited")."""
    store = acid.open("skiplist:/")

    async def sleep(seconds: float) -> None:
        await asyncio.sleep(seconds)

    with pytest.raises(TypeError, match="awaitable") as info:
        store.transact(_conflict, backoff=acid.Backoff(sleep=sleep))
    assert isinstance(info.value.__cause__, acid.errors.ConflictError)


# -- two acid.aio stores over one storage ----------------------------------------


def test_a_block_on_one_store_covers_another_over_the_same_storage(
    tmp_path: Path,
) -> None:
    """Stores over one storage share its transaction (``prefix`` splits one
    LMDB environment between them): a block begun on one covers writes
    through the other, as in the blocking API. Through acid.aio the other
    store's write began a transaction of its own, which waited for the
    writer lock this very block held: 30 s (the lock timeout), then a
    misleading TxnTimeout."""
    url = f"lmdb:{tmp_path}/db?lock_timeout=2"

    async def main() -> None:
        a = await acid.aio.open(url, prefix="a")
        b = await acid.aio.open(url, prefix="b")
        ca, cb = await a.add_collection("c"), await b.add_collection("c")
        async with a.begin(write=True) as txn:
            assert b.txn is txn
            await ca.put("a", key=1)
            await asyncio.wait_for(cb.put("b", key=1), 5)
            assert await cb.get(1) == "b"
            acid.abort()  # both roll back: one transaction
        assert (await ca.get(1), await cb.get(1)) == (None, None)
        async with b.begin(write=True):
            await asyncio.wait_for(a.transact(ca.put, "a", key=2), 5)
            await cb.put("b", key=2)
        assert (await ca.get(2), await cb.get(2)) == ("a", "b")

        async def writer(store: acid.aio.Store, i: int) -> None:
            async with store.begin(write=True):
                await store["c"].put(i, key=(3, i))
                await asyncio.sleep(0.005)

        # Writers through both take one turn; none waits in the engine.
        await asyncio.gather(*(writer((a, b)[i % 2], i) for i in range(20)))
        assert len([k async for k in ca.keys()]) == 11
        assert len([k async for k in cb.keys()]) == 11
        await a.close()
        await b.close()

    run(main)


# -- what transact is given to run -------------------------------------------------


def test_aio_transact_awaits_a_callable_object_with_an_async_call(
    store: acid.Store,
) -> None:
    """An object whose ``__call__`` is ``async def`` is a coroutine function
    in all but name: it was run on the transaction's thread, and its
    coroutine refused as "would run after the transaction ended"."""
    astore = acid.aio.Store(store)

    class Visit:
        async def __call__(self, page: str) -> int:
            return await astore.count(page)

    async def main() -> None:
        assert await astore.transact(Visit(), "home") == 1
        with pytest.raises(TypeError, match="coroutine function"):
            store.transact(Visit(), "home")  # the blocking one refuses it
        assert await acid.transactional(astore)(Visit())("home") == 2
        # A plain function returning a coroutine is still refused, saying
        # what to write instead.
        coll = await astore.add_collection("c")
        with pytest.raises(TypeError, match="async def"):
            await astore.transact(lambda: coll.put("x", key=1))
        assert await coll.get(1) is None
        await astore.close()

    run(main)


class _SlowCommits(HookedEngine):
    """Write commits take ``commit_delay`` seconds."""

    commit_delay = 0.0

    def begin(self, write: bool = False, timeout: float | None = None) -> Any:
        return _SlowCommitTxn(self, self.inner.begin(write, timeout))


class _SlowCommitTxn(HookedTxn):
    _engine: _SlowCommits

    def commit(self) -> None:
        if self.write:
            time.sleep(self._engine.commit_delay)
        super().commit()


def test_a_commit_outliving_its_loop_gives_its_thread_back(tmp_path: Path) -> None:
    """Ctrl-C (or a timeout) while a block commits: asyncio.run cancels the
    task and closes the loop while the commit still runs on its thread. The
    commit lands; its thread used to wait for the loop to take it back, and
    stayed parked for good (``close()`` never saw it)."""
    before = aio_threads()
    engine = _SlowCommits(acid.engines.from_url(f"lmdb:{tmp_path}/db"))
    astore = acid.aio.Store(acid.Store(engine))
    coll = astore.blocking.add_collection("c")
    committing = threading.Event()

    async def main() -> None:
        async def writer() -> None:
            async with astore.begin(write=True):
                await astore["c"].put("landed", key=1)
                engine.commit_delay = 0.3
                committing.set()

        task = asyncio.ensure_future(writer())
        await asyncio.to_thread(committing.wait, 5)
        await asyncio.sleep(0.05)  # the commit is under way on its thread
        task.cancel()  # as asyncio.run does on Ctrl-C
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())  # returns while the commit still runs
    time.sleep(0.5)
    engine.commit_delay = 0
    assert coll.get(1) == "landed"
    asyncio.run(astore.close())
    assert_threads_end(before)


def test_a_close_from_another_loop_between_check_and_call_raises(
    store: acid.Store,
) -> None:
    """Two loops in two threads share a store; one closes it just after the
    other checked it was open. The pool's threads were told to stop: the
    call queued behind them never ran, and its task waited forever."""
    astore = acid.aio.Store(store)
    coll = store.add_collection("c")
    coll.put("x", key=1)
    check = astore._check_open

    def check_then_closed_elsewhere() -> None:
        check()
        astore._pool.stop()  # what close() in the other thread does next

    async def main() -> None:
        astore._check_open = check_then_closed_elsewhere  # type: ignore[method-assign]
        for call in (lambda: astore["c"].get(1), lambda: astore["c"].put("y", key=2)):
            with pytest.raises(EngineError, match="closed"):
                await asyncio.wait_for(call(), 5)
        astore._check_open = check  # type: ignore[method-assign]
        await astore.close()

    run(main)


def test_a_pool_that_cannot_start_all_its_threads_stops_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``pool_size=100_000`` runs out of threads part way ("can't start new
    thread"): the threads already started were left parked for good."""
    before = aio_threads()
    started: list[threading.Thread] = []
    real_start = threading.Thread.start

    def start(self: threading.Thread) -> None:
        if self.name.startswith("acid-aio") and len(started) == 3:
            raise RuntimeError("can't start new thread")
        real_start(self)
        started.append(self)

    monkeypatch.setattr(threading.Thread, "start", start)
    with pytest.raises(RuntimeError, match="new thread"):
        acid.aio.Store(acid.open("skiplist:/"), pool_size=100_000)
    monkeypatch.undo()
    assert len(started) == 3
    assert_threads_end(before)


def test_a_lazy_result_over_the_transaction_fails_clearly_when_used(
    store: acid.Store,
) -> None:
    """Held up: a ``map`` or ``filter`` over the transaction's iterator is
    not a generator, so it is returned; using it says the transaction
    ended (it never reads another snapshot quietly)."""
    coll = store.add_collection("c")
    for i in range(5):
        coll.put(i, key=i)
    lazy = store.transact(lambda: map(lambda k: k[0], coll.keys()))
    with pytest.raises(acid.errors.TxnError, match="ended"):
        list(lazy)

    async def main() -> None:
        astore = acid.aio.Store(store)
        lazy = await astore.transact(lambda: filter(None, coll.values()))
        with pytest.raises(acid.errors.TxnError, match="ended"):
            list(lazy)
        await astore.close()

    run(main)


@pytest.mark.parametrize("error", [KeyboardInterrupt, SystemExit])
def test_keyboard_interrupt_and_system_exit_abort_and_are_not_retried(
    tmp_path: Path, error: type[BaseException]
) -> None:
    """Held up: neither is retried nor swallowed; the transaction aborts,
    and the writer lock and the writers' turn are free afterwards."""
    blocking = acid.open(f"lmdb:{tmp_path}/db?lock_timeout=2")
    astore = acid.aio.Store(blocking)
    coll = blocking.add_collection("c")
    runs: list[int] = []

    def plain() -> None:
        runs.append(1)
        coll.put("never", key=1)
        raise error()

    async def coroutine() -> None:
        runs.append(1)
        await astore["c"].put("never", key=2)
        raise error()

    with pytest.raises(error):
        blocking.transact(plain)
    for body in (plain, coroutine):
        with pytest.raises(error):
            asyncio.run(astore.transact(body))
    assert len(runs) == 3 and list(coll.keys()) == []
    coll.put("blocking", key=3)

    async def after() -> None:
        async with astore.begin(write=True, timeout=1):
            await astore["c"].put("aio", key=4)
        await astore.close()

    asyncio.run(after())
    with acid.open(f"lmdb:{tmp_path}/db") as again:
        assert list(again.add_collection("c").values()) == ["blocking", "aio"]


def test_an_iterator_in_a_write_block_sees_the_blocks_later_writes(
    store: acid.Store,
) -> None:
    """The engine contract: after yielding ``k`` an iterator's next item is
    the first key after ``k`` in the transaction's view at that moment, its
    own puts and deletes included. The blocking API gives that; acid.aio,
    which fetches rows in batches, yielded a key deleted meanwhile and
    missed one inserted."""
    coll = store.add_collection("c")
    for i in range(10):
        coll.put(i, key=i)

    def blocking() -> list[Any]:
        seen = []
        for (k,) in coll.keys():
            seen.append(k)
            if k == 0:
                coll.delete(5)
                coll.put("new", key=7.5)
        return seen

    with store.begin(write=True):
        expected = blocking()
        acid.abort()
    assert expected == [0, 1, 2, 3, 4, 6, 7, 7.5, 8, 9]

    async def main() -> list[Any]:
        astore = acid.aio.Store(store)
        acoll = astore["c"]
        seen = []
        async with astore.begin(write=True):
            async for (k,) in acoll.keys():
                seen.append(k)
                if k == 0:
                    await acoll.delete(5)
                    await acoll.put("new", key=7.5)
            acid.abort()
        await astore.close()
        return seen

    assert run(main) == expected


def _interleaved_scan_plan(seed: int) -> tuple[bool, dict[int, list[tuple[str, int]]]]:
    """At which yielded rows to write what: puts and deletes before, at and
    after the iterator's position, sometimes none for a while."""
    rng = random.Random(seed)
    plan: dict[int, list[tuple[str, int]]] = {}
    for _ in range(rng.randrange(1, 12)):
        at = rng.randrange(0, 700)
        plan.setdefault(at, []).extend(
            (rng.choice(["put", "delete"]), rng.randrange(-50, 1300))
            for _ in range(rng.randrange(1, 4))
        )
    return rng.random() < 0.5, plan


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("engine", ["skiplist", "lmdb"])
def test_iterators_in_write_blocks_match_the_blocking_api(
    tmp_path: Path, engine: str, seed: int
) -> None:
    """Random writes made while iterating (across batch boundaries, before
    and after the position, forward and reverse): the aio iterator yields
    what the blocking one yields in the same transaction."""
    url = "skiplist:/" if engine == "skiplist" else f"lmdb:{tmp_path}/db"
    store = acid.open(url)
    coll = store.add_collection("c")
    with store.begin(write=True):
        for i in range(0, 1200, 2):
            coll.put(i, key=i)
    reverse, plan = _interleaved_scan_plan(seed)

    def write(op: str, key: int) -> None:
        if op == "put":
            coll.put(-key, key=key)
        else:
            coll.delete(key)

    with store.begin(write=True):
        expected = []
        for n, (k,) in enumerate(coll.keys(reverse=reverse)):
            expected.append(k)
            for op, key in plan.get(n, ()):
                write(op, key)
        acid.abort()

    async def main() -> list[Any]:
        astore = acid.aio.Store(store)
        acoll = astore["c"]
        seen = []
        async with astore.begin(write=True):
            n = 0
            async for (k,) in acoll.keys(reverse=reverse):
                seen.append(k)
                for op, key in plan.get(n, ()):
                    if op == "put":
                        await acoll.put(-key, key=key)
                    else:
                        await acoll.delete(key)
                n += 1
            acid.abort()
        await astore.close()
        return seen

    assert run(main) == expected


@pytest.mark.parametrize("engine", ["skiplist", "lmdb"])
def test_an_index_scan_that_moves_its_own_entries_matches_the_blocking_api(
    tmp_path: Path, engine: str
) -> None:
    """Iterating an index while raising the indexed field of each record
    it yields moves entries ahead of the iterator (it meets some records
    again): aio and blocking agree on every row."""
    url = "skiplist:/" if engine == "skiplist" else f"lmdb:{tmp_path}/db"
    store = acid.open(url)
    coll = store.add_collection("c")
    coll.add_index("n", lambda r: r["n"])
    with store.begin(write=True):
        for i in range(400):
            coll.put({"n": i}, key=i)

    with store.begin(write=True):
        expected = []
        for key, rec in coll.indices["n"].items(hi=700):
            expected.append((key, rec["n"]))
            if rec["n"] % 3 == 0:
                coll.put({"n": rec["n"] + 150}, key=key)
        acid.abort()

    async def main() -> list[Any]:
        astore = acid.aio.Store(store)
        acoll = astore["c"]
        seen = []
        async with astore.begin(write=True):
            async for key, rec in acoll.indices["n"].items(hi=700):
                seen.append((key, rec["n"]))
                if rec["n"] % 3 == 0:
                    await acoll.put({"n": rec["n"] + 150}, key=key)
            acid.abort()
        await astore.close()
        return seen

    assert len(expected) > 400
    assert run(main) == expected


def test_a_plain_function_writing_while_an_iterator_runs_counts_as_a_write(
    store: acid.Store,
) -> None:
    """``in_txn(fn)`` (``write=False``, the default) joins a write block, and
    ``fn`` may write there: the iterator must treat it as a write too."""
    coll = store.add_collection("c")
    for i in range(10):
        coll.put(i, key=i)

    async def main() -> list[Any]:
        astore = acid.aio.Store(store)
        seen = []
        async with astore.begin(write=True):
            async for (k,) in astore["c"].keys():
                seen.append(k)
                if k == 0:
                    await astore.in_txn(lambda: coll.delete(5))
            acid.abort()
        await astore.close()
        return seen

    assert run(main) == [0, 1, 2, 3, 4, 6, 7, 8, 9]


def test_a_body_that_swallows_conflict_errors_is_still_retried() -> None:
    """Held up: the conflict a commit loses is raised after the body
    returned, so a body catching ConflictError cannot hide it; transact
    retries and the last attempt alone lands. Huge ``retries`` are fine;
    async functions are refused by the blocking decorator at once."""
    engine = HookedEngine(acid.engines.from_url("skiplist:/"))
    store = acid.Store(engine)
    coll = store.add_collection("c")
    engine.fail_commits = 2
    runs: list[int] = []

    def body() -> int:
        runs.append(1)
        try:
            coll.put(len(runs), key="k")
        except acid.errors.ConflictError:  # never raised here
            pass
        return len(runs)

    quiet = acid.Backoff(sleep=lambda s: None)
    assert store.transact(body, retries=10**30, backoff=quiet) == 3
    assert coll.get("k") == 3 and engine.commits == 2  # the add, then attempt 3

    async def visit() -> None:
        pass

    with pytest.raises(TypeError, match="coroutine function"):
        acid.transactional(store)(visit)

    async def main() -> None:
        astore = acid.aio.Store(store)
        engine.fail_commits = 2
        runs.clear()
        assert await astore.transact(body, retries=10**30, backoff=quiet) == 3
        await astore.close()

    run(main)
