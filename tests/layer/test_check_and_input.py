"""store.check() coverage of declared indexes, and argument checking."""

from __future__ import annotations

import pytest

import acid


def test_check_covers_an_index_declared_on_an_older_live_object(
    store: acid.Store,
) -> None:
    first = store.add_collection("x")
    idx = first.add_index("a", lambda r: r["a"])
    first.put({"a": 1}, key=1)
    store.add_collection("x")  # a newer object that declares no index
    with store.begin(write=True) as txn:  # lose the entry behind acid's back
        for k, _ in list(store.iter_space(idx.id)):
            txn.delete(k)
    assert not first.check().ok
    report = store.check()  # "every index declared in this process"
    assert not report.ok, report


@pytest.mark.parametrize("timeout", [2**2000, -(2**2000)])
def test_begin_with_a_huge_int_timeout(store: acid.Store, timeout: int) -> None:
    try:
        with store.begin(write=True, timeout=timeout):
            pass
    except (acid.errors.Error, TypeError, ValueError):
        pass
