"""Providers: who generates a step's outputs.

``local`` (the default) renders free offline previews; ``dashscope`` and ``vtrix`` are the paid
Wan services, behind the same ``Provider`` interface.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from wanflow._exceptions import UsageError
from wanflow.providers.base import GenerationResult, ProducedFile, Provider

ProviderFactory = Callable[[], Provider]


# Each provider module is imported when its provider is made: a local run needs no HTTP client.
def _local() -> Provider:
    from wanflow.providers.local import LocalPreviewProvider

    return LocalPreviewProvider()


def _dashscope() -> Provider:
    from wanflow.providers.dashscope import dashscope_provider

    return dashscope_provider()


def _vtrix() -> Provider:
    from wanflow.providers.vtrix import vtrix_provider

    return vtrix_provider()


BUILTIN_PROVIDERS: Mapping[str, ProviderFactory] = {
    "local": _local,
    "dashscope": _dashscope,
    "vtrix": _vtrix,
}
PAID_PROVIDERS = frozenset({"dashscope", "vtrix"})


def create_providers(names: set[str], factories: Mapping[str, ProviderFactory] | None = None,
                     check_ready: bool = True) -> dict[str, Provider]:
    """Instantiate the providers a run needs; an unavailable one (unknown, or without its API key)
    is a UsageError before anything runs. ``check_ready=False`` is for planning, which calls no one."""
    factories = factories if factories is not None else BUILTIN_PROVIDERS
    providers: dict[str, Provider] = {}
    for name in sorted(names):
        factory = factories.get(name)
        if factory is None:
            raise UsageError(f"unknown provider '{name}' (available: {', '.join(sorted(factories))})")
        providers[name] = factory()
        ready = getattr(providers[name], "check_ready", None)
        if check_ready and ready is not None:
            ready()
    return providers


async def close_providers(providers: Mapping[str, Provider]) -> None:
    """Release the providers' connections (those that hold any)."""
    for provider in providers.values():
        closer = getattr(provider, "aclose", None)
        if closer is not None:
            await closer()


__all__ = ["BUILTIN_PROVIDERS", "PAID_PROVIDERS", "GenerationResult", "ProducedFile", "Provider", "close_providers", "create_providers"]
