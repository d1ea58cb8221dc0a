"""Blob stores: simplekv's documented behaviour, streaming, transactions."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import acid
from acid.blobs import STAGE_CHUNKS, VALID_KEY_RE, BlobStore
from acid.errors import SchemaError
from acid.testing import FakeClock as Clock

CS = 1024  # small chunks, so that tests cross many chunk boundaries


@pytest.fixture
def clock() -> Clock:
    return Clock(1000.0)


@pytest.fixture
def bstore(open_store: Callable[..., acid.Store], clock: Clock) -> acid.Store:
    return open_store(clock=clock)


@pytest.fixture
def blobs(bstore: acid.Store) -> BlobStore:
    return bstore.blobs("files", chunk_size=CS)


def data_of(n: int, seed: int = 0) -> bytes:
    return bytes((i * 7 + seed + i // 251) % 256 for i in range(n))


# -- simplekv's core API -----------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, CS - 1, CS, CS + 1, 3 * CS, 3 * CS + 17])
def test_put_get_round_trip(blobs: BlobStore, n: int) -> None:
    data = data_of(n)
    assert blobs.put("k", data) == "k"
    assert blobs.get("k") == data
    assert blobs.open("k").read() == data
    out = io.BytesIO()
    assert blobs.get_file("k", out) == "k"
    assert out.getvalue() == data


def test_put_replaces_and_delete(blobs: BlobStore, bstore: acid.Store) -> None:
    blobs.put("k", data_of(5 * CS))
    blobs.put("k", b"short")
    assert blobs.get("k") == b"short"
    blobs.delete("k")
    blobs.delete("k")  # a missing key is no error
    assert "k" not in blobs
    with pytest.raises(KeyError):
        blobs.get("k")
    # Nothing left behind: the old generation's chunks went with it.
    with bstore.begin():
        assert list(bstore.iter_space(blobs.id)) == []


def test_missing_keys_raise_key_error(blobs: BlobStore, tmp_path: Path) -> None:
    for call in (blobs.get, blobs.open, lambda k: blobs.get_file(k, io.BytesIO())):
        with pytest.raises(KeyError):
            call("absent")
    with pytest.raises(KeyError):
        blobs.copy("absent", "dest")
    target = tmp_path / "out.bin"
    with pytest.raises(KeyError):
        blobs.get_file("absent", str(target))
    assert not target.exists()  # not created for a missing key


@pytest.mark.parametrize(
    "key", ["", "a b", "ä", "a/b", "a*", "a\n", "x" * 251, 5, b"bytes", None]
)
def test_invalid_keys_raise_value_error(blobs: BlobStore, key: Any) -> None:
    for call in (
        lambda: blobs.put(key, b"x"),
        lambda: blobs.get(key),
        lambda: blobs.open(key),
        lambda: blobs.delete(key),
        lambda: key in blobs,
        lambda: blobs.put_file(key, io.BytesIO(b"x")),
        lambda: blobs.get_file(key, io.BytesIO()),
        lambda: blobs.copy("ok", key),
    ):
        with pytest.raises(ValueError):
            call()
    assert blobs.keys() == []


def test_valid_keys_are_simplekvs() -> None:
    allowed = "!\"`#$%&'()+,-.<=>?@[]^_{}~"
    assert VALID_KEY_RE.match("azAZ09" + allowed)
    for ch in " /\\*:;|\t":
        assert not VALID_KEY_RE.match("a" + ch)


def test_every_valid_punctuation_round_trips(blobs: BlobStore) -> None:
    key = "!\"`#$%&'()+,-.<=>?@[]^_{}~x" + "y" * 200
    blobs.put(key, b"v")
    assert blobs.get(key) == b"v"
    assert blobs.keys() == [key]


def test_data_must_be_bytes(blobs: BlobStore) -> None:
    with pytest.raises(TypeError):
        blobs.put("k", "text")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        blobs.put("k", 5)  # type: ignore[arg-type]
    assert blobs.put("k", bytearray(b"ab")) == "k"
    assert blobs.put("m", memoryview(b"cd")) == "m"
    assert blobs.get("k") + blobs.get("m") == b"abcd"


def test_keys_prefix_iter_contains(blobs: BlobStore) -> None:
    for k in ["b1", "a", "b2", "c", "b"]:
        blobs.put(k, k.encode())
    assert sorted(blobs.keys()) == ["a", "b", "b1", "b2", "c"]
    assert sorted(blobs.keys("b")) == ["b", "b1", "b2"]
    assert sorted(blobs.iter_keys(prefix="b1")) == ["b1"]
    assert sorted(blobs) == ["a", "b", "b1", "b2", "c"]
    assert "b2" in blobs and "d" not in blobs
    assert blobs.keys("zz") == []


def test_put_file_and_get_file_with_paths(blobs: BlobStore, tmp_path: Path) -> None:
    src = tmp_path / "in.bin"
    data = data_of(4 * CS + 5)
    src.write_bytes(data)
    assert blobs.put_file("f", str(src)) == "f"
    assert src.exists()  # left in place
    assert blobs.put_file("g", src) == "g"  # a PathLike too
    dst = tmp_path / "out.bin"
    blobs.get_file("f", str(dst))
    assert dst.read_bytes() == data
    with open(src, "rb") as f:
        blobs.put_file("h", f)
    assert blobs.get("h") == blobs.get("g") == data


class Trickle(io.RawIOBase):
    """A file that returns at most 100 bytes per read (like a socket)."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = 100 if n < 0 else min(n, 100)
        out = self.data[self.pos : self.pos + n]
        self.pos += len(out)
        return out


