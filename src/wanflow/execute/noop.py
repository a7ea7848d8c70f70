"""The no-op fast path: a run whose plan found every unit in the cache, done synchronously.

Nothing is generated, so nothing needs the event loop, the limits or the key locks: each unit's
result is filled from the request and cache entry the plan already resolved and looked up, then
the instance's bookkeeping is the runner's own (``out/`` and its manifest, the request history,
named outputs, the run record). ``wanflow._api`` then writes the batch record, the lockfile and the
report as after any run, so a no-op writes exactly what a run writes.

Anything else (a unit to run or shared, a ``for_each`` step, ``--frozen``, a cluster, a workspace
that a ``cache gc`` holds) goes the usual way: ``run_cached`` returns None before touching a file.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Mapping
from dataclasses import replace

from wanflow import _fs_errors as fs_errors
from wanflow.execute.batch import BatchResult, _Prefixed
from wanflow.execute.instance import Reporter, Runner, _unexpected
from wanflow.execute.shared import SharedState
from wanflow.planning.decision import decide
from wanflow.planning.planner import Plan
from wanflow.planning.upstream import template_outputs
from wanflow.providers.base import Provider
from wanflow.records.abandoned import mark_abandoned
from wanflow.state.locks import WorkspaceLock
from wanflow.state.workspace import Workspace

# What ``UnitRunner.produce`` decides for a unit the cache holds.
_CACHED = decide(cached=True, forced=None, made_by=None, pending_inputs=[], own_changes=[], miss_reason=lambda: "")


def can_run_cached(the_plan: Plan, workspace: Workspace) -> bool:
    """The plan found every unit cached, and nothing about the run needs the engine."""
    from wanflow.execute.cluster.address import address_for

    if not the_plan.all_cached or not the_plan.instances or the_plan.options.frozen:
        return False
    if any(step.for_each is not None for instance in the_plan.instances for step in instance.pipeline.steps.values()):
        return False
    return address_for(the_plan.options.cluster, workspace.config()) is None


def run_cached(the_plan: Plan, workspace: Workspace, providers: Mapping[str, Provider],
               reporter: Reporter | None = None) -> BatchResult | None:
    """Every instance's bookkeeping from the plan's cache entries; None when the usual run must do it."""
    if not can_run_cached(the_plan, workspace):
        return None
    lock = WorkspaceLock(workspace.locks_dir)  # as ``records.abandoned.running_in``, without waiting
    if lock.try_lock(exclusive=True):
        mark_abandoned(workspace.runs_dir)
    if not lock.try_lock(exclusive=False):  # a gc holds the workspace: the usual run waits for it
        lock.release()
        return None
    try:
        outcome = BatchResult(rejected=list(the_plan.rejected))
        # No limits and no jobs bound: nothing is generated. Interim record writes as in a run.
        shared = SharedState(None, None, interim_writes=not the_plan.batch)  # type: ignore[arg-type]
        finished = getattr(reporter, "instance_finished", None) if the_plan.batch else None
        for instance in the_plan.instances:
            heard = (_Prefixed(reporter, instance.name) if the_plan.batch else reporter) if reporter is not None else None
            runner = Runner(instance.pipeline, workspace, providers, replace(the_plan.options, instance=instance.name),
                            shared, None, heard)
            _run_instance(runner, the_plan.cached[instance.name])
            outcome.instances[instance.name] = runner.result
            if finished is not None:
                finished(instance.name, runner.result)
        return outcome
    finally:
        lock.release()


def _run_instance(runner: Runner, cached: Mapping[str, tuple]) -> None:
    """``Runner.run`` for an instance whose every step is cached: the same fields, files and record."""
    # No interim "running" record: nothing here can be left half done (no task, no download).
    for step_id in runner.pipeline.order():
        step = runner.pipeline.steps[step_id]
        result = runner.result.steps[step_id]
        result.started_at = time.time()
        try:
            if runner.blocked(step, result):
                continue
            request, entry = cached[step_id]
            runner.history.remember(step_id, entry.key, result.describe(request, entry.key))
            result.status, result.reason, result.estimated_usd = "cached", _CACHED.reason, 0.0
            result.outputs, result.provider_info = entry.outputs, dict(entry.provider_info)
            result.files = runner.outputs_folder.write_step(step_id, result.outputs.all() if result.outputs else [])
            result.warnings.extend(runner.outputs_folder.take_notes())
            runner._outputs[step_id] = template_outputs(step, result.outputs)
        except Exception as error:  # as ``Runner._run_step``: one step fails, with a plain message
            result.status, result.error = "failed", _unexpected(error)
            if not fs_errors.is_file_system_error(error):
                result.provider_info["traceback"] = traceback.format_exc(limit=8)
        finally:
            result.finished_at = time.time()
            runner.reporter.step_finished(result)
    runner._write_named_outputs()
    runner._finish("succeeded" if runner.result.ok else "failed")
