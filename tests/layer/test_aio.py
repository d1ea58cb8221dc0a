"""acid.aio: the awaitable API on every engine; many tasks, cancellation,
errors in blocks, shared and ended transactions, closing under load, and a
loop that never stalls (docs/guide.md, "asyncio")."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import gc
import random
import threading
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
from hooked_engine import HookedEngine

import acid
import acid.aio
from acid.errors import ConflictError, EngineError, TxnError, TxnTimeout
from acid.testing import longest_stall

#: A hang fails the test instead of freezing the run.
HANG = 20


def run(main: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(main(), HANG)

    return asyncio.run(bounded())


@pytest.fixture
def astore(store: acid.Store) -> Iterator[acid.aio.Store]:
    opened = acid.aio.Store(store)
    yield opened
    asyncio.run(opened.close())


def slow_store(get_delay: float = 0.0, **kwargs: Any) -> acid.aio.Store:
    engine = HookedEngine(acid.engines.from_url("skiplist:/"), **kwargs)
    engine.get_delay = get_delay
    return acid.aio.Store(acid.Store(engine))


def test_the_blocking_names_awaitable(astore: acid.aio.Store) -> None:
    async def main() -> None:
        people = await astore.add_collection("people", key_func=lambda p: p["id"])
        by_name = await people.add_index("name", lambda p: p["name"])
        assert people.indices["name"].name == "name" and people.name == "people"
        async with astore.begin(write=True):
            for i, name in enumerate(["Eve", "Ada", "Bob", "Ada"]):
                assert await people.put({"id": i, "name": name}) == (i,)
            assert await astore.count("visits") == 1
            assert astore.txn is not None and astore.txn.write
        assert astore.txn is None
        assert await people.get(1) == {"id": 1, "name": "Ada"}
        assert await people.get(9, default="none") == "none"
        assert [k async for k in people.keys()] == [(0,), (1,), (2,), (3,)]
        assert [k async for k in people.keys(reverse=True, max=2)] == [(3,), (2,)]
        assert [r["name"] async for r in people.values(lo=1, hi=3)] == ["Ada", "Bob"]
        assert [k async for k, _ in people.items(prefix=2)] == [(2,)]
        assert await people.find(lo=2) == {"id": 2, "name": "Bob"}
        assert await people.findkey(reverse=True) == (3,)
        assert [t async for t in by_name.tups()] == [
            ("Ada",),
            ("Ada",),
            ("Bob",),
            ("Eve",),
        ]
        assert [p async for p in by_name.pairs("Ada")] == [
            (("Ada",), (1,)),
            (("Ada",), (3,)),
        ]
        assert [k async for k in by_name.keys("Ada")] == [(1,), (3,)]
        assert [k async for k, _ in by_name.items(lo="B")] == [(2,), (0,)]
        assert [v["id"] async for v in by_name.values(reverse=True)] == [0, 2, 3, 1]
        assert await by_name.count("Ada") == 2 and await by_name.has("Eve")
        assert await by_name.get("Bob") == {"id": 2, "name": "Bob"}
        assert await by_name.find(lo="C") == {"id": 0, "name": "Eve"}
        assert await people.delete(0) and not await people.delete(0)
        assert await astore.count("visits", 0) == 2
        assert await astore.collections() == ["people"]
        assert astore["people"].blocking is people.blocking
        assert await astore.in_txn(lambda: people.blocking.get(1)) == {
            "id": 1,
            "name": "Ada",
        }
        assert await astore.in_txn(lambda: astore.blocking.count("w"), write=True) == 1
        async with astore.begin():  # joins: a write in a read txn refuses
            with pytest.raises(TxnError):
                await astore.in_txn(lambda: astore.blocking.count("w"), write=True)
        assert [n async for n in people.keys()] == [(1,), (2,), (3,)]
        assert [n for n, _ in await astore.iter_meta(acid.KIND_TABLE)] == [("people",)]
        assert (await astore.get_encoder("json")).name == "json"
        await astore.set_meta(acid.KIND_STRUCT, "cfg", {"a": 1})
        assert await astore.get_meta(acid.KIND_STRUCT, "cfg") == {"a": 1}
        await people.drop_index("name")
        assert (await astore.check()).ok and (await people.check()).ok
        await astore.rename_collection("people", "folk")
        await astore.drop_collection("folk")
        assert await astore.collections() == []
        await astore.close()
        await astore.close()  # closing again is a no-op

    run(main)


def test_open_by_url(tmp_path: Path) -> None:
    async def main() -> None:
        store = await acid.aio.open(f"lmdb:{tmp_path}/db", trace_path=tmp_path / "t")
        async with store:
            coll = await store.add_collection("c")
            await coll.put("x", key=1)
        with acid.open(f"lmdb:{tmp_path}/db") as again:
            assert again.add_collection("c").get(1) == "x"
        assert "put" in (tmp_path / "t").read_text()
        with pytest.raises(acid.errors.ConfigError):
            await acid.aio.open("nosuch:/")
        assert getattr(acid, "aio") is acid.aio  # noqa: B009
        with pytest.raises(AttributeError):
            getattr(acid, "nosuch")  # noqa: B009
        with pytest.raises(TypeError):
            acid.aio.Store(object())  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            acid.aio.Store(acid.open("skiplist:/"), pool_size=0)

    run(main)


def test_a_hundred_tasks_reading_and_writing(astore: acid.aio.Store) -> None:
    """Writers keep "records == counter" across awaits inside their blocks;
    every reader's snapshot must see the invariant hold."""
    checked: list[int] = []

    async def main() -> float:
        coll = await astore.add_collection("c")
        await coll.add_index("n", lambda r: r["n"])

        async def writer(i: int) -> None:
            async def body() -> None:
                n = await astore.count("n")
                await asyncio.sleep(random.random() / 100)  # the block spans awaits
                await coll.put({"w": i, "n": n}, key=i)

            # Concurrent writers (PostgreSQL) may lose conflicts: run again.
            await astore.transact(body, retries=1000)

        async def reader() -> None:
            await asyncio.sleep(random.random() / 50)
            async with astore.begin():
                n = await astore.count("n", 0)
                records = [r async for r in coll.values()]
                assert len(records) == n - 1
                assert sorted(r["n"] for r in records) == list(range(1, n))
            checked.append(n)

        tasks = [writer(i) if i % 2 else reader() for i in range(100)]
        random.shuffle(tasks)
        return await longest_stall(*tasks)

    stall = run(main)
    assert len(checked) == 50 and stall < 1.0
    blocking = astore.blocking.add_collection("c")
    blocking.add_index("n", lambda r: r["n"])
    assert sorted(r["n"] for r in blocking.values()) == list(range(1, 51))
    assert [k[0] for k in blocking.keys()] == list(range(1, 100, 2))
    assert astore.blocking.check().ok


