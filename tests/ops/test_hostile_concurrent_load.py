"""A load that fails removes the collections it created, and with them what
other writers committed into those collections meanwhile."""

from __future__ import annotations

import io

import pytest

import acid
from acid.cli.transfer import DumpError, DumpReader, Loader
from tests.ops.test_dump_load import dump_text


def test_a_failed_load_keeps_records_other_writers_committed() -> None:
    src = acid.open("skiplist:/")
    big = src.add_collection("big")
    with src.begin(write=True):
        for i in range(50):
            big.put({"i": i})
    text = dump_text(src).replace('"records":50', '"records":51')  # damaged

    dst = acid.open("skiplist:/")
    committed = []

    def other_writer(n: int) -> None:
        """Runs between the load's batches, as another process would."""
        if not committed:
            coll = dst.add_collection("big")
            coll.put({"mine": True}, key=("precious",))
            committed.append(coll.get(("precious",)))

    reader = DumpReader(io.StringIO(text))
    loader = Loader(dst, batch=10, progress=other_writer)
    with pytest.raises(DumpError, match="the end line counts 51 records"):
        loader.run(reader, lambda: reader.lineno)
    assert committed == [{"mine": True}]
    assert "big" in dst.collections()
    assert dst.add_collection("big").get(("precious",)) == {"mine": True}
