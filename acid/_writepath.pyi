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
def prepare_many(
    plan: tuple[Any, ...], recs: list[Any], keys: list[Any] | None, encode: Any
) -> tuple[
    list[tuple[Any, ...]], list[bytes], list[bytes], list[bytes], list[list[Any]]
]: ...
def new_pairs(
    fulls: list[bytes],
    values: list[bytes],
    news: list[list[Any]],
    rkeys: list[bytes],
    sep: bytes,
) -> list[tuple[bytes, bytes]]: ...

class PutBase:
    """Base class of acid.Collection: put without a Python frame."""

    _fast: Any
    _ctx_get: Any
    def put(self, rec: Any, key: Any = None, *, ttl: Any = None) -> tuple[Any, ...]: ...
    _getplan: Any
    def get(self, key: Any, default: Any = None, raw: bool = False) -> Any: ...
