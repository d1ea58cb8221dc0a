"""The ``acid`` command: one subcommand per verb (``acid info URL``...).

Exit status: 0 ok; 1 a check failed or something was not found (or refused);
2 usage errors and unreadable input. Errors are one line on standard error;
``acid --debug ...`` shows the traceback as well. See ``docs/cli.md``.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import stat
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import click

import acid
from acid import keylib
from acid._ops import backup as backup_engine
from acid._ops import copy_engine
from acid.cli import output, typedjson
from acid.cli.transfer import (
    DumpError,
    DumpReader,
    Loader,
    blob_stores,
    drop_leftovers,
    items,
    left_out,
    leftovers,
    open_collection,
    open_index,
    shown_name,
    to_line,
    user_collections,
)
from acid.engines import from_url, known_schemes, parse_url
from acid.errors import (
    ConfigError,
    ConstraintError,
    Error,
    KeyEncodingError,
    NotFound,
    TraceFormatError,
)
from acid.store import Store

__all__ = ["cli", "main"]

#: Exit statuses (documented in docs/cli.md).
OK, FAILED, USAGE = 0, 1, 2


class InputError(click.ClickException):
    """Unreadable input or a bad argument value: exit status 2."""

    exit_code = USAGE


class Failed(click.ClickException):
    """Not found, refused, or a check that failed: exit status 1."""

    exit_code = FAILED


@dataclass
class State:
    debug: bool = False


# -- opening stores -----------------------------------------------------------


def _local_path(url: str) -> str | None:
    """The filesystem path a URL names, or None (memory, servers)."""
    parsed = parse_url(url)
    path = parsed.path
    if parsed.scheme in ("skiplist", "memory") and path in ("", "/"):
        return None
    if parsed.netloc or not path or path == "/":  # a server, or no path
        return None
    return path


def open_store(url: str, *, create: bool = False, module: str | None = None) -> Store:
    """Open ``url``; unless ``create``, a store that does not exist is refused."""
    parsed = parse_url(url)
    if not parsed.module and parsed.scheme not in known_schemes():
        raise ConfigError(
            f"unknown engine scheme {parsed.scheme!r}; known schemes are "
            f"{', '.join(known_schemes())}"
        )
    path = _local_path(url)
    if not create and path is not None and not os.path.exists(path):
        raise Failed(
            f"no store at {path!r} ({url}); check the path (acid load, put "
            "and restore create stores)"
        )
    store = acid.open(url)
    if module:
        declare(store, module)
    return store


def _import(where: str, name: str) -> Any:
    """The module ``where`` names: a dotted name, or a .py file (imported
    under ``name``)."""
    if not (where.endswith(".py") or os.sep in where):
        return importlib.import_module(where)
    spec = importlib.util.spec_from_file_location(name, where)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {where!r}")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def declare(store: Store, module: str) -> None:
    """Import ``module`` (a dotted name or a .py file) and call its
    ``declare(store)``, which declares collections and index functions."""
    try:
        mod = _import(module, "acid_declare")
    except (ImportError, OSError, SyntaxError) as exc:
        raise InputError(f"--module {module}: cannot import it ({exc})") from exc
    func = getattr(mod, "declare", None)
    if not callable(func):
        raise InputError(
            f"--module {module}: it has no function declare(store) to call"
        )
    func(store)


def parse_key(text: str) -> tuple[Any, ...]:
    """A key given on the command line: a JSON array (a scalar is a 1-tuple)."""
    try:
        value = typedjson.loads(text)
    except ValueError as exc:
        raise InputError(
            f"key {text!r} is not JSON ({exc}); write keys as arrays, e.g. "
            "'[1]' or '[\"ada\", 2]'"
        ) from exc
    key = tuple(value) if isinstance(value, list) else (value,)
    try:
        keylib.pack(key)
    except (KeyEncodingError, TypeError, ValueError) as exc:
        raise InputError(f"key {text!r} cannot be a key: {exc}") from exc
    return key


def show_key(key: tuple[Any, ...]) -> str:
    return typedjson.dumps(list(key))


@contextmanager
def opened(url: str, **kwargs: Any) -> Iterator[Store]:
    store = open_store(url, **kwargs)
    try:
        yield store
    finally:
        store.close()


# -- the group ----------------------------------------------------------------

MODULE = click.option(
    "--module",
    "-m",
    metavar="MODULE",
    help="Python module (dotted name or .py path) whose declare(store) "
    "declares collections and index functions.",
)
NO_PROGRESS = click.option(
    "--no-progress", is_flag=True, help="Never show a progress bar."
)
WITHOUT_BLOBS = click.option(
    "--without-blobs",
    is_flag=True,
    help="Leave the store's blob stores out (otherwise they are refused).",
)
BATCH = click.option(
    "--batch",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="Records per write transaction.",
)


class _PipeClosed(Exception):
    """The reader of standard output went away (``acid ls ... | head``)."""


class _Group(click.Group):
    """Lets a closed output pipe reach :func:`main` (click itself turns it
    into exit status 1, which the table above reserves for failures)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError as exc:
            raise _PipeClosed() from exc


