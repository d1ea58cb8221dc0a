"""Lost updates: concurrent read-modify-write transactions through
``store.transact`` never lose an increment, on every engine (issue 10).

Writers on embedded engines take turns, so they never conflict; engines with
``concurrent_writers`` make the losers of conflicts retry. Each target is
one line of ``TARGETS``; a target whose scheme is not registered here is
skipped, saying so.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import lost_updates
import pytest
from hooked_engine import HookedEngine

import acid
from acid import engines

TESTS = Path(__file__).resolve().parents[1]

#: (URL, how the workers run). ``{tmp}`` is the test's temporary directory;
#: ``{postgres}`` the test session's PostgreSQL server (the ``postgres_url``
#: fixture: ``ACID_TEST_POSTGRES_URL``, or a throwaway server).
TARGETS = [
    pytest.param("lmdb:{tmp}/db?map_size=64MiB", "processes", id="lmdb"),
    pytest.param("memory:/?writers=optimistic", "threads", id="memory-optimistic"),
    pytest.param("{postgres}", "processes", id="postgresql"),
]
WORKERS, ROUNDS = 4, 500


def target_url(template: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if "{postgres}" in template:
        server: str = request.getfixturevalue("postgres_url")
        sep = "&" if "?" in server else "?"
        return f"{server}{sep}table=lost_{uuid.uuid4().hex[:12]}"
    scheme = template.split(":", 1)[0]
    if scheme not in engines.known_schemes():
        pytest.skip(f"engine scheme {scheme!r} is not registered here")
    return template.format(tmp=tmp_path)


def run_threads(store: acid.Store, rounds: int) -> list[dict[str, int]]:
    results: list[Any] = [None] * WORKERS
    start = threading.Barrier(WORKERS)
    coll = lost_updates.declare(store)

    def worker(i: int) -> None:
        start.wait()
        try:
            results[i] = lost_updates.work(store, coll, f"w{i}", rounds)
        except BaseException as exc:
            results[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


def run_processes(url: str, rounds: int) -> list[dict[str, int]]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS.parent), str(TESTS)])}
    script = str(TESTS / "lost_updates.py")
    procs = [
        subprocess.Popen(
            [sys.executable, script, url, f"w{i}", str(rounds)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(WORKERS)
    ]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * WORKERS
    return [json.loads(out) for out in outs]


@pytest.mark.parametrize(("template", "how"), TARGETS)
def test_no_update_is_lost(
    template: str,
    how: str,
    tmp_path: Path,
    record_property: Any,
    request: pytest.FixtureRequest,
) -> None:
    url = target_url(template, tmp_path, request)
    store = acid.open(url)
    try:
        lost_updates.setup(store)
        if how == "threads":
            counts = run_threads(store, ROUNDS)
        else:
            store.close()  # each process opens its own
            counts = run_processes(url, ROUNDS)
            store = acid.open(url)
        coll = lost_updates.declare(store)
        rec = coll.get(lost_updates.KEY)
        total = WORKERS * ROUNDS
        assert rec == {"n": total, **{f"w{i}": ROUNDS for i in range(WORKERS)}}
        assert store.count("hits", 0) == 1 + total  # a counter starts at 1
        assert list(coll.indices["n"].tups()) == [(total,)]
        assert store.check().ok
        summary = {k: sum(c[k] for c in counts) for k in counts[0]}
        if not store.engine.concurrent_writers:
            assert summary["conflicts"] == 0  # writers took turns
        record_property("retries", summary)
        print(f"\n{url}: {total} transactions, {summary}")
    finally:
        store.close()


def test_injected_conflicts_are_retried_and_counted() -> None:
    """The harness over an engine whose every 3rd commit loses a conflict."""
    engine = HookedEngine(engines.from_url("skiplist:/"), concurrent_writers=True)
    store = acid.Store(engine)
    lost_updates.setup(store)
    engine.fail_every = 3
    counts = run_threads(store, 60)
    rec = lost_updates.declare(store).get(lost_updates.KEY)
    assert rec["n"] == WORKERS * 60
    assert store.count("hits", 0) == 1 + WORKERS * 60
    assert store.check().ok
    retries = sum(c["conflicts"] for c in counts)
    assert retries == sum(c["retries"] for c in counts)
    # Every 3rd commit failed and was retried: failures = attempts // 3.
    assert retries == (WORKERS * 60 + retries) // 3
