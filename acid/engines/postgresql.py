"""``postgresql://user:password@host:port/dbname`` - a PostgreSQL table
through psycopg 3 (``pip install 'acid[postgresql]'``).

One table ``(key bytea primary key, value bytea)`` holds the data; it is
created if absent (URL parameter ``table``, default ``acid``). ``bytea``
compares like ``memcmp`` and then by length, which is the engines' order.

- A read transaction is ``REPEATABLE READ READ ONLY``: one snapshot, taken
  by its first read (``BEGIN`` is sent just before it). Its ``ROLLBACK`` is
  sent without waiting for the answer, which the connection's next user
  reads.
- A write transaction is ``SERIALIZABLE``. It buffers its puts and deletes
  (its own reads and scans see them through an overlay, as the LevelDB
  engine's do) and sends them at commit as multi-row statements in one
  query string that ends with ``COMMIT`` (and starts with ``BEGIN`` if
  nothing was sent before): one round trip. A large transaction also sends
  them early, every 5,000 keys or 16 MiB.
- Several write transactions run at once, in this process and in others.
  A serialization failure or a deadlock is :class:`~acid.errors.ConflictError`
  (retryable, see ``store.transact``); nothing of that transaction landed.
- A lost connection is :class:`~acid.errors.EngineError` with the reason.
  A commit whose connection dropped before the server answered is reported
  as such: its outcome is unknown, never "committed".
- Connections are pooled (:class:`_Pool`): a transaction takes one when it
  begins and gives it back when it ends.

Iterators read the table in pages: the first a little larger than what
recent scans used (at least 32 rows), then four times larger each time, up
to 1,024; a scan that stops early costs little and a long one few round
trips.
"""

from __future__ import annotations

import os
import select
import threading
import weakref
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

import psycopg
from psycopg import errors as pgerrors
from psycopg import sql
from psycopg.pq import TransactionStatus

from acid.engines import (
    DEFAULT_LOCK_TIMEOUT,
    Engine,
    EngineURL,
    Param,
    Txn,
    WriterLock,
    check_params,
    check_timeout,
    closed_engine,
    read_only,
    resolve_params,
)
from acid.engines._overlay import (
    DELETED,
    Overlay,
    OverlayWrites,
    live_iter,
    merge,
    ordered,
)
from acid.errors import (
    ConfigError,
    ConflictError,
    EngineError,
    Error,
    TxnError,
    TxnTimeout,
)

__all__ = ["PostgreSQLEngine"]

#: The longest key: a btree index entry holds at most 2,704 bytes (a third
#: of an 8 KiB page), of which 12 go to headers.
MAX_KEY_SIZE = 2690
#: Buffered writes sent early, so that a huge transaction does not hold
#: them all in memory and in one statement.
FLUSH_AT = 5000
_FIRST_PAGE = 32
_MAX_PAGE = 1024
_USED_AFTER_END = "iterator used after its transaction ended"
#: libpq connection parameters that may be given as URL parameters.
_LIBPQ = ("application_name", "host", "sslmode", "sslrootcert", "sslcert", "sslkey")


def _table_name(text: str) -> str:
    if not text or len(text.encode()) > 63 or "\x00" in text:
        raise ValueError("a table name of 1 to 63 bytes")
    return text


