"""Replay an engine trace against another engine and report differences.

Usage::

    python -m acid.tools.replay TRACE URL

re-runs every call recorded in ``TRACE`` (written by
:class:`acid.engines.trace.TraceEngine`) against a fresh engine opened from
``URL`` and prints each call whose result differs. The exit status is 0 when
every result matched, 1 when some differ and 2 when the trace or the URL is
unusable; an unusable trace line is reported on stderr as one line,
``trace unusable: line N: <why>``.

A ``# acid-trace`` header starts a session: the transaction and iterator ids
after it are that session's own, and the transactions a session left open
(a crashed process) are aborted when the next session starts or the trace
ends.

>>> from acid.engines.skiplist import SkipListEngine
>>> lines = ["T1 begin write -> ok", "T1 get x6b -> x76", "T1 abort -> ok"]
>>> [str(m) for m in replay(lines, SkipListEngine())]
['line 2: T1 get x6b: trace says x76, replay gave none']
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from acid.engines import Engine, Txn, from_url
from acid.engines.trace import HEADER, TRACE_VERSION, format_value, parse_bytes
from acid.errors import Error, TraceFormatError, TxnError

__all__ = [
    "Call",
    "Header",
    "Mismatch",
    "TraceFormatError",
    "main",
    "parse_line",
    "replay",
]

#: Seconds a replayed writer waits for a writer of another process; a
#: correct replay never waits at all.
WRITER_WAIT = 2.0

# What each call's arguments look like: one pattern per argument.
_BYTES = r"x(?:[0-9a-fA-F]{2})*"
_ITER = r"I[0-9]+"
_ARGS: dict[str, tuple[re.Pattern[str], ...]] = {
    op: tuple(map(re.compile, patterns))
    for op, patterns in {
        "begin": ("write|read",),
        "get": (_BYTES,),
        "put": (_BYTES, _BYTES),
        "delete": (_BYTES,),
        "replace": (_BYTES, _BYTES),
        "pop": (_BYTES,),
        "iter": (_ITER, _BYTES, "fwd|rev"),
        "next": (_ITER,),
        "commit": (),
        "abort": (),
    }.items()
}
_WHO = re.compile(r"T[0-9]+")
_RESULT = re.compile(rf"ok|none|true|false|end|error:[!-~]+|{_BYTES}|{_BYTES} {_BYTES}")
_HEADER = re.compile(re.escape(HEADER.rstrip()) + r"(?: (?P<rest>.*))?")


@dataclass(frozen=True)
class Call:
    """One parsed call line: ``<who> <op> <args...> -> <expected>``."""

    who: str  # "T<n>" or "engine"
    op: str
    args: tuple[str, ...]
    expected: str

    @property
    def text(self) -> str:
        return " ".join((self.who, self.op, *self.args))


@dataclass(frozen=True)
class Header:
    """A session header: ``# acid-trace <version> ...``."""

    version: int


@dataclass(frozen=True)
class Mismatch:
    """One call whose replayed result differs from the recorded one."""

    lineno: int
    call: str
    expected: str
    got: str

    def __str__(self) -> str:
        return (
            f"line {self.lineno}: {self.call}: trace says {self.expected}, "
            f"replay gave {self.got}"
        )


def _shown(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:60] + "...")


def parse_line(line: str) -> Call | Header | None:
    """One trace line: a :class:`Call`, a :class:`Header`, or ``None`` for a
    blank line or a comment.

    Anything else raises :class:`~acid.errors.TraceFormatError` saying why.

    >>> parse_line("T1 put x6b x76 -> ok")
    Call(who='T1', op='put', args=('x6b', 'x76'), expected='ok')
    >>> parse_line("T1 frob -> ok")
    Traceback (most recent call last):
    acid.errors.TraceFormatError: unknown call 'frob' in 'T1 frob -> ok'
    """
    if not line.isascii():
        raise TraceFormatError(f"not ASCII text: {_shown(line)}")
    text = line.strip()
    if not text:
        return None
    if text.startswith("#"):
        return _parse_header(text)
    call, sep, expected = text.rpartition(" -> ")
    words = call.split(" ")
    if not sep or len(words) < 2:
        raise TraceFormatError(f"not a trace line: {_shown(text)}")
    who, op, args = words[0], words[1], tuple(words[2:])
    if who == "engine":
        if op != "close" or args:
            raise TraceFormatError(f"unknown engine call in {_shown(text)}")
    elif not _WHO.fullmatch(who):
        raise TraceFormatError(f"bad transaction id {who[:20]!r} in {_shown(text)}")
    else:
        patterns = _ARGS.get(op)
        if patterns is None:
            raise TraceFormatError(f"unknown call {op[:20]!r} in {_shown(text)}")
        if len(args) != len(patterns) or not all(
            p.fullmatch(a) for p, a in zip(patterns, args, strict=True)
        ):
            raise TraceFormatError(f"bad arguments to {op} in {_shown(text)}")
    if not _RESULT.fullmatch(expected):
        raise TraceFormatError(f"bad result {expected[:40]!r} in {_shown(text)}")
    return Call(who, op, args, expected)


