"""Hostile use of token and q-gram indexes: Unicode, odd queries, updates."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import acid


@pytest.fixture
def docs(store: acid.Store) -> acid.Collection:
    coll = store.add_collection("docs")
    coll.add_index("words", acid.tokens("body"))
    coll.add_index("grams", acid.qgrams("body", q=3))
    return coll


def keys(rows: list[tuple[tuple, Any]]) -> list[Any]:
    return [k[0] for k, _ in rows]


def reference_words(text: str) -> list[str]:
    """The documented word, written out character by character: a letter
    or digit, then letters, digits and combining marks; NFKC, case-folded."""
    words, cur = [], ""
    for ch in unicodedata.normalize("NFKC", text):
        mark = unicodedata.category(ch).startswith("M")
        if ch != "_" and (ch.isalnum() or (mark and cur)):
            cur += ch
        else:
            if cur:
                words.append(cur)
            cur = ""
    if cur:
        words.append(cur)
    return [unicodedata.normalize("NFKC", w.casefold()) for w in words]


# -- bugs found ---------------------------------------------------------------


def test_composed_and_decomposed_accents_are_one_word(docs: acid.Collection) -> None:
    """ "café" typed as e + U+0301 was the word "cafe" (the accent dropped,
    a separator), so it did not match "café" typed as U+00E9, and "cafe"
    matched it."""
    docs.put({"body": "cafe\u0301 au lait"}, key=1)
    docs.put({"body": "caf\u00e9 noir"}, key=2)
    docs.put({"body": "cafe crème"}, key=3)
    words = docs.indices["words"]
    assert keys(words.search("caf\u00e9")) == [1, 2]
    assert keys(words.search("cafe\u0301")) == [1, 2]
    assert keys(words.search("CAFÉ")) == [1, 2]
    assert keys(words.search("cafe")) == [3]
    assert keys(words.search_phrase("café au")) == [1]
    assert docs.store.check().ok


def test_words_with_combining_vowel_signs_stay_whole(docs: acid.Collection) -> None:
    """Devanagari vowel signs and viramas are combining marks: "हिन्दी"
    was split into the letters "ह", "न", "द", so any text holding those
    letters in other words was a false match."""
    docs.put({"body": "hindi हिन्दी text"}, key=1)
    docs.put({"body": "ह न द"}, key=2)  # the letters, apart
    words = docs.indices["words"]
    assert acid.tokens("body")({"body": "हिन्दी"}) == ["हिन्दी"]
    assert keys(words.search("हिन्दी")) == [1]
    assert keys(words.search_phrase("हिन्दी text")) == [1]
    assert keys(words.search("ह")) == [2]


def test_compatibility_forms_fold(docs: acid.Collection) -> None:
    docs.put({"body": "ﬁle ＡＢＣ"}, key=1)
    words = docs.indices["words"]
    assert keys(words.search("file abc")) == [1]


@pytest.mark.parametrize("bad", [5, None, b"tea", ["tea"]])
def test_queries_that_are_no_str_raise_a_clear_type_error(
    docs: acid.Collection, bad: Any
) -> None:
    """search(5) raised "expected string or bytes-like object" from re."""
    words, grams = docs.indices["words"], docs.indices["grams"]
    for call in (words.search, words.search_any, words.search_phrase, grams.contains):
        with pytest.raises(TypeError, match=r"takes a str"):
            call(bad)


ALPHABET = ["a", "B", "é", "e\u0301", "ß", "ẞ", "S", "ह", "ि", "्", "1", " ", "-", "_"]
texts = st.lists(st.sampled_from(ALPHABET), max_size=12).map("".join)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(bodies=st.lists(texts, min_size=1, max_size=8), query=texts)
def test_search_equals_a_scan_with_the_documented_word(
    store: acid.Store, bodies: list[str], query: str
) -> None:
    if "docs" in store.collections():
        store.drop_collection("docs")
    coll = store.add_collection("docs")
    words = coll.add_index("words", acid.tokens("body"))
    for i, body in enumerate(bodies):
        coll.put({"body": body}, key=i)
    q = reference_words(query)
    per_rec = [reference_words(b) for b in bodies]

    def run(seq: list[str], ws: list[str]) -> bool:
        return any(ws[i : i + len(seq)] == seq for i in range(len(ws) - len(seq) + 1))

    assert keys(words.search(query)) == [
        i for i, ws in enumerate(per_rec) if q and set(q) <= set(ws)
    ]
    assert keys(words.search_any(query)) == [
        i for i, ws in enumerate(per_rec) if set(q) & set(ws)
    ]
    assert keys(words.search_phrase(query)) == [
        i for i, ws in enumerate(per_rec) if q and run(q, ws)
    ]


# -- what held up -------------------------------------------------------------


def test_queries_without_words_find_nothing(docs: acid.Collection) -> None:
    for i, body in enumerate(["", "   \t\n", "...!!!", "the cat"]):
        docs.put({"body": body}, key=i)
    words = docs.indices["words"]
    for query in ["", "  ", "...!!!", "_", "🍕"]:
        assert words.search(query) == []
        assert words.search_any(query) == []
        assert words.search_phrase(query) == []


def test_phrases_with_repeated_words(docs: acid.Collection) -> None:
    docs.put({"body": "the the cat"}, key=1)
    docs.put({"body": "the cat the"}, key=2)
    words = docs.indices["words"]
    assert keys(words.search_phrase("the the")) == [1]
    assert keys(words.search_phrase("the the the")) == []
    assert keys(words.search_phrase("cat the")) == [2]
    assert keys(words.search("the the")) == [1, 2]


def test_case_folding_of_sharp_s(docs: acid.Collection) -> None:
    docs.put({"body": "Straße"}, key=1)
    docs.put({"body": "STRASSE"}, key=2)
    docs.put({"body": "ẞ"}, key=3)
    words = docs.indices["words"]
    assert keys(words.search("strasse")) == [1, 2]
    assert keys(words.search("STRAẞE")) == [1, 2]
    assert keys(words.search("ß")) == [3]


def test_missing_none_list_and_non_text_fields(docs: acid.Collection) -> None:
    docs.put({}, key=1)
    docs.put({"body": None}, key=2)
    docs.put({"body": "text"}, key=3)
    docs.put({"body": 5}, key=4)  # no text: no entries
    docs.put({"body": ["more text", 7, None, "cafe\u0301"]}, key=5)
    docs.put({"body": {"text": "x"}}, key=6)
    words, grams = docs.indices["words"], docs.indices["grams"]
    assert keys(grams.contains("")) == [3, 5]
    assert keys(words.search("text")) == [3, 5]
    assert keys(words.search("café")) == [5]
    assert keys(words.search_phrase("more text")) == [5]
    assert keys(words.search_phrase("text café")) == []  # two texts, not one
    assert keys(grams.contains("e t")) == [5]
    assert docs.store.check().ok


def test_updates_leave_no_stale_postings(docs: acid.Collection) -> None:
    docs.put({"body": "green tea"}, key=1)
    docs.put({"body": "black coffee"}, key=1)
    words, grams = docs.indices["words"], docs.indices["grams"]
    assert words.search("tea") == [] and grams.contains("tea") == []
    assert keys(words.search("coffee")) == [1]
    docs.put({}, key=1)
    assert words.search_any("black coffee green tea") == []
    assert grams.contains("") == []
    docs.delete(1)
    assert list(words.keys()) == [] and list(grams.keys()) == []
    assert docs.store.check().ok


@pytest.mark.parametrize("q", [1, 2, 5, 10**6])
def test_contains_equals_a_scan_for_any_q(store: acid.Store, q: int) -> None:
    coll = store.add_collection("t")
    grams = coll.add_index("g", acid.qgrams("s", q=q))
    bodies = ["", "a", "ab", "banana", "🍕pizza🍕", "e\u0301te\u0301", "  ", "abab"]
    for i, body in enumerate(bodies):
        coll.put({"s": body}, key=i)
    for needle in ["", "a", "an", "ana", "nan", "🍕", "\u0301", " ", "bab", "x"]:
        expected = [i for i, b in enumerate(bodies) if needle in b]
        assert keys(grams.contains(needle)) == expected, needle


@pytest.mark.parametrize("q", [0, -1, 1.5, "3", True, None])
def test_bad_q_raises_value_error(q: Any) -> None:
    with pytest.raises(ValueError):
        acid.qgrams("s", q=q)


def test_a_custom_tokenizer_returning_no_str(store: acid.Store) -> None:
    coll = store.add_collection("t")
    bad: Callable[[str], Any] = lambda text: [1, 2]  # noqa: E731
    coll.add_index("w", acid.tokens("s", tokenizer=bad))
    with pytest.raises(TypeError):
        coll.put({"s": "x"}, key=1)
    assert coll.get(1) is None
