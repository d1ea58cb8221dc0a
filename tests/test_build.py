"""setup.py: ACID_REQUIRE_C=1 makes a failed C build fail; without it the
build degrades to the pure-Python twin with a warning.

Each test builds a copy of the project in a temporary folder with the
current interpreter (no network, no build isolation).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from acid import keylib

ROOT = Path(__file__).resolve().parent.parent
WARNING = "WARNING: the C extension acid._keylib was not built"

pytest.importorskip("setuptools")


def copy_project(dest: Path, broken: bool) -> Path:
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, dest / name)
    shutil.copytree(
        ROOT / "acid",
        dest / "acid",
        ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"),
    )
    if broken:
        with open(dest / "acid" / "_keylib.c", "a") as f:
            f.write("\n#error broken on purpose\n")
    return dest


def build(tree: Path, require: str | None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("ACID_REQUIRE_C", None)
    if require is not None:
        env["ACID_REQUIRE_C"] = require
    return subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--inplace"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def built(tree: Path, name: str = "_keylib") -> list[Path]:
    return sorted((tree / "acid").glob(f"{name}*.so")) + sorted(
        (tree / "acid").glob(f"{name}*.pyd")
    )


@pytest.mark.parametrize("require", ["1", "yes"])
def test_required_build_fails_when_c_does_not_compile(
    tmp_path: Path, require: str
) -> None:
    tree = copy_project(tmp_path, broken=True)
    result = build(tree, require)
    assert result.returncode != 0, result.stdout + result.stderr
    assert WARNING not in result.stderr
    assert built(tree) == []


@pytest.mark.parametrize("require", [None, "", "0"])
def test_optional_build_warns_and_succeeds(tmp_path: Path, require: str | None) -> None:
    tree = copy_project(tmp_path, broken=True)
    result = build(tree, require)
    assert result.returncode == 0, result.stdout + result.stderr
    assert WARNING in result.stderr
    assert built(tree) == []


def test_required_build_of_intact_source_succeeds(tmp_path: Path) -> None:
    if "c" not in keylib.implementations():
        pytest.skip("no C twin here: no working compiler to test with")
    tree = copy_project(tmp_path, broken=False)
    result = build(tree, "1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert WARNING not in result.stderr
    assert "warning:" not in result.stderr  # -Wall -Wextra: no compiler warning
    assert len(built(tree)) == 1
    assert len(built(tree, "_writepath")) == 1
