"""The Store: transactions, metadata, counters, schema and the key prefix.

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

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from acid import _layout, _ops, _ttl, encoders, keylib
from acid._layout import (
    KIND_COUNTER,
    KIND_ENCODER,
    KIND_INDEX,
    KIND_STRUCT,
    KIND_TABLE,
    KINDS,
    Space,
)
from acid._retry import (
    Backoff,
    check_fn,
    check_result,
    check_retries,
    retrying,
    transactional,
)
from acid._schema import Schema
from acid._txn import (
    Block,
    TxnContext,
    TxnContextLike,
    abort,
    active,
    alone,
    before_commit,
    check_ended,
    context_for,
    on_abort,
    pending_hook,
    run_alone,
)
from acid.engines import check_timeout
from acid.errors import (
    ConfigError,
    CorruptionError,
    NameInUse,
    NotFound,
    TxnError,
)

if TYPE_CHECKING:
    from acid.blobs import BlobStore
    from acid.collection import Collection
    from acid.engines import Engine, Txn

__all__ = [
    "KIND_COUNTER",
    "KIND_ENCODER",
    "KIND_INDEX",
    "KIND_STRUCT",
    "KIND_TABLE",
    "CheckReport",
    "Space",
    "Store",
    "Backoff",
    "TxnContext",
    "abort",
    "transactional",
]

T = TypeVar("T")


def _counter_value(name: str, raw: bytes) -> int:
    try:
        value = keylib.unpack(raw)
    except (ValueError, TypeError) as exc:
        raise CorruptionError(f"counter {name!r} holds unreadable bytes") from exc
    if len(value) != 1 or type(value[0]) is not int:
        raise CorruptionError(f"counter {name!r} holds {value!r}, not an integer")
    return value[0]


class _Counts:
    """Counter additions of one write transaction, written when it commits
    (a hook of :func:`acid._txn.before_commit`). One per transaction, shared
    by every store writing in it: stores over one engine may share keys."""

    __slots__ = ("cells", "txn")

    def __init__(self, txn: Txn) -> None:
        self.txn = txn
        #: counter key -> [sum of additions, initial value if missing]
        self.cells: dict[bytes, list[int]] = {}

    def settle(self, key: bytes) -> None:
        """Write the pending sum of the counter at ``key`` now.

        The cell stays, zeroed: a writer may hold it (:meth:`Store.count_cell`).
        """
        cell = self.cells.get(key)
        if cell is not None and cell[0]:
            n, cell[0] = cell[0], 0
            self._write(key, n, cell[1])

    def __call__(self) -> None:
        for key, (n, init) in self.cells.items():
            if n:
                self._write(key, n, init)
        self.cells.clear()

    def _write(self, key: bytes, n: int, init: int) -> None:
        txn = self.txn
        raw = txn.get(key)
        value = init if raw is None else _counter_at(key, raw)
        txn.put(key, keylib.pack((value + n,)))


def _counter_at(key: bytes, raw: bytes) -> int:
    """The value of the counter at raw ``key``: :func:`_counter_value`
    with the usual case first and its name made only for an error."""
    try:
        value = keylib.unpack(raw)
    except (ValueError, TypeError):
        value = None
    if type(value) is tuple and len(value) == 1 and type(value[0]) is int:
        return value[0]
    return _counter_value(key.hex(), raw)


def _name_tuple(name: Any) -> tuple[Any, ...]:
    return name if isinstance(name, tuple) else (name,)


@dataclass
class CheckReport:
    """What :func:`acid.check` found. ``ok`` is true when nothing is wrong."""

    #: (collection, index, index tuple, record key) entries that should exist.
    missing: list[tuple[str, str, tuple, tuple]] = field(default_factory=list)
    #: (collection, index, index tuple, record key) entries that should not.
    stale: list[tuple[str, str, tuple, tuple]] = field(default_factory=list)
    #: (collection, index) stored indexes with no live function to check.
    unchecked: list[tuple[str, str]] = field(default_factory=list)
    #: (collection, stored record count, actual record count) that differ.
    miscounted: list[tuple[str, int, int]] = field(default_factory=list)
    checked_entries: int = 0
    #: Ids of the indexes checked so far.
    checked_indexes: set[int] = field(default_factory=set, repr=False)
    #: Ids of the collections whose record count was checked so far.
    checked_counts: set[int] = field(default_factory=set, repr=False)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.stale or self.miscounted)


class Store:
    """Access to one engine's key space (or the part of it under ``prefix``).

    ``engine`` is an :class:`acid.engines.Engine` (see :func:`acid.open`).
    ``prefix`` (bytes, or str encoded as UTF-8) is put in front of every key
    this store writes, so several stores can share one engine.

    The methods under "for the layers above" are the interface that
    :class:`~acid.Collection` and :class:`~acid.Index` use; applications
    rarely need them.
    """

    def __init__(
        self,
        engine: Engine,
        txn_context: TxnContextLike | None = None,
        prefix: bytes | str = b"",
        *,
        clock: Callable[[], float] | None = None,
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
        if clock is not None and not callable(clock):
            raise TypeError(f"clock must be callable, not {type(clock).__name__}")
        self.engine = engine
        self.prefix = bytes(prefix)
        #: Seconds as a float, for expiry (``time.time`` unless given).
        self.clock: Callable[[], float] = (
            time.time if clock is None else _ttl.checked_clock(clock)
        )
        #: Where the active transaction lives (shared by stores on one engine).
        self.context: TxnContextLike = txn_context or context_for(engine)
        #: The encoders and compressors this store knows.
        self.registry = encoders.Registry()
        self._meta_prefix = keylib.pack((Space.META.value,), self.prefix)
        self._counter_prefix = keylib.pack((Space.COUNTER.value,), self.prefix)
        #: Where the schema token lives (see :mod:`acid._schema`).
        self.schema_key = keylib.pack((Space.SCHEMA.value,), self.prefix)
        #: Live objects and the schema token (see :mod:`acid._schema`).
        self.schema = Schema(self)
        #: The counter additions of the last write transaction that made
        #: some (see :meth:`counter_add`); a cache of its commit hook.
        self._counts: _Counts | None = None

    def __repr__(self) -> str:
        return f"<acid.Store engine={self.engine!r} prefix={self.prefix!r}>"

    def close(self) -> None:
        """Close the engine. The store is unusable afterwards."""
        self.engine.close()

    def sync(self) -> None:
        """Make every committed transaction durable now: the memory engine
        with a file and ``sync=manual`` writes its snapshot; engines that
        are durable at each commit do nothing."""
        self.engine.flush()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- transactions -----------------------------------------------------

    def begin(self, write: bool = False, *, timeout: float | None = None) -> Block:
        """A context manager running its block in a new transaction.

        The block commits when it ends normally; an exception aborts and
        propagates; :func:`acid.abort` aborts and leaves the block quietly.
        ``timeout`` (seconds; ``inf`` waits without limit) bounds the wait for
        another writer.
        """
        if timeout is not None:
            timeout = check_timeout(timeout)  # now, not when the block starts
        return Block(self.engine, self.context, bool(write), timeout)

    @property
    def txn(self) -> Txn | None:
        """The active transaction in this context, or ``None``."""
        return active(self.context)

    def in_txn(self, func: Callable[[], T], write: bool = False) -> T:
        """Run ``func()`` in the active transaction, or in a new one.

        Joining a read transaction with ``write=True`` raises ``TxnError``.
        """
        txn = self.context.get()
        if txn is None or txn.ended:  # ended: inherited by a task, see _txn.active
            if txn is not None:
                check_ended(txn)
            return run_alone(self.engine, self.context, bool(write), func)
        if write and not txn.write:
            raise TxnError(
                "a write needs a write transaction, but a read transaction is "
                "active; use store.begin(write=True)"
            )
        return func()

    def transact(
        self,
        fn: Callable[..., T],
        /,
        *args: Any,
        retries: int = 10,
        backoff: Backoff | None = None,
        **kwargs: Any,
    ) -> T:
        """Run ``fn(*args, **kwargs)`` in a write transaction; return its value.

        When the transaction fails with a retryable error (``ConflictError``
        from an engine with concurrent writers, ``TxnTimeout`` waiting for
        the writer lock), it runs again, up to ``retries`` more times,
        waiting as ``backoff`` says (an :class:`acid.Backoff`); then the last
        error propagates with ``attempts`` set. Any other error aborts and
        propagates at once; :func:`acid.abort` aborts and returns ``None``.
        Inside an active write transaction ``fn`` simply joins it, once: a
        part of a transaction is never retried.

        ``fn`` may run several times, so it must not have effects outside the
        store (or they must be safe to repeat).

        >>> import acid
        >>> store = acid.open("skiplist:/")
        >>> store.transact(lambda: store.count("n", 5))
        1
        >>> store.count("n", 0)
        6
        """
        policy = check_retries(retries, backoff)
        check_fn(fn)
        txn = active(self.context)
        if txn is not None:
            if not txn.write:
                raise TxnError(
                    "transact() needs a write transaction, but a read transaction "
                    "is active; call it outside the block or use begin(write=True)"
                )
            result = fn(*args, **kwargs)
            check_result(fn, result)
            return result
        return retrying(lambda: self._attempt(fn, args, kwargs), retries, policy)

    def _attempt(self, fn: Callable[..., T], args: Any, kwargs: Any) -> T:
        result = None
        with self.begin(write=True):
            result = fn(*args, **kwargs)
            check_result(fn, result)
        return result  # type: ignore[return-value]  # None after acid.abort()

    def active(self) -> Txn:
        """The active transaction; only for code running inside :meth:`in_txn`."""
        txn = self.context.get()
        assert txn is not None, "called outside in_txn()"
        return txn

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
        return self.bump(name, n, init)

    def bump(self, name: str, n: int | None = 1, init: int = 1) -> int:
        """:meth:`count` without argument checks, for acid's own counters."""
        key = keylib.pack((name,), self._counter_prefix)

        def run() -> int:
            txn = self.active()
            counts = pending_hook(txn, _Counts)
            if counts is not None:  # writes deferred by counter_add land first
                counts.settle(key)
            raw = txn.get(key)
            value = init if raw is None else _counter_value(name, raw)
            if n:
                txn.put(key, keylib.pack((value + n,)))
            return value

        return self.in_txn(run, write=bool(n))

    def counter_key(self, name: str) -> bytes:
        """The raw key of the counter ``name``, for :meth:`counter_add`."""
        return keylib.pack((name,), self._counter_prefix)

    def counter_add(self, txn: Txn, key: bytes, n: int, init: int) -> None:
        """Add ``n`` to the counter at ``key`` (from :meth:`counter_key`) in
        the write txn ``txn``, for the write paths of the layers above.

        The additions are summed in memory and each counter is written once,
        just before ``txn`` commits (dropped if it aborts); :meth:`bump` on
        that counter in ``txn`` writes the pending sum first, so reads see
        it. This adds nothing to the engine's work per record. In the
        transaction of an autocommit write (:func:`acid._txn.run_alone`) it
        writes at once instead: there are only a few records to count.
        """
        if txn is alone[0]:
            raw = txn.get(key)
            value = init if raw is None else _counter_at(key, raw)
            txn.put(key, keylib.pack((value + n,)))
            return
        counts = self._counts
        if counts is None or counts.txn is not txn:
            counts = self._counts = before_commit(txn, _Counts, _Counts)
        cells = counts.cells
        cell = cells.get(key)
        if cell is None:
            cells[key] = [n, init]
        else:
            cell[0] += n

    def count_cell(self, txn: Txn, key: bytes, init: int) -> list[int] | None:
        """The pending-additions cell of the counter at ``key`` in write
        transaction ``txn`` (``[sum, initial value]``): adding to its first
        item is :meth:`counter_add`, without the call. It stays valid until
        ``txn`` ends. ``None`` in the transaction of an autocommit write,
        where :meth:`counter_add` writes at once."""
        if txn is alone[0]:
            return None
        counts = self._counts
        if counts is None or counts.txn is not txn:
            counts = self._counts = before_commit(txn, _Counts, _Counts)
        cell = counts.cells.get(key)
        if cell is None:
            cell = counts.cells[key] = [0, init]
        return cell

    def counter_peek(self, txn: Txn, key: bytes, init: int) -> int:
        """The value of the counter at ``key`` in ``txn``, additions of
        :meth:`counter_add` still pending included; nothing is written."""
        raw = txn.get(key)
        value = init if raw is None else _counter_at(key, raw)
        counts = pending_hook(txn, _Counts)
        if counts is not None:
            cell = counts.cells.get(key)
            if cell is not None:
                value += cell[0]
        return value

    def _drop_counter(self, name: str) -> None:
        txn = self.active()
        key = keylib.pack((name,), self._counter_prefix)
        counts = pending_hook(txn, _Counts)
        cell = None if counts is None else counts.cells.get(key)
        if cell is not None:
            cell[0] = 0  # zeroed, not removed: a writer may hold it
        txn.delete(key)

    # -- metadata ---------------------------------------------------------

    def _meta_key(self, kind: str, name: Any) -> bytes:
        if kind not in KINDS:
            raise ValueError(f"unknown metadata kind {kind!r}; use one of {KINDS}")
        return keylib.pack((kind, *_name_tuple(name)), self._meta_prefix)

    def get_meta(self, kind: str, name: Any) -> dict[str, Any] | None:
        """The metadata dict stored for ``(kind, name)``, or ``None``."""
        key = self._meta_key(kind, name)

        def run() -> dict[str, Any] | None:
            raw = self.active().get(key)
            return None if raw is None else _layout.meta_decode(raw)

        return self.in_txn(run)

    def set_meta(self, kind: str, name: Any, dct: dict[str, Any] | None) -> None:
        """Replace the metadata for ``(kind, name)`` with ``dct`` (None deletes).

        Values must be key-encodable (None, bool, int, float, str, bytes, ...).
        """
        key = self._meta_key(kind, name)
        value = None if dct is None else _layout.meta_encode(dct)

        def run() -> None:
            txn = self.active()
            if value is None:
                txn.delete(key)
            else:
                txn.put(key, value)

        self.in_txn(run, write=True)

    def iter_meta(self, kind: str) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
        """Every ``(name tuple, dict)`` stored under ``kind``, in name order."""
        start, stop = keylib.prefix_range((kind,), self._meta_prefix)

        def run() -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
            out = []
            for k, v in self.active().iter(start):
                if k >= stop:
                    break
                name = keylib.unpack(k, self._meta_prefix)[1:]
                out.append((name, _layout.meta_decode(v)))
            return out

        return self.in_txn(run)

    # -- collections ------------------------------------------------------

    def add_collection(self, name: str, **kwargs: Any) -> Collection:
        """Shorthand for ``acid.Collection(self, name, **kwargs)``."""
        from acid.collection import Collection  # the one upward reference

        return Collection(self, name, **kwargs)

    def blobs(self, name: str, **kwargs: Any) -> BlobStore:
        """Shorthand for ``acid.blobs.BlobStore(self, name, **kwargs)``."""
        from acid.blobs import BlobStore  # upward, as add_collection

        return BlobStore(self, name, **kwargs)

    def collections(self) -> list[str]:
        """Names of the collections stored here, in order."""
        return [n[0] for n, _ in self.iter_meta(KIND_TABLE)]

    def __getitem__(self, name: str) -> Collection:
        """The newest live Collection object declared for ``name``.

        Raises ``KeyError`` when this store has no live object for it.
        """
        for coll in self.schema.newest():
            if coll.name == name and coll.attached:
                return coll
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        try:
            self[name]  # type: ignore[index]
        except KeyError:
            return False
        return True

    def rename_collection(self, old: str, new: str) -> None:
        """Rename collection ``old`` to ``new``; live Collection objects follow.

        Raises :class:`NameInUse` if ``new`` exists, :class:`NotFound` if
        ``old`` does not. Rolled back with its transaction, live objects too.
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
            self.schema.changed()
            self.set_meta(KIND_TABLE, old, None)
            self.set_meta(KIND_TABLE, new, info)
            for (_, iname), iinfo in self.index_metas(old):
                self.set_meta(KIND_INDEX, (old, iname), None)
                iinfo["collection"] = new
                self.set_meta(KIND_INDEX, (new, iname), iinfo)
            self.schema.reconcile_peers()

        self.in_txn(run, write=True)

    def drop_collection(
        self,
        name: str,
        *,
        online: bool = False,
        batch: int = 10_000,
        keep_counter: bool = False,
    ) -> None:
        """Delete collection ``name``: its records, index entries and metadata.

        One transaction (the active one, or its own); records are deleted as
        they are read, so a large collection never loads into memory. Live
        Collection objects for it refuse further use. Raises
        :class:`NotFound` when there is no such collection.

        With ``online=True`` (outside any transaction) the collection
        disappears in one short transaction and its keys are then deleted
        in transactions of ``batch`` keys; an interrupted purge is finished
        by :meth:`finish_drops`.

        The collection's key counter goes too when no other collection uses
        it, unless ``keep_counter`` (its value may belong to someone else).
        """
        if online:
            _ops.refuse_in_txn(self, "an online drop")

        def run() -> None:
            info = self.get_meta(KIND_TABLE, name)
            if info is None:
                raise NotFound(f"no collection named {name!r}")
            self.schema.changed()
            spaces = [info["id"]]
            for (_, iname), iinfo in self.index_metas(name):
                spaces.append(iinfo["id"])
                if not online:
                    self.delete_range(iinfo["id"])
                self.set_meta(KIND_INDEX, (name, iname), None)
            if info.get("expiry") is not None:  # deadlines (acid/_expiry.py)
                spaces.append(info["expiry"])
            if online:
                _ops.pending_drops(self, spaces)
            else:
                self.delete_range(info["id"])
                if info.get("expiry") is not None:  # deadlines (acid/_expiry.py)
                    self.delete_range(info["expiry"])
            self.set_meta(KIND_TABLE, name, None)
            self._drop_counter(_layout.len_counter(info))
            counter = info.get("counter")
            others = [i for _, i in self.iter_meta(KIND_TABLE)]
            if (
                counter
                and not keep_counter
                and all(i.get("counter") != counter for i in others)
            ):
                self._drop_counter(counter)
            self.schema.reconcile_peers()

        self.in_txn(run, write=True)
        if online:
            self.finish_drops(batch=batch)

    def finish_drops(self, *, batch: int = 10_000) -> int:
        """Delete the keys of collections and indexes dropped online, in
        transactions of ``batch`` keys; returns how many were deleted."""
        return _ops.finish_drops(self, batch=batch)

    def index_metas(self, coll_name: str) -> list[tuple[tuple[Any, ...], dict]]:
        """``((collection, index), info)`` of every stored index of a collection."""
        return [(n, d) for n, d in self.iter_meta(KIND_INDEX) if n[0] == coll_name]

    # -- encoders and compressors -----------------------------------------

    def add_encoder(self, encoder: encoders.Encoder | encoders.Compressor) -> None:
        """Register an encoder or compressor so collections can find it by name.

        A compressor without an id gets a persistent one from the store's
        registry (the same name always maps to the same id in this store).
        A registration made in a transaction that aborts is undone.
        """
        if isinstance(encoder, encoders.Compressor):
            self.register_compressor(encoder)
        elif isinstance(encoder, encoders.Encoder):
            if self.registry.add_encoder(encoder):
                txn = active(self.context)
                if txn is not None:
                    on_abort(txn, lambda: self.registry.remove_encoder(encoder))
        else:
            raise TypeError(
                f"expected an acid.encoders.Encoder or Compressor, "
                f"got {type(encoder).__name__}"
            )

    def register_compressor(self, comp: encoders.Compressor) -> None:
        """Register ``comp``, giving it its persistent id in this store.

        A compressor made with an ``id`` keeps it if this store has not given
        that id (or that name) to another; otherwise ``ConfigError``.
        """
        if self.registry.compressor(comp.name) is comp or encoders.is_builtin(comp):
            return
        if any(comp.name == c.name for c in encoders.BUILTIN_COMPRESSORS.values()):
            raise NameInUse(f"{comp.name!r} is a built-in compressor name")
        wanted = comp.id

        def run() -> int:
            info = self.get_meta(KIND_ENCODER, comp.name)
            if info is not None:
                cid = int(info["id"])
            else:
                cid = wanted if wanted is not None else self._next_compressor_id()
                self._check_compressor_id(comp.name, cid)
            if wanted is not None and wanted != cid:
                raise ConfigError(
                    f"compressor {comp.name!r} has id {wanted}, but this store "
                    f"registered that name as id {cid}"
                )
            if info is None:
                meta: dict[str, Any] = {"id": cid, "kind": "compressor"}
                if isinstance(comp, encoders.ZstdDictCompressor):
                    meta.update(type="zstd-dict", dict=comp.dict_data, level=comp.level)
                self.schema.changed()
                self.set_meta(KIND_ENCODER, comp.name, meta)
            return cid

        cid = self.in_txn(run, write=True)
        comp.id = cid
        self.registry.add_compressor(comp)
        txn = active(self.context)
        if txn is not None:

            def undo() -> None:
                self.registry.remove_compressor(comp)
                comp.id = wanted

            on_abort(txn, undo)

    def _next_compressor_id(self) -> int:
        taken = {i["id"] for _, i in self.iter_meta(KIND_ENCODER)}
        cid = self.bump(_layout.COMPRESSOR_COUNTER, 1, encoders.FIRST_CUSTOM_ID)
        while cid in taken:  # an id chosen by a compressor made with one
            cid = self.bump(_layout.COMPRESSOR_COUNTER, 1, encoders.FIRST_CUSTOM_ID)
        return cid

    def _check_compressor_id(self, name: str, cid: int) -> None:
        if not encoders.FIRST_CUSTOM_ID <= cid <= encoders.MAX_COMPRESSOR_ID:
            raise ConfigError(
                f"compressor {name!r}: custom compressor ids are "
                f"{encoders.FIRST_CUSTOM_ID}-{encoders.MAX_COMPRESSOR_ID}, got {cid}"
                if cid < encoders.FIRST_CUSTOM_ID
                else "too many compressors registered in this store"
            )
        for other, info in self.iter_meta(KIND_ENCODER):
            if info.get("id") == cid:
                raise ConfigError(
                    f"compressor {name!r}: id {cid} belongs to {other[0]!r} here"
                )

    def resolve_encoder(self, value: encoders.Encoder | str) -> encoders.Encoder:
        """An encoder given itself or its registered name."""
        if isinstance(value, str):
            found = self.registry.encoder(value)
            if found is None:
                raise NotFound(
                    f"no encoder named {value!r}; register it with store.add_encoder()"
                )
            return found
        if not isinstance(value, encoders.Encoder):
            raise TypeError("encoder must be an acid.encoders.Encoder or its name")
        return value

    def resolve_compressor(
        self, value: encoders.Compressor | str
    ) -> encoders.Compressor:
        """A registered compressor given itself (registering it) or its name."""
        if isinstance(value, str):
            found = self.compressor(value)
            if found is None:
                raise NotFound(
                    f"no compressor named {value!r}; register it with "
                    "store.add_encoder()"
                )
            return found
        if not isinstance(value, encoders.Compressor):
            raise TypeError(
                "compressor must be an acid.encoders.Compressor or its name"
            )
        self.add_encoder(value)
        return value

    def get_encoder(self, name: str) -> encoders.Encoder | encoders.Compressor:
        """The registered encoder or compressor called ``name``.

        Trained zstd dictionaries stored in this store are loaded on demand.
        Raises :class:`NotFound` when there is none.
        """
        found = self.registry.encoder(name) or self.compressor(name)
        if found is None:
            raise NotFound(
                f"no encoder or compressor named {name!r}; register it with "
                "store.add_encoder()"
            )
        return found

    def compressor(self, name: str) -> encoders.Compressor | None:
        """The compressor called ``name``, loading a stored zstd dictionary."""
        found = self.registry.compressor(name)
        if found is not None:
            return found
        info = self.get_meta(KIND_ENCODER, name)
        if info is None or info.get("type") != "zstd-dict":
            return None
        comp = encoders.ZstdDictCompressor(
            name, info["dict"], level=info["level"], id=info["id"]
        )
        self.registry.add_compressor(comp)
        return comp

    def compressor_by_id(self, cid: int) -> encoders.Compressor | None:
        """The compressor whose values start with byte ``cid``, or ``None``."""
        comp = self.registry.compressor_by_id(cid)
        if comp is None:
            for name, info in self.iter_meta(KIND_ENCODER):
                if info.get("id") == cid:
                    comp = self.compressor(name[0])
                    if comp is None:
                        raise ConfigError(
                            f"values here use the custom compressor {name[0]!r} "
                            f"(id {cid}); register it with store.add_encoder() "
                            "before reading them"
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
        known = self.registry.compressor(name)
        if known is not None or self.get_meta(KIND_ENCODER, name) is not None:
            raise NameInUse(f"a compressor named {name!r} already exists")
        comp = encoders.ZstdDictCompressor(
            name, encoders.train_zstd_dict(samples, size), level=level
        )
        self.add_encoder(comp)
        return comp

    # -- for the layers above: ids, key ranges, live objects, schema --------

    def space(self, space_id: int) -> bytes:
        """The raw key prefix of a collection's or index's key space."""
        return keylib.pack((space_id,), self.prefix)

    def iter_space(self, space_id: int) -> Iterator[tuple[bytes, bytes]]:
        """Raw ``(key, value)`` pairs of one key space, in the active txn."""
        start, stop = keylib.prefix_range((space_id,), self.prefix)
        for k, v in self.active().iter(start):
            if k >= stop:
                return
            yield k, v

    def delete_range(self, space_id: int) -> int:
        """Delete every key of one key space in the active write txn."""
        txn = self.active()
        n = 0
        for k, _ in self.iter_space(space_id):
            txn.delete(k)
            n += 1
        return n

    # -- operations: counters, statistics, backup ---------------------------

    def counters(self) -> dict[str, int]:
        """Every counter stored here, by name (acid's own ``"\\x00..."`` too)."""

        def run() -> dict[str, int]:
            out = {}
            for k, v in self.iter_space(Space.COUNTER.value):
                name = keylib.unpack(k, self.prefix)[1]
                out[name] = _counter_value(name, v)
            return out

        return self.in_txn(run)

    def stats(self) -> dict[str, Any]:
        """Store and engine statistics, as plain values (JSON-friendly).

        Store-level counts come from one read transaction: per collection its
        record count and bytes, per index its entry count. ``engine`` holds
        what the engine reports about itself (``engine.stats()``, when the
        engine has it).
        """
        return _ops.stats(self)

    def backup(self, dest: str, *, batch: int = 10_000) -> dict[str, Any]:
        """Copy the whole engine, consistently, to ``dest`` while writers go on.

        ``dest`` is an engine URL, or a path meaning the source's own engine
        kind. LMDB to a path uses LMDB's compacting copy; any other pair
        copies one read snapshot in write transactions of ``batch`` keys.
        ``dest`` must not exist yet (or be an empty store). Returns what was
        copied: ``{"method": ..., "keys": n}``.
        """
        return _ops.backup(self.engine, dest, batch=batch)

    # -- expiry -----------------------------------------------------------

    def expire(self, batch: int = 1000) -> int:
        """Delete the expired records of every collection declared in this
        process (``coll.expire()`` each) and the expired blobs of every blob
        store (``blobs.expire()``, which reads every header); return how many.

        Outside a block each collection is swept in transactions of at most
        ``batch`` records; the cost is O(expired), not O(records). Expired
        records are invisible anyway: this gives their space back.
        """
        self.schema.refresh()
        n = sum(
            coll.expire(batch)
            for coll in self.schema.newest()
            if coll.attached and coll.expiry is not None
        )
        for (name,), _ in self.iter_meta(_layout.KIND_BLOBS):
            n += self.blobs(name).expire()
        return n

    # -- consistency ------------------------------------------------------

    def check(self) -> CheckReport:
        """Re-derive every index entry of the live collections.

        Runs in one read transaction (or the active one). Stored indexes with
        no live declared function are listed as ``unchecked``.
        """
        return self.in_txn(self._check)

    def _check(self) -> CheckReport:
        self.schema.refresh()  # indexes dropped or added elsewhere
        report = CheckReport()
        schema = self.schema
        for coll in [*schema.newest(), *schema.live_collections()]:  # newest first
            if coll.attached:
                coll.check(report)
        for (cname, iname), info in self.iter_meta(KIND_INDEX):
            if info["id"] not in report.checked_indexes:
                report.unchecked.append((cname, iname))
        return report


def open_url(
    url: str,
    trace_path: Any = None,
    txn_context: Any = None,
    *,
    prefix: bytes | str = b"",
    clock: Callable[[], float] | None = None,
) -> Store:
    """Open the engine at ``url`` (wrapped in the trace engine when
    ``trace_path`` is given) and return a Store over it; :func:`acid.open`
    and :func:`acid.aio.open` both come here. Whatever fails, the engine is
    closed again (a LevelDB directory stays unlocked)."""
    from acid import engines

    engine = engines.from_url(url)
    try:
        if trace_path is not None:
            from acid.engines.trace import TraceEngine

            engine = TraceEngine(engine, trace_path)
        return Store(engine, txn_context=txn_context, prefix=prefix, clock=clock)
    except BaseException:
        engine.close()
        raise
