"""How long to wait: polling pace per kind of task, and retry backoff.

Pure functions of an attempt number and a random source, so they are tested with a fake clock
and a seeded RNG. The pace suits generation times (images 1-2 min, video 1-5 min) rather than
hammering the service, with jitter so many tasks do not poll in lockstep.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from wanflow._settings import setting


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


# Images take 1-2 minutes, video 1-5 (DashScope suggests ~5 s and ~10-15 s polls); VACE takes
# 5-10 minutes, and speech and animate videos follow their input (up to 30 s of output): an hour.
_IMAGE = PollPolicy(first_delay=4.0, interval=5.0, jitter=0.2, deadline=15 * 60)
_VIDEO = PollPolicy(first_delay=15.0, interval=10.0, jitter=0.2, deadline=30 * 60)
_LONG_VIDEO = PollPolicy(first_delay=30.0, interval=15.0, jitter=0.2, deadline=60 * 60)
POLL_POLICIES: Mapping[str, PollPolicy] = {
    "t2i": _IMAGE, "edit": _IMAGE,
    "i2v": _VIDEO, "t2v": _VIDEO, "kf2v": _VIDEO, "r2v": _VIDEO, "videoedit": _VIDEO,
    "vace": _LONG_VIDEO, "s2v": _LONG_VIDEO, "animate": _LONG_VIDEO,
}


# The official SDK's ``wait`` (dashscope 2.x, ``BaseAsyncApi.wait``): it polls at once, then after
# these waits, then every ``SDK_WAIT_LAST`` seconds (the api-docs README: 1, 1, 2, 2, 2, 4, 4, 4, 5 …).
# The learned schedule never plans more polls for a task than this would make.
SDK_WAIT_PACE = (1.0, 1.0, 2.0, 2.0, 2.0, 4.0, 4.0, 4.0)
SDK_WAIT_LAST = 5.0


def sdk_wait_polls(seconds: float) -> int:
    """Polls the official SDK's ``wait`` makes for a task that ends ``seconds`` after its first poll."""
    polls, clock = 1, 0.0
    for wait in SDK_WAIT_PACE:
        if clock >= seconds:
            return polls
        clock += wait
        polls += 1
    if clock >= seconds:
        return polls
    return polls + math.ceil((seconds - clock) / SDK_WAIT_LAST)


