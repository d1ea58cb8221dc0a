"""Progress bars appear on a terminal and stay away from pipes."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import acid
from tests.ops.conftest import Run


def make(url: str) -> None:
    store = acid.open(url)
    coll = store.add_collection("c")
    with store.begin(write=True):
        for i in range(3000):
            coll.put({"i": i})
    store.close()


def run_on_terminal(args: list[str], cwd: Path) -> tuple[int, str, str]:
    """Run with standard error on a pseudo-terminal; stdout stays a pipe."""
    master, slave = pty.openpty()
    out_path = cwd / "stdout.txt"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[2]), COLUMNS="100")
    with open(out_path, "wb") as stdout:  # a file: a full pipe would block
        proc = subprocess.Popen(
            [sys.executable, "-m", "acid", *args],
            stdout=stdout,
            stderr=slave,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env=env,
        )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    out = out_path.read_text()
    os.close(master)
    return proc.returncode, out, b"".join(chunks).decode(errors="replace")


def test_progress_on_a_terminal_only(acid_cmd: Run, tmp_path: Path) -> None:
    url = f"lmdb:{tmp_path / 'db'}"
    make(url)
    code, out, err = run_on_terminal(["dump", url], tmp_path)
    assert code == 0
    assert out.count("\n") == 3000 + 4  # header, collection, counter, end
    assert "dump" in err and "/s" in err and "eta" in err and "3000/3000" in err
    code, _, err = run_on_terminal(["copy", url, f"lmdb:{tmp_path / 'c'}"], tmp_path)
    assert code == 0 and "copy" in err and "3000/3000" in err
    (tmp_path / "d.jsonl").write_text(out)
    code, _, err = run_on_terminal(
        ["load", f"lmdb:{tmp_path / 'l'}", str(tmp_path / "d.jsonl")], tmp_path
    )
    size = (tmp_path / "d.jsonl").stat().st_size
    assert code == 0 and "load (bytes)" in err and f"{size}/{size}" in err
    code, _, err = run_on_terminal(["dump", "--no-progress", url], tmp_path)
    assert code == 0 and "eta" not in err
    piped = acid_cmd("dump", url)
    assert piped.returncode == 0 and piped.stderr == ""
    piped = acid_cmd("copy", url, f"lmdb:{tmp_path / 'c2'}")
    assert "eta" not in piped.stderr and "\x1b" not in piped.stderr
