"""Hostile dumps and a hostile shell: end lines whose totals lie, a closed
standard input, an output pipe closed by its reader."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import acid
from acid.cli.transfer import DumpError
from tests.conftest import HAVE_PLYVEL
from tests.ops.conftest import Run
from tests.ops.test_dump_load import declare, dump_text, fill, load_text


def _nothing_loaded(store: acid.Store) -> None:
    assert store.collections() == []
    assert store.get_meta(acid.KIND_STRUCT, "app") is None
    assert store.stats()["records"] == 0


def _end(lines: list[str]) -> dict[str, object]:
    end: dict[str, object] = json.loads(lines[-1])["end"]
    return end


def test_an_extra_index_entry_under_a_true_record_count_is_refused() -> None:
    """A forged entry (pointing at no record) with the end line left as it
    was: the entry total differs, so the load must not land."""
    a, b = acid.open("skiplist:/"), acid.open("skiplist:/")
    fill(a)
    lines = dump_text(a).splitlines()
    at = next(i for i, x in enumerate(lines) if x.startswith('{"e"'))
    forged = json.loads(lines[at])
    forged["e"][1] = [999]
    lines.insert(at + 1, json.dumps(forged))
    with pytest.raises(DumpError, match=r"line \d+: the end line counts 5 entries"):
        load_text(b, "\n".join(lines) + "\n")
    _nothing_loaded(b)


def test_a_missing_index_entry_is_refused() -> None:
    a, b = acid.open("skiplist:/"), acid.open("skiplist:/")
    fill(a)
    lines = dump_text(a).splitlines()
    at = next(i for i, x in enumerate(lines) if x.startswith('{"e"'))
    del lines[at]
    with pytest.raises(DumpError, match="entries"):
        load_text(b, "\n".join(lines) + "\n", batch=1)
    _nothing_loaded(b)


def test_a_record_moved_to_another_collection_is_refused() -> None:
    """Totals right, but a record sits under the wrong collection: the
    end line's per-collection counts say so."""
    a, b = acid.open("skiplist:/"), acid.open("skiplist:/")
    fill(a)
    lines = dump_text(a).splitlines()
    end = _end(lines)
    assert end["records"] == 34
    by_coll = end["by_collection"]
    assert isinstance(by_coll, dict)
    # Move the last "people" record line into "packed" (auto keys there).
    starts = [i for i, x in enumerate(lines) if x.startswith('{"collection"')]
    names = [json.loads(lines[i])["collection"] for i in starts]
    packed = starts[names.index("packed")]
    people = starts[names.index("people")]
    record = next(
        i for i in range(people + 1, len(lines)) if lines[i].startswith('{"k"')
    )
    line = lines.pop(record)
    moved = json.loads(line)
    moved["k"] = [500]
    lines.insert(packed + 1, json.dumps(moved))
    with pytest.raises(DumpError, match="by_collection"):
        load_text(b, "\n".join(lines) + "\n")
    _nothing_loaded(b)


def test_the_index_entries_a_module_recomputes_still_count() -> None:
    """--module recomputes entries rather than loading them, but the file's
    entry lines are still held against the end line (and a true one loads)."""
    a = acid.open("skiplist:/")
    fill(a)
    text = dump_text(a)
    b = acid.open("skiplist:/")
    declare(b)  # every index function: every entry line is skipped
    counts = load_text(b, text)
    assert counts["records"] == 34
    assert b.check().ok


def _run(
    tmp_path: Path, *args: str, stdin: int | None = None
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[2]))
    return subprocess.run(
        [sys.executable, "-m", "acid", *args],
        stdin=stdin,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
        close_fds=True,
    )