def test_iterators_fetch_in_batches_and_release_their_snapshot(
    astore: acid.aio.Store,
) -> None:
    total = acid.aio.BATCH * 2 + 7

    async def main() -> None:
        coll = await astore.add_collection("c")
        async with astore.begin(write=True):
            for i in range(total):
                await coll.put(i, key=i)
            # Its own writes, mid-transaction, in batches too.
            assert [v async for v in coll.values()] == list(range(total))
        seen = []
        async for _k, v in coll.items(reverse=True):
            seen.append(v)
            if len(seen) == acid.aio.BATCH + 1:  # a snapshot across batches
                await coll.put("late", key=-1)
        assert seen == list(range(total))[::-1]
        for _ in range(200):  # more than LMDB's 126 reader slots, if leaked
            async for _ in coll.values():
                break
            await asyncio.sleep(0)
        async with contextlib.aclosing(coll.keys()) as keys:
            assert await anext(keys) == (-1,)
        gc.collect()
        await coll.put("after", key=-2)
        assert await coll.get(-2) == "after"
        with pytest.raises(ValueError, match="max"):
            [_ async for _ in coll.values(max=-1)]

    run(main)


def test_errors_and_abort_in_blocks(astore: acid.aio.Store) -> None:
    async def main() -> None:
        coll = await astore.add_collection("c")
        await coll.add_index("n", lambda r: r["n"])
        with pytest.raises(ZeroDivisionError):
            async with astore.begin(write=True):
                await coll.put({"n": 1}, key=1)
                1 / 0  # noqa: B018
        async with astore.begin(write=True):
            await coll.put({"n": 2}, key=2)
            acid.abort()
        async with astore.begin(write=True):
            with pytest.raises(TypeError):  # a failed put changes nothing
                await coll.put({"n": object()}, key=3)
            await coll.put({"n": 4}, key=4)
        assert [k async for k in coll.keys()] == [(4,)]
        async with astore.begin():
            with pytest.raises(TxnError, match="read transaction"):
                await coll.put({"n": 5}, key=5)
        block = astore.begin(write=True)
        async with block:
            with pytest.raises(TxnError, match="nested"):
                async with astore.begin():
                    pass
        with pytest.raises(TxnError, match="already used"):
            async with block:
                pass
        with pytest.raises(acid.errors.ConfigError):
            astore.begin(write=True, timeout=-1)
        assert (await astore.check()).ok

    run(main)


