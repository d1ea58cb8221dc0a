"""The lost-update workload: each worker increments one counter and one
record field ``rounds`` times, each time in its own ``store.transact``.

Run in-process (threads share one store) with :func:`work`, or as a process:
``python lost_updates.py URL WHO ROUNDS`` prints the worker's counts as JSON.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import acid
from acid.errors import ConflictError

COLLECTION = "lost"
KEY = "shared"


def declare(store: acid.Store) -> acid.Collection:
    """The collection, with an index on the contended field (for check())."""
    coll = store.add_collection(COLLECTION)
    coll.add_index("n", lambda rec: rec["n"])
    return coll


def setup(store: acid.Store) -> None:
    coll = declare(store)
    coll.put({"n": 0}, key=KEY)


def work(
    store: acid.Store, coll: acid.Collection, who: str, rounds: int
) -> dict[str, int]:
    """Run the workload; return how many attempts were retried and why.

    ``coll`` is :func:`declare`'s: threads sharing a store share it, since
    declaring writes schema metadata, which is not what is measured here.
    """
    counts = {"retries": 0, "conflicts": 0, "timeouts": 0}

    def on_retry(exc: BaseException, attempt: int) -> None:
        counts["retries"] += 1
        counts["conflicts" if isinstance(exc, ConflictError) else "timeouts"] += 1

    policy = acid.Backoff(base=0.0005, cap=0.02, on_retry=on_retry)

    def bump() -> None:
        store.count("hits")
        rec: dict[str, Any] = coll.get(KEY)
        rec["n"] += 1
        rec[who] = rec.get(who, 0) + 1
        coll.put(rec, key=KEY)

    for _ in range(rounds):
        store.transact(bump, retries=1000, backoff=policy)
    return counts


if __name__ == "__main__":
    url, who, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with acid.open(url) as opened:
        print(json.dumps(work(opened, declare(opened), who, rounds)))
