"""Malformed queries get a QueryError naming the operator and the path;
queries and deletes respect transactions; the planner's choices."""

from __future__ import annotations

from typing import Any

import pytest

import acid
from acid.errors import ConfigError, QueryError, TxnError


@pytest.fixture
def people(store: acid.Store) -> acid.Collection:
    coll = store.add_collection("people")
    coll.add_index("city", acid.field("address.city"))
    coll.add_index("city_age", acid.fields("address.city", "age"))
    coll.add_index("age", acid.field("age"))
    with store.begin(write=True):
        for i in range(30):
            city = ["Oslo", "Rome", "Lima"][i % 3]
            coll.put({"name": f"p{i}", "age": 20 + i, "address": {"city": city}})
    return coll


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"age": {"$between": [1, 2]}}, ["$between", "'age'"]),
        ({"age": {"$in": 5}}, ["$in", "'age'", "list"]),
        ({"age": {"$nin": "abc"}}, ["$nin", "'age'"]),
        ({"name": {"$regex": "(unclosed"}}, ["$regex", "'name'"]),
        ({"age": {"$mod": [2]}}, ["$mod", "'age'"]),
        ({"age": {"$mod": [2, 0, 1]}}, ["$mod", "'age'"]),
        ({"age": {"$mod": [0, 0]}}, ["$mod", "'age'", "0"]),
        ({"age": {"$mod": ["2", 0]}}, ["$mod", "'age'"]),
        ({"age": {"$exists": 1}}, ["$exists", "'age'"]),
        ({"name": {"$startswith": 5}}, ["$startswith", "'name'"]),
        ({"name": {"$text": None}}, ["$text", "'name'"]),
        ({"age": {"$not": 5}}, ["$not", "'age'"]),
        ({"age": {"$not": {"$nope": 5}}}, ["$nope", "'age'"]),
        ({"age": {"$gt": 1, "plain": 2}}, ["'age'", "'plain'"]),
        ({"": 1}, ["empty"]),
        ({"address..city": 1}, ["'address..city'", "empty segment"]),
        ({"address.": 1}, ["empty segment"]),
        ({"a.$b": 1}, ["'a.$b'"]),
        ({5: 1}, ["str"]),
        ({"$where": "x"}, ["$where"]),
        ({"$or": {"a": 1}}, ["$or", "list"]),
        ({"$and": []}, ["$and", "non-empty"]),
        ({"$nor": [5]}, ["$nor"]),
        ({"$or": [{"age": {"$bad": 1}}]}, ["$bad", "'age'"]),
    ],
)
def test_malformed_specs(people: acid.Collection, spec: Any, words: list[str]) -> None:
    with pytest.raises(QueryError) as info:
        people.query(spec)
    for word in words:
        assert word in str(info.value)


def test_spec_not_a_dict(people: acid.Collection) -> None:
    with pytest.raises(QueryError, match="dict"):
        people.query([("age", 1)])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("method", "arg"),
    [("limit", -1), ("limit", "3"), ("offset", -2), ("offset", None)],
)
def test_bad_limit_offset(people: acid.Collection, method: str, arg: Any) -> None:
    with pytest.raises(QueryError, match=method):
        getattr(people.query({}), method)(arg)


@pytest.mark.parametrize("path", ["", "a..b", 5, "-"])
def test_bad_order_by(people: acid.Collection, path: Any) -> None:
    with pytest.raises(QueryError):
        people.query({}).order_by(path)


def test_comparisons_follow_key_order(store: acid.Store) -> None:
    coll = store.add_collection("mixed", encoder=acid.encoders.MSGPACK)
    values = [None, False, True, -1, 0, 1, 1.0, 1.5, "a", b"a", "b"]
    with store.begin(write=True):
        for i, v in enumerate(values):
            coll.put({"v": v}, key=i)
        coll.put({"v": {"nested": 1}}, key=100)
        coll.put({"w": 1}, key=101)  # no v: never matches a comparison
    got = [r["v"] for r in coll.query({"v": {"$gt": 1}}).order_by("v")]
    assert got == [1.0, 1.5, b"a", "a", "b"]  # 1 < 1.0; bytes before str
    assert [r["v"] for r in coll.query({"v": 1})] == [1]  # 1.0 is not 1
    assert [r["v"] for r in coll.query({"v": {"nested": 1}})] == [{"nested": 1}]
    assert not list(coll.query({"v": {"$lt": {"nested": 2}}}))
    assert len(list(coll.query({"v": {"$ne": 1}}))) == len(values)  # not w
    assert [r["w"] for r in coll.query({"v": {"$exists": False}})] == [1]


