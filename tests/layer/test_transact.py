"""store.transact and @acid.transactional: retry on retryable errors only,
whole transactions only, with backoff (docs/guide.md, "Retrying transactions")."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from hooked_engine import HookedEngine
from hypothesis import given, settings
from hypothesis import strategies as st

import acid
from acid.errors import ConflictError, NotFound, TxnError, TxnTimeout


class FakeSleep:
    """An injected ``sleep``: records the waits, never waits."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def backoff(sleep: Any, **kwargs: Any) -> acid.Backoff:
    return acid.Backoff(sleep=sleep, rng=lambda: 1.0, **kwargs)


def flaky(store: acid.Store, fails: int, error: type[Exception] = ConflictError) -> Any:
    """A transaction body that writes, then loses a conflict ``fails`` times."""
    coll = store.add_collection("c")
    calls: list[int] = []

    def body(value: str) -> str:
        calls.append(1)
        coll.put({"v": value, "attempt": len(calls)}, key=len(calls))
        store.count("runs")
        if len(calls) <= fails:
            raise error(f"injected failure {len(calls)}")
        return value.upper()

    body.calls = calls  # type: ignore[attr-defined]
    body.coll = coll  # type: ignore[attr-defined]
    return body


def test_retries_a_conflict_and_keeps_only_the_last_attempt(store: acid.Store) -> None:
    body = flaky(store, fails=3)
    sleep = FakeSleep()
    assert store.transact(body, "x", backoff=backoff(sleep)) == "X"
    assert len(body.calls) == 4
    # The three failed attempts left nothing behind: only attempt 4's record.
    assert list(body.coll.items()) == [((4,), {"v": "x", "attempt": 4})]
    assert store.count("runs", 0) == 2
    assert sleep.waits == [0.002, 0.004, 0.008]  # exponential, rng=1.0
    assert store.check().ok


def test_gives_up_after_retries_with_attempts_set(store: acid.Store) -> None:
    body = flaky(store, fails=100)
    sleep = FakeSleep()
    with pytest.raises(ConflictError) as info:
        store.transact(body, "x", retries=3, backoff=backoff(sleep))
    assert info.value.attempts == 4
    assert str(info.value) == "injected failure 4"  # the last error, not the first
    assert len(body.calls) == 4 and len(sleep.waits) == 3
    assert list(body.coll.keys()) == []
    assert store.count("runs", 0) == 1


def test_retries_zero_runs_once(store: acid.Store) -> None:
    body = flaky(store, fails=1)
    sleep = FakeSleep()
    with pytest.raises(ConflictError) as info:
        store.transact(body, "x", retries=0, backoff=backoff(sleep))
    assert info.value.attempts == 1 and sleep.waits == []


def test_the_wait_is_capped_and_jittered() -> None:
    rolls = iter([0.5, 0.0, 0.999, 0.25] * 20)
    policy = acid.Backoff(base=0.01, cap=0.03, rng=lambda: next(rolls))
    waits = [policy.delay(n) for n in range(1, 9)]
    steps = [0.01, 0.02, 0.03, 0.03, 0.03, 0.03, 0.03, 0.03]
    assert all(0 <= w <= s for w, s in zip(waits, steps, strict=True))
    assert waits[:4] == pytest.approx([0.005, 0.0, 0.02997, 0.0075])
    assert acid.Backoff(cap=1.0).delay(10_000) <= 1.0  # no overflow
    real = [acid.Backoff().delay(3) for _ in range(50)]
    assert len(set(real)) > 1  # jitter: writers that collided spread out


def test_on_retry_sees_each_error(store: acid.Store) -> None:
    seen: list[tuple[str, int]] = []
    policy = acid.Backoff(
        sleep=FakeSleep(), on_retry=lambda exc, n: seen.append((str(exc), n))
    )
    store.transact(flaky(store, fails=2), "x", backoff=policy)
    assert seen == [("injected failure 1", 1), ("injected failure 2", 2)]