def _closed_stdin(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run with file descriptor 0 closed (``<&-`` in a shell)."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[2]))
    return subprocess.run(
        ["sh", "-c", 'exec "$@" <&-', "sh", sys.executable, "-m", "acid", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )


def test_load_with_standard_input_closed_is_a_usage_error(tmp_path: Path) -> None:
    proc = _closed_stdin(tmp_path, "load", f"lmdb:{tmp_path / 'db'}")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "stdin" in proc.stderr
    assert not (tmp_path / "db").exists()


def test_put_with_standard_input_closed_is_a_usage_error(tmp_path: Path) -> None:
    proc = _closed_stdin(tmp_path, "put", f"lmdb:{tmp_path / 'db'}", "t")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("acid: error: standard input is closed")
    assert len(proc.stderr.splitlines()) == 1


@pytest.mark.parametrize("command", [["ls", "t"], ["dump"]])
def test_output_piped_to_a_reader_that_stops_exits_0(
    tmp_path: Path, acid_cmd: Run, command: list[str]
) -> None:
    url = f"lmdb:{tmp_path / 'db'}"
    store = acid.open(url)
    coll = store.add_collection("t")
    with store.begin(write=True):
        for i in range(20_000):  # far more than a pipe buffer holds
            coll.put({"i": i, "pad": "x" * 40})
    store.close()
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[2]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "acid", *command[:1], url, *command[1:]],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        env=env,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # the reader goes away, like ``head -1``
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, err
    assert first and err == ""


def _with_line(lines: list[str], at: int, line: str) -> str:
    return "\n".join([*lines[:at], line, *lines[at:]]) + "\n"


def test_a_dump_cannot_write_the_stores_own_metadata(tmp_path: Path) -> None:
    """A meta line named like the store's format record (``\\x00acid``) was
    loaded over it: exit 0, and the store then claimed a format it is not."""
    a = acid.open("skiplist:/")
    fill(a)
    lines = dump_text(a).splitlines()
    own = '{"meta":"struct","name":["\\u0000acid"],"value":{"format":99}}'
    b = acid.open(f"lmdb:{tmp_path / 'b'}")
    with pytest.raises(DumpError, match=f"line {len(lines)}: metadata names"):
        load_text(b, _with_line(lines, len(lines) - 1, own))
    assert (b.get_meta(acid.KIND_STRUCT, "\x00acid") or {}).get("format") != 99
    _nothing_loaded(b)
    b.close()
    assert acid.open(f"lmdb:{tmp_path / 'b'}").collections() == []


@pytest.mark.parametrize(
    "info",
    [
        '{"type":"zstd-dict"}',
        '{"type":"zstd-dict","dict":"abc","level":3}',
        '{"type":"zstd-dict","dict":{"$bytes":"AAAA"},"level":"3"}',
    ],
)
def test_a_compressor_line_without_its_dictionary_is_a_dump_error(
    tmp_path: Path, acid_cmd: Run, info: str
) -> None:
    """It escaped as a bare KeyError/TypeError (no line number; exit 1 for
    the KeyError, as if something was not found)."""
    a = acid.open("skiplist:/")
    fill(a)
    lines = dump_text(a).splitlines()
    text = _with_line(lines, 1, f'{{"compressor":"d","info":{info}}}')
    b = acid.open("skiplist:/")
    with pytest.raises(DumpError, match="line 2: compressor 'd'"):
        load_text(b, text)
    _nothing_loaded(b)
    (tmp_path / "d.jsonl").write_text(text)
    proc = acid_cmd("load", f"lmdb:{tmp_path / 'db'}", str(tmp_path / "d.jsonl"))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("acid: error: line 2: compressor 'd'")
    assert len(proc.stderr.splitlines()) == 1


def test_a_trained_dictionary_still_travels(tmp_path: Path, acid_cmd: Run) -> None:
    url = f"lmdb:{tmp_path / 'src'}"
    store = acid.open(url)
    samples = [f'{{"name": "user{i}", "city": "Paris"}}'.encode() for i in range(300)]
    comp = store.train_compressor("d1", samples, size=1024)
    coll = store.add_collection("z", compressor=comp)
    for i in range(50):
        coll.put({"name": f"user{i}", "city": "Paris"})
    store.close()
    dump = acid_cmd("dump", url)
    assert dump.returncode == 0 and '{"compressor":"d1"' in dump.stdout
    dst = f"leveldb:{tmp_path / 'dst'}" if HAVE_PLYVEL else f"lmdb:{tmp_path / 'dst'}"
    proc = acid_cmd("load", dst, input=dump.stdout)
    assert proc.returncode == 0, proc.stderr
    back = acid.open(dst)
    assert list(back.add_collection("z").values())[7] == {
        "name": "user7",
        "city": "Paris",
    }
    assert back.check().ok