class _InputFile(click.File):
    """``click.File`` that refuses a closed standard input with status 2
    (click raises ``RuntimeError`` when there is no stdin to read)."""

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> Any:
        try:
            return super().convert(value, param, ctx)
        except RuntimeError as exc:
            self.fail(f"cannot read {value!r}: {exc}", param, ctx)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.version_option(acid.__version__, prog_name="acid")
@click.pass_obj
def cli(state: State, debug: bool) -> None:
    """Look inside, copy, back up and check acid stores.

    URL is an engine URL: skiplist:/, lmdb:PATH, leveldb:PATH...
    Exit status: 0 ok, 1 check failed or not found, 2 usage or unreadable input.
    """
    state.debug = debug


@cli.command()
@click.argument("url")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info(url: str, as_json: bool) -> None:
    """The engine, the format version, and each collection: records, encoder,
    compressor, indexes with entry counts, and size."""
    with opened(url) as store:
        st = store.stats()
    if as_json:
        st.pop("engine_stats", None)
        click.echo(json.dumps(st, indent=2, default=str))
        return
    click.echo(f"engine:  {st['engine']}")
    click.echo(f"format:  {st['format'] if st['format'] is not None else '-'}")
    click.echo(f"records: {st['records']}")
    rows = []
    for name, c in st["collections"].items():
        shown = shown_name(name)
        rows.append(
            (shown, c["records"], c["encoder"], c["compressor"], c["keys"], c["bytes"])
        )
        for iname, i in c["indexes"].items():
            rows.append((f"  .{iname}", i["entries"], "", "", "index", i["bytes"]))
    click.echo()
    output.table(
        ["collection", "records", "encoder", "compressor", "keys", "bytes"],
        rows,
        right=(1, 5),
    )


