"""Hostile use of expiry: broken clocks, odd ttls, failures mid-put, schema."""

from __future__ import annotations

import threading
from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

import acid
from acid import keylib
from acid.testing import FakeClock as Clock


@pytest.fixture
def clock() -> Clock:
    return Clock(1000.0)


@pytest.fixture
def tstore(open_store: Callable[..., acid.Store], clock: Clock) -> acid.Store:
    return open_store(clock=clock)


def deadline(coll: acid.Collection, key: Any) -> float | None:
    assert coll.expiry is not None
    store = coll.store
    return store.in_txn(
        lambda: coll.expiry.deadline(store.active(), keylib.pack((key,)))  # type: ignore[union-attr]
    )


# -- bugs found ---------------------------------------------------------------


@pytest.mark.parametrize(
    "bad", [float("nan"), float("inf"), -float("inf"), "1000", None]
)
def test_a_clock_returning_no_finite_number_raises_value_error(
    tstore: acid.Store, clock: Clock, bad: Any
) -> None:
    """With a NaN clock every record with a deadline read as expired, blobs
    with one were readable but missing from keys(), and expire() raised
    KeyEncodingError; an infinite clock expired everything."""
    coll = tstore.add_collection("c")
    blobs = tstore.blobs("b")
    coll.put({"n": 1}, key="a", ttl=60)
    blobs.put("k", b"v", ttl_secs=60)
    clock.now = bad
    for call in (
        lambda: coll.get("a"),
        lambda: list(coll.keys()),
        lambda: coll.put({"n": 2}, key="a", ttl=5),
        lambda: blobs.keys(),
        lambda: blobs.get("k"),
        lambda: tstore.expire(),
    ):
        with pytest.raises(ValueError, match="clock"):
            call()
    clock.now = 1001.0
    assert coll.get("a") == {"n": 1} and blobs.get("k") == b"v"
    assert deadline(coll, "a") == 1060.0
    assert tstore.check().ok


def test_an_int_clock_sweeps_at_the_exact_deadline(
    tstore: acid.Store, clock: Clock
) -> None:
    """An int clock packed apart from the equal float deadline in the expiry
    queue: the record was invisible but expire() did not find it."""
    coll = tstore.add_collection("c")
    clock.now = 2000
    coll.put({"n": 1}, key="a", ttl=1000)  # deadline 3000.0
    clock.now = 3000
    assert coll.get("a") is None
    assert tstore.expire() == 1
    assert tstore.check().ok


@pytest.mark.parametrize("huge", [10**400, 2**1024], ids=["1e400", "2**1024"])
def test_a_ttl_beyond_any_float_never_expires(
    tstore: acid.Store, clock: Clock, huge: int
) -> None:
    """It raised OverflowError ("int too large to convert to float")."""
    coll = tstore.add_collection("c")
    blobs = tstore.blobs("b")
    coll.put({"n": 1}, key="a", ttl=huge)
    blobs.put("k", b"v", ttl_secs=huge)
    clock.now = 1.7e308
    assert coll.get("a") == {"n": 1} and blobs.get("k") == b"v"
    assert blobs.ttl("k") is None and deadline(coll, "a") is None
    coll.put({"n": 2}, key="b", ttl=1.7e308)  # clock + ttl overflows to inf
    assert deadline(coll, "b") is None
    assert tstore.check().ok


def test_a_clock_failing_during_a_put_in_a_block_changes_nothing(
    tstore: acid.Store, clock: Clock
) -> None:
    """The record was written before the clock was read: the caller caught
    the error, committed, and found the new record with the old deadline
    (or, for a new record, one that never expires)."""
    coll = tstore.add_collection("c", key_func=lambda r: r["id"])
    coll.add_index("tag", lambda r: [(r["tag"],)])
    coll.put({"id": 1, "tag": "old"}, ttl=100)
    with tstore.begin(write=True):
        clock.broken = RuntimeError("clock down")
        with pytest.raises(RuntimeError):
            coll.put({"id": 1, "tag": "new"}, ttl=10)
        with pytest.raises(RuntimeError):
            coll.put({"id": 2, "tag": "new"}, ttl=10)
        with pytest.raises(RuntimeError):
            coll.put({"id": 3, "tag": "new"}, key=3, ttl=10)
        clock.broken = None
        coll.put({"id": 4, "tag": "ok"}, ttl=10)  # the block goes on
    assert coll.get(1) == {"id": 1, "tag": "old"} and deadline(coll, 1) == 1100.0
    assert coll.get(2) is None and coll.get(3) is None
    assert coll.get(4) == {"id": 4, "tag": "ok"} and deadline(coll, 4) == 1010.0
    assert [r["tag"] for r in coll.indices["tag"].values()] == ["ok", "old"]
    assert tstore.check().ok


