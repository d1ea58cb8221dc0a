"""Secondary indexes, kept exact by one ``update(old, new)`` path.

An index entry is the raw key ``prefix + pack((index_id,) + index_tuple) +
SEP + pack(record_key)``; the record key inside the entry keeps duplicates of
one index tuple apart. Its value is ``pack(record_key)`` again, so a query
finds the record without unpacking the entry.

>>> import acid
>>> store = acid.open("skiplist:/")
>>> people = store.add_collection("people")
>>> by_name = people.add_index("name", lambda p: p["name"])
>>> for name in ["David", "Charles", "Charles", "Andrew"]:
...     _ = people.put({"name": name})
>>> list(by_name.pairs())
[(('Andrew',), (4,)), (('Charles',), (2,)), (('Charles',), (3,)), (('David',), (1,))]
>>> by_name.get("Charles")
{'name': 'Charles'}
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from acid import _query, _text, keylib
from acid._fields import declared_paths
from acid._layout import KIND_INDEX, SEP
from acid.errors import ConfigError, CorruptionError, IndexNotReady, SchemaError

if TYPE_CHECKING:
    from acid.collection import Collection
    from acid.store import CheckReport

__all__ = ["Index", "index_meta"]

#: What Index.entries() returns: packed index tuples, without duplicates.
Entries = tuple[bytes, ...] | set[bytes]

# Module globals for the put path: one dict lookup instead of two.
_SCALARS = _query.SCALARS
_pack = keylib.pack


class Index:
    """Query access to one index of a :class:`~acid.Collection`.

    Create it with :meth:`Collection.add_index`; find it in
    ``coll.indices[name]``. Query methods share the range arguments: ``args``
    (or ``prefix``) an element-wise prefix of the index tuple, ``lo``
    inclusive, ``hi`` exclusive (inclusive of every tuple starting with ``hi``
    when ``include=True``), ``reverse``, ``max`` (``0`` means none).
    """

    def __init__(self, coll: Collection, info: dict[str, Any], func: Callable) -> None:
        if not callable(func):
            raise TypeError(
                f"index {info['name']!r}: the index function must be callable"
            )
        self.coll = coll
        self.store = coll.store
        self.name: str = info["name"]
        self.id: int = info["id"]
        #: Random bytes naming this index for good (see Collection.uid).
        self.uid: bytes | None = info.get("uid")
        #: The index function.
        self.func = func
        #: The record fields the function covers (``acid.field``), or None.
        self.fields: tuple[str, ...] | None = declared_paths(func)
        self._prefix = self.store.space(self.id)
        # Why this object may no longer be used (dropped, rolled back), or None.
        self._detached: str | None = None
        _check_text_meta(coll.name, info, func)
        #: True while an online build fills it (see :mod:`acid._online`):
        #: writes maintain it, queries raise IndexNotReady.
        self.building: bool = info.get("state") == "building"

    def detach(self, reason: str | None) -> None:
        """Refuse (``reason``) or allow again (``None``) queries through this."""
        self._detached = reason

    @property
    def attached(self) -> bool:
        """Whether the index this object describes is stored."""
        return self._detached is None

    @property
    def key_prefix(self) -> bytes:
        """The raw prefix of this index's entries."""
        return self._prefix

    def _not_ready(self) -> None:
        """Raise IndexNotReady unless the build finished (maybe elsewhere)."""
        info = self.store.get_meta(KIND_INDEX, (self.coll.name, self.name))
        if info is not None and info.get("state") != "building":
            self.building = False
            return
        raise IndexNotReady(
            f"index {self.coll.name}.{self.name} is being built online and "
            f"cannot answer queries yet; finish the build with "
            f"coll.build_index({self.name!r}) or acid build-index"
        )

    def _refuse(self) -> None:
        raise SchemaError(
            f"index {self.coll.name}.{self.name}: {self._detached}; declare it "
            "again with add_index()"
        )

    def __repr__(self) -> str:
        return f"<acid.Index {self.coll.name}.{self.name} id={self.id}>"

    # -- maintenance ------------------------------------------------------

    def entries(self, rec: Any) -> Entries:
        """The packed index tuples ``rec`` produces, without duplicates.

        ``None`` (no record) gives none. Single-valued results come back as a
        1-tuple, lists as a set: both are what :meth:`update` takes.
        """
        if rec is None:
            return ()
        result = self.func(rec)
        if result is None:
            return ()
        kind = type(result)
        if kind in _SCALARS:
            return (_pack((result,), self._prefix),)
        if kind is tuple:
            return (_pack(result, self._prefix),)
        return self._other_entries(result)

    def _other_entries(self, result: Any) -> Entries:
        """:meth:`entries` of a result that is neither a scalar nor a tuple."""
        if type(result) is list:
            prefix, as_tuple = self._prefix, _query.as_tuple
            return {keylib.pack(as_tuple(x), prefix) for x in result}
        return (keylib.pack(_query.as_tuple(result), self._prefix),)

    def plan_entry(self) -> tuple[Any, bytes, Any, Any]:
        """What the C write path (``acid._writepath``) needs to do
        :meth:`entries` and :meth:`update` itself: ``(func, prefix,
        other_entries, update)``."""
        return (self.func, self._prefix, self._other_entries, self.update)

    def entries_many(self, recs: list[Any]) -> list[Entries]:
        """:meth:`entries` of each record, in one call (the bulk path)."""
        func, prefix, scalars = self.func, self._prefix, _SCALARS
        out: list[Entries] = []
        append = out.append
        for rec in recs:
            result = None if rec is None else func(rec)
            kind = type(result)
            if result is None:
                append(())
            elif kind in scalars:
                append((_pack((result,), prefix),))
            elif kind is tuple:
                append((_pack(result, prefix),))
            else:
                append(self._other_entries(result))
        return out

    def entry_pairs(
        self, recs: list[Any], rkeys: list[bytes], out: list[tuple[bytes, bytes]]
    ) -> None:
        """Append ``(entry key, record key)`` for every entry of each record.

        ``rkeys`` are the records' packed keys. The bulk path of new records:
        one loop, no intermediate entry tuples.
        """
        func, prefix, scalars = self.func, self._prefix, _SCALARS
        append = out.append
        for rec, rkey in zip(recs, rkeys, strict=True):
            result = None if rec is None else func(rec)
            kind = type(result)
            if result is None:
                continue
            if kind in scalars:
                append((_pack((result,), prefix) + SEP + rkey, rkey))
            elif kind is tuple:
                append((_pack(result, prefix) + SEP + rkey, rkey))
            else:
                tail = SEP + rkey
                out.extend((p + tail, rkey) for p in self._other_entries(result))

    def update(self, txn: Any, rkey: bytes, old: Entries, new: Entries) -> None:
        """Apply the difference between two entry collections for one record.

        ``rkey`` is the packed record key; ``old``/``new`` come from
        :meth:`entries`. Only entries that changed are written.
        """
        tail = SEP + rkey
        if len(old) == 1 and len(new) == 1:  # the common single-valued case
            (o,) = old
            (n,) = new
            if o != n:
                txn.delete(o + tail)
                txn.put(n + tail, rkey)
            return
        old_set, new_set = set(old), set(new)
        for p in old_set - new_set:
            txn.delete(p + tail)
        for p in new_set - old_set:
            txn.put(p + tail, rkey)

    def check(
        self,
        records: Iterable[tuple[bytes, bytes]],
        skip: int,
        decode: Callable[[bytes], Any],
        report: CheckReport,
    ) -> None:
        """Compare the stored entries with those ``records`` produce.

        ``records`` are the raw ``(key, value)`` pairs of the collection,
        ``skip`` the length of their key prefix, ``decode`` turns a value
        into a record. Differences go into ``report``.
        """
        expected: dict[bytes, bytes] = {}
        for k, v in records:
            rkey = k[skip:]
            tail = SEP + rkey
            expected.update((p + tail, rkey) for p in self.entries(decode(v)))
        actual = dict(self.store.iter_space(self.id))
        report.checked_entries += len(actual)
        missing = expected.keys() - actual.keys()
        # An entry whose value is not its record key would fetch the wrong record.
        stale = {k for k, v in actual.items() if expected.get(k) != v}
        for bucket, keys in ((report.missing, missing), (report.stale, stale)):
            for k in sorted(keys):
                tup, rkey = keylib.unpacks(k, self._prefix)
                bucket.append((self.coll.name, self.name, tup, rkey))

    # -- queries ----------------------------------------------------------

    def _range(
        self, args: Any, lo: Any, hi: Any, prefix: Any, include: bool
    ) -> tuple[bytes, bytes]:
        if args is not None and prefix is not None:
            raise TypeError("give args or prefix, not both (they mean the same)")
        if args == ():
            args = None
        return _query.bounds(
            self._prefix,
            lo=lo,
            hi=hi,
            prefix=prefix if args is None else args,
            include=include,
        )

    def _iter(
        self,
        fn: Callable[[Any, bytes, bytes], Any],
        args: Any,
        lo: Any,
        hi: Any,
        prefix: Any,
        reverse: Any,
        max: int | None,
        include: bool,
    ) -> Iterator[Any]:
        if self._detached is not None:
            self._refuse()
        if self.building:
            self._not_ready()
        start, stop = self._range(args, lo, hi, prefix, include)
        expiry = self.coll.expiry
        if expiry is not None:  # entries of expired records are skipped
            return expiry.scan(start, stop, reverse, max, fn, _record_key)
        return _query.scan(self.store, start, stop, reverse, max, fn)

    def _split(self, k: bytes) -> list[tuple[Any, ...]]:
        return keylib.unpacks(k, self._prefix)

    def _fetcher(self, raw: bool, with_key: bool) -> Callable[[Any, bytes, bytes], Any]:
        """A row function that loads the record an entry points at.

        The entry's value is the packed record key, so the record's raw key
        is one concatenation away: no unpacking on the query hot path.
        """
        codec = self.coll.codec
        kp, unpack = self.coll.key_prefix, keylib.unpack
        decode = codec.decompress if raw else codec.decode
        plain = bytes if raw else codec.unpack

        def fetch(txn: Any, k: bytes, v: bytes) -> Any:
            value = txn.get(kp + v)
            if value is None:  # the entry names no record: the index drifted
                raise self._corrupt(k, "names a record that does not exist")
            if value and value[0] == 0:
                try:
                    rec = plain(value[1:])
                except Exception:  # decode() raises the CorruptionError
                    rec = decode(value)
            else:
                rec = decode(value)
            if not with_key:
                return rec
            try:
                return unpack(v), rec
            except (ValueError, TypeError) as exc:
                raise self._corrupt(k, "does not hold a record key") from exc

        return fetch

    def _corrupt(self, entry: bytes, what: str) -> CorruptionError:
        return CorruptionError(
            f"an entry of index {self.coll.name}.{self.name} {what} "
            f"({entry.hex()}); store.check() lists the damage"
        )

    def pairs(
        self,
        args: Any = None,
        lo: Any = None,
        hi: Any = None,
        prefix: Any = None,
        reverse: Any = None,
        max: int | None = None,
        include: bool = False,
    ) -> Iterator[tuple]:
        """Yield ``(index tuple, record key)`` in index order."""
        split = self._split
        return self._iter(
            lambda txn, k, v: tuple(split(k)),
            args,
            lo,
            hi,
            prefix,
            reverse,
            max,
            include,
        )

    def tups(
        self,
        args: Any = None,
        lo: Any = None,
        prefix: Any = None,  # before hi: the seed API's order for tups()
        hi: Any = None,
        reverse: Any = None,
        max: int | None = None,
        include: bool = False,
    ) -> Iterator[tuple]:
        """Yield the index tuples (the index function's values) in order.

        Note the argument order, kept from the earlier API: ``prefix``
        comes before ``hi`` here (pass them by name to be safe).
        """
        split = self._split
        return self._iter(
            lambda txn, k, v: split(k)[0], args, lo, hi, prefix, reverse, max, include
        )

    def keys(
        self,
        args: Any = None,
        lo: Any = None,
        hi: Any = None,
        prefix: Any = None,
        reverse: Any = None,
        max: int | None = None,
        include: bool = False,
    ) -> Iterator[tuple]:
        """Yield the keys of the records the entries point at, in index order."""
        unpack = keylib.unpack

        def key(txn: Any, k: bytes, v: bytes) -> Any:
            try:
                return unpack(v)
            except (ValueError, TypeError) as exc:
                raise self._corrupt(k, "does not hold a record key") from exc

        return self._iter(key, args, lo, hi, prefix, reverse, max, include)

    def items(
        self,
        args: Any = None,
        lo: Any = None,
        hi: Any = None,
        prefix: Any = None,
        reverse: Any = None,
        max: int | None = None,
        include: bool = False,
        raw: bool = False,
    ) -> Iterator[tuple]:
        """Yield ``(record key, record)`` in index order."""
        fetch = self._fetcher(raw, True)
        return self._iter(fetch, args, lo, hi, prefix, reverse, max, include)

    def values(
        self,
        args: Any = None,
        lo: Any = None,
        hi: Any = None,
        prefix: Any = None,
        reverse: Any = None,
        max: int | None = None,
        include: bool = False,
        raw: bool = False,
    ) -> Iterator[Any]:
        """Yield the records in index order."""
        fetch = self._fetcher(raw, False)
        return self._iter(fetch, args, lo, hi, prefix, reverse, max, include)

    def count(
        self,
        args: Any = None,
        lo: Any = None,
        hi: Any = None,
        prefix: Any = None,
        max: int | None = None,
        include: bool = False,
    ) -> int:
        """The number of entries in the range (at most ``max``)."""
        return sum(
            1
            for _ in self._iter(
                lambda txn, k, v: None, args, lo, hi, prefix, False, max, include
            )
        )

    def find(
        self,
        args: Any = None,
        lo: Any = None,
        hi: Any = None,
        prefix: Any = None,
        reverse: Any = None,
        include: bool = False,
        raw: bool = False,
        default: Any = None,
    ) -> Any:
        """The first record in the range, or ``default``."""
        return next(
            self.values(args, lo, hi, prefix, reverse, 1, include, raw), default
        )

    def get(self, x: Any, default: Any = None, raw: bool = False) -> Any:
        """The first record whose index tuple starts with ``x``, or ``default``."""
        return self.find(args=_query.as_tuple(x), raw=raw, default=default)

    def has(self, x: Any) -> bool:
        """Whether an entry with exactly the index tuple ``x`` exists."""
        if self._detached is not None:
            self._refuse()
        if self.building:
            self._not_ready()
        start = keylib.pack(_query.as_tuple(x), self._prefix) + SEP
        stop = keylib.prefix_bound(start)
        assert stop is not None
        expiry = self.coll.expiry
        if expiry is not None:
            rows = expiry.scan(start, stop, False, 1, lambda t, k, v: True, _record_key)
            return next(rows, False)
        return next(
            _query.scan(self.store, start, stop, False, 1, lambda t, k, v: True), False
        )

    # -- text search (token and q-gram indexes, acid/_text.py) ----------------

    def search(self, words: str) -> list[tuple[tuple, Any]]:
        """``(key, record)`` of the records holding every word of ``words``
        (kt's FTS_ALL), in key order; a token index only. No words, none."""
        func = self._text_func(_text.Tokens, "search", words)
        terms = set(func.terms(words))
        return self._text_query(lambda post: _all(post, terms), None)

    def search_any(self, words: str) -> list[tuple[tuple, Any]]:
        """``(key, record)`` of the records holding any word of ``words``
        (kt's FTS_ANY), in key order; a token index only."""
        func = self._text_func(_text.Tokens, "search_any", words)
        terms = set(func.terms(words))
        return self._text_query(lambda post: _any(post, terms), None)

    def search_phrase(self, phrase: str) -> list[tuple[tuple, Any]]:
        """``(key, record)`` of the records whose words include those of
        ``phrase`` adjacent and in order (kt's FTS_PHRASE), in key order.

        Candidates hold every word (the index); each is then confirmed by
        tokenizing its text again. A token index only.
        """
        func = self._text_func(_text.Tokens, "search_phrase", phrase)
        seq = list(func.terms(phrase))

        def confirm(rec: Any) -> bool:
            return any(_has_run(list(func.terms(t)), seq) for t in func.texts(rec))

        return self._text_query(lambda post: _all(post, set(seq)), confirm)

    def contains(self, needle: str) -> list[tuple[tuple, Any]]:
        """``(key, record)`` of the records whose field contains ``needle``
        (kt's STR_CONTAINS, case-sensitive), in key order; a q-gram index only.

        The postings of the needle's q-grams are intersected, then each
        candidate's text is checked, so there are never false positives. A
        needle shorter than ``q`` has no gram of its own: then every distinct
        gram of the index is scanned for it (cost: the index's size).
        """
        func = self._text_func(_text.QGrams, "contains", needle)

        def confirm(rec: Any) -> bool:
            return any(needle in t for t in func.texts(rec))

        if len(needle) < func.q:
            return self._text_query(lambda post: self._grams_with(needle), confirm)
        grams = set(func.terms(needle))
        return self._text_query(lambda post: _all(post, grams), confirm)

    def _text_func(self, kind: type[_text.TextFunction], what: str, arg: Any) -> Any:
        if self._detached is not None:
            self._refuse()
        if self.building:
            self._not_ready()
        if not isinstance(arg, str):
            raise TypeError(f"{what}() takes a str, not {type(arg).__name__}")
        if not isinstance(self.func, kind):
            made = "acid.tokens()" if kind is _text.Tokens else "acid.qgrams()"
            raise TypeError(
                f"index {self.coll.name}.{self.name}: {what}() needs an index "
                f"declared with {made}"
            )
        return self.func

    def _postings(self, term: str) -> set[bytes]:
        """The packed record keys of the entries of ``term`` (active txn)."""
        start = keylib.pack((term,), self._prefix) + SEP
        stop = keylib.prefix_bound(start)
        assert stop is not None
        txn = self.store.active()
        out = set()
        for k, v in txn.iter(start):
            if k >= stop:
                break
            out.add(v)
        return out

    def _grams_with(self, needle: str) -> set[bytes]:
        """Record keys of every entry whose gram contains ``needle``."""
        out: set[bytes] = set()
        for k, v in self.store.iter_space(self.id):
            tup = keylib.unpacks(k, self._prefix)[0]
            if tup and isinstance(tup[0], str) and needle in tup[0]:
                out.add(v)
        return out

    def _text_query(
        self,
        candidates: Callable[[Callable[[str], set[bytes]]], set[bytes]],
        confirm: Callable[[Any], bool] | None,
    ) -> list[tuple[tuple, Any]]:
        fetch = self._fetcher(False, True)
        expiry = self.coll.expiry

        def run() -> list[tuple[tuple, Any]]:
            txn = self.store.active()
            now = self.store.clock()
            out = []
            for rkey in sorted(candidates(self._postings)):  # bytes: key order
                if expiry is not None and not expiry.alive(txn, rkey, now):
                    continue
                key, rec = fetch(txn, rkey, rkey)
                if confirm is None or confirm(rec):
                    out.append((key, rec))
            return out

        return self.store.in_txn(run)

    def match_prefix(self, prefix: str, max: int | None = None) -> list[tuple]:
        """Index tuples whose first element is a str starting with ``prefix``."""
        return _query.match_prefix(lambda lo: self.tups(lo=lo), prefix, max)

    def match_regex(self, pattern: Any, max: int | None = None) -> list[tuple]:
        """Index tuples whose first element is a str where ``pattern`` is found."""
        return _query.match_regex(lambda lo: self.tups(lo=lo), pattern, max)

    def match_similar(
        self, origin: str, distance: int, max: int | None = None
    ) -> list[tuple]:
        """Index tuples whose first element is within ``distance`` edits."""
        return _query.match_similar(lambda lo: self.tups(lo=lo), origin, distance, max)

    def corrupt(self, entry: bytes, what: str) -> CorruptionError:
        """The error for an entry that is not what it should be."""
        return self._corrupt(entry, what)

    # Names from the earlier API, kept for code written against it.
    iterpairs = pairs
    itertups = tups
    iterkeys = keys
    iteritems = items
    itervalues = values


