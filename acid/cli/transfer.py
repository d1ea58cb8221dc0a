"""Dump, load and copy: a store as a stream of items, from one snapshot.

:func:`items` reads a store in one read transaction and yields tuples; the
dump file writes each as one line of typed JSON (:mod:`acid.cli.typedjson`);
:class:`Loader` takes the same tuples (from a file, or straight from another
store for ``acid copy``) and writes them in bounded write transactions. The
file format is described in ``docs/cli.md``.

>>> import acid
>>> src, dst = acid.open("skiplist:/"), acid.open("skiplist:/")
>>> people = src.add_collection("people")
>>> _ = people.add_index("name", lambda p: p["name"])
>>> _ = people.put({"name": "Ada"})
>>> summary = Loader(dst).run(items(src))
>>> summary["records"], summary["entries"]
(1, 1)
>>> list(dst.add_collection("people").items())
[((1,), {'name': 'Ada'})]
"""

from __future__ import annotations

import json
import math
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from acid import encoders, keylib
from acid._fields import GRAMS, TEXT
from acid._fields import fields as field_function
from acid._layout import KIND_BLOBS, len_counter
from acid._text import TextFunction, qgrams, tokens
from acid._ttl import FOREVER, check_ttl
from acid.cli import typedjson
from acid.collection import Collection
from acid.errors import ConstraintError, Error, NameInUse, NotFound
from acid.index import Index
from acid.store import (
    KIND_COUNTER,
    KIND_ENCODER,
    KIND_INDEX,
    KIND_STRUCT,
    KIND_TABLE,
    Store,
)

__all__ = [
    "DUMP_VERSION",
    "DumpError",
    "Leftover",
    "Loader",
    "TEMP_PREFIX",
    "drop_leftovers",
    "is_temporary",
    "items",
    "left_out",
    "leftovers",
    "user_collections",
    "open_collection",
    "open_index",
    "shown_name",
    "DumpReader",
    "to_line",
]

#: Version of the dump file format (its first line says which it is).
#: Version 2 added expiry (a collection's ``expiring``/``ttl``, a record's
#: deadline ``d``); version 1 files load as before.
DUMP_VERSION = 2
#: The dump format versions this acid reads.
READABLE_VERSIONS = (1, 2)
#: Metadata kinds dumped as such (tables and indexes travel as collections).
_META_KINDS = (KIND_STRUCT, KIND_COUNTER)
_FORMAT_META = "\x00acid"

Item = tuple[Any, ...]
Progress = Callable[[int], None]


class DumpError(Error, ValueError):
    """A dump file (or stream) that cannot be loaded; says which line."""


def _key_func_required(name: str) -> Callable[[Any], Any]:
    def key_func(rec: Any) -> Any:
        raise ConstraintError(
            f"collection {name!r} makes its keys with a key function, which "
            "is code and not stored; give the key (--key) or declare the "
            "collection with --module"
        )

    return key_func


def _undeclared(cname: str, iname: str) -> Callable[[Any], Any]:
    def func(rec: Any) -> Any:
        raise ConstraintError(
            f"index {cname}.{iname} has no declared function here, so records "
            "cannot be written through it; declare it with --module"
        )

    return func


def _no_entries(rec: Any) -> None:
    return None  # entries are copied as data by the Loader


#: Metadata fields that describe an index's function (token and q-gram
#: kinds, declared record fields); placeholders carry them, dumps keep them.
_FUNC_META = ("text", "q", "fields")


def function_from_meta(meta: dict[str, Any]) -> Callable[[Any], Any] | None:
    """The index function its metadata describes, when it is declarative
    (``acid.field(s)``, a default token or q-gram index of a field), else
    None: such indexes need no module to be read, written or rebuilt."""
    paths = tuple(meta.get("fields") or ())
    kind = meta.get("text")
    if not paths:
        return None
    if kind is None:
        return field_function(*paths)
    (path,) = paths if len(paths) == 1 else ("",)
    if kind == "tokens" and path.startswith(TEXT):
        return tokens(path[len(TEXT) :])
    if kind == "qgrams" and path.startswith(GRAMS):
        q, _, name = path[len(GRAMS) :].partition(":")
        if q.isdigit():
            return qgrams(name, int(q))
    return None


class _TextPlaceholder(TextFunction):
    """Stands for a token or q-gram index function that is not declared
    here: it carries the stored kind and ``q``, and its field is ``func``."""

    def __init__(self, meta: dict[str, Any], func: Callable[[Any], Any]) -> None:
        super().__init__(func)
        self.kind = str(meta["text"])
        self._meta = dict(meta)

    def meta(self) -> dict[str, Any]:
        return dict(self._meta)


