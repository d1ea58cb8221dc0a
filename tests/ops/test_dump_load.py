"""Dump and load: exact round trips across engines, and malformed files that
load nothing."""

from __future__ import annotations

import datetime
import io
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

import acid
from acid.cli.transfer import (
    DUMP_VERSION,
    DumpError,
    DumpReader,
    Loader,
    items,
    to_line,
)
from acid.errors import NameInUse, NotFound
from tests.conftest import HAVE_PLYVEL
from tests.ops.conftest import Run, disk_url
from tests.ops.test_typedjson import same

ENGINES = ["skiplist", "lmdb", "leveldb"]


def url_for(engine: str, path: Path) -> str:
    if engine == "skiplist":
        return "skiplist:/"
    return disk_url(engine, path)


def tags(rec: dict[str, Any]) -> list[Any]:
    return rec.get("tags", [])


def declare(store: acid.Store) -> dict[str, acid.Collection]:
    people = store.add_collection("people")
    people.add_index("city", lambda p: p["city"])
    things = store.add_collection(
        "things", key_func=lambda t: (t["kind"], t["n"]), encoder=acid.encoders.PICKLE
    )
    things.add_index("tags", tags)
    packed = store.add_collection(
        "packed", encoder=acid.encoders.MSGPACK, compressor=acid.encoders.ZSTD
    )
    return {"people": people, "things": things, "packed": packed}


def fill(store: acid.Store) -> None:
    colls = declare(store)
    when = datetime.datetime(2024, 2, 29, 23, 59, 59, 999999)
    aware = when.replace(tzinfo=datetime.timezone(datetime.timedelta(hours=-7)))
    with store.begin(write=True):
        for i, city in enumerate(["Oslo", "Lima", "Oslo"]):
            colls["people"].put({"name": f"p{i}", "city": city})
        colls["things"].put(
            {
                "kind": b"\x00\xff",
                "n": 2**70,
                "tags": [("a", 1), ("b", uuid.UUID(int=7))],
                "at": (when, aware),
                "odd": {1: float("inf"), (1, "x"): None, "$ref": -0.0},
            }
        )
        colls["things"].put({"kind": "plain", "n": -1, "tags": ["solo"]})
        for i in range(30):
            colls["packed"].put({"i": i, "blob": bytes(range(i))})
        store.count("visits", 10)
        store.set_meta(acid.KIND_STRUCT, "app", {"version": 3, "owner": "ops"})
        colls["people"].delete(2)  # the counter stays ahead of the records


def assert_same_content(a: acid.Store, b: acid.Store) -> None:
    ca, cb = declare(a), declare(b)
    assert a.collections() == b.collections()
    for name in ca:
        left, right = list(ca[name].items()), list(cb[name].items())
        assert len(left) == len(right) > 0
        for (ka, va), (kb, vb) in zip(left, right, strict=True):
            assert same(ka, kb) and same(va, vb), (name, ka)
        for iname, idx in ca[name].indices.items():
            assert list(idx.pairs()) == list(cb[name].indices[iname].pairs())
    user = {k: v for k, v in a.counters().items() if not k.startswith("\x00")}
    assert user == {k: v for k, v in b.counters().items() if not k.startswith("\x00")}
    assert a.get_meta(acid.KIND_STRUCT, "app") == b.get_meta(acid.KIND_STRUCT, "app")
    report = b.check()
    assert report.ok and not report.unchecked


def dump_text(store: acid.Store, *names: str) -> str:
    return "".join(to_line(item) + "\n" for item in items(store, names))


def load_text(store: acid.Store, text: str, **kwargs: Any) -> dict[str, Any]:
    reader = DumpReader(io.StringIO(text))
    return Loader(store, **kwargs).run(reader, lambda: reader.lineno)


@pytest.mark.parametrize(
    "src,dst", [("lmdb", "leveldb"), ("leveldb", "skiplist"), ("skiplist", "lmdb")]
)
def test_dump_then_load_into_another_engine_is_equal(
    src: str, dst: str, tmp_path: Path
) -> None:
    a = acid.open(url_for(src, tmp_path / "a"))
    b = acid.open(url_for(dst, tmp_path / "b"))
    fill(a)
    text = dump_text(a)
    counts = load_text(b, text, batch=3)  # many small transactions
    assert counts["records"] == 2 + 2 + 30
    assert counts["entries"] == 2 + 3  # copied as data: no functions declared
    assert_same_content(a, b)
    # And the dump of the copy is the same dump.
    assert dump_text(b) == text
    a.close()
    b.close()


def test_load_with_functions_derives_entries(tmp_path: Path) -> None:
    a, b = acid.open("skiplist:/"), acid.open("skiplist:/")
    fill(a)
    declare(b)  # what --module does: functions known, entries recomputed
    counts = load_text(b, dump_text(a))
    assert counts["entries"] == 0
    assert_same_content(a, b)


