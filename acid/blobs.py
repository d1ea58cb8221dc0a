"""Blob stores: simplekv's interface, chunked, streaming and transactional.

A blob store is a named key space of byte strings ("blobs") under string
keys. Values are cut into chunks (256 KiB by default), so putting or getting
a file of any size holds at most a couple of chunks in memory. Every call
runs in the active transaction, or in one of its own: a blob put inside
``with store.begin(write=True)`` commits or rolls back with the records
written in the same block.

>>> import acid, io
>>> store = acid.open("skiplist:/")
>>> files = store.blobs("files")
>>> files.put("hello.txt", b"hello")
'hello.txt'
>>> files.get("hello.txt")
b'hello'
>>> files.open("hello.txt").read(4)
b'hell'
>>> "hello.txt" in files, files.keys()
(True, ['hello.txt'])
>>> files.get("nope")
Traceback (most recent call last):
...
KeyError: 'nope'

Layout (``docs/layout.md``): with ``B`` the blob store's id,
``P + pack((B, 0, key))`` holds the header ``pack((generation, size,
chunk_size, deadline))``, ``P + pack((B, 1, generation, i))`` chunk ``i``,
and ``P + pack((B, 2, generation))`` marks a put under way (see
:meth:`BlobStore.vacuum`). A put writes its chunks under a new random
generation and swaps the header last, so a put that fails half-way leaves
the previous blob whole.
"""

from __future__ import annotations

import io
import operator
import os
import re
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, Any

from acid import _ttl, keylib
from acid._layout import KIND_BLOBS
from acid._txn import spoil
from acid.errors import CorruptionError, SchemaError

if TYPE_CHECKING:
    from acid.engines import Txn
    from acid.store import Store

__all__ = ["CHUNK_SIZE", "VALID_KEY_RE", "VALID_KEY_REGEXP", "BlobReader", "BlobStore"]

#: simplekv's pattern of a valid key: ASCII letters, digits and
#: ``!"`#$%&'()+,-.<=>?@[]^_{}~``.
VALID_KEY_REGEXP = r"""^[\`\!"\#\$%\&'\(\)\+,\-\.<=>\?@\[\]\^_\{\}~0-9a-zA-Z]+$"""
#: :data:`VALID_KEY_REGEXP`, compiled.
VALID_KEY_RE = re.compile(VALID_KEY_REGEXP)
#: The longest key accepted (simplekv guarantees at least 250 characters).
MAX_KEY_LENGTH = 250
#: Bytes per chunk unless a blob store is opened with another ``chunk_size``.
CHUNK_SIZE = 256 * 1024

_HEAD, _CHUNK, _PENDING = 0, 1, 2
#: Chunks a put outside a transaction writes per transaction (4 MiB).
STAGE_CHUNKS = 16


def _check_key(key: Any) -> str:
    if not isinstance(key, str) or not VALID_KEY_RE.fullmatch(key):
        raise ValueError(
            f"invalid blob key {key!r}: keys are non-empty str of ASCII letters, "
            """digits and !"`#$%&'()+,-.<=>?@[]^_{}~"""
        )
    if len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"blob key longer than {MAX_KEY_LENGTH} characters")
    return key