def placeholder(meta: dict[str, Any], func: Callable[[Any], Any]) -> Any:
    """``func``, or a text placeholder calling it when ``meta`` says the
    index is a token or q-gram index."""
    extra: dict[str, Any] = {k: meta[k] for k in ("text", "q") if k in meta}
    return _TextPlaceholder(extra, func) if "text" in extra else func


def open_collection(store: Store, name: str) -> Collection:
    """The live collection ``name`` (declared by a module), or one opened for
    reading and key-given writes without its Python functions."""
    try:
        return store[name]
    except KeyError:
        pass
    meta = store.get_meta(KIND_TABLE, name)
    if meta is None:
        have = ", ".join(store.collections()) or "none"
        raise NotFound(f"no collection named {name!r} (collections: {have})")
    key_func = _key_func_required(name) if meta.get("keys") == "func" else None
    return store.add_collection(name, key_func=key_func)


def open_index(coll: Collection, name: str) -> Index:
    """The index ``name`` of ``coll``, for reading; declared without its
    function (one that refuses writes) when no module declared it."""
    found = coll.indices.get(name)
    if found is not None:
        return found
    if not any(n[1] == name for n, _ in coll.store.index_metas(coll.name)):
        have = ", ".join(n[1] for n, _ in coll.store.index_metas(coll.name))
        raise NotFound(
            f"collection {coll.name!r} has no index {name!r} "
            f"(indexes: {have or 'none'})"
        )
    info = coll.store.get_meta(KIND_INDEX, (coll.name, name)) or {}
    func = function_from_meta(info) or placeholder(info, _undeclared(coll.name, name))
    return coll.add_index(name, func)


# -- temporaries of loads -----------------------------------------------------

#: A load writes each collection under ``TEMP_PREFIX + TOKEN + ":" + NAME``
#: and renames it to ``NAME`` in its last transaction. Names starting with
#: NUL are acid's own (as counter and metadata names are): applications must
#: not use this prefix. ``TOKEN`` is random and new for every load.
TEMP_PREFIX = "\x00load:"
#: The ``struct`` metadata of a running load (``(JOURNAL, TOKEN)``): which
#: process on which host started it, and when. Removed with its collections.
JOURNAL = "\x00load"


def is_temporary(name: Any) -> bool:
    """Whether ``name`` is a collection name a load writes under."""
    return isinstance(name, str) and name.startswith(TEMP_PREFIX)


def temp_name(token: str, name: str) -> str:
    """The temporary name of collection ``name`` in the load ``token``."""
    return f"{TEMP_PREFIX}{token}:{name}"


def _split_temp(name: str) -> tuple[str, str]:
    token, _, real = name[len(TEMP_PREFIX) :].partition(":")
    return token, real


def shown_name(name: str) -> str:
    """A collection name for tables: a temporary as ``NAME (load TOKEN)``."""
    if not is_temporary(name):
        return name
    token, real = _split_temp(name)
    return f"{real} (unfinished load {token})"


def user_collections(store: Store) -> list[str]:
    """The collections of ``store`` that are not a load's temporaries."""
    return [n for n in store.collections() if not is_temporary(n)]


@dataclass
class Leftover:
    """What an interrupted load (killed, or a machine that went down) left:
    its temporary collections, with their records, and its journal."""

    token: str
    #: ``(temporary name, real name, records)`` of each collection.
    collections: list[tuple[str, str, int]] = field(default_factory=list)
    #: The journal: ``{"pid", "host", "started"}``, or None if missing.
    journal: dict[str, Any] | None = None

    def running(self) -> bool:
        """Whether the load's process still runs (known only on its host)."""
        info = self.journal
        if not info or info.get("host") != socket.gethostname():
            return False
        pid = info.get("pid")
        if type(pid) is not int or pid <= 0:
            return False
        if pid == os.getpid():
            return True
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except OSError:  # exists, owned by someone else
            return True
        return True

    def describe(self) -> str:
        """One line for people."""
        names = ", ".join(f"{real!r} ({n} records)" for _, real, n in self.collections)
        info = self.journal or {}
        when = info.get("started")
        started = (
            time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(when))
            if isinstance(when, float | int)
            else "an unknown time"
        )
        who = f"pid {info.get('pid')} on {info.get('host')!r}" if info else "unknown"
        state = "still running" if self.running() else "interrupted"
        return (
            f"load {self.token} ({state}; {who}, started {started}): "
            f"{names or 'no collections'}"
        )


