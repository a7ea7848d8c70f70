"""The record of a matrix or batch run as a whole: which instance records belong together.

Each instance writes its own run record (``.wanflow/runs/<run-id>.json``); this small file,
``.wanflow/runs/batches/<batch-id>.json``, lists them in instance order with each instance's
vars, the matrix axes and the rejected rows, so ``wanflow runs`` can show the batch as one run
and the report can lay a matrix out as a grid.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from wanflow._fs import atomic_write_json
from wanflow.pipelines.instances import Instance, RejectedRow
from wanflow.pipelines.model import Pipeline
from wanflow.records.results import RunResult
from wanflow.records.run_record import new_run_id

BATCHES_DIR = "batches"


def batches_dir(runs_dir: Path) -> Path:
    """Where batch records live (a subfolder: record globs over ``runs/*.json`` never see them)."""
    return runs_dir / BATCHES_DIR


def matrix_axes(pipeline: Pipeline) -> dict[str, list[Any]]:
    """The matrix's axes and their values in the order written (include/exclude left out)."""
    return {axis: list(values) for axis, values in (pipeline.matrix or {}).items()
            if axis not in ("include", "exclude") and isinstance(values, list)}


def batch_document(pipeline: Pipeline, instances: Sequence[Instance], results: Mapping[str, RunResult],
                   rejected: Sequence[RejectedRow], batch_file: Path | None, started_at: float,
                   interrupted: bool = False) -> dict[str, Any]:
    """The batch record as JSON data."""
    listed = [{"name": instance.name, "run_id": results[instance.name].run_id if instance.name in results else None,
               "row": instance.row, "vars": instance.pipeline.vars}
              for instance in instances]
    ok = all(result.ok for result in results.values()) and not rejected and len(results) == len(instances)
    return {
        "wanflow_batch": 1,
        "batch_id": new_run_id(pipeline.name),
        "pipeline": {"name": pipeline.name, "file": str(pipeline.path)},
        "kind": "batch" if batch_file is not None else "matrix",
        "batch_file": str(batch_file) if batch_file is not None else None,
        "axes": matrix_axes(pipeline),
        "status": "interrupted" if interrupted else "succeeded" if ok else "failed",
        "started_at": dt.datetime.fromtimestamp(started_at, dt.UTC).isoformat(timespec="milliseconds"),
        "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
        "instances": listed,
        "rejected": [{"row": row.label, "problems": list(row.problems)} for row in rejected],
    }


def write_batch_record(runs_dir: Path, document: dict[str, Any]) -> Path:
    """Save a batch record (rebuilt from nothing if lost, so no fsync) and return its path."""
    path = batches_dir(runs_dir) / f"{document['batch_id']}.json"
    atomic_write_json(path, document, durable=False, compact=True)
    return path
