"""The engine contract: ordered byte-key stores with transactions.

An engine hands out transactions; a transaction reads and writes ``bytes``
keys and values and iterates them in byte order::

    >>> engine = from_url("skiplist:/")
    >>> with engine.begin(write=True) as txn:
    ...     txn.put(b"b", b"2")
    ...     txn.put(b"a", b"1")
    >>> with engine.begin() as txn:
    ...     list(txn.iter(b""))
    [(b'a', b'1'), (b'b', b'2')]
    >>> engine.close()

Engines are named by URLs, ``scheme:path?param=value&...``, parsed once by
:func:`parse_url`. The built-in schemes are ``skiplist`` (in memory),
``lmdb`` and ``leveldb``; other packages add schemes with :func:`register` or
through the entry-point group ``acid.engines``. See ``docs/engines.md``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import re
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl

from acid.errors import ConfigError, EngineError, TxnError, TxnTimeout

__all__ = [
    "DEFAULT_LOCK_TIMEOUT",
    "Engine",
    "EngineURL",
    "Param",
    "Txn",
    "from_url",
    "known_schemes",
    "parse_bool",
    "parse_size",
    "parse_url",
    "register",
    "resolve_params",
]

#: Seconds a writer waits for another writer when neither ``begin(timeout=)``
#: nor the URL parameter ``lock_timeout`` says otherwise.
DEFAULT_LOCK_TIMEOUT = 30.0


class Txn:
    """A transaction. Engines subclass this; callers never construct it.

    ``write`` says whether writes are allowed. ``commit`` lands every write
    atomically, ``abort`` discards them; afterwards every call raises
    :class:`~acid.errors.TxnError`, except ``abort``, which is a no-op so
    that cleanup code may call it unconditionally. As a context manager the
    transaction commits when the block succeeds and aborts when it raises.
    """

    write: bool = False
    _done: bool = False

    def get(self, key: bytes) -> bytes | None:
        """The value stored under ``key``, or ``None``."""
        raise NotImplementedError

    def put(self, key: bytes, value: bytes) -> None:
        """Store ``value`` under ``key``, replacing any previous value."""
        raise NotImplementedError

    def delete(self, key: bytes) -> bool:
        """Remove ``key``; ``True`` if it existed."""
        raise NotImplementedError

    def iter(self, key: bytes, reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
        """``(key, value)`` pairs from the first key ``>= key`` upwards, or
        with ``reverse`` from the last key ``<= key`` downwards.

        The iterator stays valid while this transaction writes: after it
        yielded ``k``, its next item is the first key after ``k`` (before
        ``k`` when reversed) in the transaction's view at that moment,
        including the transaction's own puts and deletes.
        """
        raise NotImplementedError

    def replace(self, key: bytes, value: bytes) -> bytes | None:
        """Store ``value`` under ``key`` and return the previous value."""
        old = self.get(key)
        self.put(key, value)
        return old

    def pop(self, key: bytes) -> bytes | None:
        """Remove ``key`` and return its value (``None`` if it was absent)."""
        old = self.get(key)
        if old is not None:
            self.delete(key)
        return old

    def commit(self) -> None:
        """Land every write of this transaction atomically and end it."""
        raise NotImplementedError

    def abort(self) -> None:
        """Discard this transaction's writes and end it; no-op once ended."""
        raise NotImplementedError

    @property
    def closed(self) -> bool:
        """``True`` once the transaction was committed or aborted."""
        return self._done

    def __enter__(self) -> Txn:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.abort()
        elif not self._done:
            self.commit()

    # Helpers for subclasses. Engines install the plain functions
    # ``txn_ended``/``txn_read_only`` as *instance* attributes: a bound method
    # stored on its own instance would make a reference cycle and delay
    # freeing the transaction (and its reader slot) until the cyclic GC runs.
    def _ended(self, *args: object, **kwargs: object) -> Any:
        """Stand-in for every operation once the transaction has ended."""
        return txn_ended()

    def _read_only(self, *args: object, **kwargs: object) -> Any:
        """Stand-in for write operations of a read transaction."""
        if self._done:
            txn_ended()
        return txn_read_only()


def txn_ended(*args: object, **kwargs: object) -> Any:
    """Raise the error for using a committed or aborted transaction."""
    raise TxnError("transaction already committed or aborted")


def txn_read_only(*args: object, **kwargs: object) -> Any:
    """Raise the error for writing in a read transaction."""
    raise TxnError("write in a read transaction; begin the transaction with write=True")


