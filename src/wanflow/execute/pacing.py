"""The submit pace: how many creates may go back to back, and a token bucket that adapts to 429s."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

import anyio


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
