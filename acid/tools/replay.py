"""Replay an engine trace against another engine and report differences.

Usage::

    python -m acid.tools.replay TRACE URL

re-runs every call recorded in ``TRACE`` (written by
:class:`acid.engines.trace.TraceEngine`) against a fresh engine opened from
``URL`` and prints each call whose result differs. The exit status is 0 when
every result matched, 1 when some differ and 2 when the trace or the URL is
unusable.

>>> from acid.engines.skiplist import SkipListEngine
>>> lines = ["T1 begin write -> ok", "T1 get x6b -> x76", "T1 abort -> ok"]
>>> [str(m) for m in replay(lines, SkipListEngine())]
['line 2: T1 get x6b: trace says x76, replay gave none']
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from acid.engines import Engine, Txn, from_url
from acid.engines.trace import format_value, parse_bytes
from acid.errors import Error

__all__ = ["Mismatch", "TraceFormatError", "main", "replay"]

#: Seconds a replayed writer waits; a correct replay never waits at all.
WRITER_WAIT = 2.0


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


class TraceFormatError(Error, ValueError):
    """A trace line that cannot be parsed."""


class _Replayer:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.txns: dict[str, Txn] = {}
        self.iters: dict[str, Iterator[tuple[bytes, bytes]]] = {}

    def run(self, words: list[str], expected: str) -> str:
        who, op, args = words[0], words[1], words[2:]
        try:
            keys = [parse_bytes(a) for a in args if a.startswith("x")]
        except ValueError as exc:
            raise TraceFormatError(f"bad bytes token: {exc}") from None
        try:
            return self._dispatch(who, op, args, keys, expected)
        except TraceFormatError:
            raise
        except Exception as exc:
            return f"error:{type(exc).__name__}"

    def _dispatch(
        self, who: str, op: str, args: list[str], keys: list[bytes], expected: str
    ) -> str:
        if who == "engine":
            if op == "close":
                return "ok"  # the replay target is closed by the caller
            raise TraceFormatError(f"unknown engine call {op!r}")
        if op == "begin":
            write = args[0] == "write"
            wait = 0.0 if expected == "error:TxnTimeout" else WRITER_WAIT
            self.txns[who] = self.engine.begin(write, wait)
            return "ok"
        txn = self.txns.get(who)
        if txn is None:
            return "error:no-such-transaction"
        result: Any
        if op == "get":
            result = txn.get(keys[0])
        elif op == "put":
            txn.put(keys[0], keys[1])
            return "ok"
        elif op == "delete":
            result = txn.delete(keys[0])
        elif op == "replace":
            result = txn.replace(keys[0], keys[1])
        elif op == "pop":
            result = txn.pop(keys[0])
        elif op == "iter":
            self.iters[args[0]] = txn.iter(keys[0], args[2] == "rev")
            return "ok"
        elif op == "next":
            try:
                result = next(self.iters[args[0]])
            except StopIteration:
                return "end"
        elif op in ("commit", "abort"):
            getattr(txn, op)()
            return "ok"
        else:
            raise TraceFormatError(f"unknown transaction call {op!r}")
        return format_value(result)

    def close(self) -> None:
        for txn in self.txns.values():
            txn.abort()


def replay(lines: Iterable[str], engine: Engine) -> list[Mismatch]:
    """Re-run trace ``lines`` against ``engine``; the calls that differ."""
    replayer = _Replayer(engine)
    mismatches = []
    try:
        for lineno, raw in enumerate(lines, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            call, sep, expected = line.rpartition(" -> ")
            words = call.split()
            if not sep or len(words) < 2:
                raise TraceFormatError(f"line {lineno}: not a trace line: {line!r}")
            try:
                got = replayer.run(words, expected)
            except TraceFormatError as exc:
                raise TraceFormatError(f"line {lineno}: {exc}") from None
            if got != expected:
                mismatches.append(Mismatch(lineno, call, expected, got))
    finally:
        replayer.close()
    return mismatches


def _is_empty(engine: Engine) -> bool:
    with engine.begin() as txn:
        return next(iter(txn.iter(b"")), None) is None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m acid.tools.replay",
        description="Replay an acid engine trace against a fresh engine and "
        "report every result that differs.",
    )
    parser.add_argument("trace", help="trace file written by the trace engine")
    parser.add_argument("url", help="engine URL to replay against, e.g. skiplist:/")
    args = parser.parse_args(argv)
    try:
        with open(args.trace, encoding="ascii") as file:
            lines = file.readlines()
    except (OSError, UnicodeDecodeError) as exc:
        print(f"replay: cannot read trace {args.trace!r}: {exc}", file=sys.stderr)
        return 2
    try:
        engine = from_url(args.url)
    except Error as exc:
        print(f"replay: cannot open {args.url!r}: {exc}", file=sys.stderr)
        return 2
    with engine:
        if not _is_empty(engine):
            print(
                f"replay: warning: {args.url} is not empty; results may differ "
                "for that reason alone",
                file=sys.stderr,
            )
        try:
            mismatches = replay(lines, engine)
        except TraceFormatError as exc:
            print(f"replay: bad trace {args.trace!r}: {exc}", file=sys.stderr)
            return 2
    calls = sum(1 for ln in lines if ln.strip() and not ln.startswith("#"))
    for mismatch in mismatches:
        print(mismatch)
    if mismatches:
        print(f"{len(mismatches)} of {calls} calls differ")
        return 1
    print(f"all {calls} calls gave the recorded results")
    return 0


if __name__ == "__main__":
    sys.exit(main())
