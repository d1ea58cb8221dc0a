"""A malformed trace gives exit 2 and one line "trace unusable: line N: ...",
never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from acid.engines.skiplist import SkipListEngine
from acid.errors import TraceFormatError
from acid.tools.replay import parse_line, replay


@pytest.mark.parametrize("digits", ["9" * 5000, "0" * 4999 + "1"])
def test_parse_line_header_with_huge_version_is_trace_format_error(
    digits: str,
) -> None:
    with pytest.raises(TraceFormatError):
        parse_line(f"# acid-trace {digits} engine=skiplist:/ pid=1")


def test_replay_header_with_huge_version_is_trace_format_error() -> None:
    lines = ["# acid-trace " + "9" * 5000, "T1 begin read -> ok"]
    with pytest.raises(TraceFormatError, match="line 1"):
        replay(lines, SkipListEngine())


def test_replay_cli_huge_version_exits_2_with_one_line(tmp_path: Path) -> None:
    trace = tmp_path / "t.trace"
    trace.write_text("# acid-trace " + "9" * 5000 + " engine=x pid=1\n")
    proc = subprocess.run(
        [sys.executable, "-m", "acid.tools.replay", str(trace), "skiplist:/"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr[-500:]
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("trace unusable: line 1: ")
