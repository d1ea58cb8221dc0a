"""store.stats(): counts from one snapshot, and the engine's own figures."""

from __future__ import annotations

import json

import acid


def test_stats_counts_on_every_engine(store: acid.Store, engine_name: str) -> None:
    people = store.add_collection("people")
    people.add_index("tags", lambda p: p["tags"])
    store.add_collection("empty")
    with store.begin(write=True):
        for i in range(10):
            people.put({"tags": ["a", "b"][: i % 3]})
        store.count("visits")
    st = store.stats()
    json.dumps(st)  # plain values only
    assert st["records"] == 10 and st["counters"] == 2 and st["format"] == 1
    assert st["collections"]["empty"]["records"] == 0
    p = st["collections"]["people"]
    assert p["records"] == 10 and p["encoder"] == "json" and p["keys"] == "auto"
    assert p["indexes"]["tags"]["entries"] == sum(min(i % 3, 2) for i in range(10))
    assert p["bytes"] > 0 and p["indexes"]["tags"]["bytes"] > 0
    engine = st["engine_stats"]
    if engine_name == "lmdb":
        assert engine["stat"]["entries"] >= 10 + 10 and engine["map_used_bytes"] > 0
    elif engine_name == "leveldb":
        assert isinstance(engine["leveldb.stats"], str)
    elif engine_name == "skiplist":
        assert engine["keys"] >= 20 and engine["commit"] > 0
    people.delete(1)
    assert store.stats()["collections"]["people"]["records"] == 9
    assert store.counters()["visits"] == 2
