"""Schema tracking: live Collection objects kept in step with stored metadata.

Every schema change (a collection or index created, renamed or dropped, a
compressor registered) rewrites a token stored under the Store's prefix. A
:class:`Schema` remembers the token it last saw and compares it once per
write transaction; when it moved (another Store object or process changed
the schema, or a change of ours rolled back), the live objects are matched
to the stored metadata again by id and uid (``Collection.sync``). See
``docs/layout.md``.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import TYPE_CHECKING, Any

from acid import _layout
from acid._layout import KIND_ENCODER, KIND_INDEX, KIND_STRUCT, KIND_TABLE
from acid._txn import on_abort
from acid.errors import ConfigError, CorruptionError

if TYPE_CHECKING:
    from acid.collection import Collection
    from acid.engines import Txn
    from acid.store import Store

__all__ = ["Schema"]


class _Group:
    """What the Stores over one key space (one storage, one prefix) share in
    this process: they see each other's schema changes at once."""

    def __init__(self) -> None:
        self.members: weakref.WeakSet[Schema] = weakref.WeakSet()
        self.high_id = 0  # highest id handed out, rolled back or not


_groups: weakref.WeakKeyDictionary[Any, dict[bytes, _Group]] = (
    weakref.WeakKeyDictionary()
)
_groups_lock = threading.Lock()


def _group_for(schema: Schema) -> _Group:
    with _groups_lock:
        try:
            by_prefix = _groups.setdefault(schema.store.context, {})
        except TypeError:  # a context that cannot be weakly referenced
            by_prefix = {}
        group = by_prefix.setdefault(schema.store.prefix, _Group())
        group.members.add(schema)
        return group


