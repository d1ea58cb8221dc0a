"""The memory engine's files: a snapshot, an append-only log, a lock.

For ``memory:/path/file.acid`` the engine keeps:

``file.acid``
    the snapshot: every key and value at one moment, written whole to
    ``file.acid.tmp``, fsynced, renamed over ``file.acid``, and the directory
    fsynced, so that the name always holds a complete snapshot.
``file.acid.log``
    with ``sync=commit``: one framed record per commit since the snapshot.
``file.acid.lock``
    held with ``flock`` while an engine has the file open.

Both files start with a header naming the format and a *generation*; a
snapshot of generation ``g`` is followed by the log of generation ``g``
(replayed over it at open), and compaction writes the snapshot ``g + 1``
before it starts the log ``g + 1``. A log whose generation is older than the
snapshot's was compacted already and is ignored. ``docs/engines.md``
describes the byte layout.

>>> import tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "demo.acid")
>>> write_snapshot(path, 3, [b"a", b"b"], [b"1", b""])
>>> read_snapshot(path)
(3, [b'a', b'b'], [b'1', b''])
"""

from __future__ import annotations

import fcntl
import os
import struct
import zlib
from array import array
from itertools import accumulate

from acid.engines._overlay import DELETED
from acid.errors import ConfigError, CorruptionError, EngineError

__all__ = [
    "FORMAT_VERSION",
    "Log",
    "lock_file",
    "read_log",
    "read_snapshot",
    "write_snapshot",
]

FORMAT_VERSION = 1
SNAPSHOT_MAGIC = b"ACIDMEM\x00"
LOG_MAGIC = b"ACIDLOG\x00"
#: magic, format version, flags (0), reserved (0), generation, count.
_SNAP_HEADER = struct.Struct("<8sHHIQQ")
#: magic, format version, flags (0), reserved (0), generation.
_LOG_HEADER = struct.Struct("<8sHHIQ")
LOG_HEADER_SIZE = _LOG_HEADER.size
#: payload length, crc32 of the payload.
_FRAME = struct.Struct("<II")
_CRC = struct.Struct("<I")
#: A value length meaning "deleted" in a log record.
_GONE = 0xFFFFFFFF

if array("I").itemsize != 4:  # pragma: no cover - every platform acid runs on
    raise ImportError("acid.engines._memfile needs a 4-byte array('I')")


def _lengths(data: bytes | memoryview, count: int) -> array[int]:
    lengths = array("I")
    lengths.frombytes(data[: 4 * count])
    if struct.pack("=I", 1) != struct.pack("<I", 1):  # pragma: no cover
        lengths.byteswap()
    return lengths


def _le(lengths: array[int]) -> bytes:
    if struct.pack("=I", 1) != struct.pack("<I", 1):  # pragma: no cover
        lengths = array("I", lengths)
        lengths.byteswap()
    return lengths.tobytes()


def _slices(blob: bytes, lengths: array[int], start: int) -> list[bytes]:
    ends = list(accumulate(lengths, initial=start))
    return [blob[a:b] for a, b in zip(ends, ends[1:], strict=False)]


# -- snapshots ------------------------------------------------------------------


def write_snapshot(
    path: str, generation: int, keys: list[bytes], vals: list[bytes]
) -> None:
    """Replace ``path`` atomically by a snapshot of ``keys`` and ``vals``."""
    header = _SNAP_HEADER.pack(
        SNAPSHOT_MAGIC, FORMAT_VERSION, 0, 0, generation, len(keys)
    )
    try:
        klens = array("I", map(len, keys))
        vlens = array("I", map(len, vals))
    except OverflowError as exc:
        raise EngineError(
            f"memory: cannot write {path!r}: a key or value is 4 GiB or longer"
        ) from exc
    parts = [header, _le(klens), _le(vlens), b"".join(keys), b"".join(vals)]
    crc = 0
    for part in parts:
        crc = zlib.crc32(part, crc)
    parts.append(_CRC.pack(crc))
    replace_file(path, parts)


