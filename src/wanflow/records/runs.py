"""Run history: every run, newest first, built from the run records under ``.wanflow/runs/``.

A single run is one record. A matrix or batch run is one record per instance, grouped by its
batch record (``runs/batches/``); instance records from before batch records existed are grouped
by pipeline and start time. ``.wanflow/index/_runs.json`` caches each record's summary by file
size and mtime; deleting it loses nothing (the next listing rebuilds it).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from wanflow._exceptions import UsageError
from wanflow._fs import atomic_write_json
from wanflow.records.abandoned import notice_abandoned
from wanflow.records.batch_record import batches_dir
from wanflow.state.state_files import DamagedState, read_state
from wanflow.state.workspace import Workspace

INDEX_NAME = "_runs.json"  # pipeline names start with a letter or digit, so no history file is called this
INDEX_VERSION = 1
_STAMP_LENGTH = len("20261122T101500Z")
_LEGACY_GAP_SECONDS = 120.0


@dataclass
class RecordSummary:
    """What the listing needs from one run record (cached in the index)."""

    run_id: str
    pipeline: str
    instance: str
    status: str
    counts: dict[str, int]
    estimated_usd: float
    cost_usd: float
    started_at: str | None
    finished_at: str | None
    providers: list[str]
    preview: bool
    path: str


@dataclass
class Run:
    """One run as listed: a single record, or the instance records of a matrix or batch run."""

    id: str
    pipeline: str
    kind: str  # "single", "matrix", "batch" ("instances" for old batches without a batch record)
    records: list[RecordSummary]
    batch: dict[str, Any] | None = None
    status_override: str | None = None
    problems: list[str] = field(default_factory=list)  # records found damaged when read in full

    @property
    def status(self) -> str:
        """``succeeded``, ``failed``, ``interrupted``, ``abandoned`` (its process died) or ``running``."""
        if self.status_override:
            return self.status_override
        statuses = {record.status for record in self.records}
        for status in ("running", "abandoned", "interrupted", "failed"):
            if status in statuses:
                return status
        return "succeeded" if statuses else "failed"

    @property
    def counts(self) -> dict[str, int]:
        """Steps per status over every instance."""
        total: dict[str, int] = {}
        for record in self.records:
            for status, count in record.counts.items():
                total[status] = total.get(status, 0) + count
        return total

    @property
    def estimated_usd(self) -> float:
        return round(sum(record.estimated_usd for record in self.records), 6)

    @property
    def cost_usd(self) -> float:
        return round(sum(record.cost_usd for record in self.records), 6)

    @property
    def started_at(self) -> str | None:
        starts = [record.started_at for record in self.records if record.started_at]
        return min(starts) if starts else (self.batch or {}).get("started_at")

    @property
    def finished_at(self) -> str | None:
        if any(record.finished_at is None for record in self.records):
            return None
        ends = [record.finished_at for record in self.records if record.finished_at]
        return max(ends) if ends else None

    @property
    def seconds(self) -> float | None:
        """Wall-clock duration of the whole run."""
        start, end = _parse_time(self.started_at), _parse_time(self.finished_at)
        return end - start if start is not None and end is not None else None

    @property
    def rejected(self) -> list[dict[str, Any]]:
        return list((self.batch or {}).get("rejected") or [])

    def summary_json(self) -> dict[str, Any]:
        """The listing row as JSON data."""
        return {
            "id": self.id, "pipeline": self.pipeline, "kind": self.kind, "instances": len(self.records),
            "status": self.status, "steps": self.counts, "estimated_cost_usd": self.estimated_usd,
            "cost_usd": self.cost_usd, "started_at": self.started_at, "finished_at": self.finished_at,
            "seconds": round(self.seconds, 3) if self.seconds is not None else None,
            "rejected_rows": len(self.rejected), "records": [record.path for record in self.records],
        }


@dataclass
class History:
    """Every run of a workspace, newest first."""

    runs: list[Run] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)  # state files skipped, each with what is wrong

    def find(self, ref: str, pipeline: str | None = None) -> Run:
        """The run named by ``ref``: an id, a unique prefix of one, ``latest`` or ``latest~N``
        (counted among ``pipeline``'s runs when given). An instance's own record id names that
        instance alone."""
        if pipeline is not None and (ref == "latest" or ref.startswith("latest~")):
            return History(filter_runs(self.runs, pipeline)).find(ref)
        if ref == "latest" or ref.startswith("latest~"):
            back = ref.partition("~")[2]
            if back and not back.isdigit():
                raise UsageError(f"'{ref}': use latest or latest~N")
            index = int(back or 0)
            if index >= len(self.runs):
                raise UsageError(f"'{ref}': there are only {len(self.runs)} run(s)")
            return self.runs[index]
        for run in self.runs:
            if run.id == ref:
                return run
        matches = [run for run in self.runs if run.id.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        for run in self.runs:  # an instance record of a batch
            for record in run.records:
                if record.run_id == ref or (len(ref) >= 8 and record.run_id.startswith(ref) and len(run.records) > 1):
                    return Run(record.run_id, record.pipeline, "single", [record])
        if matches:
            raise UsageError(f"'{ref}' matches {len(matches)} runs: " + ", ".join(run.id for run in matches[:5]))
        raise UsageError(f"no run '{ref}' (see `wanflow runs`)")


    def previous(self, run: Run) -> Run:
        """The run of the same pipeline just before ``run``."""
        same = filter_runs(self.runs, run.pipeline)
        later = [index for index, other in enumerate(same) if other.id == run.id]
        if not later or later[0] + 1 >= len(same):
            raise UsageError(f"{run.id} is the first run of {run.pipeline}: nothing to compare it with")
        return same[later[0] + 1]


def instance_of(run_id: str, pipeline: str) -> str:
    """The instance a record belongs to, read from its id (``<stamp>-<pipeline>[-<instance>]-<hex>``)."""
    rest = run_id[_STAMP_LENGTH + 1:]
    if not rest.startswith(pipeline + "-"):
        return "default"
    middle = rest[len(pipeline) + 1:].rpartition("-")[0]
    return middle or "default"


def summarize_record(data: dict[str, Any], path: Path) -> RecordSummary:
    """The listing summary of one run record (one read_record checked)."""
    pipeline = str((data.get("pipeline") or {}).get("name", "?"))
    run_id = str(data.get("run_id") or path.stem)
    steps = data.get("steps") or {}
    totals = data.get("totals") or {}
    counts = {key: int(value) for key, value in totals.items()
              if key not in ("cost_usd", "estimated_cost_usd") and isinstance(value, int | float)}
    providers = sorted({str(step.get("provider")) for step in steps.values() if step.get("provider")})
    return RecordSummary(
        run_id=run_id, pipeline=pipeline, instance=instance_of(run_id, pipeline), status=str(data.get("status", "?")),
        counts=counts, estimated_usd=float(totals.get("estimated_cost_usd") or 0.0), cost_usd=float(totals.get("cost_usd") or 0.0),
        started_at=data.get("started_at"), finished_at=data.get("finished_at"), providers=providers,
        preview=bool(data.get("preview")), path=str(path),
    )


def read_record(path: Path) -> dict[str, Any]:
    """One run record as JSON data, its types checked; DamagedState naming the file and field
    when it is unreadable or of the wrong shape (a record that is gone is damaged too)."""
    try:
        return read_state(path, "record")
    except FileNotFoundError:
        raise DamagedState(path, "the file is gone") from None


def _cached_summary(entry: Any, stamp: list[int], path: Path) -> RecordSummary | None:
    """The index's summary of an unchanged record; None when the index entry is stale or damaged
    (the index is a state file too: it is rebuilt, never trusted)."""
    if not isinstance(entry, dict) or entry.get("stamp") != stamp or not isinstance(entry.get("summary"), dict):
        return None
    try:
        summary = RecordSummary(**{**entry["summary"], "path": str(path)})
    except TypeError:
        return None
    fields = (summary.run_id, summary.pipeline, summary.instance, summary.status)
    numbers_ok = all(isinstance(value, int | float) for value in (summary.estimated_usd, summary.cost_usd))
    if not all(isinstance(value, str) for value in fields) or not isinstance(summary.counts, dict) or not numbers_ok:
        return None
    return summary


def _summaries(workspace: Workspace, damaged: list[str]) -> list[RecordSummary]:
    """Every record's summary, from the index where the file has not changed since; a damaged
    record is skipped and named in ``damaged``."""
    runs_dir = workspace.runs_dir
    index_path = workspace.index_dir / INDEX_NAME
    try:
        index = json.loads(index_path.read_text("utf-8"))
        cached = index.get("records", {}) if index.get("version") == INDEX_VERSION else {}
    except (OSError, ValueError, AttributeError, RecursionError):
        cached = {}
    if not isinstance(cached, dict):
        cached = {}
    fresh: dict[str, Any] = {}
    summaries = []
    changed = False
    for path in sorted(runs_dir.glob("*.json")) if runs_dir.is_dir() else []:
        try:
            stat = path.stat()
        except OSError:
            continue
        stamp = [stat.st_size, stat.st_mtime_ns]
        summary = _cached_summary(cached.get(path.name), stamp, path)
        if summary is None:
            try:
                data = read_record(path)
            except DamagedState as error:
                damaged.append(f"skipped the damaged run record {error}")
                continue
            if not data.get("run_id") and not data.get("steps"):
                continue  # not a run record
            summary = summarize_record(data, path)
            changed = True
        fresh[path.name] = {"stamp": stamp, "summary": {**asdict(summary), "path": ""}}
        summaries.append(summary)
    if changed or set(fresh) != set(cached):
        try:  # a cache: losing it costs one slower listing
            atomic_write_json(index_path, {"version": INDEX_VERSION, "records": fresh}, durable=False, compact=True)
        except OSError:
            pass
    return summaries


def _batch_records(workspace: Workspace, damaged: list[str]) -> list[dict[str, Any]]:
    folder = batches_dir(workspace.runs_dir)
    documents = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            documents.append(read_state(path, "batch"))
        except FileNotFoundError:
            continue
        except DamagedState as error:
            damaged.append(f"skipped the damaged batch record {error}")
    return documents


def load_history(workspace: Workspace) -> History:
    """Every run of the workspace, newest first (records of runs whose process is gone say ``abandoned``)."""
    notice_abandoned(workspace)
    damaged: list[str] = []
    summaries = _summaries(workspace, damaged)
    by_id = {summary.run_id: summary for summary in summaries}
    grouped: set[str] = set()
    runs: list[Run] = []
    for batch in _batch_records(workspace, damaged):
        records = [by_id[item["run_id"]] for item in batch["instances"] if item.get("run_id") in by_id]
        grouped.update(record.run_id for record in records)
        pipeline = str((batch.get("pipeline") or {}).get("name", "?"))
        override = "interrupted" if batch.get("status") == "interrupted" else None
        if batch.get("rejected") and not override:
            override = "failed"  # rejected rows make the run exit 1
        runs.append(Run(str(batch["batch_id"]), pipeline, str(batch.get("kind", "batch")), records, batch, override))
    leftovers = [summary for summary in summaries if summary.run_id not in grouped]
    runs += [Run(summary.run_id, summary.pipeline, "single", [summary]) for summary in leftovers if summary.instance == "default"]
    runs += _legacy_groups([summary for summary in leftovers if summary.instance != "default"])
    runs.sort(key=lambda run: (run.started_at or "", run.id), reverse=True)
    return History(runs, damaged)


def _legacy_groups(records: list[RecordSummary]) -> list[Run]:
    """Instance records without a batch record: one group per pipeline and burst of start times
    (an instance name seen twice starts a new group)."""
    groups: list[Run] = []
    current: dict[str, Run] = {}
    for record in sorted(records, key=lambda r: (r.pipeline, r.started_at or "")):
        run = current.get(record.pipeline)
        start = _parse_time(record.started_at) or 0.0
        last = _parse_time(run.records[-1].started_at) if run else None
        if run is None or last is None or start - last > _LEGACY_GAP_SECONDS \
                or any(other.instance == record.instance for other in run.records):
            run = current[record.pipeline] = Run(record.run_id, record.pipeline, "instances", [])
            groups.append(run)
        run.records.append(record)
    return groups


def _parse_time(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


def filter_runs(runs: list[Run], pipeline: str | None = None, status: str | None = None) -> list[Run]:
    """The runs of ``pipeline`` and/or with ``status``."""
    return [run for run in runs if (pipeline is None or run.pipeline == pipeline) and (status is None or run.status == status)]


def run_records(run: Run) -> dict[str, dict[str, Any]]:
    """Instance name -> full run record, in instance order. A record that turns out damaged is
    left out and named in ``run.problems``."""
    records = {}
    for summary in run.records:
        try:
            records[summary.instance] = read_record(Path(summary.path))
        except DamagedState as error:
            run.problems.append(f"skipped the damaged run record {error}")
    return records


def age(value: str | None, now: float | None = None) -> str:
    """``5s``, ``3m``, ``2h``, ``4d`` since ``value``."""
    start = _parse_time(value)
    if start is None:
        return "-"
    seconds = max(0.0, (now if now is not None else dt.datetime.now(dt.UTC).timestamp()) - start)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def steps_in_order(record: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """A record's steps in the pipeline's order (``step_order``; records before it: by id)."""
    steps = record.get("steps") or {}
    order = [step for step in record.get("step_order") or [] if step in steps]
    return [(step, steps[step]) for step in order + sorted(set(steps) - set(order))]
