"""Run one instance of a pipeline: every step starts as soon as its inputs exist, bounded by ``jobs``.

Structured concurrency with anyio: one task group holds one task per step; a step waits on its
dependencies' completion events, so independent branches overlap. A failing step marks only its
dependents as skipped. Nothing outlives the task group.
"""

from __future__ import annotations

import shutil
import time
import traceback
from collections.abc import Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Protocol

import anyio

from wanflow import _fs_errors as fs_errors
from wanflow._exceptions import StepFailed, TemplateProblem, WanflowError
from wanflow.artifacts import Artifact
from wanflow.execute.shared import SharedState
from wanflow.pipelines.conditions import evaluate_for_each, evaluate_when
from wanflow.pipelines.located import base_context
from wanflow.pipelines.model import Pipeline, StepSpec
from wanflow.pipelines.resolve import pipeline_seed
from wanflow.pipelines.static_checks import fan_in
from wanflow.pipelines.templating import StepOutputs, referenced_steps, render
from wanflow.planning.options import RunOptions
from wanflow.planning.upstream import template_outputs
from wanflow.providers.base import Provider
from wanflow.records.request_history import RequestHistory, history_name
from wanflow.records.results import RunResult, StepResult
from wanflow.records.run_record import RunRecorder, new_run_id
from wanflow.state.out_folder import OutputFolder
from wanflow.state.workspace import Workspace

if TYPE_CHECKING:
    from wanflow.execute.unit import UnitRunner


class Reporter(Protocol):
    """Receives progress as it happens (the CLI's live display implements this).

    Two hooks are optional: ``instance_finished(name, result)`` hears each finished instance of
    a matrix or batch, and ``watch_queues(queues)`` gets a function returning the run's provider
    gates (running and waiting tasks) as the run starts.
    """

    def step_started(self, step: StepResult) -> None: ...

    def step_finished(self, step: StepResult) -> None: ...

    def step_note(self, step: StepResult, message: str) -> None: ...


class SilentReporter:
    """Hears nothing (the default reporter)."""

    def step_started(self, step: StepResult) -> None:
        pass

    def step_finished(self, step: StepResult) -> None:
        pass

    def step_note(self, step: StepResult, message: str) -> None:
        pass


