"""Type stub for the C write path (acid/_writepath.c)."""

from typing import Any

#: The MemoryError put raises when it failed after writing and could not
#: record how to undo it: the caller must spoil the transaction.
LOST: MemoryError

def put(
    plan: tuple[Any, ...],
    txn: Any,
    rec: Any,
    key: Any,
    cell: list[int] | None,
    slot: list[tuple[Any, ...]],
) -> tuple[Any, ...]: ...
