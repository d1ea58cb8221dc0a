"""Query specs: checked once, compiled to a predicate, described for the planner.

A spec is a dict of dotted field paths (see :mod:`acid._fields`) to a value
(equality) or a dict of operators; ``$and``, ``$or`` and ``$nor`` at the top
level take lists of specs. Pure: no I/O, nothing of the store.

Within one field's operator dict, the element operators (comparisons,
``$in``, ``$mod``, the string operators) must all hold for one value of the
field (one element of a list); the field operators (``$exists``, ``$ne``,
``$nin``, ``$all``, ``$not``) look at the field as a whole.
"""

from __future__ import annotations

import re
import reprlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from acid._fields import (
    MISSING,
    candidates,
    packed,
    parse_path,
    resolve,
    text_words,
)
from acid.errors import QueryError

__all__ = ["FieldCond", "Node", "RANGE_OPS", "compile_spec", "text_words"]

Pred = Callable[[Any], bool]

#: Operators on one value of a field.
ELEMENT_OPS = frozenset(
    {
        "$eq",
        "$gt",
        "$gte",
        "$lt",
        "$lte",
        "$in",
        "$mod",
        "$startswith",
        "$endswith",
        "$contains",
        "$regex",
        "$text",
    }
)
#: Operators on the field as a whole.
FIELD_OPS = frozenset({"$exists", "$ne", "$nin", "$all", "$not"})
#: Element operators an index range can answer exactly.
RANGE_OPS = frozenset({"$eq", "$gt", "$gte", "$lt", "$lte", "$in", "$startswith"})
LOGIC_OPS = frozenset({"$and", "$or", "$nor"})
#: How deep ``$and``/``$or``/``$nor`` lists and ``$not`` dicts may nest: a
#: spec beyond it raises QueryError rather than exhaust the stack.
MAX_DEPTH = 100
# Types compared directly: for these, equal type and Python order is key order.
_DIRECT = frozenset({int, str, bytes})


@dataclass
class FieldCond:
    """The operators on one field path, checked."""

    path: str
    parts: tuple[str, ...]
    ops: list[tuple[str, Any]]
    pred: Pred = field(repr=False, default=lambda rec: True)

    @property
    def element_ops(self) -> list[tuple[str, Any]]:
        return [(o, v) for o, v in self.ops if o in ELEMENT_OPS]

    @property
    def rangeable(self) -> bool:
        """Whether an index range on this field answers it exactly."""
        return bool(self.ops) and all(
            o in RANGE_OPS and _range_operand_ok(o, v) for o, v in self.ops
        )


def _range_operand_ok(op: str, value: Any) -> bool:
    if op == "$in":
        return all(packed(v) is not None for v in value)
    if op == "$startswith":
        return True
    return packed(value) is not None


@dataclass
class Node:
    """``and`` of field conditions and nested nodes, or ``or``/``nor``."""

    kind: str  # "and", "or", "nor"
    fields: list[FieldCond]
    children: list[Node]
    pred: Pred = field(repr=False, default=lambda rec: True)

    def describe(self) -> str:
        parts = [describe_cond(c) for c in self.fields]
        parts += [f"({c.describe()})" for c in self.children]
        if self.kind == "and":
            return " AND ".join(parts) or "everything"
        joined = " OR ".join(parts)
        return joined if self.kind == "or" else f"NOT ({joined})"