class Runner:
    """Executes one instance of a pipeline once (``execute.batch.run_instances`` makes and runs them)."""

    def __init__(
        self,
        pipeline: Pipeline,
        workspace: Workspace,
        providers: Mapping[str, Provider],
        options: RunOptions,
        shared: SharedState,
        locked: dict | None = None,
        reporter: Reporter | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.workspace = workspace
        self.providers = providers
        self.options = options
        self.reporter = reporter or SilentReporter()
        instance = self.options.instance
        self.history = RequestHistory(workspace.index_dir, history_name(pipeline, instance))
        self.history.remember_vars(pipeline.vars)
        out_root = workspace.out_dir / pipeline.name
        if instance != "default":
            out_root = out_root / instance
        self.outputs_folder = OutputFolder(out_root, force=self.options.force_out)
        run_id = new_run_id(pipeline.name if self.options.instance == "default" else f"{pipeline.name}-{self.options.instance}")
        self.result = RunResult(
            run_id=run_id,
            pipeline_name=pipeline.name,
            steps={step.id: StepResult(step.id, step.model.name) for step in pipeline.steps.values()},
            out_dir=out_root,
            preview=any(not provider.paid and provider.name == "local" for provider in providers.values()),
        )
        seed, seed_source = pipeline_seed(pipeline)
        self.recorder = RunRecorder(
            pipeline,
            self.result,
            workspace.runs_dir,
            out_root,
            extra={
                "pipeline_seed": seed,
                "pipeline_seed_source": seed_source,
                "jobs": self.options.jobs,
                "warnings": [warning.format() for warning in pipeline.warnings],
            },
            # A batch's instances are reported live by the CLI; rewriting a thousand records
            # after every step would cost more than the steps.
            interim_writes=shared.interim_writes,
        )
        self._done: dict[str, anyio.Event] = {}  # made in run(): an Event needs the running loop
        self._outputs: dict[str, StepOutputs] = {}
        self.shared, self.locked, self.run_id = shared, locked, run_id
        self.workdir = workspace.tmp_dir / run_id  # the run's scratch folder (UnitRunner's too)

    @cached_property
    def units(self) -> UnitRunner:
        """What runs the units: made when a step first needs it (a fully cached run never does)."""
        from wanflow.execute.unit import UnitRunner

        return UnitRunner(self.pipeline, self.workspace, self.providers, self.options, self.shared, self.locked,
                          self.history, self.run_id, self.reporter.step_started, self._log)

    async def run(self) -> RunResult:
        """Run every step, write outputs and the record, and return the result (also when cancelled:
        then it is marked interrupted, its record flushed, and the cancellation goes on)."""
        self._done = {step_id: anyio.Event() for step_id in self.pipeline.steps}
        assert self.units is not None  # made before the first step, as a run always did
        self.recorder.write("running")
        try:
            async with anyio.create_task_group() as group:
                for step_id in self.pipeline.order():
                    group.start_soon(self._run_step, self.pipeline.steps[step_id])
            self._write_named_outputs()
        except BaseException:
            self.result.interrupted = True
            self._finish("interrupted")  # synchronous: no checkpoint, so cancellation cannot cut it short
            raise
        self._finish("interrupted" if self.result.interrupted else "succeeded" if self.result.ok else "failed")
        return self.result

    def _finish(self, status: str) -> None:
        for step in self.result.steps.values():
            if step.status in ("pending", "running"):
                step.status, step.reason = "skipped", "run was interrupted"
        self.history.save()
        self.outputs_folder.finish(set(self.pipeline.steps), set(self.pipeline.outputs))
        self.result.out_notes += self.outputs_folder.take_notes()  # named outputs, removed steps, the manifest
        if self.result.out_notes:
            self.recorder.extra["warnings"] = [*self.recorder.extra.get("warnings", []), *self.result.out_notes]
        self.recorder.write(status)
        shutil.rmtree(self.workdir, ignore_errors=True)

    async def _run_step(self, step: StepSpec) -> None:
        result = self.result.steps[step.id]
        for dep in step.depends_on:
            await self._done[dep].wait()
        try:
            if self.blocked(step, result):
                return
            run_it, problems = evaluate_when(self.pipeline, step, self._outputs)
            if problems:
                raise StepFailed("; ".join(problem.format() for problem in problems))
            if not run_it:
                result.status, result.condition_skipped = "skipped", True
                result.reason = f"when: {step.when} is false"
                return
            result.started_at = time.time()
            items, problems = evaluate_for_each(self.pipeline, step, self._outputs)
            if problems:
                raise StepFailed("; ".join(problem.format() for problem in problems))
            if items is None:
                await self.units.produce(step, result, self._outputs)
                result.files = self.outputs_folder.write_step(step.id, result.outputs.all() if result.outputs else [])
                result.warnings.extend(self.outputs_folder.take_notes())
                self._outputs[step.id] = template_outputs(step, result.outputs)
            else:
                await self._fan_out(step, result, items)
        except WanflowError as error:
            result.status, result.error = "failed", str(error)
        except Exception as error:  # a bug must fail one step, not take down its siblings
            result.status = "failed"
            result.error = _unexpected(error)
            if not fs_errors.is_file_system_error(error):
                result.provider_info["traceback"] = traceback.format_exc(limit=8)
        finally:
            result.finished_at = time.time()
            self._done[step.id].set()
            self.recorder.write("running")
            self.reporter.step_finished(result)

    def blocked(self, step: StepSpec, result: StepResult) -> bool:
        """Mark ``result`` skipped (and say True) when a dependency of ``step`` did not succeed."""
        blocked = [dep for dep in step.depends_on if not self.result.steps[dep].ok]
        if not blocked:
            return False
        result.status = "skipped"
        result.condition_skipped = all(self.result.steps[dep].condition_skipped for dep in blocked)
        result.reason = "upstream " + ", ".join(
            f"'{dep}' {'skipped by its condition' if self.result.steps[dep].condition_skipped else self.result.steps[dep].status}"
            for dep in blocked
        )
        return True

    async def _fan_out(self, step: StepSpec, result: StepResult, items: list) -> None:
        """One sub-task per item, all at once (within the limits); downstream sees lists in item order."""
        subs = [StepResult(f"{step.id}[{index}]", step.model.name) for index in range(len(items))]
        result.items = subs

        async def one(index: int, item: object) -> None:
            sub = subs[index]
            sub.started_at = time.time()
            try:
                await self.units.produce(step, sub, self._outputs, (index, item))
            except WanflowError as error:
                sub.status, sub.error = "failed", str(error)
            except OSError as error:  # a full or read-only disk fails the item with a plain message
                if not fs_errors.is_file_system_error(error):
                    raise
                sub.status, sub.error = "failed", _unexpected(error)
            finally:
                sub.finished_at = time.time()

        async with anyio.create_task_group() as group:
            for index, item in enumerate(items):
                group.start_soon(one, index, item)
        failed = [sub for sub in result.items if sub.status == "failed"]
        if failed:
            raise StepFailed(f"{len(failed)} of {len(items)} items failed; first: {failed[0].step_id}: {failed[0].error}")
        result.status = "ran" if any(sub.status == "ran" for sub in result.items) else "cached"
        ran = sum(1 for sub in result.items if sub.status == "ran")
        result.reason = f"{len(items)} items: {ran} ran, {len(items) - ran} cached"
        result.seed = result.items[0].seed if result.items else None
        result.provider = result.items[0].provider if result.items else None
        labelled = [(f"items[{sub_index}].{label}", artifact) for sub_index, sub in enumerate(result.items)
                    for label, artifact in (sub.outputs.all() if sub.outputs else [])]
        result.files = self.outputs_folder.write_step(step.id, labelled)
        result.warnings.extend(self.outputs_folder.take_notes())
        self._outputs[step.id] = fan_in(step, [template_outputs(step, sub.outputs) for sub in result.items])

    def _log(self, result: StepResult, message: str) -> None:
        result.events.append({"at": round(time.time(), 3), "message": message})
        note = getattr(self.reporter, "step_note", None)
        if note is not None:
            note(result, message)

    def _write_named_outputs(self) -> None:
        context = base_context(self.pipeline, self._outputs)
        for name, text in self.pipeline.outputs.items():
            sources = referenced_steps(text).steps
            if any(self.result.steps[source].condition_skipped for source in sources if source in self.result.steps):
                continue  # its step was skipped on purpose
            try:
                value = render(text, context)
            except TemplateProblem as problem:
                self.result.output_errors[name] = _output_problem(problem.message)
                continue
            artifacts = [item for item in (value if isinstance(value, list) else [value]) if isinstance(item, Artifact)]
            if artifacts:
                self.result.outputs[name] = self.outputs_folder.write_output(name, artifacts)


def _output_problem(message: str) -> str:
    if message.startswith("unknown step"):
        return "its step did not finish"
    return message


def _unexpected(error: Exception) -> str:
    """A step's error for an exception wanflow did not raise itself: disk trouble is the user's to
    fix (and paid results are safe in the journal); anything else is a bug of ours."""
    if isinstance(error, OSError) and fs_errors.is_file_system_error(error):
        return fs_errors.describe(error) + "; paid results are safe in the journal, and the next run resumes them"
    return f"internal error: {type(error).__name__}: {error}"
