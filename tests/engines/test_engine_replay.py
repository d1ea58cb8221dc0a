"""Traces replay identically across engines; the replay tool reports drift."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import acid
from acid.engines import Engine, from_url
from acid.engines.trace import TraceEngine
from acid.errors import ConfigError, Error
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
