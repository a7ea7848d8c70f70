"""``wanflow pick``: check a choice against the pipeline and the lockfile, then keep it there.

A pick step is named by its id; an item of a pick step that fans out (``for_each``) by its unit
name, ``best[1]``, so each item is picked on its own. A matrix combination or a batch row is
named with ``instance``: a matrix's names come from the pipeline, a batch row's from the lockfile
(the row has run, so the lockfile knows it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from wanflow._exceptions import UsageError
from wanflow.pipelines.model import Pipeline
from wanflow.records import lockfile

_UNIT = re.compile(r"(?P<step>[A-Za-z][A-Za-z0-9_]*)(\[(?P<item>[0-9]+)\])?")


def record_choice(pipeline: Pipeline, unit: str, index: int, instance: str, matrix_names: list[str] | None) -> str:
    """Keep candidate ``index`` for the pick ``unit`` (``best`` or ``best[1]``) of ``instance``;
    returns what was recorded. UsageError (nothing written) for anything that does not fit."""
    found = _UNIT.fullmatch(unit)
    spec = pipeline.steps.get(found["step"]) if found else None
    item = found["item"] if found else None
    if spec is None or spec.op != "pick":
        picks = ", ".join(name for name, step in pipeline.steps.items() if step.op == "pick") or "none in this pipeline"
        raise UsageError(f"wanflow pick: '{unit}' is not an op: pick step (pick steps: {picks})")
    if index < 0:
        raise UsageError("wanflow pick: INDEX counts from 0")
    path = lockfile.lock_path(pipeline)
    data = lockfile.read_lock(path)
    _check_instance(instance, matrix_names, data, path.name)
    locked_steps = lockfile.locked_instance(data, instance).get("steps") or {}
    if spec.for_each is not None and item is None:
        items = sorted((name for name in locked_steps if name.startswith(f"{spec.id}[")), key=_item_number)
        known = f" (the last run had {', '.join(items)})" if items else ""
        raise UsageError(f"wanflow pick: {spec.id} fans out with for_each, so each item is picked on its own: "
                         f"name one as {spec.id}[0], {spec.id}[1], ...{known}")
    if spec.for_each is None and item is not None:
        raise UsageError(f"wanflow pick: {spec.id} has no for_each items; name it as {spec.id}")
    locked = locked_steps.get(unit)
    inputs = ((locked or {}).get("request") or {}).get("inputs") or {}
    count = len(inputs.get("images") or inputs.get("videos") or [])
    if count and index >= count:
        raise UsageError(f"wanflow pick: {unit} has {count} candidates; INDEX is 0 to {count - 1}")
    lockfile.record_pick(path, pipeline.name, unit, index, instance)
    seen = f" of {count} candidates" if count else ""
    where = "" if instance == lockfile.DEFAULT_INSTANCE else f" (instance {instance})"
    return f"{unit}{where}: candidate {index}{seen} picked, kept in {path.name}; the next run re-runs only the steps after it"


def _check_instance(instance: str, matrix_names: list[str] | None, data: Mapping[str, Any] | None, lock_name: str) -> None:
    if matrix_names is not None:
        if instance not in matrix_names:
            raise UsageError(f"wanflow pick: no instance '{instance}' (instances: {', '.join(matrix_names)})")
    elif instance != lockfile.DEFAULT_INSTANCE:  # a batch row: known once it has run (the lockfile names it)
        names = sorted(set((data or {}).get("instances") or {}) - {lockfile.DEFAULT_INSTANCE})
        if instance not in names:
            raise UsageError(f"wanflow pick: no instance '{instance}' in {lock_name} (batch rows that have run: "
                             f"{', '.join(names) or 'none yet'}; run the batch first, then pick a row by its name)")


def _item_number(name: str) -> int:
    return int(name[name.index("[") + 1:-1])
