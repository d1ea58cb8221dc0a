"""Every built-in engine, and the trace engine around each, passes the suite."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from acid.engines import Engine, from_url
from acid.engines.trace import TraceEngine
from acid.testing import EngineConformance
from tests.conftest import postgres_table_url


class TestSkipList(EngineConformance):
    def open_engine(self, path: Path) -> Engine:
        return from_url("skiplist:/")


class TestMemory(EngineConformance):
    def open_engine(self, path: Path) -> Engine:
        return from_url("memory:/")


class TestMemoryFile(EngineConformance):
    def open_engine(self, path: Path) -> Engine:
        return from_url(f"memory:{path}/data.acid")


class TestMemoryFileSyncCommit(EngineConformance):
    def open_engine(self, path: Path) -> Engine:
        return from_url(f"memory:{path}/data.acid?sync=commit")


class TestMemoryOptimistic(EngineConformance):
    def open_engine(self, path: Path) -> Engine:
        return from_url(f"memory:{path}/data.acid?sync=commit&writers=optimistic")


class TestLMDB(EngineConformance):
    def open_engine(self, path: Path) -> Engine:
        return from_url(f"lmdb:{path}/db?map_size=256MiB&sync=false")


class TestLevelDB(EngineConformance):
    def open_engine(self, path: Path) -> Engine:
        pytest.importorskip("plyvel")
        return from_url(f"leveldb:{path}/db?sync=false")


class _Traced(EngineConformance):
    """The wrapped engine must behave exactly like the engine itself."""

    inner: type[EngineConformance]

    def open_engine(self, path: Path) -> Engine:
        engine = self.inner.open_engine(self, path)  # type: ignore[arg-type]
        return TraceEngine(engine, io.StringIO())


class TestTracedSkipList(_Traced):
    inner = TestSkipList


class TestTracedMemoryOptimistic(_Traced):
    inner = TestMemoryOptimistic


class TestTracedLMDB(_Traced):
    inner = TestLMDB


class TestTracedLevelDB(_Traced):
    inner = TestLevelDB


class TestPostgreSQL(EngineConformance):
    """A table of its own for each test on the session's server."""

    server = ""

    @pytest.fixture(autouse=True)
    def _server(self, postgres_url: str) -> None:
        self.server = postgres_url

    def open_engine(self, path: Path) -> Engine:
        return from_url(postgres_table_url(self.server, str(path)))


class TestTracedPostgreSQL(_Traced):
    inner = TestPostgreSQL

    @pytest.fixture(autouse=True)
    def _server(self, postgres_url: str) -> None:
        self.server = postgres_url