def leftovers(store: Store) -> list[Leftover]:
    """The loads whose temporaries are in ``store`` (one read transaction):
    interrupted ones, and any running right now (see ``Leftover.running``)."""

    def run() -> list[Leftover]:
        found: dict[str, Leftover] = {}
        counters = store.counters()
        for (name,), info in store.iter_meta(KIND_TABLE):
            if is_temporary(name):
                token, real = _split_temp(name)
                n = counters.get(len_counter(info))  # kept with every batch
                if n is None:
                    n = sum(1 for _ in store.iter_space(info["id"]))
                found.setdefault(token, Leftover(token)).collections.append(
                    (name, real, n)
                )
        for mname, info in store.iter_meta(KIND_STRUCT):
            if len(mname) == 2 and mname[0] == JOURNAL and isinstance(mname[1], str):
                found.setdefault(mname[1], Leftover(mname[1])).journal = info
        return [found[t] for t in sorted(found)]

    return store.in_txn(run)


def drop_leftovers(
    store: Store, *, running: bool = False, batch: int = 10_000
) -> list[Leftover]:
    """Remove what interrupted loads left (their temporary collections and
    journals); returns what was removed. A load whose process still runs on
    this host is left alone unless ``running``."""
    gone = []
    for left in leftovers(store):
        if left.running() and not running:
            continue
        for temp, _, _ in left.collections:
            try:
                store.drop_collection(temp, online=True, batch=batch, keep_counter=True)
            except NotFound:
                pass  # removed meanwhile
        store.transact(_forget, store, left.token)
        gone.append(left)
    return gone


def _forget(store: Store, token: str) -> None:
    store.set_meta(KIND_STRUCT, (JOURNAL, token), None)


# -- reading ------------------------------------------------------------------


def left_out(store: Store, names: Iterable[str] = ()) -> list[str]:
    """What a dump or copy of the store (or of the collections ``names``)
    does not carry: blob stores (``acid backup`` copies those), and the
    temporaries of loads (see :func:`leftovers`)."""
    if list(names):
        return []

    def run() -> list[str]:
        out = [f"blob store {n[0]!r}" for n, _ in store.iter_meta(KIND_BLOBS)]
        temps = sorted(
            {_split_temp(n)[0] for n in store.collections() if is_temporary(n)}
        )
        out.extend(f"the temporaries of the unfinished load {t}" for t in temps)
        return out

    return store.in_txn(run)


def blob_stores(store: Store) -> list[str]:
    """The names of the blob stores in ``store``."""
    return [n[0] for n, _ in store.iter_meta(KIND_BLOBS)]


def items(
    store: Store,
    names: Iterable[str] = (),
    *,
    derived: set[tuple[str, str]] = frozenset(),  # type: ignore[assignment]
) -> Iterator[Item]:
    """The store (or the collections ``names``) as items, from one snapshot.

    Everything is read in one read transaction that stays open until the
    generator is exhausted or closed. The entries of the indexes named in
    ``derived`` (``(collection, index)`` pairs, which the target computes
    with their functions) are left out.
    """
    wanted = list(names)
    with store.begin():
        every = user_collections(store)
        for name in wanted:
            if name not in every:
                raise NotFound(
                    f"no collection named {name!r} (collections: "
                    f"{', '.join(every) or 'none'})"
                )
        chosen = wanted or every
        fmt = store.get_meta(KIND_STRUCT, _FORMAT_META) or {}
        yield ("header", {"acid-dump": DUMP_VERSION, "format": fmt.get("format")})
        metas = {n[0]: store.get_meta(KIND_TABLE, n) for n in chosen}
        used = {m["compressor"] for m in metas.values() if m is not None}
        for (cname,), info in store.iter_meta(KIND_ENCODER):
            if info.get("type") == "zstd-dict" and cname in used:
                yield ("compressor", cname, info)
        totals: dict[str, Any] = {"collections": 0, "records": 0, "entries": 0}
        for name in chosen:
            yield from _collection_items(store, name, totals, derived)
        counters = store.counters()
        own = {m["counter"] for m in metas.values() if m is not None}
        for cname, value in counters.items():
            if not cname.startswith("\x00") and (not wanted or cname in own):
                yield ("counter", cname, value)
        if not wanted:
            for kind in _META_KINDS:
                for mname, dct in store.iter_meta(kind):
                    internal = isinstance(mname[0], str) and mname[0][:1] == "\x00"
                    if not (kind == KIND_STRUCT and internal):
                        yield ("meta", kind, list(mname), dct)
        yield ("end", totals)


