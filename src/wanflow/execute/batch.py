"""Run many instances of a pipeline (matrix combinations, batch rows) as one run.

All instances share the cache, the per-key locks, the provider limits and the jobs bound, so a
step whose resolved request is the same in several instances runs once, and the service sees
exactly the configured pressure however many sub-tasks are queued.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import anyio

from wanflow.execute.instance import Reporter, Runner, RunOptions, SharedState
from wanflow.execute.limits import ProviderLimits
from wanflow.execute.signals import stop_signals
from wanflow.pipelines.instances import Instance, RejectedRow
from wanflow.providers.base import Provider
from wanflow.records import lockfile
from wanflow.records.abandoned import running_in
from wanflow.records.results import RunResult, StepResult
from wanflow.state.workspace import Workspace


@dataclass
class BatchResult:
    """Every instance's result, and the rows that could not run."""

    instances: dict[str, RunResult] = field(default_factory=dict)
    rejected: list[RejectedRow] = field(default_factory=list)
    interrupted: bool = False

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


def batch_state(instances: list[Instance], workspace: Workspace, options: RunOptions) -> SharedState:
    """What the instances will share: limits and jobs from the config and options, the lockfile."""
    lock_data = lockfile.read_lock(lockfile.lock_path(instances[0].pipeline)) if instances else None
    return SharedState(ProviderLimits(workspace.config().get("limits", {})), anyio.CapacityLimiter(max(1, options.jobs)),
                       lock_data=lock_data)


async def run_instances(
    instances: list[Instance],
    workspace: Workspace,
    providers: Mapping[str, Provider],
    options: RunOptions,
    reporter: Reporter,
    rejected: list[RejectedRow] | None = None,
    shared: SharedState | None = None,
    on_instance_done: Callable[[str, RunResult], None] | None = None,
    prepared: Mapping[str, dict | None] | None = None,
) -> BatchResult:
    """Run every instance concurrently within the shared limits; write one lockfile at the end.

    ``shared`` defaults to batch_state(); pass one to watch its queues while the batch runs.
    """
    shared = shared or batch_state(instances, workspace, options)
    batch = BatchResult(rejected=list(rejected or []))
    runners = [
        Runner(instance.pipeline, workspace, providers,
               replace(options, instance=instance.name, write_lock=False, handle_signals=False),
               _Prefixed(reporter, instance.name), shared=shared)
        for instance in instances
    ]

    if prepared is not None:  # a Plan applied the lockfile to each instance already
        for runner in runners:
            runner.prepared = {"locked": prepared.get(runner.options.instance)}

    async def one(runner: Runner) -> None:
        result = batch.instances[runner.options.instance] = await runner.run()
        if on_instance_done is not None:
            on_instance_done(runner.options.instance, result)

    async with running_in(workspace), anyio.create_task_group() as outer:
        if options.handle_signals:
            outer.start_soon(_stop_on_signal, outer.cancel_scope, batch)
        async with anyio.create_task_group() as group:
            for runner in runners:
                group.start_soon(one, runner)
        outer.cancel_scope.cancel()
    if batch.instances and options.write_lock and instances:
        entries = {runner.options.instance: lockfile.instance_entry(runner.pipeline, batch.instances[runner.options.instance])
                   for runner in runners if runner.options.instance in batch.instances and batch.instances[runner.options.instance].ok}
        path = lockfile.lock_path(instances[0].pipeline)
        lockfile.write_lock(path, instances[0].pipeline.name, entries, keep=lockfile.read_lock(path))  # re-read: another run may have written it
    return batch


async def _stop_on_signal(scope: anyio.CancelScope, batch: BatchResult) -> None:
    with stop_signals() as signals:
        async for _ in signals:
            batch.interrupted = True
            scope.cancel()
            return
