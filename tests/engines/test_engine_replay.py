"""Traces replay identically across engines; the replay tool reports drift."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import acid
from acid.engines import Engine, from_url
from acid.engines.trace import TraceEngine
from acid.errors import ConfigError, Error, TraceFormatError, TxnError
from acid.tools.replay import main, replay

keys = st.sampled_from([b"a", b"b", b"b\x00", b"c", b"\x00", b"\xff", b"zz"])
values = st.binary(max_size=3)
ops = st.one_of(
    st.tuples(st.just("get"), keys),
    st.tuples(st.just("put"), keys, values),
    st.tuples(st.just("delete"), keys),
    st.tuples(st.just("replace"), keys, values),
    st.tuples(st.just("pop"), keys),
    st.tuples(st.just("iter"), keys, st.booleans(), st.integers(0, 4)),
    st.tuples(st.just("read"), keys),  # a reader opened inside the writer
)
sessions = st.lists(
    st.tuples(st.lists(ops, max_size=12), st.sampled_from(["commit", "abort"])),
    min_size=1,
    max_size=6,
)


def run_session(engine: Engine, session: list[tuple[list[Any], str]]) -> None:
    for txn_ops, end in session:
        txn = engine.begin(write=True)
        readers = []
        live = []
        for op in txn_ops:
            name, args = op[0], op[1:]
            if name == "iter":
                it = txn.iter(args[0], args[1])
                live.append(it)
                for _ in range(args[2]):
                    if next(it, None) is None:
                        break
            elif name == "read":
                reader = engine.begin()
                reader.get(args[0])
                readers.append(reader)
            else:
                getattr(txn, name)(*args)
            for it in live:  # step older iterators after this write
                next(it, None)
        getattr(txn, end)()
        for reader in readers:
            list(reader.iter(b""))
            reader.abort()


@pytest.mark.parametrize("target", ["lmdb", "leveldb"])
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(session=sessions)
def test_skiplist_trace_replays_identically(
    tmp_path_factory: pytest.TempPathFactory, target: str, session: Any
) -> None:
    if target == "leveldb":
        pytest.importorskip("plyvel")
    out = io.StringIO()
    with TraceEngine(from_url("skiplist:/"), out) as traced:
        run_session(traced, session)
    path = tmp_path_factory.mktemp("replay")
    with from_url(f"{target}:{path}/db?sync=false") as engine:
        mismatches = replay(out.getvalue().splitlines(), engine)
    assert mismatches == []


def test_replay_reports_differences(tmp_path: Path) -> None:
    out = io.StringIO()
    with TraceEngine(from_url("skiplist:/"), out) as traced:
        with traced.begin(write=True) as txn:
            txn.put(b"k", b"v")
        with traced.begin() as txn:
            txn.get(b"k")
            list(txn.iter(b""))
    trace = out.getvalue()
    # A different engine state makes the same calls give different results.
    target = from_url("skiplist:/")
    with target.begin(write=True) as txn:
        txn.put(b"j", b"w")
    found = [str(m) for m in replay(trace.splitlines(), target)]
    assert found == [
        "line 8: T2 next I1: trace says x6b x76, replay gave x6a x77",
        "line 9: T2 next I1: trace says end, replay gave x6b x76",
    ]


def test_errors_are_recorded_and_replayed() -> None:
    out = io.StringIO()
    with TraceEngine(from_url("skiplist:/"), out) as traced:
        txn = traced.begin()
        with pytest.raises(Error):
            txn.put(b"k", b"v")
        txn.abort()
    assert "T1 put x6b x76 -> error:TxnError" in out.getvalue()
    assert replay(out.getvalue().splitlines(), from_url("skiplist:/")) == []


def test_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = tmp_path / "session.trace"
    with TraceEngine(from_url("skiplist:/"), trace) as traced:
        with traced.begin(write=True) as txn:
            txn.put(b"k", b"v")
            assert txn.get(b"k") == b"v"
    assert trace.read_text().startswith("# acid-trace 1 engine=skiplist:/")
    assert main([str(trace), f"lmdb:{tmp_path}/db?sync=false"]) == 0
    assert "gave the recorded results" in capsys.readouterr().out
    # Replaying onto the now non-empty LMDB still matches (puts only) but warns.
    assert main([str(trace), f"lmdb:{tmp_path}/db?sync=false"]) == 0
    assert "not empty" in capsys.readouterr().err
    text = trace.read_text().replace("get x6b -> x76", "get x6b -> x77")
    trace.write_text(text)
    assert main([str(trace), "skiplist:/"]) == 1
    assert "trace says x77, replay gave x76" in capsys.readouterr().out
    assert main([str(trace), "nosuch:/"]) == 2
    assert main([str(tmp_path / "missing"), "skiplist:/"]) == 2
    trace.write_text("garbage\n")
    assert main([str(trace), "skiplist:/"]) == 2


def test_cli_runs_as_a_module(tmp_path: Path) -> None:
    trace = tmp_path / "t"
    trace.write_text("T1 begin read -> ok\nT1 get x00 -> none\nT1 abort -> ok\n")
    done = subprocess.run(
        [sys.executable, "-m", "acid.tools.replay", str(trace), "skiplist:/"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


# -- ended transactions are released (LMDB has 126 reader slots) ------------


def test_replay_onto_lmdb_releases_ended_readers(tmp_path: Path) -> None:
    out = io.StringIO()
    with TraceEngine(from_url("skiplist:/"), out) as traced:
        with traced.begin(write=True) as txn:
            txn.put(b"k", b"v")
            txn.put(b"l", b"w")
        for i in range(300):
            reader = traced.begin()
            assert reader.get(b"k") == b"v"
            steps = reader.iter(b"")
            assert next(steps) == (b"k", b"v")  # left mid-way on purpose
            reader.commit() if i % 2 else reader.abort()
        # After the end every call, stepping an old iterator included, fails.
        with pytest.raises(TxnError):
            next(steps)
        with pytest.raises(TxnError):
            reader.get(b"k")
        reader.abort()  # a no-op once ended
    trace = out.getvalue()
    assert trace.count(" begin read -> ok") == 300
    with from_url(f"lmdb:{tmp_path}/db?sync=false") as engine:
        assert replay(trace.splitlines(), engine) == []
        # Every reader slot came back: one more reader still begins.
        engine.begin().abort()


# -- transaction ids are scoped per session ---------------------------------

CRASHING_SESSION = """
import os, sys
from acid.engines import from_url
from acid.engines.trace import TraceEngine