def test_a_record_put_that_fails_after_the_deadline_restores_it(
    tstore: acid.Store,
) -> None:
    coll = tstore.add_collection("c")
    coll.add_index("n", lambda r: [(r["n"],)])
    coll.put({"n": 1}, key="a", ttl=100)
    with tstore.begin(write=True):
        with pytest.raises(KeyError):
            coll.put({"m": 2}, key="a", ttl=5)  # the index function raises
        with pytest.raises(KeyError):
            coll.put({"m": 2}, key="a")  # the default: no deadline
    assert coll.get("a") == {"n": 1} and deadline(coll, "a") == 1100.0
    assert tstore.check().ok


def test_a_key_too_long_for_the_deadline_fails_cleanly_on_lmdb(
    tmp_path: Path, clock: Clock
) -> None:
    """The record fitted but its expiry entry (a few bytes longer) did not:
    the put aborted the caller's whole block, whose later writes then
    committed on their own."""
    store = acid.open(f"lmdb:{tmp_path}/db?map_size=64MiB", clock=clock)
    coll = store.add_collection("c")
    longest = 1
    for n in range(400, 520):
        try:
            coll.put(1, key="k" * n)
        except acid.errors.EngineError:
            break
        longest = n
    coll.delete("k" * longest)
    key = "k" * longest
    with store.begin(write=True):
        coll.put({"n": 1}, key="x")
        with pytest.raises(acid.errors.EngineError):
            coll.put({"n": 1}, key=key, ttl=10)
        coll.put({"n": 2}, key="y")
    assert coll.get("x") == {"n": 1} and coll.get("y") == {"n": 2}
    assert coll.get(key) is None
    assert store.check().ok
    store.close()


# -- what held up -------------------------------------------------------------


@pytest.mark.parametrize(
    "bad", [True, False, Decimal(5), Fraction(1, 2), "5", 0, -1, -float("inf")]
)
def test_ttl_values_that_are_refused(tstore: acid.Store, bad: Any) -> None:
    coll = tstore.add_collection("c")
    with pytest.raises(ValueError):
        coll.put({"n": 1}, key="a", ttl=bad)
    with pytest.raises(ValueError):
        tstore.blobs("b").put("k", b"v", ttl_secs=bad)
    with pytest.raises(ValueError):
        tstore.add_collection("d", ttl=bad)
    assert coll.get("a") is None and list(coll.keys()) == []


def test_the_last_put_decides_the_deadline(tstore: acid.Store, clock: Clock) -> None:
    """Documented in the guide ("Expiry"): a put without ttl clears it."""
    coll = tstore.add_collection("c")
    coll.put({"n": 1}, key="a", ttl=10)
    coll.put({"n": 2}, key="a")
    clock.now += 100
    assert coll.get("a") == {"n": 2}
    assert tstore.expire() == 0 and tstore.check().ok


def test_the_clock_going_backwards(tstore: acid.Store, clock: Clock) -> None:
    """Deadlines are absolute: a record expired at a later time is visible
    again if the clock goes back before it was swept, and gone for good
    once swept."""
    coll = tstore.add_collection("c")
    coll.put({"n": 1}, key="a", ttl=10)
    clock.now += 20
    assert coll.get("a") is None
    clock.now -= 20
    assert coll.get("a") == {"n": 1}
    clock.now += 20
    assert tstore.expire() == 1
    clock.now -= 20
    assert coll.get("a") is None and tstore.check().ok


def test_a_put_without_ttl_from_another_store_clears_the_deadline(
    tmp_path: Path, clock: Clock
) -> None:
    url = f"lmdb:{tmp_path}/db"
    one, two = acid.open(url, clock=clock), acid.open(url, clock=clock)
    c1, c2 = one.add_collection("c"), two.add_collection("c")
    c2.put({"v": 0}, key="a")  # c2 is declared before expiry exists
    c1.put({"v": 1}, key="a", ttl=10)
    c2.put({"v": 2}, key="a")
    clock.now += 100
    assert c1.get("a") == {"v": 2} and c2.get("a") == {"v": 2}
    assert one.check().ok and two.check().ok
    one.close()
    two.close()


def test_declaring_ttl_in_an_aborted_block_leaves_no_expiry(
    tstore: acid.Store, clock: Clock
) -> None:
    coll = tstore.add_collection("x")
    with pytest.raises(RuntimeError), tstore.begin(write=True):
        tstore.add_collection("x", ttl=60)
        raise RuntimeError
    coll.put({"r": 1}, key=1)
    clock.now += 100
    assert coll.get(1) == {"r": 1} and coll.expiry is None
    y = tstore.add_collection("y", ttl=60)
    with pytest.raises(RuntimeError), tstore.begin(write=True):
        tstore.add_collection("y", ttl=5)
        raise RuntimeError
    y.put({"r": 1}, key=1)
    assert deadline(y, 1) == clock.now + 60
    with pytest.raises(RuntimeError), tstore.begin(write=True):
        tstore.add_collection("new", ttl=5).put({"r": 1}, key=1)
        raise RuntimeError
    assert "new" not in tstore.collections()
    assert tstore.check().ok


