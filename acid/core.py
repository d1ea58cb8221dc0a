"""The names the seed API documents under ``acid.core``.

The implementation lives in :mod:`acid.store`; this module only re-exports.

>>> from acid import core, store
>>> core.KIND_TABLE is store.KIND_TABLE and core.TxnContext is store.TxnContext
True
"""

from acid.store import (
    KIND_COUNTER,
    KIND_ENCODER,
    KIND_INDEX,
    KIND_STRUCT,
    KIND_TABLE,
    Store,
    TxnContext,
)

__all__ = [
    "KIND_COUNTER",
    "KIND_ENCODER",
    "KIND_INDEX",
    "KIND_STRUCT",
    "KIND_TABLE",
    "Store",
    "TxnContext",
]
