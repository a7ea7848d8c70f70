"""Run many instances of a pipeline (matrix combinations, batch rows) as one run.

All instances share the cache, the per-key locks, the provider limits and the jobs bound, so a
step whose resolved request is the same in several instances runs once, and the service sees
exactly the configured pressure however many sub-tasks are queued.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import anyio

from wanflow.execute.coordination import Coordinator, LocalCoordinator
from wanflow.execute.instance import Reporter, Runner
from wanflow.execute.limits import ProviderLimits
from wanflow.execute.shared import SharedState
from wanflow.execute.signals import stop_on_signal
from wanflow.pipelines.instances import RejectedRow
from wanflow.planning.options import RunOptions
from wanflow.planning.planner import Plan
from wanflow.providers.base import Provider
from wanflow.records.abandoned import running_in
from wanflow.records.results import RunResult, StepResult
from wanflow.state.store_use import using_store
from wanflow.state.workspace import Workspace


@dataclass
class BatchResult:
    """Every instance's result, and the rows that could not run."""

    instances: dict[str, RunResult] = field(default_factory=dict)
    rejected: list[RejectedRow] = field(default_factory=list)
    interrupted: bool = False
    report_path: Path | None = None  # out/<pipeline>/index.html, once written
    report_error: str | None = None  # why the report was not written

    @property
    def ok(self) -> bool:
        return not self.rejected and not self.interrupted and all(result.ok for result in self.instances.values())


class _Prefixed:
    """Reports one instance's steps as ``instance/step``."""

    def __init__(self, reporter: Reporter, instance: str) -> None:
        self.reporter = reporter
        self.instance = instance

    def _named(self, step: StepResult) -> StepResult:
        # A shallow copy under another name; dataclasses.replace re-runs __init__ over every field,
        # which is measurable at thousands of events.
        named = object.__new__(StepResult)
        named.__dict__.update(step.__dict__)
        named.step_id = f"{self.instance}/{step.step_id}"
        return named

    def step_started(self, step: StepResult) -> None:
        self.reporter.step_started(self._named(step))

    def step_finished(self, step: StepResult) -> None:
        self.reporter.step_finished(self._named(step))

    def step_note(self, step: StepResult, message: str) -> None:
        note = getattr(self.reporter, "step_note", None)
        if note is not None:
            note(self._named(step), message)


def shared_state(workspace: Workspace, options: RunOptions, batch: bool, coordinator: Coordinator | None = None) -> SharedState:
    """What the instances of a run share: limits (held with ``coordinator``) and the jobs bound."""
    coordinator = coordinator or LocalCoordinator()
    return SharedState(ProviderLimits(workspace.config().get("limits", {}), coordinator),
                       anyio.CapacityLimiter(max(1, options.jobs)), coordinator, interim_writes=not batch)


async def run_instances(the_plan: Plan, workspace: Workspace, providers: Mapping[str, Provider],
                        reporter: Reporter | None = None, shared: SharedState | None = None,
                        outcome: BatchResult | None = None) -> BatchResult:
    """Run the plan's instances (or ``only`` that one) concurrently within the shared limits.

    Every run goes through here, a plain pipeline as its one instance (and a cluster worker's
    unit as a plan of one). An instance stopped by Ctrl-C or SIGTERM (or cancelled) is kept in
    ``outcome``, marked interrupted, with its record flushed.
    """
    options = the_plan.options
    shared = shared or shared_state(workspace, options, the_plan.batch)
    watch = getattr(reporter, "watch_queues", None)
    if watch is not None:
        watch(shared.limits.queues)
    outcome = outcome if outcome is not None else BatchResult(rejected=list(the_plan.rejected))
    instances = the_plan.instances
    runners = [
        Runner(instance.pipeline, workspace, providers, replace(options, instance=instance.name), shared,
               the_plan.locked.get(instance.name),
               (_Prefixed(reporter, instance.name) if the_plan.batch else reporter) if reporter is not None else None)
        for instance in instances
    ]
    finished = getattr(reporter, "instance_finished", None) if the_plan.batch else None

    failures: list[Exception] = []

    async def one(runner: Runner) -> None:
        try:
            await runner.run()
        except Exception as error:  # e.g. a full disk while writing the record: raised plainly below
            failures.append(error)
            return
        finally:
            outcome.instances[runner.options.instance] = runner.result
        if finished is not None:
            finished(runner.options.instance, runner.result)

    def stop(signal_name: str) -> None:
        outcome.interrupted = True
        if reporter is not None:  # the live display says why the run is ending
            reporter.step_note(StepResult("*", "-", status="skipped"), f"{signal_name}: stopping")
        for runner in runners:
            runner.result.interrupted = True
        outer.cancel_scope.cancel()

    # A use marker on the shared store too: a ``cache gc`` on another machine sweeps nothing meanwhile.
    async with running_in(workspace), using_store(workspace.shared), anyio.create_task_group() as outer:
        if options.handle_signals:
            outer.start_soon(stop_on_signal, stop)
        async with anyio.create_task_group() as group:
            for runner in runners:
                group.start_soon(one, runner)
        outer.cancel_scope.cancel()
    if failures:  # the other instances finished first; what they made is stored and recorded
        raise failures[0]
    return outcome
