"""The README's two commands stay true: CI runs the test command verbatim,
and the demo it names exists and runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```sh\n(.+?)\n```", text)


def test_readme_has_install_demo_and_test_commands() -> None:
    demo, tests = readme_commands()[:2]
    assert "examples/demo.py" in demo and "pip install" in demo
    assert "pytest" in tests


def test_ci_runs_the_readme_test_command() -> None:
    tests = readme_commands()[1]
    assert tests in (ROOT / ".ci" / "run").read_text()


def test_demo_runs(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py"), f"lmdb:{tmp_path}/demo"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert "after abort:   Ada" in out
    assert "check:         ok" in out
    assert "reopened:      ['ada@x.org', 'alan@x.org', 'grace@x.org']" in out


def test_readme_python_example_runs(tmp_path: Path, capsys: object) -> None:
    text = (ROOT / "README.md").read_text()
    code = re.findall(r"```python\n(.+?)\n```", text, re.S)[0]
    code = code.replace("lmdb:/tmp/app", f"lmdb:{tmp_path}/app")
    exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert "'email': 'ada@x.org'" in out and "'age': 36" in out