def _check_table(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("a table name (str)")
    return _table_name(value)


def _check_text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("a str")
    return value


class _Statements:
    """The SQL of one table, composed once with ``sql.Identifier``."""

    def __init__(self, table: str) -> None:
        # Quoted once; a "%" in the name is doubled, since psycopg reads
        # "%s" placeholders in the whole query text.
        t = sql.SQL(sql.Identifier(table).as_string().replace("%", "%%"))

        def q(text: str) -> bytes:
            return sql.SQL(text).format(t=t).as_string().encode()

        self.create = q(
            "CREATE TABLE IF NOT EXISTS {t} "
            "(key bytea PRIMARY KEY, value bytea NOT NULL)"
        )
        self.shape = q("SELECT key, value FROM {t} LIMIT 0")
        self.get = q("SELECT value FROM {t} WHERE key = %s")
        self.get_many = q("SELECT key, value FROM {t} WHERE key = ANY(%s)")
        scan = "SELECT key, value FROM {t} WHERE key %s %%s ORDER BY key%s LIMIT %%s"
        self.ge = q(scan % (">=", ""))
        self.gt = q(scan % (">", ""))
        self.le = q(scan % ("<=", " DESC"))
        self.lt = q(scan % ("<", " DESC"))
        self._insert = q("INSERT INTO {t} (key, value) VALUES ")
        self._delete = q("DELETE FROM {t} WHERE key IN (")

    def upsert(self, rows: int) -> bytes:
        """``INSERT`` of ``rows`` (key, value) pairs, replacing old values."""
        return (
            self._insert
            + b",".join([b"(%s,%s)"] * rows)
            + b" ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
        )

    def delete(self, keys: int) -> bytes:
        """``DELETE`` of ``keys`` keys."""
        return self._delete + b",".join([b"%s"] * keys) + b")"


_BEGIN_READ = b"BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
_BEGIN_WRITE = b"BEGIN ISOLATION LEVEL SERIALIZABLE"
_COMMIT = b"COMMIT"
_ROLLBACK = b"ROLLBACK"
#: Rows per ``INSERT`` or ``DELETE`` statement of a flush.
_ROWS_PER_STATEMENT = 1000
#: Buffered bytes (keys and values) sent early, as ``FLUSH_AT`` keys are.
FLUSH_BYTES = 16 * 2**20


def _close(conn: psycopg.Connection[Any]) -> None:
    """Close ``conn``, unless another thread is inside a call on it (the
    engine closing under a transaction in flight): freeing the connection
    then could crash that call, so the call is cancelled instead, and the
    connection freed with its last reference."""
    if conn.lock.acquire(blocking=False):
        try:
            conn.close()
        except Exception:
            pass
        finally:
            conn.lock.release()
    else:
        try:
            conn.cancel()
        except Exception:
            pass


def _quiet(conn: psycopg.Connection[Any]) -> bool:
    """Whether an idle connection has nothing to read, as it should. A
    server that went away (restarted, killed, or ending idle sessions) left
    an end of file or a farewell message there: such a connection is closed
    before anything is sent on it, so that no statement is ever sent twice."""
    try:
        readable = select.select([conn.fileno()], [], [], 0)[0]
    except (OSError, ValueError, psycopg.Error):
        readable = [True]
    if readable:
        _close(conn)
        return False
    return True


#: This process's id, kept up to date by _forked (``os.getpid()`` is a
#: system call, and the pool asks on every transaction).
_process = [os.getpid()]
#: Every open connection of every engine in this process (see _forked).
_connections: weakref.WeakSet[psycopg.Connection[Any]] = weakref.WeakSet()


def _forked() -> None:
    """In a child process just forked: detach every inherited connection.

    Its socket is shared with the parent; whatever the child sent on it
    (the goodbye message libpq sends when the connection object is freed,
    at the latest when the child exits) would end the parent's session. So
    each socket descriptor is pointed at ``/dev/null``: the child's copies
    then fail when used (``EngineError``), and free themselves harmlessly.
    """
    _process[0] = os.getpid()
    try:
        null = os.open(os.devnull, os.O_RDWR)
    except OSError:
        return
    try:
        for conn in list(_connections):
            try:
                os.dup2(null, conn.pgconn.socket)
            except (OSError, psycopg.Error):
                pass
    finally:
        os.close(null)
    _connections.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)


