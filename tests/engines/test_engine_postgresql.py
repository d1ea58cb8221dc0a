"""The PostgreSQL engine on a real server: URLs, bad addresses and
credentials, conflicts, snapshots, batching, a server killed mid-transaction
and a connection lost during COMMIT."""

from __future__ import annotations

import gc
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from acid.engines import from_url, parse_url
from acid.errors import ConfigError, ConflictError, EngineError, TxnError
from acid.testing import fill
from tests import pgserver
from tests.conftest import postgres_table_url

psycopg = pytest.importorskip("psycopg")


@pytest.fixture
def url(postgres_url: str, tmp_path: Path) -> str:
    return postgres_table_url(postgres_url, str(tmp_path))


@pytest.fixture
def engine(url: str) -> Iterator[Any]:
    with from_url(url) as engine:
        yield engine


def _all(engine: Any) -> list[tuple[bytes, bytes]]:
    with engine.begin() as txn:
        return list(txn.iter(b""))


# -- URLs, without a server ---------------------------------------------------


def test_url_parts() -> None:
    url = parse_url("postgresql://ann:p%40ss@db.example:5433/app?table=kv")
    assert url.netloc == "ann:p%40ss@db.example:5433"
    assert str(url) == "postgresql://ann:p%40ss@db.example:5433/app?table=kv"
    assert parse_url("lmdb:///abs").netloc == ""  # unchanged for file engines
    assert parse_url("lmdb:///abs").path == "/abs"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("postgresql://u@localhost:99999/db", "port"),
        ("postgresql://u@localhost:0/db", "port"),
        ("postgresql://u@localhost:abc/db", "port"),
        ("postgresql://u@localhost/db/extra", "database name"),
        ("postgresql://u@localhost/db?tabel=x", "unknown parameter 'tabel'.*table"),
        ("postgresql://u@localhost/db?table=", "table"),
        ("postgresql://u@localhost/db?pool_size=-1", "pool_size"),
        ("postgres://u@localhost/db?connect_timeout=nan", "connect_timeout"),
    ],
)
def test_bad_urls_are_config_errors(text: str, match: str) -> None:
    start = time.monotonic()
    with pytest.raises(ConfigError, match=match):
        from_url(text)
    assert time.monotonic() - start < 5


def test_bad_constructor_arguments() -> None:
    from acid.engines.postgresql import PostgreSQLEngine

    with pytest.raises(ConfigError, match="table"):
        PostgreSQLEngine("host=localhost", table="x" * 64)
    with pytest.raises(ConfigError, match="pool_size"):
        PostgreSQLEngine("host=localhost", pool_size="8")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="connection string"):
        PostgreSQLEngine("host=localhost port")


def test_nothing_listening_is_an_engine_error_at_once() -> None:
    port = pgserver.free_port()
    start = time.monotonic()
    with pytest.raises(EngineError, match="cannot connect") as info:
        from_url(f"postgresql://u:secret@127.0.0.1:{port}/db?connect_timeout=2")
    assert "secret" not in str(info.value)
    assert time.monotonic() - start < 10


def test_unreachable_host_times_out() -> None:
    # 192.0.2.0/24 is reserved for documentation: nothing answers there.
    start = time.monotonic()
    with pytest.raises(EngineError, match="cannot connect"):
        from_url("postgresql://u@192.0.2.1:5432/db?connect_timeout=1")
    assert time.monotonic() - start < 15


# -- on the server -------------------------------------------------------------


def test_wrong_password_is_an_engine_error(postgres_url: str) -> None:
    parsed = parse_url(postgres_url)
    user = parsed.netloc.split("@")[0].split(":")[0]
    host = parsed.netloc.split("@")[1]
    bad = postgres_url.replace(parsed.netloc, f"{user}:wrong-pw@{host}")
    if bad == postgres_url:
        pytest.skip("the server URL has no user to try a wrong password with")
    with pytest.raises(EngineError, match="cannot connect") as info:
        from_url(bad)
    assert "wrong-pw" not in str(info.value)


