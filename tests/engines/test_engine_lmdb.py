"""LMDB engine specifics: map full, parameters, shared environments,
threads and closing."""

from __future__ import annotations

import gc
import os
import threading
import time
from pathlib import Path

import pytest

from acid.engines import from_url
from acid.engines.lmdb import LMDBEngine
from acid.errors import ConfigError, EngineError, MapFullError, TxnError, TxnTimeout


def _fill_until_full(txn: object) -> MapFullError:
    with pytest.raises(MapFullError) as info:
        for i in range(10_000):
            txn.put(b"%08d" % i, b"x" * 500)  # type: ignore[attr-defined]
    return info.value


def test_map_full_names_the_remedy(tmp_path: Path) -> None:
    engine = from_url(f"lmdb:{tmp_path}/db?map_size=256KiB&sync=false")
    with engine:
        txn = engine.begin(write=True)
        error = _fill_until_full(txn)
        assert "map_size=" in str(error) and "larger" in str(error)
        # LMDB failed the native transaction: every later call says so.
        with pytest.raises(MapFullError):
            txn.put(b"k", b"v")
        with pytest.raises(MapFullError):
            txn.get(b"00000001")
        txn.abort()
        assert txn.closed
        with engine.begin(write=True, timeout=1) as again:  # lock released
            again.put(b"small", b"ok")


def test_commit_after_map_full_raises_and_lands_nothing(tmp_path: Path) -> None:
    engine = from_url(f"lmdb:{tmp_path}/db?map_size=256KiB&sync=false")
    with engine:
        with engine.begin(write=True) as txn:
            txn.put(b"before", b"1")
        txn = engine.begin(write=True)
        txn.put(b"mine", b"1")
        _fill_until_full(txn)
        with pytest.raises(MapFullError, match="can only be aborted"):
            txn.commit()
        assert txn.closed  # it ended, aborted
        with pytest.raises(TxnError, match="aborted"):
            txn.commit()
        with engine.begin() as reader:
            assert list(reader.iter(b"")) == [(b"before", b"1")]
        with engine.begin(write=True, timeout=1) as again:  # lock released
            again.put(b"after", b"ok")


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


def test_two_engines_on_one_path_share_identity(tmp_path: Path) -> None:
    url = f"lmdb:{tmp_path}/db?sync=false"
    with from_url(url) as one, from_url(url) as two:
        assert one.identity is two.identity
        with from_url(f"lmdb:{tmp_path}/other?sync=false") as other:
            assert other.identity is not one.identity


def test_second_engine_on_one_path_same_thread_fails_at_once(tmp_path: Path) -> None:
    url = f"lmdb:{tmp_path}/db?sync=false&lock_timeout=2"
    with from_url(url) as one, from_url(url) as two:
        with one.begin(write=True) as txn:
            txn.put(b"k", b"1")
            start = time.monotonic()
            with pytest.raises(TxnError, match="already holds") as info:
                two.begin(write=True)
            assert time.monotonic() - start < 0.5
            assert not isinstance(info.value, TxnTimeout)
            assert "commit or abort" in str(info.value)
        with two.begin(write=True) as txn:  # once the first ended: fine
            assert txn.get(b"k") == b"1"


def test_other_threads_still_wait(tmp_path: Path) -> None:
    url = f"lmdb:{tmp_path}/db?sync=false"
    with from_url(url) as one, from_url(url) as two:
        errors: list[BaseException] = []

        def other() -> None:
            start = time.monotonic()
            try:
                two.begin(write=True, timeout=0.3)
            except TxnTimeout as exc:
                errors.append(exc)
                assert time.monotonic() - start >= 0.25

        with one.begin(write=True):
            thread = threading.Thread(target=other)
            thread.start()
            thread.join(timeout=10)
        assert len(errors) == 1


