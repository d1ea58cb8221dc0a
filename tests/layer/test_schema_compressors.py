"""Custom compressors registered in a block that rolls back."""

from __future__ import annotations

import zlib

import acid
from acid.encoders import Compressor


def test_rolled_back_compressor_can_be_registered_again_after_another(
    store: acid.Store,
) -> None:
    foo = Compressor("foo", zlib.compress, zlib.decompress)
    bar = Compressor("bar", zlib.compress, zlib.decompress)
    with store.begin(write=True):
        store.add_encoder(foo)
        acid.abort()
    store.add_encoder(bar)  # takes the id the rolled-back "foo" had
    store.add_encoder(foo)  # "leaves no trace": must work like a first time
    assert foo.id != bar.id
    coll = store.add_collection("c", compressor=foo)
    coll.put({"x": "y" * 200}, key=1)
    assert coll.get(1) == {"x": "y" * 200}


def test_refused_compressor_registration_leaves_no_metadata(
    store: acid.Store,
) -> None:
    fixed = Compressor("fixed", zlib.compress, zlib.decompress, id=40)
    try:
        store.add_encoder(fixed)  # this store would give the name id 16
    except acid.errors.ConfigError:
        pass
    else:  # accepting the preset id would be fine too
        return
    assert store.iter_meta("encoder") == [], "a refused registration was committed"