def test_url_hides_the_password(engine: Any, postgres_url: str) -> None:
    assert "postgresql://" in engine.url and "table=t_" in engine.url
    password = parse_url(postgres_url).netloc.partition("@")[0].partition(":")[2]
    if password:
        assert password not in engine.url and password not in repr(engine)


def test_capabilities(engine: Any) -> None:
    assert engine.persistent and engine.multi_process and engine.snapshots
    assert engine.concurrent_writers
    assert engine.max_key_size == 2690


def test_a_table_of_another_shape_is_refused(postgres_url: str, url: str) -> None:
    table = url.rpartition("table=")[2]
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'CREATE TABLE "{table}" (id int)')
    with pytest.raises(ConfigError, match="not an acid table"):
        from_url(url)


def test_odd_table_names_are_quoted(postgres_url: str) -> None:
    name = f'we"ird; DROP TABLE x; -- {os.getpid()}'
    with from_url(postgres_table_url(postgres_url, "", name)) as engine:
        fill(engine, {b"k": b"v"})
        assert engine.get(b"k") == b"v"


def test_get_many_in_order_with_own_writes(engine: Any) -> None:
    fill(engine, {b"a": b"1", b"b": b"2", b"c": b"3"})
    with engine.begin() as txn:
        assert txn.get_many([b"c", b"x", b"a", b"a"]) == [b"3", None, b"1", b"1"]
        assert txn.get_many([]) == []
    with engine.begin(write=True) as txn:
        txn.put(b"x", b"new")
        txn.delete(b"a")
        assert txn.get_many([b"a", b"b", b"x"]) == [None, b"2", b"new"]
        with pytest.raises(TypeError):
            txn.get_many(["a"])