def test_field_index_declares_paths_and_survives_reopen(
    open_store: Any, engine_name: str
) -> None:
    if engine_name not in ("lmdb", "leveldb"):
        pytest.skip("needs a persistent engine")
    store = open_store()
    coll = store.add_collection("t")
    coll.add_index("c", acid.field("address.city"))
    coll.put({"address": {"city": "Oslo"}})
    coll.put({"address": "not a dict"})  # the path is missing: no entry
    store.close()
    store = open_store()
    coll = store.add_collection("t")
    with pytest.raises(ConfigError, match="plain function"):
        coll.add_index("c", lambda r: r["address"]["city"])
    with pytest.raises(ConfigError, match="address.town"):
        coll.add_index("c", acid.field("address.town"))
    coll.add_index("c", acid.field("address.city"))
    q = coll.query({"address.city": "Oslo"})
    assert q.explain().startswith("SEARCH t USING INDEX c ")
    assert [k for k in q.keys()] == [(1,)]
    assert store.check().ok


def test_explain_full_scan_and_filters(people: acid.Collection) -> None:
    text = people.query({"name": {"$regex": "^p1"}}).explain()
    assert text.splitlines()[0] == "SCAN people (every record)"
    assert "name REGEX" in text
    text = people.query({"address.city": "Oslo", "name": "p3"}).explain()
    assert "USING INDEX city " in text and "filter: name = 'p3'" in text
    # equality on both fields beats equality on one
    text = people.query({"address.city": "Oslo", "age": 23}).explain()
    assert "USING INDEX city_age" in text
    # an $in becomes several ranges
    text = people.query({"age": {"$in": [21, 25, 99]}}).explain()
    assert "USING INDEX age" in text and "ranges: 3" in text
    text = people.query({"age": {"$gte": 25}}).order_by("-age").limit(2).explain()
    assert "order: by index age (no sort)" in text
    text = people.query({"address.city": "Oslo"}).order_by("name").limit(2).explain()
    assert "order: bounded heap on name ASC" in text


def test_startswith_on_an_index_is_a_range(store: acid.Store) -> None:
    coll = store.add_collection("words")
    coll.add_index("w", acid.field("w"))
    words = ["", "a", "ab", "abc", "abd", "ac", "b", "\U0010ffff", "a\U0010ffff"]
    with store.begin(write=True):
        for w in words:
            coll.put({"w": w})
        coll.put({"w": 5})
    for prefix in ["", "a", "ab", "\U0010ffff", "a\U0010ffff", "z"]:
        q = coll.query({"w": {"$startswith": prefix}})
        assert "USING INDEX w" in q.explain()
        assert sorted(r["w"] for r in q) == sorted(
            w for w in words if w.startswith(prefix)
        )


def test_delete_in_an_aborted_block_leaves_everything(
    store: acid.Store, people: acid.Collection
) -> None:
    before = list(people.items())
    with store.begin(write=True):
        assert people.query({"address.city": "Oslo"}).delete() == 10
        assert len(people) == 20
        acid.abort()
    assert list(people.items()) == before
    assert len(people) == 30
    assert store.check().ok


def test_delete_keeps_indexes_exact(store: acid.Store, people: acid.Collection) -> None:
    assert people.query({"age": {"$gte": 40}}).delete() == 10
    assert people.query({"age": {"$gte": 40}}).count() == 0
    assert len(people) == 20
    assert people.indices["city"].count() == 20
    assert store.check().ok


def test_query_while_writing_in_the_same_txn(
    store: acid.Store, people: acid.Collection
) -> None:
    # Inside a write txn the matching keys are taken first; each record is
    # read again when reached and yielded only if it still matches.
    with store.begin(write=True):
        seen = []
        for rec in people.query({"address.city": "Oslo"}).order_by("age"):
            seen.append(rec["age"])
            # delete the next Oslo record and move another one to Rome
            people.delete(people.query({"age": rec["age"] + 3}).keys().__next__())
            people.put(
                {"name": "new", "age": rec["age"] + 100, "address": {"city": "Oslo"}}
            )
        assert seen == [20, 26, 32, 38, 44]
        assert store.check().ok
    assert store.check().ok


