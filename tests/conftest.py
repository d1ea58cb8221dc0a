"""Fixtures shared by the whole suite: every layer test runs on every engine."""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import acid
from tests import pgserver

HAVE_PLYVEL = importlib.util.find_spec("plyvel") is not None
HAVE_PSYCOPG = importlib.util.find_spec("psycopg") is not None

#: Engine names the layer tests run on; "trace" is the trace wrapper over skiplist;
#: "memfile" is the memory engine saved to a file at every commit.
ENGINES = ["skiplist", "memfile", "lmdb", "leveldb", "trace", "postgresql"]
#: The memory engine with optimistic concurrent writers, saved at close: only
#: for the tests that ask for it (``open_optimistic_store``), since the layer
#: tests of writer turns assume that writers wait for each other.
OPTIMISTIC = "memopt"
PERSISTENT = {"lmdb", "leveldb", "memfile", OPTIMISTIC, "postgresql"}
#: Engines whose writers run at once (``concurrent_writers``): tests marked
#: ``writers_take_turns`` (threads or tasks writing in autocommit or plain
#: ``begin`` blocks, without ``store.transact``) are skipped on them.
CONCURRENT_WRITERS = {"postgresql", OPTIMISTIC}

#: The PostgreSQL server of this run (see :func:`postgres_server`).
_postgres: dict[str, object] = {"url": None, "used": 0}


def postgres_table_url(server_url: str, key: str, table: str | None = None) -> str:
    """A URL of ``server_url`` naming a table of its own for ``key`` (a
    test's directory), so that tests never see each other's data and a
    test reopening its directory reopens its table; or naming ``table``."""
    if table is None:
        table = "t_" + hashlib.sha1(key.encode()).hexdigest()[:24]
    return f"{server_url}{'&' if '?' in server_url else '?'}table={table}"


def engine_url(name: str, path: str) -> str:
    if name == "postgresql":
        server = _postgres["url"]
        if server is None:
            pytest.skip("no PostgreSQL server (request the postgres_server fixture)")
        return postgres_table_url(str(server), path)
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


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The URL of a PostgreSQL server for this test session.

    ``ACID_TEST_POSTGRES_URL`` names an existing one; otherwise a throwaway
    server is started from the installed binaries (tests/pgserver.py) and
    stopped at the end. Without either the tests skip, unless
    ``ACID_REQUIRE_POSTGRES=1`` (CI), which makes that a failure. When
    ``ACID_POSTGRES_TALLY`` names a file, the number of tests that used the
    server is written there at the end, for CI to check.
    """
    required = os.environ.get("ACID_REQUIRE_POSTGRES") == "1"

    def unavailable(reason: str) -> None:
        if required:
            pytest.fail(f"ACID_REQUIRE_POSTGRES=1 but {reason}", pytrace=False)
        pytest.skip(reason)

    if not HAVE_PSYCOPG:
        unavailable("psycopg is not installed (pip install 'acid[postgresql]')")
    server = None
    url = os.environ.get("ACID_TEST_POSTGRES_URL")
    if not url:
        why = pgserver.missing()
        if why is not None:
            unavailable(why)
        server = pgserver.launch()
        url = server.url
    _postgres["url"] = url
    try:
        yield url
    finally:
        _postgres["url"] = None
        if server is not None:
            server.stop()
            server.remove()
        tally = os.environ.get("ACID_POSTGRES_TALLY")
        if tally:
            Path(tally).write_text(f"{_postgres['used']}\n")


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """The server's URL; counts the tests that use it."""
    _postgres["used"] = int(_postgres["used"]) + 1  # type: ignore[call-overload]
    return postgres_server


@pytest.fixture(params=ENGINES)
def engine_name(request: pytest.FixtureRequest) -> str:
    if request.param in CONCURRENT_WRITERS and request.node.get_closest_marker(
        "writers_take_turns"
    ):
        pytest.skip(
            "concurrent writers: this test's writers do not retry conflicts "
            "(autocommit writes and begin() blocks are not retried)"
        )
    if request.param == "postgresql":
        request.getfixturevalue("postgres_url")
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