traced = TraceEngine(from_url(sys.argv[1]), sys.argv[2])
with traced.begin(write=True) as txn:
    txn.put(b"a", b"1")
orphan = traced.begin(write=True)
orphan.put(b"b", b"2")
reader = traced.begin()
reader.get(b"a")
os._exit(0)  # a crash: neither transaction ends, the engine is not closed
"""


def test_crashed_then_appended_trace_replays_fast(tmp_path: Path) -> None:
    url, trace = f"lmdb:{tmp_path}/original?sync=false", tmp_path / "app.trace"
    subprocess.run(
        [sys.executable, "-c", CRASHING_SESSION, url, str(trace)],
        check=True,
        timeout=60,
    )
    # A new process appends its own session to the same trace; its ids start
    # again at T1, like the crashed one's.
    with TraceEngine(from_url(url), trace) as traced:
        for i in range(4):
            with traced.begin(write=True) as txn:
                assert txn.get(b"a") == b"1"
                assert txn.get(b"b") is None  # the crash lost the orphan's put
                txn.put(b"c%d" % i, b"x")
        with traced.begin() as reader:
            assert len(list(reader.iter(b""))) == 5
    text = trace.read_text()
    assert text.count("# acid-trace ") == 2
    assert text.count("T1 begin write -> ok") == 2
    assert "T2 put x62 x32 -> ok" in text
    assert "T2 commit" not in text.split("# acid-trace ")[1]

    with from_url(f"lmdb:{tmp_path}/replayed?sync=false") as engine:
        started = time.perf_counter()
        mismatches = replay(text.splitlines(), engine)
        elapsed = time.perf_counter() - started
        assert mismatches == []
        assert elapsed < 1.5  # a writer waiting for the orphan waits 2 s
        # The orphan was aborted, not committed, and released its lock.
        assert engine.get(b"b") is None
        assert engine.get(b"c3") == b"x"
        engine.begin(write=True, timeout=0).abort()
    assert main([str(trace), f"lmdb:{tmp_path}/again?sync=false"]) == 0


def test_a_dropped_commit_line_is_reported_without_waiting() -> None:
    out = io.StringIO()
    with TraceEngine(from_url("skiplist:/"), out) as traced:
        for i in range(5):
            with traced.begin(write=True) as txn:
                txn.put(b"k%d" % i, b"v")
    lines = out.getvalue().splitlines()
    assert lines[3] == "T1 commit -> ok"
    del lines[3]
    started = time.perf_counter()
    found = [str(m) for m in replay(lines, from_url("skiplist:/"))]
    assert time.perf_counter() - started < 1.5
    # Only this replay holds T1 open, so waiting for it could never succeed.
    assert found[0] == (
        "line 4: T2 begin write: trace says ok, replay gave error:TxnTimeout"
    )
    assert len(found) == 4 * 3  # each later writer: begin, put, commit


def test_a_session_header_resets_iterator_ids_too() -> None:
    lines = [
        "# acid-trace 1 engine=skiplist:/ pid=1",
        "T1 begin write -> ok",
        "T1 put x61 x31 -> ok",
        "T1 iter I1 x fwd -> ok",
        "T1 commit -> ok",
        "# acid-trace 1 engine=skiplist:/ pid=2",
        "T1 begin read -> ok",
        "T1 iter I1 x fwd -> ok",
        "T1 next I1 -> x61 x31",
        "T1 next I1 -> end",
        "T1 abort -> ok",
    ]
    assert replay(lines, from_url("skiplist:/")) == []


def test_an_id_that_begins_twice_in_one_session_is_unusable() -> None:
    lines = ["T1 begin read -> ok", "T1 abort -> ok", "T1 begin read -> ok"]
    with pytest.raises(TraceFormatError, match="line 3: T1 began before"):
        replay(lines, from_url("skiplist:/"))


def test_a_newer_trace_version_is_unusable() -> None:
    with pytest.raises(TraceFormatError, match="line 1: .*version 99"):
        replay(["# acid-trace 99 engine=x:/ pid=1"], from_url("skiplist:/"))


# -- acid.open with a trace path it cannot use ------------------------------


def bad_trace_paths(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "file").write_text("")
    (tmp_path / "dir").mkdir()
    return {
        "a directory": tmp_path / "dir",
        "under a missing directory": tmp_path / "missing" / "t.trace",
        "under a regular file": tmp_path / "file" / "t.trace",
    }


@pytest.mark.parametrize(
    "case", ["a directory", "under a missing directory", "under a regular file"]
)
def test_open_with_a_bad_trace_path_closes_the_engine(
    tmp_path: Path, case: str
) -> None:
    pytest.importorskip("plyvel")
    bad = bad_trace_paths(tmp_path)[case]
    url = f"leveldb:{tmp_path}/db"
    with pytest.raises(ConfigError, match="trace") as raised:
        acid.open(url, trace_path=bad)
    assert isinstance(raised.value.__cause__, OSError)
    assert raised.value.__cause__.strerror in str(raised.value)
    # The LevelDB lock was given back: the same path opens again at once.
    store = acid.open(url)
    store.close()


@pytest.mark.parametrize("bad", [42, 4.5, [b"t.trace"], object()])
def test_open_with_a_trace_path_of_the_wrong_type(tmp_path: Path, bad: Any) -> None:
    pytest.importorskip("plyvel")
    url = f"leveldb:{tmp_path}/db"
    with pytest.raises(TypeError, match="trace"):
        acid.open(url, trace_path=bad)
    acid.open(url).close()
    assert not (tmp_path / "42").exists()


def test_trace_engine_with_a_bad_path_raises_config_error(tmp_path: Path) -> None:
    engine = from_url("skiplist:/")
    with pytest.raises(ConfigError) as raised:
        TraceEngine(engine, tmp_path)
    assert isinstance(raised.value.__cause__, IsADirectoryError)
    with pytest.raises(TypeError):
        TraceEngine(engine, 3)  # type: ignore[arg-type]  # not a file descriptor
    engine.close()


def test_open_that_fails_after_the_engine_opened_closes_it(tmp_path: Path) -> None:
    pytest.importorskip("plyvel")
    url = f"leveldb:{tmp_path}/db"
    with pytest.raises(TypeError, match="prefix") as raised:
        acid.open(url, trace_path=tmp_path / "t.trace", prefix=5)  # type: ignore[arg-type]
    assert raised.value is not None  # kept: its frames must not pin the engine
    acid.open(url).close()
    assert (tmp_path / "t.trace").read_text().endswith("engine close -> ok\n")


def test_an_engine_at_a_non_ascii_path_is_traced(tmp_path: Path) -> None:
    trace = tmp_path / "t.trace"
    with acid.open(f"lmdb:{tmp_path}/caf\u00e9\n/db", trace_path=trace) as store:
        store.add_collection("c").put({"a": 1})
    header = trace.read_text(encoding="ascii").splitlines()[0]
    assert header.startswith("# acid-trace 1 engine=lmdb:")
    assert header.endswith(f"/caf\\xe9\\n/db pid={os.getpid()}")
    assert main([str(trace), f"lmdb:{tmp_path}/replayed"]) == 0


@pytest.mark.parametrize("state", ["opened for reading", "closed"])
def test_a_file_that_cannot_take_the_trace_is_config_error(
    tmp_path: Path, state: str
) -> None:
    pytest.importorskip("plyvel")
    (tmp_path / "t.trace").write_text("")
    sink = open(tmp_path / "t.trace")  # noqa: SIM115 - its state is the test
    if state == "closed":
        sink.close()
    url = f"leveldb:{tmp_path}/db"
    with pytest.raises(ConfigError, match="not open for writing"):
        acid.open(url, trace_path=sink)
    sink.close()
    acid.open(url).close()  # the engine was closed: its directory is unlocked
    assert (tmp_path / "t.trace").read_text() == ""


def test_nothing_is_traced_after_close() -> None:
    # The session ends with "engine close": later calls fail as they would
    # untraced (the file may be closed) and leave no lines.
    out = io.StringIO()
    engine = TraceEngine(from_url("skiplist:/"), out)
    txn = engine.begin(write=True)
    engine.close()
    with pytest.raises(TxnError, match="closed"):
        txn.put(b"k", b"v")
    with pytest.raises(Error, match="closed"):
        engine.begin()
    assert out.getvalue().splitlines()[-2:] == [
        "T1 begin write -> ok",
        "engine close -> ok",
    ]
