"""acid.aio under load, held up: a thousand tasks at once, two event loops
in two threads and a blocking writer thread on one store, more read blocks
than LMDB has reader slots. Totals stay exact, snapshots consistent, and
every thread and reader slot comes back."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

import acid
import acid.aio
from acid.errors import EngineError

HANG = 120


def url_for(engine: str, tmp_path: Path, query: str = "") -> str:
    if engine == "skiplist":
        return "skiplist:/" + (f"?{query}" if query else "")
    return f"lmdb:{tmp_path}/db" + (f"?{query}" if query else "")


async def _thousand(astore: acid.aio.Store, tasks: int) -> None:
    coll = await astore.add_collection("c")
    await coll.add_index("n", lambda r: r["n"])

    async def bump(i: int) -> None:
        n = await astore.count("n")
        await asyncio.sleep(0)
        await coll.put({"n": n, "i": i}, key=i)

    async def reader() -> None:
        async with astore.begin():
            n = await astore.count("n", 0)
            assert len([k async for k in coll.keys()]) == n - 1

    work = [astore.transact(bump, i) for i in range(tasks)]
    work += [reader() for _ in range(tasks // 10)]
    await asyncio.wait_for(asyncio.gather(*work), HANG)
    assert await astore.count("n", 0) == tasks + 1
    assert sorted([r["n"] async for r in coll.values()]) == list(range(1, tasks + 1))
    assert (await astore.check()).ok
    await astore.close()


def test_a_thousand_concurrent_transactions() -> None:
    before = {t for t in threading.enumerate() if t.name.startswith("acid-aio")}
    asyncio.run(_thousand(acid.aio.Store(acid.open("skiplist:/")), 1000))
    for thread in {t for t in threading.enumerate() if t.name.startswith("acid-aio")}:
        if thread not in before:
            thread.join(5)
            assert not thread.is_alive()


@pytest.mark.stress
def test_a_thousand_concurrent_transactions_on_lmdb(tmp_path: Path) -> None:
    store = acid.open(f"lmdb:{tmp_path}/db")
    asyncio.run(_thousand(acid.aio.Store(store), 1000))


@pytest.mark.parametrize("engine", ["skiplist", "lmdb"])
def test_two_loops_in_two_threads_and_a_blocking_writer(
    engine: str, tmp_path: Path
) -> None:
    """Each loop has its own writers' turn; the engine's writer lock
    serializes them with each other and with a blocking thread. Every
    read-modify-write lands: no lost update."""
    blocking = acid.open(url_for(engine, tmp_path))
    astore = acid.aio.Store(blocking)
    coll = blocking.add_collection("c")
    coll.put({"n": 0}, key="shared")
    errors: list[BaseException] = []

    def loop_thread() -> None:
        async def main() -> None:
            acoll = astore["c"]

            async def bump() -> None:
                rec = await acoll.get("shared")
                await asyncio.sleep(0)
                rec["n"] += 1
                await acoll.put(rec, key="shared")

            await asyncio.gather(*(astore.transact(bump) for _ in range(100)))

        try:
            asyncio.run(asyncio.wait_for(main(), HANG))
        except BaseException as exc:
            errors.append(exc)

    def blocking_writer() -> None:
        try:
            for _ in range(20):
                with blocking.begin(write=True):
                    rec: Any = coll.get("shared")
                    rec["n"] += 1
                    coll.put(rec, key="shared")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=loop_thread) for _ in range(2)]
    threads.append(threading.Thread(target=blocking_writer))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(HANG)
        assert not thread.is_alive()
    assert errors == []
    assert coll.get("shared") == {"n": 220}
    asyncio.run(astore.close())


def test_more_read_blocks_than_reader_slots(tmp_path: Path) -> None:
    """Beyond ``max_readers`` a read block raises a clear EngineError (as
    with threads); the others finish, and every slot comes back."""
    blocking = acid.open(f"lmdb:{tmp_path}/db?max_readers=16")
    coll = blocking.add_collection("c")
    with blocking.begin(write=True):
        for i in range(600):
            coll.put(i, key=i)
    astore = acid.aio.Store(blocking)

    async def main() -> None:
        gate = asyncio.Event()

        async def reader() -> int:
            async with astore.begin():
                await gate.wait()
                return len([k async for k in astore["c"].keys()])

        async def scanner() -> int:
            n = 0
            async for _ in astore["c"].values():
                n += 1
                if n == 1:
                    await gate.wait()
            return n

        tasks = [
            asyncio.ensure_future(reader() if i % 2 else scanner()) for i in range(40)
        ]
        await asyncio.sleep(0.2)
        gate.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        full = [r for r in results if isinstance(r, EngineError)]
        assert all("reader slots" in str(e) for e in full)
        assert set(results) - set(full) == {600} and full
        # All slots back: sixteen blocks open at once.
        again = asyncio.Event()

        async def hold() -> int:
            async with astore.begin():
                await again.wait()
                return await astore["c"].get(5)

        holders = [asyncio.ensure_future(hold()) for _ in range(16)]
        await asyncio.sleep(0.1)
        again.set()
        assert await asyncio.gather(*holders) == [5] * 16
        await astore.close()

    asyncio.run(asyncio.wait_for(main(), HANG))
