"""Token and q-gram indexes: every search equals a brute-force scan."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import acid
from acid._text import default_tokenizer
from acid.errors import ConfigError

VOCAB = ["cat", "Cat", "dog", "DOG", "straße", "STRASSE", "naïve", "42", "x1"]
SEPS = [" ", ", ", "-", "_", "! ", "\n", "...", " "]


def brute_all(texts: dict[int, str | None], query: str) -> list[int]:
    want = set(default_tokenizer(query))
    if not want:
        return []
    return [
        k for k, t in sorted(texts.items()) if t and want <= set(default_tokenizer(t))
    ]


def brute_any(texts: dict[int, str | None], query: str) -> list[int]:
    want = set(default_tokenizer(query))
    return [
        k for k, t in sorted(texts.items()) if t and want & set(default_tokenizer(t))
    ]


def brute_phrase(texts: dict[int, str | None], query: str) -> list[int]:
    seq = default_tokenizer(query)
    out = []
    for k, t in sorted(texts.items()):
        words = default_tokenizer(t or "")
        n = len(seq)
        if n and any(words[i : i + n] == seq for i in range(len(words) - n + 1)):
            out.append(k)
    return out


def brute_contains(texts: dict[int, str | None], needle: str) -> list[int]:
    return [k for k, t in sorted(texts.items()) if t is not None and needle in t]


def keys_of(result: list[tuple[tuple, Any]]) -> list[int]:
    return [k[0] for k, _ in result]


def fill(coll: acid.Collection, texts: dict[int, str | None]) -> None:
    with coll.store.begin(write=True):
        for k, t in texts.items():
            coll.put({} if t is None else {"body": t, "title": t}, key=k)


def random_text(rng: random.Random) -> str:
    n = rng.randint(0, 8)
    return "".join(rng.choice(VOCAB) + rng.choice(SEPS) for _ in range(n))


def test_searches_on_every_engine(store: acid.Store) -> None:
    coll = store.add_collection("docs")
    words = coll.add_index("words", acid.tokens("body"))
    grams = coll.add_index("grams", acid.qgrams("title", q=3))
    rng = random.Random(5)
    texts: dict[int, str | None] = {i: random_text(rng) for i in range(150)}
    texts[150] = None
    texts[151] = ""
    texts[152] = "ca"
    fill(coll, texts)
    queries = ["cat", "cat dog", "DOG, straße", "strasse", "naïve 42", "x1 cat"]
    for q in [*queries, "", "!!", "zebra"]:
        assert keys_of(words.search(q)) == brute_all(texts, q), q
        assert keys_of(words.search_any(q)) == brute_any(texts, q), q
        assert keys_of(words.search_phrase(q)) == brute_phrase(texts, q), q
    for needle in ["cat", "Cat, ", "straße", "og-", "42", "ca", "c", "", "zzz"]:
        assert keys_of(grams.contains(needle)) == brute_contains(texts, needle), needle
    result = grams.contains("dog")
    assert all("dog" in rec["title"] for _, rec in result)
    # Updates and deletes keep the postings exact.
    with store.begin(write=True):
        for k in range(0, 150, 3):
            coll.delete(k)
            del texts[k]
        for k in range(1, 150, 3):
            texts[k] = random_text(rng)
            coll.put({"body": texts[k], "title": texts[k]}, key=k)
    for q in queries:
        assert keys_of(words.search(q)) == brute_all(texts, q)
    for needle in ["cat", "DOG", "e 4", "a"]:
        assert keys_of(grams.contains(needle)) == brute_contains(texts, needle)
    assert store.check().ok


TEXT = st.text(alphabet="abcAB ß.-", max_size=12)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.one_of(st.none(), TEXT), max_size=12), TEXT, st.integers(1, 4))
def test_contains_equals_brute_force(
    values: list[str | None], needle: str, q: int
) -> None:
    store = acid.open("skiplist:/")
    coll = store.add_collection("t")
    grams = coll.add_index("g", acid.qgrams("title", q=q))
    texts = dict(enumerate(values))
    fill(coll, texts)
    assert keys_of(grams.contains(needle)) == brute_contains(texts, needle)
    for sub in {needle[:1], needle[1:3], needle[: q + 1]}:
        assert keys_of(grams.contains(sub)) == brute_contains(texts, sub)


WORDS = st.lists(st.sampled_from(VOCAB + ["a", "b"]), max_size=6)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.tuples(WORDS, st.sampled_from(SEPS)), max_size=10),
    WORDS,
)
def test_token_searches_equal_brute_force(
    docs: list[tuple[list[str], str]], query_words: list[str]
) -> None:
    store = acid.open("skiplist:/")
    coll = store.add_collection("t")
    words = coll.add_index("w", acid.tokens("body"))
    texts: dict[int, str | None] = {i: sep.join(ws) for i, (ws, sep) in enumerate(docs)}
    fill(coll, texts)
    query = " ".join(query_words)
    assert keys_of(words.search(query)) == brute_all(texts, query)
    assert keys_of(words.search_any(query)) == brute_any(texts, query)
    assert keys_of(words.search_phrase(query)) == brute_phrase(texts, query)


def test_tokenizer_can_be_replaced(store: acid.Store) -> None:
    coll = store.add_collection("t")
    tags = coll.add_index("tags", acid.tokens("body", tokenizer=str.split))
    coll.put({"body": "C++ c# Rust"}, key=1)
    coll.put({"body": "rust go"}, key=2)
    assert keys_of(tags.search("C++")) == [1]
    assert keys_of(tags.search("rust")) == [2]  # no case-folding here
    assert keys_of(tags.search_any("Rust go")) == [1, 2]
    assert list(tags.tups()) == [("C++",), ("Rust",), ("c#",), ("go",), ("rust",)]


def test_field_function_and_bad_values(store: acid.Store) -> None:
    coll = store.add_collection("t")
    idx = coll.add_index("w", acid.tokens(lambda r: r["a"] + " " + r["b"]))
    coll.put({"a": "hello", "b": "world"}, key=1)
    assert keys_of(idx.search("world hello")) == [1]
    plain = store.add_collection("p")
    words = plain.add_index("w", acid.tokens("body"))
    plain.put({"body": "kept"}, key=1)
    plain.put({"body": 5}, key=2)  # not text: no entries
    plain.put({"body": ["many list", 7, "of texts"]}, key=4)  # each str element
    assert keys_of(words.search("kept")) == [1]
    assert keys_of(words.search_any("5 7")) == []
    assert keys_of(words.search("list texts")) == [4]
    assert keys_of(words.search_phrase("list of")) == []  # elements apart
    assert keys_of(words.search_phrase("of texts")) == [4]
    plain.put("not a dict", key=3)  # no field: no entries
    assert keys_of(words.search_any("not a dict")) == []
    with pytest.raises(TypeError):
        words.contains("kept")  # not a q-gram index
    grams = plain.add_index("g", acid.qgrams("body"))
    with pytest.raises(TypeError):
        grams.search("kept")
    with pytest.raises(TypeError):
        grams.contains(5)  # type: ignore[arg-type]
    other = plain.add_index("o", lambda r: 1)
    with pytest.raises(TypeError):
        other.search("x")
    for bad in (0, -1, 2.5, "3", True):
        with pytest.raises(ValueError):
            acid.qgrams("body", q=bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        acid.tokens("")
    with pytest.raises(TypeError):
        acid.tokens("body", tokenizer=5)  # type: ignore[arg-type]
    assert store.check().ok


def test_redeclared_with_another_kind_is_refused(store: acid.Store) -> None:
    coll = store.add_collection("t")
    coll.add_index("g", acid.qgrams("title", q=3))
    coll.add_index("w", acid.tokens("title"))
    coll.add_index("plain", lambda r: r.get("title"))
    coll.put({"title": "banana"}, key=1)
    again = store.add_collection("t")
    with pytest.raises(ConfigError, match="q"):
        again.add_index("g", acid.qgrams("title", q=4))
    with pytest.raises(ConfigError):
        again.add_index("w", acid.qgrams("title", q=3))
    with pytest.raises(ConfigError):
        again.add_index("plain", acid.tokens("title"))
    with pytest.raises(ConfigError):
        again.add_index("w", lambda r: r.get("title"))
    assert keys_of(again.add_index("g", acid.qgrams("title", q=3)).contains("nan")) == [
        1
    ]


def test_index_added_to_existing_records_and_in_aborted_block(
    store: acid.Store,
) -> None:
    coll = store.add_collection("t")
    coll.put({"title": "needle in a haystack"}, key=1)
    coll.put({"title": "hay"}, key=2)
    with store.begin(write=True):
        g = coll.add_index("g", acid.qgrams("title", q=2))
        assert keys_of(g.contains("hay")) == [1, 2]
        acid.abort()
    g = coll.add_index("g", acid.qgrams("title", q=2))
    assert keys_of(g.contains("needle")) == [1]
    assert keys_of(g.contains("y")) == [1, 2]
    assert store.check().ok
