"""A wrapper engine for tests: slow reads, failing commits, any capability.

``HookedEngine(inner)`` passes every call to ``inner`` and lets a test
inject what a real engine does under load: a ``get`` that takes a while
(``get_delay``), a commit that loses a conflict (``fail_commits``), or the
``concurrent_writers`` capability of a server engine.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from acid.engines import Engine, Txn
from acid.errors import ConflictError


class HookedEngine(Engine):
    def __init__(
        self,
        inner: Engine,
        *,
        get_delay: float = 0.0,
        fail_commits: int = 0,
        fail_every: int = 0,
        concurrent_writers: bool | None = None,
    ) -> None:
        self.inner = inner
        self.url = inner.url
        self.snapshots = inner.snapshots
        self.persistent = inner.persistent
        self.multi_process = inner.multi_process
        self.max_key_size = inner.max_key_size
        self.lock_timeout = getattr(inner, "lock_timeout", 30.0)
        if concurrent_writers is not None:
            self.concurrent_writers = concurrent_writers
        self.get_delay = get_delay
        #: Write commits still to fail with ConflictError (after aborting).
        self.fail_commits = fail_commits
        #: Fail every n-th write commit too (0: never).
        self.fail_every = fail_every
        self.attempted = 0
        self.commits = 0

    @property
    def identity(self) -> object:
        return self.inner.identity

    def begin(self, write: bool = False, timeout: float | None = None) -> Txn:
        return HookedTxn(self, self.inner.begin(write, timeout))

    def get(self, key: bytes) -> bytes | None:
        time.sleep(self.get_delay)
        return self.inner.get(key)

    def close(self) -> None:
        self.inner.close()


class HookedTxn(Txn):
    def __init__(self, engine: HookedEngine, native: Txn) -> None:
        self._engine = engine
        self._txn = native
        self.write = native.write

    @property
    def ended(self) -> bool:  # type: ignore[override]
        return self._txn.closed

    def get(self, key: bytes) -> bytes | None:
        time.sleep(self._engine.get_delay)
        return self._txn.get(key)

    def put(self, key: bytes, value: bytes) -> None:
        self._txn.put(key, value)

    def delete(self, key: bytes) -> bool:
        return self._txn.delete(key)

    def iter(self, key: bytes, reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
        return self._txn.iter(key, reverse)

    def commit(self) -> None:
        engine = self._engine
        if self.write:
            engine.attempted += 1
        every = engine.fail_every
        injected = every and engine.attempted % every == 0
        if self.write and (engine.fail_commits > 0 or injected):
            engine.fail_commits -= not injected
            self._txn.abort()
            raise ConflictError("injected: a concurrent commit won")
        self._txn.commit()
        if self.write:
            engine.commits += 1

    def abort(self) -> None:
        self._txn.abort()