class Engine:
    """An ordered key-value store handing out transactions.

    Capabilities are class attributes, so callers and tests can branch on
    what an engine can do rather than on its class:

    ``snapshots``
        a read transaction sees one stable snapshot for its whole life.
    ``multi_process``
        several processes may open the same location at once.
    ``persistent``
        data survive ``close()`` and reopening the same URL.
    ``max_key_size``
        the longest key the engine stores, ``None`` for no limit. Keys must
        be non-empty (LMDB cannot store the empty key).
    """

    snapshots: bool = True
    multi_process: bool = False
    persistent: bool = False
    max_key_size: int | None = None
    url: str = ""

    def begin(self, write: bool = False, timeout: float | None = None) -> Txn:
        """Start a transaction.

        A writer waits at most ``timeout`` seconds for another writer
        (``None``: the engine's ``lock_timeout``) and then raises
        :class:`~acid.errors.TxnTimeout`. Readers never wait.
        """
        raise NotImplementedError

    def get(self, key: bytes) -> bytes | None:
        """One read in a snapshot of its own: ``begin()``, ``get``, ``abort``.

        The layer above calls this for reads outside any transaction, so an
        engine may override it with something cheaper that means the same.
        """
        txn = self.begin()
        try:
            return txn.get(key)
        finally:
            txn.abort()

    def close(self) -> None:
        """Release the engine; further use raises ``EngineError``.

        Closing an engine again is a no-op.
        """
        raise NotImplementedError

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url!r}>"


def acquire_writer(
    lock: threading.Lock, timeout: float | None, default: float, what: str
) -> None:
    """Take an engine's writer lock or raise ``TxnTimeout`` saying why."""
    if timeout is not None and not timeout >= 0:  # also rejects nan
        raise TxnError(f"timeout must be >= 0 seconds, got {timeout!r}")
    if lock.acquire(False):  # uncontended: the common case, and the cheapest
        return
    wait = default if timeout is None else timeout
    if not lock.acquire(timeout=wait):
        raise TxnTimeout(
            f"{what}: another write transaction held the writer lock for "
            f"{wait:g} s; commit or abort it, or pass a longer timeout "
            "(begin(write=True, timeout=...) or the URL parameter lock_timeout)"
        )


def closed_engine(url: str) -> EngineError:
    return EngineError(f"engine {url!r} is closed; open it again with from_url()")


# -- URLs -------------------------------------------------------------------


@dataclass(frozen=True)
class EngineURL:
    """A parsed engine URL: ``scheme:path?params``.

    >>> parse_url("lmdb:data/app?map_size=1GiB")
    EngineURL(scheme='lmdb', path='data/app', params={'map_size': '1GiB'}, module=None)
    """

    scheme: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    module: str | None = None

    def __str__(self) -> str:
        text = f"{self.scheme}:{self.path}"
        if self.module:
            text = f"{self.module}+{text}"
        if self.params:
            text += "?" + "&".join(f"{k}={v}" for k, v in self.params.items())
        return text


_SCHEME = re.compile(r"^(?:(?P<mod>[A-Za-z_][\w.]*)\+)?(?P<scheme>[A-Za-z][\w.-]*):")


def parse_url(url: str) -> EngineURL:
    """Split an engine URL into scheme, path and parameters.

    An optional ``package.module+`` before the scheme names a module to
    import first, so that it can :func:`register` the scheme.

    >>> parse_url("skiplist:/")
    EngineURL(scheme='skiplist', path='/', params={}, module=None)
    >>> parse_url("mypkg.engines+kv:/srv/kv?x=1").module
    'mypkg.engines'
    """
    if not isinstance(url, str):
        raise ConfigError(f"engine URL must be a str, got {type(url).__name__}")
    match = _SCHEME.match(url)
    if match is None:
        raise ConfigError(
            f"bad engine URL {url!r}; expected scheme:path?param=value, "
            "e.g. 'lmdb:/var/data/app' or 'skiplist:/'"
        )
    rest = url[match.end() :]
    path, _, query = rest.partition("?")
    if path.startswith("//"):  # tolerate lmdb:///abs/path
        path = "/" + path.lstrip("/")
    params: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name in params:
            raise ConfigError(f"engine URL {url!r} repeats parameter {name!r}")
        params[name] = value
    return EngineURL(match["scheme"].lower(), path, params, match["mod"])


_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1000,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1000**3,
    "gib": 1024**3,
    "t": 1024**4,
    "tb": 1000**4,
    "tib": 1024**4,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str) -> int:
    """A byte count from ``"1GiB"``, ``"512MiB"``, ``"64MB"`` or ``"4096"``.

    >>> parse_size("1GiB"), parse_size("64MB"), parse_size("4096")
    (1073741824, 64000000, 4096)
    """
    match = _SIZE.match(text)
    unit = match[2].lower() if match else ""
    if match is None or unit not in _UNITS:
        raise ValueError("a size such as 4096, 64MB, 512MiB or 1GiB")
    return int(float(match[1]) * _UNITS[unit])


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_bool(text: str) -> bool:
    """``true/false/1/0/yes/no`` (any case) as a ``bool``."""
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("true or false (also 1/0, yes/no)")


