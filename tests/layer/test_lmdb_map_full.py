"""A put that fills the LMDB map must say so (MapFullError), not hide it."""

from __future__ import annotations

from pathlib import Path

import pytest

import acid
from acid.errors import MapFullError


@pytest.mark.parametrize("indexed", [False, True], ids=["no index", "indexed"])
def test_map_full_inside_a_block_raises_map_full(tmp_path: Path, indexed: bool) -> None:
    store = acid.open(f"lmdb:{tmp_path}/db?map_size=1MiB")
    coll = store.add_collection("c")  # counter keys
    if indexed:
        coll.add_index("n", lambda r: r["n"])
    with pytest.raises(MapFullError):
        with store.begin(write=True):
            for i in range(10_000):
                coll.put({"n": i, "pad": "x" * 2000})
    store.close()


def test_a_block_whose_transaction_the_engine_ended_lands_nothing(
    tmp_path: Path,
) -> None:
    store = acid.open(f"lmdb:{tmp_path}/db?map_size=1MiB")
    coll = store.add_collection("c")
    with pytest.raises(acid.errors.Error), store.begin(write=True):
        coll.put({"n": 1}, key="before")
        with pytest.raises(MapFullError):
            coll.put({"blob": "x" * (4 << 20)}, key="big")
        with pytest.raises(acid.errors.Error):
            coll.get("before")  # not the committed state outside the block
        coll.put({"n": 2}, key="after")  # must not land on its own
    assert coll.get("before") is None and coll.get("after") is None
    assert [k for k in coll.keys()] == []
    store.close()