def _collection_items(
    store: Store, name: str, totals: dict[str, Any], derived: set[tuple[str, str]]
) -> Iterator[Item]:
    meta = store.get_meta(KIND_TABLE, name)
    assert meta is not None
    coll = open_collection(store, name)
    metas = store.index_metas(name)
    inames = [n[1] for n, _ in metas]
    extra = {
        n[1]: {k: info[k] for k in _FUNC_META if k in info}
        for n, info in metas
        if any(k in info for k in _FUNC_META)
    }
    expiry = coll.expiry if meta.get("expiry") is not None else None
    yield (
        "collection",
        {
            "collection": name,
            "encoder": meta["encoder"],
            "compressor": meta["compressor"],
            "counter": meta["counter"],
            "keys": meta.get("keys", "auto"),
            "indexes": inames,
            **({"index_meta": extra} if extra else {}),
            **({"expiring": True, "ttl": meta.get("ttl")} if expiry else {}),
        },
    )
    n = 0
    if expiry is None:
        for key, value in coll.items():
            yield ("record", key, value)
            n += 1
    else:  # live records (as items() sees them) with their deadlines
        txn = store.active()
        for key, value in coll.items():
            yield ("record", key, value, expiry.deadline(txn, keylib.pack(key)))
            n += 1
    totals["collections"] += 1
    totals["records"] += n
    totals.setdefault("by_collection", {})[name] = n
    for iname in inames:
        if (name, iname) in derived:
            continue
        idx = open_index(coll, iname)
        if idx.building:
            raise ConstraintError(
                f"index {name}.{iname} is being built online; finish the build "
                "(acid build-index) before dumping or copying"
            )
        yield ("index", iname)
        e = 0
        for tup, key in idx.pairs():
            yield ("entry", tup, key)
            e += 1
        totals["entries"] += e
        totals.setdefault("by_index", {})[f"{name}.{iname}"] = e


# -- the file form ------------------------------------------------------------


def to_line(item: Item) -> str:
    """One dump line for an item."""
    tag = item[0]
    if tag == "record":
        if len(item) > 3 and item[3] is not None:
            return typedjson.dumps({"k": list(item[1]), "v": item[2], "d": item[3]})
        return typedjson.dumps({"k": list(item[1]), "v": item[2]})
    if tag == "entry":
        return typedjson.dumps({"e": [list(item[1]), list(item[2])]})
    if tag in ("header", "collection"):
        return typedjson.dumps(item[1])
    if tag == "index":
        return typedjson.dumps({"index": item[1]})
    if tag == "compressor":
        return typedjson.dumps({"compressor": item[1], "info": item[2]})
    if tag == "counter":
        return typedjson.dumps({"counter": item[1], "value": item[2]})
    if tag == "meta":
        return typedjson.dumps({"meta": item[1], "name": item[2], "value": item[3]})
    if tag == "end":
        return typedjson.dumps({"end": item[1]})
    raise ValueError(f"unknown dump item {tag!r}")


def _want(obj: dict[str, Any], field: str, kind: type | tuple[type, ...]) -> Any:
    value = obj.get(field)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        raise ValueError(
            f"{field!r} is missing or not a {getattr(kind, '__name__', kind)}"
        )
    return value


def _key(value: Any, what: str) -> tuple[Any, ...]:
    if type(value) is not list:
        raise ValueError(f"{what} must be a JSON array")
    return tuple(value)


