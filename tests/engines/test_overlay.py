"""The write overlay keeps its keys in order however puts and scans mix."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from acid.engines._overlay import DELETED, Overlay

KEYS = st.binary(min_size=1, max_size=3)
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("put"), KEYS),
        st.tuples(st.just("del"), KEYS),
        st.tuples(st.just("scan"), KEYS, st.booleans()),
    ),
    max_size=200,
)


@given(OPS)
def test_overlay_scans_match_a_sorted_model(ops: list[tuple]) -> None:
    overlay = Overlay()
    model: dict[bytes, bytes] = {}
    for op in ops:
        if op[0] == "put":
            overlay.put(op[1], b"v" + op[1])
            model[op[1]] = b"v" + op[1]
        elif op[0] == "del":
            overlay.put(op[1], DELETED)
            model[op[1]] = DELETED
        else:
            _, key, reverse = op
            got = list(overlay.scan(key, reverse, True))
            keys = sorted(model, reverse=reverse)
            want = [(k, model[k]) for k in keys if (k <= key if reverse else k >= key)]
            assert got == want
    assert list(overlay.keys) == sorted(model)
    assert len(overlay) == len(model)
