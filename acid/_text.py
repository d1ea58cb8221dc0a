"""Index functions for text: words (tokens) and q-grams of one field.

``tokens(field)`` and ``qgrams(field, q)`` are index functions: declared
with ``coll.add_index(name, acid.tokens("body"))`` they give an index whose
entries are the distinct words (or q-grams) of the field, and whose
:class:`~acid.Index` answers ``search``, ``search_any``, ``search_phrase``
(tokens) and ``contains`` (q-grams).

>>> tokens("body")({"body": "The cat, the HAT!"})
['cat', 'hat', 'the']
>>> qgrams("title", q=3)({"title": "banana"})
['ana', 'ban', 'nan']
>>> qgrams("title", q=3)({"title": "ab"})  # shorter than q: the whole text
['ab']
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["QGrams", "TextFunction", "Tokens", "default_tokenizer", "qgrams", "tokens"]

_WORD: re.Pattern[str] | None = None


def _word_re() -> re.Pattern[str]:
    """A word: a letter or digit, then letters, digits and combining marks.

    Python's ``\\w`` has no combining marks (categories Mn, Mc, Me), which
    would cut words of most Indic scripts, and of any text in NFD, apart.
    The marks are looked up once, in the planes that hold them (0, 1, 14).
    """
    global _WORD
    if _WORD is None:
        marks: list[str] = []
        start = last = -1
        for cp in itertools.chain(range(0x20000), range(0xE0000, 0xE1000), [-1]):
            is_mark = cp >= 0 and unicodedata.category(chr(cp))[0] == "M"
            if is_mark and start < 0:
                start = cp
            elif not is_mark and start >= 0:
                marks.append(f"{re.escape(chr(start))}-{re.escape(chr(last))}")
                start = -1
            last = cp
        _WORD = re.compile(rf"[^\W_](?:[^\W_]|[{''.join(marks)}])*")
    return _WORD


def default_tokenizer(text: str) -> list[str]:
    """Runs of Unicode letters, digits and combining marks, NFKC-normalized
    and case-folded; the rest separates.

    Canonically equivalent texts (``"café"`` composed or as ``e`` plus a
    combining accent) give the same words, and compatibility forms fold
    (``"ﬁ"`` is ``"fi"``, a fullwidth ``"Ａ"`` is ``"a"``).

    >>> default_tokenizer("Straße-Nr. 42_b")
    ['strasse', 'nr', '42', 'b']
    >>> default_tokenizer("cafe\u0301") == default_tokenizer("caf\u00e9") == ["café"]
    True
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, not {type(text).__name__}")
    nfkc = unicodedata.normalize
    return [nfkc("NFKC", w.casefold()) for w in _word_re().findall(nfkc("NFKC", text))]


class TextFunction:
    """An index function over the text in one field of a record.

    ``field`` is a key of dict records, or a function ``field(record)``
    returning the text. A str is indexed; a list or tuple has each of its
    str elements indexed; anything else (a missing field, ``None``, a
    number) gives no entries, as a ``$text`` query finds no words there.
    """

    #: Stored with the index and compared when it is declared again.
    kind = ""

    def __init__(self, field: str | Callable[[Any], Any]) -> None:
        if not (isinstance(field, str) and field) and not callable(field):
            raise TypeError("field must be a non-empty str or a callable")
        self.field = field

    def texts(self, rec: Any) -> list[str]:
        """The field's texts in ``rec`` (none when it has no str there)."""
        if callable(self.field):
            value = self.field(rec)
        elif isinstance(rec, dict):
            value = rec.get(self.field)
        else:
            value = None
        if isinstance(value, str):
            return [value]
        if isinstance(value, list | tuple):
            return [v for v in value if isinstance(v, str)]
        return []

    def meta(self) -> dict[str, Any]:
        """What the index's metadata records about this function."""
        return {"text": self.kind}

    def __call__(self, rec: Any) -> list[str]:
        terms: set[str] = set()
        for text in self.texts(rec):
            terms.update(self.terms(text))
        return sorted(terms)

    def terms(self, text: str) -> Iterable[str]:
        raise NotImplementedError


class Tokens(TextFunction):
    """The words of a field (see :func:`tokens`)."""

    kind = "tokens"

    def __init__(
        self,
        field: str | Callable[[Any], Any],
        tokenizer: Callable[[str], Iterable[str]] | None = None,
    ) -> None:
        super().__init__(field)
        if tokenizer is not None and not callable(tokenizer):
            raise TypeError("tokenizer must be callable")
        self.tokenizer = tokenizer or default_tokenizer

    def terms(self, text: str) -> list[str]:
        words = list(self.tokenizer(text))
        for w in words:
            if not isinstance(w, str):
                raise TypeError(f"the tokenizer returned a {type(w).__name__}")
        return words

    def __repr__(self) -> str:
        return f"acid.tokens({self.field!r})"


class QGrams(TextFunction):
    """The q-grams of a field (see :func:`qgrams`)."""

    kind = "qgrams"

    def __init__(self, field: str | Callable[[Any], Any], q: int = 3) -> None:
        super().__init__(field)
        if type(q) is not int or q < 1:
            raise ValueError(f"q must be a positive int, not {q!r}")
        self.q = q

    def meta(self) -> dict[str, Any]:
        return {"text": self.kind, "q": self.q}

    def terms(self, text: str) -> list[str]:
        q = self.q
        if len(text) < q:  # no gram fits: the whole text stands for them
            return [text]
        return [text[i : i + q] for i in range(len(text) - q + 1)]

    def __repr__(self) -> str:
        return f"acid.qgrams({self.field!r}, q={self.q})"


def tokens(
    field: str | Callable[[Any], Any],
    tokenizer: Callable[[str], Iterable[str]] | None = None,
) -> Tokens:
    """An index function giving the distinct words of ``field``.

    By default a word is a run of Unicode letters and digits, case-folded
    (:func:`default_tokenizer`); ``tokenizer(text)`` replaces that. The
    tokenizer is not stored: declare the index with the same one each time.
    """
    return Tokens(field, tokenizer)


def qgrams(field: str | Callable[[Any], Any], q: int = 3) -> QGrams:
    """An index function giving the distinct ``q``-character substrings of
    ``field`` (case-sensitive); a text shorter than ``q`` gives itself."""
    return QGrams(field, q)
