"""Online index builds: a new index filled in bounded transactions.

``coll.add_index(name, func, build="online")`` stores the index in state
``building`` (no entries yet) and declares it, so every write from then on
maintains it. A backfill then walks the records in write transactions of
``batch`` records; each writes the entries of its records and stores the
last record key done (the cursor) in the index's metadata, in the same
transaction. A build stopped anywhere (kill -9 included) resumes from its
cursor the next time ``add_index(..., build="online")`` or
``coll.build_index(name)`` runs. When the walk ends the state becomes
``ready``. Queries on a building index raise :class:`~acid.errors.IndexNotReady`.

Why concurrent writers keep it exact: every backfill batch is a write
transaction, so it is serialized with the writers; a writer that changed a
record before the backfill reached it has already written the record's
current entries (and deleted entries that were never written, a no-op), and
the backfill writes the same entries again (the same keys, the same values).

>>> import acid
>>> store = acid.open("skiplist:/")
>>> people = store.add_collection("people")
>>> for name in ["Ada", "Bob", "Cy"]:
...     _ = people.put({"name": name})
>>> seen = []
>>> idx = people.add_index("name", lambda p: p["name"], build="online",
...                        batch=2, progress=lambda done, total: seen.append(done))
>>> seen, idx.building, store.check().ok
([2, 3], False, True)
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from acid._fields import declared_paths
from acid._layout import KIND_INDEX
from acid.errors import NameInUse, SchemaError
from acid.index import index_meta

if TYPE_CHECKING:
    from acid.collection import Collection
    from acid.index import Index

__all__ = ["BUILDING", "READY", "add_index_online", "backfill"]

#: Seconds the backfill sleeps between batches, so foreground writers
#: waiting for the writer lock get it.
PAUSE = 0.001

BUILDING = "building"
READY = "ready"

#: ``progress(done, total)``: records walked so far, and how many there are
#: (``None`` when not counted).
Progress = Callable[[int, int | None], None]


def _check_batch(batch: Any) -> int:
    if type(batch) is not int or batch < 1:
        raise ValueError(f"batch must be a positive int, got {batch!r}")
    return batch


def add_index_online(
    coll: Collection,
    name: str,
    func: Callable[[Any], Any],
    *,
    batch: int = 1000,
    progress: Progress | None = None,
) -> Index:
    """What ``coll.add_index(name, func, build="online")`` does."""
    _check_batch(batch)
    if not isinstance(name, str) or not name:
        raise TypeError("an index name must be a non-empty str")
    if not callable(func):
        raise TypeError("the index function must be callable")
    store = coll.store
    store.schema.refresh()
    if name in coll.indices:
        raise NameInUse(f"collection {coll.name!r} already has an index {name!r}")

    def create() -> Index:
        store.schema.refresh()
        if not coll.attached:
            coll.add_index(name, func)  # raises the collection's SchemaError
        if store.get_meta(KIND_INDEX, (coll.name, name)) is None:
            store.schema.changed()
            info = {
                "name": name,
                "id": store.schema.allocate_id(),
                "collection": coll.name,
                "uid": os.urandom(8),
                "state": BUILDING,
                **index_meta(func),  # token and q-gram indexes: kind and q
            }
            paths = declared_paths(func)
            if paths:  # as add_index() stores them: for the planner and checks
                info["fields"] = tuple(paths)
            store.set_meta(KIND_INDEX, (coll.name, name), info)
        # Declared in the same transaction (made before, maybe building: it
        # resumes), so that no writer of this process ever finds it stored
        # but undeclared.
        return coll.add_index(name, func)

    idx = store.transact(create, retries=100)
    if idx.building:
        backfill(coll, idx, batch=batch, progress=progress)
    return idx


def _count(coll: Collection) -> int:
    def run() -> int:
        return sum(1 for _ in coll.store.iter_space(coll.id))

    return coll.store.in_txn(run)


def backfill(
    coll: Collection,
    idx: Index,
    *,
    batch: int = 1000,
    progress: Progress | None = None,
) -> Index:
    """Walk the records from the stored cursor and finish building ``idx``.

    Each step is its own write transaction; call it outside any
    transaction. Returns ``idx``, ready.
    """
    _check_batch(batch)
    store = coll.store
    if store.txn is not None:
        raise SchemaError(
            "an online index build runs its own bounded transactions; call it "
            "outside a transaction"
        )
    total = _count(coll) if progress is not None else None
    done = 0
    while True:
        # transact: on an engine with concurrent writers a batch that lost a
        # conflict runs again (it is idempotent: the cursor moves with it).
        walked, finished = store.transact(_step, coll, idx, batch, retries=100)
        done += walked
        if progress is not None:
            progress(done, total)
        if finished:
            idx.building = False
            return idx
        # Let a waiting writer in: the writer lock is not fair, and without
        # a pause this thread would take it again at once (see the bench).
        time.sleep(PAUSE)


def _step(coll: Collection, idx: Index, batch: int) -> tuple[int, bool]:
    """One bounded transaction of the backfill: (records walked, finished)."""
    store = coll.store
    info = store.get_meta(KIND_INDEX, (coll.name, idx.name))
    if info is None or (info["id"], info.get("uid")) != (idx.id, idx.uid):
        raise SchemaError(
            f"index {coll.name}.{idx.name} was dropped or replaced during its build"
        )
    if info.get("state") != BUILDING:
        return 0, True
    txn = store.active()
    prefix = coll.key_prefix
    cursor = info.get("cursor")
    start = prefix if cursor is None else prefix + cursor
    decode = coll.codec.decode
    walked = 0
    last = None
    for k, v in txn.iter(start):
        if not k.startswith(prefix):
            break
        rkey = k[len(prefix) :]
        if rkey == cursor:
            continue  # done by the previous step
        idx.update(txn, rkey, (), idx.entries(decode(v)))
        walked += 1
        last = rkey
        if walked >= batch:
            break
    if walked >= batch:
        info["cursor"] = last
    else:
        info.pop("cursor", None)
        info["state"] = READY
    store.set_meta(KIND_INDEX, (coll.name, idx.name), info)
    return walked, info["state"] == READY
