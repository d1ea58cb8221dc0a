"""Engine parameters: every bad value is a ConfigError naming it, and a failed
open leaves nothing behind; lock timeouts accept inf and refuse nan."""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from acid.engines import Engine, from_url
from acid.engines.lmdb import LMDBEngine
from acid.engines.skiplist import SkipListEngine
from acid.errors import ConfigError

ENGINES = ["skiplist", "lmdb", "leveldb"]


def _url(scheme: str, path: Path, query: str = "") -> str:
    if scheme == "leveldb":
        pytest.importorskip("plyvel")
    base = "skiplist:/" if scheme == "skiplist" else f"{scheme}:{path}/db"
    sep = "?" if scheme == "skiplist" else "?sync=false&"
    return base + (sep + query if query else "")


def _construct(scheme: str, path: Path, **kwargs: Any) -> Engine:
    if scheme == "skiplist":
        return SkipListEngine(**kwargs)
    if scheme == "lmdb":
        return LMDBEngine(str(path / "db"), **kwargs)
    leveldb = pytest.importorskip("acid.engines.leveldb")
    engine: Engine = leveldb.LevelDBEngine(str(path / "db"), **kwargs)
    return engine


def _second_writer_waits(engine: Engine, timeout: float | None = None) -> None:
    """A second writer (another thread) waits until the first commits."""
    first = engine.begin(write=True)
    first.put(b"k", b"1")
    got: list[object] = []

    def second() -> None:
        try:
            with engine.begin(write=True, timeout=timeout) as txn:
                got.append(txn.get(b"k"))
        except Exception as exc:
            got.append(exc)

    thread = threading.Thread(target=second, daemon=True)
    thread.start()
    time.sleep(0.2)
    assert got == [], got  # still waiting, not failed (OverflowError before)
    first.commit()
    thread.join(timeout=10)
    assert got == [b"1"]


# -- lock timeouts ----------------------------------------------------------


@pytest.mark.parametrize("scheme", ENGINES)
@pytest.mark.parametrize("text", ["inf", "1e300"])
def test_url_lock_timeout_without_limit(tmp_path: Path, scheme: str, text: str) -> None:
    with from_url(_url(scheme, tmp_path, f"lock_timeout={text}")) as engine:
        assert engine.lock_timeout == float(text)  # type: ignore[attr-defined]
        _second_writer_waits(engine)


@pytest.mark.parametrize("scheme", ENGINES)
def test_constructor_lock_timeout_inf(tmp_path: Path, scheme: str) -> None:
    with _construct(scheme, tmp_path, lock_timeout=math.inf) as engine:
        _second_writer_waits(engine)


@pytest.mark.parametrize("scheme", ENGINES)
def test_begin_timeout_inf(tmp_path: Path, scheme: str) -> None:
    with from_url(_url(scheme, tmp_path)) as engine:
        _second_writer_waits(engine, timeout=math.inf)


@pytest.mark.parametrize("scheme", ENGINES)
@pytest.mark.parametrize("text", ["nan", "-1", "-inf", "soon"])
def test_url_lock_timeout_refused(tmp_path: Path, scheme: str, text: str) -> None:
    with pytest.raises(
        ConfigError, match=f"bad value '{text}' for parameter 'lock_timeout'"
    ):
        from_url(_url(scheme, tmp_path, f"lock_timeout={text}"))
    assert not (tmp_path / "db").exists()


@pytest.mark.parametrize("scheme", ENGINES)
@pytest.mark.parametrize("bad", [math.nan, -1.0, -math.inf, "30", True])
def test_constructor_lock_timeout_refused(
    tmp_path: Path, scheme: str, bad: Any
) -> None:
    with pytest.raises(
        ConfigError, match=f"bad value {bad!r} for parameter 'lock_timeout'"
    ):
        _construct(scheme, tmp_path, lock_timeout=bad)


# -- other parameters ---------------------------------------------------------

