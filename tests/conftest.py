"""Fixtures shared by the whole suite: every layer test runs on every engine."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator

import pytest

import acid

HAVE_PLYVEL = importlib.util.find_spec("plyvel") is not None

#: Engine names the layer tests run on; "trace" is the trace wrapper over skiplist;
#: "memfile" is the memory engine saved to a file at every commit.
ENGINES = ["skiplist", "memfile", "lmdb", "leveldb", "trace"]
#: The memory engine with optimistic concurrent writers, saved at close: only
#: for the tests that ask for it (``open_optimistic_store``), since the layer
#: tests of writer turns assume that writers wait for each other.
OPTIMISTIC = "memopt"
PERSISTENT = {"lmdb", "leveldb", "memfile", OPTIMISTIC}


def engine_url(name: str, path: str) -> str:
    if name == "skiplist" or name == "trace":
        return "skiplist:/"
    if name == "memfile":
        return f"memory:{path}/mem.acid?sync=commit"
    if name == "memopt":
        return f"memory:{path}/opt.acid?writers=optimistic"
    if name == "lmdb":
        return f"lmdb:{path}/lmdb?map_size=256MiB"
    if name == "leveldb":
        if not HAVE_PLYVEL:
            pytest.skip("plyvel is not installed")
        return f"leveldb:{path}/leveldb"
    raise ValueError(name)


@pytest.fixture(params=ENGINES)
def engine_name(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def open_store(
    engine_name: str, tmp_path: object
) -> Iterator[Callable[..., acid.Store]]:
    """A function that opens (or reopens) the test's store on its engine."""
    yield from _openers(engine_name, tmp_path)


@pytest.fixture
def open_optimistic_store(tmp_path: object) -> Iterator[Callable[..., acid.Store]]:
    """``open_store`` on the memory engine with optimistic writers."""
    yield from _openers(OPTIMISTIC, tmp_path)


def _openers(engine_name: str, tmp_path: object) -> Iterator[Callable[..., acid.Store]]:
    opened: list[acid.Store] = []

    def opener(**kwargs: object) -> acid.Store:
        url = engine_url(engine_name, str(tmp_path))
        trace = tmp_path / "trace.log" if engine_name == "trace" else None  # type: ignore[operator]
        store = acid.open(url, trace_path=trace, **kwargs)  # type: ignore[arg-type]
        opened.append(store)
        return store

    yield opener
    for store in opened:
        try:
            store.close()
        except acid.errors.Error:
            pass


@pytest.fixture
def store(open_store: Callable[..., acid.Store]) -> acid.Store:
    return open_store()
