"""How long to wait: polling pace per kind of task, and retry backoff.

Pure functions of an attempt number and a random source, so they are tested with a fake clock
and a seeded RNG. The pace suits generation times (images 1-2 min, video 1-5 min) rather than
hammering the service, with jitter so many tasks do not poll in lockstep.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from wanflow._exceptions import UsageError


@dataclass(frozen=True)
class PollPolicy:
    """Wait ``first_delay`` after submitting, then ``interval`` (± ``jitter``) until ``deadline``."""

    first_delay: float
    interval: float
    jitter: float
    deadline: float

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before poll number ``attempt`` (0 = the first poll)."""
        base = self.first_delay if attempt == 0 else self.interval
        if base <= 0:
            return 0.0
        return max(0.0, base * (1 + rng.uniform(-self.jitter, self.jitter)))


# Images take 1-2 minutes, video 1-5 (DashScope suggests ~5 s and ~10-15 s polls).
POLL_POLICIES: Mapping[str, PollPolicy] = {
    "t2i": PollPolicy(first_delay=4.0, interval=5.0, jitter=0.2, deadline=15 * 60),
    "edit": PollPolicy(first_delay=4.0, interval=5.0, jitter=0.2, deadline=15 * 60),
    "i2v": PollPolicy(first_delay=15.0, interval=10.0, jitter=0.2, deadline=30 * 60),
}


@dataclass(frozen=True)
class LearnedSchedule:
    """Polls around a learned duration: sparse before it, dense around it, backing off after.

    The first look is one and a half deviations before the expected end; then every half deviation (within
    [MIN_STEP, the documents' interval]) until three deviations past it; then each wait grows by
    half, up to the documents' interval. A tight estimate thus finds a task within a fraction of
    a second of its end with two or three polls, and a loose one degrades to the documents' pace.
    """

    mean: float
    deviation: float
    interval: float  # the documents' pace: the slowest this schedule ever polls
    jitter: float = 0.1

    MIN_STEP = 0.2

    def delay(self, attempt: int, elapsed: float, rng: random.Random) -> float:
        """Seconds to wait before poll ``attempt`` (0 = the first), ``elapsed`` seconds after the submit."""
        spread = max(self.deviation, 0.05 * self.mean, 0.1)
        step = min(max(spread / 2, self.MIN_STEP), self.interval)
        if attempt == 0:
            # Jitter on the scale of the spread, not of the whole wait: a long wait with 10 %
            # jitter would scatter the first look far from where the end is expected.
            wait = max(self.MIN_STEP, self.mean - 1.5 * spread - elapsed)
            return max(0.0, wait + rng.uniform(-spread / 4, spread / 4))
        if elapsed <= self.mean + 3 * spread:
            wait = step
        else:
            # Past the expected end: grow from the dense step toward the documents' pace.
            overdue = elapsed - (self.mean + 3 * spread)
            wait = min(self.interval, step + overdue * 0.5)
        return max(0.0, wait * (1 + rng.uniform(-self.jitter, self.jitter)))


def fixed_poll_interval(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``WANFLOW_POLL_INTERVAL`` fixes the pace (tests and demos), overriding what was learned."""
    return bool((environ if environ is not None else os.environ).get("WANFLOW_POLL_INTERVAL", "").strip())


def poll_policy(kind: str, environ: Mapping[str, str] | None = None) -> PollPolicy:
    """The policy for a model kind; ``WANFLOW_POLL_INTERVAL`` (seconds, a float) sets the pace for tests and demos."""
    policy = POLL_POLICIES[kind]
    raw = (environ if environ is not None else os.environ).get("WANFLOW_POLL_INTERVAL", "").strip()
    if not raw:
        return policy
    try:
        interval = float(raw)
    except ValueError:
        raise UsageError(f"WANFLOW_POLL_INTERVAL must be a number of seconds, got '{raw}'") from None
    if interval < 0:
        raise UsageError("WANFLOW_POLL_INTERVAL must not be negative")
    return PollPolicy(first_delay=interval, interval=interval, jitter=policy.jitter, deadline=policy.deadline)


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with full jitter, for a bounded number of attempts."""

    attempts: int = 6
    base: float = 1.0
    cap: float = 30.0
    retry_after_cap: float = 120.0

    def delay(self, attempt: int, rng: random.Random, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (1 = the first retry).

        A server's Retry-After is honoured as given (capped at ``retry_after_cap`` so a bad header
        cannot stall a run); otherwise full jitter over min(cap, base * 2^(attempt-1)).
        """
        if retry_after is not None:
            return min(retry_after, self.retry_after_cap)
        return rng.uniform(0, min(self.cap, self.base * 2 ** (attempt - 1)))


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError, IndexError):
        return None
