"""The Store: transactions, metadata, counters and the key-space prefix.

>>> import acid
>>> store = acid.open("skiplist:/")
>>> with store.begin(write=True):
...     store.count("visits")
...     store.count("visits")
1
2
>>> store.count("visits", 0)
3
"""

from __future__ import annotations

import contextvars
import threading
import weakref
from collections.abc import Callable
from enum import IntEnum
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from acid import encoders, keylib
from acid.errors import (
    AbortError,
    ConfigError,
    NameInUse,
    NotFound,
    TxnError,
)

if TYPE_CHECKING:
    from acid.collection import Collection
    from acid.engines import Engine, Txn

__all__ = [
    "KIND_COUNTER",
    "KIND_ENCODER",
    "KIND_INDEX",
    "KIND_STRUCT",
    "KIND_TABLE",
    "Space",
    "Store",
    "TxnContext",
    "abort",
]

T = TypeVar("T")

KIND_TABLE = "table"
KIND_INDEX = "index"
KIND_ENCODER = "encoder"
KIND_COUNTER = "counter"
KIND_STRUCT = "struct"
_KINDS = (KIND_TABLE, KIND_INDEX, KIND_ENCODER, KIND_COUNTER, KIND_STRUCT)


class Space(IntEnum):
    """Reserved first elements of every key under a store's prefix.

    Collections and indexes get numeric ids from :data:`FIRST_USER_ID` on, so
    their records never share a first element with these spaces.
    """

    META = 1  # (META, kind, *name) -> packed (k, v, k, v, ...) tuple
    COUNTER = 2  # (COUNTER, name) -> packed (value,)


#: First numeric id handed to a collection or an index.
FIRST_USER_ID = 10
#: Internal counter that allocates collection and index ids.
_ID_COUNTER = "\x00ids"
#: Internal counter that allocates custom compressor ids.
_COMPRESSOR_COUNTER = "\x00compressors"


class TxnContext:
    """Where the active transaction lives: a :class:`contextvars.ContextVar`.

    Each thread and each asyncio task sees its own value. Replace it (the
    ``txn_context`` argument of :class:`Store`) to keep transactions in some
    other request-local place; the replacement needs ``get``, ``set`` and
    ``reset`` with these meanings.
    """

    __slots__ = ("_var", "get", "set", "reset")

    def __init__(self) -> None:
        self._var: contextvars.ContextVar[Txn | None] = contextvars.ContextVar(
            "acid_txn", default=None
        )
        # Bound C methods, not Python wrappers: get() runs on every operation.
        self.get: Callable[[], Txn | None] = self._var.get
        self.set: Callable[[Txn | None], Any] = self._var.set
        self.reset: Callable[[Any], None] = self._var.reset


class _TxnContextLike(Protocol):
    def get(self) -> Txn | None: ...
    def set(self, txn: Txn | None) -> Any: ...
    def reset(self, token: Any) -> None: ...


# Stores that share one engine share its ambient transaction, so a block begun
# on one of them covers writes through the others (one engine, one writer).
_contexts: weakref.WeakKeyDictionary[Any, TxnContext] = weakref.WeakKeyDictionary()
_contexts_lock = threading.Lock()


def _context_for(engine: Any) -> TxnContext:
    with _contexts_lock:
        ctx = _contexts.get(engine)
        if ctx is None:
            ctx = _contexts[engine] = TxnContext()
        return ctx


def abort() -> None:
    """Abort the active transaction and leave its ``with`` block quietly.

    >>> import acid
    >>> store = acid.open("skiplist:/")
    >>> with store.begin(write=True):
    ...     store.count("n")
    ...     acid.abort()
    1
    >>> store.count("n", 0)
    1
    """
    raise AbortError("transaction aborted by acid.abort()")


class _Block:
    """The context manager returned by :meth:`Store.begin`."""

    __slots__ = ("_store", "_write", "_timeout", "_token", "txn")

    def __init__(self, store: Store, write: bool, timeout: float | None) -> None:
        self._store = store
        self._write = write
        self._timeout = timeout
        self._token: Any = None
        self.txn: Txn | None = None

    def __enter__(self) -> Txn:
        ctx = self._store._ctx
        if ctx.get() is not None:
            raise TxnError(
                "a transaction is already active here; nested begin() is not "
                "supported (use store.in_txn(func) to join the active one)"
            )
        if self.txn is not None:
            raise TxnError("this begin() block was already used; call begin() again")
        self.txn = self._store.engine.begin(write=self._write, timeout=self._timeout)
        self._token = ctx.set(self.txn)
        return self.txn

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        self._store._ctx.reset(self._token)
        txn = self.txn
        assert txn is not None
        if exc_type is None:
            try:
                txn.commit()
            except BaseException:
                _quiet_abort(txn)
                raise
            return False
        _quiet_abort(txn)
        return exc_type is not None and issubclass(exc_type, AbortError)


