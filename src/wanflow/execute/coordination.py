"""Who else must agree before a unit acts: this process alone, or every worker of a Dask cluster.

A coordinator is handed down to the runner and its limits (never looked up as a global): the
local one adds nothing to the process's own locks and gates; the Dask one
(``wanflow.execute.cluster.DaskCoordinator``) holds a cache key, a model's task slots and its
submit pace cluster-wide.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

from wanflow.execute.pacing import TokenBucket


class Coordinator(Protocol):
    """The cluster-wide side of the runner's locks and gates."""

    def key_lock(self, key: str, on_wait: Callable[[], None] | None = None) -> AbstractAsyncContextManager[None]:
        """Hold ``key`` against every other process that generates the same request."""
        ...

    def model_slot(self, provider: str, model: str, concurrent: int | None) -> AbstractAsyncContextManager[None]:
        """Hold one of the ``concurrent`` task slots of ``provider``/``model`` (None: unlimited)."""
        ...

    def submit_bucket(self, provider: str, model: str, rate: float, burst: int) -> TokenBucket:
        """The submit pace of ``provider``/``model`` as this coordinator shares it."""
        ...


@asynccontextmanager
async def nothing_to_hold() -> AsyncIterator[None]:
    """A lock that holds nothing."""
    yield


class LocalCoordinator:
    """One process: the runner's own locks and gates are the whole story."""

    def key_lock(self, key: str, on_wait: Callable[[], None] | None = None) -> AbstractAsyncContextManager[None]:
        """Nothing beyond the process's lock (the OS file lock and the store's lease still apply)."""
        return nothing_to_hold()

    def model_slot(self, provider: str, model: str, concurrent: int | None) -> AbstractAsyncContextManager[None]:
        """Nothing beyond the process's own slots."""
        return nothing_to_hold()

    def submit_bucket(self, provider: str, model: str, rate: float, burst: int) -> TokenBucket:
        """This process's own bucket."""
        return TokenBucket(rate, burst)
