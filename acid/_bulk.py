"""What a bulk write of a Collection changes, and how to put it back.

``Collection.put_many`` and ``delete_many`` are all or nothing: everything
that can fail without writing (encoders, key and index functions, reading
the old records) runs first, and if a write then fails half-way (the engine
refuses a key), :meth:`Batch.undo` puts back what the batch may have
changed before the error propagates.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from acid._layout import SEP

if TYPE_CHECKING:
    from acid.engines import Txn
    from acid.index import Entries

__all__ = ["Batch", "Change", "changes", "forget_entry"]

#: ``(index number, SEP + record key, record key, old entries, new entries)``
Change = tuple[int, bytes, bytes, "Entries", "Entries"]


class Batch:
    """What a bulk write changed, to put it back if it fails half-way.

    ``undo`` is idempotent, so it need not know how far the batch got:
    every record goes back to its old value (or away), every entry the
    batch may have added is deleted, every entry it may have deleted is
    written again, and ``uncount`` (if set) gives back the keys taken from
    a counter.
    """

    __slots__ = ("changed", "fulls", "olds", "txn", "uncount", "written")

    def __init__(self, txn: Txn, fulls: list[bytes], olds: list[bytes | None]) -> None:
        self.txn = txn
        #: The raw record keys the batch writes, and their values before.
        self.fulls = fulls
        self.olds = olds
        #: Index entries of records that were replaced or deleted.
        self.changed: list[Change] = []
        #: Pairs written where nothing was before (records and their entries).
        self.written: list[tuple[bytes, bytes]] = []
        self.uncount: Callable[[], Any] | None = None

    def undo(self) -> None:
        txn = self.txn
        for key, _ in self.written:
            forget_entry(txn, key)
        for full, old in zip(self.fulls, self.olds, strict=True):
            if old is None:
                txn.delete(full)
            else:
                txn.put(full, old)
        for _, tail, rkey, before, after in self.changed:
            for p in set(after) - set(before):
                forget_entry(txn, p + tail)
            for p in set(before) - set(after):
                txn.put(p + tail, rkey)
        if self.uncount is not None:
            self.uncount()


def forget_entry(txn: Txn, key: bytes) -> None:
    """Delete ``key``, written (or maybe refused) by a write being undone.

    A delete that fails is forgiven only if ``key`` is not there: the
    engine refused to write it. Otherwise the error propagates, and the
    caller spoils the transaction (the entry would stay).
    """
    try:
        txn.delete(key)
    except Exception:
        if txn.get(key) is not None:
            raise


def changes(
    news: list[list[Entries]],
    olds: list[list[Entries]],
    rkeys: list[bytes],
    last: Sequence[int],
) -> list[Change]:
    """The :data:`Change` of every index for every record that lands.

    ``news[i][j]`` are index ``i``'s entries of record ``j``; ``olds[i][n]``
    those of the stored record under the ``n``-th landing key (``olds`` is
    empty when nothing was stored); ``last`` the records that land (the last
    one under each key).
    """
    out: list[Change] = []
    for i, col in enumerate(news):
        old_col = olds[i] if olds else None
        for n, j in enumerate(last):
            rkey = rkeys[j]
            out.append((i, SEP + rkey, rkey, old_col[n] if old_col else (), col[j]))
    return out
