"""Helpers for the command-line tests: run ``python -m acid`` in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests import conftest as top
from tests.conftest import HAVE_PLYVEL

Run = Callable[..., subprocess.CompletedProcess[str]]

#: The engines whose stores outlive a process (the CLI runs one per command).
DISK_ENGINES = ["lmdb", "leveldb", "postgresql"]

DECLARE = """
import datetime

def declare(store):
    people = store.add_collection("people")
    people.add_index("city", lambda p: p.get("city"))
    users = store.add_collection("users", key_func=lambda u: u["id"])
    users.add_index("tags", lambda u: u.get("tags", []))
"""


#: Where the ``engine`` fixture leaves the PostgreSQL server's URL (the test
#: modules import this file under another name than pytest does, so a
#: module global would not be shared).
_SERVER = "ACID_TEST_OPS_POSTGRES_URL"


def disk_url(engine: str, path: Path) -> str:
    """A store of its own for ``path``: a directory, or a PostgreSQL table."""
    if engine == "leveldb" and not HAVE_PLYVEL:
        pytest.skip("plyvel is not installed")
    if engine == "postgresql":
        return top.postgres_table_url(os.environ[_SERVER], str(path))
    return f"{engine}:{path}"


@pytest.fixture(params=DISK_ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    if request.param == "postgresql":  # starts the server, or skips
        os.environ[_SERVER] = request.getfixturevalue("postgres_url")
    return str(request.param)


@pytest.fixture
def acid_cmd(tmp_path: Path) -> Run:
    """``acid_cmd(*args, input=...)`` runs the command line in a subprocess."""

    def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[2]))
        return subprocess.run(
            [sys.executable, "-m", "acid", *args],
            input=input,
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=env,
            timeout=120,
        )

    return run


@pytest.fixture
def module(tmp_path: Path) -> str:
    path = tmp_path / "declare_app.py"
    path.write_text(DECLARE)
    return str(path)
