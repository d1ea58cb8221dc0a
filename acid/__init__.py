"""acid: records, secondary indexes and real transactions on ordered engines.

>>> import acid
>>> store = acid.open("skiplist:/")
>>> people = store.add_collection("people")
>>> _ = people.add_index("name", lambda p: p["name"])
>>> with store.begin(write=True):
...     people.put({"name": "Ada"})
(1,)
>>> people.indices["name"].get("Ada")
{'name': 'Ada'}
"""

from __future__ import annotations

from typing import Any

from acid import encoders, errors, keylib
from acid._fields import field, fields
from acid._text import qgrams, tokens
from acid._ttl import FOREVER
from acid.blobs import BlobStore
from acid.collection import CheckReport, Collection, add_index, check
from acid.index import Index
from acid.keylib import Desc, Key
from acid.query import Query
from acid.store import (
    KIND_COUNTER,
    KIND_ENCODER,
    KIND_INDEX,
    KIND_STRUCT,
    KIND_TABLE,
    Backoff,
    Store,
    TxnContext,
    abort,
    transactional,
)
from acid.store import (
    open_url as _open_url,
)

__all__ = [
    "FOREVER",
    "KIND_COUNTER",
    "KIND_ENCODER",
    "KIND_INDEX",
    "KIND_STRUCT",
    "KIND_TABLE",
    "Backoff",
    "BlobStore",
    "CheckReport",
    "Collection",
    "Desc",
    "Index",
    "Key",
    "Query",
    "Store",
    "TxnContext",
    "abort",
    "add_index",
    "check",
    "encoders",
    "errors",
    "field",
    "fields",
    "keylib",
    "open",
    "qgrams",
    "tokens",
    "transactional",
]

__version__ = "0.1.0"


def open(  # shadows the builtin: the seed API names it so
    url: str,
    trace_path: Any = None,
    txn_context: Any = None,
    *,
    prefix: bytes | str = b"",
    clock: Any = None,
) -> Store:
    """Open the engine at ``url`` and return a :class:`Store` over it.

    ``url`` is ``scheme:/path?param=value`` (``skiplist:/``, ``lmdb:/path``,
    ``leveldb:/path``); ``pkg.mod+scheme:/...`` imports ``pkg.mod`` first so
    it can register its engine. With ``trace_path`` every engine call is
    logged there (see ``docs/engines.md``); a path that cannot be opened for
    appending raises ``ConfigError``, a value that is not a path
    ``TypeError``. ``clock()`` returns the time in seconds (a float) that
    expiry compares deadlines with; it defaults to ``time.time``. Whatever
    fails, the engine is closed again (a LevelDB directory stays unlocked).
    """
    return _open_url(url, trace_path, txn_context, prefix=prefix, clock=clock)


def __getattr__(name: str) -> Any:
    if name == "aio":  # imported on first use: it brings in asyncio
        import importlib

        return importlib.import_module("acid.aio")
    raise AttributeError(f"module 'acid' has no attribute {name!r}")