class Schema:
    """The schema state of one :class:`~acid.Store` (``store.schema``)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        #: The write transaction whose token was last compared (see verify).
        #: Collections compare it first, on every write.
        self.verified_txn: Txn | None = None
        #: The stored token this object last saw, or None when unknown.
        self.token: bytes | None = None
        #: Whether the stored format version was found readable (see
        #: check_format).
        self.format_checked = False
        self._lock = threading.RLock()
        # Live Collection objects by collection id, and the newest by id.
        self._live: dict[int, weakref.WeakSet[Collection]] = {}
        self._newest: dict[int, Collection] = {}
        # Schemas of the Stores over the same key space in this process.
        self._group = _group_for(self)

    def newest(self) -> list[Collection]:
        """The newest live Collection object of each collection id."""
        with self._lock:
            return list(self._newest.values())

    def allocate_id(self) -> int:
        """A new collection or index id, never one handed out before."""
        base = self.store.bump(_layout.ID_COUNTER, 0, _layout.FIRST_USER_ID)
        group = self._group
        new = max(base, group.high_id + 1)
        self.store.bump(_layout.ID_COUNTER, new + 1 - base, _layout.FIRST_USER_ID)
        group.high_id = new
        return new

    def attach(self, coll: Collection) -> None:
        """Track a live Collection so schema changes reach it."""
        with self._lock:
            self._live.setdefault(coll.id, weakref.WeakSet()).add(coll)
            self._newest[coll.id] = coll
            self._group.high_id = max(self._group.high_id, coll.id)

    def live_collections(self, coll_id: int | None = None) -> list[Collection]:
        """Live Collection objects (of one collection id, or all)."""
        with self._lock:
            if coll_id is not None:
                return list(self._live.get(coll_id, ()))
            return [c for group in self._live.values() for c in group]

    def changed(self) -> None:
        """Record a schema change in the active write transaction.

        Writes a new schema token (so other Stores and processes notice) and
        arranges for live objects to be reconciled if the transaction aborts.
        """
        txn = self.store.active()
        if txn is not self.verified_txn:
            self.verify(txn)  # first catch up with changes made elsewhere
        if self.token is None:
            self._check_format(write=True)
        token = os.urandom(8)
        txn.put(self.store.schema_key, token)
        self.token = token
        for peer in self.peers():
            if peer is not self:  # they catch up at their next write
                peer.unverify()
        on_abort(txn, self._after_abort)

    def unverify(self) -> None:
        """Compare the token again before the next write of any live object."""
        self.verified_txn = None
        for coll in self.live_collections():
            coll.forget_txn()

    def verify(self, txn: Txn) -> None:
        """Bring live objects up to date with the stored schema, if it moved.

        Collections call this once per write transaction before writing; it
        costs one read when nothing changed.
        """
        token = txn.get(self.store.schema_key)
        if token != self.token:
            self.reconcile()
            self.token = token
        self.verified_txn = txn

    def refresh(self) -> None:
        """Reconcile live objects if the stored schema moved (one read).

        Runs in the active transaction or a read transaction of its own.
        """

        def run() -> None:
            txn = self.store.active()
            if txn.write:
                if txn is not self.verified_txn:
                    self.verify(txn)
                return
            token = txn.get(self.store.schema_key)
            if token != self.token:
                self._reconcile()
                self.token = token

        self.store.in_txn(run)

    def reconcile_peers(self) -> None:
        """:meth:`reconcile` every Store of this process over this key space."""
        for peer in self.peers():
            peer.reconcile()

    def peers(self) -> list[Schema]:
        """The schemas of the Stores of this process over this key space."""
        with _groups_lock:
            return list(self._group.members)

    def reconcile(self) -> None:
        """Match every live Collection, Index and compressor to stored metadata.

        Runs in the active transaction (or a read transaction of its own).
        Renames follow, objects whose metadata is gone refuse further use,
        and indexes stored but not declared block writes.
        """
        self.store.in_txn(self._reconcile)

    def _reconcile(self) -> None:
        self._check_format()
        tables = {i["id"]: i for _, i in self.store.iter_meta(KIND_TABLE)}
        indexes: dict[str, dict[str, dict]] = {}
        for (cname, iname), info in self.store.iter_meta(KIND_INDEX):
            indexes.setdefault(cname, {})[iname] = info
        stored = {n[0]: i for n, i in self.store.iter_meta(KIND_ENCODER)}
        for comp in self.store.registry.custom_compressors():
            known = stored.get(comp.name)
            if known is None or known.get("id") != comp.id:
                self.store.registry.remove_compressor(comp)
        for coll in self.live_collections():
            table = tables.get(coll.id)
            names = {} if table is None else indexes.get(table["name"], {})
            coll.sync(table, names)

    def _after_abort(self) -> None:
        for peer in self.peers():
            peer.token = None  # the next write compares afresh
            peer.unverify()
            try:
                peer.reconcile()
            except Exception:  # e.g. the engine was closed meanwhile
                pass  # the token is unknown, so the next write reconciles first

    def check_format(self) -> None:
        """Refuse a store written by a newer layout (``ConfigError``).

        Collections call it when they open: one read the first time, none
        afterwards (a later change of the stored version is a schema change,
        which :meth:`reconcile` checks again).
        """
        if not self.format_checked:
            self.store.in_txn(self._check_format)
            self.format_checked = True

    def _check_format(self, write: bool = False) -> None:
        info = self.store.get_meta(KIND_STRUCT, "\x00acid")
        version = 0 if info is None else info.get("format")
        if type(version) is not int or version < 1 and info is not None:
            raise CorruptionError(
                f"the stored format version is {version!r}, not a version "
                "number; acid did not write it"
            )
        if version > _layout.FORMAT_VERSION:
            raise ConfigError(
                f"this store was written by a newer acid (format version "
                f"{version}); this one reads format versions up to "
                f"{_layout.FORMAT_VERSION}: upgrade acid"
            )
        if info is None and write:
            self.store.set_meta(
                KIND_STRUCT, "\x00acid", {"format": _layout.FORMAT_VERSION}
            )
