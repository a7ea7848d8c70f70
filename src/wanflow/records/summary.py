"""After a run: its batch record (for a matrix or batch) and its entry in the run history."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from wanflow.records.batch_record import batch_document, write_batch_record
from wanflow.records.results import RunResult
from wanflow.records.runs import Run, read_record, summarize_record
from wanflow.state.state_files import DamagedState
from wanflow.state.workspace import Workspace


def record_run(workspace: Workspace, the_plan: Any, outcome: Any, batch_file: str | os.PathLike[str] | None) -> Run | None:
    """Write the batch record of a matrix or batch run; return the run as the history lists it
    (None when nothing was recorded: the run stopped before it started)."""
    pipeline = the_plan.pipeline
    results = outcome.instances
    ordered = [results[instance.name] for instance in the_plan.instances if instance.name in results]
    if not the_plan.batch:
        run = Run(ordered[0].run_id, pipeline.name, "single", _summaries(ordered)) if ordered else None
    else:
        document = batch_document(pipeline, the_plan.instances, results, the_plan.rejected,
                                  Path(batch_file) if batch_file is not None else None, _started(results.values()),
                                  outcome.interrupted)
        write_batch_record(workspace.runs_dir, document)
        override = "interrupted" if outcome.interrupted else ("failed" if the_plan.rejected else None)
        run = Run(document["batch_id"], pipeline.name, document["kind"], _summaries(ordered), document, override)
    return run if run is not None and run.records else None


def _summaries(results: Sequence[RunResult]) -> list[Any]:
    summaries = []
    for result in results:
        if result.record_path is None:
            continue
        try:
            summaries.append(summarize_record(read_record(result.record_path), result.record_path))
        except DamagedState as error:  # changed under our feet: the report leaves it out, and says so
            result.out_notes.append(f"the report leaves this instance out: {error}")
    return summaries


def _started(results: Iterable[RunResult]) -> float:
    """When the batch started: its earliest instance run id's time stamp (ids are made as it starts)."""
    stamps = []
    for result in results:
        try:
            stamps.append(dt.datetime.strptime(result.run_id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC).timestamp())
        except ValueError:
            continue
    return min(stamps) if stamps else dt.datetime.now(dt.UTC).timestamp()