class _Pool:
    """Idle connections of one engine, for the transactions to take.

    A small pool of its own rather than ``psycopg_pool``: a transaction
    needs exactly one connection for its whole life, taken without waiting
    (a thread that opens a second transaction must never wait for its
    first), and a forked child must never touch its parent's connections.
    That is a list under a lock; no background thread, no extra package.
    """

    def __init__(self, connect: Any, size: int) -> None:
        self._connect = connect
        self.size = size
        self._idle: list[psycopg.Connection[Any]] = []
        self._lock = threading.Lock()
        self._pid = _process[0]
        #: Connections a forked child inherited: kept referenced and never
        #: closed, since closing would end the parent's sessions.
        self._inherited: list[psycopg.Connection[Any]] = []
        #: Idle connections whose ``ROLLBACK`` was sent but whose answer was
        #: not read yet (see :meth:`put_rolling_back`).
        self._rolling: set[psycopg.Connection[Any]] = set()
        self.closed = False

    def get(self) -> psycopg.Connection[Any]:
        while True:
            with self._lock:
                if self._pid != _process[0]:
                    self._inherited.extend(self._idle)
                    self._idle = []
                    self._rolling.clear()
                    self._pid = _process[0]
                if not self._idle:
                    break
                conn = self._idle.pop()
                rolling = conn in self._rolling
                self._rolling.discard(conn)
            if (not rolling or self._settle(conn)) and _quiet(conn):
                return conn
        return self._connect()

    def _settle(self, conn: psycopg.Connection[Any]) -> bool:
        """Read the answer to the ``ROLLBACK`` sent when ``conn`` was given
        back (it has normally arrived meanwhile); ``False``, and the
        connection closed, if it is not idle and healthy afterwards."""
        pgconn = conn.pgconn
        try:
            while pgconn.get_result() is not None:
                pass
        except psycopg.Error:
            pass
        if conn.closed or pgconn.transaction_status != TransactionStatus.IDLE:
            self.discard(conn)
            return False
        return True

    def put_rolling_back(self, conn: psycopg.Connection[Any]) -> None:
        """Give back a connection inside a transaction: send ``ROLLBACK``
        without waiting for the answer, which the next :meth:`get` reads.
        The server ends the transaction (and frees its snapshot) as soon as
        the message arrives; the client saves a round trip."""
        # Another thread may be inside a call on it (close() ending the
        # transaction): then it is closed rather than waited for.
        if not conn.lock.acquire(blocking=False):
            self.discard(conn)
            return
        try:
            if conn.closed:
                raise psycopg.OperationalError("the connection is closed")
            conn.pgconn.send_query(_ROLLBACK)
            conn.pgconn.flush()
        except psycopg.Error:
            self.discard(conn)
            return
        finally:
            conn.lock.release()
        with self._lock:
            if (
                not self.closed
                and len(self._idle) < self.size
                and self._pid == _process[0]
            ):
                self._idle.append(conn)
                self._rolling.add(conn)
                return
        self.discard(conn)

    def connect(self) -> psycopg.Connection[Any]:
        """A new connection, never an idle one."""
        return self._connect()

    def clear(self) -> None:
        """Close the idle connections."""
        with self._lock:
            idle, self._idle = self._idle, []
            self._rolling.clear()
        for conn in idle:
            self.discard(conn)

    def put(self, conn: psycopg.Connection[Any]) -> None:
        """Give back a connection; one that is not idle and healthy is closed."""
        if (
            not conn.closed
            and conn.pgconn.transaction_status == TransactionStatus.IDLE
            and self._pid == _process[0]
        ):
            with self._lock:
                if not self.closed and len(self._idle) < self.size:
                    self._idle.append(conn)
                    return
        self.discard(conn)

    def discard(self, conn: psycopg.Connection[Any]) -> None:
        if self._pid == _process[0]:
            _close(conn)
        else:
            self._inherited.append(conn)

    def close(self) -> None:
        self.closed = True
        self.clear()