def test_a_task_shares_the_block_it_was_created_in_until_it_ends(
    astore: acid.aio.Store,
) -> None:
    async def main() -> None:
        coll = await astore.add_collection("c")
        inside, ended = asyncio.Event(), asyncio.Event()

        async def child() -> None:
            assert astore.txn is not None  # the parent's, while it lasts
            await coll.put("child-in-block", key=1)
            with pytest.raises(TxnError, match="nested"):
                async with astore.begin(write=True):
                    pass
            inside.set()
            await ended.wait()
            assert astore.txn is None  # the block ended: autocommit now
            await coll.put("child-after", key=2)
            async with astore.begin(write=True):
                await coll.put("child-own", key=3)

        async with astore.begin(write=True):
            task = asyncio.create_task(child())
            await inside.wait()
            acid.abort()  # the child's write was in this transaction
        ended.set()
        await task
        assert [v async for v in coll.values()] == ["child-after", "child-own"]

        # A transaction object used once its block ended refuses the call.
        async with astore.begin(write=True) as txn:
            pass
        with pytest.raises(TxnError, match="ended"):
            await txn.run(lambda: None)

    run(main)


@pytest.mark.writers_take_turns
def test_cancelling_a_writer_aborts_it_and_frees_the_turn(
    astore: acid.aio.Store,
) -> None:
    async def main() -> None:
        coll = await astore.add_collection("c")
        await coll.add_index("n", lambda r: r["n"])
        holding = asyncio.Event()

        async def stuck_writer() -> None:
            async with astore.begin(write=True):
                await coll.put({"n": 1}, key="cancelled")
                holding.set()
                await asyncio.Event().wait()  # forever

        async def waiting_writer() -> None:
            async with astore.begin(write=True):
                await coll.put({"n": 2}, key="never")

        stuck = asyncio.create_task(stuck_writer())
        await holding.wait()
        waiting = asyncio.create_task(waiting_writer())
        await asyncio.sleep(0.01)
        waiting.cancel()  # cancelled while waiting for the turn
        stuck.cancel()
        for task in (stuck, waiting):
            with pytest.raises(asyncio.CancelledError):
                await task
        async with astore.begin(write=True, timeout=5):  # the turn is free
            await coll.put({"n": 3}, key="next")
        assert [k async for k in coll.keys()] == [("next",)]
        assert (await astore.check()).ok

    run(main)


def test_cancelling_during_a_slow_call_aborts_after_it() -> None:
    astore = slow_store()

    async def main() -> None:
        coll = await astore.add_collection("c")
        astore.engine.get_delay = 0.2
        started = asyncio.Event()

        async def writer() -> None:
            async with astore.begin(write=True):
                await coll.put("x", key=1)
                started.set()
                await coll.get(1)  # in flight on the thread when cancelled

        task = asyncio.create_task(writer())
        await started.wait()
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        astore.engine.get_delay = 0.0
        await coll.put("y", key=2)  # autocommit write: takes the turn
        assert [k async for k in coll.keys()] == [(2,)]
        await astore.close()

    run(main)


def test_a_writer_waits_for_the_turn_then_times_out(tmp_path: Path) -> None:
    async def main() -> None:
        store = await acid.aio.open(f"lmdb:{tmp_path}/db?lock_timeout=0.05")
        coll = await store.add_collection("c")
        release = asyncio.Event()

        async def holder() -> None:
            async with store.begin(write=True):
                await coll.put("holder", key=1)
                await release.wait()

        task = asyncio.create_task(holder())
        await asyncio.sleep(0.01)
        with pytest.raises(TxnTimeout, match="turn"):
            async with store.begin(write=True):
                pass
        with pytest.raises(TxnTimeout) as info:
            await coll.put("auto", key=2)  # autocommit waits for the turn too
        waits: list[float] = []

        async def fake_sleep(seconds: float) -> None:
            waits.append(seconds)
            release.set()
            await task

        policy = acid.Backoff(sleep=fake_sleep)
        assert await store.transact(coll.put, "retried", key=3, backoff=policy) == (3,)
        assert len(waits) == 1 and info.value.attempts is None
        assert [v async for v in coll.values()] == ["holder", "retried"]
        await store.close()

    run(main)


