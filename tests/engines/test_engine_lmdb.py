"""LMDB engine specifics: map full, parameters, shared environments."""

from __future__ import annotations

import gc
import os
from pathlib import Path

import pytest

from acid.engines import from_url
from acid.engines.lmdb import LMDBEngine
from acid.errors import ConfigError, EngineError, MapFullError, TxnError


def test_map_full_names_the_remedy(tmp_path: Path) -> None:
    engine = from_url(f"lmdb:{tmp_path}/db?map_size=256KiB&sync=false")
    with engine:
        txn = engine.begin(write=True)
        with pytest.raises(MapFullError) as info:
            for i in range(10_000):
                txn.put(b"%08d" % i, b"x" * 500)
        assert "map_size=" in str(info.value) and "larger" in str(info.value)
        with pytest.raises(TxnError):  # LMDB aborted it; it stays ended
            txn.put(b"k", b"v")
        txn.abort()
        with engine.begin(write=True, timeout=1) as again:  # lock released
            again.put(b"small", b"ok")


def test_parent_directories_are_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "db"
    with from_url(f"lmdb:{path}?sync=false") as engine:
        assert engine.persistent and engine.multi_process
    assert (path / "data.mdb").exists()


def test_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with from_url("lmdb:rel/db?map_size=1MiB") as engine:
        assert isinstance(engine, LMDBEngine)
        assert engine.path == str(tmp_path / "rel" / "db")


def test_same_path_twice_shares_the_environment(tmp_path: Path) -> None:
    url = f"lmdb:{tmp_path}/db?sync=false"
    one, two = from_url(url), from_url(url)
    with one.begin(write=True) as txn:
        txn.put(b"k", b"v")
    one.close()
    with two.begin() as txn:  # closing one must not break the other
        assert txn.get(b"k") == b"v"
    with pytest.raises(ConfigError, match="different parameters"):
        from_url(f"{url}&map_size=1GiB")
    two.close()


def test_readonly_refuses_writers(tmp_path: Path) -> None:
    with from_url(f"lmdb:{tmp_path}/db") as engine:
        with engine.begin(write=True) as txn:
            txn.put(b"k", b"v")
    with from_url(f"lmdb:{tmp_path}/db?readonly=true") as engine:
        assert engine.begin().get(b"k") == b"v"
        with pytest.raises(TxnError, match="readonly"):
            engine.begin(write=True)


def test_key_size_limits(tmp_path: Path) -> None:
    with from_url(f"lmdb:{tmp_path}/db?sync=false") as engine:
        with engine.begin(write=True) as txn:
            assert txn.get(b"") is None and txn.delete(b"") is False
            with pytest.raises(EngineError, match="1 to 511 bytes"):
                txn.put(b"x" * 512, b"v")


def test_abandoned_readers_give_back_their_slots(tmp_path: Path) -> None:
    with from_url(f"lmdb:{tmp_path}/db?max_readers=4&sync=false") as engine:
        for _ in range(50):
            txn = engine.begin()
            it = txn.iter(b"")
            del txn, it
        gc.collect()
        engine.begin().abort()


def test_not_a_database(tmp_path: Path) -> None:
    bad = tmp_path / "file"
    bad.write_bytes(b"not lmdb" * 1000)
    os.chmod(bad, 0o444)
    with pytest.raises(EngineError, match="cannot open"):
        from_url(f"lmdb:{bad}?subdir=false&readonly=true")
