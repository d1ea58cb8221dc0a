"""A query iterated across awaits reads one snapshot, while another task
commits; a task created inside a block does not reuse its ended txn."""

from __future__ import annotations

import asyncio

import acid


def test_a_query_iterated_across_awaits_keeps_its_snapshot(store: acid.Store) -> None:
    coll = store.add_collection("c")
    coll.add_index("n", acid.field("n"))
    coll.update([{"n": i} for i in range(10)])
    seen: list[int] = []

    async def reader() -> None:
        for rec in coll.query({"n": {"$gte": 0}}).order_by("n"):
            seen.append(rec["n"])
            await asyncio.sleep(0)  # the writer commits meanwhile

    async def writer() -> None:
        for i in range(10, 15):
            coll.put({"n": -i})
            coll.delete(i - 9)
            await asyncio.sleep(0)

    async def main() -> None:
        await asyncio.gather(reader(), writer())

    asyncio.run(main())
    assert seen == list(range(10))
    assert len(coll) == 10 and store.check().ok


def test_a_task_queries_after_its_parent_block_ended(store: acid.Store) -> None:
    coll = store.add_collection("c")
    coll.update([{"n": i} for i in range(3)])
    got: list[int] = []

    async def child() -> None:
        await asyncio.sleep(0)  # the parent's block has committed by now
        got.extend(r["n"] for r in coll.query({"n": {"$gt": 0}}))

    async def main() -> None:
        with store.begin(write=True):
            task = asyncio.create_task(child())
            coll.put({"n": 9})
        await task

    asyncio.run(main())
    assert sorted(got) == [1, 2, 9]
