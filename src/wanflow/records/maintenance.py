"""Keeping the store honest and small: ``wanflow cache verify`` and ``wanflow cache gc``."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wanflow._bounded import read_bounded
from wanflow._fs import sha256_file
from wanflow.records.abandoned import mark_abandoned
from wanflow.state.journal import Journal
from wanflow.state.locks import WorkspaceLock
from wanflow.state.state_files import DamagedState, parse_json, read_state
from wanflow.state.workspace import Workspace

if TYPE_CHECKING:
    from wanflow.records.shared_gc import SharedGcReport
    from wanflow.state.shared_store import SharedStore

DEFAULT_KEEP_DAYS = 30.0


@dataclass
class VerifyReport:
    """What ``cache verify`` found."""

    objects_checked: int = 0
    corrupt: list[str] = field(default_factory=list)  # quarantined object names
    entries_checked: int = 0
    entries_missing_objects: list[str] = field(default_factory=list)
    abandoned: list[str] = field(default_factory=list)  # run records marked abandoned
    shared_store: str | None = None  # the shared store's URL, when the workspace has one
    shared_objects_checked: int = 0
    shared_corrupt: list[str] = field(default_factory=list)  # moved to the store's quarantine/
    shared_entries_checked: int = 0
    shared_entries_missing_objects: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.corrupt or self.entries_missing_objects or self.shared_corrupt
                    or self.shared_entries_missing_objects)


def _objects(workspace: Workspace) -> Iterator[Path]:
    root = workspace.store.root
    if not root.is_dir():
        return
    for folder in sorted(root.iterdir()):
        if folder.is_dir() and len(folder.name) == 2:
            yield from sorted(path for path in folder.iterdir() if path.is_file())


def _entries(workspace: Workspace) -> Iterator[tuple[Path, dict[str, Any]]]:
    root = workspace.cache.root
    if not root.is_dir():
        return
    for path in sorted(root.glob("*/*.json")):
        try:
            data = parse_json(read_bounded(path, 64_000_000), path)
        except (OSError, DamagedState):
            data = {}
        yield path, data if isinstance(data, dict) else {}


def _entry_objects(entry: dict[str, Any]) -> list[str]:
    outputs = entry.get("outputs", {})
    found = [item["sha256"] for item in outputs.get("images", [])]
    found += [outputs[name]["sha256"] for name in ("video", "text") if outputs.get(name)]
    return [str(sha) for sha in found]


def verify(workspace: Workspace) -> VerifyReport:
    """Rehash every object; quarantine the corrupt ones; list cache entries that lost objects.

    Nothing is deleted: a corrupt object moves to ``.wanflow/quarantine/``, and the step whose
    entry needs it simply runs again next time (a lookup never serves a damaged object).
    """
    report = VerifyReport()
    lock = WorkspaceLock(workspace.locks_dir)
    if lock.try_lock(exclusive=True):  # no run is alive: records still "running" are dead ones
        report.abandoned = mark_abandoned(workspace.runs_dir)
    lock.release()
    quarantine = workspace.state_dir / "quarantine"
    for path in _objects(workspace):
        report.objects_checked += 1
        if sha256_file(path) != path.name:
            quarantine.mkdir(parents=True, exist_ok=True)
            shutil.move(str(path), quarantine / f"{path.name}.{int(time.time())}")
            report.corrupt.append(path.name)
    for path, entry in _entries(workspace):
        report.entries_checked += 1
        try:
            missing = [sha for sha in _entry_objects(entry) if not workspace.store.path_for(sha).is_file()]
        except (AttributeError, KeyError, TypeError, ValueError):  # not the shape wanflow writes
            missing = ["?"]
        if missing or not entry:
            report.entries_missing_objects.append(path.stem)
    if workspace.shared is not None:
        _verify_shared(workspace.shared, report)
    return report


def _verify_shared(store: SharedStore, report: VerifyReport) -> None:
    """The same checks on the shared store: every object rehashed (a corrupt one moves to the
    store's ``quarantine/``, where no machine's lookup finds it), every cache entry's objects present."""
    report.shared_store = store.public_url
    for name in store.object_names():
        report.shared_objects_checked += 1
        if store.object_hash(name) != name:
            store.quarantine_object(name)
            report.shared_corrupt.append(name)
    for prefix in store.names("cache"):
        for entry_name in store.names(f"cache/{prefix}"):
            report.shared_entries_checked += 1
            try:
                entry = json.loads(store.read(f"cache/{prefix}/{entry_name}") or b"")
                missing = [sha for sha in _entry_objects(entry) if not store.has_object(sha)]
            except (AttributeError, KeyError, TypeError, ValueError):  # not the shape wanflow writes
                missing = ["?"]
            if missing:
                report.shared_entries_missing_objects.append(entry_name.removesuffix(".json"))


