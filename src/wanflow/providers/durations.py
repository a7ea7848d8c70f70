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
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wanflow.pipelines.request import StepRequest

WEIGHT = 0.3  # of the newest task in the running mean and deviation
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
    if request.model.kind == "i2v":
        detail = f"{params.get('resolution')}/{params.get('duration')}s"
    else:
        detail = f"{request.model.image_count(params)}img"
    return f"{service}/{request.model.name}/{detail}"


def cache_dir(environ: dict[str, str] | None = None) -> Path:
    """The user's wanflow cache folder."""
    env = environ if environ is not None else os.environ
    if env.get("WANFLOW_CACHE_DIR"):
        return Path(env["WANFLOW_CACHE_DIR"]).expanduser()
    base = Path(env["XDG_CACHE_HOME"]).expanduser() if env.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "wanflow"


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
            try:
                raw = json.loads(self.path.read_text("utf-8"))
            except (OSError, ValueError):
                raw = {}  # no history yet, or an unreadable file: start from the documents
            self._estimates = {key: Estimate(float(v["mean"]), float(v["deviation"]), int(v["count"]))
                               for key, v in (raw.items() if isinstance(raw, dict) else [])
                               if isinstance(v, dict) and _numbers(v)}
        return self._estimates

    def get(self, key: str) -> Estimate | None:
        """The estimate for ``key``, if any task of its kind finished before."""
        with self._lock:
            return self._load().get(key)

    def record(self, key: str, seconds: float) -> Estimate:
        """Learn from one finished task (and save now and then)."""
        seconds = max(0.0, seconds)
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
        from wanflow.runner.fsutil import atomic_write_json  # the runner package imports the providers

        estimates = self._load()
        try:
            on_disk = json.loads(self.path.read_text("utf-8"))
        except (OSError, ValueError):
            on_disk = {}
        merged = {**(on_disk if isinstance(on_disk, dict) else {}),
                  **{key: {"mean": round(e.mean, 3), "deviation": round(e.deviation, 3), "count": e.count}
                     for key, e in estimates.items()}}
        try:
            atomic_write_json(self.path, merged, durable=False)
        except OSError:
            return  # a read-only cache folder costs only the learning, never the run
        self._saved_at, self._dirty = time.monotonic(), False


def _numbers(value: dict[str, Any]) -> bool:
    try:
        return float(value["mean"]) >= 0 and float(value["deviation"]) >= 0 and int(value["count"]) >= 1
    except (KeyError, TypeError, ValueError):
        return False
