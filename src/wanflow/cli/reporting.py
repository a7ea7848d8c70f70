"""What the CLI shows: live progress, summaries, and their JSON forms."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from wanflow.cli.values import say
from wanflow.execute.limits import QueueState
from wanflow.pipelines.model import Pipeline
from wanflow.planning.decision import SPENDS
from wanflow.planning.planner import Plan, PlannedStep, total_estimate
from wanflow.preview.notice import PREVIEW_NOTICE
from wanflow.records.results import RunResult, StepResult

_MARKS = {"ran": "✓ ran", "cached": "✓ cached", "failed": "✗ failed", "skipped": "- skipped", "running": "… running", "pending": "· waiting"}


def _short_key(key: str | None) -> str:
    return key[:12] if key else "-"


def _display_path(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


class PlainProgress:
    """One line per event, for logs and pipes."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.start = time.monotonic()

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def _line(self, text: str) -> None:
        say(f"[{time.monotonic() - self.start:6.1f}s] {text}", file=self.stream, flush=True)

    def step_started(self, step: StepResult) -> None:
        self._line(f"{step.step_id:<16} running   {step.model} via {step.provider} ({step.reason})")

    def step_finished(self, step: StepResult) -> None:
        detail = step.error if step.status == "failed" else step.reason
        self._line(f"{step.step_id:<16} {step.status:<9} {detail}")
        for warning in step.warnings:
            self._line(f"{step.step_id:<16} warning   {warning}")

    def step_note(self, step: StepResult, message: str) -> None:
        self._line(f"{step.step_id:<16} {'':<9} {message}")

    def instance_finished(self, name: str, result: RunResult) -> None:
        """One line when an instance of a batch is done."""
        self._line(f"{name:<16} {'done' if result.ok else 'FAILED':<9} " + ", ".join(
            f"{count} {status}" for status, count in result.counts().items() if count))


class LiveProgress:
    """A rich live table on a terminal: one row per step, updated as steps move."""

    def __init__(self, pipeline: Pipeline, stream: TextIO, *, force_terminal: bool | None = None) -> None:
        from rich.console import Console
        from rich.live import Live

        self.pipeline = pipeline
        self.states: dict[str, StepResult] = {}
        self.notes: dict[str, str] = {}
        self.console = Console(file=stream, force_terminal=force_terminal)
        self.start = time.monotonic()
        self.live = Live(self._table(), console=self.console, refresh_per_second=8, transient=False)

    def _table(self) -> Any:
        from rich.table import Table

        table = Table(box=None, show_header=True, header_style="bold")
        table.add_column("step")
        table.add_column("model")
        table.add_column("status")
        table.add_column("detail", overflow="fold")
        for step_id, step in self.pipeline.steps.items():
            state = self.states.get(step_id)
            status = state.status if state else "pending"
            detail = (state.error if status == "failed" else state.reason) if state else ""
            if status == "running" and step_id in self.notes:
                detail = self.notes[step_id]
            style = {"ran": "green", "cached": "cyan", "failed": "red", "skipped": "yellow", "running": "magenta"}.get(status, "dim")
            table.add_row(step_id, step.model.name, f"[{style}]{_MARKS.get(status, status)}[/]", detail or "")
        table.caption = f"{time.monotonic() - self.start:.1f}s"
        return table

    def __enter__(self) -> LiveProgress:
        self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.update(self._table())
        self.live.stop()

    def step_started(self, step: StepResult) -> None:
        self.states[step.step_id] = step
        self.live.update(self._table())

    def step_finished(self, step: StepResult) -> None:
        self.states[step.step_id] = step
        self.live.update(self._table())

    def step_note(self, step: StepResult, message: str) -> None:
        self.notes[step.step_id] = message
        self.states[step.step_id] = step
        self.live.update(self._table())


