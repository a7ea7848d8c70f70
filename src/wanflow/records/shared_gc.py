"""``cache gc`` on the shared store: the same policy as the workspace's, over every machine's records.

Kept on the store: what the newest run of each pipeline of each workspace refers to, what any
run of the last ``keep_days`` days refers to (the finished runs' records every machine pushes to
``runs/``), what this workspace keeps (its records, lockfiles and journal), every key with a task
in the shared journal or a held lease, and the objects of every kept cache entry. The sweep holds
the store's sweep lease and removes nothing while any run uses the store (``state/store_use.py``);
a damaged record or kept cache entry makes it remove nothing (fail closed).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass, field
from typing import Any

from wanflow.state.shared_store import KeyLease, SharedStore, _held
from wanflow.state.state_files import DamagedState, check_state, parse_json
from wanflow.state.store_use import live_uses, sweep_lease


@dataclass
class SharedGcReport:
    """What ``cache gc`` removed (or would remove) on the shared store."""

    store: str
    kept_entries: int = 0
    removed_entries: list[str] = field(default_factory=list)
    kept_objects: int = 0
    removed_objects: list[str] = field(default_factory=list)
    freed_bytes: int = 0
    skipped: str | None = None  # why nothing was removed on the store (in use, another gc, damage)
    damaged: list[str] = field(default_factory=list)


def _when(record: dict[str, Any]) -> float | None:
    for name in ("finished_at", "started_at"):
        try:
            return dt.datetime.fromisoformat(str(record[name])).timestamp()
        except (KeyError, ValueError, TypeError):
            continue
    return None


def _record_names(store: SharedStore) -> list[tuple[str, str]]:
    """(workspace folder, path) of every run record under ``runs/`` (records an older wanflow
    wrote straight into ``runs/`` count as one folder "")."""
    found = []
    for name in store.names("runs"):
        inside = store.names(f"runs/{name}")
        if inside:
            found += [(name, f"runs/{name}/{record}") for record in inside]
        elif name.endswith(".json"):
            found.append(("", f"runs/{name}"))
    return found


def _record_keys(store: SharedStore, keep_days: float, damaged: list[str],
                 references: Any) -> tuple[set[str], set[str]]:
    """(cache keys, objects) the store's run records keep: each workspace's newest run of each
    pipeline, and every run of the last ``keep_days`` days (a record without a time counts as new)."""
    cutoff = time.time() - keep_days * 86400
    kept: list[dict[str, Any]] = []
    newest: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
    for folder, relative in _record_names(store):
        where = f"{store.public_url}/{relative}"
        data = store.read(relative)
        if data is None:
            continue  # removed since the listing
        try:
            record = check_state(parse_json(data, where), "record", where)
        except DamagedState as error:
            damaged.append(f"the run record {error}")
            continue
        when = _when(record)
        pipeline = (folder, str((record.get("pipeline") or {}).get("name", "")))
        if pipeline not in newest or (when or time.time()) >= newest[pipeline][0]:
            newest[pipeline] = (when or time.time(), record)
        if when is None or when >= cutoff:
            kept.append(record)
    keys: set[str] = set()
    objects: set[str] = set()
    for record in [*kept, *(record for _, record in newest.values())]:
        found_keys, found_objects = references(record)
        keys |= found_keys
        objects |= found_objects
    return keys, objects


def _in_flight(store: SharedStore) -> set[str]:
    """Keys with events in the shared journal (a paid task may be pending) or a held lease."""
    keys = set(store.names("journal"))
    for key in store.names("leases"):
        epochs = sorted(name for name in store.names(f"leases/{key}") if name.endswith(".json"))
        if epochs and _held(store.read(f"leases/{key}/{epochs[-1]}")):
            keys.add(key)
    return keys


def collect_shared(store: SharedStore, keep_keys: set[str], keep_objects: set[str], keep_days: float,
                   dry_run: bool, references: Any) -> SharedGcReport:
    """Sweep the shared store; ``keep_keys`` and ``keep_objects`` are what this workspace keeps, and
    ``references(record)`` gives a run record's (cache keys, objects)."""
    report = SharedGcReport(store=store.public_url)
    lease = sweep_lease(store)
    if not lease.try_take():
        report.skipped = "another cache gc is sweeping the shared store now"
        return report
    try:
        users = live_uses(store)
        if users:  # taken after the lease: a run that starts from now on waits for the sweep
            report.skipped = f"the shared store is in use by {len(users)} run(s) ({', '.join(users[:3])})"
            return report
        _sweep(store, lease, set(keep_keys), set(keep_objects), keep_days, dry_run, references, report)
        return report
    finally:
        lease.release()


def _sweep(store: SharedStore, lease: KeyLease, keep_keys: set[str], keep_objects: set[str], keep_days: float,
           dry_run: bool, references: Any, report: SharedGcReport) -> None:
    keys, objects = _record_keys(store, keep_days, report.damaged, references)
    keep_keys |= keys | _in_flight(store)
    keep_objects |= objects
    renewed = time.monotonic()
    doomed_entries: list[tuple[str, int]] = []
    for prefix in store.names("cache"):
        for name, size in store.sizes(f"cache/{prefix}").items():
            key = name.removesuffix(".json")
            if key not in keep_keys:
                doomed_entries.append((f"cache/{prefix}/{name}", size))
                report.removed_entries.append(key)
                continue
            report.kept_entries += 1
            try:
                entry = json.loads(store.read(f"cache/{prefix}/{name}") or b"null")
                outputs = entry["outputs"]
                found = [item["sha256"] for item in outputs.get("images", [])]
                found += [outputs[kind]["sha256"] for kind in ("video", "text") if outputs.get(kind)]
                keep_objects.update(str(sha) for sha in found)
            except (AttributeError, KeyError, TypeError, ValueError, RecursionError):
                report.damaged.append(f"the shared cache entry {store.public_url}/cache/{prefix}/{name} "
                                      "does not have the shape wanflow writes")
    if report.damaged:  # fail closed: a damaged record or kept entry may refer to anything
        report.skipped = "some state files on the shared store are damaged (repair or delete them)"
        report.removed_entries.clear()
        return
    doomed_objects: list[tuple[str, int]] = []
    for prefix in store.names("objects"):
        for name, size in store.sizes(f"objects/{prefix}").items():
            if name in keep_objects:
                report.kept_objects += 1
            else:
                doomed_objects.append((f"objects/{prefix}/{name}", size))
                report.removed_objects.append(name)
    for relative, size in [*doomed_entries, *doomed_objects]:  # entries first: none is left without its objects
        report.freed_bytes += size
        if dry_run:
            continue
        if time.monotonic() - renewed > lease.seconds / 4:
            lease.renew()
            renewed = time.monotonic()
        store.delete(relative)
