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

import math
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio

from wanflow._exceptions import UsageError

DEFAULT_LIMITS: Mapping[str, tuple[float, int]] = {"dashscope": (2.0, 2), "vtrix": (2.0, 2)}


def submit_burst(rate: float, concurrent: int | None) -> int:
    """How many creates of one model may go back to back: up to its concurrent-task limit (more
    could not start anyway), and never more than the rate allows within one second, so that no
    one-second window holds more creates than the documented "2 submits per second"."""
    per_second = max(1, math.floor(rate))
    return max(1, min(per_second, concurrent if concurrent is not None else per_second))


def next_grant(granted: Sequence[float], now: float, burst: int, window: float) -> float:
    """When the next create may go: not before the latest one, and ``window`` seconds after the
    one ``burst`` creates back (``granted``: the times booked so far, oldest first)."""
    at = max(now, granted[-1]) if granted else now
    if len(granted) >= burst:
        at = max(at, granted[-burst] + window)
    return at


class TokenBucket:
    """Creates at most ``rate`` per second, up to ``burst`` of them back to back (``burst = 1``:
    spaced ``1 / rate`` apart).

    A burst lets the first tasks of a run (and of each freed pair of slots) start together instead
    of ``1 / rate`` apart. After it, the next ``burst`` creates wait out ``window``: long enough that
    no second holds more creates than the rate, and that a server bucket of one second's creates
    still has ``LATENCY_SLACK`` seconds in hand, as one spare token gave at 2 per second without
    bursts: creates that reach the service a little earlier or later than sent are not refused.
    The rate adapts to the service (additive increase, multiplicative decrease): each 429 halves
    it, down to ``MIN_RATE``, and ends bursts for the run; each accepted create wins back a
    twentieth of the configured rate. A service that throttles below wanflow's configured pace
    thus slows every queued item down instead of making them fail.
    """

    MIN_RATE = 0.05  # one create every 20 s at the slowest
    LATENCY_SLACK = 0.5  # seconds of variation in how long a create takes to arrive, absorbed after a burst

    def __init__(self, rate: float, burst: int = 1, clock: Callable[[], float] = anyio.current_time,
                 sleep: Callable[[float], Awaitable[None]] = anyio.sleep) -> None:
        self.configured = rate
        self.rate = rate
        self.burst = max(1, burst)
        self._granted: deque[float] = deque(maxlen=self.burst)  # the latest creates' times, granted or booked
        self._clock, self._sleep = clock, sleep
        self._lock = anyio.Lock()

    @property
    def interval(self) -> float:
        """Seconds between creates at the current pace, on average."""
        return 1.0 / self.rate

    @property
    def window(self) -> float:
        """Seconds between a create and the one ``burst`` creates after it."""
        if self.burst == 1:
            return self.interval
        per_second = max(1, math.floor(self.rate))
        spare = per_second - self.burst  # tokens a one-second server bucket keeps back
        with_slack = self.burst * self.interval + max(0.0, self.LATENCY_SLACK - spare * self.interval)
        # Bursts ``window`` apart put burst * ceil(1 / window) creates in one second: keep that
        # within the rate when the burst (the concurrent limit) is smaller than it (rate 3,
        # burst 2: pairs a second apart, not 0.83 s, which would put 4 in one second).
        groups_per_second = per_second // self.burst
        return max(with_slack, 1.0 / groups_per_second + 1e-9)

    def slow_down(self) -> None:
        """A 429: halve the pace, and no more bursts (this service counts more strictly)."""
        self.rate = max(self.MIN_RATE, min(self.rate, self.configured) / 2)
        self.burst = 1

    def speed_up(self) -> None:
        """An accepted create: recover slowly toward the configured pace."""
        self.rate = min(self.configured, self.rate + self.configured / 20)

    async def take(self) -> None:
        """Wait until one more create keeps within the pace (the time is booked at once, in order)."""
        async with self._lock:
            now = self._clock()
            at = next_grant(self._granted, now, self.burst, self.window)
            self._granted.append(at)
        if at > now:
            await self._sleep(at - now)


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


@asynccontextmanager
async def _async_null() -> AsyncIterator[None]:
    yield


class ProviderLimits:
    """All gates of a run (shared by every instance of a batch)."""

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        self._config = dict(config or {})
        self._gates: dict[tuple[str, str], ModelLimits] = {}
        self._stopped: dict[tuple[str, str], str] = {}
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
        if (rate is not None and rate <= 0) or (concurrent is not None and concurrent < 1):
            raise UsageError(f"wanflow.toml [limits.{provider}]: submits_per_second must be > 0 and concurrent >= 1")
        return rate, concurrent

    def gates(self, provider: str, model: str) -> ModelLimits | None:
        """The gates for ``provider``/``model``; None when unlimited (the local provider)."""
        key = (provider, model)
        if key not in self._gates:
            from wanflow.execute.cluster import driver as cluster  # on a Dask worker the bucket is cluster-wide

            rate, concurrent = self._settings(provider, model)
            if rate is None and concurrent is None:
                return None
            self._gates[key] = ModelLimits(
                f"{provider}/{model}",
                anyio.CapacityLimiter(concurrent or 1_000_000),
                cluster.submit_bucket(provider, model, rate, submit_burst(rate, concurrent)) if rate else None,
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
        """On a Dask worker, the same concurrent-task limit held cluster-wide (a distributed.Semaphore)."""
        from wanflow.execute.cluster import driver as cluster

        _, concurrent = self._settings(provider, model)
        if not cluster.active() or concurrent is None:
            return _async_null()
        return cluster.model_slot(provider, model, concurrent)
