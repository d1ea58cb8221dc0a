"""Record fields named by dotted paths, and the values a query compares.

A path such as ``"address.city"`` walks nested dicts; a missing key, or a
value on the way that is not a dict, means the field is missing. A field
whose value is a list stands for each of its elements (as in MongoDB).

:func:`field` and :func:`fields` make index functions that say which fields
they cover, so the query planner can use the index:

>>> import acid
>>> f = acid.field("address.city")
>>> f({"address": {"city": "Oslo"}}), f({"name": "no address"})
([('Oslo',)], [])
>>> acid.fields("city", "age")({"city": "Oslo", "age": [30, 31]})
[('Oslo', 30), ('Oslo', 31)]

Values are compared in the order of the key encoding (``docs/format.md``):
type order first, then value order, so ``1 < 1.5 < "a"`` and ``1 != 1.0``.
A value the key encoding cannot hold (a dict, a list inside a list, ``nan``)
is *unpackable*: it never falls in a range and is equal only to what Python
calls equal.
"""

from __future__ import annotations

from itertools import product
from typing import Any

from acid import keylib
from acid._text import QGrams, Tokens, default_tokenizer
from acid.errors import KeyEncodingError, QueryError

__all__ = [
    "MISSING",
    "GRAMS",
    "TEXT",
    "Field",
    "Fields",
    "candidates",
    "describe",
    "field",
    "fields",
    "packed",
    "parse_path",
    "resolve",
    "text_words",
]

#: How a token index's path is stored: no field path starts with "$".
TEXT = "$text:"
#: How a q-gram index's path is stored: ``"$grams:<q>:<path>"``.
GRAMS = "$grams:"


def text_words(text: str) -> set[str]:
    """The words of ``text`` as a token index splits them (``$text``)."""
    return set(default_tokenizer(text))


class _Missing:
    """The value of a field a record does not have."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Any = _Missing()


def parse_path(path: Any, operator: str | None = None) -> tuple[str, ...]:
    """``"a.b"`` as ``("a", "b")``; a malformed path raises :class:`QueryError`.

    >>> parse_path("address.city")
    ('address', 'city')
    """
    where = f" (operator {operator})" if operator else ""
    if not isinstance(path, str):
        raise QueryError(
            f"a field path must be a str, not {type(path).__name__}: {path!r}{where}"
        )
    if not path:
        raise QueryError(f"empty field path{where}")
    parts = tuple(path.split("."))
    if "" in parts:
        raise QueryError(f"field path {path!r} has an empty segment{where}")
    if any(p.startswith("$") for p in parts):
        raise QueryError(
            f"field path {path!r} has a segment starting with '$'{where}; "
            "operators go inside a field's dict: {path: {'$op': value}}"
        )
    return parts


def resolve(rec: Any, parts: tuple[str, ...]) -> Any:
    """The value at ``parts`` in ``rec``, or :data:`MISSING`."""
    value = rec
    for part in parts:
        if not isinstance(value, dict):
            return MISSING
        value = value.get(part, MISSING)
    return value


def candidates(value: Any) -> list[Any]:
    """The values a field stands for: a list's elements, else the value."""
    if value is MISSING:
        return []
    if isinstance(value, list):
        return value
    return [value]


def packed(value: Any) -> bytes | None:
    """``value`` packed as a 1-tuple key, or ``None`` when it is unpackable."""
    try:
        return keylib.pack((value,))
    except (KeyEncodingError, TypeError, ValueError, OverflowError):
        return None


class Field:
    """An index function over one record field, carrying its path.

    Called on a record it returns the field's values as 1-tuples (one per
    list element), skipping missing and unpackable values: the index has no
    entry for a record without the field.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.parts = parse_path(path)

    @property
    def paths(self) -> tuple[str, ...]:
        """The dotted paths this index function covers, in order."""
        return (self.path,)

    def values(self, rec: Any) -> list[Any]:
        """The packable values of the field, without duplicates, in order."""
        seen: set[bytes] = set()
        out = []
        for v in candidates(resolve(rec, self.parts)):
            p = packed(v)
            if p is not None and p not in seen:
                seen.add(p)
                out.append(v)
        return out

    def __call__(self, rec: Any) -> list[tuple[Any, ...]]:
        return [(v,) for v in self.values(rec)]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Field) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)

    def __repr__(self) -> str:
        return f"acid.field({self.path!r})"


class Fields:
    """An index function over several fields: one tuple per combination.

    A record missing any of the fields has no entry.
    """

    def __init__(self, *paths: str) -> None:
        if not paths:
            raise TypeError("fields() needs at least one field path")
        self.parts = tuple(Field(p) for p in paths)

    @property
    def paths(self) -> tuple[str, ...]:
        """The dotted paths this index function covers, in order."""
        return tuple(f.path for f in self.parts)

    def __call__(self, rec: Any) -> list[tuple[Any, ...]]:
        return list(product(*(f.values(rec) for f in self.parts)))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Fields) and other.paths == self.paths

    def __hash__(self) -> int:
        return hash(self.paths)

    def __repr__(self) -> str:
        return f"acid.fields({', '.join(map(repr, self.paths))})"


def field(path: str) -> Field:
    """An index function over the field at the dotted ``path``."""
    return Field(path)


def fields(*paths: str) -> Field | Fields:
    """An index function over several fields (a compound index)."""
    if len(paths) == 1:
        return Field(paths[0])
    return Fields(*paths)


def describe(paths: tuple[str, ...]) -> str:
    """How an index with these stored paths was declared, as code."""
    if not paths:
        return "a plain function"
    if len(paths) == 1 and paths[0].startswith(TEXT):
        return f"acid.tokens({paths[0][len(TEXT) :]!r})"
    if len(paths) == 1 and paths[0].startswith(GRAMS):
        q, _, path = paths[0][len(GRAMS) :].partition(":")
        return f"acid.qgrams({path!r}, q={q})"
    if len(paths) == 1:
        return f"acid.field({paths[0]!r})"
    return f"acid.fields({', '.join(map(repr, paths))})"


def declared_paths(func: Any) -> tuple[str, ...] | None:
    """The paths an index function declares, or ``None`` for a plain one."""
    if isinstance(func, Field | Fields):
        return func.paths
    if (
        isinstance(func, Tokens)
        and isinstance(func.field, str)
        and func.tokenizer is default_tokenizer
        and "." not in func.field
        and not func.field.startswith("$")
    ):  # a token index the planner can serve ``$text`` from
        return (TEXT + func.field,)
    if (
        isinstance(func, QGrams)
        and isinstance(func.field, str)
        and "." not in func.field
        and not func.field.startswith("$")
    ):  # a q-gram index the planner can serve ``$contains`` from
        return (f"{GRAMS}{func.q}:{func.field}",)
    return None
