"""asyncio tasks each have their own transaction (docs/guide.md)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

import acid
from acid.testing import longest_stall


def test_task_created_inside_a_block_can_begin_its_own_later(
    store: acid.Store,
) -> None:
    coll = store.add_collection("c")

    async def child() -> None:
        await asyncio.sleep(0)  # runs after the parent's block committed
        with store.begin(write=True):
            coll.put({"n": 2}, key=2)

    async def main() -> None:
        with store.begin(write=True):
            task = asyncio.create_task(child())
            coll.put({"n": 1}, key=1)
        await task

    asyncio.run(main())
    assert list(coll.keys()) == [(1,), (2,)]


def test_two_tasks_whose_blocks_span_an_await_never_freeze_the_loop(
    open_store: Any,
) -> None:
    store = open_store()
    if store.engine.concurrent_writers:
        pytest.skip("writers run concurrently on this engine: none waits for another")
    coll = store.add_collection("c")
    coll.add_index("n", lambda r: r["n"])
    out: dict[str, Any] = {}

    async def writer(n: int, delay: float) -> None:
        await asyncio.sleep(delay)
        try:
            with store.begin(write=True, timeout=5):
                coll.put({"n": n}, key=n)
                await asyncio.sleep(0.2)  # the block spans an await
        except acid.errors.TxnError as exc:
            out[n] = exc

    async def main() -> None:
        out["stall"] = await longest_stall(writer(1, 0), writer(2, 0.05))

    started = time.monotonic()
    asyncio.run(main())
    assert time.monotonic() - started < 2  # not the 5 s lock timeout
    assert out["stall"] < 0.5
    assert isinstance(out[2], acid.errors.TxnError)
    assert "asyncio.to_thread" in str(out[2])
    assert 1 not in out
    assert list(coll.keys()) == [(1,)]
    assert store.check().ok

    async def in_threads() -> None:  # the documented way out
        def write(n: int) -> None:
            with store.begin(write=True):
                coll.put({"n": n}, key=n)

        await asyncio.gather(*(asyncio.to_thread(write, n) for n in (3, 4, 5)))

    asyncio.run(in_threads())
    assert list(coll.keys()) == [(1,), (3,), (4,), (5,)]


def test_task_writes_after_the_block_it_inherited_ended(store: acid.Store) -> None:
    auto = store.add_collection("auto")  # counter keys: the counter must not skip
    coll = store.add_collection("c")
    coll.add_index("n", lambda r: r["n"])

    async def child() -> None:
        await asyncio.sleep(0)  # runs after the parent's block committed
        coll.put({"n": 2}, key=2)  # this object last wrote in the ended txn
        assert coll.delete(1)
        auto.put({"n": 3})

    async def main() -> None:
        with store.begin(write=True):
            task = asyncio.create_task(child())
            coll.put({"n": 1}, key=1)
            auto.put({"n": 1})
        await task

    asyncio.run(main())
    assert list(coll.keys()) == [(2,)]
    assert list(auto.keys()) == [(1,), (2,)]
    assert store.check().ok
