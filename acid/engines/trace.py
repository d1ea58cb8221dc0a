"""The trace engine: wraps any engine and logs every call, one line each.

A trace lets a session be replayed against another engine
(``python -m acid.tools.replay TRACE URL``) to find where engines disagree.
The format is documented in ``docs/engines.md``; in short::

    # acid-trace 1 engine=skiplist:/ pid=4242
    T1 begin write -> ok
    T1 put x6b x76 -> ok
    T1 iter I1 x fwd -> ok
    T1 next I1 -> x6b x76
    T1 next I1 -> end
    T1 commit -> ok

The ``# acid-trace`` header starts a *session*: it is written each time a
trace engine opens, and transaction and iterator ids count from 1 again
after it, so a file appended to by several processes in turn replays session
by session. Bytes are written as ``x`` followed by lowercase hex (``x`` alone
is the empty string). Each line is flushed when written, so a crash leaves
every completed call in the file.

>>> import io
>>> from acid.engines.skiplist import SkipListEngine
>>> out = io.StringIO()
>>> engine = TraceEngine(SkipListEngine(), out)
>>> with engine.begin(write=True) as txn:
...     txn.put(b"k", b"v")
>>> print(out.getvalue().split("\\n", 1)[1], end="")
T1 begin write -> ok
T1 put x6b x76 -> ok
T1 commit -> ok
"""

from __future__ import annotations

import itertools
import os
import re
import threading
from collections.abc import Callable, Iterator
from typing import IO, Any

from acid.engines import Engine, Txn
from acid.errors import ConfigError, TraceFormatError

__all__ = ["HEADER", "TRACE_VERSION", "TraceEngine", "format_value", "parse_bytes"]

TRACE_VERSION = 1

#: How a session header line starts; the format version follows it.
HEADER = "# acid-trace "

_HEX = re.compile(r"x(?:[0-9a-fA-F]{2})*")


def format_value(value: object) -> str:
    """A call's result as a trace token: ``x<hex>``, ``none``, ``true``..."""
    if value is None:
        return "none"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, bytes):
        return "x" + value.hex()
    if isinstance(value, tuple):
        return " ".join(format_value(v) for v in value)
    raise TypeError(f"cannot trace a {type(value).__name__}")


def format_error(exc: BaseException) -> str:
    return f"error:{type(exc).__name__}"


def parse_bytes(token: str) -> bytes:
    """The inverse of :func:`format_value` for bytes tokens.

    Anything else raises :class:`~acid.errors.TraceFormatError` (a
    ``ValueError``).
    """
    if not _HEX.fullmatch(token):
        shown = token if len(token) <= 40 else token[:40] + "..."
        raise TraceFormatError(f"expected bytes as x<hex>, got {shown!r}")
    return bytes.fromhex(token[1:])


