"""The newer APIs on a collection whose records expire (bulk calls, len,
queries): deadlines are set, expired records are absent, and a failing
batch changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import acid
from acid.testing import FakeClock as Clock


@pytest.fixture
def setup(open_store: Callable[..., acid.Store]) -> tuple[acid.Collection, Clock]:
    clock = Clock()
    store = open_store(clock=clock)
    coll = store.add_collection("c", key_func=lambda r: r["id"], ttl=60)
    coll.add_index("tag", lambda r: r["tag"])
    coll.add_index("by_tag", acid.field("tag"))
    return coll, clock


def recs(ids: range, tag: str = "t") -> list[dict[str, Any]]:
    return [{"id": i, "tag": tag} for i in ids]


def test_put_many_gives_the_default_deadline(
    setup: tuple[acid.Collection, Clock],
) -> None:
    coll, clock = setup
    assert coll.put_many(recs(range(5))) == [(i,) for i in range(5)]
    assert coll.get_many(range(6)) == [*recs(range(5)), None]
    clock.now += 60
    assert coll.get_many(range(5)) == [None] * 5
    assert list(coll.indices["tag"].keys("t")) == []
    assert coll.store.expire() == 5
    assert coll.check().ok


def test_delete_many_counts_only_live_records(
    setup: tuple[acid.Collection, Clock],
) -> None:
    coll, clock = setup
    coll.put_many(recs(range(3)))
    clock.now += 30
    coll.put({"id": 3, "tag": "t"})  # lives until +90
    clock.now += 30  # 0..2 expired, 3 alive
    assert coll.delete_many([0, 1, 3, 3, 9]) == 1
    assert [k for k in coll.keys()] == []
    assert coll.check().ok
    assert coll.store.expire() == 1  # record 2 was still queued


def test_failing_batch_on_an_expiring_collection_changes_nothing(
    setup: tuple[acid.Collection, Clock],
) -> None:
    coll, _ = setup
    coll.put_many(recs(range(3)))
    bad = recs(range(3, 6)) + [{"id": 6}]  # no "tag": the index function raises
    with pytest.raises(KeyError):
        coll.put_many(bad)
    assert [k[0] for k in coll.keys()] == [0, 1, 2]
    assert coll.check().ok


def test_len_leaves_out_expired_records(
    setup: tuple[acid.Collection, Clock],
) -> None:
    coll, clock = setup
    coll.put_many(recs(range(4)))
    clock.now += 30
    coll.put({"id": 9, "tag": "t"})
    assert len(coll) == 5
    clock.now += 30  # 0..3 expired, not swept
    assert len(coll) == 1
    with coll.store.begin():
        assert len(coll) == 1
    assert coll.store.expire() == 4
    assert len(coll) == 1 and coll.check().ok
    clock.now += 60
    assert len(coll) == 0


@pytest.mark.parametrize("spec", [{}, {"tag": "t"}, {"tag": {"$gte": "a"}}])
def test_queries_leave_out_expired_records(
    setup: tuple[acid.Collection, Clock], spec: dict[str, Any]
) -> None:
    coll, clock = setup
    coll.put_many(recs(range(3)))
    clock.now += 30
    coll.put_many(recs(range(3, 5)))
    clock.now += 30  # 0..2 expired
    q = coll.query(spec)
    assert [k[0] for k in q.keys()] == [3, 4]
    assert q.count() == 2
    assert [r["id"] for r in q.order_by("-tag", "-id")] == [4, 3]
    assert q.first() == {"id": 3, "tag": "t"}
    assert q.delete() == 2
    assert coll.store.expire() == 3
    assert len(coll) == 0 and coll.check().ok
