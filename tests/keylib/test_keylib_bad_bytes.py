"""Malformed bytes: both twins reject them alike, and the C twin never crashes."""

from __future__ import annotations

import random
from datetime import UTC
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from keylib_strategies import keys

from acid import _keylib_py
from acid.errors import KeyEncodingError

# Bytes that look like keys: mostly type bytes and group bytes.
_INTERESTING = [0x00, 0x01, 0x02, 0x03, 0x04, 0x10, 0x11, 0x12, 0x19, 0x1A, 0x1B]
_INTERESTING += [0x22, 0x23, 0x24, 0x30, 0x40, 0x50, 0x60, 0x61, 0x70, 0x7F, 0x80]
_INTERESTING += [0xB0, 0xC0, 0xED, 0xF6, 0xFE, 0xFF]
keyish = st.lists(st.sampled_from(_INTERESTING) | st.integers(0, 255), max_size=40).map(
    bytes
)


def outcome(func: Any, raw: bytes) -> tuple[str, object]:
    try:
        return "ok", repr(func(raw))
    except KeyEncodingError:
        return "KeyEncodingError", None


def assert_twins_agree(c_twin: ModuleType, raw: bytes) -> None:
    for name in ("unpack", "unpacks"):
        py = outcome(getattr(_keylib_py, name), raw)
        c = outcome(getattr(c_twin, name), raw)
        assert py == c, raw.hex()


@settings(max_examples=500)
@given(st.binary(max_size=64) | keyish)
def test_twins_agree_on_arbitrary_bytes(c_twin: ModuleType, raw: bytes) -> None:
    assert_twins_agree(c_twin, raw)


@settings(max_examples=300)
@given(keys, st.data())
def test_twins_agree_on_mutations(c_twin: ModuleType, t: tuple, data: Any) -> None:
    raw = bytearray(_keylib_py.pack(t))
    for _ in range(data.draw(st.integers(1, 3))):
        op = data.draw(st.sampled_from(["set", "insert", "delete", "truncate"]))
        at = data.draw(st.integers(0, len(raw)))
        if op == "set" and at < len(raw):
            raw[at] = data.draw(st.integers(0, 255))
        elif op == "insert":
            raw.insert(at, data.draw(st.sampled_from(_INTERESTING)))
        elif op == "delete" and at < len(raw):
            del raw[at]
        else:
            del raw[at:]
    assert_twins_agree(c_twin, bytes(raw))


@given(st.binary(max_size=64))
def test_only_key_encoding_errors(impl: ModuleType, raw: bytes) -> None:
    for func in (impl.unpack, impl.unpacks):
        try:
            func(raw)
        except KeyEncodingError:
            pass


def _seeds() -> list[bytes]:
    rnd = random.Random(7)
    from datetime import datetime
    from uuid import UUID

    from acid.keylib import Desc

    tuples = [
        (1, "abc", None, True),
        (1.5, -2.25, b"xy", -(2**70), 2**64),
        (UUID(int=rnd.getrandbits(128)), datetime(2000, 1, 1)),
        (datetime(2000, 1, 1, tzinfo=UTC), -1e-300, 5e-324),
        ((1, (2, ("x",))), Desc("x"), Desc((1, 2.5))),
        ("\ud800 and some longer text \u65e5", b"\x00" * 9),
    ]
    return [_keylib_py.pack(t) for t in tuples] + [_keylib_py.packs([(1,), ("a",)])]


def fuzz(c_twin: ModuleType, cases: int, seed: int) -> int:
    """Feed random and mutated bytes to the C twin; return the case count."""
    rnd = random.Random(seed)
    seeds = _seeds()
    unpack, unpacks = c_twin.unpack, c_twin.unpacks
    for i in range(cases):
        if i & 1:
            raw = bytearray(rnd.choice(seeds))
            for _ in range(rnd.randint(1, 4)):
                at = rnd.randrange(len(raw) + 1)
                op = rnd.randrange(4)
                if op == 0 and at < len(raw):
                    raw[at] = rnd.randrange(256)
                elif op == 1:
                    raw.insert(at, rnd.choice(_INTERESTING))
                elif op == 2:
                    del raw[at : at + rnd.randint(1, 3)]
                else:
                    raw[at:at] = rnd.choice(seeds)[: rnd.randint(1, 12)]
            data = bytes(raw)
        else:
            data = bytes(
                rnd.choice(_INTERESTING) if rnd.random() < 0.7 else rnd.randrange(256)
                for _ in range(rnd.randrange(24))
            )
        for func in (unpack, unpacks):
            try:
                func(data)
            except KeyEncodingError:
                pass
    return cases


FUZZ_CASES = 600_000


def test_fuzz_c_twin(c_twin: ModuleType) -> None:
    assert fuzz(c_twin, FUZZ_CASES, seed=1) == FUZZ_CASES


@pytest.mark.stress
def test_fuzz_c_twin_stress(c_twin: ModuleType) -> None:
    for seed in range(2, 12):
        fuzz(c_twin, 500_000, seed)