def test_short_reads_still_make_whole_chunks(blobs: BlobStore) -> None:
    data = data_of(3 * CS + 333)
    blobs.put_file("t", Trickle(data))
    f = blobs.open("t")
    f.seek(CS + 50)
    assert f.read(CS) == data[CS + 50 : 2 * CS + 50]
    assert blobs.get("t") == data


def test_put_file_rejects_non_files(blobs: BlobStore) -> None:
    with pytest.raises(TypeError):
        blobs.put_file("k", 42)
    with pytest.raises(TypeError):
        blobs.put_file("k", io.StringIO("text"))
    with pytest.raises(TypeError):
        blobs.get_file("k", 42)
    assert "k" not in blobs


def test_copy(blobs: BlobStore) -> None:
    data = data_of(2 * CS + 1)
    blobs.put("src", data)
    blobs.put("dst", b"old")
    assert blobs.copy("src", "dst") == "dst"
    assert blobs.get("dst") == data
    blobs.put("src", b"changed")  # independent copies
    assert blobs.get("dst") == data
    assert blobs.copy("src", "src") == "src"
    assert blobs.get("src") == b"changed"


# -- open(): a seekable file over one snapshot --------------------------------


def test_open_seek_and_read(blobs: BlobStore) -> None:
    data = data_of(5 * CS + 3)
    blobs.put("k", data)
    with blobs.open("k") as f:
        assert f.readable() and f.seekable() and not f.writable()
        assert f.read(10) == data[:10]
        assert f.tell() == 10
        f.seek(-7, io.SEEK_END)
        assert f.read() == data[-7:]
        assert f.read(5) == b""
        f.seek(CS - 2)
        assert f.read(4) == data[CS - 2 : CS + 2]
        f.seek(3, io.SEEK_CUR)
        assert f.tell() == CS + 5
        f.seek(10 * CS)
        assert f.read(1) == b""
        with pytest.raises(ValueError):
            f.seek(-1)
        with pytest.raises(ValueError):
            f.seek(0, 7)
        buf = bytearray(CS * 2)
        f.seek(0)
        assert f.readinto(buf) == 2 * CS
        assert bytes(buf) == data[: 2 * CS]
    with pytest.raises(ValueError):
        f.read(1)  # closed


def test_open_reader_keeps_its_snapshot(blobs: BlobStore) -> None:
    old = data_of(4 * CS, seed=1)
    blobs.put("k", old)
    f = blobs.open("k")
    assert f.read(CS) == old[:CS]
    blobs.put("k", data_of(4 * CS, seed=2))  # committed while f is open
    assert f.read() == old[CS:]
    f.close()
    g = blobs.open("k")
    blobs.delete("k")
    assert g.read() == data_of(4 * CS, seed=2)
    g.close()


def test_open_inside_a_block_ends_with_it(bstore: acid.Store, blobs: BlobStore) -> None:
    blobs.put("k", data_of(3 * CS))
    with bstore.begin():
        f = blobs.open("k")
        assert f.read(5) == data_of(5)
    with pytest.raises(ValueError, match="ended"):
        f.read(5)
    f.close()


def test_open_sees_the_blocks_own_write(bstore: acid.Store, blobs: BlobStore) -> None:
    with bstore.begin(write=True):
        blobs.put("k", b"fresh")
        assert blobs.open("k").read() == b"fresh"


