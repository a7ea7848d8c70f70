"""What ``wanflow runs``, ``runs show`` and ``runs diff`` print."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from wanflow.cli.values import say
from wanflow.records.diffs import RunDiff
from wanflow.records.runs import Run, age, run_records, steps_in_order


def _money(value: float) -> str:
    return f"${value:.2f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def _steps(counts: dict[str, int]) -> str:
    return f"{counts.get('ran', 0)}/{counts.get('cached', 0)}/{counts.get('failed', 0)}"


def print_runs(runs: list[Run], stream: TextIO | None = None, hidden: int = 0) -> None:
    """The run list: one line per run, newest first."""
    stream = stream or sys.stdout
    if not runs:
        say("no runs yet (run a pipeline with `wanflow run PIPELINE`)", file=stream)
        return
    header = ("RUN", "PIPELINE", "INST", "STATUS", "RAN/CACHED/FAILED", "EST", "COST", "TIME", "AGE")
    rows = [(run.id, run.pipeline, str(len(run.records)), run.status, _steps(run.counts), _money(run.estimated_usd),
             _money(run.cost_usd), _duration(run.seconds), age(run.started_at)) for run in runs]
    widths = [max(len(row[index]) for row in [header, *rows]) for index in range(len(header))]
    for row in [header, *rows]:
        say("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip(), file=stream)
    if hidden:
        say(f"... {hidden} older run(s) not shown (--limit 0 shows all)", file=stream)


def print_run(run: Run, stream: TextIO | None = None) -> None:
    """One run in full: totals, then each instance's steps with status, reason, seed and cost."""
    stream = stream or sys.stdout
    counts = ", ".join(f"{count} {status}" for status, count in sorted(run.counts.items()))
    say(f"run {run.id}  ({run.kind}, {len(run.records)} instance(s))", file=stream)
    say(f"  pipeline   {run.pipeline}", file=stream)
    say(f"  status     {run.status}   steps: {counts or '-'}", file=stream)
    say(f"  started    {run.started_at or '-'}   took {_duration(run.seconds)}", file=stream)
    say(f"  cost       estimated {_money(run.estimated_usd)}, reported {_money(run.cost_usd)}", file=stream)
    for row in run.rejected:
        say(f"  rejected   {row.get('row')}: {'; '.join(row.get('problems') or [])}", file=stream)
    for instance, record in run_records(run).items():
        if len(run.records) > 1:
            say(f"\n  [{instance}] {record.get('status', '?')}  vars: {_vars(record.get('vars'))}", file=stream)
        elif record.get("vars"):
            say(f"  vars       {_vars(record.get('vars'))}", file=stream)
        for step_id, step in steps_in_order(record):
            _print_step(step_id, step, stream)
        say(f"  record     {next(r.path for r in run.records if r.instance == instance)}", file=stream)


def _vars(values: Any) -> str:
    return ", ".join(f"{key}={value!r}" for key, value in (values or {}).items()) or "-"


def _print_step(step_id: str, step: dict[str, Any], stream: TextIO) -> None:
    cost = f"  ${step.get('cost_usd') or 0:.2f}" if step.get("cost_usd") or step.get("estimated_cost_usd") else ""
    seconds = f"  {step['seconds']:.1f}s" if step.get("seconds") is not None else ""
    say(f"    {step.get('status', '?'):<8} {step_id:<16} {step.get('model', '-')} via {step.get('provider') or '-'}"
          f"{'' if step.get('seed') is None else '  seed ' + str(step['seed'])}{seconds}{cost}", file=stream)
    detail = step.get("error") or step.get("reason")
    if detail:
        say(f"             {detail}", file=stream)
    prompt = (step.get("request") or {}).get("prompt")
    if prompt:
        say(f"             prompt: {prompt}", file=stream)
    task_ids = (step.get("provider_info") or {}).get("task_ids")
    if task_ids:
        say(f"             task: {', '.join(map(str, task_ids))}", file=stream)
    for output in step.get("outputs") or []:
        say(f"             {output.get('field')}: {output.get('path', '')}  sha256 {str(output.get('sha256'))[:12]}", file=stream)
    for warning in step.get("warnings") or []:
        say(f"             warning: {warning}", file=stream)


def print_diff(diff: RunDiff, stream: TextIO | None = None) -> None:
    """Per instance and step, the fields that differ (prompts as a word diff)."""
    stream = stream or sys.stdout
    say(f"a: {diff.a}\nb: {diff.b}", file=stream)
    if all(item.empty for item in diff.instances):
        say("no differences in vars, requests or outputs", file=stream)
        return
    many = len(diff.instances) > 1
    for item in diff.instances:
        if item.empty:
            continue
        indent = "  " if many else ""
        if many:
            say(f"[{item.instance}]" + (f" only in {item.only_in}" if item.only_in else ""), file=stream)
        for change in item.vars:
            say(f"{indent}{change.format()}", file=stream)
        for step_id, changes in item.steps.items():
            if changes:
                say(f"{indent}step {step_id}:", file=stream)
                for change in changes:
                    say(f"{indent}  {change.format()}", file=stream)
