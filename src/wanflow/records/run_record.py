"""Run records: one JSON file per run with everything needed to audit or reproduce it."""

from __future__ import annotations

import datetime as dt
import functools
import os
import time
from pathlib import Path
from typing import Any

from wanflow._fs import atomic_write_bytes, json_document, sha256_file
from wanflow._version import __version__
from wanflow.pipelines.model import Pipeline
from wanflow.preview.notice import PREVIEW_NOTICE
from wanflow.records.results import RunResult, StepResult
from wanflow.state.state_files import wrote_state

RUNNING_WRITE_SECONDS = 1.0


def new_run_id(pipeline_name: str) -> str:
    """Sortable, unique run id: ``20261122T101500Z-product-ad-3f9a``."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{pipeline_name}-{os.urandom(2).hex()}"


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat(timespec="milliseconds")


def step_record(step: StepResult, out_dir: Path) -> dict[str, Any]:
    """The record of one step."""
    record: dict[str, Any] = {
        "status": step.status,
        "reason": step.reason,
        "model": step.model,
        "provider": step.provider,
        "cache_key": step.cache_key,
        "seed": step.seed,
        "seed_source": step.seed_source,
        "request": step.request,
        "outputs": [file.to_record(out_dir) for file in step.files] if step.files or step.outputs is None
        else [{"field": label, **artifact.to_record()} for label, artifact in step.outputs.all()],
        "provider_info": step.provider_info,
        "adaptations": step.adaptations,
        "warnings": step.warnings,
        "events": step.events,
        "estimated_cost_usd": step.estimated_usd,
        "cost_usd": step.cost_usd,
        "started_at": _iso(step.started_at),
        "finished_at": _iso(step.finished_at),
        "seconds": round(step.seconds, 3) if step.seconds is not None else None,
    }
    if step.error:
        record["error"] = step.error
    if step.items is not None:
        record["items"] = [step_record(item, out_dir) for item in step.items]
    return record


def _file_sha256(path: Path) -> str:
    """The file's sha256, read once however many instances of a batch record it."""
    stat = path.stat()
    return _sha256_of_version(path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=64)
def _sha256_of_version(path: Path, mtime_ns: int, size: int) -> str:
    return sha256_file(path)


class RunRecorder:
    """Writes the run record at the start, after every step, and at the end (atomically each time).

    With ``interim_writes`` off, only the final record is written, as one line of JSON: that is
    how the instances of a matrix or batch write theirs (indenting a thousand records costs more
    than some of their steps).
    """

    def __init__(self, pipeline: Pipeline, result: RunResult, runs_dir: Path, out_dir: Path, extra: dict[str, Any],
                 interim_writes: bool = True) -> None:
        self.pipeline = pipeline
        self.result = result
        self.path = runs_dir / f"{result.run_id}.json"
        self.latest = out_dir / "run.json"
        self.out_dir = out_dir
        self.extra = extra
        self.started_at = dt.datetime.now(dt.UTC).timestamp()
        self.finished_at: float | None = None
        self.pipeline_sha256 = _file_sha256(pipeline.path)
        self._last_write = 0.0
        self._interim_writes = interim_writes

    def document(self, status: str) -> dict[str, Any]:
        """The record as JSON data."""
        steps = self.result.steps.values()
        cost, estimated = self.result.cost_usd, self.result.estimated_usd
        document: dict[str, Any] = {
            "wanflow_version": __version__,
            "run_id": self.result.run_id,
            "status": status,
            "pipeline": {"name": self.pipeline.name, "file": str(self.pipeline.path), "sha256": self.pipeline_sha256},
            "vars": self.pipeline.vars,
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "steps": {step.step_id: step_record(step, self.out_dir) for step in steps},
            "step_order": self.pipeline.order(),  # JSON keys come back sorted: this is the pipeline's order
            "outputs": {
                name: [file.to_record(self.out_dir) for file in files] for name, files in self.result.outputs.items()
            },
            "output_errors": self.result.output_errors,
            "totals": {**self.result.counts(), "cost_usd": round(cost, 6), "estimated_cost_usd": round(estimated, 6)},
        }
        document.update(self.extra)
        if self.result.preview:
            document["preview"] = True
            document["notice"] = PREVIEW_NOTICE
        return document

    def write(self, status: str = "running") -> None:
        """Save the record (under .wanflow/runs/ and as out/<pipeline>/run.json).

        While running, at most every RUNNING_WRITE_SECONDS (the journal, not the record, is what
        makes paid work crash-safe); the final write always happens.
        """
        now = time.monotonic()
        if status == "running" and not self._interim_writes:
            return
        if status == "running" and self._last_write and now - self._last_write < RUNNING_WRITE_SECONDS:
            return
        self._last_write = now
        if status != "running":
            self.finished_at = dt.datetime.now(dt.UTC).timestamp()
        # Records describe work whose results are already durable (journal, store, cache).
        data = json_document(self.document(status), compact=not self._interim_writes)
        atomic_write_bytes(self.path, data, durable=False)
        atomic_write_bytes(self.latest, data, durable=False)
        wrote_state(self.path)
        self.result.record_path = self.path
