"""A sorted set of ``bytes`` kept as a list of sorted chunks.

This is the ordered half of the in-memory engine (the ``skiplist:`` scheme):
a dict answers point lookups, this structure answers "first key >= k" and
ordered scans. A linked skip list costs one Python object and several
pointer hops per key; in CPython a list of sorted chunks of a few hundred
keys does the same job with ``bisect`` and ``list.insert`` running in C, so
inserts cost O(log n + chunk size) with a tiny constant and scans are plain
list walks.

>>> s = SortedKeys([b"c", b"a"])
>>> s.add(b"b"), s.add(b"b")
(True, False)
>>> list(s.irange(b"b")), list(s.irange(b"b", reverse=True))
([b'b', b'c'], [b'b', b'a'])
>>> list(s.irange(b"b", inclusive=False))
[b'c']
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator

__all__ = ["SortedKeys"]

#: Target chunk length; a chunk splits at twice this and merges below 1/8.
LOAD = 512


class SortedKeys:
    """Sorted, duplicate-free ``bytes`` with positional range scans."""

    __slots__ = ("_chunks", "_maxes", "_len")

    def __init__(self, keys: Iterable[bytes] = ()) -> None:
        ordered = sorted(set(keys))
        self._chunks: list[list[bytes]] = [
            ordered[i : i + LOAD] for i in range(0, len(ordered), LOAD)
        ]
        self._maxes: list[bytes] = [chunk[-1] for chunk in self._chunks]
        self._len: int = len(ordered)

    @classmethod
    def from_sorted(cls, ordered: list[bytes]) -> SortedKeys:
        """Build from a strictly ascending list (not checked)."""
        new = cls.__new__(cls)
        new._chunks = [ordered[i : i + LOAD] for i in range(0, len(ordered), LOAD)]
        new._maxes = [chunk[-1] for chunk in new._chunks]
        new._len = len(ordered)
        return new

    def __len__(self) -> int:
        return self._len

    def __bool__(self) -> bool:
        return self._len > 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            yield from chunk

    def __contains__(self, key: bytes) -> bool:
        maxes = self._maxes
        ci = bisect_left(maxes, key)
        if ci == len(maxes):
            return False
        chunk = self._chunks[ci]
        i = bisect_left(chunk, key)
        return chunk[i] == key

    def __repr__(self) -> str:
        return f"SortedKeys({list(self)!r})"

    def copy(self) -> SortedKeys:
        """An independent copy (chunks copied, keys shared)."""
        new = SortedKeys.__new__(SortedKeys)
        new._chunks = [chunk[:] for chunk in self._chunks]
        new._maxes = self._maxes[:]
        new._len = self._len
        return new

    def add(self, key: bytes) -> bool:
        """Insert ``key``; ``False`` if it was already present."""
        maxes = self._maxes
        chunks = self._chunks
        if not maxes:
            chunks.append([key])
            maxes.append(key)
            self._len = 1
            return True
        ci = bisect_left(maxes, key)
        if ci == len(maxes):
            ci -= 1
            chunk = chunks[ci]
            chunk.append(key)
            maxes[ci] = key
        else:
            chunk = chunks[ci]
            i = bisect_left(chunk, key)
            if chunk[i] == key:
                return False
            chunk.insert(i, key)
        self._len += 1
        if len(chunk) > 2 * LOAD:
            chunks[ci : ci + 1] = [chunk[:LOAD], chunk[LOAD:]]
            maxes[ci : ci + 1] = [chunk[LOAD - 1], chunk[-1]]
        return True

    def discard(self, key: bytes) -> bool:
        """Remove ``key``; ``False`` if it was absent."""
        maxes = self._maxes
        ci = bisect_left(maxes, key)
        if ci == len(maxes):
            return False
        chunks = self._chunks
        chunk = chunks[ci]
        i = bisect_left(chunk, key)
        if chunk[i] != key:
            return False
        del chunk[i]
        self._len -= 1
        if not chunk:
            del chunks[ci]
            del maxes[ci]
        else:
            maxes[ci] = chunk[-1]
            if len(chunk) < LOAD // 8 and len(chunks) > 1:
                self._merge(ci)
        return True

    def _merge(self, ci: int) -> None:
        """Fold the small chunk ``ci`` into a neighbour (and resplit)."""
        chunks, maxes = self._chunks, self._maxes
        if ci == len(chunks) - 1:
            ci -= 1
        merged = chunks[ci] + chunks[ci + 1]
        if len(merged) > 2 * LOAD:
            half = len(merged) // 2
            chunks[ci : ci + 2] = [merged[:half], merged[half:]]
            maxes[ci : ci + 2] = [merged[half - 1], merged[-1]]
        else:
            chunks[ci : ci + 2] = [merged]
            maxes[ci : ci + 2] = [merged[-1]]

    def position(self, key: bytes, reverse: bool, inclusive: bool) -> tuple[int, int]:
        """``(chunk, index)`` where a scan from ``key`` starts.

        Forward: the first key ``>= key`` (``> key`` if not ``inclusive``);
        reverse: the last key ``<= key`` (``< key``). Past either end the
        chunk index is ``len(chunks)`` (forward) or ``-1`` (reverse).
        """
        maxes = self._maxes
        if not reverse:
            ci = (bisect_left if inclusive else bisect_right)(maxes, key)
            if ci == len(maxes):
                return ci, 0
            chunk = self._chunks[ci]
            return ci, (bisect_left if inclusive else bisect_right)(chunk, key)
        ci = bisect_left(maxes, key)
        if ci == len(maxes):
            ci -= 1
            return ci, len(self._chunks[ci]) - 1 if ci >= 0 else 0
        chunk = self._chunks[ci]
        i = (bisect_right if inclusive else bisect_left)(chunk, key) - 1
        if i < 0:
            ci -= 1
            i = len(self._chunks[ci]) - 1 if ci >= 0 else 0
        return ci, i

    def irange(
        self, key: bytes, reverse: bool = False, inclusive: bool = True
    ) -> Iterator[bytes]:
        """Keys from ``key`` on (see :meth:`position`).

        The structure must not change while the iterator is in use.
        """
        ci, i = self.position(key, reverse, inclusive)
        chunks = self._chunks
        if not reverse:
            if ci < len(chunks):
                yield from chunks[ci][i:] if i else chunks[ci]
                for chunk in chunks[ci + 1 :]:
                    yield from chunk
            return
        if ci >= 0:
            yield from reversed(chunks[ci][: i + 1])
            for cj in range(ci - 1, -1, -1):
                yield from reversed(chunks[cj])
