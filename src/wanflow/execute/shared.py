"""What the instances of one run share."""

from __future__ import annotations

from dataclasses import dataclass, field

import anyio

from wanflow.execute.coordination import Coordinator, LocalCoordinator
from wanflow.execute.limits import ProviderLimits


@dataclass
class SharedState:
    """What the instances of one run share: per-key locks, provider limits, the jobs bound and
    known result URLs. One step whose request several instances share runs once."""

    limits: ProviderLimits
    jobs: anyio.CapacityLimiter
    coordinator: Coordinator = field(default_factory=LocalCoordinator)
    interim_writes: bool = True  # rewrite each record as steps finish (off for a batch: the CLI shows it live)
    key_locks: dict = field(default_factory=dict)
    known_urls: dict = field(default_factory=dict)
    generated: set = field(default_factory=set)  # keys this run generated: --fresh regenerates each once
