"""A brute-force evaluation of query specs, written from docs/guide.md
("Queries"), independent of acid/_spec.py: the reference the tests compare
every planned query with."""

from __future__ import annotations

import functools
import re
from typing import Any

from acid import keylib

__all__ = ["matches", "reference"]

_GONE = object()


def key_of(value: Any) -> bytes | None:
    try:
        return keylib.pack((value,))
    except (TypeError, ValueError):
        return None


def lookup(rec: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(rec, dict) or part not in rec:
            return _GONE
        rec = rec[part]
    return rec


def elements(value: Any) -> list[Any]:
    if value is _GONE:
        return []
    return list(value) if isinstance(value, list) else [value]


def same(c: Any, o: Any) -> bool:
    ko = key_of(o)
    if ko is None:
        return bool(c == o)
    return key_of(c) == ko


def element_ok(op: str, o: Any, c: Any) -> bool:
    if op == "$eq":
        return same(c, o)
    if op in ("$gt", "$gte", "$lt", "$lte"):
        kc, ko = key_of(c), key_of(o)
        if kc is None or ko is None:
            return False
        return {
            "$gt": kc > ko,
            "$gte": kc >= ko,
            "$lt": kc < ko,
            "$lte": kc <= ko,
        }[op]
    if op == "$in":
        return any(same(c, x) for x in o)
    if op == "$mod":
        return type(c) in (int, float) and c % o[0] == o[1]
    if not isinstance(c, str):
        return False
    if op == "$startswith":
        return c.startswith(o)
    if op == "$endswith":
        return c.endswith(o)
    if op == "$contains":
        return o in c
    if op == "$regex":
        return re.search(o, c) is not None
    if op == "$text":
        words = set(re.findall(r"\w+", o.casefold()))
        return words <= set(re.findall(r"\w+", c.casefold()))
    raise AssertionError(op)


def whole_eq(v: Any, o: Any) -> bool:
    if v is _GONE:
        return False
    if isinstance(v, list) and isinstance(o, list) and v == o:
        return True
    return any(same(c, o) for c in elements(v))


def field_ok(v: Any, ops: dict[str, Any]) -> bool:
    elem_ops = []
    for op, o in ops.items():
        if op == "$exists":
            if (v is not _GONE) != o:
                return False
        elif op == "$ne":
            if v is _GONE or whole_eq(v, o):
                return False
        elif op == "$nin":
            if v is _GONE or any(whole_eq(v, x) for x in o):
                return False
        elif op == "$all":
            if v is _GONE or not all(whole_eq(v, x) for x in o):
                return False
        elif op == "$not":
            if field_ok(v, o):
                return False
        else:
            elem_ops.append((op, o))
    if not elem_ops:
        return True
    if len(elem_ops) == 1 and elem_ops[0][0] == "$eq":
        return whole_eq(v, elem_ops[0][1])
    return any(all(element_ok(op, o, c) for op, o in elem_ops) for c in elements(v))


def matches(rec: Any, spec: dict[str, Any]) -> bool:
    for key, cond in spec.items():
        if key == "$and":
            ok = all(matches(rec, s) for s in cond)
        elif key == "$or":
            ok = any(matches(rec, s) for s in cond)
        elif key == "$nor":
            ok = not any(matches(rec, s) for s in cond)
        elif isinstance(cond, dict) and any(k.startswith("$") for k in cond):
            ok = field_ok(lookup(rec, key), cond)
        else:
            ok = field_ok(lookup(rec, key), {"$eq": cond})
        if not ok:
            return False
    return True


FIELD_OPS = {"$exists", "$ne", "$nin", "$all", "$not"}


def top_conditions(spec: dict[str, Any]) -> Any:
    """``(path, condition)`` at the top level, ``$and`` flattened, in order."""
    for key, cond in spec.items():
        if key == "$and":
            for sub in cond:
                yield from top_conditions(sub)
        elif not key.startswith("$"):
            yield key, cond


def qualifies(spec: dict[str, Any], path: str, c: Any) -> bool:
    """Whether ``c`` may be the sort value: it passes the element operators
    of the first top-level condition on ``path``."""
    for p, cond in top_conditions(spec):
        if p != path:
            continue
        if not (isinstance(cond, dict) and any(k.startswith("$") for k in cond)):
            cond = {"$eq": cond}
        ops = [(o, v) for o, v in cond.items() if o not in FIELD_OPS]
        return all(element_ok(o, v, c) for o, v in ops)
    return True


def sort_value(rec: Any, path: str, desc: bool, spec: dict[str, Any]) -> bytes | None:
    ks = [
        k
        for c in elements(lookup(rec, path))
        if (k := key_of(c)) is not None and qualifies(spec, path, c)
    ]
    if not ks:
        return None
    return max(ks) if desc else min(ks)


def reference(
    records: dict[tuple, Any], spec: dict[str, Any], order: list[tuple[str, bool]]
) -> list[tuple]:
    """The keys of the matching records, in the documented order."""
    keys = [k for k, r in records.items() if matches(r, spec)]
    if not order:
        return keys

    def cmp(a: tuple, b: tuple) -> int:
        for path, desc in order:
            va = sort_value(records[a], path, desc, spec)
            vb = sort_value(records[b], path, desc, spec)
            if va == vb:
                continue
            if va is None:
                r = -1
            elif vb is None:
                r = 1
            else:
                r = -1 if va < vb else 1
            return -r if desc else r
        pa, pb = keylib.pack(a), keylib.pack(b)
        r = (pa > pb) - (pa < pb)
        return -r if order[-1][1] else r

    return sorted(keys, key=functools.cmp_to_key(cmp))
