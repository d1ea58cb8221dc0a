"""A copy-on-write B+tree of ``bytes`` keys and values.

This is the ordered structure of the memory engine. A tree is a root node;
a version of the data is a root. A commit builds the next version with
:func:`apply`, which copies only the nodes on the paths to the changed keys
(O(changes x log n), whatever readers are pinned) and shares every other
node with the older versions; an old version is freed by reference counting
when its last reader drops it.

Every node records its *owner*, the token of the commits that may still
change it in place. :func:`apply` copies a node owned by another token and
modifies one owned by its own token: the engine keeps one token while no
reader has seen the current version, so that consecutive unshared commits
(a bulk load) update the tree in place as a hand-written sorted structure
would, and takes a new token as soon as a reader pins a version, which makes
every node of that version immutable from then on.

Nodes are wide (128 to 256 keys in a leaf) so that the Python work per
operation stays small: a lookup is a few ``bisect`` calls in C, a scan walks
plain lists, and copying a node is one ``list`` copy. A node is a list
``[keys, vals, kids, owner]``: a leaf has ``kids`` ``None``, a branch has
``vals`` ``None`` and ``kids[i]`` holds the keys ``k`` with
``keys[i-1] <= k < keys[i]``.

>>> mine = object()
>>> t = apply(EMPTY, [b"a", b"b", b"c"], [b"1", b"2", b"3"], mine)
>>> u = apply(t, [b"b", b"d"], [DELETED, b"4"], object())  # a new owner: a copy
>>> lookup(t, b"b"), lookup(u, b"b"), list(scan(u, b"b"))
(b'2', None, [(b'c', b'3'), (b'd', b'4')])
>>> list(scan(t, b"b", reverse=True))
[(b'b', b'2'), (b'a', b'1')]
>>> apply(t, [b"a"], [b"9"], mine) is t, lookup(t, b"a")  # its owner: in place
(True, b'9')
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from typing import Any

from acid.engines._overlay import DELETED

__all__ = ["DELETED", "EMPTY", "Node", "apply", "build", "items", "lookup", "scan"]

#: A leaf splits above LEAF_MAX keys into pieces of at least LEAF_SIZE, and
#: is merged into a neighbour below LEAF_MIN. Branches likewise.
LEAF_SIZE = 128
LEAF_MAX = 2 * LEAF_SIZE
LEAF_MIN = LEAF_SIZE // 4
BRANCH_SIZE = 64
BRANCH_MAX = 2 * BRANCH_SIZE
BRANCH_MIN = BRANCH_SIZE // 4

_DELETED_ID = id(DELETED)


#: ``[keys, vals, kids, owner]`` (see the module doc).
Node = list[Any]

#: The empty tree (owned by nobody: never changed in place).
EMPTY: Node = [[], [], None, None]


def lookup(root: Node, key: bytes) -> bytes | None:
    """The value of ``key`` in the tree ``root``, or ``None``."""
    node = root
    while node[2] is not None:
        node = node[2][bisect_right(node[0], key)]
    keys = node[0]
    i = bisect_left(keys, key)
    if i < len(keys) and keys[i] == key:
        value: bytes = node[1][i]
        return value
    return None


def build(keys: list[bytes], vals: list[bytes], owner: object) -> Node:
    """A tree holding ``keys`` (strictly ascending, not checked) and ``vals``."""
    if not keys:
        return EMPTY
    step = LEAF_SIZE
    nodes = [
        [keys[i : i + step], vals[i : i + step], None, owner]
        for i in range(0, len(keys), step)
    ]
    return _grow(nodes, keys[step::step], owner)


def _grow(nodes: list[Node], lows: list[bytes], owner: object) -> Node:
    """A root over sibling ``nodes`` (``lows[i]`` separates node i and i+1)."""
    while len(nodes) > 1:
        step = BRANCH_SIZE
        parents = []
        parent_lows = []
        for i in range(0, len(nodes), step):
            parents.append([lows[i : i + step - 1], None, nodes[i : i + step], owner])
            if i:
                parent_lows.append(lows[i - 1])
        nodes, lows = parents, parent_lows
    return nodes[0]


def items(root: Node) -> tuple[list[bytes], list[bytes]]:
    """Every key and value of the tree, in order."""
    keys: list[bytes] = []
    vals: list[bytes] = []
    for leaf in _leaves(root):
        keys += leaf[0]
        vals += leaf[1]
    return keys, vals


def _leaves(node: Node) -> Iterator[Node]:
    if node[2] is None:
        yield node
    else:
        for kid in node[2]:
            yield from _leaves(kid)


def count(root: Node) -> int:
    """How many keys the tree holds (walks the leaves)."""
    return sum(len(leaf[0]) for leaf in _leaves(root))


# -- scans ----------------------------------------------------------------------


def scan(
    root: Node, key: bytes, reverse: bool = False, inclusive: bool = True
) -> Iterator[tuple[bytes, bytes]]:
    """``(key, value)`` pairs from the first key ``>= key`` up (``> key`` if
    not ``inclusive``), or with ``reverse`` from the last key ``<= key``
    (``< key``) down."""
    stack: list[tuple[Node, int]] = []
    node = root
    while node[2] is not None:
        i = bisect_right(node[0], key)
        stack.append((node, i))
        node = node[2][i]
    keys, vals = node[0], node[1]
    if not reverse:
        j = (bisect_left if inclusive else bisect_right)(keys, key)
        if j:
            yield from zip(keys[j:], vals[j:], strict=True)
        else:
            yield from zip(keys, vals, strict=True)
        while stack:
            parent, i = stack.pop()
            kids = parent[2]
            if i + 1 < len(kids):
                stack.append((parent, i + 1))
                node = kids[i + 1]
                while node[2] is not None:
                    stack.append((node, 0))
                    node = node[2][0]
                yield from zip(node[0], node[1], strict=True)
        return
    j = (bisect_right if inclusive else bisect_left)(keys, key)
    yield from zip(reversed(keys[:j]), reversed(vals[:j]), strict=True)
    while stack:
        parent, i = stack.pop()
        if i > 0:
            stack.append((parent, i - 1))
            node = parent[2][i - 1]
            while node[2] is not None:
                last = len(node[2]) - 1
                stack.append((node, last))
                node = node[2][last]
            yield from zip(reversed(node[0]), reversed(node[1]), strict=True)


# -- commits --------------------------------------------------------------------


def apply(root: Node, keys: list[bytes], vals: list[bytes], owner: object) -> Node:
    """The tree ``root`` with ``vals[i]`` stored under ``keys[i]``
    (``DELETED`` removes the key); ``keys`` is strictly ascending.

    Nodes owned by ``owner`` are changed in place, others are copied (and
    the copies owned by ``owner``): a tree whose nodes are all owned by
    others is left as it was.
    """
    if not keys:
        return root
    deletes = _DELETED_ID in map(id, vals)
    nodes, lows = _apply(root, keys, vals, 0, len(keys), deletes, owner)
    if not nodes:
        return EMPTY
    new = _grow(nodes, lows, owner)
    while new[2] is not None and len(new[2]) == 1:
        new = new[2][0]
    return new


Pieces = tuple[list[Node], list[bytes]]


def _apply(
    node: Node,
    keys: list[bytes],
    vals: list[bytes],
    lo: int,
    hi: int,
    deletes: bool,
    owner: object,
) -> Pieces:
    """``node`` with ``keys[lo:hi]`` applied: the nodes replacing it and the
    separators between them (none when it became empty)."""
    if node[2] is None:
        return _apply_leaf(node, keys, vals, lo, hi, deletes, owner)
    seps = node[0]
    kids = node[2]
    new_kids: list[Node] = []
    new_seps: list[bytes] = []
    touched: list[int] = []  # positions in new_kids of replaced kids
    done = 0  # kids[:done] are handled
    nseps = len(seps)
    while lo < hi:
        ci = bisect_right(seps, keys[lo])
        end = bisect_left(keys, seps[ci], lo, hi) if ci < nseps else hi
        if ci > done:  # unchanged kids before ci, with their separators
            if new_kids:
                new_seps.append(seps[done - 1])
            new_kids += kids[done:ci]
            new_seps += seps[done : ci - 1]
        pieces, lows = _apply(kids[ci], keys, vals, lo, end, deletes, owner)
        if pieces:
            if new_kids:
                # The old lower bound of kid ci still separates it (a bound,
                # not necessarily its smallest key); kid 0 has none.
                new_seps.append(seps[ci - 1])
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
        _fix_small(new_kids, new_seps, at, owner)
    if len(new_kids) > BRANCH_MAX:
        return _split_branch(new_seps, new_kids, owner)
    if node[3] is owner:
        node[0] = new_seps
        node[2] = new_kids
        return [node], []
    return [[new_seps, None, new_kids, owner]], []


def _fix_small(kids: list[Node], seps: list[bytes], at: int, owner: object) -> None:
    """Merge ``kids[at]`` with a neighbour if it is too small."""
    if at >= len(kids) or len(kids) < 2:
        return
    node = kids[at]
    small = LEAF_MIN if node[2] is None else BRANCH_MIN
    if len(node[0]) >= small:
        return
    if at + 1 == len(kids):
        at -= 1
    left, right, sep = kids[at], kids[at + 1], seps[at]
    if left[2] is None:
        mkeys = left[0] + right[0]
        mvals = left[1] + right[1]
        if len(mkeys) > LEAF_MAX:
            half = len(mkeys) // 2
            kids[at : at + 2] = [
                [mkeys[:half], mvals[:half], None, owner],
                [mkeys[half:], mvals[half:], None, owner],
            ]
            seps[at] = mkeys[half]
        else:
            kids[at : at + 2] = [[mkeys, mvals, None, owner]]
            del seps[at]
        return
    bseps = left[0] + [sep] + right[0]
    bkids = left[2] + right[2]
    if len(bkids) > BRANCH_MAX:
        half = len(bkids) // 2
        kids[at : at + 2] = [
            [bseps[: half - 1], None, bkids[:half], owner],
            [bseps[half:], None, bkids[half:], owner],
        ]
        seps[at] = bseps[half - 1]
    else:
        kids[at : at + 2] = [[bseps, None, bkids, owner]]
        del seps[at]


def _split_branch(seps: list[bytes], kids: list[Node], owner: object) -> Pieces:
    parts = max(2, len(kids) // BRANCH_SIZE)
    size = -(-len(kids) // parts)
    nodes = []
    lows = []
    for i in range(0, len(kids), size):
        nodes.append([seps[i : i + size - 1], None, kids[i : i + size], owner])
        if i:
            lows.append(seps[i - 1])
    return nodes, lows


def _apply_leaf(
    leaf: Node,
    keys: list[bytes],
    vals: list[bytes],
    lo: int,
    hi: int,
    deletes: bool,
    owner: object,
) -> Pieces:
    lkeys: list[bytes] = leaf[0]
    lvals: list[bytes] = leaf[1]
    size = len(lkeys)
    mine = leaf[3] is owner
    if not deletes and (not size or keys[lo] > lkeys[-1]):
        # Appends past the end: the common case of a sequential load.
        if mine:
            lkeys += keys[lo:hi]
            lvals += vals[lo:hi]
            nkeys, nvals = lkeys, lvals
        else:
            nkeys = lkeys + keys[lo:hi]
            nvals = lvals + vals[lo:hi]
    elif mine and (hi - lo) * 8 <= size + 64:
        # A few changes to a node nobody else sees: in place.
        for i in range(lo, hi):
            k = keys[i]
            v = vals[i]
            j = bisect_left(lkeys, k)
            if j < len(lkeys) and lkeys[j] == k:
                if v is DELETED:
                    del lkeys[j]
                    del lvals[j]
                else:
                    lvals[j] = v
            elif v is not DELETED:
                lkeys.insert(j, k)
                lvals.insert(j, v)
        nkeys, nvals = lkeys, lvals
    else:
        # One pass: copy the runs of old entries between the changed keys.
        nkeys = []
        nvals = []
        prev = 0
        for i in range(lo, hi):
            k = keys[i]
            j = bisect_left(lkeys, k, prev)
            if j > prev:
                nkeys += lkeys[prev:j]
                nvals += lvals[prev:j]
            prev = j + 1 if j < size and lkeys[j] == k else j
            v = vals[i]
            if v is not DELETED:
                nkeys.append(k)
                nvals.append(v)
        nkeys += lkeys[prev:]
        nvals += lvals[prev:]
    size = len(nkeys)
    if size <= LEAF_MAX:
        if not size:
            return [], []
        if mine:
            leaf[0] = nkeys
            leaf[1] = nvals
            return [leaf], []
        return [[nkeys, nvals, None, owner]], []
    parts = max(2, size // LEAF_SIZE)
    step = -(-size // parts)
    nodes = [
        [nkeys[i : i + step], nvals[i : i + step], None, owner]
        for i in range(0, size, step)
    ]
    return nodes, nkeys[step::step]
