"""Stores written by earlier releases keep working; newer ones are refused.

``tests/vectors/format1-store.txt`` holds every key and value of a small
store written by the release whose layout is format 1 (see
``tests/vectors/make_format1_store.py``). Each test loads it into a fresh
engine, byte for byte, and opens a Store over it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import acid
from acid import _layout, keylib
from acid.engines import Engine
from acid.errors import ConfigError
from tests.conftest import engine_url

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "format1-store.txt"
FORMAT_KEY = keylib.pack((_layout.Space.META, acid.KIND_STRUCT, "\x00acid"))


def load_pairs() -> list[tuple[bytes, bytes]]:
    pairs = []
    for line in VECTORS.read_text().splitlines():
        if line.startswith("#") or not line:
            continue
        k, v = line.split("\t")
        pairs.append((bytes.fromhex(k), bytes.fromhex(v)))
    return pairs


@pytest.fixture(params=["skiplist", "lmdb", "leveldb"])
def load(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[..., Engine]]:
    """Writes the vectors (changed by ``patch``) into a fresh engine."""
    engines: list[Engine] = []

    def loader(patch: dict[bytes, bytes] | None = None) -> Engine:
        engine = acid.engines.from_url(engine_url(request.param, str(tmp_path)))
        engines.append(engine)
        with engine.begin(write=True) as txn:
            for k, v in load_pairs():
                txn.put(k, (patch or {}).get(k, v))
        return engine

    yield loader
    for engine in engines:
        engine.close()


def users_of(store: acid.Store) -> tuple[acid.Collection, acid.Index, acid.Index]:
    users = store.add_collection("users", key_func=lambda r: r["id"])
    age = users.add_index("age", lambda r: r["age"])
    return users, age, users.add_index("email", lambda r: r["email"])


def test_the_vectors_say_format_1() -> None:
    pairs = dict(load_pairs())
    assert keylib.unpack(pairs[FORMAT_KEY]) == ("format", 1)
    assert _layout.FORMAT_VERSION >= 1


def test_a_format_1_store_reads(load: Callable[..., Engine]) -> None:
    store = acid.Store(load())
    assert store.collections() == ["docs", "notes", "persons", "users"]
    users, age, email = users_of(store)
    recs = list(users.values())
    assert [r["id"] for r in recs] == [i for i in range(60) if i != 7]
    assert users.get(7) is None and users.get(8)["age"] == 99
    for r in recs:
        assert (
            r["name"] == f"user{r['id']}" and r["email"] == f"user{r['id']}@example.com"
        )
    # Queries through both indexes agree with a scan of the records.
    want = sorted((r["age"], r["id"]) for r in recs if 30 <= r["age"] <= 40)
    got = [(r["age"], r["id"]) for r in age.values(lo=30, hi=40, include=True)]
    assert got == want and want
    assert [k for k in age.keys(lo=30, hi=40, include=True)] == [(i,) for _, i in want]
    assert email.get("user12@example.com")["id"] == 12
    assert email.get("user7@example.com") is None
    # Another encoder and compressor, a trained dictionary, a renamed
    # collection and its index, counters and application metadata.
    notes = store.add_collection("notes")
    assert [n["n"] for n in notes.values()] == [0, 1, 2, 3, 4]
    assert notes.get(3) == {"text": "note " * 22, "n": 2}  # auto keys from 1
    assert store.get_encoder("docs-dict") is not None
    docs = store.add_collection("docs")
    assert [k for k in docs.keys()] == [("doc", i) for i in range(40)]
    assert docs.get(("doc", 5))["name"] == "user1005"
    persons = store.add_collection(
        "persons", key_func=lambda r: (r["last"], r["first"])
    )
    born = persons.add_index("born", lambda r: r["born"])
    assert [r["first"] for r in born.values()] == ["Ada", "Grace", "Alan"]
    assert "tmp" not in store.collections()
    assert store.count("visits", 0) == 15
    assert store.get_meta(acid.KIND_STRUCT, "app") == {"schema": 3, "name": "fixture"}
    report = store.check()
    assert report.ok and report.checked_entries == 2 * 59 + 3


def test_a_format_1_store_takes_writes(load: Callable[..., Engine]) -> None:
    engine = load()
    store = acid.Store(engine)
    users, _, _ = users_of(store)
    with store.begin(write=True):
        users.put({"id": 100, "name": "n", "email": "new@x", "age": 31, "tags": []})
        users.put(dict(users.get(12), age=77))
        assert users.delete(13)
    tags = users.add_index("tag", lambda r: tuple(r["tags"][:1]))
    notes = store.add_collection("notes")
    key = notes.put({"text": "again", "n": 5})
    assert key == (6,)  # the stored auto-key counter goes on
    fresh = store.add_collection("fresh", encoder="msgpack")
    fresh.put({"a": 1}, key=1)
    assert store.check().ok
    # A second Store over the same engine sees everything, check included.
    again = acid.Store(engine)
    users2, age2, email2 = users_of(again)
    users2.add_index("tag", lambda r: tuple(r["tags"][:1]))
    assert email2.get("new@x")["id"] == 100
    assert users2.get(12)["age"] == 77 and users2.get(13) is None
    assert 12 in [r["id"] for r in age2.values(args=(77,))]
    assert sum(1 for _ in tags.keys()) == 59  # 60 - 7 - 13 + 100
    assert again.add_collection("fresh").get(1) == {"a": 1}
    assert again.check().ok
    # The version already stored stays the one that wrote the data.
    with engine.begin() as txn:
        assert keylib.unpack(txn.get(FORMAT_KEY)) == ("format", 1)


def test_a_newer_format_is_refused_with_its_version(
    load: Callable[..., Engine],
) -> None:
    newer = _layout.FORMAT_VERSION + 1
    engine = load({FORMAT_KEY: keylib.pack(("format", newer))})
    store = acid.Store(engine)
    with pytest.raises(ConfigError, match=f"format version {newer}"):
        store.add_collection("users", key_func=lambda r: r["id"])
    with pytest.raises(ConfigError, match=f"format version {newer}"):
        store.add_collection("brand-new")
    # Nothing was written: the data and the stored version are as they were.
    with engine.begin() as txn:
        assert keylib.unpack(txn.get(FORMAT_KEY)) == ("format", newer)
        assert dict(txn.iter(b"")).keys() == dict(load_pairs()).keys()


@pytest.mark.parametrize("bad", [b"", b"\xff\xff", keylib.pack(("format", "two"))])
def test_an_unreadable_format_record_is_refused(
    load: Callable[..., Engine], bad: bytes
) -> None:
    engine = load({FORMAT_KEY: bad})
    with pytest.raises((ConfigError, acid.errors.CorruptionError)):
        acid.Store(engine).add_collection("users", key_func=lambda r: r["id"])


def test_a_new_store_records_the_current_format(
    open_store: Callable[..., acid.Store],
) -> None:
    store = open_store()
    with store.engine.begin() as txn:
        assert txn.get(FORMAT_KEY) is None  # nothing written yet
    store.add_collection("c")
    with store.engine.begin() as txn:
        assert keylib.unpack(txn.get(FORMAT_KEY)) == ("format", _layout.FORMAT_VERSION)


NEWER_ELSEWHERE = """
import sys
import acid
store = acid.open(sys.argv[1])
with store.begin(write=True):
    store.schema.changed()  # a newer release's migration is a schema change
    store.set_meta(acid.KIND_STRUCT, "\\x00acid", {"format": int(sys.argv[2])})