# -- transactions ------------------------------------------------------------


def test_blob_commits_and_rolls_back_with_records(
    bstore: acid.Store, blobs: BlobStore
) -> None:
    coll = bstore.add_collection("meta")
    blobs.put("k", b"before")
    with bstore.begin(write=True):
        coll.put({"file": "k"}, key=1)
        blobs.put("k", data_of(3 * CS))
        blobs.put("new", b"n")
        acid.abort()
    assert coll.get(1) is None
    assert blobs.get("k") == b"before"
    assert "new" not in blobs
    with bstore.begin(write=True):
        coll.put({"file": "k"}, key=1)
        blobs.put("k", b"after")
    assert coll.get(1) == {"file": "k"}
    assert blobs.get("k") == b"after"


class Exploding(io.RawIOBase):
    def __init__(self, data: bytes, fail_at: int) -> None:
        self.data, self.pos, self.fail_at = data, 0, fail_at

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self.pos >= self.fail_at:
            raise OSError("disk on fire")
        out = self.data[self.pos : self.pos + n]
        self.pos += len(out)
        return out


def test_failing_stream_keeps_the_old_blob(
    bstore: acid.Store, blobs: BlobStore
) -> None:
    old = data_of(2 * CS, seed=3)
    blobs.put("k", old)
    with pytest.raises(OSError, match="fire"):
        blobs.put_file("k", Exploding(data_of(10 * CS), 4 * CS))
    assert blobs.get("k") == old
    coll = bstore.add_collection("c")
    # Inside a block: the caller may catch the error and commit the rest.
    with bstore.begin(write=True):
        coll.put("kept", key=1)
        with pytest.raises(OSError):
            blobs.put_file("k", Exploding(data_of(10 * CS), 5 * CS))
        with pytest.raises(OSError):
            blobs.put_file("fresh", Exploding(data_of(10 * CS), 2 * CS))
        assert blobs.get("k") == old
    assert coll.get(1) == "kept"
    assert blobs.get("k") == old and "fresh" not in blobs
    with bstore.begin():  # no orphaned chunks: one header, two chunks
        assert len(list(bstore.iter_space(blobs.id))) == 3


def test_blob_store_made_in_aborted_block_leaves_no_trace(
    bstore: acid.Store,
) -> None:
    with bstore.begin(write=True):
        ghost = bstore.blobs("ghost")
        ghost.put("k", b"v")
        acid.abort()
    assert bstore.get_meta(acid.KIND_STRUCT, "x") is None
    with pytest.raises(SchemaError):
        ghost.get("k")
    with pytest.raises(SchemaError):
        ghost.put("k", b"v")
    again = bstore.blobs("ghost")
    assert again.keys() == []
    assert again.id != ghost.id or again.uid != ghost.uid


def test_blob_store_reopens(
    open_store: Callable[..., acid.Store], engine_name: str
) -> None:
    if engine_name not in {"lmdb", "leveldb"}:
        pytest.skip("needs a persistent engine")
    store = open_store()
    store.blobs("files").put("k", b"kept")
    bid = store.blobs("files").id
    store.close()
    store = open_store()
    files = store.blobs("files")
    assert files.id == bid
    assert files.get("k") == b"kept"


def test_write_in_read_transaction_refused(
    bstore: acid.Store, blobs: BlobStore
) -> None:
    with bstore.begin():
        with pytest.raises(acid.errors.TxnError):
            blobs.put("k", b"v")
    assert "k" not in blobs


# -- expiry ------------------------------------------------------------------


@pytest.mark.parametrize("bad", [0, -1, -0.5, "10", float("nan"), True, [1]])
def test_bad_ttl_raises_value_error(blobs: BlobStore, bad: Any) -> None:
    with pytest.raises(ValueError):
        blobs.put("k", b"v", ttl_secs=bad)
    with pytest.raises(ValueError):
        blobs.put_file("k", io.BytesIO(b"v"), ttl_secs=bad)
    assert "k" not in blobs


