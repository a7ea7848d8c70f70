"""What ``wanflow run`` does around a run: before a costly paid start, ask (or refuse without a
terminal); when it ends, the batch record of a matrix or batch, the cost of paid steps, and the
HTML report ``out/<pipeline>/index.html``. cli/pipeline_commands.py calls these in one line each.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def confirm_paid_start(args: argparse.Namespace, workspace: Any, providers: Mapping[str, Any], estimate_total: Any) -> None:
    """Before a run: a paid run estimated above the threshold asks (or, without a terminal, refuses).

    ``estimate_total`` is called only for a paid run (planning is not free for a large batch)."""
    if not any(getattr(provider, "paid", False) for provider in providers.values()) or getattr(args, "yes", False) \
            or args.budget is not None:  # free, confirmed, or bounded by a budget already checked
        return
    from wanflow.cli.spend import confirm_spend, confirm_threshold

    threshold = confirm_threshold(workspace.config())
    confirm_spend(float(estimate_total()), threshold, yes=bool(getattr(args, "yes", False)), budget=args.budget)


def after_run(args: argparse.Namespace, pipeline: Any, workspace: Any, result: Any) -> None:
    """After a single run: the cost of its paid steps, then the HTML report."""
    from wanflow.records.runs import Run

    _after(args, pipeline, workspace, [result], lambda: Run(result.run_id, pipeline.name, "single", _summaries([result])))


def after_batch(args: argparse.Namespace, pipeline: Any, workspace: Any, instances: Sequence[Any], rejected: Sequence[Any],
                batch: Any) -> None:
    """After a matrix or batch run: its batch record, the cost of its paid steps, the HTML report."""
    from wanflow.records.batch_record import batch_document, write_batch_record
    from wanflow.records.runs import Run

    results = batch.instances
    document = batch_document(pipeline, instances, results, rejected, args.batch, _started(results.values()), batch.interrupted)
    write_batch_record(workspace.runs_dir, document)
    ordered = [results[instance.name] for instance in instances if instance.name in results]
    override = "interrupted" if batch.interrupted else ("failed" if rejected else None)
    _after(args, pipeline, workspace, ordered,
           lambda: Run(document["batch_id"], pipeline.name, document["kind"], _summaries(ordered), document, override))


def _after(args: argparse.Namespace, pipeline: Any, workspace: Any, results: Sequence[Any], make_run: Any) -> None:
    from wanflow.cli.spend import print_cost
    from wanflow.providers import PAID_PROVIDERS

    stream = sys.stderr if getattr(args, "json", False) else sys.stdout  # --json keeps stdout pure JSON
    print_cost(results, set(PAID_PROVIDERS), stream)
    if getattr(args, "no_report", False) or (workspace.config().get("run") or {}).get("report") is False:
        return
    run = make_run()
    if not run.records:  # nothing was recorded (the run stopped before it started)
        return
    try:
        from wanflow.report import write_report

        path = write_report(workspace, run, pipeline=pipeline)
    except Exception as error:  # the run itself is done and recorded; a report problem must not fail it
        print(f"wanflow: warning: the HTML report was not written ({type(error).__name__}: {error}); "
              "`wanflow report` can try again", file=sys.stderr)
        return
    print(f"report: {_shown(path)}", file=stream)


def _summaries(results: Sequence[Any]) -> list[Any]:
    from wanflow.records.runs import read_record, summarize_record
    from wanflow.state.state_files import DamagedState

    summaries = []
    for result in results:
        if result.record_path is not None:
            try:
                summaries.append(summarize_record(read_record(result.record_path), result.record_path))
            except DamagedState as error:  # changed under our feet: the report leaves it out
                print(f"wanflow: warning: {error}", file=sys.stderr)
    return summaries


def _started(results: Any) -> float:
    """When the batch started: its earliest instance run id's time stamp (ids are made as it starts)."""
    stamps = []
    for result in results:
        try:
            stamps.append(dt.datetime.strptime(result.run_id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC).timestamp())
        except ValueError:
            continue
    return min(stamps) if stamps else dt.datetime.now(dt.UTC).timestamp()
