"""Hostile use of blob stores: odd keys, odd file objects, odd seeks."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import acid
from acid.blobs import BlobStore

CS = 8  # tiny chunks: every test crosses chunk boundaries


@pytest.fixture
def bstore(open_store: Callable[..., acid.Store]) -> acid.Store:
    return open_store()


@pytest.fixture
def blobs(bstore: acid.Store) -> BlobStore:
    return bstore.blobs("files", chunk_size=CS)


def data_of(n: int) -> bytes:
    return bytes((i * 31 + i // 7) % 256 for i in range(n))


class Reader:
    """A file object whose read() misbehaves on purpose."""

    def __init__(
        self,
        data: bytes,
        *,
        extra: int = 0,
        fail_after: int | None = None,
        as_str: bool = False,
    ) -> None:
        self.data, self.pos = data, 0
        self.extra, self.fail_after, self.as_str = extra, fail_after, as_str

    def read(self, n: int = -1) -> Any:
        if self.fail_after is not None and self.pos >= self.fail_after:
            raise OSError("the disk went away")
        size = len(self.data) if n < 0 else n + self.extra  # more than asked
        piece = self.data[self.pos : self.pos + size]
        self.pos += len(piece)
        return piece.decode("latin-1") if self.as_str else piece


# -- bugs found ---------------------------------------------------------------


@pytest.mark.parametrize("n", [1, CS - 1, CS, CS + 1, 5 * CS + 3])
def test_put_file_whose_reads_return_more_than_asked(blobs: BlobStore, n: int) -> None:
    """A read() returning more than asked made chunks longer than the
    header's chunk size: the put succeeded and every later get raised
    CorruptionError ("chunk 2 of a blob is missing")."""
    data = data_of(n)
    blobs.put_file("k", Reader(data, extra=CS // 2 + 1))
    assert blobs.get("k") == data
    with blobs.open("k") as f:
        f.seek(n // 2)
        assert f.read() == data[n // 2 :]
    got = io.BytesIO()
    blobs.get_file("k", got)
    assert got.getvalue() == data
    assert blobs.vacuum(grace=0) == 0


def test_put_file_of_a_whole_file_in_one_read(blobs: BlobStore) -> None:
    class OneShot:
        def __init__(self) -> None:
            self.done = False

        def read(self, n: int = -1) -> bytes:
            if self.done:
                return b""
            self.done = True
            return data_of(10 * CS + 1)

    blobs.put_file("k", OneShot())
    assert blobs.get("k") == data_of(10 * CS + 1)


def test_put_file_text_mode_says_so_and_keeps_the_old_value(
    blobs: BlobStore, tmp_path: Path
) -> None:
    """A text-mode file after a short binary read raised "can't concat str
    to bytearray"; an empty text file was stored as an empty blob."""
    blobs.put("k", b"old")
    for f in [
        Reader(b"abc", as_str=True),
        io.StringIO(""),
        io.StringIO("hello"),
    ]:
        with pytest.raises(TypeError, match="binary mode"):
            blobs.put_file("k", f)
    path = tmp_path / "t.txt"
    path.write_text("x" * (3 * CS))
    with open(path) as text, pytest.raises(TypeError, match="binary mode"):
        blobs.put_file("k", text)

    class ShortThenStr:
        def __init__(self) -> None:
            self.calls = 0

        def read(self, n: int = -1) -> Any:
            self.calls += 1
            return [b"ab", "cd", b""][self.calls - 1]

    with pytest.raises(TypeError, match="binary mode"):
        blobs.put_file("k", ShortThenStr())
    assert blobs.get("k") == b"old"
    assert blobs.keys() == ["k"]
    assert blobs.vacuum(grace=0) == 0


def test_blob_file_seek_to_a_float_is_a_type_error(blobs: BlobStore) -> None:
    """seek(1.5) was accepted, and the next read raised CorruptionError
    ("chunk 0.0 of a blob is missing"); io files raise TypeError."""
    blobs.put("k", data_of(3 * CS))
    with blobs.open("k") as f:
        for bad in (1.5, 4.0, "1", None):
            with pytest.raises(TypeError):
                f.seek(bad)  # type: ignore[arg-type]
        assert f.tell() == 0
        assert f.read(3) == data_of(3)


def test_blob_file_read_none_and_write(blobs: BlobStore) -> None:
    """read(None) raised TypeError (io: read everything), write()
    NotImplementedError (io: UnsupportedOperation on a read-only file)."""
    blobs.put("k", data_of(2 * CS + 1))
    with blobs.open("k") as f:
        f.seek(3)
        assert f.read(None) == data_of(2 * CS + 1)[3:]
        assert not f.writable()
        with pytest.raises(io.UnsupportedOperation):
            f.write(b"x")