LMDB_BAD = [
    ("max_readers", -5),
    ("max_readers", 0),
    ("max_readers", 2**31),
    ("max_dbs", -1),
    ("max_dbs", 2**32),
    ("map_size", 0),
    ("map_size", -1),
    ("map_size", 2**64),
    ("sync", "yes"),
    ("readonly", 1),
    ("subdir", None),
]


@pytest.mark.parametrize(("name", "bad"), LMDB_BAD)
def test_lmdb_bad_values(tmp_path: Path, name: str, bad: Any) -> None:
    with pytest.raises(ConfigError, match=f"bad value {bad!r} for parameter {name!r}"):
        LMDBEngine(str(tmp_path / "db"), **{name: bad})
    assert not (tmp_path / "db").exists()  # checked before anything is made
    with LMDBEngine(str(tmp_path / "db"), map_size=2**20):  # nothing left open
        pass


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("max_readers=-5", "bad value '-5' .*expected a number from 1 to"),
        ("max_readers=0", "expected a number from 1 to 2147483647"),
        ("map_size=0", "expected a size from 1 to"),
        ("max_dbs=99999999999", "expected a number from 0 to 2147483647"),
    ],
)
def test_lmdb_bad_url_values(tmp_path: Path, query: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        from_url(_url("lmdb", tmp_path, query))


def test_lmdb_map_size_beyond_the_address_space(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="map_size"):
        LMDBEngine(str(tmp_path / "db"), map_size=2**62)
    with LMDBEngine(str(tmp_path / "db"), map_size=2**20) as engine:  # not left open
        with engine.begin(write=True) as txn:
            txn.put(b"k", b"v")


LEVELDB_BAD = [
    ("block_cache", -1),
    ("write_buffer", 0),
    ("bloom_bits", -1),
    ("bloom_bits", 2**31),
    ("max_open_files", 0),
    ("max_open_files", -1),
    ("max_open_files", 2**31),
    ("compression", "zip"),
    ("sync", "false"),
]


@pytest.mark.parametrize(("name", "bad"), LEVELDB_BAD)
def test_leveldb_bad_values(tmp_path: Path, name: str, bad: Any) -> None:
    with pytest.raises(ConfigError, match=f"bad value {bad!r} for parameter {name!r}"):
        _construct("leveldb", tmp_path, **{name: bad})
    assert not (tmp_path / "db").exists()
    with _construct("leveldb", tmp_path):  # nothing left open or locked
        pass


@pytest.mark.parametrize("scheme", ["lmdb", "leveldb"])
def test_nul_byte_in_path(tmp_path: Path, scheme: str) -> None:
    url = _url(scheme, tmp_path).replace("/db", "/d\x00b")
    with pytest.raises(ConfigError, match="NUL byte"):
        from_url(url)
    assert list(tmp_path.iterdir()) == []  # the C library never saw "…/d"


@pytest.mark.parametrize("scheme", ["lmdb", "leveldb"])
def test_path_under_a_regular_file(tmp_path: Path, scheme: str) -> None:
    (tmp_path / "file").write_bytes(b"x")
    url = _url(scheme, tmp_path).replace("/db", "/file/db")
    with pytest.raises(ConfigError, match="exists and is not a directory"):
        from_url(url)


@pytest.mark.parametrize("scheme", ["lmdb", "leveldb"])
def test_path_must_be_text(tmp_path: Path, scheme: str) -> None:
    with pytest.raises(ConfigError, match="path must be a str"):
        if scheme == "lmdb":
            LMDBEngine(b"/tmp/x")  # type: ignore[arg-type]
        else:
            pytest.importorskip("acid.engines.leveldb").LevelDBEngine(b"/tmp/x")
    with LMDBEngine(tmp_path / "db") as engine:  # type: ignore[arg-type]  # PathLike is fine
        assert engine.path == str(tmp_path / "db")


def test_an_int_beyond_any_float_waits_without_limit() -> None:
    from acid.engines import check_timeout, from_url

    assert check_timeout(2**2000) == float("inf")
    engine = from_url("skiplist:/")
    with engine.begin(write=True, timeout=2**2000) as txn:
        txn.put(b"k", b"v")
    assert engine.begin(timeout=2**2000).get(b"k") == b"v"
