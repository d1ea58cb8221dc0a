"""A load is invisible until its last transaction and removes nothing but
its own work: damaged dumps at several points, other writers (threads, a
second process on LMDB) writing into the load's names meanwhile, a name
that appears mid-load, and kill -9 of the loading process."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import acid
from acid.cli.transfer import (
    TEMP_PREFIX,
    DumpError,
    DumpReader,
    Loader,
    drop_leftovers,
    is_temporary,
    leftovers,
    user_collections,
)
from acid.errors import NameInUse
from tests.ops.conftest import Run
from tests.ops.test_dump_load import dump_text, url_for

ROOT = Path(__file__).parents[2]
ENGINES = ["skiplist", "lmdb", "leveldb"]


def source(n: int = 40, m: int = 3) -> acid.Store:
    """Two collections, one with an index copied as data, and a counter."""
    src = acid.open("skiplist:/")
    big = src.add_collection("big")
    big.add_index("odd", lambda r: r["i"] % 2)
    small = src.add_collection("small", key_func=lambda r: r["name"])
    with src.begin(write=True):
        for i in range(n):
            big.put({"i": i})
        for i in range(m):
            small.put({"name": f"n{i:04d}"})
        src.count("visits", 7)
    return src


def load(
    store: acid.Store,
    text: str,
    progress: Callable[[int], None] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    reader = DumpReader(io.StringIO(text))
    loader = Loader(store, batch=5, progress=progress, **kwargs)
    return loader.run(reader, lambda: reader.lineno)


def nothing_of_the_load(store: acid.Store) -> None:
    """No temporary, no journal, no counter of the dump's."""
    assert not [n for n in store.collections() if is_temporary(n)]
    assert leftovers(store) == []
    assert "visits" not in store.counters()
    journals = [n for n, _ in store.iter_meta(acid.KIND_STRUCT) if n[0] == "\x00load"]
    assert journals == []


def damage(text: str, where: str) -> str:
    lines = text.splitlines()
    records = [i for i, x in enumerate(lines) if x.startswith('{"k"')]
    if where == "early":  # inside the second batch of the first collection
        lines[records[7]] = '{"k": [8], "v": '
    elif where == "middle":  # the first record of the second collection
        lines[records[-3]] = '{"k": "a", "v": {}}'
    elif where == "entries":  # an index entry after every record of big
        entry = next(i for i, x in enumerate(lines) if x.startswith('{"e"'))
        lines[entry] = '{"e": [[1]]}'
    elif where == "counts":  # the end line (after every batch)
        end = json.loads(lines[-1])
        end["end"]["records"] += 1
        lines[-1] = json.dumps(end)
    elif where == "truncated":
        lines = lines[:-1]
    else:
        raise AssertionError(where)
    return "\n".join(lines) + "\n"


