"""The simulator's state: knobs, tasks, result files and counters."""

from __future__ import annotations

import hashlib
import json
import math
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Knobs:
    """How the simulated services behave."""

    task_seconds: float = 2.0
    error_rate: float = 0.0  # transient 5xx before any task is created
    throttle_rps: float = 0.0  # per-key create rate; 0 = unlimited
    fail_rate: float = 0.0  # tasks that end FAILED with an internal error
    drop_rate: float = 0.0  # creates that make a task, then drop the connection before answering
    url_ttl: float = 24 * 3600  # how long result URLs stay valid
    keys: tuple[str, ...] = ("sim-key",)
    seed: int | None = None
    moderate: str | None = None  # prompts containing this word are refused with DataInspectionFailed
    tiny_results: bool = False  # plain 512x512 images instead of rendered previews (benchmarks measure the client, not rendering)


@dataclass
class SimTask:
    """One task, in either protocol."""

    task_id: str
    protocol: str  # dashscope | vtrix
    model: str  # catalog name
    provider_model: str  # the service's model id
    fingerprint: str
    created_at: float
    will_fail: bool
    request: Any  # the StepRequest the renderer gets
    request_id: str
    canceled: bool = False
    results: list[dict[str, Any]] | None = None  # [{"field", "url" | "text", "path"}]
    cost_usd: float = 0.0
    rendering: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class SimFile:
    path: Path
    media_type: str
    expires_at: float


class SimState:
    """Everything the simulator knows. Thread-safe enough for one event loop plus render threads."""

    def __init__(self, knobs: Knobs, workdir: Path) -> None:
        self.knobs = knobs
        self.workdir = workdir
        self.rng = random.Random(knobs.seed)
        self.tasks: dict[str, SimTask] = {}
        self.files: dict[str, SimFile] = {}
        self.stats: dict[str, int] = {
            "creates": 0,
            "polls": 0,
            "downloads": 0,
            "throttles": 0,
            "errors_injected": 0,
            "failures_injected": 0,
            "duplicate_creates": 0,
            "rejected": 0,
            "unauthorized": 0,
            "cancels": 0,
            "lists": 0,
            "moderated": 0,
            "inputs_by_url": 0,
            "inputs_by_data_uri": 0,
            "downloads_with_auth": 0,
            "dropped": 0,
        }
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill)
        self.lock = threading.Lock()

    # --- knobs ---------------------------------------------------------------------------------

    def roll(self, rate: float) -> bool:
        """True with probability ``rate``."""
        return rate > 0 and self.rng.random() < rate

    def take_token(self, key: str, now: float) -> float | None:
        """Spend one create token for ``key``; the seconds to wait when none is left."""
        rate = self.knobs.throttle_rps
        if rate <= 0:
            return None
        tokens, last = self._buckets.get(key, (rate, now))
        tokens = min(rate, tokens + (now - last) * rate)
        if tokens >= 1:
            self._buckets[key] = (tokens - 1, now)
            return None
        self._buckets[key] = (tokens, now)
        return (1 - tokens) / rate

    # --- tasks ---------------------------------------------------------------------------------

    @staticmethod
    def fingerprint(body: Any) -> str:
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def add_task(self, protocol: str, model: str, provider_model: str, body: Any, request: Any) -> SimTask:
        """Create a task; a body already used by a live or succeeded task counts as a duplicate create.

        A new task after a FAILED or CANCELED one is a legitimate retry (nothing was delivered or billed).
        """
        fingerprint = self.fingerprint(body)
        with self.lock:
            for task in self.tasks.values():
                if task.fingerprint == fingerprint and self.status(task) not in ("FAILED", "CANCELED"):
                    self.stats["duplicate_creates"] += 1
                    break
            will_fail = self.roll(self.knobs.fail_rate)
            if will_fail:
                self.stats["failures_injected"] += 1
            task = SimTask(
                task_id=str(uuid.uuid4()),
                protocol=protocol,
                model=model,
                provider_model=provider_model,
                fingerprint=fingerprint,
                created_at=time.time(),
                will_fail=will_fail,
                request=request,
                request_id=str(uuid.uuid4()),
            )
            self.tasks[task.task_id] = task
            self.stats["creates"] += 1
        return task

    def status(self, task: SimTask, now: float | None = None) -> str:
        """PENDING -> RUNNING -> SUCCEEDED / FAILED as time passes (CANCELED if canceled)."""
        if task.canceled:
            return "CANCELED"
        elapsed = (now or time.time()) - task.created_at
        duration = self.knobs.task_seconds
        if elapsed < duration * 0.25:
            return "PENDING"
        if elapsed < duration:
            return "RUNNING"
        return "FAILED" if task.will_fail else "SUCCEEDED"

    def counts_by_status(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for task in list(self.tasks.values()):
            status = self.status(task)
            counts[status] = counts.get(status, 0) + 1
        return counts

    # --- files ---------------------------------------------------------------------------------

    def publish(self, path: Path, media_type: str) -> str:
        """Serve ``path`` under a token until the URL expires; returns the token path."""
        token = uuid.uuid4().hex
        self.files[token] = SimFile(path, media_type, time.time() + self.knobs.url_ttl)
        return f"/_sim/files/{token}/{path.name}"

    def file(self, token: str) -> SimFile | None:
        return self.files.get(token)

    def snapshot(self) -> dict[str, Any]:
        """The /_sim/stats document."""
        with self.lock:
            return {**self.stats, "tasks": self.counts_by_status(), "knobs": {
                "task_seconds": self.knobs.task_seconds,
                "error_rate": self.knobs.error_rate,
                "throttle_rps": self.knobs.throttle_rps,
                "fail_rate": self.knobs.fail_rate,
                "drop_rate": self.knobs.drop_rate,
                "url_ttl": self.knobs.url_ttl,
            }}


def retry_after_header(seconds: float) -> str:
    """Retry-After in whole seconds (at least 1)."""
    return str(max(1, math.ceil(seconds)))
