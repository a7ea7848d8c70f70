"""Which paid tasks this workspace already owns: the evidence a reconciliation must respect.

A create whose answer was lost may be matched to a task the service lists, but only to one that
nothing here claims. Claims come from the journal (``Journal.claimed_task_ids``), the cache
entries and the run records (whose ``provider_info`` names the task ids). Lockfiles name no task
ids, so they add nothing. Scanning is done only when a reconciliation needs it, which is rare.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def claimed_task_ids(state_dir: Path) -> set[str]:
    """Task ids named by any cache entry or run record under ``state_dir``."""
    claimed: set[str] = set()
    for path in [*state_dir.glob("cache/*/*.json"), *state_dir.glob("runs/*.json")]:
        try:
            document = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError, RecursionError):
            continue  # an unreadable file claims nothing we could read; the journal still does
        for info in _provider_infos(document):
            claimed.update(str(task) for task in info.get("task_ids") or [] if task)
            if info.get("task_id"):
                claimed.add(str(info["task_id"]))
    return claimed


def known_task_times(state_dir: Path) -> dict[str, float]:
    """When this workspace sent the create of each task it knows (``task_sent_at`` in cache entries
    and run records): the evidence a proof of absence checks the service's task list against."""
    known: dict[str, float] = {}
    for path in [*state_dir.glob("cache/*/*.json"), *state_dir.glob("runs/*.json")]:
        try:
            document = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError):
            continue
        for info in _provider_infos(document):
            sent, task = info.get("task_sent_at"), info.get("task_id")
            if task and isinstance(sent, (int, float)) and not isinstance(sent, bool):
                known[str(task)] = float(sent)
    return known


def _provider_infos(document: Any) -> Iterator[dict[str, Any]]:
    if not isinstance(document, dict):
        return
    if isinstance(document.get("provider"), dict):  # a cache entry
        yield document["provider"]
    steps = document.get("steps")
    for step in steps.values() if isinstance(steps, dict) else []:
        yield from _step_infos(step)


def _step_infos(step: Any) -> Iterator[dict[str, Any]]:
    if not isinstance(step, dict):
        return
    if isinstance(step.get("provider_info"), dict):
        yield step["provider_info"]
    for item in step.get("items") or []:
        yield from _step_infos(item)
