"""Tables on a terminal narrower than they are: every cell is printed whole
(rich cut them to "…", so record counts vanished on a 20-column terminal)."""

from __future__ import annotations

import io
import re
import sys

import pytest

from acid.cli import output


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("columns", ["20", "8"])
def test_a_narrow_terminal_gets_whole_cells(
    monkeypatch: pytest.MonkeyPatch, columns: str
) -> None:
    term = _Terminal()
    monkeypatch.setattr(sys, "stdout", term)
    monkeypatch.setenv("COLUMNS", columns)
    monkeypatch.setenv("NO_COLOR", "1")
    rows = [
        ["people", 1234567, "json"],
        ["a-much-longer-collection-name", 42, "msgpack"],
    ]
    output.table(["collection", "records", "encoder"], rows, right=[1])
    text = term.getvalue()
    assert "…" not in text
    for cell in ["1234567", "a-much-longer-collection-name", "msgpack", "records"]:
        assert cell in text, text
    assert "\x1b[3" not in text  # NO_COLOR: no colour codes


def test_a_wide_terminal_is_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    term = _Terminal()
    monkeypatch.setattr(sys, "stdout", term)
    monkeypatch.setenv("COLUMNS", "200")
    output.table(["a", "b"], [["x", 1]])
    lines = re.sub(r"\x1b\[[0-9;]*m", "", term.getvalue()).splitlines()
    assert lines[0].split() == ["a", "b"] and lines[-1].split() == ["x", "1"]
