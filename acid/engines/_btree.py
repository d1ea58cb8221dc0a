"""A persistent (path-copying) B+tree of ``bytes`` keys and values.

This is the ordered structure of the memory engine. A tree is a root
:class:`Node`; nodes are never modified once a tree that contains them was
published, so a reader that holds a root holds one immutable version. A
commit builds the next version with :func:`apply`, which copies only the
nodes on the paths to the changed keys: a commit costs O(changes x log n)
whatever readers are pinned, and the nodes it does not touch are shared by
both versions. An old version is freed by reference counting when its last
reader drops its root.

Nodes are wide (hundreds of keys in a leaf) so that the Python work per
operation stays small: a lookup is a few ``bisect`` calls in C, a scan walks
plain lists, and copying a node is one ``list`` copy.

>>> t = apply(EMPTY, [b"a", b"b", b"c"], [b"1", b"2", b"3"])
>>> u = apply(t, [b"b", b"d"], [DELETED, b"4"])
>>> lookup(t, b"b"), lookup(u, b"b"), list(scan(u, b"b"))
(b'2', None, [(b'c', b'3'), (b'd', b'4')])
>>> list(scan(t, b"b", reverse=True))
[(b'b', b'2'), (b'a', b'1')]
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator

from acid.engines._overlay import DELETED

__all__ = ["DELETED", "EMPTY", "Node", "apply", "build", "items", "lookup", "scan"]

#: A leaf splits above LEAF_MAX keys into pieces of at least LEAF_SIZE, and
#: is merged into a neighbour below LEAF_MIN. Branches likewise.
LEAF_SIZE = 256
LEAF_MAX = 2 * LEAF_SIZE
LEAF_MIN = LEAF_SIZE // 4
BRANCH_SIZE = 64
BRANCH_MAX = 2 * BRANCH_SIZE
BRANCH_MIN = BRANCH_SIZE // 4

_DELETED_ID = id(DELETED)


class Node:
    """A leaf (``kids is None``: ``keys`` and their ``vals``) or a branch
    (``kids[i]`` holds the keys ``k`` with ``keys[i-1] <= k < keys[i]``;
    ``vals is None``). Never modified once published."""

    __slots__ = ("__weakref__", "keys", "kids", "vals")

    def __init__(
        self,
        keys: list[bytes],
        vals: list[bytes] | None,
        kids: list[Node] | None,
    ) -> None:
        self.keys = keys
        self.vals = vals
        self.kids = kids

    def __repr__(self) -> str:
        kind = "leaf" if self.kids is None else "branch"
        return f"<{kind} of {len(self.keys)}>"


#: The empty tree.
EMPTY = Node([], [], None)


def lookup(root: Node, key: bytes) -> bytes | None:
    """The value of ``key`` in the tree ``root``, or ``None``."""
    node = root
    while node.kids is not None:
        node = node.kids[bisect_right(node.keys, key)]
    keys = node.keys
    i = bisect_left(keys, key)
    if i < len(keys) and keys[i] == key:
        return node.vals[i]  # type: ignore[index]
    return None


def build(keys: list[bytes], vals: list[bytes]) -> Node:
    """A tree holding ``keys`` (strictly ascending, not checked) and ``vals``."""
    if not keys:
        return EMPTY
    step = LEAF_SIZE
    nodes = [
        Node(keys[i : i + step], vals[i : i + step], None)
        for i in range(0, len(keys), step)
    ]
    lows = keys[step::step]
    return _grow(nodes, lows)


def _grow(nodes: list[Node], lows: list[bytes]) -> Node:
    """A root over sibling ``nodes`` (``lows[i]`` separates node i and i+1)."""
    while len(nodes) > 1:
        step = BRANCH_SIZE
        parents = []
        parent_lows = []
        for i in range(0, len(nodes), step):
            parents.append(Node(lows[i : i + step - 1], None, nodes[i : i + step]))
            if i:
                parent_lows.append(lows[i - 1])
        nodes, lows = parents, parent_lows
    return nodes[0]


def items(root: Node) -> tuple[list[bytes], list[bytes]]:
    """Every key and value of the tree, in order."""
    keys: list[bytes] = []
    vals: list[bytes] = []
    for leaf in _leaves(root):
        keys += leaf.keys
        vals += leaf.vals  # type: ignore[arg-type]
    return keys, vals


def _leaves(node: Node) -> Iterator[Node]:
    if node.kids is None:
        yield node
    else:
        for kid in node.kids:
            yield from _leaves(kid)


def count(root: Node) -> int:
    """How many keys the tree holds (walks the leaves)."""
    return sum(len(leaf.keys) for leaf in _leaves(root))


# -- scans ----------------------------------------------------------------------


def scan(
    root: Node, key: bytes, reverse: bool = False, inclusive: bool = True
) -> Iterator[tuple[bytes, bytes]]:
    """``(key, value)`` pairs from the first key ``>= key`` up (``> key`` if
    not ``inclusive``), or with ``reverse`` from the last key ``<= key``
    (``< key``) down."""
    stack: list[tuple[Node, int]] = []
    node = root
    while node.kids is not None:
        i = bisect_right(node.keys, key)
        stack.append((node, i))
        node = node.kids[i]
    keys, vals = node.keys, node.vals
    assert vals is not None
    if not reverse:
        j = (bisect_left if inclusive else bisect_right)(keys, key)
        if j:
            yield from zip(keys[j:], vals[j:], strict=False)
        else:
            yield from zip(keys, vals, strict=False)
        while stack:
            parent, i = stack.pop()
            if i + 1 < len(parent.kids):  # type: ignore[arg-type]
                stack.append((parent, i + 1))
                node = parent.kids[i + 1]  # type: ignore[index]
                while node.kids is not None:
                    stack.append((node, 0))
                    node = node.kids[0]
                yield from zip(node.keys, node.vals, strict=False)  # type: ignore[arg-type]
        return
    j = (bisect_right if inclusive else bisect_left)(keys, key)
    yield from zip(reversed(keys[:j]), reversed(vals[:j]), strict=False)
    while stack:
        parent, i = stack.pop()
        if i > 0:
            stack.append((parent, i - 1))
            node = parent.kids[i - 1]  # type: ignore[index]
            while node.kids is not None:
                last = len(node.kids) - 1
                stack.append((node, last))
                node = node.kids[last]
            yield from zip(reversed(node.keys), reversed(node.vals), strict=False)  # type: ignore[arg-type]


# -- commits --------------------------------------------------------------------


def apply(root: Node, keys: list[bytes], vals: list[bytes]) -> Node:
    """A new tree: ``root`` with ``vals[i]`` stored under ``keys[i]``
    (``DELETED`` removes the key). ``keys`` is strictly ascending.

    ``root`` is not modified; the new tree shares every node off the paths
    to the changed keys.
    """
    if not keys:
        return root
    deletes = _DELETED_ID in map(id, vals)
    nodes, lows = _apply(root, keys, vals, 0, len(keys), deletes)
    if not nodes:
        return EMPTY
    new = _grow(nodes, lows)
    while new.kids is not None and len(new.kids) == 1:
        new = new.kids[0]
    return new


Pieces = tuple[list[Node], list[bytes]]


def _apply(
    node: Node, keys: list[bytes], vals: list[bytes], lo: int, hi: int, deletes: bool
) -> Pieces:
    """``node`` with ``keys[lo:hi]`` applied: the nodes replacing it and the
    separators between them (none when it became empty)."""
    if node.kids is None:
        return _apply_leaf(node, keys, vals, lo, hi, deletes)
    seps = node.keys
    kids = node.kids
    new_kids: list[Node] = []
    new_seps: list[bytes] = []
    touched: list[int] = []  # positions in new_kids of replaced kids
    done = 0  # kids[:done] are handled
    nseps = len(seps)
    while lo < hi:
        ci = bisect_right(seps, keys[lo])
        end = bisect_left(keys, seps[ci], lo, hi) if ci < nseps else hi
        # Unchanged kids before ci, with their separators.
        if ci > done:
            if new_kids:
                new_seps.append(seps[done - 1])
            new_kids += kids[done:ci]
            new_seps += seps[done : ci - 1]
        pieces, lows = _apply(kids[ci], keys, vals, lo, end, deletes)
        if pieces:
            if new_kids:
                # The old lower bound of kid ci still separates it (a bound,
                # not necessarily its smallest key), or kid 0 had none.
                new_seps.append(seps[ci - 1] if ci else pieces_low(pieces[0]))
            touched.append(len(new_kids))
            new_kids += pieces
            new_seps += lows
        done = ci + 1
        lo = end
    if done < len(kids):
        if new_kids:
            new_seps.append(seps[done - 1])
        new_kids += kids[done:]
        new_seps += seps[done:]
    if not new_kids:
        return [], []
    for at in reversed(touched):
        _fix_small(new_kids, new_seps, at)
    if len(new_kids) > BRANCH_MAX:
        return _split_branch(new_seps, new_kids)
    return [Node(new_seps, None, new_kids)], []


def pieces_low(node: Node) -> bytes:
    """The smallest key under ``node``."""
    while node.kids is not None:
        node = node.kids[0]
    return node.keys[0]


def _fix_small(kids: list[Node], seps: list[bytes], at: int) -> None:
    """Merge ``kids[at]`` (new, not shared with older versions unless it
    is an untouched kid) with a neighbour if it is too small."""
    if at >= len(kids) or len(kids) < 2:
        return
    node = kids[at]
    small = LEAF_MIN if node.kids is None else BRANCH_MIN
    if len(node.keys) >= small:
        return
    if at + 1 == len(kids):
        at -= 1
    left, right, sep = kids[at], kids[at + 1], seps[at]
    if left.kids is None:
        mkeys = left.keys + right.keys
        mvals = left.vals + right.vals  # type: ignore[operator]
        if len(mkeys) > LEAF_MAX:
            half = len(mkeys) // 2
            kids[at : at + 2] = [
                Node(mkeys[:half], mvals[:half], None),
                Node(mkeys[half:], mvals[half:], None),
            ]
            seps[at] = mkeys[half]
        else:
            kids[at : at + 2] = [Node(mkeys, mvals, None)]
            del seps[at]
        return
    bseps = left.keys + [sep] + right.keys
    bkids = left.kids + right.kids  # type: ignore[operator]
    if len(bkids) > BRANCH_MAX:
        half = len(bkids) // 2
        kids[at : at + 2] = [
            Node(bseps[: half - 1], None, bkids[:half]),
            Node(bseps[half:], None, bkids[half:]),
        ]
        seps[at] = bseps[half - 1]
    else:
        kids[at : at + 2] = [Node(bseps, None, bkids)]
        del seps[at]


def _split_branch(seps: list[bytes], kids: list[Node]) -> Pieces:
    parts = max(2, len(kids) // BRANCH_SIZE)
    size = -(-len(kids) // parts)
    nodes = []
    lows = []
    for i in range(0, len(kids), size):
        nodes.append(Node(seps[i : i + size - 1], None, kids[i : i + size]))
        if i:
            lows.append(seps[i - 1])
    return nodes, lows


def _apply_leaf(
    leaf: Node, keys: list[bytes], vals: list[bytes], lo: int, hi: int, deletes: bool
) -> Pieces:
    lkeys = leaf.keys
    lvals: list[bytes] = leaf.vals  # type: ignore[assignment]
    n = hi - lo
    if not deletes and (not lkeys or keys[lo] > lkeys[-1]):
        # Appends past the end: the common case of a sequential load.
        nkeys = lkeys + keys[lo:hi]
        nvals = lvals + vals[lo:hi]
    elif n * 16 < len(lkeys):
        nkeys = lkeys[:]
        nvals = lvals[:]
        for i in range(lo, hi):
            k = keys[i]
            v = vals[i]
            j = bisect_left(nkeys, k)
            if j < len(nkeys) and nkeys[j] == k:
                if v is DELETED:
                    del nkeys[j]
                    del nvals[j]
                else:
                    nvals[j] = v
            elif v is not DELETED:
                nkeys.insert(j, k)
                nvals.insert(j, v)
    else:
        merged = dict(zip(lkeys, lvals, strict=False))
        if deletes:
            pop = merged.pop
            for i in range(lo, hi):
                v = vals[i]
                if v is DELETED:
                    pop(keys[i], None)
                else:
                    merged[keys[i]] = v
            nkeys = sorted(merged)
        else:
            merged.update(zip(keys[lo:hi], vals[lo:hi], strict=False))
            # Two ascending runs: timsort merges them in linear time.
            nkeys = (
                sorted(lkeys + keys[lo:hi])
                if len(merged) == len(lkeys) + n
                else sorted(merged)
            )
        nvals = list(map(merged.__getitem__, nkeys))
    size = len(nkeys)
    if size <= LEAF_MAX:
        if not size:
            return [], []
        return [Node(nkeys, nvals, None)], []
    parts = max(2, size // LEAF_SIZE)
    step = -(-size // parts)
    nodes = [
        Node(nkeys[i : i + step], nvals[i : i + step], None)
        for i in range(0, size, step)
    ]
    return nodes, nkeys[step::step]
