"""What a step asks of its provider, and the seed derivation: the light part of resolving.

Providers, the simulator, cache keys and records use ``StepRequest`` without loading the
template engine or the catalog's rules; ``wanflow.pipelines.resolve`` builds requests and
re-exports these names.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from wanflow.artifacts import MediaInput, RemoteInput
from wanflow.catalog.spec import ModelSpec
from wanflow.pipelines.weights import MACHINE_PARAMS, machine

SEED_MAX = 2_147_483_647

__all__ = ["SEED_MAX", "StepRequest", "derive_seed"]


@dataclass(frozen=True)
class StepRequest:
    """A step with every template rendered: exactly what will be asked of the provider."""

    step_id: str
    model: ModelSpec
    provider: str
    prompt: str | None
    negative_prompt: str | None
    inputs: Mapping[str, tuple[MediaInput, ...]]
    params: Mapping[str, Any]
    explicit_params: frozenset[str]
    seed_source: str
    adaptations: tuple[Mapping[str, Any], ...] = field(default=())
    version: str | int | None = None

    @property
    def seed(self) -> int:
        """The resolved seed of a model step (an ``op:`` step has none: see ``drawn_seed``)."""
        return int(self.params["seed"])

    @property
    def drawn_seed(self) -> int | None:
        """The seed, or None for an ``op:`` step (deterministic: it draws none, and shows none)."""
        return int(self.params["seed"]) if "seed" in self.params else None

    def canonical(self) -> dict[str, Any]:
        """The request as plain JSON data: inputs by content hash, never by local path."""
        params = dict(sorted(self.params.items()))
        data: dict[str, Any] = {
            "model": self.model.name,
            "provider": self.provider,
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "inputs": {name: [_input_id(item) for item in items] for name, items in sorted(self.inputs.items())},
            "params": params,
        }
        if self.model.open_weights is not None:  # new weights at the same path or id run again
            data["weights"] = self.model.open_weights.identity
            # The machine as resolved (``device: auto`` is cuda on one host, cpu on another), not as
            # written; offload moves weights, not results, so it is not part of the request.
            for name in MACHINE_PARAMS:
                params.pop(name, None)
            data["machine"] = machine(self.params)
        if self.adaptations:
            data["adaptations"] = [dict(item) for item in self.adaptations]
        if self.version is not None:
            data["version"] = self.version
        return data


def _input_id(item: MediaInput) -> str:
    if isinstance(item, RemoteInput):
        return f"url:{item.url}"
    return f"sha256:{item.sha256}"


def derive_seed(parent: int | str, step_id: str) -> int:
    """A stable seed in 0..2147483647 for ``step_id`` under the pipeline seed ``parent``."""
    digest = hashlib.sha256(f"wanflow-seed-v1\x00{parent}\x00{step_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % (SEED_MAX + 1)
