"""Hostile inputs to the C path of ``Collection.put`` (acid/_writepath.c),
each run on the C path and on its Python reference: the same result, the
same error, the same stored bytes, the same calls of the user's functions.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from typing import Any

import pytest

import acid
from acid import collection as collection_module
from acid.encoders import Encoder

C_BUILT = collection_module._cput is not None
needs_c = pytest.mark.skipif(not C_BUILT, reason="the C write path is not built")


def stored(store: acid.Store, coll: acid.Collection) -> list[Any]:
    """The collection's records and index entries as stored, and its length."""
    out: list[Any] = [len(coll)]
    with store.begin() as txn:
        for space in [coll.id] + [idx.id for idx in coll.indices.values()]:
            prefix = store.space(space)
            for k, v in txn.iter(prefix):
                if not k.startswith(prefix):
                    break
                out.append((k[len(prefix) :], bytes(v)))
    return out


def outcome(call: Callable[[], Any]) -> Any:
    try:
        return ("ok", call())
    except Exception as exc:
        return ("error", type(exc).__name__, str(exc))


def open_both(
    monkeypatch: pytest.MonkeyPatch,
    setup: Callable[[acid.Store], acid.Collection],
    url: str = "memory:/",
) -> list[tuple[acid.Store, acid.Collection]]:
    """Two stores, the first writing through the C path, the second through
    the Python one (``_cput`` is read when the collection is made)."""
    sides = []
    for python in (False, True):
        with monkeypatch.context() as m:
            if python:
                m.setattr(collection_module, "_cput", None)
            store = acid.open(url)
            coll = setup(store)
        assert (coll._plan is None) == python
        sides.append((store, coll))
    return sides


class Prefixed:
    """A payload that is not bytes but knows how to follow them (``__radd__``):
    ``b"\\x00" + payload`` is what both paths must compute."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __radd__(self, other: bytes) -> bytes:
        return other + self.data


class Tagged(bytes):
    """A bytes subclass whose ``__radd__`` Python calls before bytes' own +."""

    def __radd__(self, other: bytes) -> bytes:  # type: ignore[misc]
        return other + b"T" + bytes(self)


@needs_c
@pytest.mark.parametrize(
    "pack",
    [
        lambda r: Prefixed(r.encode()),
        lambda r: Tagged(r.encode()),
        lambda r: bytearray(r.encode()),
        lambda r: memoryview(r.encode()),
        lambda r: r,  # a str
        lambda r: None,
    ],
    ids=["radd", "bytes-subclass", "bytearray", "memoryview", "str", "none"],
)
def test_an_encoder_payload_is_added_to_the_value_prefix_as_python_adds(
    monkeypatch: pytest.MonkeyPatch, pack: Callable[[str], Any]
) -> None:
    def unpack(data: Any) -> str:
        data = bytes(data)
        return data[1:].decode() if data[:1] == b"T" else data.decode()

    def setup(store: acid.Store) -> acid.Collection:
        enc = Encoder("hostile", pack, unpack)
        coll = store.add_collection("c", key_func=lambda r: r, encoder=enc)
        coll.add_index("i", lambda r: r)
        return coll

    sides = open_both(monkeypatch, setup)
    results = []
    for store, coll in sides:
        out = [outcome(lambda r=r, c=coll: c.put(r)) for r in ("a", "b", "a")]  # type: ignore[misc]
        results.append((out, stored(store, coll), store.check().ok))
        store.close()
    assert results[0] == results[1]


class FailsOnce:
    """A user function that raises on its first call only, and counts calls."""

    def __init__(self, value: Callable[[Any], Any]) -> None:
        self.value = value
        self.calls = 0

    def __call__(self, rec: Any) -> Any:
        self.calls += 1
        if self.calls == 1:
            raise ValueError("the first call fails")
        return self.value(rec)


def write_from_an_ended_block(store: acid.Store, coll: acid.Collection) -> Any:
    """A put in a context copied inside a block, run after the block ended
    (an asyncio task that outlives its block): the put runs on its own."""
    with store.begin(write=True):
        coll.put({"k": 0, "n": 0})  # the C path is set up for this transaction
        ctx = contextvars.copy_context()

    async def task() -> Any:
        return ctx.run(outcome, lambda: coll.put({"k": 1, "n": 1}))

    return asyncio.run(task())


@needs_c
@pytest.mark.parametrize("which", ["key", "index", "encoder"])
def test_a_user_function_failing_after_the_block_ended_is_not_run_again(
    monkeypatch: pytest.MonkeyPatch, which: str
) -> None:
    # The Python path raises the function's error; the C path took it for the
    # ended transaction's and ran the put again on its own, calling the
    # function a second time: the error vanished and the record was written.
    funcs: list[FailsOnce] = []

    def setup(store: acid.Store) -> acid.Collection:
        f = FailsOnce(lambda r: r["k"] if which == "key" else r["n"])
        funcs.append(f)
        if which == "encoder":
            enc = Encoder("once", f, lambda d: {"k": int(bytes(d))})
            f.value = lambda r: str(r["k"]).encode()
            coll = store.add_collection("c", key_func=lambda r: r["k"], encoder=enc)
        else:
            key_func = f if which == "key" else (lambda r: r["k"])
            coll = store.add_collection("c", key_func=key_func)
            if which == "index":
                coll.add_index("n", f)
        f.calls = -100  # setting up calls it freely
        return coll

    results = []
    for (store, coll), f in zip(open_both(monkeypatch, setup), funcs, strict=True):
        with store.begin(write=True):
            coll.put({"k": 0, "n": 0})
            ctx = contextvars.copy_context()
        f.calls = 0
        out = ctx.run(outcome, lambda: coll.put({"k": 1, "n": 1}))  # noqa: B023
        results.append((out, f.calls, stored(store, coll), store.check().ok))
        store.close()
    assert results[0][0][0] == "error"
    assert results[0] == results[1]


@needs_c
def test_the_key_function_runs_once_when_an_ended_block_put_runs_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # txn.replace fails on the ended transaction; the Python path runs the put
    # again on its own with the key it made, the key function is not called
    # again (it may not give the same key twice).
    calls: list[list[Any]] = []

    def setup(store: acid.Store) -> acid.Collection:
        seen: list[Any] = []
        calls.append(seen)
        return store.add_collection("c", key_func=lambda r: seen.append(r) or r["k"])

    results = []
    for (store, coll), seen in zip(open_both(monkeypatch, setup), calls, strict=True):
        seen.clear()
        out = write_from_an_ended_block(store, coll)
        results.append((out, len(seen), stored(store, coll), store.check().ok))
        store.close()
    assert results[0][0] == ("ok", (1,))
    assert results[0] == results[1]
