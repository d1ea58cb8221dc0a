"""Expiry travels in dumps (format 2) and copies: a collection's default ttl
and each record's deadline, across engines; format 1 dumps still load."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import acid
from acid import keylib
from acid.cli.transfer import DumpError
from acid.testing import FakeClock
from tests.ops.conftest import Run, disk_url
from tests.ops.test_dump_load import dump_text, load_text


def target_url(engine: str, path: Path) -> str:
    if engine == "memory":
        return f"memory:{path}.acid"
    return disk_url(engine, path)


def expiring_source(clock: FakeClock) -> acid.Store:
    src = acid.open("memory:/", clock=clock)
    sessions = src.add_collection("sessions", ttl=60)
    sessions.add_index("user", acid.field("user"))
    tokens = src.add_collection("tokens")  # expiry without a default
    plain = src.add_collection("plain")
    with src.begin(write=True):
        sessions.put({"user": "ada"}, key="s1")  # the default: now + 60
        sessions.put({"user": "alan"}, key="s2", ttl=acid.FOREVER)
        sessions.put({"user": "grace"}, key="s3", ttl=10)
        sessions.put({"user": "gone"}, key="s4", ttl=1)
        tokens.put({"t": 1}, key="t1", ttl=30)
        tokens.put({"t": 2}, key="t2")  # never expires
        plain.put({"p": 1})
    clock.now += 5  # s4 has expired: it is not dumped
    return src


def declared(store: acid.Store, name: str) -> acid.Collection:
    """The collection, its index declared (as an application does)."""
    coll = store.add_collection(name)
    if name == "sessions" and "user" in [n[1] for n, _ in store.index_metas(name)]:
        coll.add_index("user", acid.field("user"))
    return coll


def deadlines(store: acid.Store, name: str) -> dict[Any, float | None]:
    coll = declared(store, name)
    exp = coll.expiry

    def run() -> dict[Any, float | None]:
        txn = store.active()
        return {
            k: None if exp is None else exp.deadline(txn, keylib.pack(k))
            for k in coll.keys()
        }

    return store.in_txn(run)


def same_expiry(a: acid.Store, b: acid.Store) -> None:
    assert a.collections() == b.collections()
    for name in a.collections():
        assert deadlines(a, name) == deadlines(b, name), name
        ca, cb = declared(a, name), declared(b, name)
        assert list(ca.items()) == list(cb.items())
        assert len(ca) == len(cb)
        da = None if ca.expiry is None else ca.expiry.default
        db = None if cb.expiry is None else cb.expiry.default
        assert (ca.expiry is None, da) == (cb.expiry is None, db), name
    report = b.check()
    assert report.ok and not report.unchecked, report


@pytest.mark.parametrize("engine", ["memory", "lmdb", "leveldb"])
def test_a_round_trip_keeps_ttls_and_deadlines(engine: str, tmp_path: Path) -> None:
    clock = FakeClock()
    src = expiring_source(clock)
    text = dump_text(src)
    lines = [json.loads(x) for x in text.splitlines()]
    assert lines[0]["acid-dump"] == 2
    heads = {x["collection"]: x for x in lines if "collection" in x}
    assert heads["sessions"]["expiring"] is True and heads["sessions"]["ttl"] == 60
    assert heads["tokens"]["expiring"] is True and heads["tokens"]["ttl"] is None
    assert "expiring" not in heads["plain"]
    assert [x["k"] for x in lines if "k" in x and "d" in x] == [["s1"], ["s3"], ["t1"]]
    dst = acid.open(target_url(engine, tmp_path / "dst"), clock=clock)
    counts = load_text(dst, text, batch=2)
    assert counts["records"] == 6  # s4 had expired
    assert deadlines(dst, "sessions") == {
        ("s1",): 1_000_060.0,
        ("s2",): None,
        ("s3",): 1_000_010.0,
    }
    same_expiry(src, dst)
    assert dump_text(dst) == text
    # Both expire alike as time goes on, and the default ttl applies anew.
    for step in (6, 30, 30):
        clock.now += step
        same_expiry(src, dst)
    assert [k for k in dst.add_collection("sessions").keys()] == [("s2",)]
    sessions = dst.add_collection("sessions")
    sessions.add_index("user", acid.field("user"))
    sessions.put({"user": "new"}, key="s5")
    assert deadlines(dst, "sessions")[("s5",)] == clock.now + 60
    assert dst.expire() >= 3 and dst.check().ok
    dst.close()


def test_a_deadline_already_passed_at_load_is_loaded_expired() -> None:
    clock = FakeClock()
    text = dump_text(expiring_source(clock))
    later = FakeClock(clock.now + 1000)
    dst = acid.open("memory:/", clock=later)
    load_text(dst, text)
    sessions = dst.add_collection("sessions")
    sessions.add_index("user", acid.field("user"))
    assert [k for k in sessions.keys()] == [("s2",)]
    assert dst.expire() == 3
    assert dst.check().ok


def _plain_dump() -> str:
    src = acid.open("memory:/")
    src.add_collection("c").put({"x": 1})
    return dump_text(src)


def test_a_format_1_dump_still_loads() -> None:
    text = _plain_dump().replace('"acid-dump":2', '"acid-dump":1', 1)
    assert text.startswith('{"acid-dump":1,')
    dst = acid.open("memory:/")
    assert load_text(dst, text)["records"] == 1
    assert list(dst.add_collection("c").values()) == [{"x": 1}]


def _with(text: str, n: int, change: dict[str, Any]) -> str:
    lines = text.splitlines()
    obj = json.loads(lines[n])
    obj.update(change)
    lines[n] = json.dumps(obj)
    return "\n".join(lines) + "\n"


BAD = [
    (1, {"ttl": 60}, "'expiring' is true"),
    (1, {"expiring": True, "ttl": 0}, "ttl must be a positive number"),
    (1, {"expiring": True, "ttl": -5}, "ttl must be a positive number"),
    (1, {"expiring": True, "ttl": "60"}, "'ttl' is null or a positive number"),
    (1, {"expiring": True, "ttl": True}, "'ttl' is null or a positive number"),
    (1, {"expiring": True, "ttl": {"$float": "inf"}}, "'ttl' is null or a posit"),
    (1, {"expiring": True, "ttl": 10**400}, "'ttl' is null or a positive number"),
    (1, {"expiring": False}, "'expiring' is true"),
    (2, {"d": "soon"}, "'d' \\(a deadline\\) is a finite number"),
    (2, {"d": True}, "'d' \\(a deadline\\) is a finite number"),
    (2, {"d": {"$float": "nan"}}, "'d' \\(a deadline\\) is a finite number"),
    (2, {"d": 5.0}, "does not say it expires"),
    (2, {"d": 5.0, "x": 1}, "exactly 'k' and 'v'"),
]


@pytest.mark.parametrize("n,change,message", BAD)
def test_bad_expiry_lines_are_refused(n: int, change: Any, message: str) -> None:
    text = _with(_plain_dump(), n, change)
    dst = acid.open("memory:/")
    with pytest.raises((DumpError, ValueError), match=f"^line {n + 1}: .*{message}"):
        load_text(dst, text)
    assert dst.collections() == []


def test_a_format_1_dump_has_no_deadlines() -> None:
    text = _with(_plain_dump(), 1, {"expiring": True, "ttl": None})
    text = _with(text, 2, {"d": 5.0}).replace('"acid-dump": 2', '"acid-dump": 1')
    text = text.replace('"acid-dump":2', '"acid-dump":1')
    dst = acid.open("memory:/")
    with pytest.raises(DumpError, match="^line 3: deadlines are a feature of"):
        load_text(dst, text)
    assert dst.collections() == []


def _cli_source(url: str) -> None:
    store = acid.open(url)
    sessions = store.add_collection("sessions", ttl=3600)
    with store.begin(write=True):
        for i in range(30):
            sessions.put({"i": i}, key=i, ttl=None if i % 3 else 7200)
        sessions.put({"i": -1}, key=-1, ttl=acid.FOREVER)
    store.add_collection("plain").put({"p": 1})
    store.close()


def test_copy_between_engines_keeps_expiry(tmp_path: Path, acid_cmd: Run) -> None:
    urls = [
        f"memory:{tmp_path / 'a.acid'}",
        disk_url("lmdb", tmp_path / "b"),
        disk_url("leveldb", tmp_path / "c"),
        f"memory:{tmp_path / 'd.acid'}",
    ]
    _cli_source(urls[0])
    for src, dst in zip(urls, urls[1:], strict=False):
        proc = acid_cmd("copy", src, dst)
        assert proc.returncode == 0, proc.stderr
        assert "warning" not in proc.stderr and "check() agree" in proc.stderr
    dumped = acid_cmd("dump", urls[0], "-o", str(tmp_path / "d.jsonl"))
    assert dumped.returncode == 0, dumped.stderr
    loaded = acid_cmd("load", f"lmdb:{tmp_path / 'e'}", str(tmp_path / "d.jsonl"))
    assert loaded.returncode == 0, loaded.stderr
    first = acid.open(urls[0])
    for url in [*urls[1:], f"lmdb:{tmp_path / 'e'}"]:
        other = acid.open(url)
        same_expiry(first, other)
        assert len(deadlines(other, "sessions")) == 31
        assert other.add_collection("sessions").expiry.default == 3600.0
        other.close()
        proc = acid_cmd("check", url)
        assert proc.returncode == 0, proc.stderr
    first.close()
