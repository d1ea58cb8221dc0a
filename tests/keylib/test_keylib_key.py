"""The Key class of acid.keylib."""

from __future__ import annotations

import pickle

import pytest

from acid import keylib
from acid.errors import KeyEncodingError
from acid.keylib import Desc, Key


def test_behaves_like_a_tuple() -> None:
    k = Key(1, "a", None)
    assert len(k) == 3 and bool(k) and not Key()
    assert k[0] == 1 and k[-1] is None and k[1:] == Key("a", None)
    assert isinstance(k[1:], Key) and k[::2] == (1, None)
    assert list(k) == [1, "a", None] and tuple(k) == (1, "a", None)
    assert "a" in k and 2 not in k
    assert k.index("a") == 1 and k.count(1) == 1
    with pytest.raises(IndexError):
        k[3]


def test_equality_and_hash() -> None:
    assert Key(1, "a") == (1, "a") and (1, "a") == Key(1, "a")  # noqa: SIM300
    assert Key(1, "a") == Key(1, "a") and Key(1) != Key(2)
    assert Key(1) != Key(1.0) and Key(1) != (1.0,)  # bytes, not Python's ==
    assert hash(Key(1, "a")) == hash((1, "a"))
    assert Key(1) != [1] and Key(1) != (object(),)
    assert {Key(1): "x"}[Key(1)] == "x"


def test_ordering() -> None:
    assert Key(1) < Key(1, 0) < Key(2) < Key("a")
    assert (2,) > Key(1) and Key(1) <= (1,) and Key(3) >= (2,)  # noqa: SIM300
    assert sorted([Key("b"), Key(Desc(1)), Key(None), Key(1.5)]) == [
        Key(None),
        Key(1.5),
        Key("b"),
        Key(Desc(1)),
    ]
    with pytest.raises(TypeError):
        Key(1) < 1  # noqa: B015


def test_raw_and_hex() -> None:
    k = Key(1, "a")
    assert k.to_raw() == keylib.pack((1, "a"))
    assert k.to_raw(b"pre") == b"pre" + keylib.pack((1, "a"))
    assert Key.from_raw(k.to_raw(b"pre"), prefix=b"pre") == k
    assert Key.from_raw(memoryview(k.to_raw())) == k
    assert Key.from_raw(k.to_raw(b"pre"), prefix=b"other") is None
    assert Key.from_str(k.to_hex()) == k
    assert Key.from_str("not hex") is None
    assert Key.from_str("1b") is None  # truncated
    assert Key.from_str(keylib.pack((1,)).hex() + "01") is None  # SEP


def test_lazy_decoding() -> None:
    k = Key.from_raw(b"\x1b\x01\x05")
    assert k is not None and k == Key.from_raw(b"\x1b\x01\x05")
    with pytest.raises(KeyEncodingError):
        len(k)
    assert repr(k) == "Key.from_raw(b'\\x1b\\x01\\x05')"


def test_prefix_bound() -> None:
    k = Key("a")
    bound = k.prefix_bound()
    assert bound is not None
    assert k < Key("a", 1) < Key("a", (9, 9)) < bound < Key("ab") < Key("b")
    assert Key().prefix_bound() is None  # every key starts with Key()


def test_prefix_bound_is_element_wise() -> None:
    # pack((1,)) is a byte prefix of pack((1.5,)); Key(1.5) does not start
    # with Key(1), so it must not sort below the bound.
    bound = Key(1).prefix_bound()
    assert bound is not None
    assert Key(1) < Key(1, "z") < Key(1, Desc(None)) < bound
    assert bound <= Key(1.0) and bound <= Key(1.5) and bound <= Key(1.5, "b")
    bound = Key(-2).prefix_bound()
    assert bound is not None and Key(-2, 9) < bound <= Key(-1.5)
    bound = Key("a", 1).prefix_bound()
    assert bound is not None and Key("a", 1, 1) < bound <= Key("a", 1.0)
    assert bound.to_raw() == keylib.prefix_range(("a", 1))[1]


def test_key_of_a_key_is_a_copy() -> None:
    k = Key(1, "a")
    copy = Key(k)
    assert copy == k and copy is not k and type(copy) is Key
    assert copy.to_raw() == k.to_raw() and tuple(copy) == (1, "a")
    assert Key(Key()) == Key() and not Key(Key())
    lazy = Key.from_raw(keylib.pack((2.5, Desc("x"))))
    assert lazy is not None and Key(lazy) == lazy == (2.5, Desc("x"))
    assert Key(Key(1)) != Key((1,))  # a nested tuple is still an element
    with pytest.raises(TypeError):
        Key(k, 2)  # a Key is not a key element


def test_concatenation() -> None:
    assert Key(1) + (2,) == Key(1, 2) and (0,) + Key(1) == Key(0, 1)
    assert Key(1) + Key("x") == (1, "x")


def test_repr_and_pickle() -> None:
    assert repr(Key(1, "a")) == "Key(1, 'a')"
    assert repr(Key(1)) == "Key(1,)" and repr(Key()) == "Key()"
    k = Key(1, Desc("x"), (2.5,))
    assert pickle.loads(pickle.dumps(k)) == k


def test_construction_validates() -> None:
    with pytest.raises(TypeError):
        Key([1])
    with pytest.raises(KeyEncodingError):
        Key(float("nan"))
    with pytest.raises(AttributeError):
        Key(1).other = 2  # type: ignore[attr-defined]
