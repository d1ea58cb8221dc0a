"""A typed JSON mapping: Python values JSON lacks, written so they come back.

JSON has no bytes, datetimes, UUIDs, tuples, non-string dict keys, nan or
infinity, and most JSON readers lose integers beyond 2**53. Such a value is
written as an object with one ``"$type"`` member:

=====================  ==============================================
Python                 JSON
=====================  ==============================================
``bytes``              ``{"$bytes": "<base64>"}``
``datetime``           ``{"$datetime": "2024-05-01T12:00:00.000001+02:00"}``
``date``               ``{"$date": "2024-05-01"}``
``uuid.UUID``          ``{"$uuid": "12345678-1234-5678-1234-567812345678"}``
``tuple``              ``{"$tuple": [...]}``
``int`` beyond 2**53   ``{"$int": "123456789012345678901"}``
nan, inf, -inf         ``{"$float": "nan"}`` (``"inf"``, ``"-inf"``)
``dict`` with a key    ``{"$dict": [[key, value], ...]}``
that is not a str or
starts with ``$``
=====================  ==============================================

Everything else (None, bool, str, finite floats, small ints, lists, dicts
with plain string keys) is itself. Aware datetimes come back with a fixed
UTC offset (a zone name such as ``Europe/Paris`` is not kept); naive ones stay
naive. A value of any other type raises ``TypeError`` naming it.

>>> import datetime
>>> value = {1: (b"\\x00", float("inf"), 2**70)}
>>> text = dumps(value)
>>> text
'{"$dict":[[1,{"$tuple":[{"$bytes":"AA=="},{"$float":"inf"},{"$int":"1180591620717411303424"}]}]]}'
>>> loads(text) == value
True
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import math
import uuid
from typing import Any

__all__ = ["decode", "dumps", "encode", "loads"]

#: Integers JSON readers agree on (IEEE doubles hold them exactly).
SAFE_INT = 2**53 - 1

_FLOATS = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def encode(value: Any) -> Any:
    """``value`` as plain JSON-able data (dicts, lists, str, numbers...)."""
    kind = type(value)
    if value is None or kind is bool or kind is str:
        return value
    if kind is int:
        return value if -SAFE_INT <= value <= SAFE_INT else {"$int": str(value)}
    if kind is float:
        if math.isfinite(value):
            return value
        return {"$float": "nan" if math.isnan(value) else str(value)}
    if kind is list:
        return [encode(x) for x in value]
    if kind is tuple:
        return {"$tuple": [encode(x) for x in value]}
    if kind is dict:
        if all(type(k) is str and not k.startswith("$") for k in value):
            return {k: encode(v) for k, v in value.items()}
        return {"$dict": [[encode(k), encode(v)] for k, v in value.items()]}
    if kind is bytes:
        return {"$bytes": base64.b64encode(value).decode("ascii")}
    if kind is datetime.datetime:
        return {"$datetime": value.isoformat()}
    if kind is datetime.date:
        return {"$date": value.isoformat()}
    if kind is uuid.UUID:
        return {"$uuid": str(value)}
    raise TypeError(
        f"the typed JSON mapping has no form for {kind.__name__} values "
        "(see docs/cli.md for the types it knows)"
    )


def _tagged(tag: str, arg: Any) -> Any:
    if tag == "$tuple" and type(arg) is list:
        return tuple(decode(x) for x in arg)
    if tag == "$dict" and type(arg) is list:
        out = {}
        for pair in arg:
            if type(pair) is not list or len(pair) != 2:
                raise ValueError("a $dict holds [key, value] pairs")
            out[_hashable(decode(pair[0]))] = decode(pair[1])
        return out
    if type(arg) is not str:
        raise ValueError(f"{tag} takes a string, not {type(arg).__name__}")
    try:
        if tag == "$bytes":
            return base64.b64decode(arg.encode("ascii"), validate=True)
        if tag == "$datetime":
            return datetime.datetime.fromisoformat(arg)
        if tag == "$date":
            return datetime.date.fromisoformat(arg)
        if tag == "$uuid":
            return uuid.UUID(arg)
        if tag == "$int":
            return int(arg)
        if tag == "$float":
            return _FLOATS[arg]
    except (ValueError, KeyError, UnicodeEncodeError, binascii.Error) as exc:
        raise ValueError(f"{tag}: {arg[:40]!r} is not valid ({exc})") from None
    raise ValueError(f"unknown type tag {tag!r}")


def _hashable(key: Any) -> Any:
    try:
        hash(key)
    except TypeError:
        raise ValueError(f"a $dict key must be hashable, got {key!r}") from None
    return key


def decode(data: Any) -> Any:
    """The inverse of :func:`encode`; malformed tags raise ``ValueError``."""
    kind = type(data)
    if kind is list:
        return [decode(x) for x in data]
    if kind is dict:
        if len(data) == 1:
            ((tag, arg),) = data.items()
            if tag.startswith("$"):
                return _tagged(tag, arg)
        for k in data:
            if k.startswith("$"):
                raise ValueError(f"unknown type tag {k!r} beside other members")
        return {k: decode(v) for k, v in data.items()}
    return data


def dumps(value: Any) -> str:
    """One line of JSON for ``value`` (no spaces, no NaN literals)."""
    return json.dumps(
        encode(value), ensure_ascii=False, separators=(",", ":"), allow_nan=False
    )


def _no_constant(name: str) -> Any:
    raise ValueError(f'{name} is not JSON; write {{"$float": ...}}')


def loads(text: str | bytes) -> Any:
    """The value :func:`dumps` wrote; bad JSON or tags raise ``ValueError``."""
    return decode(json.loads(text, parse_constant=_no_constant))
