"""Engine parameters, timeouts and paths refused the documented way."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import acid
from acid.engines import from_url
from acid.errors import ConfigError
from tests.conftest import HAVE_PLYVEL

BAD_TIMEOUTS = [float("nan"), -1, "5", True]


def _urls(tmp_path: Path) -> list[str]:
    urls = ["skiplist:/", f"lmdb:{tmp_path}/lmdb?map_size=16MiB"]
    if HAVE_PLYVEL:
        urls.append(f"leveldb:{tmp_path}/leveldb")
    return urls


@pytest.mark.parametrize("timeout", BAD_TIMEOUTS, ids=repr)
def test_read_begin_refuses_bad_timeout(tmp_path: Path, timeout: object) -> None:
    """docs/engines.md, begin(): "nan, negative or non-numeric timeouts raise
    ConfigError" -- a reader's begin takes them silently."""
    for url in _urls(tmp_path):
        engine = from_url(url)
        try:
            with pytest.raises(ConfigError):
                engine.begin(False, timeout)  # type: ignore[arg-type]
        finally:
            engine.close()


def test_lmdb_readonly_path_below_regular_file_is_config_error(tmp_path: Path) -> None:
    """ "a path below a regular file is refused" (ConfigError) -- with
    readonly=true no directory is made, and LMDB's EngineError comes out."""
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError):
        acid.open(f"lmdb:{tmp_path}/file/db?readonly=true")


def test_lmdb_same_directory_through_symlink_shares_environment(
    tmp_path: Path,
) -> None:
    """One LMDB directory opened twice in a process shares one environment;
    spelled through a symlink it is refused with a misleading EngineError."""
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "link")
    first = acid.open(f"lmdb:{tmp_path}/real?map_size=16MiB")
    try:
        second = acid.open(f"lmdb:{tmp_path}/link?map_size=16MiB")
        try:
            assert first.engine.identity is second.engine.identity
        finally:
            second.close()
    finally:
        first.close()
