"""The simulator's state: knobs, tasks, result files, uploaded objects and counters."""

from __future__ import annotations

import dataclasses
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

from wanflow.sim.clock import parse_offset

VTRIX_DIALECTS = ("documented", "gateway")
STATUS_WORD_STYLES = ("documented", "vendor", "novel", "mixed")
ERROR_SHAPES = ("object", "string", "numeric", "message-only")
AFTER_CREATE_ANSWERS = ("500", "504-html", "empty")
CREATE_ANSWERS = ("documented", "top-level")
LIST_FORMATS = ("strings", "documented")
INPUT_FIELDS = ("any", "catalog", "aliases")


@dataclass
class Knobs:
    """How the simulated services behave. The defaults are what the documents say."""

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
    # --- the many voices of public material (docs/simulator.md says where each shape comes from) ---
    vtrix_dialect: str = "documented"  # documented | gateway (the vendor CLI's envelope under /gateway)
    status_words: str = "documented"  # documented | vendor | novel | mixed (vtrix status words)
    status_in_output: bool = False  # vtrix status only in output[0].status, as the i2v page shows
    error_shape: str = "object"  # object | string | numeric | message-only (vtrix errors)
    suspend_rate: float = 0.0  # DashScope tasks that spend part of their life SUSPENDED
    list_clock_offset: str = "+00:00"  # DashScope's service clock zone (task list and timestamps)
    upload_ttl: float = 48 * 3600  # how long DashScope's temporary oss:// uploads live
    # Input field names where public clients disagree (r2v: reference_video_urls or reference_urls):
    # any (default) takes every documented name, catalog only wanflow's choice, aliases only the others.
    input_fields: str = "any"
    ignore_params: bool = False  # the service drops `parameters` (tests the client's result-vs-request check)
    face_check_fails: bool = False  # wan2.2-s2v-detect finds no usable face in any image (check_pass: false)
    poll_throttle_rps: float = 0.0  # per-key task-poll rate; 0 = unlimited
    # --- result downloads that go wrong (a proxy's faults, a storage's bad day) ---
    corrupt_rate: float = 0.0  # downloads with 256 flipped bytes and the right length
    short_rate: float = 0.0  # downloads cut short: the full Content-Length is announced, part of the body sent
    reset_rate: float = 0.0  # downloads whose connection resets before any body
    # --- money on the wire: answers after the task exists, fresh tasks, the documented list ---
    lose_rate: float = 0.0  # creates lost on the way in: the connection drops and no task is made
    after_create_rate: float = 0.0  # creates that make the task, then answer with after_create_answer
    after_create_answer: str = "500"  # 500 (InternalError JSON) | 504-html | empty (a 200 with no body)
    fresh_unknown_polls: int = 0  # the first N polls of a task answer UNKNOWN (DashScope) / 404 TaskNotFound (vtrix)
    create_answer: str = "documented"  # documented (output.task_id) | top-level (task_id at the top, as 1.x reads)
    list_format: str = "strings"  # strings (task_status, date strings) | documented (status, epoch ms times)
    list_account_wide: bool = False  # the task list shows every key's tasks of the account
    list_max_span_hours: float = 24.0  # wider start_time..end_time spans are refused with 400 (documented)
    list_lag_seconds: float = 0.0  # a task appears in the list this long after its create
    partial_failures: int = 0  # images of each n>1 task that fail while the task succeeds
    empty_success_rate: float = 0.0  # tasks that SUCCEED with no result at all

    def __post_init__(self) -> None:
        for name, allowed in (("vtrix_dialect", VTRIX_DIALECTS), ("status_words", STATUS_WORD_STYLES),
                              ("error_shape", ERROR_SHAPES), ("after_create_answer", AFTER_CREATE_ANSWERS),
                              ("create_answer", CREATE_ANSWERS), ("list_format", LIST_FORMATS),
                              ("input_fields", INPUT_FIELDS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {getattr(self, name)!r}")
        for name in ("error_rate", "fail_rate", "drop_rate", "suspend_rate", "corrupt_rate", "short_rate", "reset_rate",
                     "after_create_rate", "empty_success_rate", "lose_rate"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be between 0 and 1")
        if self.fresh_unknown_polls < 0 or self.partial_failures < 0 or self.list_lag_seconds < 0:
            raise ValueError("fresh_unknown_polls, partial_failures and list_lag_seconds must not be negative")
        if not 0 < self.list_max_span_hours:
            raise ValueError("list_max_span_hours must be positive")
        parse_offset(self.list_clock_offset)  # raises ValueError when malformed


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
    api_key: str = ""
    suspended: bool = False  # DashScope: spends the middle of its run SUSPENDED
    canceled_at: float | None = None
    polls: int = 0  # task polls answered so far (fresh_unknown_polls hides the first ones)
    empty: bool = False  # succeeds with no result at all (empty_success_rate)
    results: list[dict[str, Any]] | None = None  # [{"field", "url" | "text"}]
    cost_usd: float = 0.0
    rendering: threading.Lock = field(default_factory=threading.Lock)

    @property
    def canceled(self) -> bool:
        return self.canceled_at is not None


@dataclass
class SimFile:
    path: Path
    media_type: str
    expires_at: float


@dataclass
class UploadPolicy:
    """A DashScope upload certificate the simulator issued (getPolicy)."""

    policy: str
    signature: str
    access_key_id: str
    upload_dir: str
    model: str
    api_key: str
    expires_at: float  # the certificate's own validity (expire_in_seconds)


@dataclass
class UploadedObject:
    """A file stored through the temporary-upload flow, addressed as ``oss://<key>``."""

    key: str
    path: Path
    model: str
    api_key: str
    content_type: str
    expires_at: float


# The status timeline, as fractions of task_seconds. A suspended task is SUSPENDED in the middle
# of its run, long enough to be seen by a client polling once a second when task_seconds >= 1.7.
_QUEUED_UNTIL = 0.25
_SUSPENDED_SPAN = (0.3, 0.9)


class SimState:
    """Everything the simulator knows. Thread-safe enough for one event loop plus render threads."""

    def __init__(self, knobs: Knobs, workdir: Path) -> None:
        self.knobs = knobs
        self.workdir = workdir
        self.rng = random.Random(knobs.seed)
        self.tasks: dict[str, SimTask] = {}
        self.files: dict[str, SimFile] = {}
        self.policies: dict[str, UploadPolicy] = {}  # by policy text
        self.objects: dict[str, UploadedObject] = {}  # by object key
        self.oss_secret = uuid.uuid4().hex  # signs upload policies
        self.user_agents: set[str] = set()  # User-Agent headers of API calls
        self.workspaces: set[str] = set()  # X-DashScope-WorkSpace headers of API calls
        self.stats: dict[str, int] = {
            "creates": 0,
            "polls": 0,
            "downloads": 0,
            "throttles": 0,
            "poll_throttles": 0,
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
            "inputs_by_oss": 0,
            "upload_policies": 0,
            "uploads": 0,
            "sync_calls": 0,
            "prechecks": 0,  # synchronous pre-checks answered (wan2.2-s2v-detect)
            "suspended_polls": 0,
            "downloads_with_auth": 0,
            "dropped": 0,
            "downloads_reset": 0,
            "downloads_short": 0,
            "downloads_corrupted": 0,
            "answers_after_create": 0,
            "lost_before_create": 0,
            "hidden_polls": 0,
            "lists_refused": 0,
        }
        # Tasks of each model not finished yet, and the most seen at once (counted at each create):
        # what a client's concurrent-task limit must keep at or below its setting.
        self._unfinished: dict[str, set[str]] = {}
        self.peak_concurrent: dict[str, int] = {}
        self._create_buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill)
        self._poll_buckets: dict[str, tuple[float, float]] = {}
        self.lock = threading.Lock()

    # --- knobs ---------------------------------------------------------------------------------

    def roll(self, rate: float) -> bool:
        """True with probability ``rate``."""
        return rate > 0 and self.rng.random() < rate

    def take_token(self, key: str, now: float) -> float | None:
        """Spend one create token for ``key``; the seconds to wait when none is left."""
        return _take(self._create_buckets, self.knobs.throttle_rps, key, now)

    def take_poll_token(self, key: str, now: float) -> float | None:
        """Spend one poll token for ``key``; the seconds to wait when none is left."""
        return _take(self._poll_buckets, self.knobs.poll_throttle_rps, key, now)

    # --- tasks ---------------------------------------------------------------------------------

    @staticmethod
    def fingerprint(body: Any) -> str:
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def new_task(self, protocol: str, model: str, provider_model: str, body: Any, request: Any, api_key: str = "",
                 register: bool = True) -> SimTask:
        """Create a task; a body already used by a live or succeeded task counts as a duplicate create.

        A new task after a FAILED or CANCELED one is a legitimate retry (nothing was delivered or billed).
        ``register=False`` makes a task that is never listed or polled (the synchronous endpoint).
        """
        fingerprint = self.fingerprint(body)
        with self.lock:
            if register:
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
                api_key=api_key,
                suspended=protocol == "dashscope" and self.roll(self.knobs.suspend_rate),
                empty=self.roll(self.knobs.empty_success_rate),
            )
            if register:
                self.tasks[task.task_id] = task
                self._count_concurrent(task)
            self.stats["creates"] += 1
        return task

    def _count_concurrent(self, task: SimTask) -> None:
        """Note ``task`` as unfinished and update its model's peak (called under ``self.lock``)."""
        unfinished = self._unfinished.setdefault(task.model, set())
        unfinished.difference_update([task_id for task_id in unfinished
                                      if self.status(self.tasks[task_id]) in ("SUCCEEDED", "FAILED", "CANCELED")])
        unfinished.add(task.task_id)
        self.peak_concurrent[task.model] = max(self.peak_concurrent.get(task.model, 0), len(unfinished))

    def status(self, task: SimTask, now: float | None = None) -> str:
        """PENDING -> RUNNING [-> SUSPENDED -> RUNNING] -> SUCCEEDED / FAILED as time passes (CANCELED if canceled)."""
        if task.canceled:
            return "CANCELED"
        fraction = self.progress(task, now)
        if fraction < _QUEUED_UNTIL:
            return "PENDING"
        if fraction < 1:
            if task.suspended and _SUSPENDED_SPAN[0] <= fraction < _SUSPENDED_SPAN[1]:
                return "SUSPENDED"
            return "RUNNING"
        return "FAILED" if task.will_fail else "SUCCEEDED"

    def hidden(self, task: SimTask) -> bool:
        """Count a poll of ``task``; True while it is one of the first ``fresh_unknown_polls`` (not yet visible)."""
        with self.lock:
            task.polls += 1
            if task.polls <= self.knobs.fresh_unknown_polls:
                self.stats["hidden_polls"] += 1
                return True
        return False

    def listed(self, task: SimTask, now: float | None = None) -> bool:
        """Whether the task list shows ``task`` yet (``list_lag_seconds`` after its create)."""
        return (now or time.time()) - task.created_at >= self.knobs.list_lag_seconds

    def progress(self, task: SimTask, now: float | None = None) -> float:
        """How far the task is, 0..1 (1 once it has finished)."""
        duration = self.knobs.task_seconds
        if duration <= 0:
            return 1.0
        return min(1.0, max(0.0, ((now or time.time()) - task.created_at) / duration))

    def scheduled_at(self, task: SimTask) -> float:
        """When the task left the queue (it may not have yet)."""
        return task.created_at + self.knobs.task_seconds * _QUEUED_UNTIL

    def ended_at(self, task: SimTask) -> float:
        """When the task finished (or was canceled)."""
        return task.canceled_at if task.canceled_at is not None else task.created_at + self.knobs.task_seconds

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
        knobs = {name: value for name, value in dataclasses.asdict(self.knobs).items() if name != "keys"}
        with self.lock:
            return {**self.stats, "peak_concurrent": dict(self.peak_concurrent), "tasks": self.counts_by_status(),
                    "knobs": knobs}


def _take(buckets: dict[str, tuple[float, float]], rate: float, key: str, now: float) -> float | None:
    """A token bucket of ``rate`` per second holding at most ``rate`` tokens (at least one)."""
    if rate <= 0:
        return None
    capacity = max(1.0, rate)
    tokens, last = buckets.get(key, (capacity, now))
    tokens = min(capacity, tokens + (now - last) * rate)
    if tokens >= 1:
        buckets[key] = (tokens - 1, now)
        return None
    buckets[key] = (tokens, now)
    return (1 - tokens) / rate


def retry_after_header(seconds: float) -> str:
    """Retry-After in whole seconds (at least 1)."""
    return str(max(1, math.ceil(seconds)))