def test_commit_from_another_thread_is_refused(tmp_path: Path) -> None:
    with from_url(f"lmdb:{tmp_path}/db?sync=false") as engine:
        handed: list[object] = []
        done = threading.Event()

        def owner() -> None:
            txn = engine.begin(write=True)
            txn.put(b"k", b"v")
            handed.append(txn)
            done.wait(10)
            txn.commit()

        thread = threading.Thread(target=owner)
        thread.start()
        while not handed:
            time.sleep(0.01)
        txn = handed[0]
        with pytest.raises(TxnError, match="thread that began it"):
            txn.commit()  # type: ignore[attr-defined]
        assert not txn.closed  # type: ignore[attr-defined]  # still usable by its thread
        done.set()
        thread.join(timeout=10)
        assert engine.get(b"k") == b"v"


@pytest.mark.parametrize("owner_then", ["writes again", "ends"])
def test_close_while_a_live_thread_holds_a_writer(
    tmp_path: Path, owner_then: str
) -> None:
    # LMDB's writer lock belongs to the thread that began the transaction:
    # close() from elsewhere must neither wait for it nor break the lock.
    url = f"lmdb:{tmp_path}/db?sync=false"
    engine = from_url(url)
    ready, go = threading.Event(), threading.Event()
    seen: dict[str, object] = {}

    def owner() -> None:
        txn = engine.begin(write=True)
        txn.put(b"lost", b"1")
        ready.set()
        go.wait(10)
        try:
            txn.put(b"x", b"y")
        except TxnError as exc:
            seen["put"] = exc
        if owner_then == "writes again":
            with from_url(url) as again, again.begin(write=True, timeout=5) as t2:
                t2.put(b"owner", b"1")

    thread = threading.Thread(target=owner, daemon=True)
    thread.start()
    assert ready.wait(10)
    closer = threading.Thread(target=engine.close, daemon=True)
    closer.start()
    closer.join(timeout=10)
    assert not closer.is_alive(), "close() waited for another thread's writer"
    other = from_url(url)
    try:
        start = time.monotonic()
        with pytest.raises(TxnTimeout, match="thread that began"):
            other.begin(write=True, timeout=5)  # cannot help to wait
        assert time.monotonic() - start < 1
        go.set()
        thread.join(timeout=10)
        assert "closed" in str(seen["put"])
        writer = threading.Thread(target=_put, args=(other, b"main", b"1"), daemon=True)
        writer.start()
        writer.join(timeout=10)
        assert not writer.is_alive(), "LMDB's writer lock was never released"
        with other.begin() as txn:
            assert txn.get(b"lost") is None
            assert txn.get(b"main") == b"1"
            assert txn.get(b"owner") == (b"1" if owner_then == "writes again" else None)
    finally:
        other.close()


def _put(engine: object, key: bytes, value: bytes) -> None:
    with engine.begin(write=True, timeout=5) as txn:  # type: ignore[attr-defined]
        txn.put(key, value)


def test_use_after_close_raises_clearly(tmp_path: Path) -> None:
    engine = from_url(f"lmdb:{tmp_path}/db?sync=false")
    with engine.begin(write=True) as txn:
        txn.put(b"a", b"1")
        txn.put(b"b", b"2")
    reader = engine.begin()
    it = reader.iter(b"")
    assert next(it) == (b"a", b"1")
    writer = engine.begin(write=True)
    wit = writer.iter(b"")
    assert next(wit) == (b"a", b"1")
    engine.close()
    for call in (
        lambda: reader.get(b"a"),
        lambda: next(it),
        lambda: reader.iter(b""),
        lambda: writer.get(b"a"),
        lambda: writer.put(b"c", b"3"),
        lambda: next(wit),
        writer.commit,
    ):
        with pytest.raises(TxnError, match="closed|ended"):
            call()
    reader.abort()
    writer.abort()
    with pytest.raises(EngineError, match="closed"):
        engine.get(b"a")


def test_close_of_one_engine_ends_only_its_writer(tmp_path: Path) -> None:
    url = f"lmdb:{tmp_path}/db?sync=false"
    one, two = from_url(url), from_url(url)
    txn = two.begin(write=True)
    txn.put(b"k", b"v")
    one.close()
    txn.commit()  # two's writer is not one's to end
    assert two.get(b"k") == b"v"
    two.close()