store.close()
"""


@pytest.mark.parametrize("where", ["same process", "other process"])
def test_a_store_upgraded_elsewhere_is_refused_at_the_next_write(
    tmp_path: Path, where: str
) -> None:
    url = f"lmdb:{tmp_path}/db?map_size=64MiB"
    store = acid.open(url)
    users = store.add_collection("users", key_func=lambda r: r["id"])
    users.put({"id": 1})
    newer = _layout.FORMAT_VERSION + 1
    if where == "same process":
        other = acid.open(url)  # a second Store over the same environment
        with other.begin(write=True):
            other.schema.changed()
            other.set_meta(acid.KIND_STRUCT, "\x00acid", {"format": newer})
        other.close()
    else:
        import subprocess
        import sys

        code = NEWER_ELSEWHERE
        root = str(Path(__file__).resolve().parents[2])
        subprocess.run(
            [sys.executable, "-c", code, url, str(newer)],
            check=True,
            cwd=root,
            timeout=60,
        )
    with pytest.raises(ConfigError, match=f"format version {newer}"):
        users.put({"id": 2})
    with pytest.raises(ConfigError, match=f"format version {newer}"):
        acid.open(url).add_collection("users", key_func=lambda r: r["id"])
    assert users.get(2) is None  # the refused write did not land
    store.close()