def test_dump_of_some_collections(tmp_path: Path) -> None:
    a, b = acid.open("skiplist:/"), acid.open("skiplist:/")
    fill(a)
    load_text(b, dump_text(a, "people"))
    assert b.collections() == ["people"]
    assert b.counters().get("visits") is None  # not the collection's counter
    assert b.counters()["key:people"] == a.counters()["key:people"]
    with pytest.raises(NotFound, match="no collection named 'nope'"):
        dump_text(a, "nope")


def test_load_refuses_a_non_empty_store_unless_forced() -> None:
    a, b = acid.open("skiplist:/"), acid.open("skiplist:/")
    fill(a)
    b.add_collection("mine").put({"x": 1})
    text = dump_text(a)
    with pytest.raises(NameInUse, match="not empty"):
        load_text(b, text)
    load_text(b, text, force=True)
    assert b.collections() == ["mine", "packed", "people", "things"]
    with pytest.raises(NameInUse, match="already exists"):
        load_text(b, text, force=True)
    assert list(b.add_collection("mine").values()) == [{"x": 1}]
    assert len(list(b.add_collection("people").keys())) == 2  # untouched


def _lines(store: acid.Store) -> list[str]:
    return dump_text(store).splitlines()


def _bad(lines: list[str], case: str) -> tuple[list[str], int]:
    """A damaged copy of a dump, and the line number the error must name."""
    first_record = next(i for i, x in enumerate(lines) if x.startswith('{"k"'))
    late = len(lines) - 5  # deep in, after several batches
    out = list(lines)
    if case == "bad json":
        out[late] = '{"k": [1], "v": '
        return out, late + 1
    if case == "unknown tag":
        out[late] = '{"k": [1], "v": {"$pickle": "x"}}'
        return out, late + 1
    if case == "bad bytes":
        out[late] = '{"k": [{"$bytes": "@@"}], "v": 1}'
        return out, late + 1
    if case == "key not array":
        out[first_record] = '{"k": 1, "v": 1}'
        return out, first_record + 1
    if case == "truncated":
        return out[:late], late
    if case == "empty line":
        out.insert(late, "")
        return out, late + 1
    if case == "after end":
        return [*out, out[first_record]], len(out) + 1
    if case == "wrong count":
        out[-1] = out[-1].replace('"records":34', '"records":35')
        return out, len(out)
    if case == "no header":
        return out[1:], 1
    if case == "future version":
        out[0] = out[0].replace(f'"acid-dump":{DUMP_VERSION}', '"acid-dump":9')
        return out, 1
    if case == "record first":
        return [out[0], out[first_record], *out[1:]], 2
    if case == "entry of unknown index":
        out[late] = '{"index": "nope"}'
        return out, late + 1
    raise AssertionError(case)


CASES = [
    "bad json",
    "unknown tag",
    "bad bytes",
    "key not array",
    "truncated",
    "empty line",
    "after end",
    "wrong count",
    "no header",
    "future version",
    "record first",
    "entry of unknown index",
]


@pytest.mark.parametrize("case", CASES)
def test_malformed_dump_names_the_line_and_loads_nothing(case: str) -> None:
    a, b = acid.open("skiplist:/"), acid.open("skiplist:/")
    fill(a)
    lines, lineno = _bad(_lines(a), case)
    with pytest.raises((DumpError, acid.errors.Error, ValueError)) as info:
        load_text(b, "\n".join(lines) + "\n", batch=2)
    assert str(info.value).startswith(f"line {lineno}: "), str(info.value)
    assert b.collections() == []
    assert {k for k in b.counters() if not k.startswith("\x00")} == set()
    assert b.get_meta(acid.KIND_STRUCT, "app") is None
    # Nothing of the collections' key spaces is left in the engine.
    st = b.stats()
    assert st["records"] == 0 and st["collections"] == {}


def test_a_failure_mid_load_removes_what_was_written() -> None:
    a, b = acid.open("skiplist:/"), acid.open("skiplist:/")
    fill(a)
    people = b.add_collection("people")

    def city(p: dict[str, Any]) -> str:
        if p["name"] == "p2":
            raise RuntimeError("injected")
        return str(p["city"])

    people.add_index("city", city)
    with pytest.raises(RuntimeError, match="injected"):
        load_text(b, dump_text(a), batch=1)
    # The declared collection was there before the load: it stays, empty;
    # nothing of the load is left (no temporary, no counter).
    assert b.collections() == ["people"]
    assert len(people) == 0 and list(people.items()) == []
    assert {k for k in b.counters() if not k.startswith("\x00")} == set()
    # Declared for this load (as --module does in an empty target): dropped.
    with pytest.raises(RuntimeError, match="injected"):
        load_text(b, dump_text(a), batch=1, own=["people"])
    assert b.collections() == []
    assert b.stats()["records"] == 0