_SYMBOLS = {"$eq": "=", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<=", "$ne": "!="}


#: Operands of a list operator shown by explain() before it abbreviates.
_SHOWN = 10
#: How explain() writes an operand: nesting cut at a few levels (the builtin
#: repr of a value nested thousands deep raises RecursionError).
_REPR = reprlib.Repr()
_REPR.maxlevel = 6
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = 400
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 100


def words(value: Any) -> str:
    """``repr(value)`` for explain(): nesting cut at six levels, long
    values shortened."""
    return _REPR.repr(value)


def _operand_words(value: Any) -> str:
    """:func:`words`, a long list cut to its first few operands."""
    if isinstance(value, list) and len(value) > _SHOWN:
        head = ", ".join(map(words, value[:_SHOWN]))
        return f"[{head}, ... ({len(value)} values)]"
    return words(value)


def describe_cond(cond: FieldCond) -> str:
    """``age >= 30 AND age < 40`` for ``{"age": {"$gte": 30, "$lt": 40}}``."""
    out = []
    for op, value in cond.ops:
        if op in _SYMBOLS:
            out.append(f"{cond.path} {_SYMBOLS[op]} {words(value)}")
        elif op == "$not":
            inner = FieldCond(cond.path, cond.parts, value)
            out.append(f"NOT ({describe_cond(inner)})")
        else:
            out.append(f"{cond.path} {op[1:].upper()} {_operand_words(value)}")
    return " AND ".join(out)


def compile_spec(spec: Any) -> Node:
    """Check ``spec`` and compile it; malformed specs raise QueryError."""
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        raise QueryError(f"a query spec must be a dict, not {type(spec).__name__}")
    return _compile_and(spec, 0)


def _too_deep(where: str) -> QueryError:
    return QueryError(f"{where} nests deeper than {MAX_DEPTH} levels")


def _compile_and(spec: dict, depth: int) -> Node:
    if depth > MAX_DEPTH:
        raise _too_deep("the spec's $and/$or/$nor")
    fields: list[FieldCond] = []
    children: list[Node] = []
    for key, value in spec.items():
        if isinstance(key, str) and key.startswith("$"):
            if key not in LOGIC_OPS:
                raise QueryError(
                    f"unknown operator {key!r} at the top level of a spec "
                    f"(logic operators there: {', '.join(sorted(LOGIC_OPS))})"
                )
            subs = _spec_list(key, value, depth)
            if key == "$and":
                for sub in subs:  # flatten: the planner sees every conjunct
                    fields += sub.fields
                    children += sub.children
            else:
                children.append(_logic(key[1:], subs))
            continue
        parts = parse_path(key)
        fields.append(_compile_field(key, parts, value))
    preds = [c.pred for c in fields] + [c.pred for c in children]
    return Node("and", fields, children, _all_of(preds))


def _spec_list(op: str, value: Any, depth: int) -> list[Node]:
    if not isinstance(value, list) or not value:
        raise QueryError(f"{op} takes a non-empty list of specs, not {value!r}")
    for sub in value:
        if not isinstance(sub, dict):
            raise QueryError(f"{op} takes a list of dicts, found {sub!r}")
    return [_compile_and(sub, depth + 1) for sub in value]


def _logic(kind: str, subs: list[Node]) -> Node:
    preds = [s.pred for s in subs]
    if kind == "or":

        def pred(rec: Any) -> bool:
            return any(p(rec) for p in preds)

    else:

        def pred(rec: Any) -> bool:
            return not any(p(rec) for p in preds)

    return Node(kind, [], subs, pred)


def _all_of(preds: list[Pred]) -> Pred:
    if not preds:
        return lambda rec: True
    if len(preds) == 1:
        return preds[0]
    if len(preds) == 2:
        a, b = preds
        return lambda rec: a(rec) and b(rec)
    return lambda rec: all(p(rec) for p in preds)


def _is_operator_dict(value: Any) -> bool:
    return isinstance(value, dict) and any(
        isinstance(k, str) and k.startswith("$") for k in value
    )


def _compile_field(path: str, parts: tuple[str, ...], value: Any) -> FieldCond:
    if _is_operator_dict(value):
        bad = [k for k in value if not (isinstance(k, str) and k.startswith("$"))]
        if bad:
            raise QueryError(
                f"field {path!r} mixes operators and plain keys ({bad[0]!r}); "
                "compare a whole dict with {'$eq': {...}}"
            )
        ops = [_operator(k, v, path, 0) for k, v in value.items()]
    else:
        ops = [("$eq", value)]
    cond = FieldCond(path, parts, ops)
    cond.pred = _field_pred(parts, ops)
    return cond


def _check_operand(op: str, value: Any, path: str, depth: int = 0) -> Any:
    where = f"operator {op} on field {path!r}"
    if depth > MAX_DEPTH:
        raise _too_deep(f"$not on field {path!r}")
    if op not in ELEMENT_OPS and op not in FIELD_OPS:
        known = ", ".join(sorted(ELEMENT_OPS | FIELD_OPS))
        raise QueryError(f"unknown {where} (known: {known})")
    if op in ("$in", "$nin", "$all"):
        if not isinstance(value, list | tuple | set | frozenset):
            raise QueryError(f"{where} takes a list, not {type(value).__name__}")
        return list(value)
    if op == "$exists":
        if not isinstance(value, bool):
            raise QueryError(f"{where} takes True or False, not {value!r}")
    elif op == "$mod":
        ok = (
            isinstance(value, list | tuple)
            and len(value) == 2
            and all(type(v) is int for v in value)
        )
        if not ok:
            raise QueryError(
                f"{where} takes [divisor, remainder] (ints), not {value!r}"
            )
        if value[0] == 0:
            raise QueryError(f"{where}: the divisor must not be 0")
        return tuple(value)
    elif op in ("$startswith", "$endswith", "$contains", "$text"):
        if not isinstance(value, str):
            raise QueryError(f"{where} takes a str, not {type(value).__name__}")
    elif op == "$regex":
        if not isinstance(value, str | re.Pattern) or isinstance(
            getattr(value, "pattern", ""), bytes
        ):  # a bytes pattern cannot search the str values the operator tests
            raise QueryError(f"{where} takes a str pattern, not {value!r}")
        try:
            return re.compile(value)
        except re.error as exc:
            raise QueryError(f"{where}: bad regular expression: {exc}") from exc
    elif op == "$not":
        if not _is_operator_dict(value):
            raise QueryError(
                f"{where} takes a dict of operators, e.g. {{'$gt': 5}}, not {value!r}"
            )
        bad = [k for k in value if not (isinstance(k, str) and k.startswith("$"))]
        if bad:
            raise QueryError(f"{where}: {bad[0]!r} is not an operator")
        return [_operator(k, v, path, depth + 1) for k, v in value.items()]
    return value


_INF = float("inf")
#: A comparison with an int beyond the key encoding (|n| >= 2**2040) as the
#: same comparison with an infinity: such an int is above every finite
#: number the encoding holds and below inf (below them, and above -inf, when
#: negative).
_BEYOND = {
    ("$gt", True): ("$gte", _INF),
    ("$gte", True): ("$gte", _INF),
    ("$lt", True): ("$lt", _INF),
    ("$lte", True): ("$lt", _INF),
    ("$gt", False): ("$gt", -_INF),
    ("$gte", False): ("$gt", -_INF),
    ("$lt", False): ("$lte", -_INF),
    ("$lte", False): ("$lte", -_INF),
}


def _operator(op: Any, value: Any, path: str, depth: int) -> tuple[str, Any]:
    """``(op, checked operand)``; a comparison with a huge int rewritten."""
    value = _check_operand(op, value, path, depth)
    if type(value) is int and op in _SYMBOLS and packed(value) is None:
        return _BEYOND.get((op, value > 0), (op, value))
    return op, value


# -- predicates -----------------------------------------------------------


def _eq(operand: Any) -> Callable[[Any], bool]:
    """Element equality in key order (Python equality when unpackable)."""
    p = packed(operand)
    if p is None:
        return lambda c: c == operand
    kind = type(operand)
    if kind in _DIRECT:
        return lambda c: type(c) is kind and c == operand
    return lambda c: packed(c) == p


def _cmp(op: str, operand: Any) -> Callable[[Any], bool]:
    p = packed(operand)
    if p is None:
        return lambda c: False  # an unpackable bound has no place in the order
    kind = type(operand)
    if op == "$gt":
        bytes_test = p.__lt__
    elif op == "$gte":
        bytes_test = p.__le__
    elif op == "$lt":
        bytes_test = p.__gt__
    else:
        bytes_test = p.__ge__
    direct = {
        "$gt": lambda c: c > operand,
        "$gte": lambda c: c >= operand,
        "$lt": lambda c: c < operand,
        "$lte": lambda c: c <= operand,
    }[op]

    def test(c: Any) -> bool:
        if type(c) is kind and kind in _DIRECT:
            return direct(c)
        q = packed(c)
        return q is not None and bytes_test(q)

    return test


#: Above this many operands, ``$in`` and ``$nin`` look values up in a set.
_FEW = 8


def _member(operands: list[Any]) -> Callable[[Any], bool]:
    """Whether a value equals one of ``operands`` as :func:`_eq` has it: one
    set lookup of its packed form (a packable operand is equal exactly to
    the values that pack as it does), ``==`` for the unpackable ones."""
    keys: set[bytes] = set()
    odd: list[Any] = []
    for v in operands:
        p = packed(v)
        if p is None:
            odd.append(v)
        else:
            keys.add(p)

    def test(c: Any) -> bool:
        q = packed(c)
        if q is not None and q in keys:
            return True
        return any(c == o for o in odd)

    return test


def _element_test(op: str, operand: Any) -> Callable[[Any], bool]:
    if op == "$eq":
        return _eq(operand)
    if op in ("$gt", "$gte", "$lt", "$lte"):
        return _cmp(op, operand)
    if op == "$in":
        if len(operand) > _FEW:
            return _member(operand)
        tests = [_eq(v) for v in operand]
        return lambda c: any(t(c) for t in tests)
    if op == "$mod":
        d, r = operand
        return lambda c: type(c) in (int, float) and c % d == r
    if op == "$startswith":
        return lambda c: type(c) is str and c.startswith(operand)
    if op == "$endswith":
        return lambda c: type(c) is str and c.endswith(operand)
    if op == "$contains":
        return lambda c: type(c) is str and operand in c
    if op == "$regex":
        search = operand.search
        return lambda c: type(c) is str and search(c) is not None
    assert op == "$text"
    words = text_words(operand)
    return lambda c: type(c) is str and words <= text_words(c)


def _whole_test(op: str, operand: Any, parts: tuple[str, ...]) -> Pred:
    """A test of the field's whole value (``MISSING`` included)."""
    if op == "$exists":
        return lambda v: (v is not MISSING) is operand
    if op == "$ne":
        eq = _eq_whole(operand)
        return lambda v: v is not MISSING and not eq(v)
    if op == "$nin":
        if len(operand) > _FEW:
            elem = _member(operand)
            lists = [x for x in operand if type(x) is list]

            def some(v: Any) -> bool:  # any(_eq_whole(x)(v) for x in operand)
                if lists and isinstance(v, list) and any(v == x for x in lists):
                    return True
                return any(elem(c) for c in candidates(v))

            return lambda v: v is not MISSING and not some(v)
        eqs = [_eq_whole(x) for x in operand]
        return lambda v: v is not MISSING and not any(e(v) for e in eqs)
    if op == "$all":
        eqs = [_eq_whole(x) for x in operand]
        return lambda v: v is not MISSING and all(e(v) for e in eqs)
    assert op == "$not"
    inner = _value_pred(operand, parts)
    return lambda v: not inner(v)


def _eq_whole(operand: Any) -> Pred:
    """``$eq`` on a field's value: the whole value or one of its elements."""
    test = _eq(operand)
    kind = type(operand) if type(operand) in _DIRECT else None

    def eq(v: Any) -> bool:
        if type(v) is kind:  # the usual case: a scalar of the operand's type
            return bool(v == operand)
        if v is MISSING:
            return False
        if isinstance(v, list) and v == operand and type(operand) is list:
            return True
        return any(test(c) for c in candidates(v))

    return eq


def _value_pred(ops: list[tuple[str, Any]], parts: tuple[str, ...]) -> Pred:
    """A test of one field's value against its operator list."""
    wholes = [_whole_test(o, v, parts) for o, v in ops if o in FIELD_OPS]
    elems = [(o, v) for o, v in ops if o in ELEMENT_OPS]
    if len(elems) == 1 and elems[0][0] == "$eq":
        elem_pred: Pred | None = _eq_whole(elems[0][1])
    elif elems:
        tests = [_element_test(o, v) for o, v in elems]

        def elem_pred(v: Any) -> bool:
            if v is MISSING:
                return False
            if type(v) is not list:
                return all(t(v) for t in tests)
            return any(all(t(c) for t in tests) for c in v)

    else:
        elem_pred = None
    checks = wholes + ([elem_pred] if elem_pred is not None else [])
    if len(checks) == 1:
        return checks[0]
    return lambda v: all(c(v) for c in checks)


_STR_METHODS: dict[str, Callable[[str, str], bool]] = {
    "$startswith": str.startswith,
    "$endswith": str.endswith,
    "$contains": str.__contains__,
}


def _field_pred(parts: tuple[str, ...], ops: list[tuple[str, Any]]) -> Pred:
    elems = [(o, v) for o, v in ops if o in ELEMENT_OPS]
    if len(parts) == 1 and len(elems) == len(ops) == 1 and elems[0][0] != "$eq":
        # The usual case fused into one function: the hot path of a scan.
        (name,) = parts
        op, operand = elems[0]
        t = _element_test(op, operand)
        method = _STR_METHODS.get(op)
        if method is not None:

            def fast_str(rec: Any) -> bool:
                if type(rec) is not dict:
                    return False
                v = rec.get(name)
                if type(v) is str:
                    return method(v, operand)
                return type(v) is list and any(t(c) for c in v)

            return fast_str

        def fast(rec: Any) -> bool:
            if type(rec) is not dict:
                return False
            v = rec.get(name, MISSING)
            if type(v) is list:
                return any(t(c) for c in v)
            return v is not MISSING and t(v)

        return fast
    test = _value_pred(ops, parts)
    if len(parts) == 1:
        (name,) = parts

        def pred(rec: Any) -> bool:
            if type(rec) is not dict:
                return test(MISSING)
            return test(rec.get(name, MISSING))

        return pred
    return lambda rec: test(resolve(rec, parts))


def element_filter(cond: FieldCond | None) -> Callable[[Any], bool]:
    """Whether one value of a field passes the element operators of
    ``cond`` (every value passes when it has none): what ``order_by``
    takes the smallest or largest of."""
    if cond is None:
        return lambda c: True
    tests = [_element_test(o, v) for o, v in cond.ops if o in ELEMENT_OPS]
    if not tests:
        return lambda c: True
    return lambda c: all(t(c) for t in tests)


def conjunction(fields: list[FieldCond], children: list[Node]) -> Node:
    """The node matching records that pass every condition given."""
    preds = [c.pred for c in fields] + [c.pred for c in children]
    return Node("and", fields, children, _all_of(preds))
