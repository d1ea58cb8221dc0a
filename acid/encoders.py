"""Record encoders and value compressors.

An :class:`Encoder` turns a record into bytes and back (JSON by default,
msgpack, pickle, or your own functions). A :class:`Compressor` squeezes those
bytes; its small numeric id is written in front of every stored value, so a
collection can change compressor and still read what it wrote before.

>>> MSGPACK.unpack(MSGPACK.pack({"a": [1, 2]}))
{'a': [1, 2]}
>>> ZLIB.decompress(ZLIB.compress(b"x" * 100)) == b"x" * 100
True
"""

from __future__ import annotations

import json
import pickle
import threading
import zlib
from collections.abc import Callable, Iterable
from typing import Any

import msgpack
import zstandard

from acid import keylib
from acid.errors import ConfigError, NameInUse

__all__ = [
    "JSON",
    "MSGPACK",
    "PICKLE",
    "PLAIN",
    "ZLIB",
    "ZSTD",
    "Compressor",
    "Encoder",
    "Registry",
    "ZstdDictCompressor",
    "is_builtin",
    "train_zstd_dict",
]


class Encoder:
    """Serializes records: ``pack(obj) -> bytes`` and ``unpack(bytes) -> obj``.

    ``name`` is stored in the collection's metadata, so it must stay the same
    for the same format. ``unpack`` receives a ``bytes`` or ``memoryview``.

    Index entries are computed from a record as a later read gives it back,
    which may differ from the record given to ``put`` (JSON turns a tuple
    into a list). ``exact(rec) -> bool`` says when it surely does not: when
    ``unpack(pack(rec))`` gives ``rec`` back equal and of the same types all
    the way down. A write decodes what it encoded only when ``exact`` says
    ``False``, and refuses (``ValueError``) a record that does not decode.
    Without ``exact``, a collection decodes every record it writes while it
    has indexes, and none while it has none.

    >>> upper = Encoder("upper", lambda s: s.upper().encode(), bytes.decode)
    >>> upper.unpack(upper.pack("abc"))
    'ABC'
    >>> upper.stored("abc", upper.pack("abc"))
    'ABC'
    """

    __slots__ = ("name", "pack", "packer", "unpack", "exact", "_whole")

    def __init__(
        self,
        name: str,
        pack: Callable[[Any], bytes],
        unpack: Callable[[Any], Any],
        packer: Callable[[], Callable[[Any], bytes]] | None = None,
        *,
        exact: Callable[[Any], bool] | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError("an encoder name must be a non-empty str")
        if not callable(pack) or not callable(unpack):
            raise TypeError(f"encoder {name!r}: pack and unpack must be callable")
        if exact is not None and not callable(exact):
            raise TypeError(f"encoder {name!r}: exact must be callable or None")
        self.name = name
        self.pack = pack
        self.unpack = unpack
        #: ``packer()`` is a function doing what ``pack`` does, to call many
        #: times in a row in one thread (the bulk path): it may skip set-up
        #: that ``pack`` repeats on every call.
        self.packer: Callable[[], Callable[[Any], bytes]] = packer or (lambda: pack)
        #: ``exact(rec)``: whether ``unpack(pack(rec))`` surely is ``rec``.
        self.exact = exact
        # Built-in JSON and msgpack: a dict whose keys become one key when
        # stored (JSON: 1 and "1") loses values; refuse it (see stored()).
        self._whole = False

    def stored(self, rec: Any, data: Any) -> Any:
        """The record a read of ``data`` (which is ``pack(rec)``) gives back.

        Raises ``ValueError`` naming the encoder when ``data`` does not
        decode (msgpack packs a dict with a tuple key, but cannot give it
        back) or, for the built-in JSON and msgpack encoders, when two keys
        of one dict become one (JSON stores ``1`` and ``"1"`` alike).

        >>> JSON.stored({"a": (1, 2), 3: None}, JSON.pack({"a": (1, 2), 3: None}))
        {'a': [1, 2], '3': None}
        >>> try:
        ...     JSON.stored({1: "a", "1": "b"}, JSON.pack({1: "a", "1": "b"}))
        ... except ValueError as exc:
        ...     print(str(exc).split(": ")[1])
        the dict keys 1 and '1' (int and str) are both stored as '1'
        """
        try:
            back = self.unpack(data)
        except Exception as exc:
            raise ValueError(
                f"encoder {self.name!r} cannot give this record back once "
                f"stored ({type(exc).__name__}: {exc}); change the record (a "
                "tuple as a dict key, say) or use another encoder"
            ) from exc
        if self._whole:
            _same_keys(self, rec, back)
        return back

    def __repr__(self) -> str:
        return f"<Encoder {self.name!r}>"


def _same_keys(enc: Encoder, rec: Any, back: Any) -> None:
    """Raise ValueError if a dict in ``back`` (``rec`` decoded) lost keys.

    The built-in encoders keep the order of dict items and the length of
    sequences, so the two walk in step; a loop, not recursion, as the
    encoders take deeper records than the Python stack.
    """
    todo = [(rec, back)]
    while todo:
        a, b = todo.pop()
        if isinstance(a, dict) and type(b) is dict:
            if len(a) != len(b):
                raise ValueError(_collision(enc, a))
            todo.extend(zip(a.values(), b.values(), strict=False))
        elif isinstance(a, list | tuple) and type(b) is list:
            todo.extend(zip(a, b, strict=False))


def _collision(enc: Encoder, a: dict) -> str:
    """Which two keys of ``a`` became one when stored."""
    seen: dict[Any, Any] = {}
    for k in a:
        stored = next(iter(enc.unpack(enc.pack({k: None}))))
        if stored in seen:
            types = sorted({type(k).__name__, type(seen[stored]).__name__})
            return (
                f"encoder {enc.name!r} cannot store this record as it is: the "
                f"dict keys {seen[stored]!r} and {k!r} ({' and '.join(types)}) "
                f"are both stored as {stored!r}"
            )
        seen[stored] = k
    return (  # not seen: a dict that changed while it was encoded
        f"encoder {enc.name!r} cannot store this record as it is: a dict of "
        f"{len(a)} keys is stored with fewer"
    )


def _json_unpack(data: Any) -> Any:
    return json.loads(bytes(data))


JSON = Encoder(
    "json",
    lambda obj: json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode(),
    _json_unpack,
    exact=keylib.exact_json,
)
JSON._whole = True
_packers = threading.local()


def _msgpack_pack(obj: Any) -> bytes:
    # A Packer per thread: msgpack.packb builds a new one on every call,
    # which costs more than the packing of a small record (bench/layer_bench).
    try:
        return _packers.p.pack(obj)
    except AttributeError:
        _packers.p = msgpack.Packer(use_bin_type=True)
        return _packers.p.pack(obj)


def _msgpack_packer() -> Callable[[Any], bytes]:
    """This thread's Packer's ``pack``: ``_msgpack_pack`` without its
    per-call look-up."""
    try:
        pack: Callable[[Any], bytes] = _packers.p.pack
    except AttributeError:
        _packers.p = msgpack.Packer(use_bin_type=True)
        pack = _packers.p.pack
    return pack


def _msgpack_unpack(data: Any, _unpackb: Any = msgpack.unpackb) -> Any:
    # strict_map_key (msgpack's default) refuses any map key but str and
    # bytes, a guard against hash flooding by untrusted input; stored
    # values are trusted, and a record with an int key must read back.
    # Passing the option costs more than the retry (the usual record has
    # str keys only), so only a refused value is read again without it.
    try:
        return _unpackb(data)
    except ValueError:
        return _unpackb(data, strict_map_key=False)


MSGPACK = Encoder(
    "msgpack",
    _msgpack_pack,
    _msgpack_unpack,
    _msgpack_packer,
    exact=keylib.exact_msgpack,
)
MSGPACK._whole = True
# Pickle gives ordinary data back exactly (tuples, any keys); exact_pickle
# lets through what surely does, and instances of other classes are decoded
# (their pickling may drop or change state).
PICKLE = Encoder(
    "pickle",
    lambda obj: pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL),
    pickle.loads,
    exact=keylib.exact_pickle,
)


