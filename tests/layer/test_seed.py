"""The examples and promises of the seed API, on every engine."""

from __future__ import annotations

import pytest

import acid
from acid.errors import AbortError, NameInUse, NotFound, TxnError


def test_seed_index_example(store: acid.Store) -> None:
    coll = acid.Collection(store, "people")
    coll.add_index("name", lambda person: person["name"])
    coll.put({"name": "David"})
    coll.put({"name": "Charles"})
    coll.put({"name": "Charles"})
    coll.put({"name": "Andrew"})
    it = coll.indices["name"].iterpairs()
    assert list(it) == [
        (("Andrew",), (4,)),
        (("Charles",), (2,)),
        (("Charles",), (3,)),
        (("David",), (1,)),
    ]


def test_count_returns_previous_and_reads(store: acid.Store) -> None:
    assert store.count("c") == 1
    assert store.count("c") == 2
    assert store.count("c", n=5) == 3
    assert store.count("c", 0) == 8
    assert store.count("c", None) == 8
    assert store.count("other", init=100) == 100
    assert store.count("fresh", n=0, init=7) == 7
    assert store.count("fresh", n=0, init=9) == 9  # reading does not create


def test_count_rejects_reserved_and_bad_names(store: acid.Store) -> None:
    with pytest.raises(ValueError, match="reserved"):
        store.count("\x00mine")
    with pytest.raises(TypeError):
        store.count(5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        store.count("x", n=1.5)  # type: ignore[arg-type]


def test_counter_rolls_back_with_transaction(store: acid.Store) -> None:
    store.count("c")
    with store.begin(write=True):
        assert store.count("c") == 2
        acid.abort()
    assert store.count("c", 0) == 2
    with pytest.raises(RuntimeError), store.begin(write=True):
        store.count("c")
        raise RuntimeError("boom")
    assert store.count("c", 0) == 2


def test_meta_roundtrip(store: acid.Store) -> None:
    assert store.get_meta(acid.KIND_STRUCT, "s") is None
    store.set_meta(acid.KIND_STRUCT, "s", {"a": 1, "b": "two", "c": None, "d": 1.5})
    assert store.get_meta(acid.KIND_STRUCT, "s") == {
        "a": 1,
        "b": "two",
        "c": None,
        "d": 1.5,
    }
    store.set_meta(acid.KIND_STRUCT, "s", {"z": True})
    assert store.get_meta(acid.KIND_STRUCT, "s") == {"z": True}
    with pytest.raises(ValueError, match="kind"):
        store.get_meta("nonsense", "s")
    with pytest.raises(TypeError):
        store.set_meta(acid.KIND_STRUCT, "s", [1, 2])  # type: ignore[arg-type]


def test_abort_leaves_block_quietly(store: acid.Store) -> None:
    coll = store.add_collection("c")
    with store.begin(write=True):
        coll.put("x", key=1)
        acid.abort()
        raise AssertionError("not reached")  # pragma: no cover
    assert coll.get(1) is None


def test_abort_outside_block_raises(store: acid.Store) -> None:
    with pytest.raises(AbortError):
        acid.abort()


def test_nested_begin_is_caught(store: acid.Store) -> None:
    with store.begin(write=True):
        with pytest.raises(TxnError, match="nested"):
            with store.begin():
                pass  # pragma: no cover


def test_write_in_read_txn(store: acid.Store) -> None:
    coll = store.add_collection("c")
    with store.begin():
        with pytest.raises(TxnError, match="read transaction"):
            coll.put({"a": 1}, key=1)
        with pytest.raises(TxnError):
            coll.delete(1)
        with pytest.raises(TxnError):
            store.count("n")
        with pytest.raises(TxnError):
            store.in_txn(lambda: None, write=True)


def test_in_txn_joins_active(store: acid.Store) -> None:
    coll = store.add_collection("c")

    def work() -> object:
        coll.put("v", key=1)
        return store.txn

    with store.begin(write=True) as txn:
        assert store.in_txn(work, write=True) is txn
        acid.abort()
    assert coll.get(1) is None
    assert store.in_txn(work, write=True) is not None
    assert coll.get(1) == "v"


def test_rename_collection(store: acid.Store) -> None:
    a = store.add_collection("a")
    idx = a.add_index("v", lambda r: r)
    a.put("x", key=1)
    store.add_collection("taken")
    with pytest.raises(NameInUse):
        store.rename_collection("a", "taken")
    with pytest.raises(NotFound):
        store.rename_collection("missing", "b")
    store.rename_collection("a", "b")
    assert a.name == "b"
    assert a.get(1) == "x"
    assert list(idx.keys()) == [(1,)]
    b = store.add_collection("b")
    assert b.get(1) == "x"
    assert b.add_index("v", lambda r: r).id == idx.id
    assert sorted(store.collections()) == ["b", "taken"]
    a.put("y", key=2)  # the auto-key counter name does not change on rename
    assert b.put("z") == (1,)
    assert store.check().ok


def test_exports_pinned() -> None:
    assert acid.__all__ == sorted(acid.__all__, key=lambda s: (not s.isupper(), s))
    assert set(acid.__all__) == {
        "FOREVER",
        "KIND_COUNTER",
        "KIND_ENCODER",
        "KIND_INDEX",
        "KIND_STRUCT",
        "KIND_TABLE",
        "Backoff",
        "BlobStore",
        "CheckReport",
        "Collection",
        "Desc",
        "Index",
        "Key",
        "Query",
        "Store",
        "TxnContext",
        "abort",
        "add_index",
        "check",
        "encoders",
        "errors",
        "field",
        "fields",
        "keylib",
        "open",
        "transactional",
        "qgrams",
        "tokens",
    }
    for name in acid.__all__:
        assert getattr(acid, name) is not None


def test_custom_txn_context(open_store: object) -> None:
    import threading

    class ThreadLocalContext:
        """A txn_context keeping the transaction in a threading.local."""

        def __init__(self) -> None:
            self.local = threading.local()
            self.calls = 0

        def get(self) -> object:
            self.calls += 1
            return getattr(self.local, "txn", None)

        def set(self, txn: object) -> object:
            old = getattr(self.local, "txn", None)
            self.local.txn = txn
            return old

        def reset(self, token: object) -> None:
            self.local.txn = token

    ctx = ThreadLocalContext()
    store = open_store(txn_context=ctx)  # type: ignore[operator]
    coll = store.add_collection("c")
    with store.begin(write=True):
        coll.put("x", key=1)
        assert ctx.local.txn is store.txn is not None
        acid.abort()
    assert ctx.local.txn is None
    assert coll.get(1) is None and ctx.calls > 0


def test_asyncio_tasks_have_their_own_transaction(store: acid.Store) -> None:
    import asyncio

    coll = store.add_collection("c")
    seen: dict[str, object] = {}

    async def writer(started: asyncio.Event, done: asyncio.Event) -> None:
        with store.begin(write=True):
            coll.put("w", key=1)
            seen["writer"] = store.txn
            started.set()
            await done.wait()

    async def reader(started: asyncio.Event, done: asyncio.Event) -> None:
        await started.wait()
        seen["reader"] = store.txn  # the writer's block is not ours
        seen["value"] = coll.get(1)
        done.set()

    async def main() -> None:
        started, done = asyncio.Event(), asyncio.Event()
        await asyncio.gather(writer(started, done), reader(started, done))

    asyncio.run(main())
    assert seen["writer"] is not None and seen["reader"] is None
    if store.engine.snapshots:
        assert seen["value"] is None  # uncommitted write not visible
    assert coll.get(1) == "w"


def test_seed_names_resolve() -> None:
    import acid.core
    import acid.engines

    assert acid.core.KIND_TABLE == acid.KIND_TABLE
    assert acid.core.TxnContext is acid.TxnContext
    assert acid.engines.SkiplistEngine is acid.engines.SkipListEngine
    assert acid.engines.TraceEngine.__name__ == "TraceEngine"
    assert isinstance(acid.open("skiplist:/").engine, acid.engines.SkiplistEngine)
    with pytest.raises(AttributeError):
        acid.engines.NoSuchEngine  # noqa: B018


SEED_SIGNATURES = {
    # The seed API's argument names, in order (shared/seeds/acid-api.txt).
    "open": "url trace_path txn_context",
    "Store.__init__": "engine txn_context prefix",
    "Store.count": "name n init",
    "Store.get_meta": "kind name",
    "Store.set_meta": "kind name dct",
    "Store.in_txn": "func write",
    "Store.rename_collection": "old new",
    "Collection.__init__": "store info key_func encoder compressor counter_name",
    "Collection.put": "rec key",
    "Collection.get": "key default raw",
    "Collection.delete": "key",
    "Collection.items": "key lo hi prefix reverse max include raw",
    "Collection.keys": "key lo hi prefix reverse max include",
    "Collection.values": "key lo hi prefix reverse max include raw",
    "Collection.find": "key lo hi prefix reverse include raw default",
    "Collection.findkey": "key lo hi prefix reverse include raw default",
    "add_index": "coll name func",
    "Index.__init__": "coll info func",
    "Index.count": "args lo hi prefix max include",
    "Index.find": "args lo hi prefix reverse include raw default",
    "Index.get": "x default raw",
    "Index.has": "x",
    "Index.items": "args lo hi prefix reverse max include raw",
    "Index.keys": "args lo hi prefix reverse max include",
    "Index.pairs": "args lo hi prefix reverse max include",
    "Index.tups": "args lo prefix hi reverse max include",
    "Index.values": "args lo hi prefix reverse max include raw",
}


@pytest.mark.parametrize("name", sorted(SEED_SIGNATURES))
def test_seed_signatures(name: str) -> None:
    import inspect

    obj: object = acid
    for part in name.split("."):
        obj = getattr(obj, part)
    params = [
        p.name
        for p in inspect.signature(obj).parameters.values()  # type: ignore[arg-type]
        if p.name != "self" and p.kind is not p.KEYWORD_ONLY
    ]
    assert params == SEED_SIGNATURES[name].split()


def test_findkey_raw_gives_a_key(store: acid.Store) -> None:
    coll = store.add_collection("c")
    coll.put("x", key=("a", 1))
    found = coll.findkey(raw=True)
    assert isinstance(found, acid.Key) and found == ("a", 1)
    assert coll.findkey(lo="b", raw=True, default=None) is None


def test_count_rejects_bad_init(store: acid.Store) -> None:
    with pytest.raises(TypeError, match="init"):
        store.count("x", init="a")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="init"):
        store.count("x", init=None)  # type: ignore[arg-type]
    assert store.count("x", n=None, init=5) == 5
