"""The golden vectors of tests/vectors/keys.txt, on both twins."""

from __future__ import annotations

import datetime
import math
from pathlib import Path
from types import ModuleType
from uuid import UUID

import pytest
from keylib_strategies import same

from acid.errors import KeyEncodingError
from acid.keylib import Desc

VECTORS = Path(__file__).parent.parent / "vectors" / "keys.txt"
NAMESPACE = {
    "__builtins__": {},
    "datetime": datetime,
    "timezone": datetime.timezone,
    "timedelta": datetime.timedelta,
    "UUID": UUID,
    "Desc": Desc,
    "inf": math.inf,
    "nan": math.nan,
}


def load() -> tuple[list[tuple[object, bytes]], list[bytes]]:
    good, bad = [], []
    for line in VECTORS.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        text, _, hexed = line.partition("\t")
        raw = bytes.fromhex(hexed)
        if text == "invalid":
            bad.append(raw)
        else:  # eval of our own vector file, with no builtins in NAMESPACE
            good.append((eval(text, NAMESPACE), raw))
    return good, bad


GOOD, BAD = load()


def test_vector_file_covers_enough() -> None:
    assert len(GOOD) >= 180 and len(BAD) >= 30
    type_bytes = {raw[0] for _, raw in GOOD if raw}
    every = {0x02, 0x03, 0x04, 0x10, 0x24, 0x30, 0x40, 0x50, 0x60, 0x61, 0x70, 0x7F}
    every |= set(range(0x11, 0x24))
    assert every <= type_bytes
    assert any(0xFE in raw for _, raw in GOOD)
    assert any(isinstance(v, list) for v, _ in GOOD)


def test_vectors_pack(impl: ModuleType) -> None:
    for value, raw in GOOD:
        if isinstance(value, list):
            assert impl.packs(value) == raw, value
        else:
            assert impl.pack(value) == raw, value


def test_vectors_unpack(impl: ModuleType) -> None:
    for value, raw in GOOD:
        if isinstance(value, list):
            assert same(tuple(impl.unpacks(raw)), tuple(value)), value
        else:
            assert same(impl.unpack(raw), value), value
            assert same(tuple(impl.unpacks(raw)), (value,)), value


@pytest.mark.parametrize("raw", BAD, ids=lambda raw: raw.hex() or "empty")
def test_invalid_vectors(impl: ModuleType, raw: bytes) -> None:
    with pytest.raises(KeyEncodingError):
        impl.unpack(raw)
    with pytest.raises(KeyEncodingError):
        impl.unpacks(raw)
