"""The provider interface: how the runner asks for a generation, and what comes back.

A provider turns one resolved StepRequest into files in a work folder. The runner does the rest:
it verifies and stores the files, caches them under the request's key and hands them downstream.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from wanflow.pipelines.request import StepRequest


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
    # Facts kept in the run record: task_id, request_ids, cost_usd, preview, partial failures...
    info: dict[str, Any] = field(default_factory=dict)
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
    journal: Any = None
    resubmit_unknown: bool = False
    cancel_on_interrupt: bool = False
    before_create: Callable[[], Awaitable[None]] | None = None  # waits for a submit token
    # Why no new task may be created now (an earlier result of this provider and model ignored
    # its request), or None; resuming an existing task is still allowed.
    create_blocked: Callable[[], str | None] | None = None
    on_throttled: Callable[[], None] | None = None  # a create got 429: slow the submit rate down
    on_accepted: Callable[[], None] | None = None  # a create got a task id: the rate may recover
    uploads: Any = None  # an UploadCache: local files already uploaded to the service, by content hash


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
