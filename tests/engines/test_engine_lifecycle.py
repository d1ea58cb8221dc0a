"""The base transaction life cycle: thread tokens, the writer lock, the
claim deciding who ends a transaction, and the slots that keep it cheap."""

from __future__ import annotations

import gc
import random
import sys
import threading
from pathlib import Path

import pytest

from acid.engines import (
    Engine,
    Txn,
    WriterLock,
    from_url,
    is_this_thread,
    this_thread,
    thread_name,
    thread_of,
)
from acid.errors import TxnError
from tests.conftest import HAVE_PLYVEL


def _urls(tmp_path: Path) -> list[str]:
    urls = ["skiplist:/", f"lmdb:{tmp_path}/lmdb?map_size=16MiB&sync=false"]
    if HAVE_PLYVEL:
        urls.append(f"leveldb:{tmp_path}/leveldb?sync=false")
    return urls


def test_thread_tokens() -> None:
    me = this_thread()
    assert this_thread() is me and is_this_thread(me)
    assert thread_of(me) is threading.current_thread()
    assert thread_name(me) == repr(threading.current_thread().name)
    theirs: list[object] = []
    worker = threading.Thread(target=lambda: theirs.append(this_thread()))
    worker.start()
    worker.join()
    gc.collect()
    token = theirs[0]
    assert token is not me and not is_this_thread(token)  # type: ignore[arg-type]
    assert token() is None  # type: ignore[operator]  # dead: its thread ended
    assert thread_of(token) is None  # type: ignore[arg-type]
    assert "ended" in thread_name(token)  # type: ignore[arg-type]


def test_writer_lock_gives_itself_back_when_its_holder_is_freed() -> None:
    class Holder:
        _writer: object = None

    lock = WriterLock()
    assert lock.acquire(None, 1.0, "demo") is this_thread()
    assert lock.owner is threading.current_thread()
    holder = Holder()
    lock.hold(holder)  # type: ignore[arg-type]
    assert lock.holder is holder and holder._writer is lock
    del holder
    gc.collect()
    assert lock.holder is None and lock.owner is None
    lock.acquire(0, 1.0, "demo")  # free again
    lock.release()


def _close_after(
    txn: Txn, url: str, barrier: threading.Barrier | None, spin: int
) -> None:
    if barrier is not None:
        barrier.wait()
    for _ in range(spin):
        pass
    txn.close_for_engine(url)


@pytest.mark.parametrize("end", ["commit", "abort"])
def test_ending_races_close_and_exactly_one_wins(tmp_path: Path, end: str) -> None:
    # The transaction's thread and close() (another thread) both try to end
    # it; whoever claims it runs the hooks and gives the writer lock back
    # exactly once (twice would raise, never would leave it held). Started
    # plainly the closer mostly wins; behind a barrier, mostly the owner.
    rng = random.Random(1)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for url in _urls(tmp_path):
            engine = from_url(url)
            try:
                for i in range(400):
                    txn = engine.begin(write=True, timeout=1)
                    barrier = threading.Barrier(2) if i % 2 else None
                    spin = rng.randrange(40)

                    closer = threading.Thread(
                        target=_close_after, args=(txn, url, barrier, spin)
                    )
                    closer.start()
                    if barrier is not None:
                        barrier.wait()
                    try:
                        getattr(txn, end)()
                    except TxnError as exc:  # close() claimed it first
                        assert end == "commit" and "closed" in str(exc)
                    closer.join()
                    assert txn.closed
                engine.begin(write=True, timeout=1).abort()
            finally:
                engine.close()
    finally:
        sys.setswitchinterval(interval)


def test_engine_transactions_have_no_instance_dict(tmp_path: Path) -> None:
    # Ending swaps the instance's class; with a __dict__ that copies the dict
    # (CPython 3.11), so the engines' transactions keep to their slots.
    for url in _urls(tmp_path):
        engine: Engine = from_url(url)
        try:
            for write in (False, True):
                txn = engine.begin(write=write)
                assert not hasattr(txn, "__dict__"), (url, write)
                txn.commit()
                assert not hasattr(txn, "__dict__"), (url, write)
        finally:
            engine.close()
