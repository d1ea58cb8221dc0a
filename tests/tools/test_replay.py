"""The replay tool's parser: only TraceFormatError escapes it, and the CLI
turns any unusable line into exit status 2 and one line on stderr."""

from __future__ import annotations

import io
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from acid.engines import from_url
from acid.engines.trace import TraceEngine
from acid.errors import TraceFormatError, TxnError
from acid.tools.replay import Call, Header, main, parse_line, replay


def recorded_trace() -> list[str]:
    """A real trace using every kind of call and result."""
    out = io.StringIO()
    with TraceEngine(from_url("skiplist:/"), out) as traced:
        with traced.begin(write=True) as txn:
            txn.put(b"a", b"1")
            txn.put(b"b", b"")
            txn.replace(b"a", b"2")
            txn.get(b"a")
            txn.delete(b"b")
            txn.pop(b"zz")
            steps = txn.iter(b"\xff", reverse=True)
            next(steps)
            next(steps, None)
        reader = traced.begin()
        try:
            reader.put(b"a", b"1")
        except TxnError:
            pass
        reader.abort()
    return out.getvalue().splitlines()


TRACE = recorded_trace()
CALLS = [line for line in TRACE if not line.startswith("#")]


def test_the_recorded_trace_parses_and_replays() -> None:
    assert isinstance(parse_line(TRACE[0]), Header)
    assert all(isinstance(parse_line(line), Call) for line in CALLS)
    assert {line.split(" ")[1] for line in CALLS} >= {
        "begin", "put", "replace", "get", "delete", "pop", "iter", "next",
        "commit", "abort", "close",
    }  # fmt: skip
    assert replay(TRACE, from_url("skiplist:/")) == []


@pytest.mark.parametrize(
    "line",
    [
        "T1 begin -> ok",  # missing field
        "T1 begin write",  # no result
        "T1 begin write ->",  # truncated after the arrow
        "T1 get -> none",
        "T1 put x6b -> ok",
        "T1 iter I1 x -> ok",
        "T1 iter 1 x fwd -> ok",
        "T1 next -> end",
        "T1 get x6 -> none",  # odd hex
        "T1 get xzz -> none",  # not hex
        "T1 get 6b -> none",  # no x
        "T1 get x6b -> x7",  # truncated result
        "T1 get x6b -> maybe",
        "T1 frob -> ok",  # unknown verb
        "engine frob -> ok",
        "engine close now -> ok",
        "Tx begin read -> ok",  # bad transaction ids
        "T-1 begin read -> ok",
        "T begin read -> ok",
        "1 begin read -> ok",
        "T\u0661 begin read -> ok",  # a non-ASCII digit
        "T1  begin read -> ok",  # two spaces
        "T1 commit extra -> ok",
        "\x00\x01\xff -> ok",
        "# acid-trace",  # a header without its version
        "# acid-trace one engine=x:/",
    ],
)
def test_malformed_lines_raise_trace_format_error(line: str) -> None:
    with pytest.raises(TraceFormatError):
        parse_line(line)
    lines = ["T1 begin read -> ok", line]
    with pytest.raises(TraceFormatError, match="^line 2: "):
        replay(lines, from_url("skiplist:/"))


def mutations() -> st.SearchStrategy[str]:
    line = st.sampled_from(CALLS)
    cut = st.tuples(line, st.integers(0, 80)).map(lambda t: t[0][: t[1]])
    dropped = st.tuples(line, st.integers(0, 8)).map(
        lambda t: " ".join(w for i, w in enumerate(t[0].split(" ")) if i != t[1])
    )
    replaced = st.tuples(
        line,
        st.integers(0, 8),
        st.text(max_size=6) | st.from_regex(r"[xTI][0-9a-z]{0,3}"),
    ).map(
        lambda t: " ".join(
            t[2] if i == t[1] else w for i, w in enumerate(t[0].split(" "))
        )
    )
    garbage = st.binary(max_size=40).map(lambda b: b.decode("latin-1"))
    return cut | dropped | replaced | garbage | st.text(max_size=40)


@settings(max_examples=500, deadline=None)
@given(line=mutations())
def test_only_trace_format_error_escapes_the_parser(line: str) -> None:
    try:
        parsed = parse_line(line)
    except TraceFormatError:
        return
    assert parsed is None or isinstance(parsed, Call | Header)
    # What parses also replays with no other exception (a duplicate begin,
    # say, is unusable too).
    lines = ["T1 begin write -> ok", "T1 iter I1 x fwd -> ok", line]
    try:
        replay(lines, from_url("skiplist:/"))
    except TraceFormatError as exc:
        assert str(exc).startswith("line 3: ")


def unusable(line: bytes) -> bool:
    """Whether the CLI must reject ``line`` (a line of the file, no b"\\n")."""
    try:
        parse_line(line.decode("ascii"))
    except (UnicodeDecodeError, TraceFormatError):
        return True
    return False


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    bad=mutations().map(str.encode) | st.binary(max_size=40),
    at=st.integers(1, len(CALLS)),
)
def test_cli_exits_2_with_one_line_for_any_unusable_line(
    capsys: pytest.CaptureFixture[str], bad: bytes, at: int
) -> None:
    bad = bad.replace(b"\n", b" ")  # the file is split into lines at b"\n" only
    assume(unusable(bad))
    lines = [line.encode() for line in TRACE]
    lines.insert(at, bad)
    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(tmp, "t.trace")
        trace.write_bytes(b"\n".join(lines) + b"\n")
        assert main([str(trace), "skiplist:/"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"trace unusable: line {at + 1}: ")
    assert err.count("\n") == 1


def test_cli_reports_an_unusable_line_without_a_traceback(tmp_path: Path) -> None:
    trace = tmp_path / "t.trace"
    trace.write_bytes(b"T1 begin read -> ok\nT1 get x6 -> none\n\xff\xfe\n")
    done = subprocess.run(
        [sys.executable, "-m", "acid.tools.replay", str(trace), "skiplist:/"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert (
        done.stderr
        == "trace unusable: line 2: bad arguments to get in 'T1 get x6 -> none'\n"
    )
    trace.write_bytes(b"T1 begin read -> ok\n\xff\xfe -> ok\n")
    assert main([str(trace), "skiplist:/"]) == 2