def _record_key(k: bytes, v: bytes) -> bytes:
    """The packed record key of an entry: its value."""
    return v


def index_meta(func: Any) -> dict[str, Any]:
    """What an index's metadata records about its function (text kind, q)."""
    return func.meta() if isinstance(func, _text.TextFunction) else {}


def _check_text_meta(coll: str, info: dict[str, Any], func: Any) -> None:
    stored = {k: info[k] for k in ("text", "q") if k in info}
    given = index_meta(func)
    if stored != given:
        raise ConfigError(
            f"index {coll}.{info['name']} was created with "
            f"{stored or 'a plain function'}, but is declared with "
            f"{given or 'a plain function'}; declare it as it was created"
        )


def _all(postings: Callable[[str], set[bytes]], terms: set[str]) -> set[bytes]:
    found: set[bytes] | None = None
    for term in terms:
        post = postings(term)
        found = post if found is None else found & post
        if not found:
            return set()
    return found or set()


def _any(postings: Callable[[str], set[bytes]], terms: set[str]) -> set[bytes]:
    found: set[bytes] = set()
    for term in terms:
        found |= postings(term)
    return found


def _has_run(words: list[str], seq: list[str]) -> bool:
    """Whether ``seq`` occurs in ``words`` as adjacent items, in order."""
    n = len(seq)
    if n == 0:
        return False
    return any(words[i : i + n] == seq for i in range(len(words) - n + 1))