@dataclass
class GcReport:
    """What ``cache gc`` removed (or would remove, with ``dry_run``)."""

    policy: str
    kept_entries: int = 0
    removed_entries: list[str] = field(default_factory=list)
    kept_objects: int = 0
    removed_objects: list[str] = field(default_factory=list)
    freed_bytes: int = 0
    dry_run: bool = False
    damaged: list[str] = field(default_factory=list)  # state files that made gc keep everything
    shared: SharedGcReport | None = None  # the shared store's sweep, when the workspace has one


def _record_references(record: dict[str, Any]) -> tuple[set[str], set[str]]:
    """(cache keys, object hashes) a checked run record refers to (its items' too)."""
    keys: set[str] = set()
    objects: set[str] = set()
    steps = list((record.get("steps") or {}).values())
    while steps:
        step = steps.pop()
        steps.extend(step.get("items") or [])
        if step.get("cache_key"):
            keys.add(step["cache_key"])
        objects.update(output["sha256"] for output in step.get("outputs") or [] if output.get("sha256"))
        request = step.get("request") or {}
        for items in (request.get("inputs") or {}).values():
            objects.update(item.removeprefix("sha256:") for item in items if item.startswith("sha256:"))
        for adaptation in [*(request.get("adaptations") or []), *(step.get("adaptations") or [])]:
            objects.update(str(adaptation.get(side, "")).removeprefix("sha256:") for side in ("from", "to"))
    return keys, objects


def _lockfile_references(root: Path, damaged: list[str]) -> set[str]:
    """Cache keys named in committed lockfiles (``*.lock`` with a ``wanflow_lock`` header) under
    the project; a wanflow lockfile of the wrong shape is named in ``damaged``."""
    keys: set[str] = set()
    for path in root.rglob("*.lock"):
        if ".wanflow" in path.parts or not path.is_file() or path.stat().st_size > 10_000_000:
            continue
        try:
            data = parse_json(read_bounded(path, 10_000_000), path)
        except (OSError, DamagedState):
            continue  # not JSON: not a wanflow lockfile
        if not isinstance(data, dict) or "wanflow_lock" not in data:
            continue
        try:
            for instance in (data.get("instances") or {}).values():
                for step in (instance.get("steps") or {}).values():
                    if step.get("cache_key"):
                        keys.add(str(step["cache_key"]))
        except (AttributeError, TypeError):
            damaged.append(f"the lockfile {path} does not have the shape wanflow writes")
    return keys


def collect_garbage(workspace: Workspace, keep_days: float = DEFAULT_KEEP_DAYS, dry_run: bool = False) -> GcReport:
    """Remove cache entries and objects that nothing recent refers to.

    Kept: everything referenced by the newest run record of each pipeline, by any run record of
    the last ``keep_days`` days, by a lockfile in the project, or by a paid task still in the
    journal. Run records themselves are kept.
    """
    report = GcReport(
        policy=f"keep what the newest run of each pipeline, any run of the last {keep_days:g} days, "
               "any lockfile in the project, or the task journal refers to",
        dry_run=dry_run,
    )
    lock = WorkspaceLock(workspace.locks_dir)
    lock.hold_exclusive("cache gc")
    try:
        _collect(workspace, keep_days, dry_run, report)
        if workspace.shared is not None:
            _collect_shared(workspace, keep_days, dry_run, report)
        return report
    finally:
        lock.release()