def test_transact(astore: acid.aio.Store) -> None:
    async def main() -> None:
        coll = await astore.add_collection("c")

        async def add(rec: Any, key: Any) -> Any:
            return await coll.put(rec, key=key)

        assert await astore.transact(add, "a", 1) == (1,)
        assert await astore.transact(coll.blocking.put, "b", key=2) == (2,)
        assert await astore.transact(acid.abort) is None

        async def aborts() -> None:
            await coll.put("gone", key=3)
            acid.abort()

        assert await astore.transact(aborts) is None
        async with astore.begin(write=True):  # joins: no retry of a part
            with pytest.raises(ConflictError):
                await astore.transact(_conflict)
            await astore.transact(add, "joined", 4)
        async with astore.begin():
            with pytest.raises(TxnError, match="read transaction"):
                await astore.transact(add, "no", 5)

        async def gen() -> Any:
            yield 1

        with pytest.raises(TypeError, match="generator"):
            await astore.transact(gen)
        with pytest.raises(TypeError, match="retries"):
            await astore.transact(add, 1, 1, retries=None)
        with pytest.raises(TypeError, match="callable"):
            await astore.transact(None)  # type: ignore[arg-type]
        assert [k async for k in coll.keys()] == [(1,), (2,), (4,)]

        decorated = acid.transactional(astore, retries=2)(add)
        assert await decorated("dec", 6) == (6,)

    run(main)


async def _conflict() -> None:
    raise ConflictError("injected")


def test_transact_retries_conflicts_at_commit() -> None:
    astore = slow_store()

    async def main() -> None:
        coll = await astore.add_collection("c")
        astore.engine.fail_commits = 3
        calls: list[int] = []
        seen: list[int] = []

        async def body() -> int:
            calls.append(1)
            await coll.put(len(calls), key="only")
            return len(calls)

        policy = acid.Backoff(on_retry=lambda exc, n: seen.append(n))
        assert await astore.transact(body, backoff=policy) == 4
        assert seen == [1, 2, 3] and await coll.get("only") == 4
        astore.engine.fail_commits = 9
        with pytest.raises(ConflictError) as info:
            await astore.transact(body, retries=2, backoff=acid.Backoff(base=0))
        assert info.value.attempts == 3 and await coll.get("only") == 4
        await astore.close()

    run(main)


def test_a_slow_engine_never_stalls_the_loop() -> None:
    """Each get sleeps 0.2 s in the engine; the loop keeps ticking."""
    astore = slow_store()

    async def main() -> float:
        coll = await astore.add_collection("c")
        await coll.put("x", key=1)
        astore.engine.get_delay = 0.2

        async def reads() -> None:
            assert await coll.get(1) in ("x", "y")
            async with astore.begin(write=True):
                assert await coll.get(1) in ("x", "y")
                await coll.put("y", key=1)
            assert await astore.transact(coll.blocking.get, 1) == "y"

        stall = await longest_stall(reads(), reads())
        await astore.close()
        return stall

    assert run(main) < 0.1  # each blocking call would stall 0.2 s


def test_a_big_write_never_stalls_the_loop(tmp_path: Path) -> None:
    async def main() -> tuple[float, int]:
        store = await acid.aio.open(f"lmdb:{tmp_path}/db?map_size=256MiB")
        coll = await store.add_collection("c")
        await coll.add_index("v", lambda r: r["v"])

        def load() -> int:  # the blocking API, on the transaction's thread
            for i in range(20_000):
                coll.blocking.put({"v": i % 97, "pad": "x" * 50}, key=i)
            return i

        stall = await longest_stall(store.transact(load))
        n = await coll.indices["v"].count()
        await store.close()
        return stall, n

    stall, n = run(main)
    assert n == 20_000 and stall < 0.25


