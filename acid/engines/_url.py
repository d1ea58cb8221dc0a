"""Engine URLs, paths and parameters: parsed and checked in one place.

``scheme:path?param=value&...`` becomes an :class:`EngineURL`; each engine
describes the parameters it accepts with :class:`Param` and turns the text
into checked values with :func:`resolve_params`. Engines check the values of
their keyword arguments with :func:`check_params`, so a constructor call and
a URL reject the same values with the same :class:`~acid.errors.ConfigError`.

>>> url = parse_url("lmdb:data/app?map_size=1GiB")
>>> resolve_params(url, {"map_size": Param(Param.SIZE, 2**30, low=1)})
{'map_size': 1073741824}
"""

from __future__ import annotations

import math
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from acid.errors import ConfigError, EngineError

__all__ = [
    "EngineURL",
    "Param",
    "check_params",
    "check_path",
    "check_seconds",
    "check_timeout",
    "make_dirs",
    "parse_bool",
    "parse_seconds",
    "parse_size",
    "parse_url",
    "resolve_params",
]


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
    #: The authority of a ``scheme://user:password@host:port/...`` URL (the
    #: part between ``//`` and the next ``/``; ``""`` when there is none).
    #: ``path`` then still starts with it, as for ``lmdb://dir/x``, which
    #: means ``lmdb:/dir/x``; engines that talk to a server read it.
    netloc: str = field(default="", repr=False)

    def __str__(self) -> str:
        text = f"{self.scheme}:{self.path}"
        if self.netloc:
            text = f"{self.scheme}://{self.path.lstrip('/')}"
        if self.module:
            text = f"{self.module}+{text}"
        if self.params:
            text += "?" + "&".join(f"{k}={v}" for k, v in self.params.items())
        return text


_SCHEME = re.compile(r"^(?:(?P<mod>[A-Za-z_][\w.]*)\+)?(?P<scheme>[A-Za-z][\w.-]*):")


def parse_url(url: str) -> EngineURL:
    """Split an engine URL into scheme, path and parameters.

    An optional ``package.module+`` before the scheme names a module to
    import first, so that it can register the scheme.

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
    netloc = ""
    if path.startswith("//"):  # tolerate lmdb:///abs/path
        netloc = path[2:].partition("/")[0]
        path = "/" + path.lstrip("/")
    params: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name in params:
            raise ConfigError(f"engine URL {url!r} repeats parameter {name!r}")
        params[name] = value
    return EngineURL(match["scheme"].lower(), path, params, match["mod"], netloc)


def check_path(scheme: str, path: Any) -> str:
    """``path`` as an absolute ``str``, or ``ConfigError`` saying what is wrong.

    >>> check_path("lmdb", "/srv/db")
    '/srv/db'
    """
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if not isinstance(path, str):
        raise ConfigError(
            f"{scheme}: the path must be a str, got {type(path).__name__}"
        )
    if not path:
        raise ConfigError(f"{scheme}: a path is required, e.g. {scheme}:/var/data/app")
    if "\x00" in path:
        # The C libraries would silently cut the path at the NUL byte and
        # open some other database.
        raise ConfigError(f"{scheme}: the path {path!r} contains a NUL byte")
    return os.path.abspath(path)


def make_dirs(scheme: str, directory: str) -> None:
    """Create ``directory`` and its parents; ``ConfigError`` when a file is
    in the way, ``EngineError`` for other failures (permissions, space)."""
    try:
        os.makedirs(directory, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise ConfigError(
            f"{scheme}: cannot create the directory {directory!r}: "
            f"{exc.filename or directory!r} exists and is not a directory"
        ) from exc
    except OSError as exc:
        raise EngineError(
            f"{scheme}: cannot create the directory {directory!r}: "
            f"{exc.strerror or exc}"
        ) from exc


# -- value parsers (text -> value) ---------------------------------------------

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


_SECONDS_FORM = "a number of seconds >= 0, e.g. 30, 0.5 or inf (no limit)"


def parse_seconds(text: str) -> float:
    """Seconds from ``"30"``, ``"0.5"`` or ``"inf"`` (no limit).

    >>> parse_seconds("0.5"), parse_seconds("inf")
    (0.5, inf)
    """
    try:
        value = float(text)
    except ValueError:
        raise ValueError(_SECONDS_FORM) from None
    return check_seconds(value)


def check_seconds(value: Any) -> float:
    """``value`` as seconds to wait: a number >= 0 or ``inf``; ``ValueError``
    for ``nan``, negatives and non-numbers.

    >>> check_seconds(2), check_seconds(float("inf")), check_seconds(10**400)
    (2.0, inf, inf)
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(_SECONDS_FORM)
    if not value >= 0:  # also rejects nan, which compares false to everything
        raise ValueError(_SECONDS_FORM)
    try:
        return float(value)
    except OverflowError:  # an int beyond any float: longer than forever
        return float("inf")