def test_lazy_and_reiterable(store: acid.Store, people: acid.Collection) -> None:
    q = people.query({"age": {"$lt": 23}})
    assert [r["age"] for r in q] == [20, 21, 22]
    people.put({"name": "young", "age": 5, "address": {"city": "Oslo"}})
    assert sorted(r["age"] for r in q) == [5, 20, 21, 22]  # runs again
    with store.begin():
        it = iter(q)
        assert len(list(people.query({}).keys())) == 31
    with pytest.raises(TxnError, match="committed"):
        list(it)  # it read in the block's transaction, which has ended
    it = iter(q)  # outside any block: a read transaction of its own
    first = next(it)  # its snapshot is taken by now (PostgreSQL: first read)
    people.put({"name": "younger", "age": 4, "address": {"city": "Oslo"}})
    assert len([first, *it]) == 4  # its snapshot does not see the new record


def test_list_fields_sort_by_the_elements_that_match(store: acid.Store) -> None:
    coll = store.add_collection("tags")
    coll.add_index("t", acid.field("t"))
    with store.begin(write=True):
        coll.put({"t": [5, 1]}, key=1)  # sorts by 1 ascending, by 5 descending
        coll.put({"t": 3}, key=2)
        coll.put({"t": [4, 9]}, key=3)
    q = coll.query({"t": {"$gte": 3}})
    # sort values among the elements the condition on "t" accepts: 5, 3, 4
    assert [k for (k,) in q.order_by("t").keys()] == [2, 3, 1]
    assert [k for (k,) in q.order_by("t").limit(1).keys()] == [2]
    assert "no sort" in q.order_by("t").limit(1).explain()
    assert [k for (k,) in q.order_by("-t").keys()] == [3, 1, 2]  # 9, 5, 3
    everything = coll.query({}).order_by("t")  # all elements: 1, 3, 4
    assert [k for (k,) in everything.keys()] == [1, 2, 3]


def test_match_keys(store: acid.Store) -> None:
    kv = store.add_collection("kv", key_func=lambda r: r["k"])
    idx = kv.add_index("k", lambda r: r["k"])
    keys = ["apple", "apply", "ape", "banana", "bandana", "app"]
    with store.begin(write=True):
        for k in keys:
            kv.put({"k": k})
        kv.put({"k": 5})
    assert kv.match_prefix("app") == [("app",), ("apple",), ("apply",)]
    assert kv.match_prefix("app", max=2) == [("app",), ("apple",)]
    assert kv.match_prefix("zzz") == []
    assert kv.match_regex("an+a$") == [("banana",), ("bandana",)]
    assert kv.match_similar("banana", 1) == [("banana",), ("bandana",)]
    assert kv.match_similar("apple", 1, max=1) == [("apple",)]
    assert idx.match_prefix("ba") == [("banana",), ("bandana",)]
    assert idx.match_similar("ape", 0) == [("ape",)]
    with pytest.raises(QueryError, match="match_regex"):
        kv.match_regex("(")
    with pytest.raises(TypeError):
        kv.match_prefix(5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        kv.match_similar("a", -1)


def test_text_uses_a_token_index(store: acid.Store) -> None:
    notes = store.add_collection("notes")
    notes.add_index("words", acid.tokens("body"))
    bodies = ["The quick brown fox", "quick QUICK thinking", "brown Bread", None]
    with store.begin(write=True):
        for b in bodies:
            notes.put({"body": b})
        notes.put({"body": ["a list", "of brown things"]})
    q = notes.query({"body": {"$text": "Brown quick"}})
    assert "USING INDEX words (body HAS WORD 'brown')" in q.explain()
    assert "filter: body TEXT 'Brown quick'" in q.explain()
    assert [r["body"] for r in q] == ["The quick brown fox"]
    q = notes.query({"body": {"$text": "BROWN"}})
    assert sorted(k for (k,) in q.keys()) == [1, 3, 5]
    assert store.check().ok


def test_a_qgram_index_serves_contains(store: acid.Store) -> None:
    notes = store.add_collection("grams_notes", key_func=lambda r: r["id"])
    notes.add_index("grams", acid.qgrams("title", q=3))
    titles = ["green tea", "black tea", "teapot", "tee", ["a tea list", 5], None]
    for i, title in enumerate(titles):
        notes.put({"id": i, "title": title})
    q = notes.query({"title": {"$contains": "tea"}})
    assert "USING INDEX grams" in q.explain() and "HAS GRAM 'tea'" in q.explain()
    assert [k[0] for k in q.keys()] == [0, 1, 2, 4]
    short = notes.query({"title": {"$contains": "te"}})  # shorter than q: a scan
    assert "SCAN" in short.explain()
    assert [k[0] for k in short.keys()] == [0, 1, 2, 3, 4]