class BatchProgress:
    """A rich live summary of a matrix or batch run on a terminal: instances done, steps by status,
    and each provider/model gate's running and waiting tasks (the queue depth), refreshed 4 times
    a second. Events only update counters, so a thousand instances cost no redraws."""

    def __init__(self, name: str, instances: int, queues: Callable[[], list[QueueState]], stream: TextIO,
                 *, force_terminal: bool | None = None) -> None:
        from rich.console import Console
        from rich.live import Live

        self.name = name
        self.total = instances
        self.queues = queues
        self.status: dict[str, str] = {}
        self.done = 0
        self.failed_instances = 0
        self.last_failure = ""
        self.start = time.monotonic()
        self.console = Console(file=stream, force_terminal=force_terminal)
        self.live = Live(console=self.console, refresh_per_second=4, transient=False, get_renderable=self.render)

    def __enter__(self) -> BatchProgress:
        self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.refresh()
        self.live.stop()

    def render(self) -> Any:
        """The summary as a rich renderable."""
        from rich.table import Table

        counts: dict[str, int] = {}
        for status in self.status.values():
            counts[status] = counts.get(status, 0) + 1
        table = Table(box=None, show_header=False)
        table.add_column(style="bold")
        table.add_column()
        ok = self.done - self.failed_instances
        table.add_row(self.name, f"{self.done}/{self.total} instances done ({ok} ok, {self.failed_instances} failed)"
                      f"   {time.monotonic() - self.start:.1f}s")
        table.add_row("steps", "  ".join(f"{status} {counts[status]}" for status in
                                         ("running", "ran", "cached", "failed", "skipped") if counts.get(status)) or "-")
        for index, queue in enumerate(self.queues()):
            table.add_row("queue" if index == 0 else "", f"{queue.label}: {queue.running} running, {queue.waiting} waiting")
        if self.last_failure:
            table.add_row("failed", f"[red]{self.last_failure}[/]")
        return table

    def step_started(self, step: StepResult) -> None:
        self.status[step.step_id] = step.status

    def step_finished(self, step: StepResult) -> None:
        self.status[step.step_id] = step.status
        if step.status == "failed":
            self.last_failure = f"{step.step_id}: {step.error}"

    def step_note(self, step: StepResult, message: str) -> None:
        pass  # per-step detail would scroll past unread; the queues line carries the depth

    def watch_queues(self, queues: Callable[[], list[QueueState]]) -> None:
        """Show these gates' queues (the run hands them over as it starts)."""
        self.queues = queues

    def instance_finished(self, name: str, result: RunResult) -> None:
        """Count a finished instance."""
        self.done += 1
        self.failed_instances += 0 if result.ok else 1


def make_display(the_plan: Plan, stream: TextIO) -> PlainProgress | LiveProgress | BatchProgress:
    """The run's progress display: the live batch summary or step table on a terminal, plain lines otherwise.

    A batch display learns the queues from the run (``watch_queues``)."""
    if not stream.isatty():
        return PlainProgress(stream)
    if the_plan.batch:
        return BatchProgress(the_plan.pipeline.name, len(the_plan.instances), lambda: [], stream)
    return LiveProgress(the_plan.pipeline, stream)