class PostgreSQLEngine(Engine):
    """A table in a PostgreSQL database.

    ``conninfo`` is a libpq connection string or URI; ``connect`` adds or
    overrides libpq parameters (``host``, ``port``, ``user``, ``password``,
    ``dbname``, ``sslmode``...). The URL form is
    ``postgresql://user:password@host:port/dbname?table=acid``.
    """

    snapshots = True
    multi_process = True
    concurrent_writers = True
    persistent = True
    max_key_size = MAX_KEY_SIZE

    PARAMS = {
        "table": Param(
            _table_name, "acid", "the table holding the data", check=_check_table
        ),
        "pool_size": Param(Param.INT, 8, "idle connections kept", low=0, high=10_000),
        "connect_timeout": Param(
            Param.SECONDS, 10.0, "seconds to wait for a connection", low=1
        ),
        "lock_timeout": Param(
            Param.SECONDS,
            DEFAULT_LOCK_TIMEOUT,
            "seconds a statement waits for a row lock",
        ),
        **{
            name: Param(str, None, "libpq parameter", check=_check_text)
            for name in _LIBPQ
        },
    }

    def __init__(
        self,
        conninfo: str = "",
        *,
        table: str = "acid",
        pool_size: int = 8,
        connect_timeout: float = 10.0,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        **connect: Any,
    ) -> None:
        self._pool: _Pool | None = None
        check_params(
            "postgresql",
            self.PARAMS,
            table=table,
            pool_size=pool_size,
            connect_timeout=connect_timeout,
            lock_timeout=lock_timeout,
        )
        if not isinstance(conninfo, str):
            raise ConfigError("postgresql: conninfo must be a str")
        self.table = table
        self.lock_timeout = float(lock_timeout)
        self._sql = _Statements(table)
        options = {k: v for k, v in connect.items() if v is not None}
        try:
            info = psycopg.conninfo.conninfo_to_dict(conninfo, **options)
        except psycopg.ProgrammingError as exc:
            raise ConfigError(f"postgresql: bad connection string: {exc}") from exc
        self.url = _display_url(info, table)
        # A whole number of milliseconds; 0 means no limit for PostgreSQL.
        wait_ms = (
            0 if lock_timeout == float("inf") else max(1, round(lock_timeout * 1000))
        )
        self._connect_args: dict[str, Any] = {
            **info,
            "connect_timeout": max(1, round(min(connect_timeout, 2**31 - 1))),
            "options": f"{info.get('options', '')} -c lock_timeout={wait_ms}".strip(),
            "autocommit": True,
            # No automatic server-side prepared statements: after a failed
            # batch psycopg could believe prepared a statement that is not
            # ("prepared statement _pg3_3 does not exist", seen with
            # pipeline mode).
            "prepare_threshold": None,
        }
        #: Rows that recent scans used (see ``_first_page``).
        self._scan_rows = float(_FIRST_PAGE)
        #: Open transactions, for close(): weak references to them, and the
        #: box holding each one's connection (freed with the transaction).
        self._live: dict[weakref.ref[_Base], list[Any]] = {}
        self._live_lock = threading.Lock()
        self._pool = pool = _Pool(self._new_connection, pool_size)
        conn = pool.get()
        try:
            self._create_table(conn)
        except BaseException:
            pool.discard(conn)
            self._pool = None
            raise
        pool.put(conn)

    @classmethod
    def from_url(cls, url: EngineURL) -> PostgreSQLEngine:
        values = resolve_params(url, cls.PARAMS)
        args = _netloc_args(url)
        args.update((k, v) for k, v in values.items() if v is not None)
        return cls("", **args)

    # -- connections -------------------------------------------------------

    def _new_connection(self) -> psycopg.Connection[Any]:
        try:
            conn = psycopg.connect(**self._connect_args)
            _connections.add(conn)
            return conn
        except psycopg.Error as exc:
            raise EngineError(
                f"{self.url}: cannot connect: {_reason(exc)}; check the host, "
                "port, user, password and that the server runs"
            ) from exc

    def _create_table(self, conn: psycopg.Connection[Any]) -> None:
        try:
            conn.execute(self._sql.create)
        except (pgerrors.UniqueViolation, pgerrors.DuplicateTable):
            pass  # another process created it at the same moment
        except psycopg.Error as exc:
            raise EngineError(
                f"{self.url}: cannot create the table {self.table!r}: {_reason(exc)}"
            ) from exc
        try:
            conn.execute(self._sql.shape)
        except psycopg.Error as exc:
            raise ConfigError(
                f"{self.url}: the table {self.table!r} exists but is not an acid "
                f"table (key bytea, value bytea): {_reason(exc)}; name another "
                "one with ?table="
            ) from exc

    def _take(self) -> psycopg.Connection[Any]:
        pool = self._pool
        if pool is None:
            raise closed_engine(self.url)
        return pool.get()

    # -- Engine -----------------------------------------------------------

    def begin(self, write: bool = False, timeout: float | None = None) -> Txn:
        # Writers never wait for each other here: the server arbitrates.
        if timeout is not None:
            check_timeout(timeout)
        conn = self._take()
        txn: _Base = _PGWriter(self, conn) if write else _PGReader(self, conn)
        if self._pool is None:  # close() ran meanwhile and may not have seen it
            txn.abort()
            raise closed_engine(self.url)
        return txn

    def get(self, key: bytes) -> bytes | None:
        """One read outside any transaction: a single statement, which is
        its own snapshot."""
        if type(key) is not bytes:
            raise TypeError("keys must be bytes")
        pool = self._pool
        if pool is None:
            raise closed_engine(self.url)
        conn = pool.get()
        try:
            row = conn.execute(self._sql.get, (key,), binary=True).fetchone()
        except psycopg.Error as exc:
            pool.discard(conn)
            if not (isinstance(exc, psycopg.OperationalError) and conn.broken):
                raise _translate(exc, self.url, "read") from exc
            pool.clear()  # a dead pooled connection: once more on a new one
            conn = pool.connect()
            try:
                row = conn.execute(self._sql.get, (key,), binary=True).fetchone()
            except psycopg.Error as exc2:
                pool.discard(conn)
                raise _translate(exc2, self.url, "read") from exc2
        pool.put(conn)
        return None if row is None else row[0]

    def close(self) -> None:
        """End every open transaction (writers are aborted) and close the
        connections. Never waits for a transaction."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        with self._live_lock:
            refs = list(self._live)
        for ref in refs:
            txn = ref()
            if txn is not None:
                txn.close_for_engine(self.url)
        pool.close()

    def __del__(self) -> None:
        if getattr(self, "_pool", None) is not None:
            self.close()

    # -- what the transactions call ----------------------------------------

    def _track(self, txn: _Base, box: list[Any]) -> weakref.ref[_Base]:
        ref = weakref.ref(txn, self._abandoned)
        with self._live_lock:
            self._live[ref] = box
        return ref

    def _abandoned(self, ref: weakref.ref[_Base]) -> None:
        # A transaction freed without ending: its session still has a
        # transaction open. Closing the connection makes the server roll it
        # back; no round trip from a garbage-collector callback.
        with self._live_lock:
            box = self._live.pop(ref, None)
        if box:
            conn = box.pop()
            pool = self._pool
            if pool is not None:
                pool.discard(conn)
            else:
                _close(conn)

    def _give_back(
        self, ref: weakref.ref[_Base], conn: psycopg.Connection[Any]
    ) -> None:
        with self._live_lock:
            self._live.pop(ref, None)
        pool = self._pool
        if pool is None:
            _close(conn)
        elif conn.pgconn.transaction_status == TransactionStatus.IDLE:
            pool.put(conn)
        else:
            pool.put_rolling_back(conn)

    def _first_page(self) -> int:
        """Rows to read first in a scan: a little more than recent scans
        used (a scan that reads 100 rows then needs one query, one that
        stops at its first row does not fetch a thousand)."""
        return min(_MAX_PAGE, max(_FIRST_PAGE, int(self._scan_rows * 1.125) + 2))

    def _scanned(self, rows: int) -> None:
        # A moving average; races between threads only blur it.
        self._scan_rows = self._scan_rows * 0.75 + rows * 0.25


def _netloc_args(url: EngineURL) -> dict[str, Any]:
    """libpq parameters from ``postgresql://user:password@host:port/dbname``."""
    netloc = url.netloc
    dbname = url.path[1 + len(netloc) :].lstrip("/") if url.path else ""
    if "/" in dbname:
        raise ConfigError(
            f"{url.scheme}: bad database name {dbname!r}; expected "
            "postgresql://user:password@host:port/dbname"
        )
    try:
        split = urlsplit(f"postgresql://{netloc}")
        port = split.port
    except ValueError as exc:
        raise ConfigError(
            f"{url.scheme}: bad host or port in {netloc!r} ({exc}); expected "
            "postgresql://user:password@host:port/dbname with a port from 1 to 65535"
        ) from None
    args: dict[str, Any] = {}
    if split.hostname:
        args["host"] = split.hostname
    if port is not None:
        if port == 0:
            raise ConfigError(f"{url.scheme}: bad port 0; expected 1 to 65535")
        args["port"] = str(port)
    if split.username:
        args["user"] = unquote(split.username)
    if split.password is not None:
        args["password"] = unquote(split.password)
    if dbname:
        args["dbname"] = unquote(dbname)
    return args


