"""Every command, in a subprocess, on the engines whose stores outlive it."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest

import acid
from tests.ops.conftest import Run, disk_url


def fill(url: str, module: str | None = None) -> None:
    store = acid.open(url)
    people = store.add_collection("people")
    people.add_index("city", lambda p: p.get("city"))
    with store.begin(write=True):
        for i, city in enumerate(["Oslo", "Lima", "Oslo", "Pune"]):
            people.put({"name": f"p{i}", "city": city})
        store.count("visits", 41)
    store.close()


def one_line_error(proc: object) -> str:
    err = proc.stderr  # type: ignore[attr-defined]
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_missing_store_is_refused_not_created(
    acid_cmd: Run, engine: str, tmp_path: Path
) -> None:
    if engine == "postgresql":
        pytest.skip("a server database always exists; its table is made on open")
    url = disk_url(engine, tmp_path / "nothing")
    for args in (
        ["info", url],
        ["stats", url],
        ["ls", url, "people"],
        ["get", url, "people", "[1]"],
        ["dump", url],
        ["check", url],
        ["backup", url, str(tmp_path / "bk")],
    ):
        proc = acid_cmd(*args)
        assert proc.returncode == 1, (args, proc.stderr)
        assert "no store at" in one_line_error(proc)
    assert not (tmp_path / "nothing").exists()
    assert not (tmp_path / "bk").exists()


def test_info_and_stats(acid_cmd: Run, engine: str, tmp_path: Path) -> None:
    url = disk_url(engine, tmp_path / "db")
    fill(url)
    proc = acid_cmd("info", url)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    people = next(line.split() for line in lines if line.startswith("people"))
    assert people[:5] == ["people", "4", "json", "plain", "auto"]
    city = next(line.split() for line in lines if ".city" in line)
    assert city[:2] == [".city", "4"]
    proc = acid_cmd("stats", "--json", url)
    assert proc.returncode == 0, proc.stderr
    st = json.loads(proc.stdout)
    assert st["records"] == 4 and st["counters"] == 2
    assert st["collections"]["people"]["indexes"]["city"]["entries"] == 4
    if engine == "lmdb":
        assert st["engine_stats"]["stat"]["psize"] > 0
        assert 0 < st["engine_stats"]["map_use"] < 1
    elif engine == "postgresql":
        assert isinstance(st["engine_stats"], dict)
    else:
        assert "leveldb.stats" in st["engine_stats"]
        assert len(st["engine_stats"]["files_per_level"]) == 7
    proc = acid_cmd("stats", url)
    assert proc.returncode == 0 and "collections.people.records" in proc.stdout


def test_ls_get_put_delete(acid_cmd: Run, engine: str, tmp_path: Path) -> None:
    url = disk_url(engine, tmp_path / "db")
    fill(url)
    proc = acid_cmd("ls", url, "people", "--lo", "[2]", "--max", "2")
    assert proc.stdout.splitlines() == [
        '[2]\t{"name":"p1","city":"Lima"}',
        '[3]\t{"name":"p2","city":"Oslo"}',
    ]
    proc = acid_cmd("ls", url, "people", "--reverse", "--keys-only")
    assert proc.stdout.split() == ["[4]", "[3]", "[2]", "[1]"]
    proc = acid_cmd("ls", url, "people", "--index", "city", "--prefix", '["Oslo"]')
    assert [line.split("\t")[:2] for line in proc.stdout.splitlines()] == [
        ['["Oslo"]', "[1]"],
        ['["Oslo"]', "[3]"],
    ]
    proc = acid_cmd("get", url, "people", "[2]")
    assert json.loads(proc.stdout) == {"name": "p1", "city": "Lima"}
    proc = acid_cmd("get", url, "people", "[99]")
    assert proc.returncode == 1 and "no record [99]" in one_line_error(proc)
    # The stored index has no function here: writes are refused, one line.
    proc = acid_cmd("put", url, "people", input='{"name": "x"}')
    assert proc.returncode == 1
    assert "has stored indexes" in one_line_error(proc)
    proc = acid_cmd("delete", url, "people", "[1]")
    assert proc.returncode == 1 and "has stored indexes" in one_line_error(proc)
    # JSON cannot hold a datetime: the encoder refuses, on one line.
    record = '{"when": {"$datetime": "2024-01-02T03:04:05+01:00"}, "n": {"$int": "1"}}'
    proc = acid_cmd("put", url, "events", input=record)
    assert proc.returncode == 2 and "encoder json" in one_line_error(proc)
    # A pickle collection holds every typed value, exactly.
    store = acid.open(url)
    store.add_collection("events", encoder=acid.encoders.PICKLE)
    store.close()
    proc = acid_cmd("put", url, "events", input=record)
    assert (proc.returncode, proc.stdout.strip()) == (0, "[1]"), proc.stderr
    proc = acid_cmd("put", url, "events", "--key", '["a", 2]', input="[1, 2]")
    assert (proc.returncode, proc.stdout.strip()) == (0, '["a",2]')
    proc = acid_cmd("get", url, "events", '["a", 2]')
    assert proc.stdout.strip() == "[1,2]"
    proc = acid_cmd("get", url, "events", "[1]")
    assert proc.stdout.strip() == (
        '{"when":{"$datetime":"2024-01-02T03:04:05+01:00"},"n":1}'
    )
    proc = acid_cmd("delete", url, "events", '["a", 2]')
    assert proc.returncode == 0
    proc = acid_cmd("delete", url, "events", '["a", 2]')
    assert proc.returncode == 1
    store = acid.open(url)
    events = store.add_collection("events")
    assert list(events.keys()) == [(1,)]
    when = events.get(1)["when"]
    assert when == datetime.datetime(2024, 1, 2, 2, 4, 5, tzinfo=datetime.UTC)
    store.close()


def test_put_with_key_function_needs_key_or_module(
    acid_cmd: Run, engine: str, tmp_path: Path, module: str
) -> None:
    url = disk_url(engine, tmp_path / "db")
    store = acid.open(url)
    store.add_collection("users", key_func=lambda u: u["id"])
    store.close()
    proc = acid_cmd("put", url, "users", input='{"id": 5}')
    assert proc.returncode == 2 and "--key" in one_line_error(proc)
    proc = acid_cmd("put", url, "users", "--key", "[5]", input='{"id": 5}')
    assert (proc.returncode, proc.stdout.strip()) == (0, "[5]")
    proc = acid_cmd("put", "-m", module, url, "users", input='{"id": 7, "tags": ["a"]}')
    assert (proc.returncode, proc.stdout.strip()) == (0, "[7]"), proc.stderr
    proc = acid_cmd("ls", url, "users", "--index", "tags", "--keys-only")
    assert proc.stdout.splitlines() == ['["a"]\t[7]']


def test_bad_input_is_exit_2_on_one_line(
    acid_cmd: Run, engine: str, tmp_path: Path
) -> None:
    url = disk_url(engine, tmp_path / "db")
    fill(url)
    for args, stdin in [
        (["get", url, "people", "[1"], None),
        (["get", url, "people", '[{"$bytes": "!"}]'], None),
        (["ls", url, "people", "--lo", "{"], None),
        (["put", url, "people"], "{not json"),
        (["put", url, "people"], '{"$float": "big"}'),
        # JSON would store both keys as "1": refused, nothing written
        (["put", url, "fresh"], '{"$dict": [[1, "a"], ["1", "b"]]}'),
        (["info", "nosuch:/x"], None),
        (["info", f"{url}{'&' if '?' in url else '?'}bogus=1"], None),
    ]:
        proc = acid_cmd(*args, input=stdin)
        assert proc.returncode == 2, (args, proc.stderr)
        one_line_error(proc)
    store = acid.open(url)
    assert len(store.add_collection("fresh")) == 0  # the refused put wrote nothing
    store.close()
    proc = acid_cmd("ls", url)  # usage: click names what is missing
    assert proc.returncode == 2 and "Missing argument" in proc.stderr
    proc = acid_cmd("ls", url, "nope")
    assert proc.returncode == 1 and "no collection named 'nope'" in proc.stderr


def test_debug_shows_the_traceback(acid_cmd: Run, engine: str, tmp_path: Path) -> None:
    url = disk_url(engine, tmp_path / "db")
    fill(url)
    proc = acid_cmd("--debug", "ls", url, "nope")
    assert proc.returncode == 1 and "Traceback" in proc.stderr


def test_every_command_has_help(acid_cmd: Run) -> None:
    proc = acid_cmd("--help")
    assert proc.returncode == 0
    commands = [
        "info",
        "stats",
        "ls",
        "get",
        "put",
        "delete",
        "dump",
        "load",
        "copy",
        "backup",
        "restore",
        "check",
        "replay",
        "build-index",
    ]
    for name in commands:
        assert name in proc.stdout
        sub = acid_cmd(name, "--help")
        assert sub.returncode == 0 and f"acid {name}" in sub.stdout, name


def test_check_reports_per_index_and_repairs(
    acid_cmd: Run, engine: str, tmp_path: Path, module: str
) -> None:
    url = disk_url(engine, tmp_path / "db")
    fill(url)
    proc = acid_cmd("check", url)
    assert proc.returncode == 0 and "unchecked" in proc.stdout
    proc = acid_cmd("check", "-m", module, url)
    assert proc.returncode == 0, proc.stderr
    assert [line.split()[:6] for line in proc.stdout.splitlines()[2:]] == [
        ["people", "city", "4", "0", "0", "ok"],
        ["users", "tags", "0", "0", "0", "ok"],  # declared by the module
    ]
    # Drift: an entry removed behind the library's back.
    store = acid.open(url)
    people = store.add_collection("people")
    idx = people.add_index("city", lambda p: p.get("city"))
    with store.begin(write=True):
        store.delete_range(idx.id)
    store.close()
    proc = acid_cmd("check", "-m", module, url, "--json")
    assert proc.returncode == 1
    row, _ = json.loads(proc.stdout)["indexes"]
    assert (row["index"], row["missing"], row["status"]) == ("city", 4, "DRIFTED")
    proc = acid_cmd("check", url, "--repair")  # no function: nothing to repair with
    assert proc.returncode == 0  # unchecked is not a failure
    proc = acid_cmd("check", "-m", module, url, "--repair")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "repaired people.city" in proc.stdout
    proc = acid_cmd("check", "-m", module, url)
    assert proc.returncode == 0


def test_replay_under_the_same_roof(acid_cmd: Run, tmp_path: Path) -> None:
    trace = tmp_path / "t.log"
    store = acid.open("skiplist:/", trace_path=trace)
    store.add_collection("c").put({"a": 1})
    store.close()
    proc = acid_cmd("replay", str(trace), "skiplist:/")
    assert proc.returncode == 0 and "gave the recorded results" in proc.stdout
    trace.write_text(trace.read_text() + "garbage line\n")
    proc = acid_cmd("replay", str(trace), "skiplist:/")
    assert proc.returncode == 2 and "line" in proc.stderr
    proc = acid_cmd("replay", str(tmp_path / "none"), "skiplist:/")
    assert proc.returncode == 2


def test_build_index_online_and_resume_after_kill(
    acid_cmd: Run, engine: str, tmp_path: Path
) -> None:
    url = disk_url(engine, tmp_path / "db")
    store = acid.open(url)
    coll = store.add_collection("people")
    with store.begin(write=True):
        for i in range(300):
            coll.put({"name": f"p{i}", "city": ["Oslo", "Lima", "Pune"][i % 3]})
    fns = tmp_path / "fns.py"
    fns.write_text("def city(p):\n    return p['city']\n")

    # Interrupt a build after its first batches, as a kill would.
    def stop(done: int, total: int | None) -> None:
        if done >= 100:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        coll.add_index(
            "city", lambda p: p["city"], build="online", batch=50, progress=stop
        )
    store.close()
    proc = acid_cmd("ls", url, "people", "--index", "city")
    assert proc.returncode == 1 and "being built online" in proc.stderr
    proc = acid_cmd(
        "build-index", url, "people", "city", f"{fns}:city", "--batch", "64"
    )
    assert proc.returncode == 0, proc.stderr
    assert "index people.city is ready: 300 entries" in proc.stderr
    proc = acid_cmd(
        "ls", url, "people", "--index", "city", "--prefix", '["Lima"]', "--keys-only"
    )
    assert len(proc.stdout.splitlines()) == 100
    proc = acid_cmd("build-index", url, "people", "city", f"{fns}:nope")
    assert proc.returncode == 2 and "no function 'nope'" in proc.stderr
    proc = acid_cmd("build-index", url, "people", "city", "nocolon")
    assert proc.returncode == 2


def test_copy_onto_itself_is_refused(
    acid_cmd: Run, engine: str, tmp_path: Path
) -> None:
    url = disk_url(engine, tmp_path / "db")
    fill(url)
    proc = acid_cmd("copy", url, url)
    assert proc.returncode in (1, 2)
    one_line_error(proc)
    if engine != "postgresql":  # a path naming the store itself
        proc = acid_cmd("backup", url, str(tmp_path / "db"))
        assert proc.returncode == 2 and "not empty" in proc.stderr
    proc = acid_cmd("backup", url, url)
    assert proc.returncode in (1, 2)
    one_line_error(proc)
    proc = acid_cmd("ls", url, "people", "--keys-only")
    assert proc.stdout.split() == ["[1]", "[2]", "[3]", "[4]"]
