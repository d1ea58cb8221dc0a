"""The memory engine's versions: pinned by reference, copied only then
(an unpinned version's dict is updated in place)."""

from __future__ import annotations

from acid.engines.skiplist import SkipListEngine


def _put(engine: SkipListEngine, key: bytes, value: bytes) -> None:
    with engine.begin(write=True) as txn:
        txn.put(key, value)


def test_unpinned_versions_are_updated_in_place() -> None:
    engine = SkipListEngine()
    _put(engine, b"a", b"1")
    data = id(engine._current.data)  # not the dict: that would pin it
    _put(engine, b"b", b"2")
    assert id(engine._current.data) == data  # no reader: no copy
    reader = engine.begin()
    _put(engine, b"c", b"3")
    assert id(engine._current.data) != data  # pinned: copied
    assert reader.get(b"c") is None and list(reader.iter(b"")) == [
        (b"a", b"1"),
        (b"b", b"2"),
    ]
    reader.abort()
    data = id(engine._current.data)  # not the dict: that would pin it
    _put(engine, b"d", b"4")
    assert id(engine._current.data) == data  # the reader ended: unpinned


def test_a_dropped_reader_or_scan_unpins() -> None:
    engine = SkipListEngine()
    _put(engine, b"a", b"1")
    engine.begin().get(b"a")  # never ended, dropped
    data = id(engine._current.data)  # not the dict: that would pin it
    _put(engine, b"b", b"2")
    assert id(engine._current.data) == data
    reader = engine.begin()
    scan = reader.iter(b"")  # pins the version by itself too
    reader.abort()
    _put(engine, b"c", b"3")
    assert id(engine._current.data) != data
    del scan
    data = id(engine._current.data)  # not the dict: that would pin it
    _put(engine, b"d", b"4")
    assert id(engine._current.data) == data


def test_a_scan_started_before_a_commit_keeps_its_snapshot() -> None:
    engine = SkipListEngine()
    for key in (b"a", b"b", b"c"):
        _put(engine, key, b"1")
    reader = engine.begin()
    scan = reader.iter(b"")
    assert next(scan) == (b"a", b"1")
    with engine.begin(write=True) as txn:
        txn.delete(b"b")
        txn.put(b"bb", b"2")
    assert list(scan) == [(b"b", b"1"), (b"c", b"1")]
    reader.abort()
