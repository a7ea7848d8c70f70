"""Run records whose process died: ``running`` forever unless someone says otherwise.

Every live run holds the workspace lock shared, so whoever holds it exclusively knows that no
run is alive: any record still ``running`` then belongs to a dead process, and is marked
``abandoned`` (with when it was noticed). Only records written since the last check are read,
and of those only the ones whose stat stamp changed since the last check saw them settled.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from wanflow._bounded import read_bounded
from wanflow._fs import atomic_write_json
from wanflow.state.locks import WorkspaceLock
from wanflow.state.state_files import MAX_STATE_BYTES, DamagedState, parse_json
from wanflow.state.workspace import Workspace

CHECKED_MARK = ".abandoned-checked"


def mark_abandoned(runs_dir: Path) -> list[str]:
    """Mark every ``running`` record in ``runs_dir`` abandoned; call only while no run can be alive.

    Returns the run ids it marked.
    """
    if not runs_dir.is_dir():
        return []
    mark = runs_dir / CHECKED_MARK
    since, settled = _last_check(mark)
    marked = []
    still_settled: dict[str, list[int]] = {}
    for path in runs_dir.glob("*.json"):
        try:
            stamp = path.stat()
            if stamp.st_mtime < since:
                continue
            key = [stamp.st_size, stamp.st_mtime_ns, stamp.st_ino]  # a record is replaced whole: a new inode
            if settled.get(path.name) == key:  # seen finished last time and not written since
                still_settled[path.name] = key
                continue
            record = parse_json(read_bounded(path, MAX_STATE_BYTES), path)
        except (OSError, DamagedState):
            continue
        if not isinstance(record, dict) or record.get("status") != "running":
            still_settled[path.name] = key
            continue
        record["status"] = "abandoned"
        record["abandoned_noticed_at"] = time.time()
        atomic_write_json(path, record, durable=False)
        marked.append(str(record.get("run_id", path.stem)))
    atomic_write_json(mark, {"settled": still_settled}, durable=False, compact=True)
    return marked


def _last_check(mark: Path) -> tuple[float, dict[str, Any]]:
    """When the last check ran (less a minute of slack for clock granularity and skew) and the
    stamps of the records it found settled; (0, {}) when there is no mark or it is damaged, so
    every record is read: a lost mark costs time, never a missed dead run."""
    try:
        since = mark.stat().st_mtime - 60
    except OSError:
        return 0.0, {}
    try:
        data = parse_json(read_bounded(mark, MAX_STATE_BYTES), mark)
    except (OSError, DamagedState):  # an empty mark from an older wanflow, or a damaged one
        return since, {}
    settled = data.get("settled") if isinstance(data, dict) else None
    return since, settled if isinstance(settled, dict) else {}


def notice_abandoned(workspace: Workspace) -> list[str]:
    """When no run is alive in ``workspace`` (its lock is free), mark the records left ``running``
    abandoned: reading the history tells a dead run from a live one. Returns the run ids marked."""
    if not workspace.runs_dir.is_dir():
        return []
    lock = WorkspaceLock(workspace.locks_dir)
    try:
        if not lock.try_lock(exclusive=True):
            return []  # a run is alive: its record really is running (the next run or gc sorts out the rest)
    except OSError:  # a read-only or missing state folder: listing must still work
        return []
    try:
        return mark_abandoned(workspace.runs_dir)
    finally:
        lock.release()


@asynccontextmanager
async def running_in(workspace: Workspace, on_wait: Callable[[], None] | None = None) -> AsyncIterator[None]:
    """Hold the workspace lock shared for a run (or a whole batch).

    Whoever finds no other run alive (the exclusive lock is free) first marks the records dead
    runs left ``running`` as abandoned.
    """
    lock = WorkspaceLock(workspace.locks_dir)
    if lock.try_lock(exclusive=True):
        mark_abandoned(workspace.runs_dir)
    await lock.hold_shared(on_wait)  # converts the exclusive lock, or waits for a gc to finish
    try:
        yield
    finally:
        lock.release()
