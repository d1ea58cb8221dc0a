"""The engine conformance suite, reusable by third-party engines.

Subclass :class:`EngineConformance` in a test module (the class name must
start with ``Test`` for pytest to collect it) and say how to open your
engine at a directory; calling ``open_engine`` again with the same directory
must reopen the same data when the engine is ``persistent``::

    from acid.testing import EngineConformance

    class TestMyEngine(EngineConformance):
        def open_engine(self, path):
            return MyEngine(path / "db")

Tests branch on the engine's capability attributes (``snapshots``,
``persistent``, ``max_key_size``), never on its class.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from acid.engines import Engine, Txn
from acid.errors import ConfigError, ConflictError, EngineError, TxnError, TxnTimeout

__all__ = ["EngineConformance", "FakeClock", "close_within", "fill", "longest_stall"]


class FakeClock:
    """A clock for ``acid.open(url, clock=...)`` that only moves when told,
    so tests of expiry never sleep::

        clock = FakeClock()
        store = acid.open("memory:/", clock=clock)
        clock.now += 60  # a minute later

    ``broken``, when set to an exception, is raised by the next reading.
    """

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now: Any = now
        self.broken: BaseException | None = None

    def __call__(self) -> Any:
        if self.broken is not None:
            raise self.broken
        return self.now


def fill(engine: Engine, items: dict[bytes, bytes]) -> None:
    """Commit ``items`` in one write transaction."""
    with engine.begin(write=True) as txn:
        for key, value in items.items():
            txn.put(key, value)


def writers_take_turns(engine: Engine, close: bool = False) -> None:
    """Skip a test of the writer lock on engines whose writers run at once
    (``concurrent_writers``: their conflicts are tested instead)."""
    if engine.concurrent_writers:
        if close:
            engine.close()
        pytest.skip("writers run concurrently on this engine")


def _all(engine: Engine, reverse: bool = False) -> list[tuple[bytes, bytes]]:
    with engine.begin() as txn:
        return list(txn.iter(b"\xff" * 8 if reverse else b"", reverse))


def _calls_after_end(txn: Txn, it: Iterator[object]) -> list[Callable[[], object]]:
    return [
        lambda: txn.get(b"a"),
        lambda: txn.iter(b""),
        lambda: next(it),
        txn.commit,
        lambda: txn.put(b"a", b"x"),
        lambda: txn.delete(b"a"),
        lambda: txn.replace(b"a", b"x"),
        lambda: txn.pop(b"a"),
        lambda: txn.put_many([(b"a", b"x")]),
        lambda: txn.get_many([b"a"]),
    ]


def close_within(closable: Any, seconds: float) -> None:
    """Call ``closable.close()`` in a thread; fail, rather than hang, if it
    has not returned after ``seconds``."""
    # A new thread may get the identity of one that just ended; py-lmdb
    # would take it for the owner of that thread's write transaction and
    # not wait, hiding the bug. A parked thread takes the recycled identity.
    park = threading.Event()
    parked = threading.Thread(target=park.wait, daemon=True)
    parked.start()
    try:
        closer = threading.Thread(target=closable.close, daemon=True)
        closer.start()
        closer.join(timeout=seconds)
        assert not closer.is_alive(), f"close() still waits after {seconds} s"
    finally:
        park.set()


async def longest_stall(*coros: Any) -> float:
    """Run ``coros`` concurrently; return the longest time (seconds) the event
    loop went without running a 10 ms ticker: how long something blocked it.
    """
    stop = asyncio.Event()
    worst = 0.0

    async def ticker() -> None:
        nonlocal worst
        last = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(0.01)
            now = time.monotonic()
            last, worst = now, max(worst, now - last)

    tick = asyncio.create_task(ticker())
    try:
        await asyncio.gather(*coros)
    finally:
        stop.set()
        await tick
    return worst


class EngineConformance:
    """Mixin of pytest tests every engine must pass."""

    def open_engine(self, path: Path) -> Engine:
        """Open (or reopen) the engine under test stored at ``path``."""
        raise NotImplementedError

    @pytest.fixture
    def engine(self, tmp_path: Path) -> Iterator[Engine]:
        engine = self.open_engine(tmp_path)
        yield engine
        engine.close()

    # -- point operations -------------------------------------------------

    def test_empty_engine(self, engine: Engine) -> None:
        with engine.begin(write=True) as txn:
            assert txn.get(b"k") is None
            assert txn.delete(b"k") is False
            assert txn.pop(b"k") is None
            assert list(txn.iter(b"")) == []
            assert list(txn.iter(b"\xff", reverse=True)) == []
        assert _all(engine) == []
        assert _all(engine, reverse=True) == []

    def test_put_get_overwrite_delete(self, engine: Engine) -> None:
        with engine.begin(write=True) as txn:
            txn.put(b"k", b"1")
            txn.put(b"k", b"2")
            assert txn.get(b"k") == b"2"
            txn.put(b"gone", b"x")
        with engine.begin(write=True) as txn:
            assert txn.get(b"k") == b"2"
            assert txn.delete(b"gone") is True
            assert txn.delete(b"gone") is False
            assert txn.get(b"gone") is None
        with engine.begin() as txn:
            assert txn.get(b"k") == b"2"
            assert txn.get(b"gone") is None
            assert txn.get(b"k\x00") is None

    def test_replace_and_pop(self, engine: Engine) -> None:
        with engine.begin(write=True) as txn:
            assert txn.replace(b"k", b"1") is None
            assert txn.replace(b"k", b"2") == b"1"
            assert txn.pop(b"k") == b"2"
            assert txn.pop(b"k") is None
            assert txn.get(b"k") is None
            txn.put(b"k", b"3")
        with engine.begin() as txn:
            assert txn.get(b"k") == b"3"

    def test_put_many_and_get_many(self, engine: Engine) -> None:
        fill(engine, {b"b": b"old", b"z": b"26"})
        with engine.begin(write=True) as txn:
            txn.put_many([(b"a", b"1"), (b"b", b"2"), (b"a", b"3"), (b"c", b"")])
            assert txn.get_many([b"a", b"b", b"c", b"d", b"a"]) == [
                b"3",
                b"2",
                b"",
                None,
                b"3",
            ]
            txn.delete(b"z")
            assert txn.get_many([b"z"]) == [None]
            assert list(txn.iter(b"b")) == [(b"b", b"2"), (b"c", b"")]
            txn.put_many([])
            assert txn.get_many([]) == []
        expected = [(b"a", b"3"), (b"b", b"2"), (b"c", b"")]
        assert _all(engine) == expected
        with engine.begin() as txn:
            assert txn.get_many([b"c", b"a", b"q"]) == [b"", b"3", None]
            with pytest.raises(TxnError):
                txn.put_many([(b"q", b"1")])
            with pytest.raises(TxnError):
                txn.put_many([])
        assert _all(engine) == expected

    def test_put_many_refusing_a_key(self, engine: Engine) -> None:
        # Pairs before the refused one may land (the layer above undoes
        # them); the transaction stays usable, and nothing after it lands.
        limit = engine.max_key_size
        bad = b"\x01" * (limit + 1) if limit is not None else b""
        with engine.begin(write=True) as txn:
            with pytest.raises(EngineError, match=str(limit) if limit else "empty"):
                txn.put_many([(b"a", b"1"), (bad, b"v"), (b"c", b"3")])
            assert txn.get_many([bad, b"c"]) == [None, None]
            for key in (b"a",):
                txn.delete(key)
            txn.put(b"b", b"2")
        assert _all(engine) == [(b"b", b"2")]

    def test_empty_value_is_not_absent(self, engine: Engine) -> None:
        fill(engine, {b"k": b""})
        with engine.begin() as txn:
            assert txn.get(b"k") == b""
            assert list(txn.iter(b"")) == [(b"k", b"")]

    def test_binary_keys_sort_bytewise(self, engine: Engine) -> None:
        keys = [
            b"\x00",
            b"\x00\x00",
            b"\x00\xff",
            b"a\x00b",
            b"a",
            b"\xff",
            b"\xff\x00",
        ]
        items = {key: key[::-1] + b"!" for key in keys}
        fill(engine, items)
        assert _all(engine) == sorted(items.items())
        assert _all(engine, reverse=True) == sorted(items.items(), reverse=True)
        with engine.begin() as txn:
            for key, value in items.items():
                assert txn.get(key) == value

    def test_large_value(self, engine: Engine) -> None:
        big = bytes(range(256)) * 4096  # 1 MiB
        fill(engine, {b"big": big, b"small": b"s"})
        with engine.begin() as txn:
            assert txn.get(b"big") == big
            assert list(txn.iter(b"b")) == [(b"big", big), (b"small", b"s")]

    def test_longest_key(self, engine: Engine) -> None:
        size = engine.max_key_size or 4096
        key = b"\xfe" * size
        fill(engine, {key: b"v"})
        with engine.begin() as txn:
            assert txn.get(key) == b"v"
            assert list(txn.iter(b"\xff" * (size + 10), reverse=True)) == [(key, b"v")]

    def test_oversized_key_leaves_the_txn_usable(self, engine: Engine) -> None:
        limit = engine.max_key_size
        if limit is None:
            pytest.skip("engine has no key size limit")
        big = b"\x01" * (limit + 1)
        fill(engine, {b"k": b"1"})
        with engine.begin(write=True) as txn:
            txn.put(b"a", b"2")
            with pytest.raises(EngineError, match=str(limit)):
                txn.put(big, b"v")
            with pytest.raises(EngineError, match=str(limit)):
                txn.replace(big, b"v")
            # Such a key cannot exist: reads and removals say so.
            assert txn.get(big) is None
            assert txn.delete(big) is False
            assert txn.pop(big) is None
            assert list(txn.iter(b"")) == [(b"a", b"2"), (b"k", b"1")]
            txn.put(b"b", b"3")
        assert _all(engine) == [(b"a", b"2"), (b"b", b"3"), (b"k", b"1")]
        assert engine.get(big) is None
        with engine.begin() as txn:
            assert txn.get(big) is None

    def test_empty_key_is_refused_on_put(self, engine: Engine) -> None:
        with engine.begin(write=True) as txn:
            txn.put(b"a", b"1")
            with pytest.raises(EngineError, match="empty|1 to"):
                txn.put(b"", b"v")
            with pytest.raises(EngineError, match="empty|1 to"):
                txn.replace(b"", b"v")
            assert txn.get(b"") is None
            assert txn.delete(b"") is False
            assert txn.pop(b"") is None
            assert list(txn.iter(b"")) == [(b"a", b"1")]
            txn.put(b"b", b"2")
        assert _all(engine) == [(b"a", b"1"), (b"b", b"2")]
        assert engine.get(b"") is None

    # -- iteration --------------------------------------------------------

    def test_range_with_sentinels(self, engine: Engine) -> None:
        inside = {b"b" + bytes([i]): bytes([i]) for i in (0, 1, 2, 128, 255)}
        fill(engine, {b"a\xff": b"before", b"c": b"after", **inside})
        with engine.begin() as txn:
            got = [kv for kv in txn.iter(b"b") if kv[0] < b"c"]
            assert got == sorted(inside.items())
            assert next(iter(txn.iter(b"a\xff\x00"))) == (b"b\x00", b"\x00")
            assert next(iter(txn.iter(b"b\xff\x00"))) == (b"c", b"after")
            rev = list(txn.iter(b"b\xff\xff", reverse=True))
            assert rev[: len(inside)] == sorted(inside.items(), reverse=True)
            assert rev[len(inside)] == (b"a\xff", b"before")
            # Exact hits are included in both directions.
            assert next(iter(txn.iter(b"b\x02")))[0] == b"b\x02"
            assert next(iter(txn.iter(b"b\x02", reverse=True)))[0] == b"b\x02"
            assert next(iter(txn.iter(b"b\x03", reverse=True)))[0] == b"b\x02"
            assert list(txn.iter(b"c\x00")) == []
            assert list(txn.iter(b"a\xfe", reverse=True)) == []

    def test_reverse_from_past_the_end(self, engine: Engine) -> None:
        fill(engine, {b"a": b"1", b"\xff\xff": b"2"})
        with engine.begin() as txn:
            expected = [(b"\xff\xff", b"2"), (b"a", b"1")]
            assert list(txn.iter(b"\xff" * 1000, reverse=True)) == expected
            assert list(txn.iter(b"\xff" * 3, reverse=True)) == expected

    def test_many_keys_against_a_model(self, engine: Engine) -> None:
        rng = random.Random(7)
        model = {
            rng.randbytes(rng.randint(1, 12)): rng.randbytes(5) for _ in range(3000)
        }
        fill(engine, model)
        doomed = rng.sample(sorted(model), 1000)
        with engine.begin(write=True) as txn:
            for key in doomed:
                assert txn.delete(key)
                del model[key]
        assert _all(engine) == sorted(model.items())
        probe = rng.randbytes(3)
        with engine.begin() as txn:
            assert list(txn.iter(probe)) == sorted(
                i for i in model.items() if i[0] >= probe
            )
            assert list(txn.iter(probe, reverse=True)) == sorted(
                (i for i in model.items() if i[0] <= probe), reverse=True
            )

    # -- write transactions -----------------------------------------------

    def test_read_your_writes(self, engine: Engine) -> None:
        fill(engine, {b"a": b"1", b"b": b"2", b"c": b"3"})
        with engine.begin(write=True) as txn:
            txn.put(b"bb", b"new")
            txn.put(b"a", b"changed")
            txn.delete(b"c")
            assert txn.get(b"bb") == b"new"
            assert txn.get(b"c") is None
            expected = [(b"a", b"changed"), (b"b", b"2"), (b"bb", b"new")]
            assert list(txn.iter(b"")) == expected
            assert list(txn.iter(b"\xff", reverse=True)) == expected[::-1]
            txn.put(b"c", b"again")
            assert list(txn.iter(b"bb")) == [(b"bb", b"new"), (b"c", b"again")]

    def test_iterator_sees_later_writes_after_its_position(
        self, engine: Engine
    ) -> None:
        fill(engine, {b"a": b"1", b"c": b"3", b"e": b"5", b"g": b"7"})
        with engine.begin(write=True) as txn:
            it = txn.iter(b"")
            assert next(it) == (b"a", b"1")
            txn.put(b"b", b"2")  # just after the position: seen
            txn.put(b"0", b"0")  # behind the position: not seen
            assert next(it) == (b"b", b"2")
            txn.delete(b"c")  # the next key: skipped
            txn.put(b"e", b"five")  # an overwrite ahead: new value
            assert next(it) == (b"e", b"five")
            txn.delete(b"e")  # the current key: iteration continues after it
            assert list(it) == [(b"g", b"7")]
            rit = txn.iter(b"\xff", reverse=True)
            assert next(rit) == (b"g", b"7")
            txn.put(b"f", b"6")
            txn.put(b"h", b"8")
            assert list(rit) == [(b"f", b"6"), (b"b", b"2"), (b"a", b"1"), (b"0", b"0")]

    def test_abort_discards(self, engine: Engine) -> None:
        fill(engine, {b"k": b"1"})
        txn = engine.begin(write=True)
        txn.put(b"k", b"2")
        txn.put(b"new", b"x")
        txn.abort()
        with pytest.raises(RuntimeError):
            with engine.begin(write=True) as txn:
                txn.delete(b"k")
                raise RuntimeError("roll back")
        assert _all(engine) == [(b"k", b"1")]

    def test_commit_lands_for_new_readers(self, engine: Engine) -> None:
        txn = engine.begin(write=True)
        txn.put(b"k", b"v")
        with engine.begin() as reader:
            assert reader.get(b"k") is None  # not committed yet
        txn.commit()
        with engine.begin() as reader:
            assert reader.get(b"k") == b"v"

    def test_engine_get_reads_committed_state(self, engine: Engine) -> None:
        fill(engine, {b"k": b"1", b"e": b""})
        assert engine.get(b"k") == b"1"
        assert engine.get(b"e") == b""
        assert engine.get(b"missing") is None
        txn = engine.begin(write=True)
        txn.put(b"k", b"2")
        assert engine.get(b"k") == b"1"  # not committed yet
        txn.commit()
        assert engine.get(b"k") == b"2"

    def test_use_after_end_raises(self, engine: Engine) -> None:
        fill(engine, {b"a": b"1", b"b": b"2"})
        for write in (False, True):
            for end in ("commit", "abort"):
                txn = engine.begin(write=write)
                it = txn.iter(b"")
                assert next(it) == (b"a", b"1")
                getattr(txn, end)()
                assert txn.closed
                for call in _calls_after_end(txn, it):
                    with pytest.raises(TxnError):
                        call()
                ended = {"commit": "committed", "abort": "aborted"}[end]
                with pytest.raises(TxnError, match=ended):
                    txn.get(b"a")
                txn.abort()  # aborting an ended transaction is a no-op
        assert _all(engine) == [(b"a", b"1"), (b"b", b"2")]

    def test_ended_transactions_free_what_they_hold(self, engine: Engine) -> None:
        # Finished transactions the application still references must not
        # hold reader slots, snapshots or the writer lock (LMDB: 126 slots).
        fill(engine, {b"k": b"v"})
        kept = []
        for i in range(300):
            txn = engine.begin(write=i % 10 == 0, timeout=0)
            assert txn.get(b"k") == b"v"
            assert next(iter(txn.iter(b""))) == (b"k", b"v")
            (txn.abort if i % 3 else txn.commit)()
            kept.append(txn)
        with engine.begin() as txn:
            assert txn.get(b"k") == b"v"
        with engine.begin(write=True, timeout=0) as txn:
            txn.put(b"k", b"w")
        assert all(txn.closed for txn in kept)

    def test_write_in_read_txn_raises(self, engine: Engine) -> None:
        with engine.begin() as txn:
            for call in (
                lambda: txn.put(b"k", b"v"),
                lambda: txn.delete(b"k"),
                lambda: txn.replace(b"k", b"v"),
                lambda: txn.pop(b"k"),
            ):
                with pytest.raises(TxnError):
                    call()
        assert _all(engine) == []

    # -- concurrency ------------------------------------------------------

    def test_reader_snapshot_is_stable(self, engine: Engine) -> None:
        if not engine.snapshots:
            pytest.skip("engine does not promise snapshot reads")
        fill(engine, {b"a": b"1", b"b": b"2"})
        reader = engine.begin()
        it = reader.iter(b"")
        assert next(it) == (b"a", b"1")

        def write() -> None:
            with engine.begin(write=True) as txn:
                txn.put(b"a", b"changed")
                txn.delete(b"b")
                txn.put(b"c", b"3")

        thread = threading.Thread(target=write)
        thread.start()
        thread.join()
        assert reader.get(b"a") == b"1"
        assert reader.get(b"c") is None
        assert list(it) == [(b"b", b"2")]
        assert list(reader.iter(b"")) == [(b"a", b"1"), (b"b", b"2")]
        reader.abort()
        assert _all(engine) == [(b"a", b"changed"), (b"c", b"3")]

    def test_readers_do_not_wait_for_a_writer(self, engine: Engine) -> None:
        fill(engine, {b"k": b"v"})
        with engine.begin(write=True) as writer:
            writer.put(b"k", b"w")
            result: list[bytes | None] = []

            def read() -> None:
                with engine.begin() as txn:
                    result.append(txn.get(b"k"))

            thread = threading.Thread(target=read)
            thread.start()
            thread.join(timeout=5)
            assert result == [b"v"]

    def test_bad_writer_timeout_is_rejected(self, engine: Engine) -> None:
        for bad in (-1, float("nan"), float("-inf"), "5"):
            with pytest.raises(ConfigError, match=f"bad timeout {bad!r}"):
                engine.begin(write=True, timeout=bad)  # type: ignore[arg-type]
        with engine.begin(write=True, timeout=0) as txn:  # free lock: no wait
            txn.put(b"k", b"v")
        with engine.begin(write=True, timeout=float("inf")) as txn:
            assert txn.get(b"k") == b"v"

    def test_bad_reader_timeout_is_rejected(self, engine: Engine) -> None:
        # Readers never wait, but take the same timeouts as writers.
        for bad in (-1, float("nan"), "5", True):
            with pytest.raises(ConfigError, match="bad timeout"):
                engine.begin(False, bad)  # type: ignore[arg-type]
        engine.begin(False, 0).abort()
        engine.begin(False, float("inf")).abort()

    def test_a_dead_threads_writer_is_not_this_threads(self, engine: Engine) -> None:
        writers_take_turns(engine)

        # Thread ids are reused as soon as a thread ends: a thread that now
        # has the id of a dead writer's thread must wait for that writer
        # (and time out), not be told that it holds the lock itself.

        def first(kept: list[Txn]) -> None:
            kept.append(engine.begin(write=True, timeout=0))

        def second(errors: list[BaseException]) -> None:
            try:
                engine.begin(write=True, timeout=0.05)
            except TxnError as exc:
                errors.append(exc)

        for _ in range(3):  # a few threads, so that an id is surely reused
            kept: list[Txn] = []
            errors: list[BaseException] = []
            for target, arg in ((first, kept), (second, errors)):
                thread = threading.Thread(target=target, args=(arg,))
                thread.start()
                thread.join(timeout=10)
            assert len(kept) == 1
            assert len(errors) == 1 and isinstance(errors[0], TxnTimeout), errors
            kept[0].abort()

    def test_infinite_timeout_waits_for_the_writer(self, engine: Engine) -> None:
        writers_take_turns(engine)
        first = engine.begin(write=True)
        first.put(b"k", b"1")
        got: list[bytes | None] = []

        def second() -> None:
            with engine.begin(write=True, timeout=float("inf")) as txn:
                got.append(txn.get(b"k"))

        thread = threading.Thread(target=second, daemon=True)
        thread.start()
        time.sleep(0.2)
        assert thread.is_alive() and got == []  # waiting, not failed
        first.commit()
        thread.join(timeout=10)
        assert got == [b"1"]

    def test_same_thread_second_writer_fails_at_once(self, engine: Engine) -> None:
        writers_take_turns(engine)
        with engine.begin(write=True) as txn:
            txn.put(b"k", b"v")
            start = time.monotonic()
            with pytest.raises(TxnError, match="already holds") as info:
                engine.begin(write=True, timeout=2)
            assert time.monotonic() - start < 0.5
            assert not isinstance(info.value, TxnTimeout)
            assert "asyncio.to_thread" in str(info.value)
            assert txn.get(b"k") == b"v"  # the first one is unharmed
        assert _all(engine) == [(b"k", b"v")]

    def test_asyncio_writer_spanning_an_await_fails_fast(self, engine: Engine) -> None:
        writers_take_turns(engine)
        # Two tasks on one event loop share a thread: the second writer must
        # fail at once instead of freezing the loop for the lock timeout.
        timeout = 2.0
        out: dict[str, object] = {}

        async def first() -> None:
            txn = engine.begin(write=True)
            txn.put(b"a", b"1")
            await asyncio.sleep(0.3)  # the write transaction spans an await
            txn.commit()

        async def second() -> None:
            await asyncio.sleep(0.05)
            start = time.monotonic()
            try:
                engine.begin(write=True, timeout=timeout)
            except TxnError as exc:
                out["error"] = exc
            out["waited"] = time.monotonic() - start

        out["stall"] = asyncio.run(longest_stall(first(), second()))
        assert isinstance(out["error"], TxnError)
        assert not isinstance(out["error"], TxnTimeout)
        assert out["waited"] < timeout / 4  # type: ignore[operator]
        assert out["stall"] < timeout / 4  # type: ignore[operator]
        assert _all(engine) == [(b"a", b"1")]

    def test_second_writer_times_out(self, engine: Engine) -> None:
        writers_take_turns(engine)
        errors: list[BaseException] = []

        def second() -> None:
            start = time.monotonic()
            try:
                engine.begin(write=True, timeout=0.2)
            except TxnTimeout as exc:
                errors.append(exc)
                assert time.monotonic() - start >= 0.15
                assert exc.retryable

        with engine.begin(write=True):
            thread = threading.Thread(target=second)
            thread.start()
            thread.join(timeout=10)
        assert len(errors) == 1
        assert "timeout" in str(errors[0])

    def test_second_writer_waits_then_proceeds(self, engine: Engine) -> None:
        writers_take_turns(engine)
        order: list[str] = []
        first = engine.begin(write=True)
        first.put(b"k", b"1")

        def second() -> None:
            with engine.begin(write=True, timeout=10) as txn:
                order.append("second begins")
                assert txn.get(b"k") == b"1"  # sees the first writer's commit
                txn.put(b"k", b"2")

        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.1)
        order.append("first commits")
        first.commit()
        thread.join(timeout=10)
        assert order == ["first commits", "second begins"]
        assert _all(engine) == [(b"k", b"2")]

    def test_concurrent_writers_on_disjoint_keys_both_land(
        self, engine: Engine
    ) -> None:
        if not engine.concurrent_writers:
            pytest.skip("writers take turns on this engine")
        first, second = engine.begin(write=True), engine.begin(write=True)
        first.put(b"a", b"1")
        second.put(b"b", b"2")
        assert second.get(b"b") == b"2" and first.get(b"b") is None
        first.commit()
        second.commit()
        assert _all(engine) == [(b"a", b"1"), (b"b", b"2")]

    def test_concurrent_writers_conflict_raises(self, engine: Engine) -> None:
        if not engine.concurrent_writers:
            pytest.skip("writers take turns on this engine")
        fill(engine, {b"k": b"0", b"other": b"x"})
        first = engine.begin(write=True)
        second = engine.begin(write=True)
        assert first.get(b"k") == b"0" and second.get(b"k") == b"0"
        first.put(b"k", b"1")
        second.put(b"k", b"2")
        second.put(b"other", b"lost")
        first.commit()
        with pytest.raises(ConflictError) as info:
            second.commit()
        assert info.value.retryable
        assert second.closed
        second.abort()  # harmless
        assert _all(engine) == [(b"k", b"1"), (b"other", b"x")]
        with engine.begin(write=True) as again:  # running it again succeeds
            again.put(b"k", (again.get(b"k") or b"") + b"2")
        assert engine.get(b"k") == b"12"

    def test_abandoned_writer_releases_the_lock(self, engine: Engine) -> None:
        txn = engine.begin(write=True)
        txn.put(b"k", b"v")
        del txn
        with engine.begin(write=True, timeout=2) as txn:
            assert txn.get(b"k") is None

    # -- lifecycle --------------------------------------------------------

    def test_closed_engine_raises(self, tmp_path: Path) -> None:
        engine = self.open_engine(tmp_path)
        with engine:
            pass
        with pytest.raises(EngineError):
            engine.begin()
        with pytest.raises(EngineError):
            engine.get(b"k")
        engine.close()  # closing again is harmless

    def test_identity(self, engine: Engine) -> None:
        ident = engine.identity
        assert engine.identity is ident
        assert hash(ident) == hash(engine.identity)
        assert weakref.ref(ident)() is ident  # the store layer keys on it weakly

    def test_close_aborts_an_open_writer(self, tmp_path: Path) -> None:
        engine = self.open_engine(tmp_path)
        fill(engine, {b"k": b"1"})
        txn = engine.begin(write=True)
        txn.put(b"k", b"2")
        close_within(engine, 10)
        assert txn.closed
        for call in (lambda: txn.get(b"k"), lambda: txn.put(b"x", b"y"), txn.commit):
            with pytest.raises(TxnError, match="closed"):
                call()
        txn.abort()
        with pytest.raises(EngineError):
            engine.begin(write=True)
        if engine.persistent:
            with self.open_engine(tmp_path) as again:
                assert _all(again) == [(b"k", b"1")]

    def test_close_while_an_error_keeps_a_dead_threads_writer(
        self, tmp_path: Path
    ) -> None:
        # A thread's write transaction stays referenced by the error it got
        # (a log record, an excepthook): close() must not wait for it.
        engine = self.open_engine(tmp_path)
        writers_take_turns(engine, close=True)
        fill(engine, {b"k": b"1"})
        errors: list[BaseException] = []

        def worker() -> None:
            txn = engine.begin(write=True)
            txn.put(b"k", b"2")
            try:
                engine.begin(write=True, timeout=0.1)
            except TxnError as exc:
                errors.append(exc)  # its traceback keeps ``txn`` alive

        thread = threading.Thread(target=worker)
        thread.start()
        thread.join(timeout=10)
        assert len(errors) == 1
        txn = errors[0].__traceback__.tb_frame.f_locals["txn"]  # type: ignore[union-attr]
        close_within(engine, 10)
        with pytest.raises(TxnError):
            txn.put(b"x", b"y")
        if engine.persistent:
            again = self.open_engine(tmp_path)
            try:
                writer = threading.Thread(target=fill, args=(again, {b"n": b"1"}))
                writer.start()
                writer.join(timeout=10)
                assert not writer.is_alive(), "the reopened engine cannot write"
                assert _all(again) == [(b"k", b"1"), (b"n", b"1")]
            finally:
                again.close()

    def test_persistence_across_reopen(self, tmp_path: Path) -> None:
        engine = self.open_engine(tmp_path)
        if not engine.persistent:
            engine.close()
            pytest.skip("engine is not persistent")
        with engine:
            fill(engine, {b"a": b"1", b"b": b"2"})
            with engine.begin(write=True) as txn:
                txn.delete(b"a")
            txn = engine.begin(write=True)
            txn.put(b"lost", b"x")
            txn.abort()
        with self.open_engine(tmp_path) as again:
            assert _all(again) == [(b"b", b"2")]