DAMAGE = ["early", "middle", "entries", "counts", "truncated"]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("where", DAMAGE)
def test_a_damaged_load_keeps_what_another_writer_put_in_its_names(
    engine: str, where: str, tmp_path: Path
) -> None:
    text = damage(dump_text(source()), where)
    dst = acid.open(url_for(engine, tmp_path / "dst"))
    dst.count("key:big", 100)  # a counter the dump also names, held by others
    done: list[int] = []

    def other_writer(n: int) -> None:
        """Runs between the load's batches: puts into both of its names."""
        done.append(n)
        if len(done) == 1:
            big = dst.add_collection("big")
            big.put({"mine": 1}, key=("precious",))
            small = dst.add_collection("small")
            if where != "middle":  # else the load stops at small's line
                small.put({"mine": 2}, key=("a",))

    # Damage, or (once big is done) the name small taken: refused early.
    with pytest.raises((DumpError, ValueError, NameInUse)):
        load(dst, text, progress=other_writer)
    if where != "early":
        assert done, "the writer ran between batches"
        assert dst.collections() == ["big", "small"]
        assert dst.add_collection("big").get(("precious",)) == {"mine": 1}
        mine = [{"mine": 2}] if where != "middle" else []
        assert list(dst.add_collection("small").values()) == mine
        assert [len(dst["big"]), len(dst["small"])] == [1, len(mine)]
        assert dst.check().ok
    assert dst.counters()["key:big"] == 101  # kept, though a dump counter
    nothing_of_the_load(dst)
    dst.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_a_name_that_appears_mid_load_fails_it_cleanly(
    engine: str, tmp_path: Path
) -> None:
    src = source()
    text = dump_text(src)
    dst = acid.open(url_for(engine, tmp_path / "dst"))
    calls: list[int] = []

    def creator(n: int) -> None:
        calls.append(n)
        if len(calls) == 2:  # big is being loaded: it is taken meanwhile
            dst.add_collection("big", key_func=lambda r: r["x"]).put({"x": "z"})

    with pytest.raises(NameInUse, match="'big' was created in the target by an"):
        load(dst, text, progress=creator)
    assert len(calls) > 2  # refused at the end, after every batch
    assert dst.collections() == ["big"]
    assert list(dst["big"].items()) == [(("z",), {"x": "z"})]
    assert dst.counters().get("key:small") is None
    nothing_of_the_load(dst)
    assert dst.stats()["records"] == 1

    # A name taken before the load reaches its collection line: refused
    # there, before any record of it is written.
    calls.clear()
    dst.drop_collection("big")

    def early(n: int) -> None:
        calls.append(n)
        if len(calls) == 1:
            dst.add_collection("small").put({"x": 1}, key=("z",))

    with pytest.raises(NameInUse, match="'small' already exists in the target"):
        load(dst, text, progress=early)
    assert dst.collections() == ["small"]
    assert list(dst.add_collection("small").items()) == [(("z",), {"x": 1})]
    nothing_of_the_load(dst)
    # Loading again into a store where a name is taken is refused at once.
    with pytest.raises(NameInUse, match="not empty"):
        load(dst, text)
    dst.close()


def test_records_put_into_a_declared_collection_mid_load_are_kept() -> None:
    text = dump_text(source())
    dst = acid.open("skiplist:/")
    declared = dst.add_collection("big")  # as --module declares it, empty

    def writer(n: int) -> None:
        if not len(declared):
            declared.put({"late": True}, key=("x",))

    with pytest.raises(NameInUse, match="put records into collection 'big'"):
        load(dst, text, progress=writer)
    assert dst.collections() == ["big"]
    assert list(declared.items()) == [(("x",), {"late": True})]
    nothing_of_the_load(dst)