def _quiet_abort(txn: Txn) -> None:
    try:
        txn.abort()
    except Exception:  # noqa: BLE001 - the original error matters more
        pass


def _meta_encode(dct: dict[str, Any]) -> bytes:
    if not isinstance(dct, dict):
        raise TypeError(f"metadata must be a dict, not {type(dct).__name__}")
    flat: list[Any] = []
    for k, v in sorted(dct.items()):
        if not isinstance(k, str):
            raise TypeError(f"metadata keys must be str, not {type(k).__name__}")
        flat += (k, v)
    return keylib.pack(tuple(flat))


def _meta_decode(raw: bytes) -> dict[str, Any]:
    flat = keylib.unpack(raw)
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _name_tuple(name: Any) -> tuple[Any, ...]:
    return name if isinstance(name, tuple) else (name,)


class Store:
    """Access to one engine's key space (or the part of it under ``prefix``).

    ``engine`` is an :class:`acid.engines.Engine` (see :func:`acid.open`).
    ``prefix`` (bytes, or str encoded as UTF-8) is put in front of every key
    this store writes, so several stores can share one engine.
    """

    def __init__(
        self,
        engine: Engine,
        txn_context: _TxnContextLike | None = None,
        prefix: bytes | str = b"",
    ) -> None:
        if not callable(getattr(engine, "begin", None)):
            raise TypeError(
                f"engine must be an acid.engines.Engine, not {type(engine).__name__}; "
                "to open one by URL use acid.open(url)"
            )
        if isinstance(prefix, str):
            prefix = prefix.encode()
        if not isinstance(prefix, bytes | bytearray | memoryview):
            raise TypeError(f"prefix must be bytes or str, not {type(prefix).__name__}")
        self.engine = engine
        self.prefix = bytes(prefix)
        self._ctx: _TxnContextLike = txn_context or _context_for(engine)
        self._meta_prefix = keylib.pack((Space.META.value,), self.prefix)
        self._counter_prefix = keylib.pack((Space.COUNTER.value,), self.prefix)
        self._encoders: dict[str, encoders.Encoder] = dict(encoders.BUILTIN_ENCODERS)
        self._compressors: dict[str, encoders.Compressor] = {
            c.name: c for c in encoders.BUILTIN_COMPRESSORS.values()
        }
        self._compressors_by_id: dict[int, encoders.Compressor] = dict(
            encoders.BUILTIN_COMPRESSORS
        )
        self._lock = threading.Lock()
        # Live Collection objects by name, so rename_collection() can update them.
        self._live: dict[str, weakref.WeakSet[Collection]] = {}

    def __repr__(self) -> str:
        return f"<acid.Store engine={self.engine!r} prefix={self.prefix!r}>"

    def close(self) -> None:
        """Close the engine. The store is unusable afterwards."""
        self.engine.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- transactions -----------------------------------------------------

    def begin(self, write: bool = False, *, timeout: float | None = None) -> _Block:
        """A context manager running its block in a new transaction.

        The block commits when it ends normally; an exception aborts and
        propagates; :func:`acid.abort` aborts and leaves the block quietly.
        ``timeout`` (seconds) bounds the wait for another writer.
        """
        return _Block(self, bool(write), timeout)

    @property
    def txn(self) -> Txn | None:
        """The active transaction in this context, or ``None``."""
        return self._ctx.get()

    def in_txn(self, func: Callable[[], T], write: bool = False) -> T:
        """Run ``func()`` in the active transaction, or in a new one.

        Joining a read transaction with ``write=True`` raises ``TxnError``.
        """
        txn = self._ctx.get()
        if txn is None:
            with self.begin(write=write):
                return func()
            # Reached only when acid.abort() ended the block: func() returned
            # nothing, and there is nothing to return.
            return None  # type: ignore[return-value]
        if write and not txn.write:
            raise TxnError(
                "a write needs a write transaction, but a read transaction is "
                "active; use store.begin(write=True)"
            )
        return func()

    # -- counters ---------------------------------------------------------

    def count(self, name: str, n: int | None = 1, init: int = 1) -> int:
        """Add ``n`` to the counter ``name`` and return its previous value.

        A missing counter starts at ``init``. ``n=0`` or ``None`` only reads.
        Counters roll back with their transaction. Names starting with
        ``"\\x00"`` are reserved.
        """
        if not isinstance(name, str):
            raise TypeError(f"counter name must be str, not {type(name).__name__}")
        if name.startswith("\x00"):
            raise ValueError(
                f"counter names starting with '\\x00' are reserved: {name!r}"
            )
        for arg, label in ((n, "n"), (init, "init")):
            if type(arg) is not int and not (arg is None and label == "n"):
                raise TypeError(
                    f"counter {label} must be int, not {type(arg).__name__}"
                )
        return self._count(name, n, init)

    def _count(self, name: str, n: int | None, init: int) -> int:
        """``count`` without argument checks, for acid's own callers."""
        key = keylib.pack((name,), self._counter_prefix)

        def run() -> int:
            txn = self._ctx.get()
            assert txn is not None
            raw = txn.get(key)
            value = init if raw is None else keylib.unpack(raw)[0]
            if n:
                txn.put(key, keylib.pack((value + n,)))
            return value

        return self.in_txn(run, write=bool(n))

    # -- metadata ---------------------------------------------------------

    def _meta_key(self, kind: str, name: Any) -> bytes:
        if kind not in _KINDS:
            raise ValueError(f"unknown metadata kind {kind!r}; use one of {_KINDS}")
        return keylib.pack((kind, *_name_tuple(name)), self._meta_prefix)

    def get_meta(self, kind: str, name: Any) -> dict[str, Any] | None:
        """The metadata dict stored for ``(kind, name)``, or ``None``."""
        key = self._meta_key(kind, name)

        def run() -> dict[str, Any] | None:
            raw = self._ctx.get().get(key)  # type: ignore[union-attr]
            return None if raw is None else _meta_decode(raw)

        return self.in_txn(run)

    def set_meta(self, kind: str, name: Any, dct: dict[str, Any] | None) -> None:
        """Replace the metadata for ``(kind, name)`` with ``dct`` (None deletes).

        Values must be key-encodable (None, bool, int, float, str, bytes, ...).
        """
        key = self._meta_key(kind, name)
        value = None if dct is None else _meta_encode(dct)

        def run() -> None:
            txn = self._ctx.get()
            assert txn is not None
            if value is None:
                txn.delete(key)
            else:
                txn.put(key, value)

        self.in_txn(run, write=True)

    def iter_meta(self, kind: str) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
        """Every ``(name tuple, dict)`` stored under ``kind``, in name order."""
        start = keylib.pack((kind,), self._meta_prefix)
        stop = keylib.prefix_bound(start)

        def run() -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
            out = []
            for k, v in self._ctx.get().iter(start):  # type: ignore[union-attr]
                if stop is not None and k >= stop:
                    break
                out.append((keylib.unpack(k, self._meta_prefix)[1:], _meta_decode(v)))
            return out

        return self.in_txn(run)

    def _new_id(self) -> int:
        return self._count(_ID_COUNTER, 1, FIRST_USER_ID)

    # -- collections ------------------------------------------------------

    def add_collection(self, name: str, **kwargs: Any) -> Collection:
        """Shorthand for ``acid.Collection(self, name, **kwargs)``."""
        from acid.collection import Collection

        return Collection(self, name, **kwargs)

    def collections(self) -> list[str]:
        """Names of the collections stored here, in order."""
        return [n[0] for n, _ in self.iter_meta(KIND_TABLE)]

    def _register_live(self, coll: Collection) -> None:
        with self._lock:
            self._live.setdefault(coll.name, weakref.WeakSet()).add(coll)

    def _live_collections(self, name: str) -> list[Collection]:
        with self._lock:
            return list(self._live.get(name, ()))

    def rename_collection(self, old: str, new: str) -> None:
        """Rename collection ``old`` to ``new``; live Collection objects follow.

        Raises :class:`NameInUse` if ``new`` exists, :class:`NotFound` if
        ``old`` does not.
        """
        if not isinstance(new, str) or not new:
            raise TypeError("the new collection name must be a non-empty str")

        def run() -> None:
            info = self.get_meta(KIND_TABLE, old)
            if info is None:
                raise NotFound(f"no collection named {old!r}")
            if self.get_meta(KIND_TABLE, new) is not None:
                raise NameInUse(f"a collection named {new!r} already exists")
            info["name"] = new
            self.set_meta(KIND_TABLE, old, None)
            self.set_meta(KIND_TABLE, new, info)
            for (_, iname), iinfo in self._index_metas(old):
                self.set_meta(KIND_INDEX, (old, iname), None)
                iinfo["collection"] = new
                self.set_meta(KIND_INDEX, (new, iname), iinfo)

        self.in_txn(run, write=True)
        with self._lock:
            moved = self._live.pop(old, weakref.WeakSet())
            for coll in moved:
                coll.name = new
            self._live.setdefault(new, weakref.WeakSet()).update(moved)

    def _index_metas(self, coll_name: str) -> list[tuple[tuple[Any, ...], dict]]:
        return [(n, d) for n, d in self.iter_meta(KIND_INDEX) if n[0] == coll_name]

    # -- encoders and compressors -----------------------------------------

    def add_encoder(self, encoder: encoders.Encoder | encoders.Compressor) -> None:
        """Register an encoder or compressor so collections can find it by name.

        A compressor without an id gets a persistent one from the store's
        registry (the same name always maps to the same id in this store).
        """
        if isinstance(encoder, encoders.Compressor):
            self._add_compressor(encoder)
        elif isinstance(encoder, encoders.Encoder):
            known = self._encoders.get(encoder.name)
            if known is not None and known is not encoder:
                raise NameInUse(f"another encoder is registered as {encoder.name!r}")
            self._encoders[encoder.name] = encoder
        else:
            raise TypeError(
                f"expected an acid.encoders.Encoder or Compressor, "
                f"got {type(encoder).__name__}"
            )

    def _add_compressor(self, comp: encoders.Compressor) -> None:
        known = self._compressors.get(comp.name)
        if known is comp:
            return
        if comp.name in {c.name for c in encoders.BUILTIN_COMPRESSORS.values()}:
            raise NameInUse(f"{comp.name!r} is a built-in compressor name")

        def run() -> int:
            info = self.get_meta(KIND_ENCODER, comp.name)
            if info is not None:
                return int(info["id"])
            cid = self._count(_COMPRESSOR_COUNTER, 1, encoders.FIRST_CUSTOM_ID)
            if cid > encoders.MAX_COMPRESSOR_ID:
                raise ConfigError("too many compressors registered in this store")
            meta: dict[str, Any] = {"id": cid, "kind": "compressor"}
            if isinstance(comp, encoders.ZstdDictCompressor):
                meta.update(type="zstd-dict", dict=comp.dict_data, level=comp.level)
            self.set_meta(KIND_ENCODER, comp.name, meta)
            return cid

        cid = self.in_txn(run, write=True)
        if comp.id is not None and comp.id != cid:
            raise ConfigError(
                f"compressor {comp.name!r} has id {comp.id}, but this store "
                f"registered that name as id {cid}"
            )
        comp.id = cid
        self._compressors[comp.name] = comp
        self._compressors_by_id[cid] = comp

    def get_encoder(self, name: str) -> encoders.Encoder | encoders.Compressor:
        """The registered encoder or compressor called ``name``.

        Trained zstd dictionaries stored in this store are loaded on demand.
        Raises :class:`NotFound` when there is none.
        """
        found = self._encoders.get(name) or self._compressors.get(name)
        if found is None:
            found = self._load_compressor(name)
        if found is None:
            raise NotFound(
                f"no encoder or compressor named {name!r}; register it with "
                "store.add_encoder()"
            )
        return found

    def _load_compressor(self, name: str) -> encoders.Compressor | None:
        info = self.get_meta(KIND_ENCODER, name)
        if info is None or info.get("type") != "zstd-dict":
            return None
        comp = encoders.ZstdDictCompressor(
            name, info["dict"], level=info["level"], id=info["id"]
        )
        self._compressors[name] = comp
        self._compressors_by_id[comp.id] = comp  # type: ignore[index]
        return comp

    def _compressor_by_id(self, cid: int) -> encoders.Compressor:
        comp = self._compressors_by_id.get(cid)
        if comp is None:
            for name, info in self.iter_meta(KIND_ENCODER):
                if info.get("id") == cid:
                    comp = self._load_compressor(name[0])
                    break
        if comp is None:
            raise ConfigError(
                f"a value names compressor id {cid}, which this store does not "
                "know; register the custom compressor with store.add_encoder()"
            )
        return comp

    def train_compressor(
        self,
        name: str,
        samples: Any,
        *,
        size: int = 8192,
        level: int = 3,
    ) -> encoders.ZstdDictCompressor:
        """Train a zstd dictionary on ``samples`` (encoded records, bytes).

        The dictionary is stored in this store's metadata under ``name`` and
        registered, so values compressed with it stay readable after reopen.
        Pass the result as a collection's ``compressor``.
        """
        if self.get_meta(KIND_ENCODER, name) is not None or name in self._compressors:
            raise NameInUse(f"a compressor named {name!r} already exists")
        comp = encoders.ZstdDictCompressor(
            name, encoders.train_zstd_dict(samples, size), level=level
        )
        self.add_encoder(comp)
        return comp

    # -- consistency ------------------------------------------------------

    def check(self) -> Any:
        """Re-derive every index entry of the live collections; see acid.check."""
        from acid.collection import check

        return check(self)