def check_timeout(timeout: Any) -> float:
    """A ``begin(timeout=...)`` value checked: seconds >= 0 or ``inf``.

    >>> check_timeout(float("nan"))
    Traceback (most recent call last):
    ...
    acid.errors.ConfigError: bad timeout nan; expected a number of seconds >= 0, \
e.g. 30, 0.5 or inf (no limit)
    """
    try:
        return check_seconds(timeout)
    except ValueError as exc:
        raise ConfigError(f"bad timeout {timeout!r}; expected {exc}") from None


#: Timeouts at or above this wait without limit: ``Lock.acquire`` rejects
#: larger ones with ``OverflowError``.
WAIT_FOREVER = min(threading.TIMEOUT_MAX, 2.0**62)


def lock_wait(seconds: float) -> float:
    """The ``timeout`` argument of ``Lock.acquire`` for a checked wait:
    ``-1`` (no limit) for ``inf`` and anything it cannot represent."""
    return -1 if seconds >= WAIT_FOREVER or math.isinf(seconds) else seconds


# -- value checks (any value -> checked value) ---------------------------------


def _check_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("an integer")
    return value


def _check_size(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("a size in bytes such as 4096, 64MB, 512MiB or 1GiB")
    return value


def _check_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("true or false")
    return value


_CHECKS: dict[Callable[[str], Any], Callable[[Any], Any]] = {
    parse_size: _check_size,
    parse_bool: _check_bool,
    _parse_int: _check_int,
    parse_seconds: check_seconds,
}


@dataclass(frozen=True)
class Param:
    """One URL parameter an engine accepts.

    ``parse`` turns the URL text into a value (``Param.SIZE``, ``Param.BOOL``,
    ``Param.INT``, ``Param.SECONDS`` or any function raising ``ValueError``
    with the expected form). ``low``/``high`` bound numbers, inclusive.
    ``check`` checks a value given as a keyword argument instead of text; the
    built-in kinds bring their own.
    """

    parse: Callable[[str], Any]
    default: Any
    help: str = ""
    low: float | None = None
    high: float | None = None
    check: Callable[[Any], Any] | None = None

    SIZE = parse_size
    BOOL = parse_bool
    INT = _parse_int
    SECONDS = parse_seconds

    def validate(self, value: Any) -> Any:
        """``value`` checked against the kind and the bounds, or
        ``ValueError`` whose text is the expected form."""
        check = self.check or _CHECKS.get(self.parse)
        if check is not None:
            value = check(value)
        low, high = self.low, self.high
        if (low is not None and value < low) or (high is not None and value > high):
            raise ValueError(self._range())
        return value

    def _range(self) -> str:
        kind = "a size" if self.parse is parse_size else "a number"
        low, high = _number(self.low), _number(self.high)
        if high is None:
            return f"{kind} >= {low}"
        if low is None:
            return f"{kind} <= {high}"
        return f"{kind} from {low} to {high}"


def _number(value: float | None) -> str | None:
    if value is None:
        return None
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def resolve_params(url: EngineURL, spec: Mapping[str, Param]) -> dict[str, Any]:
    """Parse and check ``url.params`` against ``spec``; fill in defaults.

    Unknown names and bad values raise ``ConfigError`` naming the valid
    parameters or the expected form.
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
            values[name] = spec[name].validate(spec[name].parse(text))
        except ValueError as exc:
            raise _bad(url.scheme, name, text, exc) from None
    return values


def check_params(scheme: str, spec: Mapping[str, Param], **values: Any) -> None:
    """Check keyword-argument values against ``spec``; ``ConfigError`` for
    the first bad one, naming it and the expected form.

    >>> check_params("x", {"n": Param(Param.INT, 1, low=1)}, n=0)
    Traceback (most recent call last):
    ...
    acid.errors.ConfigError: x: bad value 0 for parameter 'n'; expected a number >= 1
    """
    for name, value in values.items():
        try:
            spec[name].validate(value)
        except ValueError as exc:
            raise _bad(scheme, name, value, exc) from None


def _bad(scheme: str, name: str, value: Any, exc: ValueError) -> ConfigError:
    return ConfigError(
        f"{scheme}: bad value {value!r} for parameter {name!r}; expected {exc}"
    )