def test_a_declared_empty_collection_is_replaced_with_its_functions() -> None:
    src = source()
    dst = acid.open("skiplist:/")
    declared = dst.add_collection("big")
    declared.add_index("odd", lambda r: r["i"] % 2)
    declared.add_index("tens", lambda r: r["i"] // 10)  # not in the dump
    counts = load(dst, dump_text(src))
    assert counts["entries"] == 0  # both indexes recomputed from the records
    big = dst["big"]
    assert big is not declared and not declared.attached
    assert len(big) == 40 and sorted(big.indices) == ["odd", "tens"]
    assert len(list(big.indices["tens"].pairs())) == 40
    assert list(big.indices["odd"].pairs()) == list(src["big"].indices["odd"].pairs())
    assert dst.check().ok and not dst.check().unchecked
    # The counters follow: new counter keys continue after the dump's.
    assert big.put({"i": 99}) == (41,)
    assert leftovers(dst) == []


@pytest.mark.parametrize("engine", ["skiplist", "lmdb"])
def test_a_writer_thread_during_a_load(engine: str, tmp_path: Path) -> None:
    """A thread keeps creating and writing the load's names while it runs:
    whatever the thread committed is there afterwards, and the load either
    landed whole or left nothing."""
    src = source(400)
    text = dump_text(src)
    dst = acid.open(url_for(engine, tmp_path / "dst"))
    go, started, stop = threading.Event(), threading.Event(), threading.Event()
    written: list[tuple[Any, ...]] = []
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            go.wait(30)
            other = acid.Store(dst.engine)
            coll = other.add_collection("big")
            i = 0
            while not stop.is_set():
                written.append(coll.put({"w": i}, key=("w", i)))
                i += 1
                started.set()
        except BaseException as exc:  # reported below
            errors.append(exc)
            started.set()

    def first_batch(n: int) -> None:
        if not go.is_set():  # the load has begun: let the writer in, and
            go.set()  # go on once it committed (then both run at once)
            started.wait(30)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        with pytest.raises(NameInUse, match="'big' was created in the target"):
            load(dst, text, progress=first_batch)
    finally:
        go.set()
        stop.set()
        thread.join(30)
    assert not errors, errors
    big = dst.add_collection("big")
    assert sorted(big.keys()) == sorted(written) and len(big) == len(written)
    assert dst.collections() == ["big"]
    nothing_of_the_load(dst)
    assert dst.check().ok
    dst.close()


def test_a_writer_thread_in_other_collections_during_a_damaged_load(
    tmp_path: Path,
) -> None:
    text = damage(dump_text(source(400)), "counts")
    dst = acid.open(url_for("lmdb", tmp_path / "dst"))
    stop = threading.Event()
    written: list[int] = []

    def writer() -> None:
        other = acid.Store(dst.engine)
        coll = other.add_collection("mine")
        while not stop.is_set():
            written.append(coll.put({"n": len(written)})[0])

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        with pytest.raises(DumpError, match="the end line counts"):
            load(dst, text, force=True)  # "mine" may hold records already
    finally:
        stop.set()
        thread.join(30)
    assert dst.collections() == ["mine"]
    assert [k[0] for k in dst.add_collection("mine").keys()] == written
    nothing_of_the_load(dst)
    dst.close()


def _run_python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.mark.parametrize("damaged", [False, True])
def test_a_second_process_writes_into_the_loads_names(
    tmp_path: Path, damaged: bool
) -> None:
    url = f"lmdb:{tmp_path / 'dst'}"
    text = dump_text(source())
    if damaged:
        text = damage(text, "counts")
    dst = acid.open(url)
    runs: list[subprocess.CompletedProcess[str]] = []

    def other_process(n: int) -> None:
        if not runs:  # between two of the load's batches
            runs.append(
                _run_python(
                    """
                    import sys, acid
                    store = acid.open(sys.argv[1])
                    with store.begin(write=True):
                        big = store.add_collection("big")
                        for i in range(5):
                            big.put({"theirs": i}, key=("p", i))
                        store.add_collection("theirs").put({"x": 1})
                    store.close()
                    """,
                    url,
                )
            )
            assert runs[0].returncode == 0, runs[0].stderr

    error = DumpError if damaged else NameInUse
    with pytest.raises(error):
        load(dst, text, progress=other_process)
    dst.close()
    after = acid.open(url)
    assert after.collections() == ["big", "theirs"]
    big = after.add_collection("big")
    assert [v["theirs"] for v in big.values()] == [0, 1, 2, 3, 4]
    assert len(big) == 5 and after.check().ok
    nothing_of_the_load(after)
    after.close()


KILLED_LOAD = """
import io, sys, time
import acid
from acid.cli.transfer import DumpReader, Loader
store = acid.open(sys.argv[1])
reader = DumpReader(io.StringIO(open(sys.argv[2]).read()))
batches = []

def progress(n):
    batches.append(n)
    if len(batches) == int(sys.argv[3]):
        print("ready", flush=True)
        time.sleep(600)  # killed here, mid-load

Loader(store, batch=5, progress=progress).run(reader, lambda: reader.lineno)
"""


# 40 records and 40 entries of big are 16 batches, then small's 10 records.
@pytest.mark.parametrize("after_batches,records", [(1, 5), (17, 45)])
def test_kill_9_mid_load_leaves_only_findable_temporaries(
    tmp_path: Path, acid_cmd: Run, after_batches: int, records: int
) -> None:
    src = source(40, 10)
    dump = tmp_path / "d.jsonl"
    dump.write_text(dump_text(src))
    url = f"lmdb:{tmp_path / 'dst'}"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_LOAD, url, str(dump), str(after_batches)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        # While it runs: listed as running, and --drop leaves it alone.
        listed = acid_cmd("leftovers", "--drop", url)
        assert listed.returncode == 1, listed.stderr
        assert "still running" in listed.stdout and "removed" not in listed.stdout
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    store = acid.open(url)
    assert user_collections(store) == []  # no collection is visible as loaded
    (left,) = leftovers(store)
    assert not left.running() and left.journal is not None
    assert left.journal["pid"] == proc.pid
    names = [real for _, real, _ in left.collections]
    assert names == (["big"] if after_batches == 1 else ["big", "small"])
    assert sum(n for _, _, n in left.collections) == records
    temps = [t for t, _, _ in left.collections]
    assert all(t.startswith(f"{TEMP_PREFIX}{left.token}:") for t in temps)
    store.close()
    shown = acid_cmd("info", url)
    assert shown.returncode == 0, shown.stderr
    assert f"big (unfinished load {left.token})" in shown.stdout
    # A new load works, warns of the leftover, and does not reuse it.
    proc2 = acid_cmd("load", url, str(dump))
    assert proc2.returncode == 0, proc2.stderr
    assert f"load {left.token} (interrupted; pid {proc.pid}" in proc2.stderr
    assert "acid leftovers --drop" in proc2.stderr
    store = acid.open(url)
    assert user_collections(store) == ["big", "small"]
    assert [x.token for x in leftovers(store)] == [left.token]
    assert len(store.add_collection("big")) == 40
    store.close()
    # A dump of the store leaves the temporaries out, and says so.
    dumped = acid_cmd("dump", url)
    assert dumped.returncode == 0, dumped.stderr
    assert TEMP_PREFIX not in dumped.stdout.replace("\\u0000", "\x00")
    assert f"unfinished load {left.token}" in dumped.stderr
    assert dumped.stdout == dump.read_text()
    # Removed on request; the loaded collections stay whole.
    listed = acid_cmd("leftovers", "--drop", url)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith(f"removed load {left.token} (interrupted")
    store = acid.open(url)
    assert store.collections() == ["big", "small"] and leftovers(store) == []
    assert store.stats()["records"] == 50
    big = store.add_collection("big")
    big.add_index("odd", lambda r: r["i"] % 2)
    assert big.put({"i": 40}) == (41,)  # the counter came with the load
    assert store.check().ok and not store.check().unchecked
    store.close()
    listed = acid_cmd("leftovers", url)
    assert listed.returncode == 0 and "no leftovers" in listed.stderr


def test_drop_leftovers_keeps_counters_and_running_loads() -> None:
    store = acid.open("skiplist:/")
    text = dump_text(source())
    seen: list[list[Any]] = []

    def peek(n: int) -> None:
        if not seen:
            seen.append(leftovers(store))
            # the load itself runs in this very process: never dropped
            assert drop_leftovers(store) == []
            assert seen[0][0].running()

    load(store, text, progress=peek)
    assert seen and seen[0][0].collections[0][1] == "big"
    assert leftovers(store) == []
    assert store.counters()["visits"] == 8 and store.counters()["key:big"] == 41


def test_the_dump_cannot_name_temporaries_or_reserved_counters() -> None:
    text = dump_text(source())
    bad = text.replace('"collection":"small"', '"collection":"\\u0000load:x:small"')
    with pytest.raises(DumpError, match="temporaries of loads"):
        load(acid.open("skiplist:/"), bad)
    bad = text.replace('"counter":"key:small"', '"counter":"\\u0000ids"')
    store = acid.open("skiplist:/")
    with pytest.raises(DumpError, match=r"line \d+: counter names starting"):
        load(store, bad)
    nothing_of_the_load(store)
    assert store.collections() == []
    twice = text.replace('"collection":"small"', '"collection":"big"')
    with pytest.raises(DumpError, match="'big' appears twice"):
        load(store, twice)
    nothing_of_the_load(store)
    assert store.collections() == []


@pytest.mark.stress
def test_kill_9_of_acid_load_at_random_points(tmp_path: Path) -> None:
    """``acid load`` killed at random moments: every time, the store holds
    either the whole load under its real names or none of it, plus
    temporaries that ``drop_leftovers`` removes."""
    import random
    import time

    src = source(3000, 500)
    dump = tmp_path / "d.jsonl"
    dump.write_text(dump_text(src))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    rng = random.Random(7)
    for trial in range(20):
        url = f"lmdb:{tmp_path / f'dst{trial}'}"
        proc = subprocess.Popen(
            [sys.executable, "-m", "acid", "load", "--batch", "50", url, str(dump)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        time.sleep(rng.uniform(0.3, 2.5))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        store = acid.open(url)
        names = user_collections(store)
        assert names in ([], ["big", "small"]), names
        if names:
            big = store.add_collection("big")
            small = store.add_collection("small", key_func=lambda r: r["name"])
            assert (len(big), len(small)) == (3000, 500)
        drop_leftovers(store)
        assert leftovers(store) == []
        assert user_collections(store) == store.collections()
        assert store.stats()["records"] in (0, 3500)
        store.close()


@pytest.mark.parametrize("after", range(0, 17))
def test_a_commit_that_fails_at_any_batch_leaves_nothing(after: int) -> None:
    """The k-th commit of the load fails (the last one is the renames): the
    load is undone, the store holds what it held before, and what another
    writer committed meanwhile."""
    from acid.engines import from_url
    from acid.errors import ConflictError
    from tests.hooked_engine import HookedEngine

    text = dump_text(source())  # 16 full batches of 5, then a last one
    engine = HookedEngine(from_url("memory:/"))
    dst = acid.Store(engine)
    dst.add_collection("before").put({"b": 1})
    batches: list[int] = []

    def fail_next(n: int) -> None:
        batches.append(n)
        if len(batches) == 1:
            dst.add_collection("during").put({"d": 1})
        if len(batches) == after:
            engine.fail_commits = 1  # the load's next commit

    if after == 0:
        engine.fail_commits = 1  # the commit that creates the first temporary
    with pytest.raises(ConflictError):
        load(dst, text, progress=fail_next, force=True)
    assert engine.fail_commits == 0 and len(batches) == after
    expected = ["before", "during"] if after else ["before"]
    assert dst.collections() == expected
    nothing_of_the_load(dst)
    assert dst.stats()["records"] == len(expected)
    assert dst.check().ok
    # And the same load then succeeds whole.
    load(dst, text, force=True)
    assert dst.collections() == sorted([*expected, "big", "small"])
    assert dst.stats()["records"] == len(expected) + 43


def test_on_every_disk_engine(engine: str, tmp_path: Path) -> None:
    """A name taken mid-load, a damaged dump, then a whole load, on LMDB,
    LevelDB and PostgreSQL (a server engine with concurrent writers)."""
    from tests.ops.conftest import disk_url

    url = disk_url(engine, tmp_path / "dst")
    text = dump_text(source())
    dst = acid.open(url)
    # Another writer: its own connection (LMDB: its own environment
    # handle), or another Store over the engine (LevelDB is one-open).
    other = acid.Store(dst.engine) if engine == "leveldb" else acid.open(url)
    calls: list[int] = []

    def taker(n: int) -> None:
        calls.append(n)
        if len(calls) == 3:
            other.add_collection("big").put({"theirs": 1}, key=("t",))

    with pytest.raises(NameInUse, match="'big' was created in the target"):
        load(dst, text, progress=taker)
    assert dst.collections() == ["big"]
    assert list(dst.add_collection("big").items()) == [(("t",), {"theirs": 1})]
    nothing_of_the_load(dst)
    other.drop_collection("big")
    with pytest.raises(DumpError, match="the end line counts"):
        load(dst, damage(text, "counts"), progress=taker)
    assert dst.collections() == []
    nothing_of_the_load(dst)
    assert load(dst, text)["records"] == 43
    assert dst.collections() == ["big", "small"] and leftovers(dst) == []
    # (A fresh Store: the loader's own objects hold placeholders for the
    # indexes copied as data, whose functions are not declared here.)
    report = acid.Store(dst.engine).check()
    assert dst.stats()["records"] == 43 and report.ok
    if engine != "leveldb":
        other.close()
    dst.close()
