"""Online index builds: bounded backfill, resumable, exact under writers."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import acid
from acid.errors import IndexNotReady, NotFound, SchemaError


def by_group(rec: dict[str, Any]) -> Any:
    return [rec["g"], ("n", rec["n"] % 3)] if rec["n"] % 5 else rec["g"]


def fill(store: acid.Store, n: int) -> acid.Collection:
    coll = store.add_collection("recs")
    with store.begin(write=True):
        for i in range(n):
            coll.put({"n": i, "g": i % 7})
    return coll


class Stop(Exception):
    pass


def test_online_build_in_batches_with_progress(store: acid.Store) -> None:
    coll = fill(store, 250)
    seen: list[tuple[int, int | None]] = []
    idx = coll.add_index(
        "g",
        by_group,
        build="online",
        batch=40,
        progress=lambda d, t: seen.append((d, t)),
    )
    assert [d for d, _ in seen] == [40, 80, 120, 160, 200, 240, 250]
    assert {t for _, t in seen} == {250}
    assert not idx.building
    report = store.check()
    assert report.ok and report.checked_entries > 250
    assert idx.count(args=(3,)) == len([i for i in range(250) if i % 7 == 3])
    # Building again is a no-op on a ready index, declared as usual after.
    assert coll.build_index("g") is idx


def test_interrupted_build_refuses_queries_and_resumes(
    open_store: Callable[..., acid.Store], engine_name: str
) -> None:
    store = open_store()
    coll = fill(store, 120)

    def stop_after_two(done: int, total: int | None) -> None:
        if done >= 50:
            raise Stop

    with pytest.raises(Stop):
        coll.add_index("g", by_group, build="online", batch=25, progress=stop_after_two)
    idx = coll.indices["g"]
    assert idx.building
    with pytest.raises(IndexNotReady, match="being built online"):
        list(idx.keys())
    with pytest.raises(IndexNotReady):
        idx.has(3)
    # Writes maintain it meanwhile, including records not reached yet.
    with store.begin(write=True):
        coll.put({"n": 1000, "g": 99})
        coll.put({"n": 7, "g": 42}, key=(110,))  # beyond the cursor: replaced
        coll.delete(5)  # before the cursor: its entries go
        coll.delete(100)  # beyond the cursor
    report = store.check()
    assert ("recs", "g") in report.unchecked  # building: not checked yet
    if engine_name in ("lmdb", "leveldb"):  # a new process would see this
        store.close()
        store = open_store()
        coll = store.add_collection("recs")
        idx = coll.add_index("g", by_group)  # declares it: still building
        assert idx.building
        with pytest.raises(IndexNotReady):
            idx.count()
    coll.build_index("g", batch=30)
    idx2 = store.add_collection("recs").add_index("g", by_group)
    assert not idx2.building
    assert store.check().ok
    assert list(idx2.keys(args=(42,))) == [(110,)]


def test_bad_arguments() -> None:
    store = acid.open("skiplist:/")
    coll = fill(store, 3)
    with pytest.raises(ValueError, match="'now' or 'online'"):
        coll.add_index("g", by_group, build="later")
    with pytest.raises(ValueError, match="positive"):
        coll.add_index("g", by_group, build="online", batch=0)
    with pytest.raises(NotFound):
        coll.build_index("nope")
    with store.begin(write=True), pytest.raises(SchemaError, match="outside"):
        coll.add_index("g", by_group, build="online")
    assert store.collections() == ["recs"]


def test_index_dropped_during_the_build() -> None:
    store = acid.open("skiplist:/")
    coll = fill(store, 100)

    def drop(done: int, total: int | None) -> None:
        if done == 10:
            coll.drop_index("g")

    with pytest.raises(SchemaError, match="dropped or replaced"):
        coll.add_index("g", by_group, build="online", batch=10, progress=drop)
    assert store.index_metas("recs") == []


def test_writer_threads_during_the_build_keep_it_exact(
    open_store: Callable[..., acid.Store],
) -> None:
    store = open_store()
    coll = fill(store, 600)
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        try:
            while not stop.is_set():
                ops = [
                    (rng.randrange(800), rng.random(), rng.randrange(9))
                    for _ in range(5)
                ]

                def write(ops: list[tuple[int, float, int]] = ops) -> None:
                    for n, p, g in ops:
                        if p < 0.3:
                            coll.delete(n)
                        else:
                            coll.put({"n": n, "g": g}, key=(n,))

                store.transact(write, retries=100)  # conflicts: run again
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(s,)) for s in range(2)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.01)
        coll.add_index("g", by_group, build="online", batch=20)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors
    report = store.check()
    assert report.ok and not report.unchecked, (report.missing[:3], report.stale[:3])


BUILDER = textwrap.dedent(
    """
    import sys
    import acid
    sys.path.insert(0, sys.argv[2])
    from test_online_index import by_group
    store = acid.open(sys.argv[1])
    coll = store.add_collection("recs")
    print("go", flush=True)
    coll.add_index("g", by_group, build="online", batch=int(sys.argv[3]))
    print("done", flush=True)
    """
)

WRITER = textwrap.dedent(
    """
    import os, random, sys
    import acid
    sys.path.insert(0, sys.argv[2])
    from test_online_index import by_group
    store = acid.open(sys.argv[1])
    coll = store.add_collection("recs")
    rng = random.Random(int(sys.argv[3]))
    declared = False
    while not os.path.exists(sys.argv[4]):
        if not declared and store.index_metas("recs"):
            coll.add_index("g", by_group)  # building: writes maintain it
            declared = True
        try:
            with store.begin(write=True):
                n = rng.randrange(500)
                if rng.random() < 0.3:
                    coll.delete(n)
                else:
                    coll.put({"n": n, "g": rng.randrange(9)}, key=(n,))
        except acid.errors.ConstraintError:
            coll.add_index("g", by_group)
            declared = True
    """
)


def kill_and_resume(tmp_path: Path, trials: int) -> None:
    url = f"lmdb:{tmp_path / 'db'}"
    store = acid.open(url)
    fill(store, 400)
    store.close()
    here = str(Path(__file__).parent)
    rng = random.Random(7)
    stop = tmp_path / "stop"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, url, here, "1", str(stop)])
    try:
        for trial in range(trials):
            builder = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    BUILDER,
                    url,
                    here,
                    str(rng.choice([5, 17, 50])),
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            assert builder.stdout is not None
            assert builder.stdout.readline().strip() == "go"
            time.sleep(rng.uniform(0, 0.3))
            builder.send_signal(signal.SIGKILL)
            builder.wait(timeout=60)
            if trial % 4 == 3:  # now and then: drop it, start afresh
                store = acid.open(url)
                try:
                    store.add_collection("recs").drop_index("g")
                except NotFound:
                    pass
                store.close()
    finally:
        stop.write_text("")
        writer.wait(timeout=60)
    assert writer.returncode == 0
    store = acid.open(url)
    coll = store.add_collection("recs")
    idx = coll.add_index("g", by_group, build="online", batch=33)
    assert not idx.building
    report = store.check()
    assert report.ok and not report.unchecked, (report.missing[:3], report.stale[:3])
    store.close()


def test_kill_9_during_build_then_resume(tmp_path: Path) -> None:
    kill_and_resume(tmp_path, trials=3)


@pytest.mark.stress
def test_kill_9_during_build_then_resume_many_times(tmp_path: Path) -> None:
    kill_and_resume(tmp_path, trials=25)
