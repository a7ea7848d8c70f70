"""Synchronous entry points for scripts and the CLI."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import anyio

from wanflow.pipelines.model import Pipeline
from wanflow.pipelines.resolve import choose_provider
from wanflow.providers import ProviderFactory, close_providers, create_providers
from wanflow.providers.base import Provider
from wanflow.runner.plan import PlannedStep, plan_pipeline
from wanflow.runner.results import RunResult
from wanflow.runner.scheduler import Reporter, Runner, RunOptions
from wanflow.runner.workspace import Workspace

T = TypeVar("T")


def providers_for(
    pipeline: Pipeline, options: RunOptions, factories: Mapping[str, ProviderFactory] | None = None,
    check_ready: bool = True,
) -> dict[str, Provider]:
    """The providers the pipeline's steps will use (raises UsageError before anything runs;
    ``check_ready=False`` lets planning go on without API keys)."""
    names = {choose_provider(pipeline, step, options.provider_override) for step in pipeline.steps.values()}
    return create_providers(names, factories, check_ready)


def run(
    pipeline: Pipeline,
    options: RunOptions | None = None,
    *,
    workspace: Workspace | None = None,
    reporter: Reporter | None = None,
    providers: Mapping[str, ProviderFactory] | None = None,
) -> RunResult:
    """Run ``pipeline`` to completion and return per-step results (blocking)."""
    options = options or RunOptions()
    workspace = workspace or Workspace.discover()
    instances = providers_for(pipeline, options, providers)
    runner = Runner(pipeline, workspace, instances, options, reporter)
    return anyio.run(closing, instances, runner.run)


async def closing(providers: Mapping[str, Provider], work: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Run ``work`` and then close the providers' connections, whatever happened."""
    try:
        return await work(*args)
    finally:
        with anyio.CancelScope(shield=True):
            await close_providers(providers)


def plan(
    pipeline: Pipeline,
    options: RunOptions | None = None,
    *,
    workspace: Workspace | None = None,
    providers: Mapping[str, ProviderFactory] | None = None,
) -> list[PlannedStep]:
    """What a run would do, step by step, without generating anything."""
    options = options or RunOptions()
    workspace = workspace or Workspace.discover()
    return plan_pipeline(pipeline, workspace, providers_for(pipeline, options, providers, check_ready=False), options)
