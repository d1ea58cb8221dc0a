"""The physical layout, named once: key spaces, metadata, the value codec.

Everything a :class:`~acid.Store` writes lives under its ``prefix``:

- ``prefix + pack((META, kind, *name))`` -> a packed ``(k, v, k, v, ...)``
  tuple: one record per collection, index, compressor, struct;
- ``prefix + pack((COUNTER, name))`` -> ``pack((value,))``;
- ``prefix + pack((SCHEMA,))`` -> 8 random bytes, rewritten by every schema
  change, so a Store notices changes made by another Store or process;
- ``prefix + pack((collection_id, *record_key))`` -> a stored value;
- ``prefix + pack((index_id, *index_tuple)) + SEP + pack(record_key)`` ->
  ``pack(record_key)``.

A stored value is one byte naming its compressor (0 is plain), then the
compressed encoder output (:class:`ValueCodec`). ``docs/layout.md`` has the
same in prose.

>>> codec = ValueCodec(encoders.JSON, encoders.PLAIN, lambda cid: None)
>>> codec.encode({"a": 1})
b'\\x00{"a":1}'
>>> codec.decode(b'\\x00{"a":1}')
{'a': 1}
"""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum
from typing import Any

from acid import encoders, keylib
from acid.errors import CorruptionError

__all__ = [
    "COMPRESSOR_COUNTER",
    "FIRST_USER_ID",
    "FORMAT_VERSION",
    "ID_COUNTER",
    "KINDS",
    "KIND_BLOBS",
    "KIND_COUNTER",
    "KIND_ENCODER",
    "KIND_INDEX",
    "KIND_STRUCT",
    "KIND_TABLE",
    "SEP",
    "Space",
    "ValueCodec",
    "meta_decode",
    "meta_encode",
]


class Space(IntEnum):
    """Reserved first elements of every key under a store's prefix.

    Collections and indexes get numeric ids from :data:`FIRST_USER_ID` on, so
    their records never share a first element with these spaces.
    """

    META = 1  # (META, kind, *name) -> packed (k, v, k, v, ...) tuple
    COUNTER = 2  # (COUNTER, name) -> packed (value,)
    SCHEMA = 3  # (SCHEMA,) -> token rewritten by every schema change


#: Version of this layout. Stored in the ``("struct", "acid")`` metadata by
#: the first schema change; a store written by a newer layout is refused.
FORMAT_VERSION = 1
#: First numeric id handed to a collection or an index.
FIRST_USER_ID = 10
#: Internal counter that allocates collection and index ids.
ID_COUNTER = "\x00ids"
#: Internal counter that allocates custom compressor ids.
COMPRESSOR_COUNTER = "\x00compressors"

KIND_TABLE = "table"
KIND_INDEX = "index"
KIND_ENCODER = "encoder"
KIND_COUNTER = "counter"
KIND_STRUCT = "struct"
KIND_BLOBS = "blobs"
KINDS = (KIND_TABLE, KIND_INDEX, KIND_ENCODER, KIND_COUNTER, KIND_STRUCT, KIND_BLOBS)

#: The byte between the index tuple and the record key inside an entry.
SEP: bytes = keylib.packs([(), ()])


def meta_encode(dct: dict[str, Any]) -> bytes:
    """A metadata dict as a packed ``(k, v, k, v, ...)`` tuple, keys sorted."""
    if not isinstance(dct, dict):
        raise TypeError(f"metadata must be a dict, not {type(dct).__name__}")
    flat: list[Any] = []
    for k, v in sorted(dct.items()):
        if not isinstance(k, str):
            raise TypeError(f"metadata keys must be str, not {type(k).__name__}")
        flat += (k, v)
    return keylib.pack(tuple(flat))


def meta_decode(raw: bytes) -> dict[str, Any]:
    """The inverse of :func:`meta_encode`; bad bytes raise CorruptionError."""
    try:
        flat = keylib.unpack(raw)
        return dict(zip(flat[::2], flat[1::2], strict=True))
    except (ValueError, TypeError) as exc:
        raise CorruptionError(f"a metadata record is unreadable ({exc})") from exc


class ValueCodec:
    """Turns records into stored values and back, for one collection.

    ``compressor_by_id(cid)`` finds the compressor of a value written with
    another one (the collection may have changed compressor), or ``None``.
    Every failure to read a value raises :class:`~acid.errors.CorruptionError`.
    """

    __slots__ = ("encoder", "compressor", "pack", "unpack", "cid", "_cbyte", "_by_id")

    def __init__(
        self,
        encoder: encoders.Encoder,
        compressor: encoders.Compressor,
        compressor_by_id: Callable[[int], encoders.Compressor | None],
    ) -> None:
        if compressor.id is None:
            raise ValueError(f"compressor {compressor.name!r} has no id yet")
        self.encoder = encoder
        self.compressor = compressor
        #: The encoder's functions, bound for the hot paths.
        self.pack = encoder.pack
        self.unpack = encoder.unpack
        #: The compressor's id; 0 means values are stored plain.
        self.cid: int = compressor.id
        self._cbyte = bytes([compressor.id])
        self._by_id = compressor_by_id

    def encode(self, rec: Any) -> bytes:
        """The stored value for ``rec``; a value that does not shrink stays plain."""
        # b"..." + any buffer gives bytes, so encoders may return bytearray.
        data = self.pack(rec)
        if self.cid:
            packed = self.compressor.compress(bytes(data))
            if len(packed) < len(data):
                return self._cbyte + packed
        return b"\x00" + data

    def decompress(self, value: bytes) -> bytes:
        """The encoder output inside a stored value."""
        if not value:
            raise CorruptionError("a stored value is empty; acid did not write it")
        cid = value[0]
        if cid == 0:
            return bytes(value[1:])
        comp = self.compressor if cid == self.cid else self._by_id(cid)
        if comp is None:
            raise CorruptionError(
                f"a stored value names compressor id {cid}, which this store "
                "does not know; register the custom compressor with "
                "store.add_encoder() before reading"
            )
        try:
            return comp.decompress(value[1:])
        except Exception as exc:
            raise CorruptionError(
                f"a stored value does not decompress with {comp.name!r} ({exc})"
            ) from exc

    def decode(self, value: bytes) -> Any:
        """The record inside a stored value."""
        data = value[1:] if value and value[0] == 0 else self.decompress(value)
        try:
            return self.unpack(data)
        except Exception as exc:
            raise self.corrupt(exc) from exc

    def corrupt(self, exc: BaseException) -> CorruptionError:
        """The error for a value the encoder could not read."""
        return CorruptionError(
            f"a stored value does not decode with encoder "
            f"{self.encoder.name!r} ({type(exc).__name__}: {exc})"
        )


def len_counter(meta: dict[str, Any]) -> str:
    """The name of the counter holding the record count of the collection
    whose ``"table"`` metadata is ``meta`` (reserved: it starts with NUL)."""
    uid = meta.get("uid")
    return "\x00len:" + (uid.hex() if isinstance(uid, bytes) else str(meta["id"]))