def _count_statements(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Record every query text sent through a psycopg cursor (each is one
    round trip; ``Connection.execute`` goes through one too)."""
    seen: list[bytes] = []
    real = psycopg.Cursor.execute

    def execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(query if isinstance(query, bytes) else str(query).encode())
        return real(self, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", execute)
    return seen


def test_a_big_write_transaction_is_a_few_statements(
    engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _count_statements(monkeypatch)
    with engine.begin(write=True) as txn:
        for i in range(1000):
            txn.put(b"k%04d" % i, b"v%d" % i)
        txn.delete(b"k0007")
    assert len(seen) == 1, seen  # BEGIN; INSERT ...; DELETE ...; COMMIT
    assert seen[0].startswith(b"BEGIN") and seen[0].endswith(b"COMMIT")
    seen.clear()
    with engine.begin() as txn:
        values = txn.get_many([b"k%04d" % i for i in range(1000)])
    assert len(seen) <= 2, seen  # BEGIN, select (ROLLBACK: sent, not awaited)
    assert values[7] is None and values[999] == b"v999"
    assert sum(v is not None for v in values) == 999


def test_huge_transaction_flushes_early_and_still_aborts(engine: Any) -> None:
    fill(engine, {b"keep": b"1"})
    n = 12_000  # over two early flushes
    with engine.begin(write=True) as txn:
        it = txn.iter(b"k")
        for i in range(n):
            txn.put(b"k%06d" % i, b"x")
        # The iterator made before the writes sees them, in order.
        assert next(it) == (b"k000000", b"x")
        assert sum(1 for _ in it) == n  # the rest of k..., then b"keep"
        txn.delete(b"k000005")
        assert txn.get(b"k000005") is None
        assert len(list(txn.iter(b"k\xff", reverse=True))) == n  # with b"keep"
        txn.abort()
    assert _all(engine) == [(b"keep", b"1")]
    fill(engine, {b"k%06d" % i: b"y" for i in range(n)})
    assert len(_all(engine)) == n + 1


def test_conflict_then_retry(engine: Any) -> None:
    fill(engine, {b"n": b"0"})
    first, second = engine.begin(write=True), engine.begin(write=True)
    for txn in (first, second):
        txn.put(b"n", str(int(txn.get(b"n")) + 1).encode())
    first.commit()
    with pytest.raises(ConflictError, match="40001") as info:
        second.commit()
    assert info.value.retryable
    with pytest.raises(TxnError):
        second.get(b"n")
    assert engine.get(b"n") == b"1"


def test_range_conflict_phantom(engine: Any) -> None:
    # Two writers each count a range and insert into it: serial execution
    # would let the second see the first's row, so one must lose.
    fill(engine, {b"r1": b""})
    first, second = engine.begin(write=True), engine.begin(write=True)
    counts = [len(list(t.iter(b"r"))) for t in (first, second)]
    assert counts == [1, 1]
    first.put(b"r2", b"")
    second.put(b"r3", b"")
    first.commit()
    with pytest.raises(ConflictError):
        second.commit()
    assert [k for k, _ in _all(engine)] == [b"r1", b"r2"]


def test_long_reader_keeps_its_snapshot(engine: Any) -> None:
    fill(engine, {b"k%03d" % i: b"old" for i in range(200)})
    reader = engine.begin()
    it = reader.iter(b"")
    first = [next(it) for _ in range(10)]  # the first page, not all of them

    def writer(round_: int) -> None:
        with engine.begin(write=True) as txn:
            for i in range(0, 200, 2):
                txn.delete(b"k%03d" % i)
            txn.put(b"k%03d" % (199 - round_), b"new")
            txn.put(b"z%d" % round_, b"new")

    for round_ in range(5):
        thread = threading.Thread(target=writer, args=(round_,))
        thread.start()
        thread.join()
    rest = list(it)
    assert [v for _, v in first + rest] == [b"old"] * 200
    assert reader.get(b"k000") == b"old" and reader.get(b"z0") is None
    assert reader.get_many([b"k001", b"z4"]) == [b"old", None]
    assert len(list(reader.iter(b"\xff", reverse=True))) == 200
    reader.commit()
    # The odd keys and z0..z4; the even keys rounds 1 and 3 put back were
    # deleted again by the next round.
    assert len(_all(engine)) == 100 + 5


def test_same_key_writers_in_two_threads_one_waits_for_the_row(engine: Any) -> None:
    # Blind writes to one key: no read, so both may commit in some order.
    fill(engine, {b"k": b"0"})
    errors: list[BaseException] = []

    def write(value: bytes) -> None:
        try:
            with engine.begin(write=True) as txn:
                txn.put(b"k", value)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(b"%d" % i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert all(isinstance(e, ConflictError) for e in errors), errors
    assert engine.get(b"k") in {b"%d" % i for i in range(8)}


def test_abandoned_transactions_give_their_connections_back(engine: Any) -> None:
    fill(engine, {b"k": b"v"})
    for i in range(300):  # more than the server's connection limit
        txn = engine.begin(write=i % 2 == 0)
        assert txn.get(b"k") == b"v"
        if txn.write:
            txn.put(b"k", b"v")
        del txn  # neither committed nor aborted
    assert engine.get(b"k") == b"v"
    with engine.begin(write=True) as txn:
        txn.put(b"k", b"w")
    assert engine.get(b"k") == b"w"


# -- the server dies ------------------------------------------------------------


@pytest.fixture
def private_server(postgres_url: str) -> Iterator[pgserver.Server]:
    """A server of this test's own, to kill."""
    why = pgserver.missing()
    if why is not None:
        pytest.skip(why)
    server = pgserver.launch(quick_commit=False)
    try:
        yield server
    finally:
        server.stop()
        server.remove()


def test_killed_server_mid_transaction(private_server: pgserver.Server) -> None:
    url = f"{private_server.url}?table=t&connect_timeout=3"
    engine = from_url(url)
    try:
        fill(engine, {b"base": b"1"})
        writer = engine.begin(write=True)
        for i in range(6000):  # more than one early flush: some rows are sent
            writer.put(b"w%05d" % i, b"x")
        small = engine.begin(write=True)
        small.put(b"small", b"x")  # buffered, nothing sent yet
        reader = engine.begin()
        assert reader.get(b"base") == b"1"
        private_server.kill()
        with pytest.raises(EngineError, match="rolled back by the server"):
            for i in range(6000, 12000):  # the next early flush meets it
                writer.put(b"w%05d" % i, b"x")
        with pytest.raises(EngineError, match="rolled back"):
            writer.commit()  # the failure sticks: never committed
        with pytest.raises(TxnError):
            writer.get(b"base")  # and the transaction is over
        # A commit whose connection fails cannot know whether the server got
        # it: it says so, and never that it committed.
        with pytest.raises(EngineError, match="outcome is unknown"):
            small.commit()
        assert small.closed
        with pytest.raises(EngineError, match="connection"):
            reader.get(b"base")
        writer.abort()
        reader.abort()
        with pytest.raises(EngineError, match="cannot connect"):
            engine.begin().get(b"base")
        private_server.start()
        # The same engine works again: its dead pooled connections are replaced.
        assert engine.get(b"base") == b"1"
        assert _all(engine) == [(b"base", b"1")]  # no partial transaction
        fill(engine, {b"after": b"2"})
    finally:
        engine.close()
    with from_url(url) as again:
        assert _all(again) == [(b"after", b"2"), (b"base", b"1")]


def test_connection_lost_during_commit_is_not_reported_committed(
    postgres_url: str, url: str
) -> None:
    # A deferred constraint trigger makes COMMIT itself slow, so that the
    # session can be terminated while COMMIT runs.
    table = url.rpartition("table=")[2]
    with from_url(url) as engine:
        fill(engine, {b"base": b"1"})
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(
                "CREATE OR REPLACE FUNCTION acid_test_slow() RETURNS trigger "
                "LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(30); RETURN NULL; END $$"
            )
            admin.execute(
                f'CREATE CONSTRAINT TRIGGER slow AFTER INSERT ON "{table}" '
                "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
                "EXECUTE FUNCTION acid_test_slow()"
            )
            txn = engine.begin(write=True)
            txn.put(b"new", b"2")
            errors: list[BaseException] = []

            def commit() -> None:
                try:
                    txn.commit()
                except BaseException as exc:
                    errors.append(exc)

            thread = threading.Thread(target=commit)
            thread.start()
            deadline = time.monotonic() + 20
            killed = False
            while not killed and time.monotonic() < deadline:
                rows = admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE query LIKE %s AND state = 'active' "
                    "AND pid <> pg_backend_pid()",
                    (f"%{table}%COMMIT",),
                ).fetchall()
                killed = bool(rows)
                time.sleep(0.05)
            thread.join(timeout=30)
            assert killed
            admin.execute(f'DROP TRIGGER slow ON "{table}"')
        assert len(errors) == 1 and isinstance(errors[0], EngineError), errors
        assert "outcome is unknown" in str(errors[0])
        assert txn.closed
        assert engine.get(b"new") is None  # here it was not committed
        assert _all(engine) == [(b"base", b"1")]


def test_a_forked_child_leaves_the_parents_sessions_alone(engine: Any) -> None:
    fill(engine, {b"k": b"1"})
    reader = engine.begin()
    assert reader.get(b"k") == b"1"  # its session holds a snapshot now
    engine.get(b"k")  # and an idle pooled connection exists
    pid = os.fork()
    if pid == 0:  # the child: uses the engine, then frees what it inherited
        code = 1
        try:
            assert engine.get(b"k") == b"1"  # on a connection of its own
            fill(engine, {b"child": b"2"})
            try:
                reader.get(b"k")  # the parent's session: refused
            except EngineError:
                code = 0
            # What exiting would do: free every connection object, which
            # makes libpq say goodbye on its socket.
            for obj in gc.get_objects():
                if isinstance(obj, psycopg.Connection):
                    obj.close()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    fill(engine, {b"k": b"2"})
    assert reader.get(b"k") == b"1"  # the same session, snapshot intact
    assert reader.get(b"child") is None
    reader.abort()
    assert engine.get(b"child") == b"2" and engine.get(b"k") == b"2"
