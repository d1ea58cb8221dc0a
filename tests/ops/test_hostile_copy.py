"""``acid copy`` and ``acid dump`` of what they used to leave out silently:
blob stores and expiry. Expiry now travels (dump format 2); blob stores are
refused loudly unless ``--without-blobs`` says to leave them out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import acid
from tests.ops.conftest import Run


def _source(path: Path) -> str:
    url = f"lmdb:{path}"
    store = acid.open(url)
    store.add_collection("plain").put({"x": 1})
    ttl = store.add_collection("short")
    ttl.declare_ttl(3600)
    ttl.put({"y": 2})
    store.blobs("files").put("a.txt", b"z" * 1000)
    store.close()
    return url


def test_copy_refuses_blob_stores_unless_told(tmp_path: Path, acid_cmd: Run) -> None:
    src = _source(tmp_path / "src")
    dst = f"lmdb:{tmp_path / 'dst'}"
    proc = acid_cmd("copy", src, dst)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("acid: error: the store has blob stores ('files')")
    assert "--without-blobs" in proc.stderr and "acid backup" in proc.stderr
    assert not (tmp_path / "dst").exists()  # refused before the target opened
    proc = acid_cmd("copy", "--without-blobs", src, dst)
    assert proc.returncode == 0, proc.stderr
    warnings = [x for x in proc.stderr.splitlines() if "warning" in x]
    assert warnings == ["acid: warning: not carried: blob store 'files'"]
    store = acid.open(dst)
    short = store.add_collection("short")
    assert list(short.values()) == [{"y": 2}]
    assert short.expiry is not None and short.expiry.default == 3600.0
    store.close()


@pytest.mark.parametrize(
    "colls,status,warned",
    [((), 1, 0), (("plain",), 0, 0), (("short",), 0, 0), (("plain", "short"), 0, 0)],
)
def test_dump_refuses_blob_stores_only_for_the_whole_store(
    tmp_path: Path, acid_cmd: Run, colls: tuple[str, ...], status: int, warned: int
) -> None:
    src = _source(tmp_path / "src")
    proc = acid_cmd("dump", src, *colls)
    assert proc.returncode == status, proc.stderr
    assert "warning" not in proc.stdout
    warnings = [x for x in proc.stderr.splitlines() if "not carried" in x]
    assert len(warnings) == warned, proc.stderr
    if status:
        assert proc.stdout == "" and "blob stores ('files')" in proc.stderr
        return
    lines = [json.loads(x) for x in proc.stdout.splitlines()]
    assert lines[0]["acid-dump"] == 2
    heads = {x["collection"]: x for x in lines if "collection" in x}
    assert set(heads) == set(colls)
    if "short" in heads:
        assert heads["short"]["expiring"] is True and heads["short"]["ttl"] == 3600
        (rec,) = [x for x in lines if x.get("v") == {"y": 2}]
        assert isinstance(rec["d"], float)
    if "plain" in heads:
        assert "expiring" not in heads["plain"]


def test_dump_without_blobs_warns_once(tmp_path: Path, acid_cmd: Run) -> None:
    src = _source(tmp_path / "src")
    proc = acid_cmd("dump", "--without-blobs", src)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [
        "acid: warning: not carried: blob store 'files'"
    ]


def test_a_plain_copy_warns_of_nothing(tmp_path: Path, acid_cmd: Run) -> None:
    url = f"lmdb:{tmp_path / 'src'}"
    store = acid.open(url)
    store.add_collection("plain").put({"x": 1})
    store.close()
    proc = acid_cmd("copy", url, f"lmdb:{tmp_path / 'dst'}")
    assert proc.returncode == 0 and "warning" not in proc.stderr, proc.stderr
