"""The application: plan, explain and run a pipeline (with its matrix or batch instances), for
scripts, notebooks and the CLI alike. The CLI only parses arguments and prints what these return.

    plan = wanflow.plan(pipeline, batch="rows.csv")          # every unit, its decision and cost
    result = wanflow.run(pipeline, batch="rows.csv", budget=2.0)
    result = await wanflow.arun(pipeline)                     # inside a running event loop (Jupyter)

``run`` builds the same ``Plan`` that ``plan`` returns, checks the budget against it and executes
it; nothing decides twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import anyio
import sniffio

from wanflow._exceptions import UsageError
from wanflow.execute.batch import BatchResult, run_instances
from wanflow.execute.instance import Reporter, Runner, RunOptions, SilentReporter
from wanflow.pipelines.instances import Instance, RejectedRow
from wanflow.pipelines.model import Pipeline
from wanflow.pipelines.resolve import choose_provider
from wanflow.planning.planner import Plan, build_plan
from wanflow.providers import ProviderFactory, close_providers, create_providers
from wanflow.providers.base import Provider
from wanflow.records.results import RunResult
from wanflow.state.workspace import Workspace

T = TypeVar("T")


def providers_for(
    pipeline: Pipeline, options: RunOptions, factories: Mapping[str, ProviderFactory] | None = None,
    check_ready: bool = True,
) -> dict[str, Provider]:
    """The providers the pipeline's steps will use (raises UsageError before anything runs;
    ``check_ready=False`` lets planning go on without API keys)."""
    names = {choose_provider(pipeline, step, options.provider_override) for step in pipeline.steps.values()}
    return create_providers(names, factories, check_ready)


def instances_for(pipeline: Pipeline, batch: str | Path | None = None, *, strict: bool = False,
                  delimiter: str | None = None) -> tuple[list[Instance] | None, list[RejectedRow]]:
    """The matrix combinations or batch rows to run (None for a plain pipeline), and rejected rows."""
    if batch is None and not pipeline.matrix:
        return None, []
    from wanflow.pipelines.instances import expand

    return expand(pipeline, Path(batch) if batch is not None else None, strict=strict, delimiter=delimiter)


def plan(
    pipeline: Pipeline,
    options: RunOptions | None = None,
    *,
    batch: str | Path | None = None,
    workspace: Workspace | None = None,
    providers: Mapping[str, ProviderFactory] | None = None,
) -> Plan:
    """What a run would do, unit by unit, with each unit's decision and estimated cost (no API key needed)."""
    options = options or RunOptions()
    workspace = workspace or Workspace.discover()
    instances, rejected = instances_for(pipeline, batch)
    return build_plan(pipeline, workspace, providers_for(pipeline, options, providers, check_ready=False), options,
                      instances, rejected)


def explain(
    pipeline: Pipeline,
    step: str | None = None,
    options: RunOptions | None = None,
    *,
    batch: str | Path | None = None,
    workspace: Workspace | None = None,
    providers: Mapping[str, ProviderFactory] | None = None,
) -> dict[str, list[Any]]:
    """Why each unit (of each instance) would run or hit the cache, naming what changed."""
    from wanflow.planning.explain import explain_plan

    options = options or RunOptions()
    workspace = workspace or Workspace.discover()
    the_plan = plan(pipeline, options, batch=batch, workspace=workspace, providers=providers)
    return explain_plan(the_plan, workspace, only=step)


def run(
    pipeline: Pipeline,
    options: RunOptions | None = None,
    *,
    batch: str | Path | None = None,
    budget: float | None = None,
    workspace: Workspace | None = None,
    reporter: Reporter | None = None,
    providers: Mapping[str, ProviderFactory] | None = None,
) -> RunResult | BatchResult:
    """Run ``pipeline`` (every matrix combination or batch row) to completion (blocking).

    Returns a RunResult, or a BatchResult for a matrix or batch. Inside a running event loop
    (a notebook), use ``await wanflow.arun(...)``.
    """
    try:
        sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        return anyio.run(lambda: arun(pipeline, options, batch=batch, budget=budget, workspace=workspace,
                                      reporter=reporter, providers=providers))
    raise UsageError("wanflow.run() blocks, and an event loop is already running here (a notebook?); "
                     "use `await wanflow.arun(...)` instead")


async def arun(
    pipeline: Pipeline,
    options: RunOptions | None = None,
    *,
    batch: str | Path | None = None,
    budget: float | None = None,
    workspace: Workspace | None = None,
    reporter: Reporter | None = None,
    providers: Mapping[str, ProviderFactory] | None = None,
) -> RunResult | BatchResult:
    """``run`` for a running event loop (asyncio or trio, e.g. Jupyter): ``await wanflow.arun(pipeline)``."""
    options = options or RunOptions()
    workspace = workspace or Workspace.discover()
    instances, rejected = instances_for(pipeline, batch)
    live = providers_for(pipeline, options, providers, check_ready=False)
    the_plan = build_plan(pipeline, workspace, live, options, instances, rejected)
    the_plan.check_budget(budget)  # before asking for keys: a budget needs none
    for provider in live.values():
        ready = getattr(provider, "check_ready", None)
        if ready is not None:
            ready()
    return await execute(the_plan, workspace, live, reporter)


async def execute(the_plan: Plan, workspace: Workspace, providers: Mapping[str, Provider],
                  reporter: Reporter | None = None, shared: Any = None,
                  on_instance_done: Callable[[str, RunResult], None] | None = None) -> RunResult | BatchResult:
    """Run ``the_plan``: the lockfile preparation (seeds, ``--frozen``) it made is the one used."""
    result = await _execute(the_plan, workspace, providers, reporter, shared, on_instance_done)
    store = workspace.shared
    if store is not None:  # run records go to the shared store too
        runs = result.instances.values() if isinstance(result, BatchResult) else [result]
        for one in runs:
            store.push_run(workspace.runs_dir / f"{one.run_id}.json")
    return result


async def _execute(the_plan: Plan, workspace: Workspace, providers: Mapping[str, Provider],
                   reporter: Reporter | None, shared: Any,
                   on_instance_done: Callable[[str, RunResult], None] | None) -> RunResult | BatchResult:
    from wanflow.execute.cluster.driver import address_for

    address = address_for(the_plan.options.cluster, workspace.config())
    if address is not None:
        from wanflow.execute.cluster.driver import execute_on_cluster

        return await closing(providers, execute_on_cluster, the_plan, workspace, providers, address, reporter,
                             on_instance_done)
    if the_plan.batch:
        return await closing(providers, run_instances, the_plan.instances, workspace, providers, the_plan.options,
                             reporter or SilentReporter(), the_plan.rejected, shared, on_instance_done, the_plan.locked)
    runner = Runner(the_plan.pipeline, workspace, providers, the_plan.options, reporter)
    runner.prepared = {"locked": the_plan.locked.get(the_plan.options.instance)}
    return await closing(providers, runner.run)


async def closing(providers: Mapping[str, Provider], work: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Run ``work`` and then close the providers' connections, whatever happened."""
    try:
        return await work(*args)
    finally:
        with anyio.CancelScope(shield=True):
            await close_providers(providers)
