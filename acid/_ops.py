"""Operating a store: statistics and online backup (``Store.stats/backup``).

Both read one snapshot (a read transaction), so they run while writers go
on. The engine-specific parts are the engines' own ``stats()`` and
``backup(path)`` methods, used when an engine has them.

>>> import acid
>>> store = acid.open("skiplist:/")
>>> _ = store.add_collection("people").put({"name": "Ada"})
>>> store.stats()["collections"]["people"]["records"]
1
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from acid._layout import KIND_INDEX, KIND_STRUCT, KIND_TABLE
from acid.engines import from_url, parse_url
from acid.errors import ConfigError, Error, TxnError

if TYPE_CHECKING:
    from acid.engines import Engine
    from acid.store import Store

__all__ = [
    "DROPS",
    "backup",
    "copy_engine",
    "dest_url",
    "engine_is_empty",
    "finish_drops",
    "pending_drops",
    "refuse_in_txn",
    "stats",
]

#: The struct metadata listing key spaces dropped online but not purged yet.
DROPS = "\x00drops"

#: ``progress(n)`` is told how many more keys were copied.
Progress = Callable[[int], None]


def _space_size(store: Store, space_id: int) -> tuple[int, int]:
    n = size = 0
    for k, v in store.iter_space(space_id):
        n += 1
        size += len(k) + len(v)
    return n, size


def stats(store: Store) -> dict[str, Any]:
    """What :meth:`acid.Store.stats` returns (see there)."""

    def run() -> dict[str, Any]:
        collections: dict[str, Any] = {}
        for (name,), info in store.iter_meta(KIND_TABLE):
            records, size = _space_size(store, info["id"])
            collections[name] = {
                "id": info["id"],
                "records": records,
                "bytes": size,
                "encoder": info.get("encoder"),
                "compressor": info.get("compressor"),
                "keys": info.get("keys"),
                "indexes": {},
            }
        for (cname, iname), info in store.iter_meta(KIND_INDEX):
            entries, size = _space_size(store, info["id"])
            if cname in collections:
                collections[cname]["indexes"][iname] = {
                    "id": info["id"],
                    "entries": entries,
                    "bytes": size,
                }
        counters = store.counters()
        fmt = store.get_meta("struct", "\x00acid") or {}
        return {
            "format": fmt.get("format"),
            "collections": collections,
            "records": sum(c["records"] for c in collections.values()),
            "counters": len([c for c in counters if not c.startswith("\x00")]),
        }

    out: dict[str, Any] = {"engine": store.engine.url}
    out.update(store.in_txn(run))
    engine_stats = getattr(store.engine, "stats", None)
    out["engine_stats"] = engine_stats() if callable(engine_stats) else {}
    return out


def dest_url(engine: Engine, dest: str) -> str:
    """``dest`` as an engine URL: a bare path means the engine's own kind."""
    if not isinstance(dest, str | os.PathLike):
        raise TypeError(f"dest must be a URL or a path, not {type(dest).__name__}")
    dest = os.fspath(dest)
    scheme = str(getattr(engine, "url", "")).partition(":")[0]
    head = dest.partition(":")[0]
    if ":" in dest and head.replace("+", "").replace(".", "").isalnum():
        return dest  # scheme:path (a Windows drive letter is not a concern)
    if scheme in ("", "skiplist", "memory"):
        raise ConfigError(
            f"an in-memory store backs up to another engine: give a URL, e.g. "
            f"lmdb:{dest}"
        )
    return f"{scheme}:{dest}"


def engine_is_empty(engine: Engine) -> bool:
    """Whether the engine holds no key at all."""
    txn = engine.begin()
    try:
        return next(iter(txn.iter(b"")), None) is None
    finally:
        txn.abort()


def _check_fresh(url: str) -> None:
    parsed = parse_url(url)
    path = parsed.path
    if path not in ("", "/") and os.path.exists(path):  # noqa: SIM102
        if not os.path.isdir(path) or os.listdir(path):
            raise ConfigError(
                f"backup destination {path!r} exists and is not empty; "
                "choose a new path"
            )


