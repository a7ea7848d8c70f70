"""The provider interface: how the runner asks for a generation, and what comes back.

A provider turns one resolved StepRequest into files in a work folder. The runner does the rest:
it verifies and stores the files, caches them under the request's key and hands them downstream.
Remote providers (vtrix, DashScope) plug in here with the same contract.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from wanflow.pipelines.resolve import StepRequest


@dataclass
class ProducedFile:
    """One file a provider wrote into the work folder, with its declared output field."""

    path: Path
    field: str  # "images", "video" or "text"


@dataclass
class GenerationResult:
    """What a provider produced for one request."""

    files: list[ProducedFile]
    # Facts to keep in the run record: task_id, request_id, cost_usd, preview, partial failures...
    info: dict[str, Any] = field(default_factory=dict)


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

    async def generate(self, request: StepRequest, workdir: Path) -> GenerationResult:
        """Produce the request's outputs as files in ``workdir``; raise ProviderError on failure."""
        ...
