"""``acid copy`` and ``acid dump`` of what they cannot carry: blob stores and
expiry. They used to say nothing (exit 0, "check() agree") while the copy's
records no longer expired and its blobs were gone."""

from __future__ import annotations

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


def test_copy_names_what_it_leaves_out(tmp_path: Path, acid_cmd: Run) -> None:
    src = _source(tmp_path / "src")
    proc = acid_cmd("copy", src, f"lmdb:{tmp_path / 'dst'}")
    assert proc.returncode == 0, proc.stderr
    warnings = [x for x in proc.stderr.splitlines() if "warning" in x]
    assert len(warnings) == 2, proc.stderr
    assert "'short'" in warnings[0] and "expire" in warnings[0]
    assert "blob store 'files'" in warnings[1]
    assert all(x.startswith("acid: warning: not carried: ") for x in warnings)


@pytest.mark.parametrize(
    "colls,expected",
    [((), 2), (("plain",), 0), (("short",), 1)],
)
def test_dump_names_what_it_leaves_out(
    tmp_path: Path, acid_cmd: Run, colls: tuple[str, ...], expected: int
) -> None:
    src = _source(tmp_path / "src")
    proc = acid_cmd("dump", src, *colls)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith('{"acid-dump"')
    assert "warning" not in proc.stdout
    warnings = [x for x in proc.stderr.splitlines() if "not carried" in x]
    assert len(warnings) == expected, proc.stderr


def test_a_plain_copy_warns_of_nothing(tmp_path: Path, acid_cmd: Run) -> None:
    url = f"lmdb:{tmp_path / 'src'}"
    store = acid.open(url)
    store.add_collection("plain").put({"x": 1})
    store.close()
    proc = acid_cmd("copy", url, f"lmdb:{tmp_path / 'dst'}")
    assert proc.returncode == 0 and "warning" not in proc.stderr, proc.stderr
