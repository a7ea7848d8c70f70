"""Per-provider, per-model pressure on the paid services: submits per second and tasks at once.

Defaults follow the documents (DashScope Wan: 2 submits per second and 2 concurrent tasks per
model per account; vtrix documents none, so it gets the same). ``wanflow.toml`` changes them::

    [limits.dashscope]
    submits_per_second = 2
    concurrent = 2

    [limits.dashscope."wan2.6-i2v"]   # one model
    concurrent = 1

Waiting for a slot or a token is an anyio wait: thousands of queued sub-tasks cost no CPU.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable, Mapping

import anyio

from wanflow._exceptions import UsageError

DEFAULT_LIMITS: Mapping[str, tuple[float, int]] = {"dashscope": (2.0, 2), "vtrix": (2.0, 2)}


class TokenBucket:
    """Creates spaced at least ``1 / rate`` seconds apart (no bursts, so a server's bucket of the
    same rate never runs dry)."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self._next = 0.0
        self._lock = anyio.Lock()

    async def take(self) -> None:
        async with self._lock:
            now = anyio.current_time()
            wait = max(0.0, self._next - now)
            self._next = max(now, self._next) + self.interval
        if wait:
            await anyio.sleep(wait)


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

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        self._config = dict(config or {})
        self._gates: dict[tuple[str, str], ModelLimits] = {}
        for provider, section in self._config.items():
            if not isinstance(section, Mapping):
                raise UsageError(f"wanflow.toml [limits.{provider}] must be a table")

    def _settings(self, provider: str, model: str) -> tuple[float | None, int | None]:
        rate, concurrent = DEFAULT_LIMITS.get(provider, (None, None))
        section = self._config.get(provider, {})
        for scope in (section, section.get(model, {}) if isinstance(section.get(model), Mapping) else {}):
            if "submits_per_second" in scope:
                rate = float(scope["submits_per_second"])
            if "concurrent" in scope:
                concurrent = int(scope["concurrent"])
        if rate is not None and rate <= 0 or concurrent is not None and concurrent < 1:
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
                TokenBucket(rate) if rate else None,
            )
        return self._gates[key]

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
            async with gates.tasks:
                yield gates
        finally:
            gates.claimed -= 1