def _parse(obj: Any) -> Item:
    if type(obj) is not dict:
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    if "k" in obj:
        if set(obj) != {"k", "v"} and set(obj) != {"k", "v", "d"}:
            raise ValueError("a record line has exactly 'k' and 'v' (and 'd')")
        if "d" not in obj:
            return ("record", _key(obj["k"], "'k'"), obj["v"])
        return ("record", _key(obj["k"], "'k'"), obj["v"], _deadline(obj["d"]))
    if "e" in obj:
        pair = obj["e"]
        if type(pair) is not list or len(pair) != 2:
            raise ValueError("an entry line is {'e': [index tuple, record key]}")
        return ("entry", _key(pair[0], "the index tuple"), _key(pair[1], "the key"))
    if "acid-dump" in obj:
        version = obj["acid-dump"]
        if type(version) is not int or version not in READABLE_VERSIONS:
            raise ValueError(
                f"dump format {version!r}; this acid reads formats "
                f"{', '.join(map(str, READABLE_VERSIONS))}"
            )
        return ("header", obj)
    if "collection" in obj:
        for field in ("collection", "encoder", "compressor", "counter", "keys"):
            _want(obj, field, str)
        if obj["keys"] not in ("auto", "func"):
            raise ValueError("'keys' is 'auto' or 'func'")
        names = _want(obj, "indexes", list)
        if not all(isinstance(n, str) and n for n in names):
            raise ValueError("'indexes' holds index names (strings)")
        extra = obj.get("index_meta", {})
        if type(extra) is not dict or not all(
            type(v) is dict and set(v) <= set(_FUNC_META) for v in extra.values()
        ):
            raise ValueError("'index_meta' maps index names to {'text', 'q', 'fields'}")
        if obj["counter"].startswith("\x00"):
            raise ValueError(
                f"counter names starting with '\\x00' are the store's own: "
                f"{obj['counter']!r}"
            )
        if "expiring" in obj or "ttl" in obj:
            if obj.get("expiring") is not True:
                raise ValueError("'expiring' is true when a collection line has 'ttl'")
            ttl = obj.get("ttl")
            if ttl is not None and (
                type(ttl) not in (int, float) or check_ttl(ttl) == FOREVER
            ):
                raise ValueError(f"'ttl' is null or a positive number, not {ttl!r}")
        return ("collection", obj)
    if "index" in obj:
        return ("index", _want(obj, "index", str))
    if "compressor" in obj:
        return ("compressor", _want(obj, "compressor", str), _want(obj, "info", dict))
    if "counter" in obj:
        return ("counter", _want(obj, "counter", str), _want(obj, "value", int))
    if "meta" in obj:
        kind = _want(obj, "meta", str)
        if kind not in _META_KINDS:
            raise ValueError(f"metadata kind {kind!r} is not one a dump holds")
        name = _want(obj, "name", list)
        if name and isinstance(name[0], str) and name[0][:1] == "\x00":
            raise ValueError(
                f"metadata names starting with '\\x00' are the store's own: {name!r}"
            )
        return ("meta", kind, name, _want(obj, "value", dict))
    if "end" in obj:
        return ("end", _want(obj, "end", dict))
    raise ValueError(f"unknown line with members {sorted(obj)[:5]}")


def _deadline(value: Any) -> float:
    """A record's deadline from a dump line: a finite number (clock time)."""
    if type(value) not in (int, float) or not math.isfinite(value):
        raise ValueError(f"'d' (a deadline) is a finite number, not {value!r}")
    return float(value)


class DumpReader:
    """Items from dump lines; a bad line raises :class:`DumpError` naming it.

    ``lineno`` is the number of the line last read.
    """

    def __init__(self, lines: Iterable[bytes | str]) -> None:
        self.lines = lines
        self.lineno = 0

    def __iter__(self) -> Iterator[Item]:
        for line in self.lines:
            self.lineno += 1
            if not line.strip():
                raise DumpError(f"line {self.lineno}: empty line")
            try:
                item = _parse(typedjson.loads(line))
            except (ValueError, UnicodeDecodeError, RecursionError) as exc:
                text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise DumpError(f"line {self.lineno}: {text}") from None
            yield item
        if self.lineno == 0:
            raise DumpError("line 1: the dump is empty")


# -- writing ------------------------------------------------------------------