def _parse_header(text: str) -> Header | None:
    match = _HEADER.fullmatch(text)
    if match is None:
        return None  # any other comment
    version = (match["rest"] or "").split(" ")[0]
    # At most 9 digits: int() refuses numbers of thousands of digits.
    if not (version.isascii() and version.isdigit()) or len(version) > 9:
        raise TraceFormatError(f"bad session header {_shown(text)}")
    if int(version) > TRACE_VERSION:
        raise TraceFormatError(
            f"trace format version {int(version)} is newer than this replay "
            f"tool reads ({TRACE_VERSION}); replay it with a newer acid"
        )
    return Header(int(version))


class _Session:
    """The transactions and iterators of one session, by their trace ids.

    A transaction is released as soon as a line ends it: LMDB, for one,
    keeps a reader slot for every read transaction still referenced, and has
    126 of them by default. Later calls on it get ``error:TxnError`` without reaching
    the engine, which is what the engine contract promises.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.txns: dict[str, Txn] = {}  # live
        self.begun: set[str] = set()
        self.ended: set[str] = set()
        self.iters: dict[str, Iterator[tuple[bytes, bytes]]] = {}  # live
        self.iter_owner: dict[str, str] = {}  # every iterator ever made
        self.owned: dict[str, list[str]] = {}  # live txn -> its iterators

    def run(self, call: Call) -> str:
        """``call`` replayed; its result as a trace token."""
        if call.who == "engine":
            return "ok"  # the replay target is closed by the caller
        if call.op == "begin":
            return self._begin(call)
        txn = self.txns.get(call.who)
        if txn is None:
            if call.who not in self.ended:
                return "error:no-such-transaction"
            return "ok" if call.op == "abort" else "error:TxnError"
        try:
            return self._dispatch(txn, call)
        except TraceFormatError:
            raise
        except Exception as exc:
            return f"error:{type(exc).__name__}"
        finally:
            if txn.closed:
                self._release(call.who)

    def _begin(self, call: Call) -> str:
        who, write = call.who, call.args[0] == "write"
        if who in self.begun:
            raise TraceFormatError(
                f"{who} began before in this session; ids are unique within a "
                "session, so this trace was written by two engines at once or "
                "lost a session header"
            )
        self.begun.add(who)
        # This replay is single-threaded: if it holds a writer itself (a
        # commit line went missing), waiting for it can never succeed.
        holding = any(t.write for t in self.txns.values())
        wait = 0.0 if holding or call.expected == "error:TxnTimeout" else WRITER_WAIT
        try:
            txn = self.engine.begin(write, wait)
        except TxnError as exc:
            if write and holding:
                # Engines refuse a second writer on the thread that holds
                # one at once (TxnError); where the trace was recorded,
                # another thread waited and timed out.
                return "error:TxnTimeout"
            return f"error:{type(exc).__name__}"
        except Exception as exc:
            return f"error:{type(exc).__name__}"
        if call.expected != "ok":  # the recorded begin failed: nothing uses it
            txn.abort()
        else:
            self.txns[who] = txn
            self.owned[who] = []
        return "ok"

    def _iterator(self, call: Call) -> Iterator[tuple[bytes, bytes]] | None:
        iid = call.args[0]
        owner = self.iter_owner.get(iid)
        if owner is not None and owner != call.who:
            raise TraceFormatError(f"{iid} belongs to {owner}, not {call.who}")
        return self.iters.get(iid)

    def _dispatch(self, txn: Txn, call: Call) -> str:
        op, args = call.op, call.args
        result: Any
        if op == "get":
            result = txn.get(parse_bytes(args[0]))
        elif op == "put":
            txn.put(parse_bytes(args[0]), parse_bytes(args[1]))
            return "ok"
        elif op == "delete":
            result = txn.delete(parse_bytes(args[0]))
        elif op == "replace":
            result = txn.replace(parse_bytes(args[0]), parse_bytes(args[1]))
        elif op == "pop":
            result = txn.pop(parse_bytes(args[0]))
        elif op == "iter":
            iid = args[0]
            if iid in self.iter_owner:
                raise TraceFormatError(f"{iid} was made before in this session")
            self.iter_owner[iid] = call.who
            self.iters[iid] = txn.iter(parse_bytes(args[1]), args[2] == "rev")
            self.owned[call.who].append(iid)
            return "ok"
        elif op == "next":
            steps = self._iterator(call)
            if steps is None:
                return "error:no-such-iterator"
            try:
                result = next(steps)
            except StopIteration:
                return "end"
        elif op == "commit":
            txn.commit()
            return "ok"
        else:
            txn.abort()
            return "ok"
        return format_value(result)

    def _release(self, who: str) -> None:
        """Drop every reference to an ended transaction and its iterators."""
        del self.txns[who]
        self.ended.add(who)
        for iid in self.owned.pop(who):
            del self.iters[iid]

    def end(self) -> None:
        """Abort what the session left open (it crashed, or leaked them)."""
        for who in list(self.txns):
            self.txns[who].abort()
            self._release(who)


class _Replayer:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.mismatches: list[Mismatch] = []
        self.calls = 0

    def run(self, lines: Iterable[str]) -> None:
        session = _Session(self.engine)
        try:
            for lineno, line in enumerate(lines, 1):
                try:
                    parsed = parse_line(line)
                    if isinstance(parsed, Header):
                        session.end()
                        session = _Session(self.engine)
                    elif parsed is not None:
                        self.calls += 1
                        got = session.run(parsed)
                        if got != parsed.expected:
                            self.mismatches.append(
                                Mismatch(lineno, parsed.text, parsed.expected, got)
                            )
                except TraceFormatError as exc:
                    raise TraceFormatError(f"line {lineno}: {exc}") from None
        finally:
            session.end()


def replay(lines: Iterable[str], engine: Engine) -> list[Mismatch]:
    """Re-run trace ``lines`` against ``engine``; the calls that differ.

    A line that is not a trace line raises
    :class:`~acid.errors.TraceFormatError` naming its number.
    """
    replayer = _Replayer(engine)
    replayer.run(lines)
    return replayer.mismatches


def _is_empty(engine: Engine) -> bool:
    with engine.begin() as txn:
        return next(iter(txn.iter(b"")), None) is None


def _read_lines(path: str) -> Iterator[str]:
    """The lines of the file at ``path``; a non-ASCII line is unusable."""
    with open(path, "rb") as file:
        for lineno, raw in enumerate(file, 1):
            try:
                yield raw.decode("ascii")
            except UnicodeDecodeError:
                raise TraceFormatError(
                    f"line {lineno}: not ASCII text: {_shown(raw.decode('latin-1'))}"
                ) from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m acid.tools.replay",
        description="Replay an acid engine trace against a fresh engine and "
        "report every result that differs.",
        epilog="Exit status: 0 all results match, 1 some differ, 2 the trace "
        "or the URL is unusable.",
    )
    parser.add_argument("trace", help="trace file written by the trace engine")
    parser.add_argument("url", help="engine URL to replay against, e.g. skiplist:/")
    args = parser.parse_args(argv)
    try:  # before opening the engine, which may create files
        with open(args.trace, "rb"):
            pass
    except OSError as exc:
        print(f"replay: cannot read trace {args.trace!r}: {exc}", file=sys.stderr)
        return 2
    try:
        engine = from_url(args.url)
    except Error as exc:
        print(f"replay: cannot open {args.url!r}: {exc}", file=sys.stderr)
        return 2
    replayer = _Replayer(engine)
    with engine:
        if not _is_empty(engine):
            print(
                f"replay: warning: {args.url} is not empty; results may differ "
                "for that reason alone",
                file=sys.stderr,
            )
        try:
            replayer.run(_read_lines(args.trace))
        except TraceFormatError as exc:
            print(f"trace unusable: {exc}", file=sys.stderr)
            return 2
        except OSError as exc:
            print(f"replay: cannot read trace {args.trace!r}: {exc}", file=sys.stderr)
            return 2
    for mismatch in replayer.mismatches:
        print(mismatch)
    if replayer.mismatches:
        print(f"{len(replayer.mismatches)} of {replayer.calls} calls differ")
        return 1
    print(f"all {replayer.calls} calls gave the recorded results")
    return 0


if __name__ == "__main__":
    sys.exit(main())
