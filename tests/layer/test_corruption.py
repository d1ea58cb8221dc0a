"""Stored bytes acid did not write raise CorruptionError from every read path."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import acid
from acid.errors import CorruptionError

BAD_VALUES = {
    "empty": b"",
    "plain garbage": b"\x00\xff\xfe{",
    "unknown compressor": b"\x63data",
    "bad zlib": b"\x01not zlib",
}

READS: dict[str, Callable[[acid.Collection], Any]] = {
    "get": lambda c: c.get(1),
    "get raw": lambda c: c.get(1, raw=True),
    "values": lambda c: list(c.values()),
    "items": lambda c: list(c.items()),
    "find": lambda c: c.find(),
    "index values": lambda c: list(c.indices["n"].values()),
    "index items": lambda c: list(c.indices["n"].items()),
    "index get": lambda c: c.indices["n"].get(1),
    "check": lambda c: c.store.check(),
    "update": lambda c: c.put({"n": 2}, key=1),
    "delete": lambda c: c.delete(1),
}


@pytest.mark.parametrize("value", BAD_VALUES.values(), ids=list(BAD_VALUES))
@pytest.mark.parametrize("read", READS.values(), ids=list(READS))
def test_corrupt_value_raises_corruption_error(
    store: acid.Store, value: bytes, read: Callable[[acid.Collection], Any]
) -> None:
    coll = store.add_collection("c", encoder="msgpack")
    coll.add_index("n", lambda r: r["n"])
    coll.put({"n": 1}, key=1)
    with store.begin(write=True) as txn:  # overwrite the record behind acid's back
        txn.put(coll.key_prefix + acid.keylib.pack((1,)), value)
    if value.startswith(b"\x00") and read is READS["get raw"]:
        assert read(coll) == value[1:]  # raw bytes are not decoded
        return
    with pytest.raises(CorruptionError):
        read(coll)
    assert list(coll.keys()) == [(1,)]