def _collect_shared(workspace: Workspace, keep_days: float, dry_run: bool, report: GcReport) -> None:
    """The shared store's sweep (``shared_gc.py``), keeping what this workspace keeps too."""
    from wanflow.records.shared_gc import SharedGcReport, collect_shared

    assert workspace.shared is not None
    damaged: list[str] = []
    keep_keys, keep_objects = _references(workspace, keep_days, damaged)
    if damaged or report.damaged:
        report.shared = SharedGcReport(store=workspace.shared.public_url, skipped="this workspace's state files are damaged")
        return
    for path, entry in _entries(workspace):
        if path.stem in keep_keys:
            keep_objects.update(_entry_objects(entry))
    report.shared = collect_shared(workspace.shared, keep_keys, keep_objects, keep_days, dry_run, _record_references)


def _collect(workspace: Workspace, keep_days: float, dry_run: bool, report: GcReport) -> GcReport:
    mark_abandoned(workspace.runs_dir)  # nothing runs while gc holds the lock
    keep_keys, keep_objects = _references(workspace, keep_days, report.damaged)
    if report.damaged:
        # Fail closed: a damaged record, journal or lockfile may refer to anything, and removing
        # what a paid result needs means paying again.
        report.policy += "; nothing was removed, because some state files are damaged (repair or delete them)"
        report.kept_entries = sum(1 for _ in _entries(workspace))
        report.kept_objects = sum(1 for _ in _objects(workspace))
        return report
    for path, entry in _entries(workspace):
        if path.stem in keep_keys:
            report.kept_entries += 1
            try:
                keep_objects.update(_entry_objects(entry))
            except (AttributeError, KeyError, TypeError):  # a kept entry whose objects cannot be told
                report.damaged.append(f"the cache entry {path} does not have the shape wanflow writes")
        else:
            report.removed_entries.append(path.stem)
            report.freed_bytes += path.stat().st_size
            if not dry_run:
                path.unlink()
    if report.damaged:
        report.policy += "; no object was removed, because a kept cache entry is damaged"
        report.kept_objects = sum(1 for _ in _objects(workspace))
        return report
    for path in _objects(workspace):
        if path.name in keep_objects:
            report.kept_objects += 1
        else:
            report.removed_objects.append(path.name)
            report.freed_bytes += path.stat().st_size
            if not dry_run:
                path.unlink()
    if not dry_run:
        shutil.rmtree(workspace.tmp_dir, ignore_errors=True)
    return report


def _references(workspace: Workspace, keep_days: float, damaged: list[str]) -> tuple[set[str], set[str]]:
    """(cache keys, objects) to keep; every state file that cannot be read is named in ``damaged``."""
    cutoff = time.time() - keep_days * 86400
    journal = Journal(workspace.journal_dir)
    keep_keys: set[str] = set()
    for entry in journal.entries():
        keep_keys.add(entry.key)
        if entry.damaged:
            damaged.append(f"the task journal {workspace.journal_dir / entry.key}.jsonl is damaged")
    keep_objects: set[str] = set()
    newest: dict[str, tuple[float, dict[str, Any]]] = {}
    records = sorted(workspace.runs_dir.glob("*.json")) if workspace.runs_dir.is_dir() else []
    for path in records:
        try:
            record = read_state(path, "record")
            mtime = path.stat().st_mtime
        except FileNotFoundError:
            continue
        except DamagedState as error:
            damaged.append(f"the run record {error}")
            continue
        name = str((record.get("pipeline") or {}).get("name", ""))
        if name not in newest or mtime >= newest[name][0]:
            newest[name] = (mtime, record)
        if mtime >= cutoff:
            keys, objects = _record_references(record)
            keep_keys |= keys
            keep_objects |= objects
    for _, record in newest.values():
        keys, objects = _record_references(record)
        keep_keys |= keys
        keep_objects |= objects
    keep_keys |= _lockfile_references(workspace.root, damaged)
    return keep_keys, keep_objects
