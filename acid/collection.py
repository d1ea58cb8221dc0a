"""Collections: records under tuple keys, with their indexes kept in step.

A record lives at ``prefix + pack((collection_id,) + key)``; its value is one
byte naming the compressor, then the compressed encoder output.

>>> import acid
>>> store = acid.open("skiplist:/")
>>> users = store.add_collection("users", key_func=lambda u: u["id"])
>>> by_age = users.add_index("age", lambda u: u["age"])
>>> users.put({"id": 7, "age": 30})
(7,)
>>> users.get(7)
{'id': 7, 'age': 30}
>>> list(by_age.keys(lo=18))
[(7,)]
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from acid import _facade, _fields, _online, _ops, _query, _ttl, encoders, keylib
from acid._atomic import AtomicOps
from acid._bulk import Batch, changes, forget_entry
from acid._expiry import Expiry, ExpiryOps
from acid._facade import COUNT_UNKNOWN
from acid._layout import KIND_INDEX, KIND_TABLE, SEP, ValueCodec, len_counter
from acid._txn import check_ended, inherited, run_alone, spoil
from acid.errors import (
    ConfigError,
    ConstraintError,
    CorruptionError,
    NameInUse,
    NotFound,
    SchemaError,
    TxnError,
)
from acid.index import Entries, Index, index_meta
from acid.query import Query
from acid.store import CheckReport

if TYPE_CHECKING:
    from acid.engines import Txn
    from acid.store import Store

__all__ = ["CheckReport", "Collection", "add_index", "check"]

_NONE: tuple[bytes, ...] = ()
#: What ``_ok_txn`` holds when no transaction passed the checks: never the
#: active transaction, ``None`` (no transaction) included.
_NO_TXN = object()
_SPOILED = (
    "an earlier write in this transaction failed and could not be undone; "
    "the transaction can only be aborted (leave its block)"
)
# Module globals for the put path: one dict lookup instead of two.
_SCALARS = _query.SCALARS
_pack = keylib.pack

# The C write path (acid/_writepath.c): the hot part of put, used with the C
# key encoder. The Python code of put below is its reference and its
# fallback, and runs every case it leaves out (see Collection._make_plan).
_cput: Callable[..., tuple[Any, ...]] | None = None
_LOST: BaseException | None = None  # its error when it cannot say what to undo
_prepare_many: Callable[..., Any] = None  # type: ignore[assignment]
_new_pairs: Callable[..., list[tuple[bytes, bytes]]] = None  # type: ignore[assignment]
if keylib.IMPLEMENTATION == "c":
    try:
        from acid import _writepath

        _cput, _LOST = _writepath.put, _writepath.LOST
        _prepare_many = _writepath.prepare_many
        _new_pairs = _writepath.new_pairs
    except ImportError:  # pragma: no cover - built with the C key encoder
        pass


class _PutPy:
    """What :class:`Collection` derives from without the C extension (with
    it, ``acid._writepath.PutBase``, whose ``put`` runs the C path without a
    Python frame and hands everything else to ``Collection._put``)."""


_PutBase: type = _PutPy
if _cput is not None:
    _PutBase = _writepath.PutBase

#: What ``_fast`` holds when put cannot take the C path: ``(transaction it
#: serves, plan, count cell, undo slot)``.
_NO_FAST: tuple[Any, Any, Any, Any] = (_NO_TXN, None, None, None)


def _key_kind(key_func: Any) -> str:
    return "auto" if key_func is None else "func"


class Collection(_PutBase, AtomicOps, ExpiryOps):
    """Records of one kind in a :class:`~acid.Store`, with their indexes.

    ``info`` is the collection's name. ``key_func(rec)`` makes a record's
    key (a tuple, or a value wrapped into a 1-tuple); without it keys come
    from the counter ``counter_name`` (default ``"key:<name>"``), 1, 2, 3...
    ``encoder`` defaults to :data:`acid.encoders.JSON` (or to the encoder the
    collection was created with); ``compressor`` to the one it last used, else
    :data:`acid.encoders.PLAIN`.

    What changes how records are written is stored with the collection and
    checked when it is opened again: the encoder, the counter, and whether
    keys come from a ``key_func`` or a counter. A mismatch raises
    :class:`~acid.errors.ConfigError` naming both values.

    The atomic operations ``add``, ``replace``, ``cas``, ``seize``, ``incr``
    and ``append`` come from :class:`acid._atomic.AtomicOps`, expiry from
    :class:`acid._expiry.ExpiryOps`.
    """

    def __init__(
        self,
        store: Store,
        info: str,
        key_func: Callable[[Any], Any] | None = None,
        encoder: encoders.Encoder | str | None = None,
        compressor: encoders.Compressor | str | None = None,
        counter_name: str | None = None,
        *,
        ttl: Any = None,
    ) -> None:
        name = info
        if not isinstance(name, str) or not name:
            raise TypeError("a collection name must be a non-empty str")
        if key_func is not None and not callable(key_func):
            raise TypeError("key_func must be callable")
        if counter_name is not None and (
            not isinstance(counter_name, str) or not counter_name
        ):
            raise TypeError("counter_name must be a non-empty str")
        _ttl.check_ttl(ttl)
        self.store = store
        self.name = name
        self.key_func = key_func
        #: The declared indexes whose metadata is stored, by name.
        self.indices: dict[str, Index] = {}
        self._indexes: tuple[Index, ...] = ()
        # Every Index object declared here, by name, newest last: an abort
        # may bring back one that a later declaration replaced.
        self._declared: dict[str, list[Index]] = {}
        self._detached: str | None = None
        self._refusal: Callable[[], None] | None = None
        # The write transaction in which this object last passed its checks
        # (schema token, declared indexes): writes in it skip them.
        self._ok_txn: object = _NO_TXN
        # The same for the C path of put, with what it needs in that
        # transaction, in one tuple so that a thread reads all of it at once.
        self._fast: tuple[Any, Any, Any, Any] = _NO_FAST
        self._plan: tuple[Any, ...] | None = None
        enc = None if encoder is None else store.resolve_encoder(encoder)
        comp = None if compressor is None else store.resolve_compressor(compressor)
        store.schema.check_format()  # a newer layout is refused at open
        meta = store.get_meta(KIND_TABLE, name)
        if meta is None:
            meta = store.in_txn(
                lambda: self._create(enc, comp, counter_name), write=True
            )
        _check_meta(name, meta)
        self._check_config(meta, enc, counter_name)
        if enc is None:
            enc = self._stored_encoder(meta["encoder"])
        if comp is None:
            comp = store.resolve_compressor(meta["compressor"])
        elif comp.name != meta["compressor"]:
            self._note_compressor(comp.name)
        self.id: int = meta["id"]
        #: Random bytes naming this collection for good: an id rolled back
        #: with its transaction may come back, the uid never does.
        self.uid: bytes | None = meta.get("uid")
        self.counter_name: str = meta["counter"]
        self._len_name = len_counter(meta)
        self._len_key = store.counter_key(self._len_name)
        #: The stored-value codec: every read and write of a value uses it.
        self.codec = ValueCodec(enc, comp, store.compressor_by_id)
        #: The raw prefix of this collection's record keys.
        self.key_prefix = store.space(self.id)
        self._ctx = store.context
        # Typed Any: put and delete let ``None`` through only on their slow
        # path (``_ok_txn`` is never ``None``), which mypy cannot follow.
        self._ctx_get: Callable[[], Any] = store.context.get
        self._engine = store.engine
        self._schema = store.schema
        self._schema_key = store.schema_key
        self._engine_get = store.engine.get
        self._pack = enc.pack
        self._packer = enc.packer
        self._unpack = enc.unpack
        # Index entries come from the record as a read gives it back:
        # Encoder.exact(rec) says when that is rec itself (no decode).
        self._exact: Callable[[Any], bool] = enc.exact or self._unindexed
        self._cid = self.codec.cid
        stored_indexes = {n[1] for n, _ in store.index_metas(name)}
        self._undeclared: set[str] = stored_indexes
        self._update_refusal()
        #: Expiry state (acid/_expiry.py), or None when no record can expire.
        self.expiry: Expiry | None = None
        self.sync_expiry(meta)
        store.schema.attach(self)
        if ttl is not None:
            self.declare_ttl(ttl)

    @property
    def encoder(self) -> encoders.Encoder:
        """The encoder of this collection's records."""
        return self.codec.encoder

    @property
    def compressor(self) -> encoders.Compressor:
        """The compressor new values are written with."""
        return self.codec.compressor

    @property
    def attached(self) -> bool:
        """Whether this object still matches a stored collection."""
        return self._detached is None

    def _create(self, enc: Any, comp: Any, counter: str | None) -> dict[str, Any]:
        store = self.store
        meta = store.get_meta(KIND_TABLE, self.name)  # another writer may have won
        if meta is None:
            store.schema.changed()
            meta = {
                "name": self.name,
                "id": store.schema.allocate_id(),
                "encoder": (enc or encoders.JSON).name,
                "compressor": (comp or encoders.PLAIN).name,
                "counter": counter or f"key:{self.name}",
                "keys": _key_kind(self.key_func),
                "uid": os.urandom(8),
            }
            store.set_meta(KIND_TABLE, self.name, meta)
            store.bump(len_counter(meta), 1, -1)  # a new collection: 0 records
        return meta

    def _check_config(self, meta: dict[str, Any], enc: Any, counter: Any) -> None:
        given = {
            "encoder": None if enc is None else enc.name,
            "counter": counter,
            "keys": _key_kind(self.key_func),
        }
        args = {"encoder": "encoder", "counter": "counter_name", "keys": "key_func"}
        for prop, value in given.items():
            stored = meta.get(prop)
            if value is None or stored is None or value == stored:
                continue
            if prop == "keys":
                how = {"auto": "counter keys (no key_func)", "func": "a key_func"}
                raise ConfigError(
                    f"collection {self.name!r} was created with {how[stored]}, "
                    f"but is opened with {how[value]}; open it the same way"
                )
            raise ConfigError(
                f"collection {self.name!r} was created with {args[prop]}="
                f"{stored!r}, not {value!r}; open it with {args[prop]}={stored!r}"
            )

    def _note_compressor(self, name: str) -> None:
        # Remember the compressor last used, for the next open without one.
        txn = self.store.txn
        if txn is not None and not txn.write:
            return  # a read transaction cannot; the next open will

        def run() -> None:
            meta = self.store.get_meta(KIND_TABLE, self.name)
            if meta is not None and meta.get("compressor") != name:
                meta["compressor"] = name
                self.store.set_meta(KIND_TABLE, self.name, meta)

        self.store.in_txn(run, write=True)

    def _stored_encoder(self, name: str) -> encoders.Encoder:
        found = self.store.registry.encoder(name)
        if found is None:
            raise ConfigError(
                f"collection {self.name!r} uses encoder {name!r}, which is not "
                "registered; call store.add_encoder() before opening it"
            )
        return found

    def __repr__(self) -> str:
        state = "" if self._detached is None else " detached"
        return f"<acid.Collection {self.name!r} id={self.id}{state}>"

    # -- schema state -----------------------------------------------------

    def sync(self, info: dict[str, Any] | None, indexes: dict[str, dict]) -> None:
        """Match this object to the stored metadata (see Store.reconcile).

        ``info`` is the collection's stored metadata found by id (``None``
        when it is gone), ``indexes`` its stored indexes by name.
        """
        if info is None or info.get("uid") != self.uid:
            self._detached = (
                "it was dropped, or created in a transaction that rolled back"
            )
            self.indices, self._indexes, self._undeclared = {}, (), set()
            for objs in self._declared.values():
                for idx in objs:
                    idx.detach("its collection is gone")
            self._update_refusal()
            return
        self.name = info["name"]
        self._detached = None
        self.sync_expiry(info)
        comp = self.codec.compressor
        if (
            not encoders.is_builtin(comp)
            and self.store.registry.compressor_by_id(self._cid) is not comp
        ):
            self._detached = (
                f"its compressor {comp.name!r} was registered in a transaction "
                "that rolled back"
            )
        active: dict[str, Index] = {}
        for iname, objs in self._declared.items():
            stored = indexes.get(iname)
            for idx in reversed(objs):  # the newest declaration that matches
                same = stored is not None and (stored["id"], stored.get("uid")) == (
                    idx.id,
                    idx.uid,
                )
                if same and iname not in active:
                    active[iname] = idx
                    idx.detach(None)
                else:
                    idx.detach(
                        "it was dropped, or added in a transaction that rolled back"
                    )
        self.indices = active
        self._indexes = tuple(active.values())
        self._undeclared = set(indexes) - set(active)
        self._update_refusal()

    def _update_refusal(self) -> None:
        self._ok_txn = _NO_TXN
        running = self._fast[3]
        self._fast = _NO_FAST
        self._plan = plan = self._make_plan()
        self._getplan = (  # what PutBase.get needs (unused without C)
            None
            if self._detached is not None or _cput is None
            else (
                self.key_prefix,
                keylib.pack,
                _query.as_tuple,
                self._engine_get,
                self._unpack,
                self.codec.decode,
                self.codec.corrupt,
                check_ended,
            )
        )
        if running is not None and plan is not None:
            # A put in the C path may be running (this was called from its key
            # function or encoder): like the Python path, which reads the
            # indexes after those, it takes the new ones (see _writepath.c).
            running.append([plan[5]])
        if self._detached is not None:
            self._refusal = self._refuse_detached
        elif self._undeclared:
            self._refusal = self._refuse_undeclared
        else:
            self._refusal = None

    def _make_plan(self) -> tuple[Any, ...] | None:
        """What the C path of put needs (see acid/_writepath.c), or ``None``
        without the C extension. Puts of keys from a counter take the Python
        path."""
        if _cput is None:
            return None
        codec = self.codec
        plain = not self._cid
        add, len_key, unknown = self.store.counter_add, self._len_key, COUNT_UNKNOWN

        def count_now(txn: Txn) -> None:
            add(txn, len_key, 1, unknown)

        return (
            self.key_func,
            self._pack if plain else codec.encode,
            plain,
            self.key_prefix,
            keylib.pack,
            tuple(idx.plan_entry() for idx in self._indexes),
            codec.decode,
            SEP,
            _SCALARS,
            _query.as_tuple,
            count_now,
            self._exact,
            self._stored,
        )

    def _refuse_detached(self) -> None:
        raise SchemaError(
            f"collection {self.name!r} (id {self.id}) cannot be used: "
            f"{self._detached}. Open it again with store.add_collection()."
        )

    def _refuse_undeclared(self) -> None:
        names = ", ".join(sorted(self._undeclared))
        raise ConstraintError(
            f"collection {self.name!r} has stored indexes this Collection object "
            f"has not declared ({names}); writing through it would leave them "
            "stale. Call add_index() for each (index functions are not stored) "
            "before writing."
        )

    def _writable(self, txn: Txn) -> None:
        """Checks before a write in ``txn`` (slow path of put and delete)."""
        if not txn.write:
            raise TxnError(
                "cannot write inside a read transaction; use begin(write=True)"
            )
        schema = self._schema
        if txn is not schema.verified_txn:
            # schema.verify(txn), with the usual case inlined: nothing moved.
            token = schema.token
            if token is not None and txn.get(self._schema_key) == token:
                schema.verified_txn = txn
            else:
                schema.verify(txn)
        if self._refusal is not None:
            self._refusal()
        plan = self._plan
        if plan is not None:
            cell = self.store.count_cell(txn, self._len_key, COUNT_UNKNOWN)
            self._fast = (txn, plan, cell, [])
        self._ok_txn = txn

    def forget_txn(self) -> None:
        """Check the schema again before the next write (it may have moved)."""
        self._ok_txn = _NO_TXN
        self._fast = _NO_FAST

    # -- indexes ----------------------------------------------------------

    def add_index(
        self,
        name: str,
        func: Callable[[Any], Any],
        *,
        build: str = "now",
        batch: int = 1000,
        progress: Callable[[int, int | None], None] | None = None,
    ) -> Index:
        """Declare the index ``name`` computed by ``func(record)``.

        The index's metadata persists; the function does not, so declare it
        again each time the collection is opened. A new index on a collection
        that already has records is filled in the same transaction; if that
        fails (the function raises on a record), nothing of it is left.

        With ``build="online"`` a new index is filled in transactions of
        ``batch`` records instead, while writers go on, reporting
        ``progress(done, total)``; an interrupted build resumes when this is
        called again (see :mod:`acid._online`).
        """
        if build == "online":
            return _online.add_index_online(
                self, name, func, batch=batch, progress=progress
            )
        if build != "now":
            raise ValueError(f"build is 'now' or 'online', not {build!r}")
        if not isinstance(name, str) or not name:
            raise TypeError("an index name must be a non-empty str")
        if not callable(func):
            raise TypeError("the index function must be callable")
        store = self.store
        store.schema.refresh()  # renamed, dropped or indexed elsewhere?
        if self._detached is not None:
            self._refuse_detached()
        if name in self.indices:
            raise NameInUse(f"collection {self.name!r} already has an index {name!r}")
        info = store.get_meta(KIND_INDEX, (self.name, name))
        if info is None:
            info = store.in_txn(lambda: self._create_index(name, func), write=True)
        _check_fields(self.name, info, func)
        idx = Index(self, info, func)
        self._declared.setdefault(name, []).append(idx)
        self.indices[name] = idx
        self._indexes = tuple(self.indices.values())
        self._undeclared.discard(name)
        self._update_refusal()
        for other in store.schema.live_collections(self.id):
            if other is not self and name not in other.indices:
                other._undeclared.add(name)  # they must declare it before writing
                other._update_refusal()
        return idx

    def build_index(
        self,
        name: str,
        *,
        batch: int = 1000,
        progress: Callable[[int, int | None], None] | None = None,
    ) -> Index:
        """Finish the online build of the declared index ``name`` (from its
        stored cursor); a no-op for an index that is ready."""
        idx = self.indices.get(name)
        if idx is None:
            raise NotFound(
                f"collection {self.name!r} has no declared index {name!r}; "
                "declare it with add_index() first"
            )
        if not idx.building:
            return idx
        return _online.backfill(self, idx, batch=batch, progress=progress)

    def drop_index(
        self, name: str, *, online: bool = False, batch: int = 10_000
    ) -> None:
        """Delete the index ``name``: its entries and its metadata.

        One transaction; entries are deleted as they are read. Index objects
        for it refuse further use. Raises :class:`NotFound` when there is no
        such stored index. With ``online=True`` the entries are deleted
        afterwards in transactions of ``batch`` keys (see
        :meth:`Store.drop_collection`).
        """
        if online:
            if self.store.txn is not None:
                raise TxnError(
                    "an online drop runs its own bounded transactions; call it "
                    "outside a transaction"
                )
            self._drop_index(name, True)
            self.store.finish_drops(batch=batch)
            return
        self._drop_index(name, False)

    def _drop_index(self, name: str, online: bool) -> None:

        def run() -> None:
            store = self.store
            store.schema.refresh()
            if self._detached is not None:
                self._refuse_detached()
            info = store.get_meta(KIND_INDEX, (self.name, name))
            if info is None:
                raise NotFound(f"collection {self.name!r} has no index {name!r}")
            store.schema.changed()
            if online:
                _ops.pending_drops(store, [info["id"]])
            else:
                store.delete_range(info["id"])
            store.set_meta(KIND_INDEX, (self.name, name), None)
            store.schema.reconcile_peers()

        self.store.in_txn(run, write=True)

    def _create_index(self, name: str, func: Callable[[Any], Any]) -> dict[str, Any]:
        store = self.store
        store.schema.refresh()
        if self._detached is not None:
            self._refuse_detached()
        info = store.get_meta(KIND_INDEX, (self.name, name))
        if info is not None:
            return info
        store.schema.changed()
        info = {
            "name": name,
            "id": store.schema.allocate_id(),
            "collection": self.name,
            "uid": os.urandom(8),
            **index_meta(func),  # token and q-gram indexes: kind and q
        }
        paths = _fields.declared_paths(func)
        if paths is not None:
            info["fields"] = tuple(paths)  # for the planner, and explain()
        store.set_meta(KIND_INDEX, (self.name, name), info)
        idx = Index(self, info, func)
        txn = store.txn
        assert txn is not None
        # The iterator stays valid while the entries are written (the engine
        # contract), so the records are streamed, not loaded into a list.
        skip = len(self.key_prefix)
        try:
            for k, v in store.iter_space(self.id):
                idx.update(txn, k[skip:], _NONE, idx.entries(self.codec.decode(v)))
        except BaseException:

            def undo() -> None:
                store.delete_range(info["id"])
                store.set_meta(KIND_INDEX, (self.name, name), None)

            _roll_back(txn, undo)
            raise
        return info

    # -- writes -----------------------------------------------------------

    def put(self, rec: Any, key: Any = None, *, ttl: Any = None) -> tuple[Any, ...]:
        """Create or replace a record; return its key.

        ``key`` overrides the key function (a scalar becomes a 1-tuple).
        ``ttl``: seconds until the record expires, :data:`acid.FOREVER`, or
        ``None`` for the collection's default (see "Expiry" below).
        Index entries change in the same transaction as the record, and are
        computed from the record as stored (as ``get`` returns it: JSON
        turns a tuple into a list); a record the encoder would not give
        back whole raises ``ValueError`` (docs/guide.md). A put that fails
        (an index function or encoder that raises, a value the engine
        rejects) changes nothing, so the caller may catch the error and
        commit the rest of the transaction.
        """
        if ttl is not None:  # the first record that expires: see "Expiry"
            return self.put_with_ttl(rec, key, ttl)
        txn = self._ctx_get()
        fast = self._fast
        if txn is not fast[0] and txn is not self._ok_txn:
            # The first write of this object in txn.
            if txn is None or txn.ended:  # autocommit (ended: a task inherited it)
                if txn is not None:
                    check_ended(txn)
                return run_alone(self._engine, self._ctx, True, self.put, rec, key)
            self._writable(txn)
            fast = self._fast
        if txn is fast[0] and (key is not None or self.key_func is not None):
            # The C path: the same steps as below.
            try:
                return _cput(fast[1], txn, rec, key, fast[2], fast[3])  # type: ignore[misc]
            except BaseException as exc:
                return self._put_failed(exc, txn, rec, key, fast[3])
        # Everything that can fail without writing comes first. The key
        # function runs before the value and the entries are made: one that
        # changes the record changes both alike (as in put_many).
        auto = False  # the key comes from the counter (taken below)
        if key is None:
            if self.key_func is None:
                auto = True
            else:
                key = self.key_func(rec)
        value = self.codec.encode(rec) if self._cid else b"\x00" + self._pack(rec)
        stored = rec if self._exact(rec) else self._stored(rec, value)
        indexes = self._indexes
        if len(indexes) == 1:  # no list comprehension frame for the usual case
            new = [indexes[0].entries(stored)]
        else:
            new = [idx.entries(stored) for idx in indexes]
        counted = False
        if auto:
            if txn.ended:  # inherited by a task: the counter must not run alone
                check_ended(txn)
                return run_alone(self._engine, self._ctx, True, self.put, rec, None)
            key = (self.store.bump(self.counter_name, 1, 1),)
            counted = True
        try:
            if type(key) is not tuple:
                key = (key,) if type(key) in _SCALARS else _query.as_tuple(key)
            rkey = _pack(key)
            full = self.key_prefix + rkey
            old_value = txn.replace(full, value)
        except BaseException:
            if txn.ended and inherited(txn):  # its block ended since
                # A counter key was taken in a transaction of its own (this
                # one had ended), or in this one, now rolled back: giving it
                # back would hand it out twice. Take a new one instead.
                again = None if counted else key
                return run_alone(self._engine, self._ctx, True, self.put, rec, again)
            if counted:
                _roll_back(txn, lambda: self.store.bump(self.counter_name, -1, 1))
            raise
        old: list[Entries] | None = None
        try:
            if old_value is None:
                tail = SEP + rkey
                put = txn.put
                for entries in new:
                    for p in entries:
                        put(p + tail, rkey)
                self.store.counter_add(txn, self._len_key, 1, _facade.COUNT_UNKNOWN)
                return key
            if not indexes:
                return key
            old_rec = self._decode(old_value)  # the one decode of the old record
            if len(indexes) == 1:  # no list comprehension frame, no zip
                o = indexes[0].entries(old_rec)
                old = [o]
                if o != new[0]:  # equal entries: nothing to change
                    indexes[0].update(txn, rkey, o, new[0])
                return key
            old = [idx.entries(old_rec) for idx in indexes]
            for idx, o, n in zip(indexes, old, new, strict=True):
                if o != n:
                    idx.update(txn, rkey, o, n)
        except BaseException:

            def undo() -> None:
                _undo(txn, full, old_value, rkey, old, new, old_value is None)
                if counted:
                    self.store.bump(self.counter_name, -1, 1)

            _roll_back(txn, undo)
            raise
        return key

    def _put_failed(
        self, exc: BaseException, txn: Txn, rec: Any, key: Any, slot: list[Any]
    ) -> tuple[Any, ...]:
        """After the C path of put raised ``exc``: put back what it wrote
        (its undo state is in ``slot``) and raise ``exc``; or, if ``txn``
        came with a context whose block is over, run the put on its own."""
        if slot and type(slot[-1]) is tuple:  # what it left for this failure
            state = slot.pop()
            if len(state) != 1:  # failed after writing: put back what it wrote
                _roll_back(txn, lambda: _undo(txn, *state))
            elif txn.ended and inherited(txn):  # as in the Python path
                again = state[0]  # the key it made: the key function ran once
                return run_alone(self._engine, self._ctx, True, self.put, rec, again)
        elif exc is _LOST:  # it wrote and could not say what: only abort undoes
            spoil(txn, _SPOILED)
        raise exc

    # With the C extension, put is PutBase.put (its usual case in C, the rest
    # in _put, the code above); without it, the code above. Named put, so that
    # a bad call's TypeError names Collection.put either way.
    _put = put
    if not TYPE_CHECKING and _PutBase is not _PutPy:
        del put

    def delete(self, key: Any) -> bool:
        """Delete the record under ``key`` and its index entries.

        Returns whether there was one. A delete that fails changes nothing.
        """
        txn = self._ctx_get()
        if txn is not self._ok_txn:  # the first write of this object in txn
            if txn is None or txn.ended:  # autocommit (ended: a task inherited it)
                if txn is not None:
                    check_ended(txn)
                return run_alone(self._engine, self._ctx, True, self.delete, key)
            self._writable(txn)
        rkey = keylib.pack(_query.as_tuple(key))
        full = self.key_prefix + rkey
        indexes = self._indexes
        try:
            old_value = txn.pop(full)
        except BaseException:
            if txn.ended and inherited(txn):  # its block ended since
                return run_alone(self._engine, self._ctx, True, self.delete, key)
            raise
        if old_value is None:
            return False
        old: list[Entries] | None = None
        try:
            if indexes:
                old_rec = self._decode(old_value)
                old = [idx.entries(old_rec) for idx in indexes]
                for idx, entries in zip(indexes, old, strict=True):
                    idx.update(txn, rkey, entries, _NONE)
            self.store.counter_add(txn, self._len_key, -1, _facade.COUNT_UNKNOWN)
        except BaseException:

            def undo() -> None:
                txn.put(full, old_value)
                tail = SEP + rkey
                for entries in old or ():
                    for p in entries:
                        txn.put(p + tail, rkey)

            _roll_back(txn, undo)
            raise
        return True

    def _unindexed(self, rec: Any) -> bool:
        """``exact`` for an encoder that has none: decode while indexed."""
        return not self._indexes

    def _stored(self, rec: Any, value: bytes) -> Any:
        """``rec`` as a read of its stored ``value`` gives it back.

        Raises ``ValueError`` for a record that would not read back whole.
        """
        return self.codec.encoder.stored(rec, self.codec.decompress(value))

    def _decode(self, value: bytes) -> Any:
        """``codec.decode(value)`` with the plain case inlined (the hot path)."""
        if value and value[0] == 0:
            try:
                return self._unpack(value[1:])
            except Exception as exc:
                raise self.codec.corrupt(exc) from exc
        return self.codec.decode(value)

    # -- bulk -------------------------------------------------------------

    def put_many(self, records: Iterable[Any]) -> list[tuple[Any, ...]]:
        """Create or replace many records; return their keys, in order.

        The same as ``put`` on each record in turn (a later record under the
        same key wins), but all or nothing: if one record fails (its
        encoder, key function or an index function raises, the engine
        refuses a value), none is written, and an enclosing transaction
        keeps its earlier writes. Uses the engine's batch path.

        >>> import acid
        >>> people = acid.open("skiplist:/").add_collection("people")
        >>> people.put_many([{"name": "Ann"}, {"name": "Bob"}])
        [(1,), (2,)]
        """
        recs = _query.many(records, "records", "put_many")
        txn = self._ctx_get()
        # ended: a task inherited it from a block that ended since (a bulk
        # call is dearer than this test; put retries after the failure).
        if txn is None or txn.ended:  # autocommit
            if txn is not None:
                check_ended(txn)
            return run_alone(self._engine, self._ctx, True, self.put_many, recs)
        if txn is not self._ok_txn:
            self._writable(txn)
        if not recs:
            return []
        # Everything that can fail without writing comes first; the key
        # function first of all, as in put (it may change the record).
        key_func = self.key_func
        keys: list[tuple[Any, ...]] | None = None
        if key_func is None:
            first = self.store.bump(self.counter_name, 0, 1)  # bumped below
            keys = [(i,) for i in range(first, first + len(recs))]
        # Records the encoder may change are indexed as a read gives them
        # back, which only the Python steps below do.
        flags = list(map(self._exact, recs))
        exact = all(flags)
        plan = self._plan if exact else None
        news: list[list[Entries]] | None = None
        if plan is not None:  # the same steps in C (acid/_writepath.c)
            encode = self.codec.encode if self._cid else self._packer()
            keys, rkeys, fulls, values, news = _prepare_many(plan, recs, keys, encode)
        else:
            if keys is None:
                keys = [
                    k
                    if type(k) is tuple
                    else (k,)
                    if type(k) in _SCALARS
                    else _as_key(k)
                    for k in map(key_func, recs)  # type: ignore[arg-type]
                ]
            if self._cid:
                values = [self.codec.encode(r) for r in recs]
            else:
                pack = self._packer()
                values = [b"\x00" + pack(r) for r in recs]
            if not exact:  # index them as a read gives them
                recs = [
                    r if ok else self._stored(r, v)
                    for r, v, ok in zip(recs, values, flags, strict=True)
                ]
            rkeys = [_pack(k) for k in keys]
            kp = self.key_prefix
            fulls = [kp + k for k in rkeys]
        if key_func is None or len(set(rkeys)) == len(rkeys):  # no key twice
            last: Sequence[int] = range(len(rkeys))
        else:  # the last record under each key is the one that lands
            last = list(dict(zip(rkeys, range(len(rkeys)), strict=True)).values())
            fulls = [fulls[j] for j in last]
        if self.store.counter_peek(txn, self._len_key, _facade.COUNT_UNKNOWN):
            olds = txn.get_many(fulls)
        else:  # an empty collection (a first load): no key can exist yet
            olds = [None] * len(fulls)
        batch = Batch(txn, fulls, olds)
        if len(fulls) == len(recs) and olds.count(None) == len(olds):
            # Only new keys (a load): the pairs are all there is to write.
            if news is not None:
                pairs = batch.written = _new_pairs(fulls, values, news, rkeys, SEP)
            else:
                pairs = batch.written = list(zip(fulls, values, strict=True))
                for idx in self._indexes:
                    idx.entry_pairs(recs, rkeys, pairs)
        else:
            pairs = [(f, values[j]) for f, j in zip(fulls, last, strict=True)]
            if news is None:
                news = [idx.entries_many(recs) for idx in self._indexes]
            batch.changed = changes(news, self._entries_of(olds), rkeys, last)
        try:
            if key_func is None:
                self.store.bump(self.counter_name, len(recs), 1)
                batch.uncount = lambda: self.store.bump(self.counter_name, -len(recs))
            for _, tail, rkey, old, new in batch.changed:
                if old:
                    for p in set(old) - set(new):
                        txn.delete(p + tail)
                    new = set(new) - set(old)
                pairs.extend((p + tail, rkey) for p in new)
            txn.put_many(pairs)
            # Last: if it fails it wrote nothing, and the undo covers the rest.
            created = olds.count(None)
            if created:
                self.store.counter_add(
                    txn, self._len_key, created, _facade.COUNT_UNKNOWN
                )
        except BaseException:
            _roll_back(txn, batch.undo)
            raise
        return keys

    def get_many(self, keys: Iterable[Any], default: Any = None) -> list[Any]:
        """The records under ``keys`` (``default`` where none), in order.

        One transaction (the active one, or a read of its own), so the
        records come from one snapshot.
        """
        if self._detached is not None:
            self._refuse_detached()
        kp, as_tuple = self.key_prefix, _query.as_tuple
        keys = _query.many(keys, "keys", "get_many")
        fulls = [_pack(k if type(k) is tuple else as_tuple(k), kp) for k in keys]
        store = self.store
        values = store.in_txn(lambda: store.active().get_many(fulls))
        decode = self.codec.decode
        return [default if v is None else decode(v) for v in values]

    def delete_many(self, keys: Iterable[Any]) -> int:
        """Delete the records under ``keys``; return how many existed.

        All or nothing, as :meth:`put_many`: if one fails (an index function
        raises on a stored record), none is deleted.
        """
        kp, as_tuple = self.key_prefix, _query.as_tuple
        keys = _query.many(keys, "keys", "delete_many")
        fulls = list(dict.fromkeys(_pack(as_tuple(k), kp) for k in keys))
        txn = self._ctx_get()
        if txn is None or txn.ended:  # autocommit (ended: as in put_many)
            if txn is not None:
                check_ended(txn)
            return run_alone(self._engine, self._ctx, True, self._delete_packed, fulls)
        if txn is not self._ok_txn:
            self._writable(txn)
        return self._delete_packed(fulls)

    def _delete_packed(self, fulls: list[bytes]) -> int:
        txn = self._ctx_get()
        if txn is not self._ok_txn:  # only after run_alone began a new one
            self._writable(txn)
        olds = txn.get_many(fulls)
        before = self._entries_of(olds)  # may raise: nothing written yet
        batch = Batch(txn, fulls, olds)
        skip = len(self.key_prefix)
        try:
            for i, col in enumerate(before):
                for full, old in zip(fulls, col, strict=True):
                    if old:
                        rkey = full[skip:]
                        tail = SEP + rkey
                        batch.changed.append((i, tail, rkey, old, ()))
                        for p in old:
                            txn.delete(p + tail)
            n = 0
            for full, value in zip(fulls, olds, strict=True):
                if value is not None:
                    txn.delete(full)
                    n += 1
            if n:  # last, as in put_many
                self.store.counter_add(txn, self._len_key, -n, _facade.COUNT_UNKNOWN)
        except BaseException:
            _roll_back(txn, batch.undo)
            raise
        return n

    def _entries_of(self, values: list[bytes | None]) -> list[list[Entries]]:
        """Each index's entries of the stored ``values`` (``()`` for none)."""
        indexes = self._indexes
        if not indexes or values.count(None) == len(values):
            return []
        decode = self.codec.decode
        recs = [None if v is None else decode(v) for v in values]
        return [idx.entries_many(recs) for idx in indexes]

    # -- reads ------------------------------------------------------------

    def get(self, key: Any, default: Any = None, raw: bool = False) -> Any:
        """The record under ``key`` (a scalar is a 1-tuple), or ``default``.

        With ``raw=True``, the encoded bytes instead of the decoded record.
        """
        if self._detached is not None:
            self._refuse_detached()
        full = keylib.pack(
            key if type(key) is tuple else _query.as_tuple(key), self.key_prefix
        )
        txn = self._ctx_get()
        # An ended txn was inherited by a task from a block (see _txn.active).
        if txn is None:
            value = self._engine_get(full)
        elif txn.ended:
            check_ended(txn)
            value = self._engine_get(full)
        else:
            value = txn.get(full)
        if value is None:
            return default
        if raw:
            return self.codec.decompress(value)
        # The plain case inlined: this is the hottest read path.
        if value and value[0] == 0:
            try:
                return self._unpack(value[1:])
            except Exception as exc:
                raise self.codec.corrupt(exc) from exc
        return self.codec.decode(value)

    # With the C extension, get is PutBase.get (its usual case in C, the rest
    # in _get, the code above); without it, the code above. Named get, so that
    # a bad call's TypeError names Collection.get either way.
    _get = get
    if not TYPE_CHECKING and _PutBase is not _PutPy:
        del get

    def _scan(
        self,
        what: str,
        key: Any,
        lo: Any,
        hi: Any,
        prefix: Any,
        reverse: Any,
        max: int | None,
        include: bool,
        raw: bool = False,
    ) -> Iterator[Any]:
        if self._detached is not None:
            self._refuse_detached()
        start, stop = _query.bounds(
            self.key_prefix, key=key, lo=lo, hi=hi, prefix=prefix, include=include
        )
        decode = plain = None
        if what != "keys":
            decode = self.codec.decompress if raw else self.codec.decode
            plain = bytes if raw else self._unpack
        return _query.scan(
            self.store,
            start,
            stop,
            reverse,
            max,
            key_prefix=None if what == "values" else self.key_prefix,
            decode=decode,
            plain=plain,
        )

    def items(
        self,
        key: Any = None,
        lo: Any = None,
        hi: Any = None,
        prefix: Any = None,
        reverse: Any = False,
        max: int | None = None,
        include: bool = False,
        raw: bool = False,
    ) -> Iterator[tuple[tuple[Any, ...], Any]]:
        """Yield ``(key, record)`` in key order.

        ``key`` matches exactly; ``prefix`` is an element-wise tuple prefix;
        ``lo`` is inclusive and ``hi`` exclusive (``include=True`` also takes
        every key starting with ``hi``); ``max`` caps the count (``0`` yields
        nothing); ``raw`` yields encoded bytes instead of records.
        """
        return self._scan("items", key, lo, hi, prefix, reverse, max, include, raw)

    def keys(
        self,
        key: Any = None,
        lo: Any = None,
        hi: Any = None,
        prefix: Any = None,
        reverse: Any = None,
        max: int | None = None,
        include: bool = False,
    ) -> Iterator[tuple[Any, ...]]:
        """Yield keys in key order; arguments as for :meth:`items`."""
        return self._scan("keys", key, lo, hi, prefix, reverse, max, include)

    def values(
        self,
        key: Any = None,
        lo: Any = None,
        hi: Any = None,
        prefix: Any = None,
        reverse: Any = None,
        max: int | None = None,
        include: bool = False,
        raw: bool = False,
    ) -> Iterator[Any]:
        """Yield records in key order; arguments as for :meth:`items`."""
        return self._scan("values", key, lo, hi, prefix, reverse, max, include, raw)

    def find(
        self,
        key: Any = None,
        lo: Any = None,
        hi: Any = None,
        prefix: Any = None,
        reverse: Any = None,
        include: bool = False,
        raw: bool = False,
        default: Any = None,
    ) -> Any:
        """The first record in the range, or ``default``."""
        return next(self.values(key, lo, hi, prefix, reverse, 1, include, raw), default)

    def findkey(
        self,
        key: Any = None,
        lo: Any = None,
        hi: Any = None,
        prefix: Any = None,
        reverse: Any = None,
        include: bool = False,
        raw: bool = False,
        default: Any = None,
    ) -> Any:
        """The first key in the range, or ``default``.

        With ``raw=True`` the key comes as a :class:`acid.Key` over its
        stored bytes, decoded only when an element is read.
        """
        found = next(self.keys(key, lo, hi, prefix, reverse, 1, include), default)
        if raw and found is not default:
            return keylib.Key(*found)
        return found

    # -- the dict facade and queries (acid/_facade.py, acid/query.py) --------

    def __getitem__(self, key: Any) -> Any:
        """``coll[key]``: the record (``KeyError`` if absent); ``coll[lo:hi]``:
        ``(key, record)`` pairs, both ends included, reversed when
        ``lo > hi`` or the step is ``True``."""
        return _facade.getitem(self, key)

    def __setitem__(self, key: Any, rec: Any) -> None:
        _facade.setitem(self, key, rec)

    def __delitem__(self, key: Any) -> None:
        _facade.delitem(self, key)

    def __contains__(self, key: Any) -> bool:
        return _facade.contains(self, key)

    def __len__(self) -> int:
        """The number of records: a counter kept with every write, O(1)."""
        return _facade.length(self, self._len_name)

    def __iter__(self) -> Iterator[tuple[tuple[Any, ...], Any]]:
        return self.items()

    def cursor(
        self,
        key: Any = None,
        order: str = ">=",
        prefix: Any = None,
        keys: bool = True,
        values: bool = True,
    ) -> Iterator[Any]:
        """Iterate from ``key``: ``>=``/``>`` ascending, ``<=``/``<``
        descending; ``prefix`` a tuple prefix; ``(key, record)`` pairs, or
        only keys or records."""
        return _facade.cursor(self, key, order, prefix, keys, values)

    def multi_get(self, *keys: Any) -> list[Any]:
        """The records under ``keys`` (``None`` where absent), in one txn."""
        return _facade.multi_get(self, keys)

    def multi_get_dict(self, keys: Any) -> dict[Any, Any]:
        """``{key: record}`` for the present keys, keyed as passed."""
        return _facade.multi_get_dict(self, keys)

    def multi_delete(self, *keys: Any) -> int:
        """Delete the records under ``keys`` in one txn; return how many."""
        return _facade.multi_delete(self, keys)

    def update(self, items: Any) -> None:
        """Put ``{key: record}``, or an iterable of records, in one txn."""
        _facade.update(self, items)

    def query(self, spec: dict[str, Any] | None = None) -> Query:
        """A lazy :class:`~acid.query.Query` for ``spec`` (see docs/guide.md)."""
        return Query(self, spec)

    def match_prefix(self, prefix: str, max: int | None = None) -> list[tuple]:
        """Keys whose first element is a str starting with ``prefix``."""
        return _query.match_prefix(lambda lo: self.keys(lo=lo), prefix, max)

    def match_regex(self, pattern: Any, max: int | None = None) -> list[tuple]:
        """Keys whose first element is a str in which ``pattern`` is found."""
        return _query.match_regex(lambda lo: self.keys(lo=lo), pattern, max)

    def match_similar(
        self, origin: str, distance: int, max: int | None = None
    ) -> list[tuple]:
        """Keys whose first element is a str within ``distance`` edits
        (Levenshtein) of ``origin``, in key order."""
        return _query.match_similar(lambda lo: self.keys(lo=lo), origin, distance, max)

    # -- consistency ------------------------------------------------------

    def check(self, report: CheckReport | None = None) -> CheckReport:
        """Re-derive this collection's index entries and compare with the stored.

        Returns ``report`` (a new one by default) with what differs, as
        :func:`acid.check` does. Runs in the active or a new read txn.
        """
        report = CheckReport() if report is None else report
        if self._detached is not None:
            self._refuse_detached()
        todo = [  # a building index is incomplete by design: unchecked
            i
            for i in self._indexes
            if i.id not in report.checked_indexes and not i.building
        ]
        report.checked_indexes.update(i.id for i in todo)
        expiry = self.expiry
        if expiry is not None and expiry.space_id in report.checked_indexes:
            expiry = None  # another object of this collection checked it
        elif expiry is not None:
            report.checked_indexes.add(expiry.space_id)

        def run() -> None:
            for idx in todo:
                records = self.store.iter_space(self.id)
                idx.check(records, len(self.key_prefix), self.codec.decode, report)
            if expiry is not None:
                skip = len(self.key_prefix)
                keys = {k[skip:] for k, _ in self.store.iter_space(self.id)}
                expiry.check(keys, report)
            if self.id in report.checked_counts:
                return
            report.checked_counts.add(self.id)
            stored = self.store.bump(self._len_name, 0, _facade.COUNT_UNKNOWN)
            if stored >= 0:  # a count that is not known yet cannot be wrong
                actual = sum(1 for _ in self.store.iter_space(self.id))
                if actual != stored:
                    report.miscounted.append((self.name, stored, actual))

        self.store.in_txn(run)
        return report


