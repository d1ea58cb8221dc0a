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
#: magic, format version, flags, header check, generation.
_LOG_HEADER = struct.Struct("<8sHHIQ")
LOG_HEADER_SIZE = _LOG_HEADER.size
#: Log flag: the header's check field is the CRC-32 of the header (with the
#: field 0), and every record has a checked frame (:data:`_CHECKED_FRAME`).
#: A log without it (the first layout) has plain frames and no header check.
LOG_CHECKED = 1
#: payload length, crc32 of the payload (logs without LOG_CHECKED).
_FRAME = struct.Struct("<II")
#: payload length, crc32 of the payload, crc32 of those 8 bytes: a damaged
#: length is told from a torn tail.
_CHECKED_FRAME = struct.Struct("<III")
_PAIR = struct.Struct("<II")
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
        if path.endswith(".log"):
            raise ConfigError(
                f"memory: {path!r}, the name of the store's log, is a "
                "directory; move it away"
            ) from None
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


def snapshot_generation(path: str) -> int | None:
    """The generation in the header of the snapshot at ``path``, or
    ``None`` if it cannot be read (not checked beyond its magic)."""
    try:
        with open(path, "rb") as f:
            head = f.read(_SNAP_HEADER.size)
    except OSError:
        return None
    if len(head) < _SNAP_HEADER.size or head[:8] != SNAPSHOT_MAGIC:
        return None
    generation: int = _SNAP_HEADER.unpack(head)[4]
    return generation


# -- the log --------------------------------------------------------------------


def check_sizes(keys: list[bytes], vals: list[bytes]) -> None:
    """``EngineError`` if a key or value is too long for the files (4 GiB
    or longer), before a commit lands that could never be saved."""
    # DELETED is an empty bytes: its length counts as 0.
    longest = max(max(map(len, keys), default=0), max(map(len, vals), default=0))
    if longest >= _GONE:
        raise EngineError(
            "memory: a key or value is 4 GiB or longer; a memory engine with a "
            "file cannot save it, and the commit did not land"
        )


def encode_commit(keys: list[bytes], vals: list[bytes], checked: bool = True) -> bytes:
    """One framed log record: the puts and deletes of a commit (with the
    checked frame of a log with :data:`LOG_CHECKED`)."""
    try:
        klens = array("I", map(len, keys))
        vlens = array("I", [_GONE if v is DELETED else len(v) for v in vals])
    except OverflowError as exc:
        raise EngineError("memory: a key or value is 4 GiB or longer") from exc
    gone = vlens.count(_GONE)
    if gone and gone != list(map(id, vals)).count(id(DELETED)):
        # A value of 4 GiB - 1 bytes would be read back as a delete.
        raise EngineError("memory: a key or value is 4 GiB or longer")
    payload = b"".join(
        [
            _CRC.pack(len(keys)),
            _le(klens),
            _le(vlens),
            b"".join(keys),
            b"".join([v for v in vals if v is not DELETED]),
        ]
    )
    head = _PAIR.pack(len(payload), zlib.crc32(payload))
    if checked:
        head += _CRC.pack(zlib.crc32(head))
    return head + payload


def log_header(generation: int) -> bytes:
    """The header of a new log of ``generation`` (checked)."""
    header = _LOG_HEADER.pack(LOG_MAGIC, FORMAT_VERSION, LOG_CHECKED, 0, generation)
    return _LOG_HEADER.pack(
        LOG_MAGIC, FORMAT_VERSION, LOG_CHECKED, zlib.crc32(header), generation
    )


def _decode_commit(
    payload: memoryview,
) -> tuple[list[bytes], list[bytes]] | None:
    if len(payload) < 4:
        return None
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
    _, _, flags, check, generation = _LOG_HEADER.unpack_from(data)
    checked = flags == LOG_CHECKED
    if checked:
        blank = _LOG_HEADER.pack(LOG_MAGIC, FORMAT_VERSION, flags, 0, generation)
        good = zlib.crc32(blank) == check
    else:
        good = flags == 0 and check == 0
    if not good:
        raise CorruptionError(
            f"memory: the log {path!r} has a damaged header (flags {flags}, "
            f"check {check:#x}); restore it from a backup"
        )
    frame = _CHECKED_FRAME if checked else _FRAME
    view = memoryview(data)
    commits = []
    pos = size
    end = len(data)
    while pos < end:
        if pos + frame.size > end:
            break  # torn frame header
        length, crc = _PAIR.unpack_from(data, pos)
        if (
            checked
            and zlib.crc32(view[pos : pos + 8]) != _CRC.unpack_from(data, pos + 8)[0]
        ):
            if _zeros(data, pos):
                break  # a tail the crash left allocated but unwritten
            raise CorruptionError(
                f"memory: the log {path!r} is damaged at byte {pos} (a record "
                "header fails its checksum); restore from a backup"
            )
        stop = pos + frame.size + length
        if stop > end:
            break  # torn payload
        payload = view[pos + frame.size : stop]
        decoded = _decode_commit(payload) if zlib.crc32(payload) == crc else None
        if decoded is None:
            if stop == end or _zeros(data, pos):
                break  # the last record is torn: it never committed
            raise CorruptionError(
                f"memory: the log {path!r} is damaged at byte {pos} (a record "
                "in the middle fails its checksum); restore from a backup"
            )
        commits.append(decoded)
        pos = stop
    return generation, commits, pos


def _zeros(data: bytes, pos: int) -> bool:
    """Whether ``data`` is all zero bytes from ``pos``: a tail that a crash
    left allocated but unwritten, a torn record."""
    return data.count(0, pos) == len(data) - pos


class Log:
    """The open log of a ``sync=commit`` engine: appends fsynced records."""

    def __init__(self, path: str, generation: int, length: int | None) -> None:
        """Open the log at ``path``; ``length`` is where its good records
        end (a torn tail beyond is cut off), ``None`` to start a new log."""
        self.path = path
        #: Whether records get checked frames (false in a log of the first
        #: layout, which is appended to as it is).
        self.checked = True
        try:
            if length is None:
                header = log_header(generation)
                replace_file(path, [header])
                length = len(header)
            else:
                with open(path, "rb") as f:
                    flags = _LOG_HEADER.unpack(f.read(_LOG_HEADER.size))[2]
                self.checked = flags == LOG_CHECKED
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