def test_a_conflict_at_commit_is_retried(tmp_path: Path) -> None:
    engine = HookedEngine(acid.engines.from_url("skiplist:/"))
    store = acid.Store(engine)
    coll = store.add_collection("c")
    coll.add_index("n", lambda r: r["n"])
    engine.fail_commits = 2
    sleep = FakeSleep()

    def body() -> int:
        n = store.count("n")
        coll.put({"n": n}, key="only")
        return n

    assert store.transact(body, backoff=backoff(sleep)) == 1
    assert len(sleep.waits) == 2
    assert coll.get("only") == {"n": 1} and store.count("n", 0) == 2
    assert store.check().ok


def test_a_real_writer_timeout_is_retried(tmp_path: Path) -> None:
    store = acid.open(f"lmdb:{tmp_path}/db?lock_timeout=0.05")
    coll = store.add_collection("c")
    held, release, done = threading.Event(), threading.Event(), threading.Event()

    def holder() -> None:
        with store.begin(write=True):
            coll.put("holder", key=1)
            held.set()
            release.wait(10)
        done.set()

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(10)
    try:
        with pytest.raises(TxnTimeout) as info:  # gives up while held
            store.transact(
                coll.put, "me", key=2, retries=2, backoff=backoff(FakeSleep())
            )
        assert info.value.attempts == 3

        def sleep(seconds: float) -> None:  # the holder finishes during a wait
            release.set()
            done.wait(10)

        assert store.transact(coll.put, "me", key=2, backoff=backoff(sleep)) == (2,)
    finally:
        release.set()
        thread.join()
    assert list(coll.values()) == ["holder", "me"]
    store.close()


@pytest.mark.parametrize("error", [ValueError, NotFound, TxnError, KeyError])
def test_other_errors_propagate_at_once(store: acid.Store, error: type) -> None:
    body = flaky(store, fails=1, error=error)
    sleep = FakeSleep()
    with pytest.raises(error):
        store.transact(body, "x", backoff=backoff(sleep))
    assert len(body.calls) == 1 and sleep.waits == []
    assert list(body.coll.keys()) == [] and store.count("runs", 0) == 1


def test_abort_returns_none_quietly(store: acid.Store) -> None:
    coll = store.add_collection("c")

    def body() -> str:
        coll.put("gone", key=1)
        acid.abort()
        return "unreachable"

    assert store.transact(body) is None
    assert list(coll.keys()) == []


def test_inside_a_write_block_it_joins_and_never_retries(store: acid.Store) -> None:
    coll = store.add_collection("c")
    sleep = FakeSleep()
    with store.begin(write=True):
        assert store.transact(coll.put, "joined", key=1) == (1,)
        with pytest.raises(ConflictError) as info:
            store.transact(flaky(store, fails=5), "x", backoff=backoff(sleep))
        assert info.value.attempts is None and sleep.waits == []
        acid.abort()  # the outer block decides: everything rolls back
    assert list(coll.keys()) == []

    with store.begin(write=True):
        store.transact(coll.put, "joined", key=1)
        assert store.transact(lambda: coll.get(1)) == "joined"  # same txn
    assert coll.get(1) == "joined"

    with store.begin(), pytest.raises(TxnError, match="read transaction"):
        store.transact(coll.put, "no", key=2)


def test_abort_inside_a_joined_transact_aborts_the_outer_block(
    store: acid.Store,
) -> None:
    coll = store.add_collection("c")
    with store.begin(write=True):
        coll.put("outer", key=1)
        store.transact(acid.abort)
        raise AssertionError("acid.abort() leaves the whole block")
    assert list(coll.keys()) == []


