"""``Collection.get`` fed what a hostile caller would feed it.

With the C extension, ``get`` is ``PutBase.get`` (acid/_writepath.c), which
serves the usual case and hands the rest to ``Collection._get``, the Python
reference. Whatever the call, both must answer the same: values, defaults,
errors and their messages, and the same calls into user code (encoders,
key objects, a custom transaction context), once each.
"""

from __future__ import annotations

import asyncio
import collections
import datetime
import gc
import json
import subprocess
import sys
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

import pytest

import acid
from acid import collection as collection_module
from acid import encoders
from acid.errors import CorruptionError, SchemaError, TxnError

C_BUILT = collection_module._cput is not None
needs_c = pytest.mark.skipif(not C_BUILT, reason="the C write path is not built")


def outcome(call: Callable[[], Any]) -> tuple[Any, ...]:
    """What ``call`` answered: its value, or its error with its cause."""
    try:
        return ("ok", repr(call()))
    except BaseException as exc:  # every outcome is compared
        cause = exc.__cause__
        return (
            type(exc),
            str(exc),
            type(cause),
            str(cause),
            exc.__suppress_context__,
            type(exc.__context__),
        )


def both(coll: acid.Collection, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
    """``coll.get`` and ``coll._get`` on the same arguments: must agree."""
    c_out = outcome(lambda: coll.get(*args, **kwargs))
    py_out = outcome(lambda: coll._get(*args, **kwargs))
    assert c_out == py_out, (args, kwargs)
    return c_out


class Boom(Exception):
    pass


class Hostile:
    """Raises on every comparison, hash and truth test."""

    def __eq__(self, other: object) -> bool:
        raise Boom("eq")

    def __hash__(self) -> int:
        raise Boom("hash")

    def __bool__(self) -> bool:
        raise Boom("bool")


class TupleSub(tuple):  # type: ignore[type-arg]
    pass


Pair = collections.namedtuple("Pair", "a b")


def nested(depth: int) -> tuple[Any, ...]:
    out: tuple[Any, ...] = ()
    for _ in range(depth):
        out = (out,)
    return out


STORED_KEYS: list[Any] = [
    1,
    (1,),
    "a",
    b"x",
    None,
    (),
    True,
    2**100,
    -0.0,
    tuple(range(3000)),
    TupleSub((1,)),
    Pair(1, 2),
    nested(60),
]
PROBE_KEYS: list[Any] = STORED_KEYS + [
    acid.keylib.Key((1,)),
    acid.keylib.Key(("a",)),
    2.5,
    float("nan"),
    datetime.datetime(2020, 1, 1),
    [1],
    {"a": 1},
    frozenset([1]),
    bytearray(b"x"),
    memoryview(b"x"),
    object(),
    Hostile(),
    (Hostile(),),
    nested(200),
]


def arg_forms(key: Any) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    """The ways to pass ``key``, a default and raw, good and bad."""
    return [
        ((key,), {}),
        ((key, "dflt"), {}),
        ((key,), {"default": 0}),
        ((key,), {"raw": True}),
        ((key,), {"raw": 0}),
        ((key,), {"raw": None}),
        ((key,), {"raw": Hostile()}),  # a truth test that raises
        ((key, None, Hostile()), {}),
        ((key,), {"default": 1, "raw": False}),
        ((key,), {"raw": False, "default": 1}),
        ((key,), {"".join(["def", "ault"]): 5}),  # a name that is not interned
        ((key,), {"".join(["r", "aw"]): 0}),
        ((), {"key": key}),
        ((key, 1), {"default": 2}),  # given twice
        ((key, 1, False), {"raw": 1}),
        ((key,), {"raw": False, "other": 1}),
        ((key, 1, False, 4), {}),
    ]


@pytest.mark.parametrize(
    ("encoder", "compressor"),
    [("msgpack", "plain"), ("json", "zlib"), ("json", "zstd"), ("pickle", "plain")],
)
def test_every_key_and_argument_form_answers_as_the_reference(
    store: acid.Store, encoder: str, compressor: str
) -> None:
    coll = store.add_collection("c", encoder=encoder, compressor=compressor)
    for key in STORED_KEYS:
        try:
            coll.put({"k": repr(key)[:20], "pad": "p" * 100}, key=key)
        except acid.errors.EngineError:  # a key too long for LMDB, say
            pass
    for key in PROBE_KEYS:
        for args, kwargs in arg_forms(key):
            both(coll, *args, **kwargs)
    with store.begin():
        for key in PROBE_KEYS:
            both(coll, key)
            both(coll, key, raw=True)
    with store.begin(write=True):
        coll.put({"only": "here"}, key=("txn-only",))
        assert both(coll, ("txn-only",)) == ("ok", repr({"only": "here"}))
        for key in PROBE_KEYS:
            both(coll, key, "d")
        acid.abort()
    assert both(coll, ("txn-only",), "gone") == ("ok", repr("gone"))
    both(coll)
    both(coll, 1, bogus=1)


def test_optimistic_writers_answer_as_the_reference(
    open_optimistic_store: Callable[..., acid.Store],
) -> None:
    store = open_optimistic_store()
    coll = store.add_collection("c", encoder="msgpack")
    for key in STORED_KEYS[:9]:
        if key is not None:  # None: a key from the counter
            coll.put({"k": repr(key)}, key=key)
    for key in PROBE_KEYS:
        for args, kwargs in arg_forms(key)[:4]:
            both(coll, *args, **kwargs)
    with store.begin(write=True):
        coll.put({"k": "mine"}, key=1)
        assert both(coll, 1) == ("ok", repr({"k": "mine"}))
        acid.abort()
    assert both(coll, 1) == ("ok", repr({"k": "(1,)"}))  # 1 is (1,)


def test_schema_changes_in_a_block_that_aborts(store: acid.Store) -> None:
    coll = store.add_collection("c")
    coll.put([1], key=1)
    with store.begin(write=True):
        store.drop_collection("c")
        assert both(coll, 1)[0] is SchemaError
        acid.abort()
    assert both(coll, 1) == ("ok", repr([1]))  # attached again
    with store.begin(write=True):
        coll.put([2], key=2)
        store.rename_collection("c", "d")
        assert both(coll, 2) == ("ok", repr([2]))
        acid.abort()
    assert both(coll, 2, "gone") == ("ok", repr("gone"))
    assert coll.name == "c"
    with store.begin(write=True):
        new = store.add_collection("n")
        new.put([9], key=9)
        assert both(new, 9) == ("ok", repr([9]))
        acid.abort()
    assert both(new, 9)[0] is SchemaError


def test_a_bad_call_names_collection_get(store: acid.Store) -> None:
    # Was "Collection._get() missing ...": a private name in the user's face.
    coll = store.add_collection("c")
    for call in (
        lambda: coll.get(),  # type: ignore[call-arg]
        lambda: coll.get(1, 2, 3, 4),  # type: ignore[call-arg]
        lambda: coll.get(1, bogus=1),  # type: ignore[call-arg]
        lambda: coll.get(1, 2, default=3),  # type: ignore[misc]
    ):
        with pytest.raises(TypeError) as err:
            call()
        assert str(err.value).startswith("Collection.get() "), str(err.value)


def test_stored_values_good_and_garbage_answer_as_the_reference() -> None:
    store = acid.open("memory:/")
    samples = [json.dumps({"i": i, "t": "x" * 40}).encode() for i in range(200)]
    store.add_encoder(
        encoders.ZstdDictCompressor("dict", encoders.train_zstd_dict(samples, 1024))
    )
    colls = [
        store.add_collection("m", encoder="msgpack"),
        store.add_collection("z", encoder="json", compressor="zlib"),
        store.add_collection("s", encoder="json", compressor="zstd"),
        store.add_collection("d", encoder="json", compressor="dict"),
        store.add_collection("p", encoder="pickle"),
    ]
    for coll in colls:
        coll.put({"t": "y" * 300}, key="real")
        assert coll.get("real") == {"t": "y" * 300}
        values = [
            b"",
            b"\x00",
            b"\x00garbage",
            b"\x00\xc1",
            b'\x00"unterminated',
            b"\x00\x80\x04N.",
            b"\x01",
            b"\x01garbage",
            b"\x02garbage",
            b"\x7fx",
            b"\xffx",
            bytes([coll.codec.cid]) + b"junk",
        ]
        with store.begin(write=True) as txn:
            for i, value in enumerate(values):
                txn.put(coll.key_prefix + acid.keylib.pack((i,)), value)
        for key in [*range(len(values)), "real"]:
            both(coll, key)
            both(coll, key, raw=True)
            with store.begin():
                both(coll, key, None)
    store.close()


def test_a_failing_decode_runs_the_encoder_once() -> None:
    # The C get used to catch the encoder's error and decode again with the
    # codec, so the encoder ran twice: an encoder that answers on the second
    # try turned a corrupt value into a record, and the error named the
    # second failure instead of the first.
    calls: list[int] = []

    def unpack(data: bytes) -> Any:
        calls.append(1)
        if len(calls) % 2:
            raise ValueError(f"failure #{len(calls)}")
        return json.loads(bytes(data))

    store = acid.open("memory:/")
    store.add_encoder(
        encoders.Encoder("flaky", lambda r: json.dumps(r).encode(), unpack)
    )
    coll = store.add_collection("c", encoder="flaky")
    coll.put([1], key=1)
    for get in (coll.get, coll._get):
        calls.clear()
        with pytest.raises(CorruptionError) as err:
            get(1)
        assert len(calls) == 1
        assert "failure #1" in str(err.value)
        assert isinstance(err.value.__cause__, ValueError)
        assert str(err.value.__cause__) == "failure #1"
        assert err.value.__context__ is err.value.__cause__
        assert err.value.__suppress_context__


def test_an_encoder_raising_base_exceptions_or_changing_state() -> None:
    mode: dict[str, Any] = {"now": None}
    holder: dict[str, Any] = {}

    def unpack(data: bytes) -> Any:
        now = mode["now"]
        if now == "interrupt":
            raise KeyboardInterrupt("stop")
        if now == "exit":
            raise SystemExit(3)
        if now == "odd":
            return mode
        if now == "replan":  # the collection's get plan goes while in use
            holder["coll"]._update_refusal()
            holder["coll"]._getplan = None
            return "replanned"
        if now == "drop":
            mode["now"] = None
            holder["store"].drop_collection("c")
            return "dropped"
        return json.loads(bytes(data))

    outs = []
    for side in ("c", "py"):
        store = acid.open("memory:/")
        store.add_encoder(
            encoders.Encoder("hostile", lambda r: json.dumps(r).encode(), unpack)
        )
        coll = holder["coll"] = store.add_collection("c", encoder="hostile")
        holder["store"] = store
        coll.put([1], key=1)
        get = coll.get if side == "c" else coll._get
        out = []
        for now in ("interrupt", "exit", "odd", "replan", None, "drop", None):
            mode["now"] = now
            out.append(outcome(lambda get=get: get(1)))  # type: ignore[misc]
        outs.append(out)
    assert outs[0] == outs[1]
    assert outs[0][0][0] is KeyboardInterrupt and outs[0][1][0] is SystemExit
    assert outs[0][5] == ("ok", repr("dropped")) and outs[0][6][0] is SchemaError


class CountingContext:
    """A transaction context (``acid.Store(..., txn_context=...)``) that
    counts its reads and, once ``hand`` is set, hands that out instead."""

    def __init__(self) -> None:
        self.var: ContextVar[Any] = ContextVar("txn", default=None)
        self.reads = 0
        self.hand: Any = None

    def get(self) -> Any:
        self.reads += 1
        hand = self.hand
        if hand is None:
            return self.var.get()
        if isinstance(hand, BaseException):
            raise hand
        return hand

    def set(self, txn: Any) -> Any:
        return self.var.set(txn)

    def reset(self, token: Any) -> None:
        self.var.reset(token)


class FakeTxn:
    def __init__(self, ended: Any, value: Any) -> None:
        self._ended = ended
        self.value = value
        self.ended_reads = 0

    @property
    def ended(self) -> Any:
        self.ended_reads += 1
        if isinstance(self._ended, BaseException):
            raise self._ended
        return self._ended

    def get(self, key: bytes) -> Any:
        return self.value


@pytest.mark.parametrize(
    "hand",
    [
        lambda: ValueError("no context"),
        lambda: 5,  # not a transaction
        lambda: FakeTxn(False, None),
        lambda: FakeTxn(False, b"\x00[7]"),
        lambda: FakeTxn(False, bytearray(b"\x00[7]")),
        lambda: FakeTxn(False, memoryview(b"\x00[7]")),
        lambda: FakeTxn(False, "\x00[7]"),
        lambda: FakeTxn(False, 7),
        lambda: FakeTxn(ValueError("ended?"), None),
        lambda: FakeTxn(KeyboardInterrupt(), None),
        lambda: FakeTxn(Hostile(), None),
        lambda: FakeTxn(True, None),  # ended, its block over: read on its own
    ],
)
def test_a_custom_transaction_context_is_asked_once(hand: Callable[[], Any]) -> None:
    # An ended transaction used to send the C get back to _get, which asked
    # the context (and the key's conversion, and ``ended``) a second time.
    outs = []
    for side in ("c", "py"):
        ctx = CountingContext()
        store = acid.Store(acid.engines.from_url("memory:/"), txn_context=ctx)
        coll = store.add_collection("c", encoder="json")
        coll.put([0], key=1)
        ctx.hand = given = hand()
        ctx.reads = 0
        get = coll.get if side == "c" else coll._get
        out = outcome(lambda get=get: get(1, "dflt"))  # type: ignore[misc]
        outs.append((out, ctx.reads, getattr(given, "ended_reads", None)))
    assert outs[0] == outs[1]
    if not isinstance(getattr(given, "value", None), str):  # str: looks up codecs
        assert outs[0][1] == 1


class Lying(bytes):
    """A stored value whose slices say something else than its bytes."""

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return b'"sliced"'
        return bytes.__getitem__(self, index)


def test_a_value_of_a_bytes_subclass_is_read_through_its_own_indexing() -> None:
    # The C get read a bytes subclass's buffer directly where the reference
    # slices it (a transaction context handing out its own transactions).
    ctx = CountingContext()
    store = acid.Store(acid.engines.from_url("memory:/"), txn_context=ctx)
    coll = store.add_collection("c", encoder="json")
    ctx.hand = FakeTxn(False, Lying(b'\x00"buffer"'))
    assert both(coll, 1) == ("ok", repr("sliced"))
    ctx.hand = FakeTxn(False, Lying(b'\x00"buffer'))
    assert both(coll, 1) == ("ok", repr("sliced"))


def test_an_inherited_transaction_and_one_ended_under_its_block() -> None:
    store = acid.open("memory:/")
    coll = store.add_collection("c")
    coll.put({"a": 1}, key=1)

    async def main() -> list[Any]:
        gate = asyncio.Event()

        async def reader() -> list[Any]:
            await gate.wait()
            return [both(coll, 1), both(coll, 2, "d"), both(coll, 1, raw=True)]

        with store.begin():
            task = asyncio.get_running_loop().create_task(reader())
        gate.set()
        return await task

    assert asyncio.run(main())[:2] == [("ok", repr({"a": 1})), ("ok", repr("d"))]
    with store.begin() as txn:
        txn.abort()  # ended while its block still runs
        out = both(coll, 1)
        assert out[0] is TxnError
        acid.abort()


def test_lmdb_map_full_and_closed_store(tmp_path: Any) -> None:
    store = acid.open(f"lmdb:{tmp_path}/db?map_size=1MiB")
    coll = store.add_collection("c")
    coll.put([1], key=1)
    with pytest.raises(acid.errors.EngineError):
        with store.begin(write=True):
            try:
                for i in range(10_000):
                    coll.put("x" * 1000, key=("big", i))
            except acid.errors.EngineError:
                both(coll, 1)  # the engine's error again, or the record
                raise
    assert both(coll, 1) == ("ok", repr([1]))
    store.close()
    assert both(coll, 1)[0] is acid.errors.EngineError


def test_dropped_renamed_and_recreated_collections(tmp_path: Any) -> None:
    url = f"lmdb:{tmp_path}/db"
    one, two = acid.open(url), acid.open(url)
    coll = one.add_collection("c")
    coll.put({"v": "old"}, key=1)
    assert both(two.add_collection("c"), 1) == ("ok", repr({"v": "old"}))
    one.rename_collection("c", "r")
    assert both(coll, 1) == ("ok", repr({"v": "old"}))
    two.drop_collection("r")  # through the other Store object on the path
    assert both(coll, 1)[0] is SchemaError
    again = two.add_collection("r")
    again.put({"v": "new"}, key=1)
    assert both(coll, 1)[0] is SchemaError  # the old object stays detached
    assert both(one.add_collection("r"), 1) == ("ok", repr({"v": "new"}))
    # Another process drops and recreates it: seen at the next write (see
    # docs/guide.md), and until then both paths read the same.
    live = one.add_collection("r")
    code = (
        "import acid\n"
        f"s = acid.open({url!r})\n"
        "s.drop_collection('r')\n"
        "s.add_collection('r').put({'v': 'other'}, key=1)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    both(live, 1)
    with pytest.raises(SchemaError):
        live.put({"v": "stale"}, key=2)
    assert both(live, 1)[0] is SchemaError
    one.close()
    two.close()


def test_expiring_collections_never_take_the_c_get() -> None:
    now = [1000.0]
    store = acid.open("memory:/", clock=lambda: now[0])
    coll = store.add_collection("c")
    coll.put([1], key=1)
    assert "get" not in vars(coll)
    with store.begin(write=True):
        coll.declare_ttl(10)
        assert vars(coll)["get"] == coll._expiring_get
        coll.put([2], key=2)
        acid.abort()
    assert "get" not in vars(coll) and coll.expiry is None  # rolled back
    assert coll.get(2) is None and coll.get(1) == [1]
    coll.declare_ttl(10)
    coll.put([3], key=3)
    assert vars(coll)["get"] == coll._expiring_get
    now[0] += 20
    assert coll.get(3, "expired") == "expired"
    assert coll.get(1) == [1]  # put before expiry: no deadline
    # Another Collection object of the store follows at once.
    other = store.add_collection("c")
    assert other.get(3, "expired") == "expired"


def test_threads_and_tasks_reading_while_the_collection_is_dropped() -> None:
    store = acid.open("memory:/")
    errors: list[Any] = []
    stop = threading.Event()

    def reader(coll: acid.Collection) -> None:
        while not stop.is_set():
            try:
                got = coll.get(1)
                # None: a read that began before the drop landed and read
                # after it (the Python path answers the same).
                if got not in ([1], None):
                    errors.append(got)
            except SchemaError:
                pass
            except Exception as exc:  # reported below
                errors.append(repr(exc))

    for _ in range(30):
        coll = store.add_collection("t")
        coll.put([1], key=1)
        stop.clear()
        threads = [threading.Thread(target=reader, args=(coll,)) for _ in range(3)]
        for thread in threads:
            thread.start()
        store.drop_collection("t")
        stop.set()
        for thread in threads:
            thread.join()
        with pytest.raises(SchemaError):
            coll.get(1)
    assert errors == []

    async def tasks() -> list[Any]:
        coll = store.add_collection("a")
        coll.put([1], key=1)

        async def one(i: int) -> Any:
            await asyncio.sleep(0)
            if i == 5:
                store.drop_collection("a")
            await asyncio.sleep(0)
            return outcome(lambda: coll.get(1))

        return await asyncio.gather(*(one(i) for i in range(10)))

    outs = asyncio.run(tasks())
    assert all(out[0] is SchemaError for out in outs[5:])


def _grows(call: Callable[[], Any], n: int) -> tuple[int, int]:
    """Bytes and objects left behind by ``n`` calls (after a warm-up)."""

    def loop(times: int) -> None:
        for _ in range(times):
            try:
                call()
            except Exception:  # failing calls are measured too
                pass

    loop(1000)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        objects = len(gc.get_objects())
        loop(n)
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before, len(
            gc.get_objects()
        ) - objects
    finally:
        tracemalloc.stop()


def _leak_cases() -> Iterator[tuple[str, Callable[[], Any]]]:
    store = acid.open("memory:/")
    coll = store.add_collection("c", encoder="msgpack")
    coll.put({"a": 1}, key=1)
    with store.begin(write=True) as txn:
        txn.put(coll.key_prefix + acid.keylib.pack((2,)), b"\x00\xc1")
    yield "hit", lambda: coll.get(1)
    yield "miss", lambda: coll.get(9, "d")
    yield "keywords", lambda: coll.get(1, default=2, raw=False)
    yield "raw", lambda: coll.get(1, raw=True)
    yield "corrupt", lambda: coll.get(2)
    yield "bad key", lambda: coll.get([1])
    yield "bad raw", lambda: coll.get(1, raw=Hostile())
    yield "bad call", lambda: coll.get(1, 2, 3, 4, 5, 6, 7, 8, 9)  # type: ignore[call-arg]
    yield "Key", lambda: coll.get(acid.keylib.Key((1,)))


@pytest.mark.stress
@pytest.mark.parametrize("name", [name for name, _ in _leak_cases()])
def test_no_leak_over_many_gets(name: str) -> None:
    call = dict(_leak_cases())[name]
    grown, objects = _grows(call, 100_000)
    assert grown < 20_000, grown
    assert objects < 100, objects


def test_no_leak_over_some_gets() -> None:
    for name, call in _leak_cases():
        grown, objects = _grows(call, 10_000)
        assert grown < 20_000, (name, grown)
        assert objects < 100, (name, objects)


def test_under_dev_mode_in_a_fresh_interpreter() -> None:
    code = (
        "import acid, json\n"
        "from acid import encoders\n"
        "s = acid.open('memory:/')\n"
        "n = []\n"
        "def unpack(b):\n"
        "    n.append(1)\n"
        "    if len(n) % 3 == 0: raise ValueError('x')\n"
        "    return json.loads(bytes(b))\n"
        "pack = lambda r: json.dumps(r).encode()\n"
        "s.add_encoder(encoders.Encoder('e', pack, unpack))\n"
        "c = s.add_collection('c', encoder='e')\n"
        "c.put([1], key=1)\n"
        "for i in range(3000):\n"
        "    try: c.get(1); c.get((i,), i); c.get(1, raw=True)\n"
        "    except acid.errors.CorruptionError: pass\n"
        "s.drop_collection('c')\n"
        "try: c.get(1)\n"
        "except acid.errors.SchemaError: print('ok')\n"
    )
    out = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error", "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


@needs_c
def test_the_c_get_is_what_collection_get_runs() -> None:
    # The pure-Python build runs the reference itself; with the C extension
    # every test above compared the C path against it.
    assert acid.Collection.get is collection_module._PutBase.get
    assert acid.Collection._get.__qualname__ == "Collection.get"