def test_ttl_with_fake_clock(bstore: acid.Store, clock: Clock) -> None:
    assert BlobStore.ttl_support is True
    blobs = bstore.blobs("ttl", ttl=60, chunk_size=CS)
    blobs.put("default", b"d")
    blobs.put("short", data_of(2 * CS), ttl_secs=10)
    blobs.put("never", b"n", ttl_secs=acid.FOREVER)
    assert blobs.ttl("short") == 10 and blobs.ttl("never") is None
    clock.now += 10
    assert "short" not in blobs
    with pytest.raises(KeyError):
        blobs.get("short")
    with pytest.raises(KeyError):
        blobs.open("short")
    assert blobs.keys() == ["default", "never"]
    clock.now += 50
    assert blobs.keys() == ["never"]
    assert bstore.expire() == 2  # store.expire() sweeps blob stores too
    with bstore.begin():
        assert len(list(bstore.iter_space(blobs.id))) == 2  # header + chunk
    blobs.put("short", b"again")  # an expired key can be written again
    assert blobs.get("short") == b"again"
    with pytest.raises(ValueError):
        bstore.blobs("bad", ttl=0)


# -- streaming ---------------------------------------------------------------


def test_streaming_holds_a_few_chunks(
    open_store: Callable[..., acid.Store], engine_name: str, tmp_path: Path
) -> None:
    """A file 32 chunks long goes in and out with Python-heap growth of a
    few chunks (the engine's own buffers aside)."""
    if engine_name != "lmdb":
        # The memory engine holds every value in memory; LevelDB's write
        # transactions buffer their writes until commit (docs/engines.md).
        pytest.skip("only LMDB writes a transaction's values out as they come")
    cs = 64 * 1024
    size = 32 * cs
    src = tmp_path / "big.bin"
    with open(src, "wb") as f:
        for _ in range(32):
            f.write(os.urandom(cs))
    store = open_store()
    blobs = store.blobs("big", chunk_size=cs)
    tracemalloc.start()
    try:
        blobs.put_file("big", str(src))
        _, put_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        blobs.get_file("big", str(tmp_path / "out.bin"))
        with blobs.open("big") as f:
            while f.read(cs // 3):
                pass
        _, get_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    limit = 4 * cs
    assert put_peak < limit < size, put_peak
    assert get_peak < limit, get_peak
    assert (tmp_path / "out.bin").read_bytes() == src.read_bytes()


RSS_SCRIPT = """
import resource, sys, threading, time, acid
path, size = sys.argv[1], int(sys.argv[2])
peak, done = [0], []

def anon():  # private memory: what the process holds, not the page cache
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024

def sample():
    while not done:
        peak[0] = max(peak[0], anon())
        time.sleep(0.002)

sampler = threading.Thread(target=sample)
sampler.start()
store = acid.open(f"lmdb:{path}/db?map_size=4GiB")
blobs = store.blobs("big")

class Source:
    left = size
    def read(self, n):
        n = min(n, self.left)
        self.left -= n
        return b"x" * n

class Sink:
    seen = 0
    def write(self, b):
        self.seen += len(b)

start = anon()
blobs.put_file("big", Source())
sink = Sink()
blobs.get_file("big", sink)
assert sink.seen == size
done.append(1)
sampler.join()
print(start, peak[0], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


@pytest.mark.stress
def test_one_gib_round_trip_peak_rss(tmp_path: Path) -> None:
    """Peak memory of a 1 GiB put_file + get_file on LMDB, in a subprocess.

    The limit is on private (anonymous) memory, sampled every 2 ms: 64 MiB,
    a sixteenth of the blob. Peak RSS is printed too; it also counts the
    pages of LMDB's file mapping the read touched, which are page cache.
    """
    size = 1 << 30
    out = subprocess.run(
        [sys.executable, "-c", RSS_SCRIPT, str(tmp_path), str(size)],
        capture_output=True,
        text=True,
        check=True,
    )
    start, anon, rss = (int(x) for x in out.stdout.split())
    mib = 2**20
    print(
        f"1 GiB round trip: private memory {start / mib:.0f} -> peak "
        f"{anon / mib:.0f} MiB; peak RSS with mapped pages {rss / mib:.0f} MiB"
    )
    assert anon - start < 64 * mib


# -- puts outside a transaction commit in stages -------------------------------


def test_staged_put_failure_cleans_up(bstore: acid.Store, blobs: BlobStore) -> None:
    old = data_of(3 * CS, seed=4)
    blobs.put("k", old)
    n = 3 * STAGE_CHUNKS + 5
    with pytest.raises(OSError):
        blobs.put_file("k", Exploding(data_of(n * CS), (2 * STAGE_CHUNKS + 3) * CS))
    assert blobs.get("k") == old
    with bstore.begin():
        assert len(list(bstore.iter_space(blobs.id))) == 1 + 3
    big = data_of(n * CS + 9, seed=5)
    blobs.put("k", big)  # many stages, then the swap
    assert blobs.get("k") == big
    with bstore.begin():
        assert len(list(bstore.iter_space(blobs.id))) == 1 + n + 1
    assert blobs.vacuum(grace=0) == 0


def test_staged_put_invisible_until_done(bstore: acid.Store, blobs: BlobStore) -> None:
    old = b"old value"
    blobs.put("k", old)
    seen: list[Any] = []

    class Source:
        pos = 0

        def read(self, n: int) -> bytes:
            self.pos += 1
            if self.pos == 2 * STAGE_CHUNKS + 1:  # two stages committed
                t = threading.Thread(target=lambda: seen.append(blobs.get("k")))
                t.start()
                t.join()
                seen.append(blobs.keys())
            return b"z" * n if self.pos <= 3 * STAGE_CHUNKS else b""

    blobs.put_file("k", Source())
    assert seen == [old, ["k"]]
    assert blobs.get("k") == b"z" * (3 * STAGE_CHUNKS * CS)


KILL_SCRIPT = """
import os, sys, acid
store = acid.open(f"lmdb:{sys.argv[1]}/db?map_size=256MiB")
blobs = store.blobs("files", chunk_size=1024)
blobs.put("k", b"old")

class Source:
    n = 0
    def read(self, size):
        self.n += 1
        if self.n > 40:  # two stages committed, the third under way
            os.kill(os.getpid(), 9)
        return b"y" * size

blobs.put_file("k", Source())
"""


def test_kill_during_staged_put_then_vacuum(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(tmp_path)])
    assert proc.returncode == -9
    clock = Clock()
    clock.now = time.time()  # the killed process used the real clock
    store = acid.open(f"lmdb:{tmp_path}/db?map_size=256MiB", clock=clock)
    blobs = store.blobs("files", chunk_size=1024)
    assert blobs.get("k") == b"old"
    with store.begin():
        orphans = len(list(store.iter_space(blobs.id))) - 2
    assert orphans == 2 * STAGE_CHUNKS + 1  # the chunks and the pending mark
    assert blobs.vacuum() == 0  # within the grace period: maybe still running
    clock.now += 7200
    assert blobs.vacuum() == 2 * STAGE_CHUNKS
    with store.begin():
        assert len(list(store.iter_space(blobs.id))) == 2
    assert blobs.get("k") == b"old"
    store.close()


@pytest.mark.writers_take_turns
def test_threads_replace_one_blob_while_others_read(
    bstore: acid.Store, blobs: BlobStore
) -> None:
    n = STAGE_CHUNKS + 3  # two stages each
    versions = {t: bytes([65 + t]) * (n * CS) for t in range(3)}
    blobs.put("k", versions[0])
    errors: list[BaseException] = []
    seen: set[bytes] = set()

    def writer(t: int) -> None:
        try:
            for _ in range(2):
                blobs.put_file("k", io.BytesIO(versions[t]))
        except BaseException as exc:  # reported below
            errors.append(exc)

    def reader() -> None:
        try:
            for _ in range(5):
                data = blobs.get("k")
                assert data in versions.values()  # never a mix of versions
                seen.add(data[:1])
                with blobs.open("k") as f:
                    f.seek(CS * STAGE_CHUNKS)
                    assert f.read(1) == f.read(1)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(3)]
    threads += [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert blobs.get("k") in versions.values()
    with bstore.begin():  # one header and one generation's chunks are left
        assert len(list(bstore.iter_space(blobs.id))) == 1 + n
    assert blobs.vacuum(grace=0) == 0


def test_two_stores_on_one_path(
    open_store: Callable[..., acid.Store], engine_name: str
) -> None:
    if engine_name != "lmdb":
        pytest.skip("needs a path that two engines may open at once")
    one, two = open_store(), open_store()
    a = one.blobs("files", chunk_size=CS)
    a.put("k", data_of(3 * CS))
    b = two.blobs("files")
    assert b.id == a.id and b.get("k") == data_of(3 * CS)
    with two.begin(write=True):
        b.put("k", b"from two")
        with pytest.raises(acid.errors.TxnError):
            with one.begin(write=True, timeout=0.05):
                pass  # one storage, one writer
    assert a.get("k") == b"from two"
    with one.begin(write=True):
        ghost = one.blobs("ghost")
        acid.abort()
    with pytest.raises(SchemaError):
        ghost.keys()
    assert two.get_meta("blobs", "ghost") is None
