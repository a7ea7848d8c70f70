"""Providers: who generates a step's outputs.

``local`` (the default) renders free offline previews; ``dashscope`` and ``vtrix`` are the paid
Wan services; ``diffusers`` runs open-weights Wan on your own GPU; all behind the same
``Provider`` interface.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from wanflow._exceptions import UsageError
from wanflow.project.settings import service_config
from wanflow.providers.base import Provider

# A factory makes a provider from the project's wanflow.toml (as a dict): settings come from the
# pipeline's project, never from the current folder.
ProviderFactory = Callable[[Mapping[str, Any]], Provider]


# Each provider module is imported when its provider is made: a local run needs no HTTP client.
def _local(project: Mapping[str, Any]) -> Provider:
    from wanflow.providers.local import LocalPreviewProvider

    return LocalPreviewProvider()


def _dashscope(project: Mapping[str, Any]) -> Provider:
    from wanflow.providers.dashscope import dashscope_provider

    return dashscope_provider(service_config("dashscope", project=project))


def _vtrix(project: Mapping[str, Any]) -> Provider:
    from wanflow.providers.vtrix import vtrix_provider

    return vtrix_provider(service_config("vtrix", project=project))


def _diffusers(project: Mapping[str, Any]) -> Provider:
    from wanflow.providers.diffusers.provider import DiffusersProvider

    return DiffusersProvider()


def _op(project: Mapping[str, Any]) -> Provider:
    from wanflow.providers.ops import OpProvider

    return OpProvider()


BUILTIN_PROVIDERS: Mapping[str, ProviderFactory] = {
    "local": _local,
    "op": _op,
    "dashscope": _dashscope,
    "vtrix": _vtrix,
    "diffusers": _diffusers,
}
PAID_PROVIDERS = frozenset({"dashscope", "vtrix"})


def create_providers(names: set[str], factories: Mapping[str, ProviderFactory] | None = None,
                     check_ready: bool = True, project: Mapping[str, Any] | None = None) -> dict[str, Provider]:
    """Instantiate the providers a run needs, with the settings of ``project`` (its wanflow.toml);
    an unavailable one (unknown, or without its API key) is a UsageError before anything runs.
    ``check_ready=False`` is for planning, which calls no one."""
    factories = factories if factories is not None else BUILTIN_PROVIDERS
    providers: dict[str, Provider] = {}
    for name in sorted(names):
        factory = factories.get(name)
        if factory is None:
            raise UsageError(f"unknown provider '{name}' (available: {', '.join(sorted(factories))})")
        providers[name] = factory(project if project is not None else {})
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