def test_blob_file_in_a_block_after_the_block_replaced_the_blob(
    bstore: acid.Store, blobs: BlobStore
) -> None:
    """The replaced blob's chunks are deleted in the block: reading on
    raised CorruptionError ("chunk 1 of a blob is missing"), a false report
    of a damaged store."""
    blobs.put("k", data_of(3 * CS))
    for change in (
        lambda: blobs.put("k", b"new" * CS),
        lambda: blobs.delete("k"),
        lambda: blobs.copy("other", "k"),
    ):
        blobs.put("other", b"o")
        with bstore.begin(write=True):
            f = blobs.open("k")
            assert f.read(2) == data_of(2)
            change()
            with pytest.raises(ValueError, match="replaced or deleted"):
                f.read()
            with pytest.raises(ValueError, match="replaced or deleted"):
                f.read(1)  # even from the chunk it holds
            acid.abort()
        assert blobs.get("k") == data_of(3 * CS)
    with bstore.begin(write=True):
        f = blobs.open("k")
        blobs.copy("k", "k2")  # other keys may change
        blobs.put("x", b"x")
        assert f.read() == data_of(3 * CS)


def test_expire_max_must_be_a_count(blobs: BlobStore) -> None:
    for bad in ("x", -1, 1.5):
        with pytest.raises(ValueError):
            blobs.expire(max=bad)  # type: ignore[arg-type]
    assert blobs.expire(max=0) == 0


# -- what held up (kept, so that it keeps holding) -----------------------------