class Compressor:
    """Compresses encoded records: ``compress(bytes)``/``decompress(bytes)``.

    ``id`` is the number written in front of each value (0-127). The built-in
    compressors own ids 0-15; a custom one gets its id from the store's
    registry when it is passed to :meth:`acid.Store.add_encoder` (``id=None``).
    """

    __slots__ = ("name", "id", "compress", "decompress")

    def __init__(
        self,
        name: str,
        compress: Callable[[bytes], bytes],
        decompress: Callable[[Any], bytes],
        id: int | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError("a compressor name must be a non-empty str")
        if not callable(compress) or not callable(decompress):
            raise TypeError(
                f"compressor {name!r}: compress and decompress must be callable"
            )
        self.name = name
        self.id = id
        self.compress = compress
        self.decompress = decompress

    def __repr__(self) -> str:
        return f"<Compressor {self.name!r} id={self.id}>"


def _identity(data: Any) -> bytes:
    return bytes(data)


def _zstd_pair(
    level: int, dict_data: bytes | None
) -> tuple[Callable[[bytes], bytes], Callable[[Any], bytes]]:
    zdict = zstandard.ZstdCompressionDict(dict_data) if dict_data else None
    # One (de)compressor object per thread is the documented safe use; these
    # are created on demand because compressors are shared across threads.
    local = threading.local()

    def compress(data: bytes) -> bytes:
        c = getattr(local, "c", None)
        if c is None:
            c = local.c = zstandard.ZstdCompressor(
                level=level, dict_data=zdict, write_content_size=True
            )
        return c.compress(data)

    def decompress(data: Any) -> bytes:
        d = getattr(local, "d", None)
        if d is None:
            d = local.d = zstandard.ZstdDecompressor(dict_data=zdict)
        return d.decompress(data)

    return compress, decompress


PLAIN = Compressor("plain", _identity, _identity, id=0)
ZLIB = Compressor("zlib", zlib.compress, zlib.decompress, id=1)
ZSTD = Compressor("zstd", *_zstd_pair(3, None), id=2)

#: Compressors every store knows without registration, by id.
BUILTIN_COMPRESSORS: dict[int, Compressor] = {c.id: c for c in (PLAIN, ZLIB, ZSTD)}  # type: ignore[misc]
BUILTIN_ENCODERS: dict[str, Encoder] = {e.name: e for e in (JSON, MSGPACK, PICKLE)}
#: Ids below this are reserved for built-in compressors.
FIRST_CUSTOM_ID = 16
MAX_COMPRESSOR_ID = 127


class ZstdDictCompressor(Compressor):
    """Zstandard with a trained dictionary: small records shrink ~2x.

    Create one with :meth:`acid.Store.train_compressor`, which stores the
    dictionary in the store's metadata so values stay readable after reopen.
    """

    __slots__ = ("dict_data", "level")

    def __init__(
        self, name: str, dict_data: bytes, level: int = 3, id: int | None = None
    ) -> None:
        if not dict_data:
            raise ConfigError(f"compressor {name!r}: empty zstd dictionary")
        super().__init__(name, *_zstd_pair(level, dict_data), id=id)
        self.dict_data = bytes(dict_data)
        self.level = level


def train_zstd_dict(samples: Iterable[bytes], size: int = 8192) -> bytes:
    """Train a zstd dictionary of at most ``size`` bytes from ``samples``.

    Raises :class:`ConfigError` when there are too few samples to train on.
    """
    data = [bytes(s) for s in samples]
    if len(data) < 8:
        raise ConfigError(
            "need at least 8 sample records to train a zstd dictionary, "
            f"got {len(data)}"
        )
    try:
        return zstandard.train_dictionary(size, list[Any](data)).as_bytes()
    except zstandard.ZstdError as exc:
        raise ConfigError(
            f"zstd dictionary training failed ({exc}); give more or larger samples, "
            "or a smaller size"
        ) from exc


class Registry:
    """The encoders and compressors one store knows, by name and by id.

    It only remembers; :class:`acid.Store` persists custom compressor ids in
    its metadata and undoes registrations made in a transaction that rolls
    back.

    >>> reg = Registry()
    >>> reg.encoder("msgpack") is MSGPACK, reg.compressor_by_id(2) is ZSTD
    (True, True)
    """

    __slots__ = ("_encoders", "_compressors", "_by_id")

    def __init__(self) -> None:
        self._encoders: dict[str, Encoder] = dict(BUILTIN_ENCODERS)
        self._compressors: dict[str, Compressor] = {
            c.name: c for c in BUILTIN_COMPRESSORS.values()
        }
        self._by_id: dict[int, Compressor] = dict(BUILTIN_COMPRESSORS)

    def encoder(self, name: str) -> Encoder | None:
        """The encoder registered as ``name``, or ``None``."""
        return self._encoders.get(name)

    def compressor(self, name: str) -> Compressor | None:
        """The compressor registered as ``name``, or ``None``."""
        return self._compressors.get(name)

    def compressor_by_id(self, cid: int) -> Compressor | None:
        """The compressor whose values start with byte ``cid``, or ``None``."""
        return self._by_id.get(cid)

    def add_encoder(self, encoder: Encoder) -> bool:
        """Register ``encoder``; return whether it was new.

        Raises :class:`~acid.errors.NameInUse` for another encoder's name.
        """
        known = self._encoders.get(encoder.name)
        if known is encoder:
            return False
        if known is not None:
            raise NameInUse(f"another encoder is registered as {encoder.name!r}")
        self._encoders[encoder.name] = encoder
        return True

    def remove_encoder(self, encoder: Encoder) -> None:
        """Forget ``encoder`` (built-in encoders stay)."""
        if self._encoders.get(encoder.name) is encoder and not is_builtin(encoder):
            del self._encoders[encoder.name]

    def add_compressor(self, comp: Compressor) -> None:
        """Register ``comp``, which must have its id."""
        if comp.id is None:
            raise ValueError(f"compressor {comp.name!r} has no id yet")
        self._compressors[comp.name] = comp
        self._by_id[comp.id] = comp

    def remove_compressor(self, comp: Compressor) -> None:
        """Forget ``comp`` (built-in compressors stay)."""
        if is_builtin(comp):
            return
        if self._compressors.get(comp.name) is comp:
            del self._compressors[comp.name]
        if comp.id is not None and self._by_id.get(comp.id) is comp:
            del self._by_id[comp.id]

    def custom_compressors(self) -> list[Compressor]:
        """The registered compressors that are not built in."""
        return [c for c in self._compressors.values() if not is_builtin(c)]


def is_builtin(obj: Encoder | Compressor) -> bool:
    """Whether ``obj`` is one of the encoders or compressors every store knows."""
    if isinstance(obj, Compressor):
        return BUILTIN_COMPRESSORS.get(obj.id) is obj  # type: ignore[arg-type]
    return BUILTIN_ENCODERS.get(obj.name) is obj
