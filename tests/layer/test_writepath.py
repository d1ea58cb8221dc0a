"""The C path of ``Collection.put`` (acid/_writepath.c) against its Python
reference: the same engine contents, the same errors, the same undo.

Every other test of ``put`` runs the C path when the C extension is built
(the pure-Python run of ``.ci/run`` runs the Python one). Here both run
side by side on the same operations, and the C function is fed misuse.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import acid
from acid import collection as collection_module
from acid.errors import EngineError

C_BUILT = collection_module._cput is not None
needs_c = pytest.mark.skipif(not C_BUILT, reason="the C write path is not built")


def dump(side: tuple[acid.Store, acid.Collection]) -> list[Any]:
    """The collection's records and index entries as stored, and its length
    (the metadata holds random ids, different in each store)."""
    store, coll = side
    out: list[Any] = [len(coll)]
    with store.begin() as txn:
        for space in [coll.id] + [idx.id for idx in coll.indices.values()]:
            prefix = store.space(space)
            for k, v in txn.iter(prefix):
                if not k.startswith(prefix):
                    break
                out.append((k[len(prefix) :], v))
    return out


class Boom(Exception):
    pass


def make(python: bool, monkeypatch: pytest.MonkeyPatch, url: str = "memory:/") -> Any:
    """A store and collection whose put takes the Python path or the C one."""
    with monkeypatch.context() as m:
        if python:
            m.setattr(collection_module, "_cput", None)
        store = acid.open(url)
        coll = store.add_collection(
            "c", key_func=lambda r: r["k"] if r.get("k") != "boom" else 1 / 0
        )
        coll.add_index("n", lambda r: _index_value(r.get("n")))
        coll.add_index("tags", lambda r: r.get("tags"))
        coll.add_index("pair", lambda r: (r["a"], r["b"]) if "a" in r else None)
    assert (coll._plan is None) == (python or not C_BUILT)
    return store, coll


def _index_value(n: Any) -> Any:
    if n == "raise":
        raise Boom("index function failed")
    return n


scalars = st.one_of(
    st.integers(-5, 5), st.text("ab", max_size=2), st.none(), st.booleans()
)
records = st.fixed_dictionaries(
    {"k": st.one_of(st.integers(0, 6), st.tuples(st.integers(0, 2), st.text("x")))},
    optional={
        "n": st.one_of(scalars, st.just("raise"), st.lists(scalars, max_size=3)),
        "tags": st.one_of(st.lists(st.text("abc", max_size=2), max_size=3), scalars),
        "a": st.integers(0, 3),
        "b": st.text("z", max_size=2),
    },
)
ops = st.lists(
    st.tuples(
        st.sampled_from(["put", "put_key", "delete", "block", "many", "many_new"]),
        records,
    ),
    max_size=25,
)


@needs_c
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(ops)
def test_the_c_path_writes_what_the_python_path_writes(
    monkeypatch: pytest.MonkeyPatch, script: list[tuple[str, dict[str, Any]]]
) -> None:
    sides = [make(False, monkeypatch), make(True, monkeypatch)]
    for op, rec in script:
        outcomes = []
        for store, coll in sides:
            try:
                if op == "put":
                    out: Any = coll.put(rec)
                elif op == "put_key":
                    out = coll.put(rec, key=("given", rec["k"]))
                elif op == "delete":
                    out = coll.delete(rec["k"])
                elif op == "many":  # a key twice: the last one lands
                    out = coll.put_many([rec, {"k": 99, "n": 1}, dict(rec, b="z")])
                elif op == "many_new":  # keys never used elsewhere: all new
                    out = coll.put_many(
                        [
                            dict(rec, k=("new", len(dump((store, coll))), j))
                            for j in (1, 2)
                        ]
                    )
                else:  # a block with two puts, the second of a changed record
                    with store.begin(write=True):
                        coll.put(rec)
                        out = coll.put(dict(rec, b="changed"))
            except Exception as exc:  # the same error, or none, on both sides
                out = (type(exc), str(exc))
            outcomes.append(out)
        assert outcomes[0] == outcomes[1], (op, rec)
        assert dump(sides[0]) == dump(sides[1]), (op, rec)
    for store, _ in sides:
        assert store.check().ok
        store.close()


class Toggle:
    """An index function that raises while ``fail`` is set."""

    def __init__(self) -> None:
        self.fail = False

    def __call__(self, rec: Any) -> Any:
        if self.fail:
            raise Boom("index function failed")
        return rec["n"]


def dump_in_txn(store: acid.Store) -> list[tuple[bytes, bytes]]:
    txn = store.txn
    assert txn is not None
    return list(txn.iter(b""))


@needs_c
def test_an_index_function_failing_on_the_old_record_changes_nothing() -> None:
    store = acid.open("memory:/")
    coll = store.add_collection("c", key_func=lambda r: r["k"])
    coll.add_index("first", lambda r: r["n"])
    toggle = Toggle()
    coll.add_index("n", toggle)
    coll.put({"k": 1, "n": 5})
    with store.begin(write=True):
        coll.put({"k": 2, "n": 7})
        before = dump_in_txn(store)
        real = toggle.__call__
        calls = []

        def second_call_fails(rec: Any) -> Any:  # the new record, then the old
            calls.append(rec)
            if len(calls) == 2:
                raise Boom("index function failed on the old record")
            return real(rec)

        coll.indices["n"].func = second_call_fails
        coll._update_refusal()  # the plan takes the new function
        with pytest.raises(Boom):
            coll.put({"k": 1, "n": 6})
        assert calls[1] == {"k": 1, "n": 5}
        assert dump_in_txn(store) == before
        coll.indices["n"].func = toggle
        coll._update_refusal()
    assert coll.get(1) == {"k": 1, "n": 5}
    assert len(coll) == 2
    assert store.check().ok


@needs_c
@pytest.mark.parametrize("where", ["new entry", "changed entry", "count"])
def test_a_failure_after_the_record_is_written_is_undone(
    monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    store = acid.open("memory:/")
    coll = store.add_collection("c", key_func=lambda r: r["k"])
    coll.add_index("n", lambda r: r["n"])
    coll.put({"k": 1, "n": 1})
    target = acid.keylib.pack((2,) if where != "changed entry" else (1,))
    with store.begin(write=True) as txn:
        coll.put({"k": 3, "n": 3})  # the C path is set up for this transaction
        before = list(txn.iter(b""))
        real_put = type(txn).put

        failed = []

        def put(self: Any, key: bytes, value: bytes) -> None:
            # An index entry's value is the record key; the first one fails.
            if where != "count" and value == target and not failed:
                failed.append(key)
                raise EngineError("injected index write failure")
            real_put(self, key, value)

        monkeypatch.setattr(type(txn), "put", put)
        fast = coll._fast
        assert fast[0] is txn and fast[1] is not None
        if where == "count":  # a cell that cannot be added to
            coll._fast = (txn, fast[1], ["not a number"], fast[3])
        rec = {"k": 1, "n": 2} if where == "changed entry" else {"k": 2, "n": 2}
        with pytest.raises((EngineError, TypeError)):
            coll.put(rec)
        monkeypatch.undo()
        assert bool(failed) == (where != "count")
        assert list(txn.iter(b"")) == before
        assert coll._fast[3] == []  # the undo state was taken
        coll._fast = fast
    assert coll.get(1) == {"k": 1, "n": 1} and coll.get(2) is None
    assert len(coll) == 2
    assert store.check().ok


@needs_c
def test_oversized_index_entry_on_lmdb_is_undone(tmp_path: Any) -> None:
    store = acid.open(f"lmdb:{tmp_path}/db")
    coll = store.add_collection("c", key_func=lambda r: r["k"])
    coll.add_index("name", lambda r: r["name"])
    coll.put({"k": 1, "name": "ok"})
    with store.begin(write=True):
        before = dump_in_txn(store)
        with pytest.raises(EngineError, match="511"):
            coll.put({"k": 1, "name": "y" * 600})  # an update
        with pytest.raises(EngineError, match="511"):
            coll.put({"k": 2, "name": "y" * 600})  # an insert
        assert dump_in_txn(store) == before
        coll.put({"k": 3, "name": "fine"})
    assert [k for k in coll.keys()] == [(1,), (3,)]
    assert len(coll) == 2
    assert store.check().ok
    store.close()


@needs_c
@pytest.mark.parametrize(
    "args",
    [
        (),
        (None, None, None, None, None, None),
        ((), None, {}, None, None, []),
        (tuple(range(11)), None, {}, None, None, []),
        (("x",) * 11, None, {}, None, None, []),
    ],
)
def test_misuse_of_the_c_function_raises_type_error(args: tuple[Any, ...]) -> None:
    assert collection_module._cput is not None
    with pytest.raises(TypeError):
        collection_module._cput(*args)


@needs_c
def test_a_malformed_plan_never_crashes(monkeypatch: pytest.MonkeyPatch) -> None:
    store = acid.open("memory:/")
    coll = store.add_collection("c", key_func=lambda r: r["k"])
    coll.add_index("n", lambda r: r["n"])
    plan = coll._plan
    assert plan is not None
    cput = collection_module._cput
    assert cput is not None
    with store.begin(write=True) as txn:
        bad_index = plan[:5] + (((lambda r: 1, 5, None, None),),) + plan[6:]
        for broken in (plan[:3] + (7,) + plan[4:], bad_index):  # prefixes not bytes
            with pytest.raises(TypeError):
                cput(broken, txn, {"k": 1, "n": 1}, None, None, [])
        with pytest.raises(TypeError, match="cell"):  # a new record is counted
            cput(plan, txn, {"k": 2, "n": 1}, None, "not a list", [])
        with pytest.raises(TypeError, match="slot"):
            cput(plan, txn, {"k": 3, "n": 1}, None, None, ())
        wrong_pack = plan[:4] + (lambda *a: "str",) + plan[5:]
        with pytest.raises(TypeError):
            cput(wrong_pack, txn, {"k": 4, "n": 1}, None, None, [])
        no_key_func = (None,) + plan[1:]
        with pytest.raises(TypeError, match="no key"):
            cput(no_key_func, txn, {"k": 5, "n": 1}, None, None, [])
        acid.abort()
    assert len(coll) == 0 and store.check().ok


@needs_c
def test_two_threads_writing_through_one_collection_count_exactly() -> None:
    store = acid.open("memory:/?writers=optimistic")
    coll = store.add_collection("c", key_func=lambda r: r["k"])
    coll.add_index("n", lambda r: r["n"])
    errors: list[BaseException] = []

    def writer(base: int) -> None:
        try:
            for i in range(200):
                if i % 10 == 0:
                    coll.put({"k": base + i, "n": i})  # autocommit
                else:
                    store.transact(
                        lambda i=i: [
                            coll.put({"k": base + i * 2 + j, "n": j}) for j in range(2)
                        ]
                    )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(b,)) for b in (0, 10_000)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(coll) == sum(1 for _ in coll.keys())
    assert store.check().ok


# -- get: the C path (PutBase.get) against Collection._get ---------------------


@needs_c
@pytest.mark.parametrize("url", ["memory:/", "lmdb", "leveldb"])
def test_the_c_get_answers_what_the_python_get_answers(url: str, tmp_path: Any) -> None:
    if url == "lmdb":
        url = f"lmdb:{tmp_path}/db"
    elif url == "leveldb":
        pytest.importorskip("plyvel")
        url = f"leveldb:{tmp_path}/ldb"
    store = acid.open(url)
    plain = store.add_collection("p", encoder="msgpack")
    packed = store.add_collection("z", encoder="json", compressor="zlib")
    keys: list[Any] = [
        1,
        (1,),
        "a",
        ("a", 2),
        acid.keylib.Key((3, "k")),
        b"x",
        None,
        2.5,
        (),
        [1],  # not a key: both raise the same error
        {"a": 1},
        object(),
    ]
    for coll in (plain, packed):
        for i, key in enumerate(keys[:9]):
            coll.put({"i": i}, key=key)

    def both(coll: acid.Collection, *args: Any, **kwargs: Any) -> None:
        outs = []
        for get in (coll.get, lambda *a, **k: coll._get(*a, **k)):
            try:
                outs.append(("ok", get(*args, **kwargs)))
            except Exception as exc:
                outs.append((type(exc), str(exc)))
        assert outs[0] == outs[1], (args, kwargs)

    for coll in (plain, packed):
        for key in keys + [999, ("missing",)]:
            both(coll, key)
            both(coll, key, "dflt")
            both(coll, key, default=0)
            both(coll, key, raw=True)
            both(coll, key, None, 1)  # raw given as a truthy non-bool
            with store.begin():
                both(coll, key)
            with store.begin(write=True):
                coll.put({"in": "txn"}, key=("txn-only",))
                both(coll, ("txn-only",))  # sees its own write
                acid.abort()
            both(coll, ("txn-only",))
        both(coll)  # no key: TypeError from the signature
        both(coll, 1, 2, 3, 4)
        both(coll, 1, bogus=1)
    store.close()


@needs_c
def test_the_c_get_reports_corruption_and_detachment() -> None:
    store = acid.open("memory:/")
    coll = store.add_collection("c", encoder="msgpack")
    coll.put({"a": 1}, key=1)
    with store.begin(write=True) as txn:
        txn.put(coll.key_prefix + acid.keylib.pack((2,)), b"\x00\xc1")  # never msgpack
        txn.put(coll.key_prefix + acid.keylib.pack((3,)), b"")  # no codec byte
    for key in (2, 3):
        with pytest.raises(acid.errors.CorruptionError) as c_err:
            coll.get(key)
        with pytest.raises(acid.errors.CorruptionError) as py_err:
            coll._get(key)
        assert str(c_err.value) == str(py_err.value)
    store.drop_collection("c")
    with pytest.raises(acid.errors.SchemaError):
        coll.get(1)


@needs_c
def test_the_c_get_in_a_task_that_outlived_its_block() -> None:
    import asyncio

    store = acid.open("memory:/")
    coll = store.add_collection("c")
    coll.put({"a": 1}, key=1)

    async def main() -> Any:
        gate = asyncio.Event()

        async def reader() -> Any:
            await gate.wait()
            return coll.get(1)  # its context holds the block's ended transaction

        with store.begin():
            task = asyncio.get_running_loop().create_task(reader())
        gate.set()
        return await task

    assert asyncio.run(main()) == {"a": 1}


def test_a_bad_put_call_names_collection_put(store: acid.Store) -> None:
    coll = store.add_collection("c")
    for call in (
        lambda: coll.put(),
        lambda: coll.put(1, 2, 3),
        lambda: coll.put(1, x=1),
    ):
        with pytest.raises(TypeError, match=r"^Collection\.put\(\)"):
            call()
    assert len(coll) == 0
