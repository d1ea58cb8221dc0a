"""Engines under ``acid.open``, used as a black box: two stores on one LMDB
path in one thread, and closing a store whose writer another thread left."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

import acid
from acid.errors import EngineError, TxnError, TxnTimeout
from acid.testing import close_within


def test_two_stores_on_one_lmdb_path_never_wait_for_themselves(tmp_path: Path) -> None:
    url = f"lmdb:{tmp_path}/db?sync=false&lock_timeout=3"
    one, two = acid.open(url), acid.open(url)
    try:
        assert one.engine.identity is two.engine.identity
        with one.begin(write=True):
            one.count("a")
            start = time.monotonic()
            try:
                two.count("b")  # joins the block once stores share it by identity
            except TxnError as exc:
                # Otherwise it must fail at once, saying what to do.
                assert not isinstance(exc, TxnTimeout)
                assert "already holds the writer lock" in str(exc)
            assert time.monotonic() - start < 1.0
        assert one.count("a", 0) == 2  # the block committed: not lost
    finally:
        one.close()
        two.close()


def test_store_close_with_a_writer_kept_by_an_error(tmp_path: Path) -> None:
    url = f"lmdb:{tmp_path}/db?sync=false"
    store = acid.open(url)
    store.count("n")
    kept: list[BaseException] = []

    def worker() -> None:
        txn = store.engine.begin(write=True)
        txn.put(b"\x00junk", b"x")
        try:
            store.engine.begin(write=True, timeout=0.1)
        except TxnError as exc:
            kept.append(exc)  # as a logger or excepthook would

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(timeout=10)
    assert len(kept) == 1
    close_within(store, 10)
    with pytest.raises(EngineError, match="closed"):
        store.count("n")
    again = acid.open(url)
    try:
        assert again.count("n") == 2
    finally:
        again.close()
