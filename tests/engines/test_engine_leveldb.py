"""LevelDB engine specifics: the directory lock, parameters."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("plyvel")

from acid.engines import from_url  # noqa: E402
from acid.errors import EngineError  # noqa: E402


def test_second_opener_in_this_process(tmp_path: Path) -> None:
    url = f"leveldb:{tmp_path}/db?sync=false"
    with from_url(url):
        with pytest.raises(EngineError, match="single-process") as info:
            from_url(url)
        assert "IO error" not in str(info.value)
    with from_url(url):  # the lock goes with close()
        pass


def test_second_opener_in_another_process(tmp_path: Path) -> None:
    url = f"leveldb:{tmp_path}/db?sync=false"
    script = (
        "import sys\n"
        "from acid.engines import from_url\n"
        "from acid.errors import EngineError\n"
        "try:\n"
        f"    from_url({url!r})\n"
        "except EngineError as exc:\n"
        "    print(exc)\n"
        "    sys.exit(3)\n"
    )
    with from_url(url):
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 3, done.stderr
    assert "locked" in done.stdout and "single-process" in done.stdout


def test_parameters_reach_leveldb(tmp_path: Path) -> None:
    url = (
        f"leveldb:{tmp_path}/db?block_cache=8MiB&write_buffer=1MiB&bloom_bits=0"
        "&compression=none&max_open_files=100&sync=true&lock_timeout=1"
    )
    with from_url(url) as engine:
        with engine.begin(write=True) as txn:
            txn.put(b"k", b"v")
        assert engine.begin().get(b"k") == b"v"
    assert (tmp_path / "db" / "CURRENT").exists()


def test_put_requires_bytes(tmp_path: Path) -> None:
    with from_url(f"leveldb:{tmp_path}/db?sync=false") as engine:
        with engine.begin(write=True) as txn:
            with pytest.raises(TypeError):
                txn.put("k", b"v")  # type: ignore[arg-type]
