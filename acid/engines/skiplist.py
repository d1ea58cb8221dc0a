"""``skiplist:`` - the memory engine's old name, kept so that its URLs and
imports keep working: :class:`SkipListEngine` is
:class:`acid.engines.memory.MemoryEngine` (see that module).

>>> from acid.engines import from_url
>>> with from_url("skiplist:/") as engine:
...     type(engine).__name__, engine.url
('MemoryEngine', 'skiplist:/')
"""

from __future__ import annotations

from acid.engines.memory import MemoryEngine

__all__ = ["SkipListEngine"]

SkipListEngine = MemoryEngine
