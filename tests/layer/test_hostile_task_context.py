"""A task created inside a block copies the context, ended transaction
included; after the block it must work as if no transaction were active."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

import acid


def _run_in_child_task(store: acid.Store, op: Callable[[], Any]) -> Any:
    async def main() -> Any:
        async def child() -> Any:
            await asyncio.sleep(0)  # runs after the block below has ended
            return op()

        with store.begin(write=True):
            task = asyncio.ensure_future(child())
        return await asyncio.wait_for(task, 10)

    return asyncio.run(main())


@pytest.mark.parametrize("what", ["get", "items", "index_values", "keys"])
def test_reads_outside_block_in_task_made_inside_block(
    store: acid.Store, what: str
) -> None:
    coll = store.add_collection("people")
    by_age = coll.add_index("age", lambda r: r["age"])
    coll.put({"age": 36})
    ops: dict[str, Callable[[], Any]] = {
        "get": lambda: coll.get(1),
        "items": lambda: list(coll.items()),
        "index_values": lambda: list(by_age.values()),
        "keys": lambda: list(coll.keys()),
    }
    expected = {
        "get": {"age": 36},
        "items": [((1,), {"age": 36})],
        "index_values": [{"age": 36}],
        "keys": [(1,)],
    }
    # Today: TxnError "transaction already committed; begin a new one".
    assert _run_in_child_task(store, ops[what]) == expected[what]