@pytest.mark.parametrize("n", [0, 1, CS - 1, CS, CS + 1, 2 * CS, 2 * CS + 1])
def test_sizes_around_the_chunk_size_read_every_way(blobs: BlobStore, n: int) -> None:
    data = data_of(n)
    blobs.put("k", data)
    assert blobs.get("k") == data
    with blobs.open("k") as f:
        assert f.read(-1) == data
        assert f.read() == b""
        assert f.seek(n + 100) == n + 100
        assert f.read(5) == b"" and f.readinto(bytearray(5)) == 0
        with pytest.raises(ValueError):
            f.seek(-1)
        with pytest.raises(ValueError):
            f.seek(-n - 1, io.SEEK_END)
        buf = bytearray(n + 3)
        f.seek(0)
        assert f.readinto(buf) == n and bytes(buf[:n]) == data
        if n:
            assert f.seek(-1, io.SEEK_END) == n - 1 and f.read() == data[-1:]
            f.seek(n // 2)
            assert f.read(CS + 1) == data[n // 2 : n // 2 + CS + 1]


@pytest.mark.parametrize(
    "key",
    ["", "a" * 251, "é", "a b", "a/b", "a\n", "\n", "a*b", "a:b", "a;b", b"a", 1, None],
)
def test_keys_outside_the_valid_set_raise_value_error(
    blobs: BlobStore, key: Any
) -> None:
    for call in (
        lambda: blobs.put(key, b"x"),
        lambda: blobs.get(key),
        lambda: blobs.delete(key),
        lambda: key in blobs,
        lambda: blobs.open(key),
        lambda: blobs.put_file(key, io.BytesIO(b"x")),
    ):
        with pytest.raises(ValueError):
            call()
    assert blobs.keys() == []


@pytest.mark.parametrize("key", ["a" * 250, "..", ".", "-", "~", "[]{}", "'\"`"])
def test_keys_at_the_edges_of_the_valid_set(blobs: BlobStore, key: str) -> None:
    blobs.put(key, b"v")
    blobs.copy(key, "c")
    assert blobs.get(key) == b"v" and key in blobs and blobs.keys(key) == [key]
    blobs.delete(key)
    assert key not in blobs and blobs.keys() == ["c"]


@pytest.mark.parametrize("fail_after", [0, 1, CS, CS + 1, 20 * CS, 40 * CS])
def test_put_file_failing_after_n_bytes_keeps_the_old_blob(
    bstore: acid.Store, blobs: BlobStore, fail_after: int
) -> None:
    big = data_of(60 * CS)  # more than one staged transaction
    blobs.put("k", b"old")
    with pytest.raises(OSError):
        blobs.put_file("k", Reader(big, fail_after=fail_after))
    assert blobs.get("k") == b"old" and blobs.keys() == ["k"]
    assert blobs.vacuum(grace=0) == 0  # nothing staged was left behind
    coll = bstore.add_collection("c")
    with bstore.begin(write=True):
        coll.put({"n": 1}, key=1)
        with pytest.raises(OSError):
            blobs.put_file("k", Reader(big, fail_after=fail_after))
        blobs.put("other", b"o")  # the block goes on
    assert blobs.get("k") == b"old" and blobs.get("other") == b"o"
    assert coll.get(1) == {"n": 1}
    assert blobs.vacuum(grace=0) == 0


def test_aborted_block_restores_deleted_blobs(
    bstore: acid.Store, blobs: BlobStore
) -> None:
    for k in "abc":
        blobs.put(k, k.encode() * (2 * CS))
    with pytest.raises(RuntimeError), bstore.begin(write=True):
        blobs.delete("a")
        blobs.delete("b")
        blobs.put("c", b"new" * CS)
        blobs.put("d", b"d")
        blobs.copy("c", "e")
        raise RuntimeError
    assert blobs.keys() == ["a", "b", "c"]
    assert [blobs.get(k) for k in "abc"] == [k.encode() * (2 * CS) for k in "abc"]
    assert blobs.vacuum(grace=0) == 0


def test_open_file_keeps_its_snapshot_after_delete_and_refuses_after_close(
    blobs: BlobStore,
) -> None:
    blobs.put("k", data_of(3 * CS))
    f = blobs.open("k")
    blobs.delete("k")
    blobs.put("k", b"other")
    assert f.read() == data_of(3 * CS)
    f.close()
    with pytest.raises(ValueError):
        f.read()
    with pytest.raises(ValueError):
        f.seek(0)


def test_open_file_after_store_close_raises(tmp_path: Path) -> None:
    store = acid.open(f"lmdb:{tmp_path}/db")
    blobs = store.blobs("f", chunk_size=CS)
    blobs.put("k", data_of(3 * CS))
    f = blobs.open("k")
    assert f.read(2) == data_of(2)
    store.close()
    with pytest.raises(acid.errors.Error):
        f.read()
    f.close()


_KILLED_PUT = textwrap.dedent(
    """
    import os, sys, acid
    store = acid.open(sys.argv[1])
    blobs = store.blobs("f", chunk_size=8)
    blobs.put("k", b"old")

    class Slow:
        n = 0

        def read(self, size):
            self.n += 1
            if self.n == 100:  # several stages committed
                print("staged", flush=True)
                sys.stdin.readline()  # killed here
            return b"x" * size

    blobs.put_file("k", Slow())
    """
)


def test_kill_mid_put_then_keys_get_and_vacuum(tmp_path: Path) -> None:
    url = f"lmdb:{tmp_path}/db"
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_PUT, url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "staged"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    store = acid.open(url)
    blobs = store.blobs("f", chunk_size=CS)
    assert blobs.keys() == ["k"] and blobs.get("k") == b"old"
    assert blobs.vacuum() == 0  # within the grace period: kept
    assert blobs.vacuum(grace=0) > 0
    assert blobs.vacuum(grace=0) == 0 and blobs.get("k") == b"old"
    store.close()


def test_two_stores_on_one_path_write_one_key(tmp_path: Path) -> None:
    url = f"lmdb:{tmp_path}/db"
    one, two = acid.open(url), acid.open(url)
    a, b = one.blobs("f", chunk_size=CS), two.blobs("f", chunk_size=CS)
    for i in range(20):
        (a if i % 2 else b).put("k", data_of(i * 3))
        assert b.get("k") == a.get("k") == data_of(i * 3)
    assert a.vacuum(grace=0) == 0
    one.close()
    two.close()


def test_writes_after_the_engine_aborted_the_block_do_not_land_alone(
    tmp_path: Path,
) -> None:
    store = acid.open(f"lmdb:{tmp_path}/db?map_size=1MiB")
    coll = store.add_collection("c")
    blobs = store.blobs("b")
    with pytest.raises(acid.errors.Error), store.begin(write=True):
        coll.put({"n": 1}, key="before")
        with pytest.raises(acid.errors.MapFullError):
            blobs.put("big", b"x" * (4 << 20))
        try:
            coll.put({"n": 2}, key="after")  # should raise: the block is dead
        finally:
            # whatever the put did, the block must not land in part
            assert (coll.get("before"), coll.get("after")) in [
                (None, None),
                ({"n": 1}, {"n": 2}),
            ]
    assert coll.get("before") is None and coll.get("after") is None
    store.close()
