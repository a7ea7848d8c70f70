"""Per-provider, per-model pressure on the paid services: submits per second and tasks at once.

Defaults follow the documents (DashScope Wan: 2 submits per second and 2 concurrent tasks per
model per account; vtrix documents none, so it gets the same). A model's first creates may go
back to back, up to its concurrent limit and within the rate's one second (``submit_burst``).
``wanflow.toml`` changes them::

    [limits.dashscope]
    submits_per_second = 2
    concurrent = 2

    [limits.dashscope."wan2.6-i2v"]   # one model
    concurrent = 1

Waiting for a slot or a token is an anyio wait: thousands of queued sub-tasks cost no CPU.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio

from wanflow._exceptions import UsageError
from wanflow.execute.coordination import Coordinator, LocalCoordinator
from wanflow.execute.pacing import TokenBucket, submit_burst

DEFAULT_LIMITS: Mapping[str, tuple[float, int]] = {"dashscope": (2.0, 2), "vtrix": (2.0, 2)}


def _documented_concurrency(provider: str, model: str) -> int | None:
    from wanflow.catalog.loader import load_catalog

    spec = load_catalog().get(model)
    ids = spec.providers.get(provider) if spec is not None else None
    return ids.concurrent if ids is not None else None


@dataclass(frozen=True)
class QueueState:
    """One gate at one moment, for progress displays."""

    label: str
    running: int
    waiting: int


@dataclass
class ModelLimits:
    """The gates of one (provider, model)."""

    label: str
    tasks: anyio.CapacityLimiter
    submits: TokenBucket | None
    claimed: int = 0  # tasks running or waiting; counted synchronously, unlike the limiter's own stats

    def queued(self) -> int:
        """Sub-tasks waiting for a slot."""
        return max(0, self.claimed - int(self.tasks.total_tokens))


class ProviderLimits:
    """All gates of a run (shared by every instance of a batch)."""

    def __init__(self, config: Mapping[str, Any] | None = None, coordinator: Coordinator | None = None) -> None:
        self._config = dict(config or {})
        self._coordinator = coordinator or LocalCoordinator()
        self._gates: dict[tuple[str, str], ModelLimits] = {}
        self._stopped: dict[tuple[str, str], str] = {}
        for provider, section in self._config.items():
            if not isinstance(section, Mapping):
                raise UsageError(f"wanflow.toml [limits.{provider}] must be a table")

    def _settings(self, provider: str, model: str) -> tuple[float | None, int | None]:
        rate, concurrent = DEFAULT_LIMITS.get(provider, (None, None))
        section = self._config.get(provider, {})
        own = section.get(model, {}) if isinstance(section.get(model), Mapping) else {}
        for scope in (section, own):
            if "submits_per_second" in scope:
                rate = float(scope["submits_per_second"])
            if "concurrent" in scope:
                concurrent = int(scope["concurrent"])
        # The catalog's lower limit (s2v: 1 task at a time) beats the provider-wide setting; only the
        # model's own section may raise it (docs/decisions.md).
        documented = _documented_concurrency(provider, model)
        if documented is not None and concurrent is not None and "concurrent" not in own:
            concurrent = min(concurrent, documented)
        if (rate is not None and rate <= 0) or (concurrent is not None and concurrent < 1):
            raise UsageError(f"wanflow.toml [limits.{provider}]: submits_per_second must be > 0 and concurrent >= 1")
        return rate, concurrent

    def gates(self, provider: str, model: str) -> ModelLimits | None:
        """The gates for ``provider``/``model``; None when unlimited (the local provider)."""
        key = (provider, model)
        if key not in self._gates:
            rate, concurrent = self._settings(provider, model)
            if rate is None and concurrent is None:
                return None
            self._gates[key] = ModelLimits(
                f"{provider}/{model}",
                anyio.CapacityLimiter(concurrent or 1_000_000),
                self._coordinator.submit_bucket(provider, model, rate, submit_burst(rate, concurrent)) if rate else None,
            )
        return self._gates[key]

    def stop_creates(self, provider: str, model: str, reason: str) -> None:
        """No new task of ``model`` goes to ``provider`` for the rest of the run (the first reason stays)."""
        self._stopped.setdefault((provider, model), reason)

    def creates_stopped(self, provider: str, model: str) -> str | None:
        """Why new tasks of ``model`` on ``provider`` are stopped, or None."""
        return self._stopped.get((provider, model))

    def queues(self) -> list[QueueState]:
        """Every gate in use: tasks holding a slot and tasks waiting for one."""
        states = []
        for gates in self._gates.values():
            waiting = gates.queued()
            states.append(QueueState(gates.label, gates.claimed - waiting, waiting))
        return states

    @asynccontextmanager
    async def slot(self, provider: str, model: str,
                   on_queue: Callable[[int], None] | None = None) -> AsyncIterator[ModelLimits | None]:
        """Hold one of the model's concurrent-task slots for a whole task; ``on_queue`` hears the queue depth."""
        gates = self.gates(provider, model)
        if gates is None:
            yield None
            return
        gates.claimed += 1
        if on_queue is not None and gates.queued():
            on_queue(gates.queued())
        try:
            async with gates.tasks, self._cluster_slot(provider, model):
                yield gates
        finally:
            gates.claimed -= 1

    def _cluster_slot(self, provider: str, model: str) -> Any:
        """The same concurrent-task limit held by the coordinator (cluster-wide on a Dask worker)."""
        _, concurrent = self._settings(provider, model)
        return self._coordinator.model_slot(provider, model, concurrent)