@pytest.mark.skipif(not HAVE_PLYVEL, reason="plyvel is not installed")
def test_cli_dump_load_and_copy(acid_cmd: Run, tmp_path: Path, module: str) -> None:
    src = f"lmdb:{tmp_path / 'src'}"
    a = acid.open(src)
    fill(a)
    a.close()
    proc = acid_cmd("dump", src, "-o", str(tmp_path / "d.jsonl"))
    assert proc.returncode == 0, proc.stderr
    proc = acid_cmd("dump", src)
    assert proc.stdout == (tmp_path / "d.jsonl").read_text()
    dst = f"leveldb:{tmp_path / 'dst'}"
    proc = acid_cmd("load", dst, input=proc.stdout)
    assert proc.returncode == 0, proc.stderr
    assert "34 records, 5 index entries" in proc.stderr
    proc = acid_cmd("load", dst, str(tmp_path / "d.jsonl"))
    assert proc.returncode == 1 and "not empty" in proc.stderr
    proc = acid_cmd("copy", src, f"lmdb:{tmp_path / 'copy'}")
    assert proc.returncode == 0, proc.stderr
    assert "check() agree" in proc.stderr
    proc = acid_cmd("copy", src, f"lmdb:{tmp_path / 'copy'}")
    assert proc.returncode == 1 and "not empty" in proc.stderr
    a = acid.open(src)
    for url in (dst, f"lmdb:{tmp_path / 'copy'}"):
        b = acid.open(url)
        assert_same_content(a, b)
        b.close()
    # A damaged file: exit 2, "line N:", and the new store stays empty.
    text = (tmp_path / "d.jsonl").read_text().splitlines()
    text[5] = text[5][:-3]
    proc = acid_cmd(
        "load", "--batch", "1", f"lmdb:{tmp_path / 'bad'}", input="\n".join(text)
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("acid: error: line 6: "), proc.stderr
    bad = acid.open(f"lmdb:{tmp_path / 'bad'}")
    assert bad.collections() == []
    bad.close()
    proc = acid_cmd("load", f"lmdb:{tmp_path / 'bad'}", input="\xff\xfe garbage\n")
    assert proc.returncode == 2 and "line 1:" in proc.stderr
    a.close()


def test_a_building_index_is_not_dumped_half_built() -> None:
    a = acid.open("skiplist:/")
    fill(a)
    things = a["things"]

    def stop(done: int, total: int | None) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        things.add_index("n", lambda t: t["n"], build="online", batch=1, progress=stop)
    with pytest.raises(acid.errors.ConstraintError, match="being built online"):
        dump_text(a)
    assert dump_text(a, "people")  # the other collections still dump


def test_token_and_qgram_indexes_travel_with_their_kind() -> None:
    from acid.cli.transfer import open_collection, open_index

    a, b = acid.open("skiplist:/"), acid.open("skiplist:/")
    docs = a.add_collection("docs")
    docs.add_index("words", acid.tokens("body"))
    docs.add_index("grams", acid.qgrams("body", q=2))
    docs.add_index("custom", acid.tokens("body", tokenizer=str.split))
    with a.begin(write=True):
        docs.put({"body": "green tea"})
        docs.put({"body": "black coffee"})
    text = dump_text(a)
    header = json.loads(text.splitlines()[1])
    assert header["index_meta"] == {
        "grams": {"text": "qgrams", "q": 2, "fields": {"$tuple": ["$grams:2:body"]}},
        "words": {"text": "tokens", "fields": {"$tuple": ["$text:body"]}},
        "custom": {"text": "tokens"},  # a tokenizer of its own: not rebuilt
    }
    counts = load_text(b, text)
    # Declarative indexes are recomputed; the custom one is copied as data.
    assert counts["entries"] == len(list(docs.indices["custom"].pairs()))
    # Read through them without their functions, as the command line does.
    reader = acid.Store(b.engine)
    words = open_index(open_collection(reader, "docs"), "words")
    assert [t for t, _ in words.pairs()] == [
        ("black",),
        ("coffee",),
        ("green",),
        ("tea",),
    ]
    # Declared again with the same kind: they check out and answer queries.
    again = acid.Store(b.engine).add_collection("docs")
    w = again.add_index("words", acid.tokens("body"))
    again.add_index("grams", acid.qgrams("body", q=2))
    again.add_index("custom", acid.tokens("body", tokenizer=str.split))
    custom = open_index(open_collection(reader, "docs"), "custom")
    assert [t for t, _ in custom.pairs()] == [
        ("black",),
        ("coffee",),
        ("green",),
        ("tea",),
    ]
    assert [r["body"] for _, r in w.search("tea")] == ["green tea"]
    report = again.store.check()
    assert report.ok and not report.unchecked