def _parse_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError("an integer") from None


def _parse_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value < 0:
        raise ValueError("a number of seconds >= 0, e.g. 30 or 0.5")
    return value


@dataclass(frozen=True)
class Param:
    """One URL parameter an engine accepts: how to parse it and its default."""

    parse: Callable[[str], Any]
    default: Any
    help: str = ""

    SIZE = parse_size
    BOOL = parse_bool
    INT = _parse_int
    SECONDS = _parse_seconds


def resolve_params(url: EngineURL, spec: Mapping[str, Param]) -> dict[str, Any]:
    """Parse ``url.params`` against ``spec``; fill in defaults.

    Unknown names and unparsable values raise ``ConfigError`` naming the
    valid parameters or the expected form.
    """
    unknown = sorted(set(url.params) - set(spec))
    if unknown:
        raise ConfigError(
            f"{url.scheme}: unknown parameter {', '.join(map(repr, unknown))}; "
            f"valid parameters are {', '.join(sorted(spec)) or '(none)'}"
        )
    values = {name: p.default for name, p in spec.items()}
    for name, text in url.params.items():
        try:
            values[name] = spec[name].parse(text)
        except ValueError as exc:
            raise ConfigError(
                f"{url.scheme}: bad value {text!r} for parameter {name!r}; "
                f"expected {exc}"
            ) from None
    return values


# -- Registry ---------------------------------------------------------------

Factory = Callable[[EngineURL], Engine]

_registry: dict[str, Factory] = {}
_registry_lock = threading.Lock()


def register(scheme: str, factory: Factory) -> None:
    """Make ``from_url`` open URLs of ``scheme`` with ``factory(EngineURL)``."""
    if not re.fullmatch(r"[A-Za-z][\w.-]*", scheme):
        raise ConfigError(f"bad engine scheme name {scheme!r}")
    with _registry_lock:
        _registry[scheme.lower()] = factory


def _builtin(module: str, attr: str, extra: str | None = None) -> Factory:
    def factory(url: EngineURL) -> Engine:
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:
            hint = f"pip install 'acid[{extra}]'" if extra else "reinstall acid"
            raise ConfigError(
                f"{url.scheme}: engine needs the package {exc.name!r}, which is "
                f"not installed; {hint}"
            ) from exc
        opened: Engine = getattr(mod, attr).from_url(url)
        return opened

    return factory


register("skiplist", _builtin("acid.engines.skiplist", "SkipListEngine"))
register("lmdb", _builtin("acid.engines.lmdb", "LMDBEngine"))
register("leveldb", _builtin("acid.engines.leveldb", "LevelDBEngine", "leveldb"))


def _entry_point(scheme: str) -> Factory | None:
    for ep in importlib.metadata.entry_points(group="acid.engines"):
        if ep.name.lower() == scheme:
            try:
                factory: Factory = ep.load()
            except Exception as exc:
                raise ConfigError(
                    f"{scheme}: loading the engine entry point {ep.value!r} "
                    f"failed: {exc}"
                ) from exc
            register(scheme, factory)
            return factory
    return None


def known_schemes() -> list[str]:
    """Every scheme ``from_url`` can open: registered and entry points."""
    names = set(_registry)
    names.update(
        ep.name.lower() for ep in importlib.metadata.entry_points(group="acid.engines")
    )
    return sorted(names)


def from_url(url: str | EngineURL) -> Engine:
    """Open the engine a URL names.

    >>> with from_url("skiplist:/") as engine:
    ...     engine.persistent
    False
    """
    parsed = url if isinstance(url, EngineURL) else parse_url(url)
    if parsed.module:
        try:
            importlib.import_module(parsed.module)
        except ImportError as exc:
            raise ConfigError(
                f"engine URL names module {parsed.module!r}, which cannot be "
                f"imported: {exc}"
            ) from exc
    factory = _registry.get(parsed.scheme) or _entry_point(parsed.scheme)
    if factory is None:
        raise ConfigError(
            f"unknown engine scheme {parsed.scheme!r}; known schemes are "
            f"{', '.join(known_schemes())}"
        )
    return factory(parsed)


IS_64BIT = sys.maxsize > 2**32


#: Engine classes by the names the API documents, imported on first use so
#: that ``import acid.engines`` never needs an optional package (plyvel).
_LAZY = {
    "SkipListEngine": "acid.engines.skiplist",
    "SkiplistEngine": "acid.engines.skiplist",  # the seed API's spelling
    "LMDBEngine": "acid.engines.lmdb",
    "LevelDBEngine": "acid.engines.leveldb",
    "TraceEngine": "acid.engines.trace",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'acid.engines' has no attribute {name!r}")
    return getattr(
        importlib.import_module(module), name.replace("Skiplist", "SkipList")
    )
