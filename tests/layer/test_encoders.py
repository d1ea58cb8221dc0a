"""Encoders and compressors: round trips, persistence, trained dictionaries."""

from __future__ import annotations

import random

import msgpack
import pytest

import acid
from acid import encoders
from acid.errors import ConfigError, CorruptionError, NameInUse, NotFound

RECORDS = [
    {"id": 1, "name": "Ada", "tags": ["a", "b"], "n": None, "f": 1.5, "ok": True},
    [1, 2, 3],
    "text ✓",
    0,
    {},
]


@pytest.mark.parametrize("encoder", [encoders.JSON, encoders.MSGPACK, encoders.PICKLE])
@pytest.mark.parametrize("compressor", [encoders.PLAIN, encoders.ZLIB, encoders.ZSTD])
def test_round_trip(store: acid.Store, encoder: object, compressor: object) -> None:
    coll = store.add_collection("c", encoder=encoder, compressor=compressor)
    big = {"blob": "z" * 5000}
    with store.begin(write=True):
        for i, rec in enumerate([*RECORDS, big]):
            coll.put(rec, key=i)
    assert [coll.get(i) for i in range(len(RECORDS) + 1)] == [*RECORDS, big]
    raw = store.engine.begin()
    try:
        stored = raw.get(acid.keylib.pack((coll.id, len(RECORDS)), store.prefix))
    finally:
        raw.abort()
    assert stored is not None
    if compressor is encoders.PLAIN:
        assert stored[0] == 0
    else:  # compressible: stored compressed, and smaller
        assert stored[0] == compressor.id and len(stored) < 1000  # type: ignore[attr-defined]


def test_incompressible_values_are_stored_plain(store: acid.Store) -> None:
    coll = store.add_collection("c", encoder=encoders.PICKLE, compressor=encoders.ZLIB)
    data = random.Random(1).randbytes(64)
    coll.put(data, key=1)
    assert coll.get(1) == data
    assert coll.get(1, raw=True) == encoders.PICKLE.pack(data)


def test_switching_compressor_keeps_old_values(open_store: object) -> None:
    store = open_store()  # type: ignore[operator]
    store.add_collection("c", compressor="zlib").put("x" * 500, key=1)
    coll = store.add_collection("c", compressor=encoders.ZSTD)
    coll.put("y" * 500, key=2)
    assert coll.get(1) == "x" * 500 and coll.get(2) == "y" * 500


def test_trained_dictionary_shrinks_small_records(open_store: object) -> None:
    store = open_store()  # type: ignore[operator]
    rng = random.Random(7)
    recs = [
        {
            "id": i,
            "name": f"user{i}",
            "email": f"user{i}@example.com",
            "age": rng.randint(18, 90),
            "tags": rng.sample(["red", "green", "blue", "x"], 2),
        }
        for i in range(2000)
    ]
    samples = [encoders.MSGPACK.pack(r) for r in recs[:1000]]
    comp = store.train_compressor("users-dict", samples, size=4096)
    assert comp.id is not None and comp.id >= encoders.FIRST_CUSTOM_ID
    coll = store.add_collection("users", encoder="msgpack", compressor=comp)
    plain = store.add_collection("plain", encoder="msgpack", compressor="zstd")
    with store.begin(write=True):
        for r in recs[1000:]:
            coll.put(r, key=r["id"])
            plain.put(r, key=r["id"])
    txn = store.engine.begin()
    try:
        sizes = [
            len(txn.get(acid.keylib.pack((c.id, 1500), store.prefix)))
            for c in (coll, plain)
        ]
    finally:
        txn.abort()
    raw_len = len(msgpack.packb(recs[1500]))
    assert sizes[0] < raw_len * 0.75, (sizes, raw_len)  # measured ~2x smaller
    assert sizes[1] >= raw_len  # plain zstd cannot help on ~100 bytes: stored plain
    assert coll.get(1500) == recs[1500]
    with pytest.raises(NameInUse):
        store.train_compressor("users-dict", samples)
    # A fresh Store over the same engine finds the dictionary in metadata.
    fresh = acid.Store(store.engine, prefix=store.prefix)
    assert fresh.add_collection("users").get(1999) == recs[1999]
    assert isinstance(fresh.get_encoder("users-dict"), encoders.ZstdDictCompressor)


def test_training_needs_samples(store: acid.Store) -> None:
    with pytest.raises(ConfigError, match="sample"):
        store.train_compressor("d", [b"x"])


def test_custom_compressor_gets_persistent_id(store: acid.Store) -> None:
    rev = encoders.Compressor("reverse-pad", lambda b: b[::-1][:1], lambda b: b)
    store.add_encoder(rev)
    assert rev.id == encoders.FIRST_CUSTOM_ID
    again = encoders.Compressor("reverse-pad", bytes, bytes)
    acid.Store(store.engine, prefix=store.prefix).add_encoder(again)
    assert again.id == rev.id
    with pytest.raises(NameInUse):
        store.add_encoder(encoders.Compressor("zlib", bytes, bytes))


def test_bad_encoder_arguments(store: acid.Store) -> None:
    with pytest.raises(TypeError):
        store.add_encoder("json")  # type: ignore[arg-type]
    with pytest.raises(NotFound):
        store.get_encoder("nope")
    with pytest.raises(TypeError, match="non-empty"):
        encoders.Encoder("", bytes, bytes)
    with pytest.raises(TypeError, match="callable"):
        encoders.Encoder("x", 1, bytes)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="non-empty"):
        encoders.Compressor("", bytes, bytes)
    with pytest.raises(TypeError, match="callable"):
        encoders.Compressor("x", bytes, None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        store.add_collection("c", encoder=encoders.ZLIB)  # type: ignore[arg-type]


def test_unknown_compressor_id_in_value(store: acid.Store) -> None:
    coll = store.add_collection("c")
    with store.begin(write=True) as txn:
        txn.put(acid.keylib.pack((coll.id, 1), store.prefix), b"\x63data")
    with pytest.raises(CorruptionError, match="compressor id 99"):
        coll.get(1)
    with pytest.raises(CorruptionError, match="compressor id 99"):
        list(coll.values())