class Loader:
    """Writes dump items into a store, ``batch`` records per transaction.

    The target must be empty (``force=True`` allows other collections, never
    one of the dump's own). Each collection is written under a temporary
    name (:func:`temp_name`, new for every load) that no reader confuses
    with a real one; the last transaction compares the end line's counts,
    checks that every real name is still free, renames the temporaries to
    their real names and writes counters and metadata. So a load lands
    whole or not at all: if anything fails, its temporaries (and
    compressors no collection uses) are removed, and nothing another writer
    committed meanwhile is touched. A load killed part-way leaves its
    temporaries, which :func:`leftovers` lists and :func:`drop_leftovers`
    removes; no later load reuses them.

    An empty collection already declared in this process (``--module``)
    is replaced by the loaded one, whose indexes use the declared
    functions; it must still be empty at the end. The collections named in
    ``own`` were made for this load (by ``--module`` in an empty target):
    a failed load drops them again if they are still empty.
    """

    def __init__(
        self,
        store: Store,
        *,
        batch: int = 10_000,
        force: bool = False,
        progress: Progress | None = None,
        own: Iterable[str] = (),
    ) -> None:
        if type(batch) is not int or batch < 1:
            raise ValueError(f"batch must be a positive int, got {batch!r}")
        self.store = store
        self.batch = batch
        self.force = force
        self.progress = progress
        #: This load's random part of its temporary names.
        self.token = secrets.token_hex(8)
        #: Real names of the collections loaded, in order.
        self.created: list[str] = []
        #: Real name -> the temporary Collection it is written into.
        self._temps: dict[str, Collection] = {}
        #: Real name -> (id, uid) of a declared empty collection to replace.
        self._replaces: dict[str, tuple[int, bytes | None]] = {}
        self._own = {
            name: (info["id"], info.get("uid"))
            for name in own
            if (info := store.get_meta(KIND_TABLE, name)) is not None
        }
        self._journal = False
        self.compressors: list[str] = []
        self.derived: set[str] = set()
        self.counts = {"collections": 0, "records": 0, "entries": 0}
        #: What the file held, derived entries included, to hold the end
        #: line's counts against (``counts`` is what was written).
        self._seen: dict[str, Any] = {
            "entries": 0,
            "by_collection": {},
            "by_index": {},
        }
        self._version = DUMP_VERSION
        self._coll: Collection | None = None
        self._index: Index | None = None
        self._skip_entries = False
        self._late: list[Item] = []
        #: What the end line of the dump said (counts per collection, index).
        self.totals: dict[str, Any] = {}
        self._block: Any = None
        self._pending = 0

    def run(
        self, stream: Iterable[Item], lineno: Callable[[], int] | None = None
    ) -> dict[str, Any]:
        """Load every item; returns the counts written.

        ``lineno()`` tells errors which line of a file they are about.
        """
        self._check_target()
        try:
            self._run(stream, lineno or (lambda: 0))
        except BaseException:
            self._end_block(ok=False)
            self._remove()
            raise
        return self.counts

    def _check_target(self) -> None:
        """Refuse a target holding records (empty declared collections, as
        ``--module`` makes, are fine) unless ``force``. Temporaries of other
        loads do not count (see :func:`leftovers`)."""
        store = self.store

        def holding() -> list[str]:
            return [
                n[0]
                for n, info in store.iter_meta(KIND_TABLE)
                if not is_temporary(n[0])
                and next(store.iter_space(info["id"]), None) is not None
            ]

        names = store.in_txn(holding)
        if names and not self.force:
            raise NameInUse(
                f"the target store is not empty (collections with records: "
                f"{', '.join(names)}); load into an empty store, or pass --force "
                "to add new collections to this one"
            )

    def _run(self, stream: Iterable[Item], lineno: Callable[[], int]) -> None:
        first = True
        ended = False
        for item in stream:
            tag = item[0]
            where = f"line {lineno()}: " if lineno() else ""
            if ended:
                raise DumpError(f"{where}data after the end line")
            if first and tag != "header":
                raise DumpError(f"{where}the dump does not start with its header")
            first = False
            try:
                ended = self._apply(item)
            except (Error, TypeError, ValueError) as exc:
                try:
                    again = type(exc)(f"{where}{exc}")
                except Exception:  # an exception class with other arguments
                    raise exc from None
                raise again from exc
        if not ended:
            where = f"line {lineno()}: " if lineno() else ""
            raise DumpError(f"{where}the dump ends without its end line (truncated?)")
        self._end_block(ok=True)  # the renames land with the last batch
        if self.progress is not None and self._pending:
            self.progress(self._pending)

    def _apply(self, item: Item) -> bool:
        tag = item[0]
        if tag == "record":
            coll = self._need_coll("a record")
            self._write()
            deadline = item[3] if len(item) > 3 else None
            if coll.expiry is None:
                if deadline is not None:
                    raise DumpError(
                        "a record with a deadline in a collection whose line "
                        "does not say it expires"
                    )
                coll.put(item[2], key=item[1])
            else:
                if deadline is not None and self._version < 2:
                    raise DumpError("deadlines are a feature of dump format 2")
                coll.put(item[2], key=item[1], ttl=FOREVER)
                if deadline is not None:
                    coll.expiry.set_deadline(
                        self.store.active(), keylib.pack(item[1]), deadline
                    )
            self.counts["records"] += 1
            by_coll = self._seen["by_collection"]
            real = self.created[-1]
            by_coll[real] = by_coll.get(real, 0) + 1
            self._tick()
        elif tag == "entry":
            idx = self._index
            if idx is None:
                raise DumpError("an index entry before its index line")
            self._need_coll("an entry")
            self._seen["entries"] += 1
            by_index = self._seen["by_index"]
            iname = f"{self.created[-1]}.{idx.name}"
            by_index[iname] = by_index.get(iname, 0) + 1
            if not self._skip_entries:
                self._write()
                rkey = keylib.pack(item[2])
                idx.update(
                    self.store.active(),
                    rkey,
                    (),
                    (keylib.pack(item[1], idx.key_prefix),),
                )
                self.counts["entries"] += 1
            self._tick()
        elif tag == "collection":
            self._collection(item[1])
        elif tag == "index":
            coll = self._need_coll("an index line")
            if item[1] not in coll.indices:
                raise DumpError(
                    f"index {item[1]!r} is not declared by its collection line"
                )
            self._index = coll.indices[item[1]]
            self._skip_entries = item[1] in self.derived
        elif tag == "compressor":
            self._compressor(item[1], item[2])
        elif tag in ("counter", "meta"):
            self._late.append(item)
        elif tag == "end":
            self.totals = item[1]
            self._finish(item[1])
            return True
        elif tag == "header":
            self._version = item[1].get("acid-dump", DUMP_VERSION)
        else:
            raise DumpError(f"unknown item {tag!r}")
        return False

    def _need_coll(self, what: str) -> Collection:
        if self._coll is None:
            raise DumpError(f"{what} before any collection line")
        return self._coll

    def _write(self) -> None:
        if self._block is None:
            self._block = self.store.begin(write=True)
            self._block.__enter__()
            self._pending = 0

    def _tick(self) -> None:
        self._pending += 1
        if self._pending >= self.batch:
            self._end_block(ok=True)
            if self.progress is not None:
                self.progress(self._pending)
            self._pending = 0

    def _end_block(self, ok: bool) -> None:
        block, self._block = self._block, None
        if block is None:
            return
        if ok:
            block.__exit__(None, None, None)
        else:
            exc = RuntimeError("load failed")
            block.__exit__(RuntimeError, exc, None)

    def _compressor(self, name: str, info: dict[str, Any]) -> None:
        if info.get("type") != "zstd-dict":
            raise DumpError(f"compressor {name!r}: only zstd-dict ones travel in dumps")
        if type(info.get("dict")) is not bytes or type(info.get("level")) is not int:
            raise DumpError(
                f"compressor {name!r}: its info needs 'dict' (bytes) and 'level' (int)"
            )
        if self.store.registry.compressor(name) is not None:
            return
        comp = encoders.ZstdDictCompressor(name, info["dict"], level=info["level"])
        self._end_block(ok=True)
        self.store.add_encoder(comp)
        self.compressors.append(name)

    def _collection(self, spec: dict[str, Any]) -> None:
        self._end_block(ok=True)
        name = spec["collection"]
        store = self.store
        if is_temporary(name):
            raise DumpError(
                f"collection names starting with {TEMP_PREFIX!r} are the "
                f"temporaries of loads: {name!r}"
            )
        if name in self._temps:
            raise DumpError(f"collection {name!r} appears twice in the dump")
        declared = self._declared(name, spec)
        temp = temp_name(self.token, name)
        if declared is not None and declared.key_func is not None:
            key_func = declared.key_func
        elif spec["keys"] == "func":
            key_func = _key_func_required(name)
        else:
            key_func = None
        with store.begin(write=True):
            if not self._journal:
                store.set_meta(
                    KIND_STRUCT,
                    (JOURNAL, self.token),
                    {
                        "pid": os.getpid(),
                        "host": socket.gethostname(),
                        "started": time.time(),
                    },
                )
            if store.get_meta(KIND_TABLE, temp) is not None:  # never reused
                raise NameInUse(f"the temporary collection {temp!r} exists")
            coll = store.add_collection(
                temp,
                key_func=key_func,
                encoder=spec["encoder"],
                compressor=spec["compressor"],
                counter_name=spec["counter"],
            )
            self.derived = set()
            funcs = {} if declared is None else dict(declared.indices)
            for iname in spec["indexes"]:
                if iname in funcs:  # a module declared its function
                    self.derived.add(iname)
                    coll.add_index(iname, funcs.pop(iname).func)
                    continue
                meta = spec.get("index_meta", {}).get(iname, {})
                func = function_from_meta(meta)
                if func is not None:  # declarative: recomputed, like --module
                    self.derived.add(iname)
                    coll.add_index(iname, func)
                else:
                    coll.add_index(iname, placeholder(meta, _no_entries))
            for iname, idx in funcs.items():  # declared, not in the dump
                coll.add_index(iname, idx.func)
            if spec.get("expiring"):
                coll.declare_ttl(spec.get("ttl") or FOREVER)
            elif declared is not None and declared.expiry is not None:
                coll.declare_ttl(declared.expiry.default or FOREVER)
        self._journal = True
        self.created.append(name)
        self._temps[name] = coll
        self._coll, self._index = coll, None
        self.counts["collections"] += 1

    def _declared(self, name: str, spec: dict[str, Any]) -> Collection | None:
        """The empty collection ``name`` declared in this process, which the
        load replaces; None when the name is free. Anything else there is
        refused before a record is written."""
        store = self.store
        info = store.get_meta(KIND_TABLE, name)
        if info is None:
            return None
        declared = store[name] if name in store else None  # noqa: SIM401
        if declared is None or declared.findkey() is not None:
            raise NameInUse(f"collection {name!r} already exists in the target")
        if declared.encoder.name != spec["encoder"]:
            raise DumpError(
                f"collection {name!r} is declared with encoder "
                f"{declared.encoder.name!r}, the dump has {spec['encoder']!r}"
            )
        self._replaces[name] = (info["id"], info.get("uid"))
        return declared

    def _finish(self, totals: dict[str, Any]) -> None:
        held = {k: self.counts[k] for k in ("collections", "records")}
        held.update(self._seen)
        for field_name, count in held.items():
            said = totals.get(field_name, count)
            if isinstance(count, dict) and isinstance(said, dict):
                said = {k: v for k, v in said.items() if v}  # 0 is no line
            if said != count:
                raise DumpError(
                    f"the end line counts {totals.get(field_name)} {field_name}, "
                    f"the dump held {count}: it is damaged"
                )
        self._write()
        store = self.store
        for name in self.created:  # every check first, then every change
            info = store.get_meta(KIND_TABLE, name)
            if info is None:
                continue
            if (info["id"], info.get("uid")) != self._replaces.get(name):
                raise NameInUse(
                    f"collection {name!r} was created in the target by another "
                    "writer during the load; nothing was loaded, and that "
                    "collection is left as it is"
                )
            if next(store.iter_space(info["id"]), None) is not None:
                raise NameInUse(
                    f"another writer put records into collection {name!r} "
                    "during the load; nothing was loaded, and that collection "
                    "is left as it is"
                )
        for name in self.created:
            if name in self._replaces and store.get_meta(KIND_TABLE, name):
                store.drop_collection(name, keep_counter=True)
            store.rename_collection(temp_name(self.token, name), name)
        for item in self._late:
            if item[0] == "counter":
                self._set_counter(item[1], item[2])
            else:
                store.set_meta(item[1], tuple(item[2]), item[3])
        store.set_meta(KIND_STRUCT, (JOURNAL, self.token), None)

    def _set_counter(self, name: str, value: int) -> None:
        current = self.store.counters().get(name)
        if current is None:
            self.store.count(name, 1, init=value - 1)
        elif current != value:
            self.store.count(name, value - current)

    def _remove(self) -> None:
        """Undo a failed load: its temporaries and journal, the collections
        made for it (``own``) if still empty, and the compressors it added
        that no collection names."""
        store = self.store

        def run() -> None:
            for name, ident in self._own.items():
                info = store.get_meta(KIND_TABLE, name)
                if (
                    info is not None
                    and (info["id"], info.get("uid")) == ident
                    and next(store.iter_space(info["id"]), None) is None
                ):
                    store.drop_collection(name, keep_counter=True)
            used = {i.get("compressor") for _, i in store.iter_meta(KIND_TABLE)}
            for name in self.compressors:
                if name not in used:
                    store.set_meta(KIND_ENCODER, name, None)
            store.set_meta(KIND_STRUCT, (JOURNAL, self.token), None)

        try:
            for name in self.created:  # one short transaction each, then
                # their keys go in bounded ones: a temporary may be large
                temp = temp_name(self.token, name)
                if store.get_meta(KIND_TABLE, temp) is not None:
                    store.drop_collection(temp, online=True, keep_counter=True)
            store.transact(run)
        except Error:
            pass  # the error that stopped the load is the one to report


def dump_json(value: Any) -> str:
    """``value`` as indented JSON for people (stats)."""
    return json.dumps(value, indent=2, default=str, ensure_ascii=False)