def _display_url(info: dict[str, Any], table: str) -> str:
    """The engine's URL for messages: everything but the password."""
    user = f"{info['user']}@" if info.get("user") else ""
    host = info.get("host", "")
    if ":" in host and not host.startswith("/"):
        host = f"[{host}]"
    port = f":{info['port']}" if info.get("port") else ""
    return f"postgresql://{user}{host}{port}/{info.get('dbname', '')}?table={table}"


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _translate(exc: psycopg.Error, url: str, what: str) -> Error:
    """A psycopg error as the ``acid.errors`` one, once, with the remedy."""
    reason = _reason(exc)
    if isinstance(exc, pgerrors.SerializationFailure | pgerrors.DeadlockDetected):
        return ConflictError(
            f"{url}: {what} lost a conflict with a concurrent transaction "
            f"({exc.sqlstate}: {reason}); nothing of it was committed, run it "
            "again (store.transact retries)"
        )
    if isinstance(exc, pgerrors.LockNotAvailable):
        return TxnTimeout(
            f"{url}: {what} waited too long for a row lock ({reason}); retry, "
            "or raise the URL parameter lock_timeout"
        )
    if isinstance(exc, psycopg.OperationalError) and not isinstance(
        exc, pgerrors.QueryCanceled
    ):
        return EngineError(
            f"{url}: the connection to the server failed during the {what}: "
            f"{reason}; the transaction was rolled back by the server"
        )
    return EngineError(f"{url}: the {what} failed: {reason}")