def test_bad_arguments(store: acid.Store) -> None:
    coll = store.add_collection("c")
    for retries in ("3", 2.0, True, None):
        with pytest.raises(TypeError, match="retries"):
            store.transact(coll.put, 1, retries=retries)
    with pytest.raises(ValueError, match="retries"):
        store.transact(coll.put, 1, retries=-1)
    with pytest.raises(TypeError, match="backoff"):
        store.transact(coll.put, 1, backoff=0.1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="callable"):
        store.transact("put")  # type: ignore[arg-type]
    for bad in ({"base": -1}, {"cap": float("inf")}, {"base": "1"}, {"sleep": 3}):
        with pytest.raises((TypeError, ValueError)):
            acid.Backoff(**bad)
    assert list(coll.keys()) == []


def test_generators_and_coroutines_are_refused(store: acid.Store) -> None:
    coll = store.add_collection("c")

    def gen() -> Any:
        yield coll.put("lazy", key=1)

    async def coro() -> None:
        coll.put("lazy", key=2)

    def returns_a_generator() -> Any:
        coll.put("eager", key=3)  # rolled back with the refused result
        return (coll.put(i, key=i) for i in range(5))

    with pytest.raises(TypeError, match="generator function"):
        store.transact(gen)
    with pytest.raises(TypeError, match="acid.aio"):
        store.transact(coro)
    with pytest.raises(TypeError, match="returned generator"):
        store.transact(returns_a_generator)
    with pytest.raises(TypeError, match="returned coroutine"):
        store.transact(lambda: coro())
    assert list(coll.keys()) == []


def test_fn_may_take_keyword_arguments_named_like_parameters(
    store: acid.Store,
) -> None:
    def body(fn: str, *, store: str) -> str:
        return fn + store

    assert acid.Store.transact(store, body, "a", store="b") == "ab"


def test_decorator(store: acid.Store) -> None:
    coll = store.add_collection("c")
    body = flaky(store, fails=2)
    sleep = FakeSleep()

    @acid.transactional(store)
    def add(rec: Any, *, key: Any) -> Any:
        """Add one record."""
        return coll.put(rec, key=key)

    assert add("a", key=1) == (1,)
    assert add.__name__ == "add" and add.__doc__ == "Add one record."

    retried = acid.transactional(store, retries=2, backoff=backoff(sleep))(body)
    assert retried("y") == "Y" and len(sleep.waits) == 2
    strict = acid.transactional(store, retries=1, backoff=backoff(sleep))(
        flaky(store, fails=9)
    )
    with pytest.raises(ConflictError) as info:
        strict("z")
    assert info.value.attempts == 2

    with pytest.raises(TypeError, match=r"@acid.transactional\(store\)"):
        acid.transactional(add)
    with pytest.raises(ValueError, match="retries"):
        acid.transactional(store, retries=-2)
    with pytest.raises(TypeError, match="generator function"):

        @acid.transactional(store)
        def gen() -> Any:
            yield 1


@given(
    retries=st.integers(0, 5),
    fails=st.integers(0, 8),
    error=st.sampled_from([ConflictError, TxnTimeout]),
)
@settings(max_examples=60, deadline=None)
def test_any_failure_count(retries: int, fails: int, error: type[Exception]) -> None:
    """Success exactly when the failures fit in the retries; either way one
    wait per retry, and only a successful attempt leaves anything behind."""
    store = acid.open("skiplist:/")
    body = flaky(store, fails=fails, error=error)
    sleep = FakeSleep()
    if fails <= retries:
        assert store.transact(body, "v", retries=retries, backoff=backoff(sleep)) == "V"
        assert list(body.coll.keys()) == [(fails + 1,)]
        assert store.count("runs", 0) == 2
    else:
        with pytest.raises(error) as info:
            store.transact(body, "v", retries=retries, backoff=backoff(sleep))
        assert info.value.attempts == retries + 1  # type: ignore[attr-defined]
        assert list(body.coll.keys()) == [] and store.count("runs", 0) == 1
    assert len(body.calls) == min(fails, retries) + 1
    assert len(sleep.waits) == min(fails, retries)
    assert sleep.waits == sorted(sleep.waits)  # rng=1.0: the steps themselves