def copy_engine(
    src: Engine,
    dst: Engine,
    *,
    batch: int = 10_000,
    progress: Progress | None = None,
) -> int:
    """Copy every key of ``src`` (one read snapshot) into the empty ``dst``.

    Writes go in transactions of ``batch`` keys; returns the number copied.
    A failure removes what was written, so ``dst`` is empty again.
    """
    if type(batch) is not int or batch < 1:
        raise ValueError(f"batch must be a positive int, got {batch!r}")
    if not engine_is_empty(dst):
        raise ConfigError(
            f"{getattr(dst, 'url', dst)} is not empty; copy into an empty store"
        )
    total = 0
    reader = src.begin()
    try:
        it = iter(reader.iter(b""))
        while True:
            chunk = []
            for item in it:
                chunk.append(item)
                if len(chunk) >= batch:
                    break
            if not chunk:
                break
            with dst.begin(write=True) as txn:
                for k, v in chunk:
                    txn.put(k, v)
            total += len(chunk)
            if progress is not None:
                progress(len(chunk))
    except BaseException:
        _wipe(dst)
        raise
    finally:
        reader.abort()
    return total


def _wipe(engine: Engine) -> None:
    try:
        while True:
            with engine.begin(write=True) as txn:
                keys = [k for k, _ in zip(txn.iter(b""), range(10_000), strict=False)]
                for k, _v in keys:
                    txn.delete(k)
            if not keys:
                return
    except Error:
        pass  # the original error is the one to report


def backup(
    engine: Engine,
    dest: str,
    *,
    batch: int = 10_000,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """What :meth:`acid.Store.backup` does (see there)."""
    url = dest_url(engine, dest)
    parsed = parse_url(url)
    if parsed.scheme in ("memory", "skiplist") and parsed.path in ("", "/"):
        raise ConfigError(
            f"{url} keeps nothing once closed: a backup there would be lost; "
            f"give a file (memory:/path/backup.acid) or another engine"
        )
    _check_fresh(url)
    native = getattr(engine, "backup", None)
    scheme = str(getattr(engine, "url", "")).partition(":")[0]
    if callable(native) and parsed.scheme == scheme and not parsed.params:
        keys = native(parsed.path)
        if progress is not None:
            progress(keys)
        return {"method": f"{scheme} native copy", "keys": keys, "dest": url}
    target = from_url(parsed)
    try:
        keys = copy_engine(engine, target, batch=batch, progress=progress)
    finally:
        target.close()
    return {"method": "snapshot copy", "keys": keys, "dest": url}


# -- online drops --------------------------------------------------------------


def refuse_in_txn(store: Store, what: str) -> None:
    if store.txn is not None:
        raise TxnError(
            f"{what} runs its own bounded transactions; call it outside a transaction"
        )


def pending_drops(store: Store, spaces: list[int]) -> None:
    """Remember, in the active write txn, key spaces left to purge."""
    info = store.get_meta(KIND_STRUCT, DROPS) or {}
    known = list(info.get("spaces", ()))
    store.set_meta(KIND_STRUCT, DROPS, {"spaces": tuple(known + spaces)})


def finish_drops(store: Store, *, batch: int = 10_000) -> int:
    """Purge the key spaces of online drops, ``batch`` keys per transaction."""
    if type(batch) is not int or batch < 1:
        raise ValueError(f"batch must be a positive int, got {batch!r}")
    refuse_in_txn(store, "finishing online drops")
    total = 0

    def step() -> bool:
        nonlocal total
        info = store.get_meta(KIND_STRUCT, DROPS)
        spaces = list(info.get("spaces", ())) if info else []
        if not spaces:
            if info is not None:
                store.set_meta(KIND_STRUCT, DROPS, None)
            return True
        txn = store.active()
        keys = [
            k for k, _ in zip(store.iter_space(spaces[0]), range(batch), strict=False)
        ]
        for k, _v in keys:
            txn.delete(k)
        total += len(keys)
        if len(keys) < batch:
            spaces.pop(0)
            store.set_meta(
                KIND_STRUCT, DROPS, {"spaces": tuple(spaces)} if spaces else None
            )
        return False

    while not store.transact(step, retries=100):
        pass
    return total
