"""The provider interface: how the runner asks for a generation, and what comes back.

A provider turns one resolved StepRequest into files in a work folder. The runner does the rest:
it verifies and stores the files, caches them under the request's key and hands them downstream.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypedDict, runtime_checkable

from wanflow.pipelines.request import StepRequest
from wanflow.state.journal import JournalEntry


class TaskInfo(TypedDict, total=False):
    """What a provider tells the run record about one generation (``GenerationResult.info``).

    The runner adds ``result_urls`` (sha256 -> the URL a file came from), ``result_mismatch``
    (what the result check found) and ``traceback`` (a bug's trace) to the record's copy.
    """

    preview: bool  # the local provider: a stand-in, not a model's output
    renderer: str  # the local renderer's version
    task_id: str  # the service's id of the task that delivered
    task_ids: list[str]  # every task this generation created, resumed or adopted
    request_ids: list[str]  # the service's request ids, for support tickets
    request_fingerprint: str  # the sha256 of the create body, as the journal keeps it
    task_sent_at: float  # when the create that made the task was sent (epoch seconds)
    task_ended_at: float  # when the service says the task ended
    polls: int  # status polls made
    cost_usd: float
    cost_source: str  # "reported (...)" by the service, or "estimated (list price)"
    envelope: str  # the vtrix request envelope that was sent
    resumed: bool  # an earlier run's task, polled again (nothing paid now)
    adopted: bool  # a lost create's task, found in the service's task list (nothing paid now)
    deliberate_resubmission: str  # why the user chose to pay again (--resubmit-unknown)
    absence_proven: str  # the proof that a lost create never arrived, before creating once
    absence_proven_before: bool
    partial_failures: list[str]  # sub-results that failed in a task that succeeded
    extra_outputs: list[dict[str, str]]  # outputs kept only by URL (a vtrix audio item)
    op: str  # an op: step's operation (the op provider)
    ops_version: str  # the ops' version (salts their cache keys)
    precheck: dict[str, Any]  # the documented check run before the paid create (s2v's face check)
    adaptations: list[dict[str, object]]  # what an op did to fit its inputs (a concat's scaled clip)
    warnings: list[str]
    urls_expire_at: float  # when the result URLs stop working
    result_urls: dict[str, str]
    result_mismatch: list[str]
    traceback: str
    weights: str | None  # diffusers: the weights' identity (content hash or hub commit)
    weights_source: str  # diffusers: the folder or repo id the weights came from
    device: str  # diffusers: where it ran (cuda, cpu, ...)
    dtype: str  # diffusers: the precision it ran in
    diffusers: str  # diffusers: the library's version
    torch: str  # diffusers: torch's version


class TaskJournal(Protocol):
    """The durable record of one cache key's paid task, as a paid provider uses it (the runner
    hands a ``state.journal.KeyJournal``): written before and after every create call."""

    def pending(self) -> JournalEntry | None:
        """The entry of a create that may have been sent (or a task that exists), if any."""
        ...

    def intent(self, fingerprint: str, deliberate: str | None = None) -> JournalEntry:
        """Record, durably, that a create is about to be sent (blocking)."""
        ...

    async def record_intent(self, fingerprint: str, deliberate: str | None = None) -> JournalEntry:
        """``intent`` off the event loop."""
        ...

    async def record_submitted(self, entry: JournalEntry, task_id: str, request_id: str | None) -> None:
        """Record, durably, the task id a create answered with."""
        ...

    def submitted(self, entry: JournalEntry, task_id: str, request_id: str | None) -> None:
        """``record_submitted``, blocking."""
        ...

    def lost(self, entry: JournalEntry, ended_at: float | None, cost_usd: float | None) -> None:
        """The task succeeded but its result could not be downloaded (its URL is gone)."""
        ...

    def claimed_task_ids(self) -> set[str]:
        """Every task id this workspace already owns (never adopted again)."""
        ...

    def known_task_times(self) -> dict[str, float]:
        """Task id -> when its create was sent, for this workspace's known tasks (the proof of absence)."""
        ...

    def clear(self) -> None:
        """The paid work is stored: nothing to resume."""
        ...


class UploadRecords(Protocol):
    """Local files already uploaded to a service, by content hash, while the service keeps them."""

    def get(self, sha256: str, model: str, now: float | None = None) -> str | None:
        """The ``oss://`` name of an upload still alive, or None."""
        ...

    def put(self, sha256: str, model: str, url: str, expires_at: float) -> None:
        """Remember an upload until ``expires_at``."""
        ...


@dataclass
class ProducedFile:
    """One file a provider wrote into the work folder, with its output field."""

    path: Path
    field: str  # "images", "video" or "text"
    source_url: str | None = None  # where a remote provider downloaded it from


@dataclass
class GenerationResult:
    """What a provider produced for one request."""

    files: list[ProducedFile]
    info: TaskInfo = field(default_factory=lambda: TaskInfo())  # facts kept in the run record
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RemoteUrl:
    """A result URL a service gave for an artifact, usable as input until it expires."""

    provider: str
    url: str
    expires_at: float


@dataclass
class GenerationContext:
    """What a provider gets besides the request.

    ``workdir``: where to write files. ``cache_key``: the step's key.
    ``log``: a line for the progress display and the record (task ids, request ids).
    ``known_urls``: sha256 -> still-valid service URL of an upstream artifact.
    ``journal``: the durable record of this key's paid task (a ``KeyJournal``), None for free providers.
    ``resubmit_unknown``: the user allows a new create when an earlier one's outcome is unknown.
    ``cancel_on_interrupt``: cancel a still-queued remote task when the run is interrupted.
    ``create_blocked``: asked before every create; a reason stops it (the result check tripped).
    ``uploads``: where uploaded files are remembered while the service keeps them (None: not at all).
    """

    workdir: Path
    cache_key: str = ""
    log: Callable[[str], None] = lambda message: None
    known_urls: Mapping[str, RemoteUrl] = field(default_factory=dict)
    journal: TaskJournal | None = None
    resubmit_unknown: bool = False
    cancel_on_interrupt: bool = False
    before_create: Callable[[], Awaitable[None]] | None = None  # waits for a submit token
    # Why no new task may be created now (an earlier result of this provider and model ignored
    # its request), or None; resuming an existing task is still allowed.
    create_blocked: Callable[[], str | None] | None = None
    on_throttled: Callable[[], None] | None = None  # a create got 429: slow the submit rate down
    on_accepted: Callable[[], None] | None = None  # a create got a task id: the rate may recover
    uploads: UploadRecords | None = None  # local files already uploaded to the service, by content hash

    def paid_journal(self) -> TaskJournal:
        """The task journal; a paid provider never works without one (nothing would stop a second payment)."""
        if self.journal is None:
            from wanflow._exceptions import ProviderError

            raise ProviderError("a paid provider was called without its task journal; nothing was sent")
        return self.journal


@runtime_checkable
class Provider(Protocol):
    """Generates the outputs of a request.

    ``name`` is what pipelines and ``--provider`` call it; ``paid`` marks providers that spend
    money; ``cache_salt`` is folded into every cache key so results of different renderers (or a
    renderer's versions) never mix.
    """

    name: str
    paid: bool
    cache_salt: str

    async def generate(self, request: StepRequest, context: GenerationContext) -> GenerationResult:
        """Produce the request's outputs as files in ``context.workdir``; raise ProviderError on failure."""
        ...
