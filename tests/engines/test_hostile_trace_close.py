"""The trace engine after close(): later use must raise EngineError/TxnError."""

from __future__ import annotations

from pathlib import Path

import pytest

import acid
from acid.engines.skiplist import SkipListEngine
from acid.engines.trace import TraceEngine
from acid.errors import EngineError, TxnError


def test_traced_engine_begin_after_close_raises_engine_error(tmp_path: Path) -> None:
    engine = TraceEngine(SkipListEngine(), tmp_path / "t.log")
    engine.close()
    with pytest.raises(EngineError):  # not ValueError: I/O on a closed file
        engine.begin()
    with pytest.raises(EngineError):
        engine.begin(write=True)


def test_traced_txn_after_close_raises_txn_error(tmp_path: Path) -> None:
    engine = TraceEngine(SkipListEngine(), tmp_path / "t.log")
    txn = engine.begin(write=True)
    engine.close()
    with pytest.raises(TxnError):  # "its engine was closed", as untraced
        txn.get(b"k")


def test_traced_store_use_after_close_raises_acid_error(tmp_path: Path) -> None:
    store = acid.open("skiplist:/", trace_path=tmp_path / "t.log")
    coll = store.add_collection("c")
    coll.put({"a": 1})
    store.close()
    with pytest.raises(acid.errors.Error):
        coll.get(1)
    with pytest.raises(acid.errors.Error):
        coll.put({"a": 2})


def test_unwritable_text_file_as_trace_sink_is_config_or_type_error(
    tmp_path: Path,
) -> None:
    """A text file opened for reading: the promise is ConfigError/TypeError,
    not io.UnsupportedOperation."""
    (tmp_path / "ro.txt").write_text("")
    with open(tmp_path / "ro.txt") as sink:
        with pytest.raises((acid.errors.ConfigError, TypeError)):
            acid.open("skiplist:/", trace_path=sink)