@dataclass(frozen=True)
class LearnedSchedule:
    """Polls around a learned duration: sparse before it, dense around it, backing off after.

    With ``spread`` the deviation (at least ``SPREAD_FLOOR`` of the mean), the expected window runs
    from ``EARLY`` spreads before the mean to ``LATE`` spreads after it.

    - Before the window a few sparse polls (at least ``SPARSE_SHARE`` of the mean apart, and never
      faster than the documents' interval) catch a task that ends unusually early.
    - In the window it polls every ``step``: ``DENSE_STEP`` (1 s), or a quarter of the spread when
      the estimate is tighter, but never below ``MIN_STEP``; and never so fine that a task ending one
      spread late would take more polls than the official SDK's ``wait`` makes for a task of the
      expected length, nor more than ``MAX_POLLS`` (a loose estimate spreads its polls; the
      documents' interval caps the step).
    - After the window each wait grows with how overdue the task is, up to the documents' interval,
      so a task that runs far longer polls at the documents' pace.
    """

    mean: float
    deviation: float
    interval: float  # the documents' pace: the slowest this schedule polls in and after the window
    jitter: float = 0.1

    MIN_STEP = 0.2  # the densest polling, in seconds
    DENSE_STEP = 1.0  # the step near the expected end: a median detection delay of about half of it
    DENSE_SHARE = 0.25  # ... or this share of the spread, when the estimate is tighter
    SPREAD_FLOOR = 0.01  # of the mean: the least uncertainty assumed (service clocks, queueing)
    SPREAD_MIN = 0.1  # seconds: the same, for very short tasks
    EARLY = 1.5  # spreads before the mean: the window opens
    LATE = 2.0  # spreads after the mean: the window closes and the waits grow
    BUDGET_LATE = 1.0  # spreads after the mean at which a task still takes no more polls than the SDK's
    SPARSE_SHARE = 1 / 3  # of the mean: the pace before the window
    OVERDUE_SHARE = 0.5  # after the window, each wait grows by this share of the time overdue
    MAX_POLLS = 60  # planned per task at most, whatever the SDK would make (remote.POLL_CAP is for stuck tasks)

    @property
    def spread(self) -> float:
        """The uncertainty the window is built on, in seconds."""
        return max(self.deviation, self.SPREAD_FLOOR * self.mean, self.SPREAD_MIN)

    @property
    def opens(self) -> float:
        """Seconds after the submit at which the dense window opens."""
        return max(0.0, self.mean - self.EARLY * self.spread)

    @property
    def closes(self) -> float:
        """Seconds after the submit at which the dense window closes."""
        return self.mean + self.LATE * self.spread

    @property
    def sparse_step(self) -> float:
        """The pace before the window."""
        return max(self.interval, self.SPARSE_SHARE * self.mean)

    @property
    def step(self) -> float:
        """The pace inside the window."""
        sparse_polls = max(0, math.floor(self.opens / self.sparse_step) - 1)
        # Less the poll that opens the window: a task ending BUDGET_LATE spreads after the mean
        # is then found within the budget.
        budget = max(1, min(sdk_wait_polls(self.mean), self.MAX_POLLS) - 1 - sparse_polls)
        spread_out = (self.EARLY + self.BUDGET_LATE) * self.spread / budget
        preferred = min(self.DENSE_STEP, self.DENSE_SHARE * self.spread)
        return min(self.interval, max(self.MIN_STEP, preferred, spread_out))

    def delay(self, attempt: int, elapsed: float, rng: random.Random) -> float:
        """Seconds to wait before poll ``attempt`` (0 = the first), ``elapsed`` seconds after the submit.

        The schedule depends on the time elapsed only; ``attempt`` is kept for the policies' interface.
        """
        spread = self.spread
        to_window = self.opens - elapsed
        if to_window > spread / 2:
            # Sparse polls evenly up to the window, no closer than the sparse step (jitter only
            # lengthens them); the one that opens the window lands with jitter on the scale of the
            # dense step, not of the whole wait (10 % of a long wait would miss the window).
            remaining = math.floor(to_window / self.sparse_step)
            if remaining <= 1:
                half = self.step / 2
                return max(self.MIN_STEP, to_window + rng.uniform(-half, half))
            return to_window / remaining * (1 + rng.uniform(0, self.jitter))
        elif elapsed <= self.closes:
            wait = self.step
        else:
            wait = min(self.interval, self.step + self.OVERDUE_SHARE * (elapsed - self.closes))
        return max(0.0, wait * (1 + rng.uniform(-self.jitter, self.jitter)))


def fixed_poll_interval(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``WANFLOW_POLL_INTERVAL`` fixes the pace (tests and demos), overriding what was learned."""
    return bool((environ if environ is not None else os.environ).get("WANFLOW_POLL_INTERVAL", "").strip())


def poll_policy(kind: str, environ: Mapping[str, str] | None = None) -> PollPolicy:
    """The policy for a model kind; ``WANFLOW_POLL_INTERVAL`` (seconds, a float) sets the pace for tests and demos."""
    policy = POLL_POLICIES[kind]
    value = setting("WANFLOW_POLL_INTERVAL", environ)  # finite, 0 to 600 s (the CLI checks it before the run)
    if value is None:
        return policy
    interval = float(value)
    return PollPolicy(first_delay=interval, interval=interval, jitter=policy.jitter, deadline=policy.deadline)


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with full jitter, for a bounded number of attempts."""

    attempts: int = 6
    base: float = 1.0
    cap: float = 30.0
    retry_after_cap: float = 120.0
    retry_after_jitter: float = 0.1  # up to this share added to a Retry-After, never taken off

    def delay(self, attempt: int, rng: random.Random, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (1 = the first retry).

        A server's Retry-After is honoured: never less, plus up to ``retry_after_jitter`` of it so
        that requests told the same time do not return in lockstep (capped at ``retry_after_cap``
        so a bad header cannot stall a run); otherwise full jitter over min(cap, base * 2^(attempt-1)).
        """
        if retry_after is not None:
            return min(self.retry_after_cap, retry_after * (1 + rng.uniform(0, self.retry_after_jitter)))
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
