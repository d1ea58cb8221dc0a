"""asyncio tasks each have their own transaction (docs/guide.md)."""

from __future__ import annotations

import asyncio

import acid


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