def test_drop_and_rename_a_collection_with_deadlines(
    tstore: acid.Store, clock: Clock
) -> None:
    coll = tstore.add_collection("c", ttl=10)
    coll.add_index("w", acid.tokens("t"))
    for i in range(5):
        coll.put({"t": f"w{i}"}, key=i)
    tstore.rename_collection("c", "d")
    d = tstore.add_collection("d")
    assert d.expiry is not None and d.expiry.default == 10.0
    words = d.add_index("w", acid.tokens("t"))
    assert [k for k, _ in words.search("w3")] == [(3,)]
    clock.now += 20
    assert list(d.keys()) == [] and words.search("w3") == []
    tstore.drop_collection("d")
    again = tstore.add_collection("d")
    again.put({"t": "x"}, key=1)
    clock.now += 100
    assert again.get(1) == {"t": "x"} and again.expiry is None
    assert tstore.expire() == 0 and tstore.check().ok


@pytest.mark.writers_take_turns  # threads write without store.transact
def test_expire_while_another_thread_rewrites_the_records(
    tstore: acid.Store, clock: Clock
) -> None:
    coll = tstore.add_collection("c")
    coll.add_index("v", lambda r: [(r["v"],)])
    n = 100
    for i in range(n):
        coll.put({"v": 0}, key=i, ttl=1)
    clock.now += 5  # all expired
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for i in range(n):
                tstore.transact(coll.put, {"v": 1}, key=i)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def sweeper() -> None:
        try:
            for _ in range(30):
                tstore.expire(batch=3)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer), threading.Thread(target=sweeper)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert [coll.get(i) for i in range(n)] == [{"v": 1}] * n
    assert tstore.check().ok


def test_check_names_a_renamed_collection_in_expiry_differences(
    tstore: acid.Store,
) -> None:
    """The expiry state kept the collection's old name: check() reported a
    stray deadline under a collection that no longer exists."""
    coll = tstore.add_collection("old", ttl=10)
    coll.put({"n": 1}, key=1)
    tstore.rename_collection("old", "new")
    assert coll.name == "new"
    assert coll.expiry is not None
    stray = keylib.pack((coll.expiry.space_id, 0), tstore.prefix) + keylib.pack((2,))
    with tstore.begin(write=True):
        tstore.active().put(stray, keylib.pack((5.0,)))
    report = tstore.check()
    assert report.stale == [("new", "(expiry)", (5.0,), (2,))]


def test_a_clock_failing_during_a_blob_put_keeps_the_old_blob(
    tstore: acid.Store, clock: Clock
) -> None:
    blobs = tstore.blobs("b", chunk_size=4)
    blobs.put("k", b"old value", ttl_secs=100)
    clock.broken = RuntimeError("clock down")
    with pytest.raises(RuntimeError):
        blobs.put("k", b"x" * 100, ttl_secs=10)  # staged: several transactions
    with tstore.begin(write=True):
        with pytest.raises(RuntimeError):
            blobs.put("k", b"y" * 100, ttl_secs=10)
        clock.broken = None
        blobs.put("other", b"o")
    assert blobs.get("k") == b"old value" and blobs.ttl("k") == 100
    assert blobs.keys() == ["k", "other"] and blobs.vacuum(grace=0) == 0


@pytest.mark.parametrize("keyed", [False, True])
def test_a_deadline_write_that_fails_changes_nothing(
    tstore: acid.Store, monkeypatch: pytest.MonkeyPatch, keyed: bool
) -> None:
    """Injected failure of the expiry entries' write, for a counter key
    (record written first, then removed, counter given back) and a known
    key (entries written first)."""
    coll = tstore.add_collection("c")
    coll.add_index("n", lambda r: [(r["n"],)])
    first = coll.put({"n": 0}, ttl=100)
    assert coll.expiry is not None

    def fail(*args: Any) -> None:
        raise OSError("injected")

    with tstore.begin(write=True):
        monkeypatch.setattr(coll.expiry, "set_deadline", fail)
        with pytest.raises(OSError):
            coll.put({"n": 1}, key=first if keyed else None, ttl=5)
        monkeypatch.undo()
        second = coll.put({"n": 2}, ttl=5)
    assert coll.get(first) == {"n": 0} and deadline(coll, first[0]) == 1100.0
    assert second == (first[0] + 1,)  # the counter was given back
    assert [r["n"] for r in coll.indices["n"].values()] == [0, 2]
    assert tstore.check().ok


def test_a_clock_failing_during_put_many_changes_nothing(
    tstore: acid.Store, clock: Clock
) -> None:
    """put_many read the clock after writing the batch: the caller caught
    the error, committed, and kept records that never expire."""
    coll = tstore.add_collection("c", ttl=10)
    coll.put({"n": 0}, key=0)
    with tstore.begin(write=True):
        clock.broken = RuntimeError("clock down")
        with pytest.raises(RuntimeError):
            coll.put_many([{"n": 1}, {"n": 2}])
        clock.broken = None
    assert [k for k in coll.keys()] == [(0,)]
    clock.now += 100
    assert list(coll.keys()) == [] and tstore.check().ok