def _lost(conn: psycopg.Connection[Any], exc: psycopg.Error) -> bool:
    """Whether ``exc`` is the connection failing (rather than the server
    refusing a statement)."""
    return isinstance(exc, psycopg.OperationalError) and (conn.closed or conn.broken)


def _bad_key(key: object) -> None:
    if type(key) is not bytes:
        raise TypeError("keys must be bytes")


class _Base(Txn):
    """What readers and writers share: a pooled connection, the lazy
    ``BEGIN``, point reads and paged scans."""

    __slots__ = ("_begun", "_box", "_engine", "_ref")
    _begin: bytes
    _engine: PostgreSQLEngine
    #: ``[connection]`` while the transaction has it; emptied when it ends.
    _box: list[psycopg.Connection[Any]]
    _ref: weakref.ref[_Base]
    _begun: bool

    def _setup(self, engine: PostgreSQLEngine, conn: psycopg.Connection[Any]) -> None:
        self._engine = engine
        self._box = [conn]
        self._begun = False
        self._ref = engine._track(self, self._box)

    def _conn(self) -> psycopg.Connection[Any]:
        try:
            return self._box[0]
        except IndexError:
            raise TxnError("transaction ended: its engine was closed") from None

    def _run(self, query: bytes, params: Sequence[Any], what: str) -> list[Any]:
        """Run one statement in this transaction and return its rows; the
        first one is preceded by ``BEGIN``."""
        for attempt in (1, 2):
            conn = self._conn()
            try:
                if not self._begun:
                    # Its own round trip: psycopg's pipeline mode, which
                    # would save it, costs more client CPU than it saves.
                    conn.execute(self._begin)
                    self._begun = True
                return conn.execute(query, params, binary=True).fetchall()
            except psycopg.Error as exc:
                if attempt == 1 and self._stale(conn, exc):
                    continue
                raise self._failed(exc, what) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _stale(self, conn: psycopg.Connection[Any], exc: psycopg.Error) -> bool:
        """Whether ``exc`` says that the pooled connection ``conn`` was dead
        before this transaction sent anything (the server restarted, or
        dropped idle sessions). Then it is swapped for a new one, and the
        statement may run again: nothing of this transaction happened."""
        if self._begun or not isinstance(exc, psycopg.OperationalError):
            return False
        if not conn.broken:
            return False
        pool = self._engine._pool
        if pool is None:
            return False
        pool.discard(conn)
        pool.clear()  # the other idle ones are most likely dead too
        new = pool.connect()
        try:
            self._box[0] = new
        except IndexError:  # ended meanwhile (close())
            pool.discard(new)
            return False
        return True

    def _failed(self, exc: psycopg.Error, what: str) -> Error:
        """The error to raise; the transaction is unusable from now on (the
        server aborted it), so every later call raises the same."""
        if self.ended:
            return TxnError(_USED_AFTER_END)
        error = _translate(exc, self._engine.url, what)
        self.poison(type(error), str(error))
        return error

    def get(self, key: bytes) -> bytes | None:
        _bad_key(key)
        rows = self._run(self._engine._sql.get, (key,), "read")
        return rows[0][0] if rows else None

    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        """The values of ``keys`` (``None`` where absent), in their order,
        read in one round trip."""
        keys = list(keys)
        for key in keys:
            _bad_key(key)
        found = dict(self._run(self._engine._sql.get_many, (keys,), "read"))
        return [found.get(key) for key in keys]

    def _pages(
        self, key: bytes, reverse: bool, inclusive: bool
    ) -> Iterator[tuple[bytes, bytes]]:
        """The committed rows (and this transaction's flushed writes) from
        ``key``, a page per round trip."""
        engine = self._engine
        sqls = engine._sql
        size = engine._first_page()
        if reverse:
            query, after = (sqls.le if inclusive else sqls.lt), sqls.lt
        else:
            query, after = (sqls.ge if inclusive else sqls.gt), sqls.gt
        used = 0
        try:
            while True:
                if self.ended:
                    raise TxnError(_USED_AFTER_END)
                rows = self._run(query, (key, size), "scan")
                for row in rows:
                    yield row
                    used += 1
                    if self.ended:
                        raise TxnError(_USED_AFTER_END)
                if len(rows) < size:
                    return
                key, query, size = rows[-1][0], after, min(size * 4, _MAX_PAGE)
        finally:
            engine._scanned(used)

    def _release(self) -> None:
        # Once per transaction even when close() races the owner: only the
        # thread that empties the box gives the connection back.
        try:
            conn = self._box.pop()
        except IndexError:
            return
        # Inside a transaction still (a reader, an aborted writer), the
        # pool sends ROLLBACK without waiting for the answer.
        self._engine._give_back(self._ref, conn)


