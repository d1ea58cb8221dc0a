"""The one exception tree of acid.

Every error acid raises on purpose derives from :class:`Error`. Where callers
naturally expect a builtin, the builtin is mixed in: :class:`NotFound` is a
``KeyError`` and :class:`KeyEncodingError` is a ``ValueError``.

``retryable`` tells a retry loop whether repeating the transaction may
succeed (a lock wait that timed out, say); it is ``False`` for mistakes.

>>> issubclass(NotFound, KeyError), issubclass(KeyEncodingError, ValueError)
(True, True)
"""

from __future__ import annotations

__all__ = [
    "AbortError",
    "ConfigError",
    "ConflictError",
    "ConstraintError",
    "CorruptionError",
    "EngineError",
    "Error",
    "IndexNotReady",
    "KeyEncodingError",
    "MapFullError",
    "NameInUse",
    "NotFound",
    "QueryError",
    "SchemaError",
    "TraceFormatError",
    "TxnError",
    "TxnTimeout",
]


class Error(Exception):
    """Root of every acid exception."""

    retryable: bool = False


class ConfigError(Error, ValueError):
    """Bad engine URL, unknown parameter, missing package, mismatched encoder.

    Also a ``ValueError``: it is always about a value the caller gave.
    """


class EngineError(Error):
    """The storage engine failed; the message says what to do about it."""


class CorruptionError(EngineError):
    """Stored bytes that acid did not write or cannot read (an empty or
    truncated value, an unknown compressor byte, a malformed file)."""


class MapFullError(EngineError):
    """An LMDB map is full: reopen with a larger ``map_size``."""


class TxnError(Error):
    """A transaction was used wrongly (write in a read txn, nesting, reuse)."""


class TxnTimeout(TxnError):
    """A writer waited too long for another writer to finish.

    ``attempts`` is set by a retry loop that gave up: how many times it ran.
    """

    retryable = True
    attempts: int | None = None


class ConflictError(TxnError):
    """A write transaction lost a conflict with one that committed first
    (a serialization failure, a deadlock, an optimistic writer whose keys
    changed since its snapshot). Nothing it wrote was committed; running it
    again may succeed (see ``store.transact``).

    ``attempts`` is set by a retry loop that gave up: how many times it ran.
    """

    retryable = True
    attempts: int | None = None


class NotFound(Error, KeyError):
    """A named object or record does not exist."""

    def __str__(self) -> str:  # KeyError quotes its argument; we want prose.
        return Exception.__str__(self)


class NameInUse(Error):
    """A collection, index or encoder name is already taken."""


class KeyEncodingError(Error, ValueError):
    """Bytes that are not a valid key, or a value the key encoding rejects."""


class ConstraintError(Error):
    """A record violates a rule declared on its collection or index."""


class SchemaError(ConstraintError):
    """A live Collection or Index no longer matches the stored schema.

    It was created in a transaction that rolled back, dropped, or changed by
    another Store or process; open it again (``store.add_collection``).
    """


class QueryError(Error, ValueError):
    """A malformed query: an unknown operator, an operand of the wrong type,
    a bad field path. The message names the operator and the path."""


class IndexNotReady(Error):
    """The index is still being built (``add_index(..., build="online")``);
    it answers queries once its backfill has finished."""


class TraceFormatError(Error, ValueError):
    """A trace file line that the replay tool cannot use."""


class AbortError(Error):
    """Raised by :func:`acid.abort` to unwind the active transaction quietly."""