def replace_file(path: str, parts: list[bytes]) -> None:
    """Write ``parts`` to ``path`` atomically: a temporary file, fsync,
    rename, fsync of the directory."""
    tmp = path + ".tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            for part in parts:
                _write_all(fd, part)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        sync_dir(path)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise EngineError(
            f"memory: cannot write {path!r}: {exc.strerror or exc}"
        ) from exc


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def sync_dir(path: str) -> None:
    """fsync the directory holding ``path``, so that a rename is durable."""
    fd = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise ConfigError(
            f"memory: {path!r} is a directory; name a file, e.g. "
            f"memory:{path.rstrip('/')}/data.acid"
        ) from None
    except OSError as exc:
        raise EngineError(
            f"memory: cannot read {path!r}: {exc.strerror or exc}"
        ) from exc


def _check_header(path: str, data: bytes, magic: bytes, what: str) -> None:
    if data[:8] != magic:
        raise CorruptionError(
            f"memory: {path!r} is not an acid memory-engine {what} (its first "
            f"bytes are {data[:8]!r}, expected {magic!r}); name another file"
        )
    (version,) = struct.unpack_from("<H", data, 8)
    if version != FORMAT_VERSION:
        raise ConfigError(
            f"memory: {path!r} is a memory-engine {what} of format version "
            f"{version}; this acid reads version {FORMAT_VERSION}: open it with "
            "the acid release that wrote it"
        )


def read_snapshot(path: str) -> tuple[int, list[bytes], list[bytes]] | None:
    """``(generation, keys, values)`` of the snapshot at ``path``, or
    ``None`` if there is none; ``CorruptionError`` if it is damaged."""
    data = _read(path)
    if data is None:
        return None
    size = _SNAP_HEADER.size
    if len(data) < 8 or (data[:8] == SNAPSHOT_MAGIC and len(data) < size + 4):
        raise CorruptionError(
            f"memory: {path!r} is {len(data)} bytes long, too short for a "
            "memory-engine snapshot (truncated, or not ours)"
        )
    _check_header(path, data, SNAPSHOT_MAGIC, "snapshot")
    _, _, _, _, generation, count = _SNAP_HEADER.unpack_from(data)
    (crc,) = _CRC.unpack_from(data, len(data) - 4)
    if zlib.crc32(memoryview(data)[:-4]) != crc:
        raise CorruptionError(
            f"memory: the snapshot {path!r} is damaged (checksum mismatch); "
            "restore it from a backup"
        )
    body = memoryview(data)[size:-4]
    if len(body) < 8 * count:
        raise CorruptionError(f"memory: the snapshot {path!r} is inconsistent")
    klens = _lengths(body, count)
    vlens = _lengths(body[4 * count :], count)
    start = size + 8 * count
    kend = start + sum(klens)
    if kend + sum(vlens) != len(data) - 4:
        raise CorruptionError(f"memory: the snapshot {path!r} is inconsistent")
    keys = _slices(data, klens, start)
    vals = _slices(data, vlens, kend)
    return generation, keys, vals


# -- the log --------------------------------------------------------------------


def encode_commit(keys: list[bytes], vals: list[bytes]) -> bytes:
    """One framed log record: the puts and deletes of a commit."""
    try:
        klens = array("I", map(len, keys))
        vlens = array("I", [_GONE if v is DELETED else len(v) for v in vals])
    except OverflowError as exc:
        raise EngineError("memory: a key or value is 4 GiB or longer") from exc
    payload = b"".join(
        [
            _CRC.pack(len(keys)),
            _le(klens),
            _le(vlens),
            b"".join(keys),
            b"".join([v for v in vals if v is not DELETED]),
        ]
    )
    return _FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def _decode_commit(
    payload: memoryview,
) -> tuple[list[bytes], list[bytes]] | None:
    (count,) = _CRC.unpack_from(payload)
    if len(payload) < 4 + 8 * count:
        return None
    klens = _lengths(payload[4:], count)
    vlens = _lengths(payload[4 + 4 * count :], count)
    start = 4 + 8 * count
    data = bytes(payload)
    keys = _slices(data, klens, start)
    pos = start + sum(klens)
    vals: list[bytes] = []
    for n in vlens:
        if n == _GONE:
            vals.append(DELETED)
        else:
            vals.append(data[pos : pos + n])
            pos += n
    if pos != len(data):
        return None
    return keys, vals