def test_concurrent_writer_engines_skip_the_turn() -> None:
    """With ``concurrent_writers`` the store takes no turn: each writer's
    thread goes straight to the engine (which serializes here, in threads)."""
    astore = slow_store(concurrent_writers=True)

    async def main() -> float:
        coll = await astore.add_collection("c")

        async def writer(i: int) -> None:
            async with astore.begin(write=True):
                await coll.put(i, key=i)
                await asyncio.sleep(0.01)

        stall = await longest_stall(*(writer(i) for i in range(5)))
        assert [k async for k in coll.keys()] == [(i,) for i in range(5)]
        # A second writer reaches the engine, whose own lock times out (not
        # the store's turn, which a turn-taking store would report).
        async with astore.begin(write=True):
            # A task of its own (a fresh context), not sharing the block.
            task = asyncio.create_task(
                _second_writer(astore), context=contextvars.Context()
            )
            with pytest.raises(TxnTimeout, match="writer lock"):
                await task
        await astore.close()
        return stall

    assert run(main) < 0.5


async def _second_writer(astore: acid.aio.Store) -> None:
    async with astore.begin(write=True, timeout=0.05):
        pass


def test_closing_the_store_while_tasks_run(astore: acid.aio.Store) -> None:
    async def main() -> None:
        coll = await astore.add_collection("c")
        await astore.transact(lambda: [coll.blocking.put(i, key=i) for i in range(600)])
        in_block = asyncio.Event()

        async def writer() -> None:
            async with astore.begin(write=True):
                await coll.put("w", key="w")
                in_block.set()
                await asyncio.sleep(0.05)
                await coll.put("w2", key="w2")

        async def waiter() -> None:
            await in_block.wait()
            async with astore.begin(write=True):
                await coll.put("late", key="late")

        async def reader() -> None:
            async for _ in coll.values():
                await asyncio.sleep(0.001)

        tasks = [asyncio.create_task(t) for t in (writer(), waiter(), reader())]
        await in_block.wait()
        await astore.close()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for result in results:
            assert isinstance(result, TxnError | EngineError), (results, result)
        with pytest.raises(EngineError, match="closed"):
            await coll.get(1)
        with pytest.raises(EngineError, match="closed"):
            async with astore.begin():
                pass
        with pytest.raises(EngineError, match="closed"):
            [_ async for _ in coll.keys()]

    before = set(threading.enumerate())
    run(main)
    for thread in set(threading.enumerate()) - before:  # none left running
        if thread.name.startswith("acid-aio"):
            thread.join(5)
            assert not thread.is_alive()


def test_tasks_gathered_in_a_block_share_its_transaction(
    astore: acid.aio.Store,
) -> None:
    async def main() -> None:
        coll = await astore.add_collection("c")
        await coll.add_index("n", lambda r: r["n"])
        async with astore.begin(write=True):
            keys = await asyncio.gather(*(coll.put({"n": i}, key=i) for i in range(50)))
            assert keys == [(i,) for i in range(50)]
            acid.abort()  # all fifty were one transaction
        assert [k async for k in coll.keys()] == []
        with pytest.raises(KeyError):
            async with astore.begin(write=True):
                await asyncio.gather(
                    *(coll.put({"n": i}, key=i) for i in range(20)),
                    coll.delete(999),
                    coll.get(1),
                )
                raise KeyError("after the gathered calls")
        async with astore.begin(write=True):
            await asyncio.gather(*(coll.put({"n": i}, key=i) for i in range(20)))
        assert await coll.indices["n"].count() == 20
        assert (await astore.check()).ok

    run(main)


def test_a_hundred_tasks_retrying_conflicts_lose_no_update() -> None:
    """Every 4th commit loses a conflict; transact retries it; the totals
    stay exact (the asyncio side of tests/layer/test_lost_updates.py)."""
    astore = slow_store(concurrent_writers=True)
    retries: list[int] = []

    async def main() -> tuple[dict[str, Any], int]:
        coll = await astore.add_collection("c")
        await coll.put({"n": 0}, key="shared")
        astore.engine.fail_every = 4

        async def bump(i: int) -> None:
            rec = await coll.get("shared")
            await asyncio.sleep(0)  # let the other tasks interleave
            rec["n"] += 1
            rec[f"t{i}"] = True
            await coll.put(rec, key="shared")
            await astore.count("hits")

        policy = acid.Backoff(base=0.0001, on_retry=lambda e, n: retries.append(n))
        await asyncio.gather(
            *(astore.transact(bump, i, retries=100, backoff=policy) for i in range(100))
        )
        rec = await coll.get("shared")
        hits = await astore.count("hits", 0)
        await astore.close()
        return rec, hits

    rec, hits = run(main)
    assert rec["n"] == 100 and hits == 101
    assert sorted(k for k in rec if k != "n") == sorted(f"t{i}" for i in range(100))
    assert len(retries) >= 100 // 4