class _Head:
    __slots__ = ("gen", "size", "chunk_size", "deadline")

    def __init__(
        self, gen: bytes, size: int, chunk_size: int, deadline: float | None
    ) -> None:
        self.gen, self.size, self.chunk_size = gen, size, chunk_size
        self.deadline = deadline

    def pack(self) -> bytes:
        return keylib.pack((self.gen, self.size, self.chunk_size, self.deadline))

    @classmethod
    def unpack(cls, raw: bytes) -> _Head:
        try:
            gen, size, chunk_size, deadline = keylib.unpack(raw)
            if not (isinstance(gen, bytes) and type(size) is int):
                raise ValueError("wrong types")
        except (ValueError, TypeError) as exc:
            raise CorruptionError(f"a blob header is unreadable ({exc})") from exc
        return cls(gen, size, chunk_size, deadline)

    @property
    def nchunks(self) -> int:
        return -(-self.size // self.chunk_size)


class BlobStore:
    """A named space of blobs in a :class:`~acid.Store` (``store.blobs(name)``).

    ``ttl`` is the default time to live of blobs put without ``ttl_secs``
    (``None``: they never expire); ``chunk_size`` the size of the chunks new
    blobs are cut into (blobs keep the size they were written with). The
    blob store is created in the active transaction (or one of its own), as
    a collection is: made in a block that aborts, it leaves no trace, and
    this object refuses further use with :class:`~acid.errors.SchemaError`.
    """

    #: Blobs may expire (simplekv's ``TimeToLiveMixin``).
    ttl_support = True

    def __init__(
        self,
        store: Store,
        name: str,
        *,
        ttl: Any = None,
        chunk_size: int = CHUNK_SIZE,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError("a blob store name must be a non-empty str")
        if type(chunk_size) is not int or chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive int, not {chunk_size!r}")
        self.store = store
        self.name = name
        self.chunk_size = chunk_size
        #: Seconds a blob put with ``ttl_secs=None`` lives, or ``None``.
        self.default_ttl_secs = _ttl.check_ttl(ttl)
        info = store.get_meta(KIND_BLOBS, name)
        if info is None:
            info = store.in_txn(self._create, write=True)
        self.id: int = info["id"]
        self.uid: bytes = info["uid"]
        self._space = store.space(self.id)
        self._head_start, self._head_stop = keylib.prefix_range((_HEAD,), self._space)

    def _create(self) -> dict[str, Any]:
        store = self.store
        info = store.get_meta(KIND_BLOBS, self.name)  # another writer may have won
        if info is None:
            store.schema.changed()
            info = {"name": self.name, "id": store.schema.allocate_id()}
            info["uid"] = os.urandom(8)
            store.set_meta(KIND_BLOBS, self.name, info)
        return info

    def __repr__(self) -> str:
        return f"<acid.BlobStore {self.name!r} id={self.id}>"

    # -- helpers ----------------------------------------------------------

    def _txn(self) -> Txn:
        """The active transaction, once the blob store is known to exist."""
        info = self.store.get_meta(KIND_BLOBS, self.name)
        if info is None or info.get("uid") != self.uid:
            raise SchemaError(
                f"blob store {self.name!r} cannot be used: it was dropped, or "
                "created in a transaction that rolled back; call store.blobs() "
                "again"
            )
        return self.store.active()

    def _head_key(self, key: str) -> bytes:
        return keylib.pack((_HEAD, key), self._space)

    def _pending_key(self, gen: bytes) -> bytes:
        return keylib.pack((_PENDING, gen), self._space)

    def _chunk_key(self, gen: bytes, i: int) -> bytes:
        return keylib.pack((_CHUNK, gen, i), self._space)

    def _head(self, txn: Txn, key: str) -> _Head | None:
        """The live header of ``key``; an expired blob is ``None``."""
        raw = txn.get(self._head_key(key))
        if raw is None:
            return None
        head = _Head.unpack(raw)
        if head.deadline is not None and head.deadline <= self.store.clock():
            return None
        return head

    def _drop(self, txn: Txn, key: str) -> bool:
        """Delete ``key``'s header and chunks (expired or not)."""
        hkey = self._head_key(key)
        raw = txn.get(hkey)
        if raw is None:
            return False
        head = _Head.unpack(raw)
        self._drop_chunks(txn, head.gen, head.nchunks)
        txn.delete(hkey)
        return True

    def _drop_chunks(self, txn: Txn, gen: bytes, n: int, first: int = 0) -> None:
        for i in range(first, n):
            txn.delete(self._chunk_key(gen, i))

    def _chunks(self, txn: Txn, head: _Head) -> Iterator[bytes]:
        for i in range(head.nchunks):
            chunk = txn.get(self._chunk_key(head.gen, i))
            if chunk is None:
                raise CorruptionError(
                    f"blob store {self.name!r}: chunk {i} of a blob is missing"
                )
            yield chunk

    def _write(self, key: str, pieces: Iterator[bytes], ttl_secs: Any) -> str:
        """Write ``pieces`` (chunks of exactly chunk_size, the last shorter)
        as the new value of ``key``; on failure what was there stays."""
        _check_key(key)
        _ttl.check_ttl(ttl_secs)
        gen = os.urandom(8)
        written = [0, 0]  # chunks, bytes
        if self.store.txn is not None:  # the caller's block: one transaction
            self.store.in_txn(
                lambda: self._batch(key, gen, pieces, written, None, ttl_secs),
                write=True,
            )
            return key
        # On its own the put commits every STAGE_CHUNKS chunks, so that an
        # engine that keeps a transaction's writes in memory (LMDB's dirty
        # pages, LevelDB's batch) never holds the whole blob. The header is
        # swapped in the last transaction; until then readers see the old
        # value, and a pending mark keeps vacuum() off the staged chunks.
        try:
            while True:
                key_out = self.store.in_txn(
                    lambda: self._batch(
                        key, gen, pieces, written, STAGE_CHUNKS, ttl_secs
                    ),
                    write=True,
                )
                if key_out is not None:
                    return key_out
        except BaseException:
            if written[0]:
                try:
                    self.store.in_txn(lambda: self._unstage(gen, written[0] + 1), True)
                except Exception:  # vacuum() collects what is left
                    pass
            raise

    def _batch(
        self,
        key: str,
        gen: bytes,
        pieces: Iterator[bytes],
        written: list[int],
        limit: int | None,
        ttl_secs: Any,
    ) -> str | None:
        """Write up to ``limit`` chunks; at the end of ``pieces`` swap the
        header and return ``key``, else return ``None``."""
        txn = self._txn()
        first = written[0]
        try:
            for piece in pieces:
                txn.put(self._chunk_key(gen, written[0]), piece)
                written[0] += 1
                written[1] += len(piece)
                if limit is not None and written[0] - first >= limit:
                    txn.put(self._pending_key(gen), keylib.pack((self.store.clock(),)))
                    return None
            due = _ttl.deadline(ttl_secs, self.default_ttl_secs, self.store.clock)
            new = _Head(gen, written[1], self.chunk_size, due)
            old = txn.replace(self._head_key(key), new.pack())
            txn.delete(self._pending_key(gen))
        except BaseException:
            n = written[0] + 1
            _undo(txn, lambda: self._drop_chunks(txn, gen, n, first))
            raise
        if old is not None:
            head = _Head.unpack(old)
            self._drop_chunks(txn, head.gen, head.nchunks)
        return key

    def _unstage(self, gen: bytes, n: int) -> None:
        txn = self._txn()
        self._drop_chunks(txn, gen, n)
        txn.delete(self._pending_key(gen))

    def vacuum(self, grace: float = 3600.0) -> int:
        """Delete chunks that no blob names; return how many.

        They are left by a process killed during a put made outside a
        transaction (such a put commits in stages). Chunks of a put still
        under way are kept for ``grace`` seconds after its last stage.
        One write transaction; costs a scan of every chunk.
        """
        skip = len(self._space)

        def run() -> int:
            txn = self._txn()
            now = self.store.clock()
            live = set()
            for _, v in self._range(txn, _HEAD):
                live.add(_Head.unpack(v).gen)
            for k, v in list(self._range(txn, _PENDING)):
                gen = keylib.unpack(k[skip:])[1]
                if keylib.unpack(v)[0] + grace > now:
                    live.add(gen)
                else:
                    txn.delete(k)
            dead = [
                k
                for k, _ in self._range(txn, _CHUNK)
                if keylib.unpack(k[skip:])[1] not in live
            ]
            for k in dead:
                txn.delete(k)
            return len(dead)

        return self.store.in_txn(run, write=True)

    def _range(self, txn: Txn, sub: int) -> Iterator[tuple[bytes, bytes]]:
        start, stop = keylib.prefix_range((sub,), self._space)
        for k, v in txn.iter(start):
            if k >= stop:
                return
            yield k, v

    # -- simplekv's interface ---------------------------------------------

    def put(self, key: str, data: bytes, ttl_secs: Any = None) -> str:
        """Store ``data`` (bytes-like) under ``key``; return ``key``.

        ``ttl_secs``: seconds until the blob expires, :data:`acid.FOREVER`,
        or ``None`` for the blob store's default.
        """
        if isinstance(data, str) or not isinstance(
            data, bytes | bytearray | memoryview
        ):
            raise TypeError(f"blob data must be bytes, not {type(data).__name__}")
        view = memoryview(data).cast("B")
        cs = self.chunk_size
        pieces = (bytes(view[i : i + cs]) for i in range(0, len(view), cs))
        return self._write(key, pieces, ttl_secs)

    def put_file(self, key: str, file: Any, ttl_secs: Any = None) -> str:
        """Store what ``file`` (a path, or an object with ``read``) holds.

        Read one chunk at a time. The file named by a path is left in place.
        If reading fails half-way, the previous value of ``key`` stays.
        """
        _check_key(key)
        if isinstance(file, str | os.PathLike):
            with open(file, "rb") as f:
                return self._write(key, _read_chunks(f, self.chunk_size), ttl_secs)
        if not callable(getattr(file, "read", None)):
            raise TypeError("file must be a path or an object with a read() method")
        return self._write(key, _read_chunks(file, self.chunk_size), ttl_secs)

    def get(self, key: str) -> bytes:
        """The blob under ``key``; ``KeyError`` when there is none."""
        _check_key(key)

        def run() -> bytes:
            txn = self._txn()
            head = self._head(txn, key)
            if head is None:
                raise KeyError(key)
            return b"".join(self._chunks(txn, head))

        return self.store.in_txn(run)

    def get_file(self, key: str, file: Any) -> str:
        """Write the blob under ``key`` to ``file`` (a path or a writable).

        A path is created only once the key is known to exist.
        """
        _check_key(key)
        if not isinstance(file, str | os.PathLike) and not callable(
            getattr(file, "write", None)
        ):
            raise TypeError("file must be a path or an object with a write() method")

        def run() -> str:
            txn = self._txn()
            head = self._head(txn, key)
            if head is None:
                raise KeyError(key)
            if isinstance(file, str | os.PathLike):
                with open(file, "wb") as out:
                    for chunk in self._chunks(txn, head):
                        out.write(chunk)
            else:
                for chunk in self._chunks(txn, head):
                    file.write(chunk)
            return key

        return self.store.in_txn(run)

    def open(self, key: str) -> BlobReader:
        """A read-only, seekable binary file over the blob under ``key``.

        Inside a transaction the file reads from it, and must be used before
        the block ends. Outside one it holds a read transaction of its own
        (one snapshot) until closed: a put or delete of ``key`` committed
        meanwhile does not change what it reads. Close it (or use it as a
        context manager): an open snapshot keeps old pages alive on LMDB.
        """
        _check_key(key)
        txn = self.store.txn
        own = txn is None
        if own:
            txn = self.store.engine.begin(write=False)
        assert txn is not None
        try:
            ctx = self.store.context
            token = ctx.set(txn)
            try:
                self._txn()
            finally:
                ctx.reset(token)
            head = self._head(txn, key)
            if head is None:
                raise KeyError(key)
        except BaseException:
            if own:
                txn.abort()
            raise
        return BlobReader(self, txn, head, own, key)

    def delete(self, key: str) -> None:
        """Delete ``key`` and its data; a missing key is no error."""
        _check_key(key)
        self.store.in_txn(lambda: self._drop(self._txn(), key), write=True)

    def copy(self, source: str, dest: str) -> str:
        """Copy ``source`` to ``dest`` (overwritten), expiry included."""
        _check_key(source)
        _check_key(dest)

        def run() -> str:
            txn = self._txn()
            head = self._head(txn, source)
            if head is None:
                raise KeyError(source)
            if dest == source:
                return dest
            gen = os.urandom(8)
            for i, chunk in enumerate(self._chunks(txn, head)):
                txn.put(self._chunk_key(gen, i), chunk)
            new = _Head(gen, head.size, head.chunk_size, head.deadline)
            old = txn.replace(self._head_key(dest), new.pack())
            if old is not None:
                prev = _Head.unpack(old)
                self._drop_chunks(txn, prev.gen, prev.nchunks)
            return dest

        return self.store.in_txn(run, write=True)

    def iter_keys(self, prefix: str = "") -> Iterator[str]:
        """The keys (starting with ``prefix``) of live blobs, in order."""
        return iter(self.keys(prefix))

    def keys(self, prefix: str = "") -> list[str]:
        """A list of the keys (starting with ``prefix``) of live blobs."""
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be str, not {type(prefix).__name__}")
        skip = len(self._space)

        def run() -> list[str]:
            txn = self._txn()
            now = self.store.clock()
            out = []
            for k, v in txn.iter(self._head_start):
                if k >= self._head_stop:
                    break
                key = keylib.unpack(k[skip:])[1]
                if key.startswith(prefix):
                    deadline = _Head.unpack(v).deadline
                    if deadline is None or deadline > now:
                        out.append(key)
            return out

        return self.store.in_txn(run)

    def __iter__(self) -> Iterator[str]:
        return self.iter_keys()

    def __contains__(self, key: object) -> bool:
        _check_key(key)
        assert isinstance(key, str)
        return self.store.in_txn(lambda: self._head(self._txn(), key) is not None)

    def ttl(self, key: str) -> float | None:
        """Seconds until ``key`` expires, ``None`` if never; ``KeyError`` if absent."""
        _check_key(key)

        def run() -> float | None:
            head = self._head(self._txn(), key)
            if head is None:
                raise KeyError(key)
            if head.deadline is None:
                return None
            return head.deadline - self.store.clock()

        return self.store.in_txn(run)

    def expire(self, max: int | None = None) -> int:
        """Delete expired blobs (at most ``max``); return how many.

        Runs in the active write transaction or one of its own. Expired blobs
        are invisible anyway; this gives their space back.
        """
        if max is not None and (type(max) is not int or max < 0):
            raise ValueError(f"max must be None or an int >= 0, not {max!r}")
        skip = len(self._space)

        def run() -> int:
            txn = self._txn()
            now = self.store.clock()
            dead: list[str] = []
            for k, v in txn.iter(self._head_start):
                if k >= self._head_stop or (max is not None and len(dead) >= max):
                    break
                deadline = _Head.unpack(v).deadline
                if deadline is not None and deadline <= now:
                    dead.append(keylib.unpack(k[skip:])[1])
            for key in dead:
                self._drop(txn, key)
            return len(dead)

        return self.store.in_txn(run, write=True)


class BlobReader(io.RawIOBase):
    """The file object returned by :meth:`BlobStore.open`."""

    def __init__(
        self, blobs: BlobStore, txn: Txn, head: _Head, own: bool, key: str = ""
    ) -> None:
        super().__init__()
        self._blobs = blobs
        self._txn: Txn | None = txn
        self._head = head
        self._key = key
        self._own = own
        self._pos = 0
        self._cached: tuple[int, bytes] | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        self._checked()
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._checked()
        offset = operator.index(offset)  # a float is no position (io's rule)
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self._head.size + offset
        else:
            raise ValueError(f"invalid whence ({whence!r})")
        if pos < 0:
            raise ValueError(f"negative seek position {pos}")
        self._pos = pos
        return pos

    def _checked(self) -> Txn:
        if self.closed or self._txn is None:
            raise ValueError("I/O operation on closed blob file")
        if self._txn.ended:
            raise ValueError(
                "the transaction this blob file reads from has ended; open it "
                "outside the block, or use it inside"
            )
        return self._txn

    def _chunk(self, i: int) -> bytes:
        if self._cached is not None and self._cached[0] == i:
            return self._cached[1]
        txn = self._checked()
        chunk = txn.get(self._blobs._chunk_key(self._head.gen, i))
        if chunk is None:
            raise CorruptionError(
                f"blob store {self._blobs.name!r}: chunk {i} of a blob is missing"
            )
        self._cached = (i, chunk)
        return chunk

    def readinto(self, buffer: Any) -> int:
        txn = self._checked()
        if not self._own:  # the block may have replaced the blob since
            raw = txn.get(self._blobs._head_key(self._key))
            if raw is None or _Head.unpack(raw).gen != self._head.gen:
                raise ValueError(
                    f"blob {self._key!r} was replaced or deleted in this "
                    "transaction after this file was opened; open it again"
                )
        view = memoryview(buffer).cast("B")
        cs, size = self._head.chunk_size, self._head.size
        done = 0
        while done < len(view) and self._pos < size:
            i, off = divmod(self._pos, cs)
            chunk = self._chunk(i)
            n = min(len(view) - done, len(chunk) - off, size - self._pos)
            view[done : done + n] = chunk[off : off + n]
            done += n
            self._pos += n
        return done

    def read(self, size: int | None = -1) -> bytes:
        """Up to ``size`` bytes; all the rest for ``-1`` or ``None``."""
        if size is None:
            size = -1
        return super().read(size)

    def write(self, b: Any) -> int:
        raise io.UnsupportedOperation("blob files are read-only; use put()")

    def readall(self) -> bytes:
        out = bytearray()
        while True:
            piece = self.read(self._head.chunk_size)
            if not piece:
                return bytes(out)
            out += piece

    def close(self) -> None:
        if not self.closed:
            txn, self._txn = self._txn, None
            self._cached = None
            if self._own and txn is not None:
                txn.abort()
        super().close()


def _read_chunks(f: IO[bytes] | Any, cs: int) -> Iterator[bytes]:
    """Exactly ``cs`` bytes at a time from ``f`` (the last piece shorter).

    Reads of any length are accepted: a short one need not be the end, a
    long one (more than asked) is cut into chunks.
    """
    acc = bytearray()
    while True:
        buf = f.read(cs - len(acc) if len(acc) < cs else cs)
        if not isinstance(buf, bytes | bytearray | memoryview):
            raise TypeError(
                f"file.read() returned {type(buf).__name__}, not bytes; "
                "open the file in binary mode ('rb')"
            )
        if not buf:
            break
        if not acc and len(buf) == cs:  # the usual case: no copy
            yield bytes(buf)
            continue
        acc += buf
        del buf
        while len(acc) >= cs:
            piece = bytes(memoryview(acc)[:cs])
            del acc[:cs]
            yield piece
    if acc:
        yield bytes(acc)


def _undo(txn: Txn, undo: Callable[[], None]) -> None:
    """Run ``undo`` after a failed write; if even that fails, spoil ``txn``
    (it can only abort; aborted at once, later writes of its block would
    each commit on their own: see ``acid._txn.spoil``)."""
    try:
        undo()
    except BaseException:
        spoil(
            txn,
            "a blob write in this transaction failed and could not be undone; "
            "the transaction can only be aborted (leave its block)",
        )
