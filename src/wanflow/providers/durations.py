"""How long tasks take, learned per service, model and duration-changing parameters.

Durations belong to the service, not to a project, so the estimates live in the user's cache
folder (``$WANFLOW_CACHE_DIR``, else ``$XDG_CACHE_HOME/wanflow``, else ``~/.cache/wanflow``) in
``durations.json``, shared by every project. Each estimate is an exponentially weighted mean and
mean absolute deviation: recent tasks count most, so a service that gets slower is followed
within a few tasks. A first run ever has no estimate and polls as the documents suggest; each
task that finishes teaches the rest of the run.
"""

from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wanflow._bounded import read_bounded
from wanflow.pipelines.request import StepRequest
from wanflow.project.locate import cache_dir

WEIGHT = 0.3  # of the newest task in the running mean and deviation
# durations.json is read back, so a learned value is clamped to what a task can take: a mean of
# 1e300 or inf would otherwise make the first poll of a paid task wait forever.
MAX_SECONDS = 600.0  # ten minutes: longer than Wan tasks take; the schedule then polls within 200 s
MAX_COUNT = 1_000_000
MAX_FILE_BYTES = 4_000_000
SAVE_EVERY = 2.0  # seconds between writes of the file, at most


@dataclass(frozen=True)
class Estimate:
    """A learned duration: mean and mean absolute deviation in seconds, from ``count`` tasks."""

    mean: float
    deviation: float
    count: int


def duration_key(service: str, request: StepRequest) -> str:
    """The estimate a request's task belongs to: service, model, and what changes its duration."""
    params = request.params
    if request.model.video:
        detail = f"{request.model.resolution_tier(params)}/{params.get('duration')}s"
    else:
        detail = f"{request.model.image_count(params)}img"
    return f"{service}/{request.model.name}/{detail}"


class DurationBook:
    """Estimates by key, read once from the user's cache and written back as tasks finish."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or cache_dir() / "durations.json"
        self._estimates: dict[str, Estimate] | None = None
        self._lock = threading.Lock()
        self._saved_at = 0.0
        self._dirty = False

    def _load(self) -> dict[str, Estimate]:
        if self._estimates is None:
            raw = _read(self.path)  # {} without history, or for an unreadable file: start from the documents
            self._estimates = {}
            for key, value in raw.items():
                estimate = _clamped(value)
                if estimate is not None:
                    self._estimates[str(key)] = estimate
        return self._estimates

    def get(self, key: str) -> Estimate | None:
        """The estimate for ``key``, if any task of its kind finished before."""
        with self._lock:
            return self._load().get(key)

    def record(self, key: str, seconds: float) -> Estimate:
        """Learn from one finished task (and save now and then)."""
        seconds = min(max(0.0, seconds), MAX_SECONDS) if math.isfinite(seconds) else MAX_SECONDS
        with self._lock:
            estimates = self._load()
            old = estimates.get(key)
            if old is None:
                new = Estimate(seconds, seconds * 0.25, 1)
            else:
                mean = old.mean + WEIGHT * (seconds - old.mean)
                deviation = old.deviation + WEIGHT * (abs(seconds - old.mean) - old.deviation)
                new = Estimate(mean, deviation, old.count + 1)
            estimates[key] = new
            self._dirty = True
            if time.monotonic() - self._saved_at >= SAVE_EVERY:
                self._save()
        return new

    def flush(self) -> None:
        """Write what was learned since the last save."""
        with self._lock:
            if self._dirty:
                self._save()

    def _save(self) -> None:
        from wanflow._fs import atomic_write_json  # the runner package imports the providers

        estimates = self._load()
        on_disk = _read(self.path)
        merged = {**on_disk,
                  **{key: {"mean": round(e.mean, 3), "deviation": round(e.deviation, 3), "count": e.count}
                     for key, e in estimates.items()}}
        try:
            atomic_write_json(self.path, merged, durable=False)
        except OSError:
            return  # a read-only cache folder costs only the learning, never the run
        self._saved_at, self._dirty = time.monotonic(), False


def _read(path: Path) -> dict[str, Any]:
    """The file as a mapping; {} when it is missing, unreadable, not a regular file or not JSON."""
    try:
        raw = json.loads(read_bounded(path, MAX_FILE_BYTES).decode("utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    return raw if isinstance(raw, dict) else {}


def _clamped(value: Any) -> Estimate | None:
    """A stored estimate within sane bounds, or None when it is not one (wrong types, not finite)."""
    if not isinstance(value, dict):
        return None
    try:
        mean, deviation, count = float(value["mean"]), float(value["deviation"]), int(value["count"])
    except (KeyError, TypeError, ValueError, OverflowError):
        return None
    if not (math.isfinite(mean) and math.isfinite(deviation)) or count < 1:
        return None
    return Estimate(min(max(mean, 0.0), MAX_SECONDS), min(max(deviation, 0.0), MAX_SECONDS), min(count, MAX_COUNT))