class _Log:
    """A locked, line-flushed text sink shared by an engine and its txns."""

    def __init__(self, sink: str | os.PathLike[str] | IO[str]) -> None:
        if isinstance(sink, str | bytes | os.PathLike):
            self.file: IO[str] = _open_for_append(sink)
            self.owned = True
        elif callable(getattr(sink, "write", None)):
            _check_writable(sink)
            self.file = sink
            self.owned = False
        else:
            # An int would be taken for a file descriptor by open().
            raise TypeError(
                "trace sink must be a path (str or os.PathLike) or a text "
                f"file, got {type(sink).__name__}"
            )
        #: Set when the engine closes: the session is over, and an owned
        #: file is closed, so later calls (which fail) are not logged.
        self.closed = False
        self.lock = threading.RLock()
        self.txn_ids = itertools.count(1)
        self.iter_ids = itertools.count(1)

    def write(self, line: str) -> None:
        if self.closed:
            return
        self.file.write(line + "\n")
        self.file.flush()

    def close(self) -> None:
        self.closed = True
        if self.owned:
            self.file.close()

    def call(self, prefix: str, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` under the log lock and log ``prefix -> ok`` (or error)."""
        with self.lock:
            try:
                result = fn()
            except Exception as exc:
                self.write(f"{prefix} -> {format_error(exc)}")
                raise
            self.write(f"{prefix} -> ok")
            return result


def _check_writable(sink: IO[str]) -> None:
    """``ConfigError`` for a file object that cannot take the trace (opened
    for reading, or closed), before anything is written to it."""
    writable = getattr(sink, "writable", None)
    try:
        ok = True if writable is None else bool(writable())
    except (OSError, ValueError):  # ValueError: closed
        ok = False
    if not ok:
        name = getattr(sink, "name", None) or type(sink).__name__
        raise ConfigError(
            f"the trace sink {name!r} is not open for writing (closed, or "
            "opened for reading); pass a path, or a text file opened with "
            "mode 'a' or 'w'"
        )


def _open_for_append(path: str | bytes | os.PathLike[Any]) -> IO[str]:
    """``path`` opened for appending trace lines, or ``ConfigError`` why not."""
    try:
        return open(path, "a", encoding="ascii", buffering=1)
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(
            f"cannot open the trace file {os.fsdecode(path)!r} for appending: "
            f"{reason}; pass the path of a file in an existing, writable "
            "directory"
        ) from exc


class TraceEngine(Engine):
    """``engine`` with every call logged to ``sink`` (a path or text file)."""

    def __init__(self, engine: Engine, sink: str | os.PathLike[str] | IO[str]) -> None:
        self.engine = engine
        self.url = engine.url
        self.snapshots = engine.snapshots
        self.multi_process = engine.multi_process
        self.persistent = engine.persistent
        self.concurrent_writers = engine.concurrent_writers
        self.max_key_size = engine.max_key_size
        self.concurrent_writers = engine.concurrent_writers
        self._log = log = _Log(sink)
        self._closed = False
        # The trace is ASCII, one call a line: escape what a path may hold.
        url = ascii(engine.url or "?")[1:-1]
        try:
            log.write(f"{HEADER}{TRACE_VERSION} engine={url} pid={os.getpid()}")
        except (OSError, ValueError) as exc:  # io.UnsupportedOperation is both
            log.close()
            raise ConfigError(f"cannot write to the trace sink: {exc}") from exc
        except BaseException:
            log.close()
            raise

    @property
    def identity(self) -> object:
        """The wrapped engine's: a traced and a plain Store over one path
        share the active transaction, as two plain ones do."""
        return self.engine.identity

    def begin(self, write: bool = False, timeout: float | None = None) -> Txn:
        log = self._log
        tid = next(log.txn_ids)
        prefix = f"T{tid} begin {'write' if write else 'read'}"
        if not write:
            native = log.call(prefix, lambda: self.engine.begin(False, timeout))
            return _TraceTxn(native, log, tid)
        # A writer may wait for another writer: never hold the log lock
        # while waiting, or that writer could not log its commit.
        try:
            native = self.engine.begin(True, timeout)
        except Exception as exc:
            with log.lock:
                log.write(f"{prefix} -> {format_error(exc)}")
            raise
        with log.lock:
            log.write(f"{prefix} -> ok")
        return _TraceTxn(native, log, tid)

    def flush(self) -> None:
        """The wrapped engine's ``flush`` (not traced: it changes no data)."""
        self.engine.flush()

    def close(self) -> None:
        """Close the wrapped engine and the trace; closing again is a no-op."""
        log = self._log
        with log.lock:
            if self._closed:
                return
            self._closed = True
            try:
                self.engine.close()
            finally:
                log.write("engine close -> ok")
                log.close()


class _TraceTxn(Txn):
    def __init__(self, native: Txn, log: _Log, tid: int) -> None:
        self._txn = native
        self._log = log
        self._tid = tid
        self.write = native.write

    @property
    def ended(self) -> bool:  # type: ignore[override]
        return self._txn.closed

    def _call(self, text: str, fn: Callable[[], Any], valued: bool) -> Any:
        with self._log.lock:
            try:
                result = fn()
            except Exception as exc:
                self._log.write(f"T{self._tid} {text} -> {format_error(exc)}")
                raise
            shown = format_value(result) if valued else "ok"
            self._log.write(f"T{self._tid} {text} -> {shown}")
            return result

    def get(self, key: bytes) -> bytes | None:
        return self._call(f"get {format_value(key)}", lambda: self._txn.get(key), True)

    def put(self, key: bytes, value: bytes) -> None:
        text = f"put {format_value(key)} {format_value(value)}"
        self._call(text, lambda: self._txn.put(key, value), False)

    def delete(self, key: bytes) -> bool:
        return self._call(
            f"delete {format_value(key)}", lambda: self._txn.delete(key), True
        )

    def replace(self, key: bytes, value: bytes) -> bytes | None:
        text = f"replace {format_value(key)} {format_value(value)}"
        return self._call(text, lambda: self._txn.replace(key, value), True)

    def pop(self, key: bytes) -> bytes | None:
        return self._call(f"pop {format_value(key)}", lambda: self._txn.pop(key), True)

    def iter(self, key: bytes, reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
        iid = next(self._log.iter_ids)
        text = f"iter I{iid} {format_value(key)} {'rev' if reverse else 'fwd'}"
        native = self._call(text, lambda: self._txn.iter(key, reverse), False)
        return self._steps(native, iid)

    def _steps(
        self, native: Iterator[tuple[bytes, bytes]], iid: int
    ) -> Iterator[tuple[bytes, bytes]]:
        log, prefix = self._log, f"T{self._tid} next I{iid}"
        while True:
            with log.lock:
                try:
                    item = next(native)
                except StopIteration:
                    log.write(f"{prefix} -> end")
                    return
                except Exception as exc:
                    log.write(f"{prefix} -> {format_error(exc)}")
                    raise
                log.write(f"{prefix} -> {format_value(item)}")
            yield item

    def commit(self) -> None:
        self._call("commit", self._txn.commit, False)

    def abort(self) -> None:
        self._call("abort", self._txn.abort, False)