def read_log(
    path: str,
) -> tuple[int, list[tuple[list[bytes], list[bytes]]], int] | None:
    """``(generation, commits, good_length)`` of the log at ``path``, or
    ``None`` if there is none.

    A torn last record (a crash while appending) is left out and
    ``good_length`` says where it starts; a damaged record followed by
    others raises ``CorruptionError``.
    """
    data = _read(path)
    if data is None:
        return None
    size = _LOG_HEADER.size
    if len(data) < size:
        raise CorruptionError(
            f"memory: the log {path!r} is {len(data)} bytes long, too short "
            "for its header (not ours, or damaged)"
        )
    _check_header(path, data, LOG_MAGIC, "log")
    generation = _LOG_HEADER.unpack_from(data)[4]
    view = memoryview(data)
    commits = []
    pos = size
    end = len(data)
    while pos < end:
        if pos + _FRAME.size > end:
            break  # torn frame header
        length, crc = _FRAME.unpack_from(data, pos)
        stop = pos + _FRAME.size + length
        if stop > end:
            break  # torn payload
        payload = view[pos + _FRAME.size : stop]
        decoded = _decode_commit(payload) if zlib.crc32(payload) == crc else None
        if decoded is None:
            if stop == end:
                break  # the last record is torn: it never committed
            raise CorruptionError(
                f"memory: the log {path!r} is damaged at byte {pos} (a record "
                "in the middle fails its checksum); restore from a backup"
            )
        commits.append(decoded)
        pos = stop
    return generation, commits, pos


class Log:
    """The open log of a ``sync=commit`` engine: appends fsynced records."""

    def __init__(self, path: str, generation: int, length: int | None) -> None:
        """Open the log at ``path``; ``length`` is where its good records
        end (a torn tail beyond is cut off), ``None`` to start a new log."""
        self.path = path
        try:
            if length is None:
                header = _LOG_HEADER.pack(LOG_MAGIC, FORMAT_VERSION, 0, 0, generation)
                replace_file(path, [header])
                length = len(header)
            self.fd = os.open(path, os.O_WRONLY)
            if os.fstat(self.fd).st_size != length:
                os.ftruncate(self.fd, length)
                os.fsync(self.fd)
        except OSError as exc:
            raise EngineError(
                f"memory: cannot open the log {path!r}: {exc.strerror or exc}"
            ) from exc
        self.size = length
        os.lseek(self.fd, length, os.SEEK_SET)

    def append(self, record: bytes) -> None:
        """Write ``record`` durably, or raise ``EngineError`` with the log
        as it was."""
        try:
            _write_all(self.fd, record)
            os.fdatasync(self.fd)
        except OSError as exc:
            try:  # leave no torn record in the middle of later ones
                os.ftruncate(self.fd, self.size)
                os.lseek(self.fd, self.size, os.SEEK_SET)
            except OSError:
                pass
            raise EngineError(
                f"memory: cannot append to the log {self.path!r}: "
                f"{exc.strerror or exc}; the commit did not land"
            ) from exc
        self.size += len(record)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def lock_file(path: str) -> int:
    """Take the exclusive lock of the store at ``path``; return its fd."""
    lock = path + ".lock"
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise EngineError(
            f"memory: cannot create the lock file {lock!r}: {exc.strerror or exc}"
        ) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise EngineError(
            f"memory: {path!r} is already open (by another engine in this "
            "process or by another process); the memory engine is not "
            "multi-process: close the other one first"
        ) from None
    return fd
