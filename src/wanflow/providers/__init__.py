"""Providers: who generates a step's outputs.

``local`` (the default) renders free offline previews. The paid Wan services plug in behind the
same ``Provider`` interface.
"""

from __future__ import annotations

from typing import Callable, Mapping

from wanflow._exceptions import UsageError
from wanflow.providers.base import GenerationResult, ProducedFile, Provider
from wanflow.providers.local import LocalPreviewProvider

ProviderFactory = Callable[[], Provider]

BUILTIN_PROVIDERS: Mapping[str, ProviderFactory] = {"local": LocalPreviewProvider}
# Named in the DSL already so pipelines can be written for them; their clients are not built yet.
PLANNED_PROVIDERS = ("dashscope", "vtrix")


def create_providers(names: set[str], factories: Mapping[str, ProviderFactory] | None = None) -> dict[str, Provider]:
    """Instantiate the providers a run needs; an unavailable one is a UsageError before anything runs."""
    factories = factories if factories is not None else BUILTIN_PROVIDERS
    providers: dict[str, Provider] = {}
    for name in sorted(names):
        factory = factories.get(name)
        if factory is None:
            if name in PLANNED_PROVIDERS:
                raise UsageError(
                    f"provider '{name}' is not available in this version of wanflow yet; "
                    "use --provider local for free previews"
                )
            raise UsageError(f"unknown provider '{name}' (available: {', '.join(sorted(factories))})")
        providers[name] = factory()
    return providers


__all__ = ["BUILTIN_PROVIDERS", "GenerationResult", "ProducedFile", "Provider", "create_providers"]
