"""The query planner: a checked spec and the available indexes -> a plan.

Pure: no I/O. Byte ranges are relative to an index's key prefix and are
built from the key encoding (``docs/format.md``): the entry of an index
tuple is the concatenation of its elements' encodings, so an equality on
the first fields is a byte prefix, and a range on the next field is a pair
of element bounds after it.

An element range is ``[lo, hi)`` over the bytes that *start* an element's
encoding. ``_TOP`` is above every element (no element starts with 0xFE,
which only follows an integer to make it a float).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import product
from typing import Any

from acid import keylib
from acid._fields import GRAMS, TEXT, packed, text_words
from acid._spec import FieldCond, Node, conjunction, describe_cond

__all__ = ["IndexInfo", "Plan", "plan"]

Interval = tuple[bytes, bytes]
_TOP = b"\xfe"
_FULL: list[Interval] = [(b"", _TOP)]
#: Equality prefixes a compound index's leading fields may multiply into.
MAX_PREFIXES = 1024
#: Ranges those prefixes may multiply into on the next field; beyond it
#: that field is filtered instead (two long ``$in`` lists would otherwise
#: make one range per pair: 10**8 for two lists of 10,000).
MAX_RANGES = 65536


@dataclass(frozen=True)
class IndexInfo:
    """What the planner knows of an index: its name and its field paths."""

    name: str
    paths: tuple[str, ...]


@dataclass
class Plan:
    """How a query runs: an index and byte ranges, or a full scan."""

    index: str | None = None
    #: ``(start, stop)`` relative to the index prefix, ascending, disjoint.
    ranges: list[Interval] = field(default_factory=list)
    #: The conditions the ranges answer exactly (not filtered again).
    used: list[FieldCond] = field(default_factory=list)
    #: The rest of the spec, filtered in Python on each fetched record.
    residual: Node | None = None
    #: How many leading index fields are matched by equality.
    equalities: int = 0
    #: Whether the index order gives the requested order (no sort).
    ordered: bool = False
    #: The position, in the index tuple, of the field the order uses.
    order_pos: int = 0
    estimate: int | None = None
    #: What a token index looks up, for explain().
    text: str | None = None

    def describe_used(self) -> str:
        if self.text is not None:
            return self.text
        return " AND ".join(describe_cond(c) for c in self.used)


def element_range(value: Any) -> Interval | None:
    """The bytes of every encoding of an element equal to ``value``."""
    p = packed(value)
    if p is None:
        return None
    if type(value) is int:  # 1 is a byte prefix of 1.5: stop before FRAC
        return p, p + b"\xfe"
    bound = keylib.prefix_bound(p)
    return p, bound if bound is not None else _TOP


def _startswith(prefix: str) -> Interval:
    """Every string starting with ``prefix``: from it to the next one up."""
    lo = packed(prefix)
    assert lo is not None
    chars = list(prefix)
    while chars and ord(chars[-1]) == 0x10FFFF:
        chars.pop()
    if not chars:  # no string is above these: up to the next type byte
        return lo, bytes([lo[0] + 1])
    chars[-1] = chr(ord(chars[-1]) + 1)
    hi = packed("".join(chars))
    assert hi is not None
    return lo, hi


def _op_intervals(op: str, value: Any) -> list[Interval]:
    if op == "$in":
        out = [element_range(v) for v in value]
        return _normalize([r for r in out if r is not None])
    if op == "$startswith":
        lo, hi = _startswith(value)
        return [(lo, hi)]
    r = element_range(value)
    assert r is not None  # rangeable operands are packable
    a, b = r
    return {
        "$eq": [(a, b)],
        "$gt": [(b, _TOP)],
        "$gte": [(a, _TOP)],
        "$lt": [(b"", a)],
        "$lte": [(b"", b)],
    }[op]


def _normalize(intervals: list[Interval]) -> list[Interval]:
    out: list[Interval] = []
    for lo, hi in sorted(i for i in intervals if i[0] < i[1]):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(hi, out[-1][1]))
        else:
            out.append((lo, hi))
    return out


def _intersect(a: list[Interval], b: list[Interval]) -> list[Interval]:
    out = []
    for lo1, hi1 in a:
        for lo2, hi2 in b:
            lo, hi = max(lo1, lo2), min(hi1, hi2)
            if lo < hi:
                out.append((lo, hi))
    return _normalize(out)


def field_intervals(cond: FieldCond) -> list[Interval]:
    """The element ranges of a rangeable field condition (intersected)."""
    result = _FULL
    for op, value in cond.ops:
        result = _intersect(result, _op_intervals(op, value))
    return result


def _points(cond: FieldCond) -> list[Interval] | None:
    """The exact elements a condition allows (``$eq``/``$in`` only), or None."""
    if not any(op in ("$eq", "$in") for op, _ in cond.ops):
        return None
    return field_intervals(cond)


def _is_point(lo: bytes, hi: bytes) -> bool:
    """Whether ``[lo, hi)`` holds exactly the encodings of one element."""
    try:
        value = keylib.unpack(lo)
    except Exception:
        return False
    return len(value) == 1 and element_range(value[0]) == (lo, hi)


def _candidate(
    info: IndexInfo, conds: dict[str, FieldCond], order: str | None
) -> Plan | None:
    if info.paths[0].startswith((TEXT, GRAMS)):
        return None
    if not all(path in conds for path in info.paths):
        # A record missing one of the fields has no entry: the index can
        # serve only queries whose conditions need every field to exist.
        return None
    prefixes: list[bytes] = [b""]
    used: list[FieldCond] = []
    eqs = 0
    ranges: list[Interval] | None = None
    for pos, path in enumerate(info.paths):
        cond = conds.get(path)
        if cond is None:
            break
        intervals = field_intervals(cond)
        if len(prefixes) > 1 and len(prefixes) * len(intervals) > MAX_RANGES:
            break  # one range per pair would be too many: filter this field
        points = _points(cond)
        used.append(cond)
        all_points = points is not None and all(_is_point(a, b) for a, b in points)
        last = pos == len(info.paths) - 1
        if all_points and not last and len(prefixes) * len(intervals) <= MAX_PREFIXES:
            prefixes = [p + a for p, (a, _) in product(prefixes, intervals)]
            eqs += 1
            continue
        ranges = [(p + a, p + b) for p in prefixes for a, b in intervals]
        eqs += int(all_points)
        break
    if not used:
        return None
    found = Plan(info.name, [], used, equalities=eqs)
    if ranges is None:  # only equalities, on leading fields: the prefixes
        ranges = [(p, p + _TOP) for p in prefixes]
    elif (
        order is not None
        and len(prefixes) == 1
        and len(used) == len(info.paths)  # ties then go in record key order
        and info.paths[-1] == order
    ):
        # One equality prefix, then a range on the order field: index order
        # is the requested order (the range implies the field exists).
        found.ordered, found.order_pos = True, len(used) - 1
    found.ranges = _normalize(ranges)
    return found


def _text_candidate(info: IndexInfo, spec: Node) -> Plan | None:
    """A token index for a ``$text`` condition: the entries of its longest
    word (the condition itself is still tested on each record)."""
    if len(info.paths) != 1 or not info.paths[0].startswith(TEXT):
        return None
    path = info.paths[0][len(TEXT) :]
    for cond in spec.fields:
        if cond.path != path:
            continue
        words = [w for op, v in cond.ops if op == "$text" for w in text_words(v)]
        if words:
            word = max(sorted(words), key=len)
            r = element_range(word)
            assert r is not None
            return Plan(
                info.name, [r], [], equalities=1, text=f"{path} HAS WORD {word!r}"
            )
    return None


def _grams_candidates(info: IndexInfo, spec: Node) -> list[Plan]:
    """A q-gram index for a ``$contains`` condition at least ``q`` long: the
    entries of one of its grams, one plan per gram (the estimate picks the
    rarest); the condition itself is still tested on each record."""
    if len(info.paths) != 1 or not info.paths[0].startswith(GRAMS):
        return []
    q_text, _, path = info.paths[0][len(GRAMS) :].partition(":")
    q = int(q_text)
    for cond in spec.fields:
        if cond.path != path:
            continue
        needles = [v for op, v in cond.ops if op == "$contains" and len(v) >= q]
        if needles:
            needle = max(needles, key=len)
            grams = sorted({needle[i : i + q] for i in range(len(needle) - q + 1)})
            out = []
            for gram in grams[:8]:
                r = element_range(gram)
                assert r is not None
                text = f"{path} HAS GRAM {gram!r}"
                out.append(Plan(info.name, [r], [], equalities=1, text=text))
            return out
    return []


def plan(
    spec: Node,
    indexes: Sequence[IndexInfo],
    order_by: Sequence[tuple[str, bool]] = (),
    estimate: Callable[[Plan], int] | None = None,
) -> Plan:
    """The plan for ``spec``: the best index, or a full scan.

    ``order_by`` is ``(path, descending)`` pairs; ``estimate`` counts the
    entries a candidate's ranges hold (capped), to break ties.
    """
    conds: dict[str, FieldCond] = {}
    for cond in spec.fields:
        if cond.rangeable and cond.path not in conds:
            conds[cond.path] = cond
    order = order_by[0][0] if len(order_by) == 1 else None
    found = [c for c in (_candidate(i, conds, order) for i in indexes) if c]
    found += [c for c in (_text_candidate(i, spec) for i in indexes) if c]
    found += [c for i in indexes for c in _grams_candidates(i, spec)]
    first = next((c for c in spec.fields if c.path == order), None)
    for c in found:  # the order_by rule looks at the first condition only
        if c.ordered and c.used[c.order_pos] is not first:
            c.ordered = False
    if not found:
        return Plan(residual=spec)

    def score(p: Plan) -> tuple[int, int, int]:
        return (p.equalities, len(p.used), int(p.ordered))

    found.sort(key=score, reverse=True)
    best = [p for p in found if score(p)[:2] == score(found[0])[:2]]
    if len(best) > 1 and estimate is not None:
        for p in best:
            p.estimate = estimate(p)
        best.sort(key=lambda p: (p.estimate, -int(p.ordered)))
    chosen = best[0]
    used = {id(c) for c in chosen.used}
    rest = [c for c in spec.fields if id(c) not in used]
    chosen.residual = conjunction(rest, spec.children)
    return chosen