def _flatten(prefix: str, value: Any, out: list[tuple[str, str]]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(value, str) and "\n" in value:
        out.append((prefix, ""))
        out.extend(("", line) for line in value.strip("\n").splitlines())
    else:
        out.append((prefix, str(value)))


@cli.command()
@click.argument("url")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def stats(url: str, as_json: bool) -> None:
    """Store and engine statistics (LMDB pages and map use, LevelDB
    properties, memory use)."""
    with opened(url) as store:
        st = store.stats()
    if as_json:
        click.echo(json.dumps(st, indent=2, default=str))
        return
    rows: list[tuple[str, str]] = []
    _flatten("", st, rows)
    output.table(["statistic", "value"], rows)


@cli.command("ls")
@click.argument("url")
@click.argument("coll")
@click.option("--lo", help="Lowest key (inclusive), a JSON array.")
@click.option("--hi", help="Highest key (exclusive), a JSON array.")
@click.option("--prefix", help="Key prefix, a JSON array.")
@click.option("--max", "max_", type=click.IntRange(min=0), help="At most N records.")
@click.option("--reverse", is_flag=True, help="Highest key first.")
@click.option("--index", "index", help="List through this index (its tuples).")
@click.option("--keys-only", is_flag=True, help="Print keys only.")
@MODULE
def ls_(
    url: str,
    coll: str,
    lo: str | None,
    hi: str | None,
    prefix: str | None,
    max_: int | None,
    reverse: bool,
    index: str | None,
    keys_only: bool,
    module: str | None,
) -> None:
    """List records as KEY<TAB>VALUE lines (typed JSON), in key order.

    With --index, ranges apply to the index tuples and lines are
    INDEX-TUPLE<TAB>KEY<TAB>VALUE.
    """
    args: dict[str, Any] = {
        "lo": None if lo is None else parse_key(lo),
        "hi": None if hi is None else parse_key(hi),
        "prefix": None if prefix is None else parse_key(prefix),
        "reverse": reverse,
        "max": max_,
    }
    with opened(url, module=module) as store, store.begin():
        c = open_collection(store, coll)
        if index is None:
            for key, value in c.items(**args):
                line = show_key(key)
                click.echo(line if keys_only else f"{line}\t{typedjson.dumps(value)}")
            return
        idx = open_index(c, index)
        for tup, key in idx.pairs(**args):
            line = f"{show_key(tup)}\t{show_key(key)}"
            if not keys_only:
                line += "\t" + typedjson.dumps(c.get(key))
            click.echo(line)


@cli.command()
@click.argument("url")
@click.argument("coll")
@click.argument("key")
def get(url: str, coll: str, key: str) -> None:
    """Print the record under KEY (a JSON array) as typed JSON."""
    k = parse_key(key)
    with opened(url) as store:
        c = open_collection(store, coll)
        missing = object()
        value = c.get(k, missing)
    if value is missing:
        raise Failed(f"no record {show_key(k)} in {coll!r}")
    click.echo(typedjson.dumps(value))


@cli.command()
@click.argument("url")
@click.argument("coll")
@click.option("--key", help="The record's key, a JSON array.")
@MODULE
def put(url: str, coll: str, key: str | None, module: str | None) -> None:
    """Store the record read from standard input (typed JSON) and print its
    key. --key is required unless the collection uses counter keys or a
    module declares its key function. Creates the store and the collection
    (JSON, counter keys) if needed."""
    k = None if key is None else parse_key(key)
    if sys.stdin is None:
        raise InputError("standard input is closed: pipe the record into put")
    text = sys.stdin.read()
    try:
        record = typedjson.loads(text)
    except ValueError as exc:
        raise InputError(f"standard input is not a typed JSON record: {exc}") from exc
    # One transaction: a put that fails leaves no new collection behind.
    with opened(url, create=True, module=module) as store, store.begin(write=True):
        if coll not in store.collections():
            store.add_collection(coll)  # a new one: JSON, counter keys
        declared = coll in store  # by --module, with its key function
        c = open_collection(store, coll)
        if k is None and c.key_func is not None and not declared:
            raise InputError(
                f"collection {coll!r} makes keys with a key function, which is "
                "not stored: give --key, or --module to declare it"
            )
        try:
            written = c.put(record, key=k)
        except TypeError as exc:
            raise InputError(
                f"collection {coll!r} (encoder {c.encoder.name}) cannot store "
                f"this record: {exc}"
            ) from exc
    click.echo(show_key(written))


@cli.command()
@click.argument("url")
@click.argument("coll")
@click.argument("key")
@MODULE
def delete(url: str, coll: str, key: str, module: str | None) -> None:
    """Delete the record under KEY (a JSON array); exit 1 if there is none."""
    k = parse_key(key)
    with opened(url, module=module) as store:
        found = open_collection(store, coll).delete(k)
    if not found:
        raise Failed(f"no record {show_key(k)} in {coll!r}")


def _total(store: Store, names: list[str]) -> int:
    """Records and entries to go, for a progress bar's ETA."""
    st = store.stats()["collections"]
    chosen = names or list(st)
    return sum(
        st[n]["records"] + sum(i["entries"] for i in st[n]["indexes"].values())
        for n in chosen
        if n in st
    )


_COUNTED = ("record", "entry")


def _counted(
    stream: Iterator[tuple[Any, ...]], advance: Callable[[int], None]
) -> Iterator[tuple[Any, ...]]:
    n = 0
    for item in stream:
        if item[0] in _COUNTED:
            n += 1
            if n == 1000:
                advance(n)
                n = 0
        yield item
    advance(n)


@cli.command()
@click.argument("url")
@click.argument("colls", nargs=-1)
@click.option(
    "--output",
    "-o",
    "output_path",
    type=click.Path(dir_okay=False),
    help="Write to this file, not standard output.",
)
@WITHOUT_BLOBS
@NO_PROGRESS
@MODULE
def dump(
    url: str,
    colls: tuple[str, ...],
    output_path: str | None,
    without_blobs: bool,
    no_progress: bool,
    module: str | None,
) -> None:
    """Write the store (or some collections) as JSON lines, from one snapshot:
    settings (expiry too), index declarations and entries, records with
    their deadlines, counters, metadata. Blob stores are not carried."""
    with opened(url, module=module) as store:
        _warn_left_out(store, colls, without_blobs, "dump")
        total = _total(store, list(colls)) if not no_progress else None
        out = (
            open(output_path, "w", encoding="utf-8")  # noqa: SIM115
            if output_path
            else sys.stdout
        )
        try:
            with output.progress("dump", total, enabled=not no_progress) as advance:
                for item in _counted(items(store, colls), advance):
                    out.write(to_line(item))
                    out.write("\n")
        finally:
            if output_path:
                out.close()


def _warn_left_out(
    store: Store, colls: Iterable[str], without_blobs: bool, verb: str
) -> None:
    """Refuse to leave blob stores out silently; name on standard error
    what else a dump or copy does not carry."""
    blobs = [] if list(colls) else blob_stores(store)
    if blobs and not without_blobs:
        raise Failed(
            f"the store has blob stores ({', '.join(map(repr, blobs))}), which "
            f"{verb} does not carry; use acid backup to copy everything, or "
            "pass --without-blobs to leave them out"
        )
    for what in left_out(store, colls):
        click.echo(f"acid: warning: not carried: {what}", err=True)


def _warn_leftovers(store: Store, url: str) -> None:
    """Name the temporaries of unfinished loads (never reused)."""
    for left in leftovers(store):
        click.echo(
            f"acid: warning: {left.describe()}; remove interrupted loads with "
            f"acid leftovers --drop {url}",
            err=True,
        )


@cli.command()
@click.argument("url")
@click.argument("file", type=_InputFile("rb"), default="-")
@click.option(
    "--force", is_flag=True, help="Allow a target with other collections in it."
)
@BATCH
@NO_PROGRESS
@MODULE
def load(
    url: str,
    file: Any,
    force: bool,
    batch: int,
    no_progress: bool,
    module: str | None,
) -> None:
    """Load a dump (FILE, or standard input) into an empty store of any
    engine. A malformed file loads nothing; a failed load removes what it
    wrote. Creates the store if needed."""
    store = open_store(url, create=True)
    try:
        _warn_leftovers(store, url)
        own = _declare_into(store, module, force, "load")
        size = _file_size(file)
        label = "load (bytes)" if size is not None else "load"
        with output.progress(label, size, enabled=not no_progress) as advance:
            if size is None:  # a pipe: count records, no ETA
                reader = DumpReader(file)
                loader = Loader(
                    store, batch=batch, force=force, progress=advance, own=own
                )
            else:  # a file: bytes read against its size give the ETA
                reader = DumpReader(_advancing(file, advance))
                loader = Loader(store, batch=batch, force=force, own=own)
            counts = loader.run(reader, lambda: reader.lineno)
    finally:
        store.close()
    click.echo(
        f"loaded {counts['collections']} collections, {counts['records']} records, "
        f"{counts['entries']} index entries",
        err=True,
    )


def _declare_into(
    store: Store, module: str | None, force: bool, verb: str
) -> list[str]:
    """Run ``module``'s declare() on the target; returns the collections it
    made (a failed load or copy drops them again while they are empty)."""
    if not module:
        return []
    names = user_collections(store)
    if names and not force:
        raise Failed(
            f"the target store is not empty (collections: {', '.join(names)}); "
            f"{verb} into an empty store, or pass --force"
        )
    before = set(store.collections())
    declare(store, module)
    return [n for n in store.collections() if n not in before]


def _file_size(file: Any) -> int | None:
    """The size of a regular file, or None (a pipe, a terminal)."""
    try:
        st = os.fstat(file.fileno())
    except (OSError, AttributeError, ValueError):
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None


def _advancing(lines: Any, advance: Callable[[int], None]) -> Iterator[bytes]:
    pending = 0
    for line in lines:
        pending += len(line)
        if pending >= 1 << 16:
            advance(pending)
            pending = 0
        yield line
    advance(pending)


def _verify(dst: Store, totals: dict[str, Any], module: str | None) -> None:
    """Counts per collection and index, then check() where functions exist.

    ``dst`` is a fresh Store over the target engine: only the functions that
    ``module`` declares are live in it (not the loader's placeholders).
    """
    if module:
        declare(dst, module)
    st = dst.stats()["collections"]
    for name, n in totals.get("by_collection", {}).items():
        got = st.get(name, {}).get("records")
        if got != n:
            raise Failed(f"copy check: {name!r} has {got} records, expected {n}")
    for full, n in totals.get("by_index", {}).items():
        cname, _, iname = full.partition(".")
        got = st.get(cname, {}).get("indexes", {}).get(iname, {}).get("entries")
        if got != n:
            raise Failed(f"copy check: index {full} has {got} entries, expected {n}")
    report = dst.check()
    if not report.ok:
        raise Failed(
            f"copy check: {len(report.missing)} index entries missing, "
            f"{len(report.stale)} stale in the copy"
        )


@cli.command()
@click.argument("src_url")
@click.argument("dst_url")
@click.option("--force", is_flag=True, help="Allow a target with other collections.")
@WITHOUT_BLOBS
@BATCH
@NO_PROGRESS
@MODULE
def copy(
    src_url: str,
    dst_url: str,
    force: bool,
    without_blobs: bool,
    batch: int,
    no_progress: bool,
    module: str | None,
) -> None:
    """Copy every collection from one store to another (any engines), from
    one snapshot (expiry and deadlines included), then verify counts and
    check() on the copy. Blob stores are not carried."""
    with opened(src_url, module=module) as src:
        _warn_left_out(src, (), without_blobs, "copy")
        dst = open_store(dst_url, create=True)
        try:
            _warn_leftovers(dst, dst_url)
            names = user_collections(dst)
            if names and not force:
                raise Failed(
                    f"the target store is not empty (collections: "
                    f"{', '.join(names)}); copy into an empty store, or pass --force"
                )
            own = _declare_into(dst, module, True, "copy")
            total = None if no_progress else _total(src, [])
            derived = {
                (c.name, iname) for c in dst.schema.newest() for iname in c.indices
            }
            loader = Loader(dst, batch=batch, force=force, own=own)
            stream = items(src, derived=derived)
            with output.progress("copy", total, enabled=not no_progress) as advance:
                if not no_progress:
                    stream = _counted(stream, advance)
                counts = loader.run(stream)
            _verify(Store(dst.engine), loader.totals, module)
        finally:
            dst.close()
    click.echo(
        f"copied {counts['collections']} collections, {counts['records']} records, "
        f"{counts['entries']} index entries copied as data; counts and check() agree",
        err=True,
    )


@cli.command("leftovers")
@click.argument("url")
@click.option("--drop", is_flag=True, help="Remove what interrupted loads left.")
@click.option(
    "--running",
    is_flag=True,
    help="With --drop, also remove loads whose process still runs on this host.",
)
@BATCH
def leftovers_(url: str, drop: bool, running: bool, batch: int) -> None:
    """List the temporary collections of loads (and copies) that did not
    finish, e.g. killed ones; --drop removes them. Exit 1 when some are
    listed and not removed."""
    with opened(url) as store:
        found = leftovers(store)
        gone = drop_leftovers(store, running=running, batch=batch) if drop else []
    removed = {left.token for left in gone}
    for left in found:
        mark = "removed " if left.token in removed else ""
        click.echo(f"{mark}{left.describe()}")
    if not found:
        click.echo("no leftovers of loads", err=True)
    elif len(removed) < len(found):
        raise click.exceptions.Exit(FAILED)


@cli.command()
@click.argument("url")
@click.argument("dest")
@BATCH
@NO_PROGRESS
def backup(url: str, dest: str, batch: int, no_progress: bool) -> None:
    """Copy the whole store to DEST (a new path, or an engine URL) while
    writers go on: LMDB uses its compacting copy, others a read snapshot."""
    with opened(url) as store:
        total = None if no_progress else _engine_keys_of(store)
        with output.progress("backup", total, enabled=not no_progress) as advance:
            result = backup_engine(store.engine, dest, batch=batch, progress=advance)
    click.echo(
        f"backup: {result['keys']} keys to {result['dest']} ({result['method']})",
        err=True,
    )


def _engine_keys_of(store: Store) -> int | None:
    stats = getattr(store.engine, "stats", None)
    if not callable(stats):
        return None
    st = stats()
    if "keys" in st:
        return int(st["keys"])
    if "stat" in st:
        return int(st["stat"]["entries"])
    return None


def _backup_url(dest: str) -> str:
    if os.path.exists(os.path.join(dest, "data.mdb")):
        return f"lmdb:{dest}"
    if os.path.exists(os.path.join(dest, "CURRENT")):
        return f"leveldb:{dest}"
    if ":" in dest:
        return dest
    raise Failed(f"no backup at {dest!r}: give an engine URL, e.g. lmdb:{dest}")


@cli.command()
@click.argument("dest")
@click.argument("url")
@BATCH
@NO_PROGRESS
def restore(dest: str, url: str, batch: int, no_progress: bool) -> None:
    """Copy the backup at DEST (a path or URL) into URL, which must be empty
    (a new store is created)."""
    src_url = _backup_url(dest)
    if _local_path(src_url) and not os.path.exists(str(_local_path(src_url))):
        raise Failed(f"no backup at {dest!r}")
    src = from_url(src_url)
    try:
        dst = from_url(url)
        try:
            with output.progress("restore", None, enabled=not no_progress) as adv:
                keys = copy_engine(src, dst, batch=batch, progress=adv)
        finally:
            dst.close()
    finally:
        src.close()
    click.echo(f"restore: {keys} keys from {src_url} into {url}", err=True)


@cli.command()
@click.argument("url")
@click.option(
    "--repair",
    is_flag=True,
    help="Rebuild drifted indexes whose functions --module declares.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@MODULE
def check(url: str, repair: bool, as_json: bool, module: str | None) -> None:
    """Re-derive every index entry and report per index; exit 1 when an
    index drifted. Indexes need their functions (--module) to be checked."""
    with opened(url, module=module) as store:
        report = store.check()
        rows = _check_rows(store, report)
        repaired: list[str] = []
        if repair and not report.ok:
            repaired = _repair(store, report)
            report = store.check()
            rows = _check_rows(store, report)
    if as_json:
        click.echo(json.dumps({"ok": report.ok, "indexes": rows, "repaired": repaired}))
    else:
        output.table(
            ["collection", "index", "entries", "missing", "stale", "status"],
            [
                (
                    r["collection"],
                    r["index"],
                    r["entries"],
                    r["missing"],
                    r["stale"],
                    r["status"],
                )
                for r in rows
            ],
            right=(2, 3, 4),
        )
        for name in repaired:
            click.echo(f"repaired {name}")
    if not report.ok:
        raise Failed("check failed: some indexes drifted (see the table)")


def _check_rows(store: Store, report: Any) -> list[dict[str, Any]]:
    st = store.stats()["collections"]
    unchecked = set(report.unchecked)
    rows = []
    for cname, c in st.items():
        for iname, i in c["indexes"].items():
            missing = sum(1 for m in report.missing if m[:2] == (cname, iname))
            stale = sum(1 for m in report.stale if m[:2] == (cname, iname))
            if (cname, iname) in unchecked:
                status = "unchecked (no function; use --module)"
            else:
                status = "ok" if not (missing or stale) else "DRIFTED"
            rows.append(
                {
                    "collection": cname,
                    "index": iname,
                    "entries": i["entries"],
                    "missing": missing,
                    "stale": stale,
                    "status": status,
                }
            )
    return rows


def _repair(store: Store, report: Any) -> list[str]:
    drifted = {m[:2] for m in [*report.missing, *report.stale]}
    done = []
    with store.begin(write=True):
        txn = store.active()
        for cname, iname in sorted(drifted):
            coll = store[cname]
            idx = coll.indices[iname]
            store.delete_range(idx.id)
            for key, value in coll.items():
                idx.update(txn, keylib.pack(key), (), idx.entries(value))
            done.append(f"{cname}.{iname}")
    return done


def load_function(spec: str) -> Callable[[Any], Any]:
    """``module:function`` or ``path/to/file.py:function``."""
    where, sep, attr = spec.rpartition(":")
    if not sep or not where or not attr:
        raise InputError(f"{spec!r}: give the function as MODULE:FUNCTION")
    try:
        mod = _import(where, "acid_index_fn")
    except (ImportError, OSError, SyntaxError) as exc:
        raise InputError(f"{spec!r}: cannot import {where!r} ({exc})") from exc
    func = getattr(mod, attr, None)
    if not callable(func):
        raise InputError(f"{spec!r}: {where!r} has no function {attr!r}")
    return func


@cli.command("build-index")
@click.argument("url")
@click.argument("coll")
@click.argument("name")
@click.argument("function")
@click.option(
    "--batch",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Records per backfill transaction.",
)
@NO_PROGRESS
def build_index(
    url: str, coll: str, name: str, function: str, batch: int, no_progress: bool
) -> None:
    """Add the index NAME computed by FUNCTION (MODULE:FUNCTION or
    FILE.py:FUNCTION) online: writers go on, the backfill runs in bounded
    transactions, and an interrupted build resumes where it stopped."""
    func = load_function(function)
    with opened(url) as store:
        c = open_collection(store, coll)
        total = None if no_progress else store.stats()["collections"][coll]["records"]
        with output.progress("build-index", total, enabled=not no_progress) as adv:
            last = [0]

            def progress(done: int, _total: int | None) -> None:
                adv(done - last[0])
                last[0] = done

            idx = c.add_index(
                name, func, build="online", batch=batch, progress=progress
            )
            entries = idx.count()
    click.echo(f"index {coll}.{name} is ready: {entries} entries", err=True)


@cli.command()
@click.argument("trace", type=click.Path())
@click.argument("url")
def replay(trace: str, url: str) -> None:
    """Replay an engine trace against a fresh engine and report every result
    that differs (exit 1 when some do)."""
    from acid.tools import replay as tool

    code = tool.main([trace, url])
    if code:
        sys.exit(code)


# -- entry point --------------------------------------------------------------

#: Errors that mean the input (a file, a value, a URL) is unusable: status 2.
_INPUT_ERRORS: tuple[type[BaseException], ...] = (
    DumpError,
    TraceFormatError,
    ConfigError,
    KeyEncodingError,
)


def _status(exc: BaseException) -> int:
    if isinstance(exc, _INPUT_ERRORS):
        return USAGE
    if isinstance(exc, NotFound | ConstraintError | Error):
        return FAILED
    if isinstance(exc, OSError):
        return USAGE
    return FAILED


def _one_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    text = " ".join(text.split())
    if not isinstance(exc, Error | OSError | ValueError | TypeError | KeyError):
        text = f"{type(exc).__name__}: {text}"
    return text


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    state = State()
    try:
        result = cli.main(args=argv, prog_name="acid", standalone_mode=False, obj=state)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        if state.debug:
            traceback.print_exc()
        if isinstance(exc, InputError | Failed):
            click.echo(f"acid: error: {exc.format_message()}", err=True)
        else:
            exc.show()  # a usage error: click adds the usage line
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("acid: aborted", err=True)
        return FAILED
    except KeyboardInterrupt:
        click.echo("acid: interrupted", err=True)
        return 130
    except (BrokenPipeError, _PipeClosed):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return OK
    except Exception as exc:
        if state.debug:
            traceback.print_exc()
        click.echo(f"acid: error: {_one_line(exc)}", err=True)
        return _status(exc)
    return result if isinstance(result, int) else OK
