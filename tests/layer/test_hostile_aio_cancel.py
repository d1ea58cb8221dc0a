"""acid.aio cancelled at every point where a call waits on its thread: in
begin, in a get or put, in an iterator's batch, in commit; in a block, in
``transact``, in autocommit, and through ``asyncio.wait_for``. Whatever
the point, the transaction lands whole or not at all, the writers' turn
and the LMDB reader slots come back, and no thread is left behind."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hooked_engine import HookedEngine, HookedTxn

import acid
import acid.aio
from acid.engines import Txn

HANG = 20
POINTS = ["begin", "get", "put", "iter", "commit"]


class Gate:
    """Holds the engine's thread at one point until the test lets it go."""

    def __init__(self) -> None:
        self.point = ""
        self.entered = threading.Event()
        self.release = threading.Event()

    def at(self, point: str) -> None:
        if point == self.point and not self.entered.is_set():
            self.entered.set()
            assert self.release.wait(HANG), "the test never released the gate"


class GatedEngine(HookedEngine):
    def __init__(self, inner: Any, gate: Gate) -> None:
        super().__init__(inner)
        self.gate = gate

    def begin(self, write: bool = False, timeout: float | None = None) -> Txn:
        if write:
            self.gate.at("begin")
        return GatedTxn(self, self.inner.begin(write, timeout))


class GatedTxn(HookedTxn):
    _engine: GatedEngine

    def get(self, key: bytes) -> bytes | None:
        self._engine.gate.at("get")
        return super().get(key)

    def put(self, key: bytes, value: bytes) -> None:
        self._engine.gate.at("put")
        super().put(key, value)

    def iter(self, key: bytes, reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
        for row in super().iter(key, reverse):
            self._engine.gate.at("iter")
            yield row

    def commit(self) -> None:
        if self.write:
            self._engine.gate.at("commit")
        super().commit()


def aio_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("acid-aio")}


@pytest.mark.parametrize("mode", ["block", "transact", "autocommit", "wait_for"])
@pytest.mark.parametrize("point", POINTS)
def test_cancelled_at_every_point(tmp_path: Path, point: str, mode: str) -> None:
    before = aio_threads()
    gate = Gate()
    inner = acid.engines.from_url(f"lmdb:{tmp_path}/db?max_readers=3&lock_timeout=5")
    astore = acid.aio.Store(acid.Store(GatedEngine(inner, gate)))

    async def main() -> None:
        coll = await astore.add_collection("c")
        await coll.add_index("v", lambda r: r["v"])
        await coll.put({"v": 0}, key=0)
        gate.point = point

        async def body() -> None:
            await coll.get(0)
            await coll.put({"v": 1}, key=1)
            assert len([r async for r in coll.values()]) == 2
            await coll.put({"v": 2}, key=2)

        def plain() -> None:  # the same, on the transaction's thread
            coll.blocking.get(0)
            coll.blocking.put({"v": 1}, key=1)
            assert len(list(coll.blocking.values())) == 2
            coll.blocking.put({"v": 2}, key=2)

        async def block() -> None:
            async with astore.begin(write=True):
                await body()

        async def autocommit() -> None:  # every call a transaction of its own
            await coll.get(0)
            [r async for r in coll.values()]
            await coll.put({"v": 1}, key=1)

        work: Any = {
            "block": block,
            "transact": lambda: astore.transact(plain),
            "autocommit": autocommit,
            "wait_for": lambda: asyncio.wait_for(astore.transact(body), 60),
        }[mode]
        task = asyncio.ensure_future(work())
        entered = await asyncio.to_thread(gate.entered.wait, 5)
        if entered:
            task.cancel()
            await asyncio.sleep(0.01)
            gate.release.set()
        with pytest.raises(asyncio.CancelledError) if entered else _no_error():
            await task
        gate.point = ""
        async with astore.begin(write=True, timeout=1):  # the turn is free
            # (after a commit the cancelled task left running, if any)
            keys = [k async for k in coll.keys()]
            await coll.put({"v": 9}, key=9)
        if mode == "autocommit":
            # Calls that completed landed, one by one; the cancelled one (a
            # commit already under way lands too).
            assert keys in ([(0,)], [(0,), (1,)])
        elif point == "commit" and entered:
            assert keys == [(0,), (1,), (2,)]  # the commit ran to its end
        else:
            assert keys == [(0,)], keys  # nothing of the block landed
        # Every reader slot is back: three read blocks at once.
        gate_all = asyncio.Event()

        async def reader() -> int:
            async with astore.begin():
                await gate_all.wait()
                return len([k async for k in coll.keys()])

        readers = [asyncio.ensure_future(reader()) for _ in range(3)]
        await asyncio.sleep(0.05)
        gate_all.set()
        assert len(set(await asyncio.gather(*readers))) == 1
        assert (await astore.check()).ok
        await astore.close()

    try:
        asyncio.run(asyncio.wait_for(main(), HANG))
    finally:
        gate.release.set()
    for thread in aio_threads() - before:
        thread.join(5)
        assert not thread.is_alive()


class _no_error:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> bool:
        return False


@pytest.mark.parametrize("engine", ["skiplist", "lmdb"])
def test_schema_changes_cancelled_mid_block_land_whole_or_not_at_all(
    tmp_path: Path, engine: str
) -> None:
    """A block that adds a collection and an index, renames and drops, is
    cancelled at a random moment: afterwards the stored schema and the live
    objects show all of it or none of it."""
    import random

    url = "skiplist:/" if engine == "skiplist" else f"lmdb:{tmp_path}/db"
    rng = random.Random(7)

    async def main() -> None:
        astore = await acid.aio.open(url)
        base = await astore.add_collection("base")
        await base.put({"n": 1}, key=1)
        landed = 0
        for r in range(30):

            async def schema_block(r: int = r) -> None:
                async with astore.begin(write=True):
                    coll = await astore.add_collection(f"c{r}")
                    await coll.put({"v": r}, key=1)
                    await base.add_index(f"i{r}", lambda rec: rec["n"])
                    await asyncio.sleep(rng.random() / 500)
                    await astore.rename_collection(f"c{r}", f"d{r}")
                    await astore["base"].drop_index(f"i{r}")
                    await astore["base"].add_index(f"j{r}", lambda rec: rec["n"])

            task = asyncio.ensure_future(schema_block())
            await asyncio.sleep(rng.random() / 300)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            async with astore.begin(write=True, timeout=5):
                names = await astore.collections()
            indices = set(astore["base"].indices)
            assert f"c{r}" not in names and f"i{r}" not in indices
            with pytest.raises(KeyError):
                astore[f"c{r}"]
            if f"d{r}" in names:
                landed += 1
                assert f"j{r}" in indices
                assert await astore[f"d{r}"].get(1) == {"v": r}
                assert await astore["base"].indices[f"j{r}"].count() == 1
            else:
                assert f"j{r}" not in indices
                with pytest.raises(KeyError):
                    astore[f"d{r}"]
        assert (await astore.check()).ok
        await astore.close()

    asyncio.run(asyncio.wait_for(main(), HANG))