class _PGReader(_Base):
    """A read transaction: ``REPEATABLE READ READ ONLY``, one snapshot."""

    __slots__ = ()
    write = False
    _begin = _BEGIN_READ
    put = delete = replace = pop = read_only

    def __init__(self, engine: PostgreSQLEngine, conn: psycopg.Connection[Any]) -> None:
        self._setup(engine, conn)

    def iter(self, key: bytes, reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
        _bad_key(key)
        return self._pages(key, reverse, True)


class _PGWriter(OverlayWrites, _Base):
    """A ``SERIALIZABLE`` write transaction buffering its writes."""

    __slots__ = ("_overlay", "_puts", "_size", "_writes")
    write = True
    _begin = _BEGIN_WRITE

    def __init__(self, engine: PostgreSQLEngine, conn: psycopg.Connection[Any]) -> None:
        self._setup(engine, conn)
        self._puts: dict[bytes, bytes] = {}
        self._overlay: Overlay | None = None
        self._writes = 0
        self._size = 0  # bytes of keys and values put since the last flush
        # Writers do not take turns; the lock only marks who ends the
        # transaction (see Txn), so each writer has one of its own.
        lock = WriterLock()
        lock.acquire(0, 0, engine.url)
        lock.hold(self)

    def get(self, key: bytes) -> bytes | None:
        value = self._puts.get(key)
        if value is None:
            return _Base.get(self, key)
        return None if value is DELETED else value

    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        keys = list(keys)
        puts = self._puts
        missing = [key for key in keys if key not in puts]
        found: dict[bytes, bytes | None] = {}
        if missing:
            found = dict(zip(missing, _Base.get_many(self, missing), strict=True))
        out: list[bytes | None] = []
        for key in keys:
            value = puts.get(key, found.get(key))
            out.append(None if value is DELETED else value)
        return out

    def put(self, key: bytes, value: bytes) -> None:
        if type(key) is bytes and len(key) > MAX_KEY_SIZE:
            raise EngineError(
                f"key of {len(key)} bytes is longer than PostgreSQL's btree "
                f"limit of {MAX_KEY_SIZE} bytes; use shorter keys"
            )
        OverlayWrites.put(self, key, value)
        self._size += len(key) + len(value)
        if len(self._puts) >= FLUSH_AT or self._size >= FLUSH_BYTES:
            self._flush()

    def iter(self, key: bytes, reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
        _bad_key(key)
        return live_iter(self, self._scan, key, reverse)

    def _scan(
        self, key: bytes, reverse: bool, inclusive: bool
    ) -> Iterator[tuple[bytes, bytes]]:
        base = self._pages(key, reverse, inclusive)
        if not self._puts:
            return base
        return merge(base, ordered(self).scan(key, reverse, inclusive), reverse)

    def _flush(self, commit: bool = False) -> None:
        """Send the buffered writes, after ``BEGIN`` if it was not sent yet
        and with ``COMMIT`` when ``commit``, all in one round trip; empty
        the buffer.

        The statements travel as one query string, their parameters merged
        by psycopg's client-side binding (``ClientCursor``): the server runs
        them in order and stops at the first error, which then leaves the
        transaction aborted (or, at ``COMMIT``, rolled back).
        """
        puts = self._puts
        parts: list[bytes] = []
        params: list[bytes] = []
        if not self._begun:
            parts.append(self._begin)
        sqls = self._engine._sql
        items = [(k, v) for k, v in puts.items() if v is not DELETED]
        gone = [k for k, v in puts.items() if v is DELETED]
        step = _ROWS_PER_STATEMENT
        for i in range(0, len(items), step):
            chunk = items[i : i + step]
            parts.append(sqls.upsert(len(chunk)))
            for key, value in chunk:
                params += (key, value)
        for i in range(0, len(gone), step):
            keys = gone[i : i + step]
            parts.append(sqls.delete(len(keys)))
            params += keys
        if commit:
            parts.append(_COMMIT)
        query = b"; ".join(parts)
        for attempt in (1, 2):
            conn = self._conn()
            try:
                psycopg.ClientCursor(conn).execute(query, params)
                break
            except psycopg.Error as exc:
                # A dead pooled connection is replaced only while nothing of
                # this transaction reached the server, and never for a batch
                # holding COMMIT: the server may have run it.
                if attempt == 1 and not commit and self._stale(conn, exc):
                    continue
                if commit and _lost(conn, exc):
                    raise self._unknown(exc) from exc
                raise self._failed(exc, "commit" if commit else "write") from exc
        self._begun = True
        self._puts = {}
        self._size = 0
        self._overlay = None
        self._writes += 1  # live iterators re-seek: the server has them now

    def _unknown(self, exc: psycopg.Error) -> EngineError:
        return EngineError(
            f"{self._engine.url}: the connection failed during COMMIT "
            f"({_reason(exc)}); the outcome is unknown: the transaction "
            "may or may not have been committed. Check the data before "
            "running it again."
        )

    def _commit(self) -> None:
        if not self._puts and not self._begun:
            return  # nothing read, nothing written
        if self._puts:
            self._flush(commit=True)
            return
        conn = self._conn()
        try:
            conn.execute(_COMMIT)
        except psycopg.Error as exc:
            if _lost(conn, exc):
                raise self._unknown(exc) from exc
            raise _translate(exc, self._engine.url, "commit") from exc

    def _abort(self) -> None:
        self._puts = {}
        self._overlay = None

    def _release(self) -> None:
        self._writes += 1  # wakes live iterators so that they raise
        self._puts = {}
        self._overlay = None
        _Base._release(self)