@pytest.mark.writers_take_turns
def test_one_store_serves_one_loop_after_another(astore: acid.aio.Store) -> None:
    """The writers' turn is per event loop: asyncio.run twice, contended."""

    async def main(n: int) -> None:
        coll = await astore.add_collection("c")

        async def writer(i: int) -> None:
            async with astore.begin(write=True):
                await asyncio.sleep(0.001)
                await coll.put(i, key=(n, i))

        await asyncio.gather(*(writer(i) for i in range(10)))

    asyncio.run(main(1))
    asyncio.run(main(2))
    coll = astore.blocking.add_collection("c")
    assert len(list(coll.keys())) == 20


def test_cancelled_while_the_engine_lock_is_held_elsewhere(tmp_path: Path) -> None:
    """A blocking thread holds LMDB's writer lock; an aio writer waits for it
    on its thread and is cancelled there. When the lock comes free, the
    transaction it began is aborted and the next writer gets through."""
    url = f"lmdb:{tmp_path}/db"
    blocking = acid.open(url)
    coll = blocking.add_collection("c")
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with blocking.begin(write=True):
            coll.put("thread", key=1)
            held.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(10)
    astore = acid.aio.Store(blocking)

    async def main() -> None:
        acoll = astore["c"]

        async def writer() -> None:
            async with astore.begin(write=True):
                await acoll.put("cancelled", key=2)

        task = asyncio.create_task(writer())
        await asyncio.sleep(0.05)  # its thread waits in the engine's lock
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        release.set()
        async with astore.begin(write=True, timeout=5):
            await acoll.put("next", key=3)
        assert [v async for v in acoll.values()] == ["thread", "next"]
        await astore.close()

    try:
        run(main)
    finally:
        release.set()
        thread.join()


async def _cancel_storm(astore: acid.aio.Store, tasks: int, seed: int) -> int:
    """Writers keep "records == counter - 1"; a random half of all tasks is
    cancelled at a random moment. Returns how many writers committed."""
    rng = random.Random(seed)
    coll = await astore.add_collection("c")
    await coll.add_index("n", lambda r: r["n"])
    committed = 0

    async def writer(i: int) -> None:
        nonlocal committed
        aborts = rng.random() < 0.2
        async with astore.begin(write=True):
            n = await astore.count("n")
            await asyncio.sleep(rng.random() / 200)
            await coll.put({"n": n}, key=i)
            if aborts:
                acid.abort()  # leaves the block quietly
        committed += not aborts

    async def reader() -> None:
        async with astore.begin():
            n = await astore.count("n", 0)
            assert len([r async for r in coll.values()]) == n - 1

    running = [
        asyncio.create_task(writer(i) if rng.random() < 0.6 else reader())
        for i in range(tasks)
    ]
    for task in rng.sample(running, tasks // 2):
        await asyncio.sleep(rng.random() / 100)
        task.cancel()
    for result in await asyncio.gather(*running, return_exceptions=True):
        assert result is None or isinstance(result, asyncio.CancelledError), result
    n = await astore.count("n", 0)
    assert len([r async for r in coll.values()]) == n - 1
    # A task cancelled while its commit ran did not count it, but it landed.
    assert committed <= n - 1
    assert (await astore.check()).ok
    async with astore.begin(write=True, timeout=5):  # the turn is free
        pass
    return committed


@pytest.mark.writers_take_turns
@pytest.mark.parametrize("seed", [1, 2])
def test_random_cancellations_keep_every_invariant(
    astore: acid.aio.Store, seed: int
) -> None:
    run(lambda: _cancel_storm(astore, 60, seed))


@pytest.mark.stress
@pytest.mark.parametrize("seed", range(20))
def test_random_cancellations_stress(astore: acid.aio.Store, seed: int) -> None:
    # 150 tasks: about 60 readers open at once, within LMDB's 126 reader
    # slots (beyond them LMDB raises EngineError, as in threads).
    run(lambda: _cancel_storm(astore, 150, seed))
