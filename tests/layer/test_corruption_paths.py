"""Corrupt stored bytes outside record values: index entry values, counters,
metadata records. Every read path should raise CorruptionError."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import acid
from acid.errors import CorruptionError


def _entry_keys(store: acid.Store, space: int) -> list[bytes]:
    return store.in_txn(lambda: [k for k, _ in store.iter_space(space)])


INDEX_READS: dict[str, Callable[[acid.Index], Any]] = {
    "keys": lambda i: list(i.keys()),
    "items": lambda i: list(i.items()),
    "values": lambda i: list(i.values()),
    "get": lambda i: i.get(1, default="absent"),
    "find": lambda i: i.find(default="absent"),
}


@pytest.mark.parametrize("read", INDEX_READS.values(), ids=list(INDEX_READS))
def test_corrupt_index_entry_value(
    store: acid.Store, read: Callable[[acid.Index], Any]
) -> None:
    coll = store.add_collection("c")
    idx = coll.add_index("n", lambda r: r["n"])
    coll.put({"n": 1}, key=1)
    (entry,) = _entry_keys(store, idx.id)
    with store.begin(write=True) as txn:  # the entry's value is the record key
        txn.put(entry, b"\xff\xff")
    with pytest.raises(CorruptionError):
        read(idx)


COUNTER_VALUES = {"garbage": b"\xff", "empty": b"", "a str": None}


@pytest.mark.parametrize("bad", COUNTER_VALUES.values(), ids=list(COUNTER_VALUES))
def test_corrupt_counter_value(store: acid.Store, bad: bytes | None) -> None:
    coll = store.add_collection("c")
    coll.put({"n": 1})
    if bad is None:
        bad = acid.keylib.pack(("x",))
    key = acid.keylib.pack(("key:c",), acid.keylib.pack((2,), store.prefix))
    with store.begin(write=True) as txn:
        txn.put(key, bad)
    with pytest.raises(CorruptionError):
        store.count("key:c", 0)
    with pytest.raises(CorruptionError):
        coll.put({"n": 2})


def test_table_metadata_missing_fields(store: acid.Store) -> None:
    store.add_collection("c")
    store.set_meta("table", "c", {"name": "c"})  # parses, but no id/encoder
    with pytest.raises(CorruptionError):
        acid.Store(store.engine).add_collection("c")