def shown(path: Path) -> str:
    """``path`` relative to the current folder where it lies below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def print_summary(result: RunResult, stream: TextIO | None = None) -> None:
    """The human summary printed after a run."""
    stream = stream or sys.stdout
    counts = result.counts()
    order = ("ran", "cached", "failed", "skipped")
    say(f"\n{result.pipeline_name}: " + ", ".join(f"{counts[s]} {s}" for s in order if counts.get(s)), file=stream)
    for step in result.steps.values():
        timing = f"{step.seconds:5.1f}s" if step.seconds is not None and step.status == "ran" else "      "
        # A skipped step drew no seed and has no key: nothing to show rather than "None".
        seed = "" if step.seed is None else f"  seed {step.seed}"  # an op step draws none
        facts = f"{seed}  key {_short_key(step.cache_key)}" if step.seed is not None or step.cache_key else ""
        say(f"  {_MARKS.get(step.status, step.status):<10} {step.step_id:<16} {timing}{facts}", file=stream)
        if step.status == "failed":
            say(f"             error: {step.error}", file=stream)
        elif step.status == "skipped":
            say(f"             {step.reason}", file=stream)  # a condition, or an upstream failure
        for warning in step.warnings:
            say(f"             warning: {warning}", file=stream)
    if result.outputs:
        say("outputs:", file=stream)
        for name, files in result.outputs.items():
            for file in files:
                say(f"  {name:<16} {_display_path(file.path)}", file=stream)
    for name, problem in result.output_errors.items():
        say(f"  {name:<16} not written: {problem}", file=stream)
    for note in result.out_notes:
        say(f"warning: {note}", file=stream)
    if result.preview:
        say(f"note: {PREVIEW_NOTICE}. Choose a paid provider with --provider to generate for real.", file=stream)
    if result.record_path:
        say(f"record: {_display_path(result.record_path)}", file=stream)


def run_json(result: RunResult) -> dict[str, Any]:
    """The ``--json`` summary of a run."""
    return {
        "pipeline": result.pipeline_name,
        "run_id": result.run_id,
        "ok": result.ok,
        "preview": result.preview,
        "record": str(result.record_path) if result.record_path else None,
        "out_dir": str(result.out_dir) if result.out_dir else None,
        "counts": result.counts(),
        "estimated_cost_usd": result.estimated_usd,
        "cost_usd": result.cost_usd,
        "steps": {
            step.step_id: {
                "status": step.status,
                "reason": step.reason,
                "error": step.error,
                "condition_skipped": step.condition_skipped,
                "model": step.model,
                "provider": step.provider,
                "cache_key": step.cache_key,
                "seed": step.seed,
                "outputs": [
                    {"field": file.label, "path": str(file.path), "sha256": file.artifact.sha256, "media_type": file.artifact.media_type}
                    for file in step.files
                ],
                **({"items": [{"status": item.status, "cache_key": item.cache_key, "seed": item.seed, "error": item.error}
                              for item in step.items]} if step.items is not None else {}),
            }
            for step in result.steps.values()
        },
        "outputs": {
            name: [{"path": str(file.path), "sha256": file.artifact.sha256} for file in files]
            for name, files in result.outputs.items()
        },
        "output_errors": result.output_errors,
    }


def print_plan(pipeline: Pipeline, planned: list[PlannedStep], stream: TextIO | None = None) -> None:
    """The human form of ``wanflow plan``."""
    stream = stream or sys.stdout
    say(f"{pipeline.name}: plan", file=stream)
    _print_plan_steps(planned, stream, "  ")
    runs = sum(1 for step in planned if step.status in SPENDS)
    say(f"{runs} of {len(planned)} steps would run; estimated cost ${total_estimate(planned):.2f} "
          "(estimates from public list prices; run? = runs unless its inputs come out byte-identical)", file=stream)


_PLAN_LABELS = {"cached": "cached", "run": "run", "shared": "shared", "run-if-inputs-change": "run?", "skip": "skip"}


def _print_plan_steps(planned: list[PlannedStep], stream: TextIO, indent: str) -> None:
    for step in planned:
        cost = f"${step.estimated_usd:6.2f}"
        say(f"{indent}{_PLAN_LABELS[step.status]:<7} {step.step_id:<16} {step.model:<20} {step.provider:<9} {cost}  "
              f"seed {'-' if step.seed is None else step.seed:<10}  {step.reason}", file=stream)
        if step.status in SPENDS and step.estimate_basis:
            say(f"{indent}{'':<7} {'':<16} {'':<20} {'':<9} {'':<7}  ({step.estimate_basis})", file=stream)


def print_instance_plans(pipeline: Pipeline, plans: dict[str, list[PlannedStep]], rejected: list[Any],
                         stream: TextIO | None = None) -> None:
    """The human form of ``wanflow plan`` for a matrix or batch: each instance, then the totals."""
    stream = stream or sys.stdout
    say(f"{pipeline.name}: plan for {len(plans)} instance(s)", file=stream)
    for instance, planned in plans.items():
        say(f"  {instance}", file=stream)
        _print_plan_steps(planned, stream, "    ")
    for row in rejected:
        say(f"  ✗ {row.label}: " + "; ".join(row.problems), file=stream)
    steps = [step for planned in plans.values() for step in planned]
    runs = sum(1 for step in steps if step.status in SPENDS)
    shared = sum(1 for step in steps if step.status == "shared")
    total = sum(total_estimate(planned) for planned in plans.values())
    say(f"{runs} of {len(steps)} steps would run ({shared} more share a request that runs once); "
          f"estimated cost ${total:.2f} (estimates from public list prices)", file=stream)


def instance_plans_json(pipeline: Pipeline, plans: dict[str, list[PlannedStep]], rejected: list[Any]) -> dict[str, Any]:
    """The ``--json`` form of ``wanflow plan`` for a matrix or batch."""
    return {
        "pipeline": pipeline.name,
        "estimated_cost_usd": round(sum(total_estimate(planned) for planned in plans.values()), 6),
        "instances": {instance: _plan_steps_json(planned) for instance, planned in plans.items()},
        "rejected": [{"row": row.label, "problems": row.problems} for row in rejected],
        "warnings": [warning.format() for warning in pipeline.warnings],
    }


def plan_document(plan: Plan) -> dict[str, Any]:
    """The ``--json`` form of ``wanflow plan`` (single run, or matrix/batch instances)."""
    document = instance_plans_json(plan.pipeline, plan.units, plan.rejected) if plan.batch \
        else plan_json(plan.pipeline, plan.units[plan.options.instance])
    document["estimated_cost_usd"] = plan.upper_usd
    document["certain_cost_usd"] = plan.certain_usd
    return document


def print_whole_plan(plan: Plan, stream: TextIO | None = None) -> None:
    """The human form of ``wanflow plan`` (single run, or matrix/batch instances)."""
    if plan.batch:
        print_instance_plans(plan.pipeline, plan.units, plan.rejected, stream)
    else:
        print_plan(plan.pipeline, plan.units[plan.options.instance], stream)
    if plan.upper_usd != plan.certain_usd:
        say(f"${plan.certain_usd:.2f} surely; up to ${plan.upper_usd:.2f} if every 'run?' step runs", file=stream or sys.stdout)


def plan_json(pipeline: Pipeline, planned: list[PlannedStep]) -> dict[str, Any]:
    """The ``--json`` form of ``wanflow plan``."""
    return {
        "pipeline": pipeline.name,
        "estimated_cost_usd": total_estimate(planned),
        "steps": _plan_steps_json(planned),
        "warnings": [warning.format() for warning in pipeline.warnings],
    }


def _plan_steps_json(planned: list[PlannedStep]) -> dict[str, Any]:
    return {
        step.step_id: {
            "status": step.status,
            "reason": step.reason,
            "model": step.model,
            "provider": step.provider,
            "seed": step.seed,
            "cache_key": step.cache_key,
            "estimated_cost_usd": step.estimated_usd,
            "estimate_basis": step.estimate_basis,
            "changed": step.changed,
        }
        for step in planned
    }


def print_batch(name: str, batch: Any, stream: TextIO | None = None) -> None:
    """The human summary of a matrix or batch run: one line per instance."""
    stream = stream or sys.stdout
    ok = sum(1 for result in batch.instances.values() if result.ok)
    say(f"\n{name}: {len(batch.instances)} instance(s), {ok} ok"
          + (f", {len(batch.rejected)} row(s) rejected" if batch.rejected else ""), file=stream)
    width = max((len(instance) for instance in batch.instances), default=0)
    for instance, result in sorted(batch.instances.items()):
        counts = result.counts()
        summary = ", ".join(f"{counts[s]} {s}" for s in ("ran", "cached", "failed", "skipped") if counts.get(s))
        outputs = " ".join(_display_path(file.path) for files in result.outputs.values() for file in files)
        say(f"  {'✓' if result.ok else '✗'} {instance:<{width}}  {summary:<24} {outputs}", file=stream)
        for step in result.steps.values():
            if step.status == "failed":
                say(f"      {step.step_id}: {step.error}", file=stream)
    for row in batch.rejected:
        say(f"  ✗ {row.label}: " + "; ".join(row.problems), file=stream)


def batch_json(batch: Any) -> dict[str, Any]:
    """The ``--json`` summary of a matrix or batch run."""
    return {
        "ok": batch.ok,
        "instances": {name: run_json(result) for name, result in sorted(batch.instances.items())},
        "rejected": [{"row": row.label, "problems": row.problems} for row in batch.rejected],
    }
