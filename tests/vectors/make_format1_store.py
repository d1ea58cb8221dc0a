"""Writes ``format1-store.txt``: every key and value of a small store.

The file was written once by the release whose layout is format 1 and is
kept as it is: ``tests/layer/test_format_vectors.py`` loads it into each
engine and checks that the current code opens, reads, queries and writes
it. Running this script again with later code would write *that* code's
layout, so it is kept only to show how the vectors were made.

Run: python tests/vectors/make_format1_store.py > tests/vectors/format1-store.txt
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import acid
from acid import encoders

TAGS = ["red", "green", "blue", "admin"]


def user(i: int, rng: random.Random) -> dict:
    return {
        "id": i,
        "name": f"user{i}",
        "email": f"user{i}@example.com",
        "age": rng.randint(18, 90),
        "tags": rng.sample(TAGS, 2),
    }


def main() -> None:
    rng = random.Random(1)
    store = acid.open("skiplist:/")
    users = store.add_collection("users", key_func=lambda r: r["id"], encoder="msgpack")
    users.add_index("age", lambda r: r["age"])
    users.add_index("email", lambda r: r["email"])
    notes = store.add_collection("notes", encoder="json", compressor="zlib")
    samples = [encoders.MSGPACK.pack(user(i, rng)) for i in range(300)]
    comp = store.train_compressor("docs-dict", samples, size=1024)
    docs = store.add_collection("docs", encoder="msgpack", compressor=comp)
    people = store.add_collection("people", key_func=lambda r: (r["last"], r["first"]))
    people.add_index("born", lambda r: r["born"])
    tmp = store.add_collection("tmp")
    with store.begin(write=True):
        for i in range(60):
            users.put(user(i, rng))
        for i in range(5):
            notes.put({"text": "note " * (i + 20), "n": i})
        for i in range(40):
            docs.put(user(1000 + i, rng), key=("doc", i))
        people.put({"last": "Lovelace", "first": "Ada", "born": 1815})
        people.put({"last": "Hopper", "first": "Grace", "born": 1906})
        people.put({"last": "Turing", "first": "Alan", "born": 1912})
        tmp.put({"x": 1})
    users.delete(7)
    users.put(dict(users.get(8), age=99))
    store.rename_collection("people", "persons")
    store.drop_collection("tmp")
    store.count("visits", 5, init=10)
    store.set_meta(acid.KIND_STRUCT, "app", {"schema": 3, "name": "fixture"})
    assert store.check().ok
    print("# acid store, format 1: hex key, a tab, hex value; one pair a line")
    txn = store.engine.begin()
    try:
        for k, v in txn.iter(b""):
            print(f"{k.hex()}\t{v.hex()}")
    finally:
        txn.abort()
    store.close()


if __name__ == "__main__":
    main()
