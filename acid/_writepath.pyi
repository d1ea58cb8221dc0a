"""Type stub for the C write path (acid/_writepath.c)."""

from typing import Any

def put(
    plan: tuple[Any, ...],
    txn: Any,
    rec: Any,
    key: Any,
    cell: list[int] | None,
    slot: list[tuple[Any, ...]],
) -> tuple[Any, ...]: ...