def test_one_environment_whatever_the_spelling(tmp_path: Path) -> None:
    # LMDB forbids opening one environment twice in a process: every
    # spelling of the path (symlink, "..", a symlinked parent) must find the
    # open one, whose identity and writer lock it shares.
    (tmp_path / "real").mkdir()
    (tmp_path / "dir").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "link")
    os.symlink(tmp_path, tmp_path / "up")
    spellings = ["real", "link", "dir/../real", "up/real", "up/link"]
    engines = [from_url(f"lmdb:{tmp_path}/{s}?sync=false") for s in spellings]
    try:
        assert len({id(engine.identity) for engine in engines}) == 1
        with engines[0].begin(write=True):
            with pytest.raises(TxnError, match="already holds"):
                engines[1].begin(write=True)  # one writer lock
    finally:
        for engine in engines:
            engine.close()


def test_one_file_environment_through_a_symlink(tmp_path: Path) -> None:
    with from_url(f"lmdb:{tmp_path}/data.mdb?subdir=false&sync=false") as first:
        with first.begin(write=True) as txn:
            txn.put(b"k", b"v")
        os.symlink(tmp_path / "data.mdb", tmp_path / "alias.mdb")
        with from_url(f"lmdb:{tmp_path}/alias.mdb?subdir=false&sync=false") as second:
            assert second.identity is first.identity
            assert second.get(b"k") == b"v"


@pytest.mark.parametrize("subdir", [True, False])
def test_readonly_path_of_the_wrong_kind_is_config_error(
    tmp_path: Path, subdir: bool
) -> None:
    with from_url(f"lmdb:{tmp_path}/dir?sync=false"):
        pass  # a directory environment
    (tmp_path / "file").write_bytes(b"x")
    target = "dir" if not subdir else "file"
    url = f"lmdb:{tmp_path}/{target}?readonly=true&subdir={str(subdir).lower()}"
    with pytest.raises(ConfigError, match="subdir"):
        from_url(url)
    with pytest.raises(ConfigError, match="regular file"):
        from_url(f"lmdb:{tmp_path}/file/below?readonly=true")


def test_writer_freed_in_another_thread_is_orphaned_until_its_thread_ends(
    tmp_path: Path,
) -> None:
    # A write transaction dropped without ending is noticed by the writer
    # lock when it is freed. Freed here, while the thread that began it still
    # runs, it cannot be aborted (LMDB's lock is that thread's): writers get
    # TxnTimeout at once instead of waiting in C, until that thread ends.
    with from_url(f"lmdb:{tmp_path}/db?sync=false") as engine:
        handed: list[object] = []
        release = threading.Event()

        def owner() -> None:
            txn = engine.begin(write=True)
            txn.put(b"lost", b"1")
            handed.append(txn)
            del txn
            release.wait(10)

        thread = threading.Thread(target=owner, name="owner-thread")
        thread.start()
        while not handed:
            time.sleep(0.01)
        handed.clear()  # the last reference: freed in this thread
        gc.collect()
        start = time.monotonic()
        with pytest.raises(TxnTimeout, match="owner-thread"):
            engine.begin(write=True, timeout=5)
        assert time.monotonic() - start < 1
        release.set()
        thread.join(timeout=10)
        with engine.begin(write=True, timeout=5) as txn:  # reaped: the thread ended
            assert txn.get(b"lost") is None
            txn.put(b"k", b"v")
        assert engine.get(b"k") == b"v"


def test_writer_freed_in_its_own_thread_gives_the_lock_back_at_once(
    tmp_path: Path,
) -> None:
    with from_url(f"lmdb:{tmp_path}/db?sync=false") as engine:
        txn = engine.begin(write=True)
        txn.put(b"lost", b"1")
        del txn
        with engine.begin(write=True, timeout=0) as txn:
            assert txn.get(b"lost") is None