def _as_key(key: Any) -> tuple[Any, ...]:
    if type(key) is tuple:
        return key
    return (key,) if type(key) in _SCALARS else _query.as_tuple(key)


def _check_fields(coll: str, info: dict[str, Any], func: Any) -> None:
    stored = tuple(info.get("fields") or ())
    given = _fields.declared_paths(func) or ()
    if stored != given:
        raise ConfigError(
            f"index {coll}.{info['name']} was created with "
            f"{_fields.describe(stored)}, but is declared with "
            f"{_fields.describe(given)}; declare it the same way, or drop_index() "
            "and add it again"
        )


def _roll_back(txn: Txn, undo: Callable[[], Any]) -> None:
    """Run ``undo`` after a failed write; if even that fails, spoil ``txn``.

    Called in an ``except`` block, whose error the caller re-raises: the
    engine's own error (``MapFullError``, say) is what the caller sees. A
    spoiled transaction cannot commit half a write: every later call in its
    block, and the block's commit, raise ``TxnError`` (see ``spoil``).
    """
    try:
        undo()
    except BaseException:  # the transaction is unusable: it can only abort
        spoil(txn, _SPOILED)


def _check_meta(name: str, meta: dict[str, Any]) -> None:
    fields = {"id": int, "encoder": str, "compressor": str, "counter": str}
    bad = [f for f, kind in fields.items() if not isinstance(meta.get(f), kind)]
    if bad:
        raise CorruptionError(
            f"the metadata of collection {name!r} lacks or garbles "
            f"{', '.join(bad)}: {meta!r}"
        )


def _undo(
    txn: Txn,
    full: bytes,
    old_value: bytes | None,
    rkey: bytes,
    old: list[Entries] | None,
    new: list[Entries],
    inserted: bool,
) -> None:
    """Put back what a failed put changed: the record and its index entries.

    Idempotent, so it need not know how far the put got: an entry that was
    never written is deleted (a no-op), one never deleted is written again.
    """
    if old_value is None:
        txn.delete(full)
    else:
        txn.put(full, old_value)
    if old is None and not inserted:
        return  # failed before any entry changed
    tail = SEP + rkey
    for i, entries in enumerate(new):
        before = set(old[i]) if old is not None else set()
        for p in set(entries) - before:
            forget_entry(txn, p + tail)
        for p in before - set(entries):
            txn.put(p + tail, rkey)


def add_index(coll: Collection, name: str, func: Callable[[Any], Any]) -> Index:
    """Same as ``coll.add_index(name, func)``."""
    return coll.add_index(name, func)


def check(store: Store) -> CheckReport:
    """Re-derive every index entry from the records and compare.

    Runs in one read transaction (or the active one). Indexes whose function
    is not declared on a live Collection object are listed as ``unchecked``.
    """
    return store.check()
