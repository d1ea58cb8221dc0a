"""close() from another thread while a reader is inside a native call.

The contract: ``close()`` never hangs, and later use raises ``EngineError`` /
``TxnError``, never a segfault. Each scenario runs in a subprocess so that a
crash is a failing test instead of a dead test run.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import HAVE_PLYVEL

CHILD = textwrap.dedent(
    """
    import sys, threading, time
    import acid.engines as E
    from acid.errors import Error

    url, mode, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    engine = E.from_url(url)
    with engine.begin(write=True) as txn:
        for i in range(5000):
            txn.put(b"k%08d" % i, b"v" * 200)
    engine.close()

    def work(engine, started):
        try:
            if mode == "get":
                txn = engine.begin()
                started.set()
                for i in range(10**6):
                    txn.get(b"k%08d" % (i % 5000))
            else:
                txn = engine.begin(write=(mode == "write-iter"))
                started.set()
                for _ in range(100):
                    for _item in txn.iter(b""):
                        pass
        except Error:
            pass  # what the contract promises after close()

    for n in range(rounds):
        engine = E.from_url(url)
        started = threading.Event()
        thread = threading.Thread(target=work, args=(engine, started))
        thread.start()
        started.wait(10)
        time.sleep(0.0005 * (n % 5))
        engine.close()
        thread.join(30)
        if thread.is_alive():
            print("HANG")
            sys.exit(3)
    print("OK")
    """
)


@pytest.mark.skipif(not HAVE_PLYVEL, reason="plyvel is not installed")
@pytest.mark.parametrize("mode", ["get", "read-iter", "write-iter"])
def test_leveldb_close_while_other_thread_reads_does_not_crash(
    tmp_path: Path, mode: str
) -> None:
    url = f"leveldb:{tmp_path}/db?sync=false"
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, url, mode, "40"],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.returncode == 0 and "OK" in proc.stdout, (
        f"child exited with {proc.returncode} (-11 is SIGSEGV): "
        f"{proc.stdout[-300:]} {proc.stderr[-1500:]}"
    )


def test_lmdb_close_while_other_thread_reads_does_not_crash(tmp_path: Path) -> None:
    """The same scenario on LMDB (held up when written; kept as a guard)."""
    url = f"lmdb:{tmp_path}/db?sync=false&map_size=64MiB"
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, url, "read-iter", "20"],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.returncode == 0 and "OK" in proc.stdout, (
        f"child exited with {proc.returncode}: {proc.stderr[-1500:]}"
    )
