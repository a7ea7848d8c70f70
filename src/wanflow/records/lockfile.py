"""``<pipeline>.lock``: what a successful run resolved, made to be committed (like ``dvc.lock``).

For every instance and step (every item of a ``for_each`` step): the model, provider, resolved
seed, the full canonical request, its cache key and the output hashes. Sorted, indented JSON,
so a diff shows exactly which request changed.

``wanflow run --frozen`` refuses to run when the pipeline or its vars would change any resolved
request; ``--reseed`` draws new seeds and the lockfile keeps them for later runs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wanflow._exceptions import FrozenMismatch, UsageError
from wanflow._fs import atomic_write_json, canonical_json
from wanflow.pipelines.model import Pipeline
from wanflow.records.results import RunResult, StepResult
from wanflow.state.keys import diff_requests

LOCK_VERSION = 1
DEFAULT_INSTANCE = "default"


def lock_path(pipeline: Pipeline) -> Path:
    """``examples/ad/ad.yaml`` -> ``examples/ad/ad.lock``."""
    return pipeline.path.with_suffix(".lock")


def read_lock(path: Path) -> dict[str, Any] | None:
    """The lockfile's data, or None when there is none (or it is not a wanflow lockfile)."""
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("wanflow_lock") == LOCK_VERSION else None


def lock_problem(path: Path) -> str | None:
    """Why an existing lockfile cannot be used (read_lock gave None), or None when there is none."""
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        return f"{path} cannot be read ({getattr(error, 'strerror', None) or error})"
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        return (f"{path} is not valid JSON (line {error.lineno}, column {error.colno}: {error.msg}); restore it from "
                f"version control, or delete it and run once without --frozen")
    if not isinstance(data, dict) or data.get("wanflow_lock") != LOCK_VERSION:
        return f"{path} is not a wanflow lockfile (version {LOCK_VERSION}); delete it and run once without --frozen"
    return None


def locked_instance(data: Mapping[str, Any] | None, instance: str = DEFAULT_INSTANCE) -> dict[str, Any]:
    """One instance's entries ({} when absent)."""
    if not data:
        return {}
    return dict((data.get("instances") or {}).get(instance) or {})


def pinned_seeds(data: Mapping[str, Any] | None, instance: str = DEFAULT_INSTANCE) -> dict[str, int]:
    """Seeds drawn by ``--reseed`` for an instance: kept until the next ``--reseed``."""
    return _whole_numbers(locked_instance(data, instance).get("reseeded"), "reseeded", instance, 2**31 - 1)


# What made an open-weights result, beside its request: the lockfile says which weights, library
# versions, device and dtype gave these frames (the same seed reproduces them on such a machine).
_ENGINE_KEYS = ("weights", "diffusers", "torch", "device", "dtype")


def picks(data: Mapping[str, Any] | None, instance: str = DEFAULT_INSTANCE) -> dict[str, int]:
    """``wanflow pick`` choices for an instance (op: pick steps): kept until the next pick."""
    return _whole_numbers(locked_instance(data, instance).get("picked"), "picked", instance, 10_000)


def _whole_numbers(entries: Any, what: str, instance: str, largest: int) -> dict[str, int]:
    """A lockfile mapping of step -> whole number, as written by wanflow; a hand-edited or hostile
    value (text, a fraction, a boolean, a negative number) is a clear error, never a guess."""
    if entries is None:
        return {}
    if not isinstance(entries, Mapping):
        raise UsageError(f"the lockfile's {what} entries of instance {instance!r} are not a mapping; "
                         "fix or delete the lockfile (wanflow writes it anew)")
    for step, value in entries.items():
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= largest:
            raise UsageError(f"the lockfile's {what} value of step {str(step)[:80]!r} (instance {instance!r}) is "
                             f"{str(value)[:40]!r} (allowed: a whole number from 0 to {largest}); fix it, or "
                             "rerun the command that writes it")
    return {str(step): value for step, value in entries.items()}


def record_pick(path: Path, pipeline_name: str, step: str, index: int, instance: str = DEFAULT_INSTANCE) -> None:
    """Keep ``index`` as the choice of pick step ``step`` in the lockfile at ``path`` (beside the seeds)."""
    data = read_lock(path)
    if data is None and lock_problem(path):
        raise UsageError(f"wanflow pick: {lock_problem(path)}")
    entry = locked_instance(data, instance)
    entry["picked"] = dict(sorted({**(entry.get("picked") or {}), step: index}.items()))
    entry.setdefault("steps", {})
    write_lock(path, pipeline_name, {instance: entry}, keep=data)


def _unit_entries(step: StepResult) -> dict[str, dict[str, Any]]:
    units = step.items if step.items is not None else [step]
    entries: dict[str, dict[str, Any]] = {}
    for unit in units:
        if unit.request is None or not unit.ok:
            continue
        entries[unit.step_id] = {
            "model": unit.model,
            "provider": unit.provider,
            **({} if unit.seed is None else {"seed": unit.seed}),  # an op step draws none
            "seed_source": unit.seed_source,
            "cache_key": unit.cache_key,
            "request": unit.request,
            "outputs": [f"sha256:{artifact.sha256}" for _, artifact in (unit.outputs.all() if unit.outputs else [])],
        }
        engine = {key: unit.provider_info[key] for key in _ENGINE_KEYS if key in unit.provider_info}
        if engine:
            entries[unit.step_id]["engine"] = engine
    return entries


def instance_entry(pipeline: Pipeline, result: RunResult) -> dict[str, Any]:
    """The lockfile section for one finished instance."""
    steps: dict[str, Any] = {}
    for step in result.steps.values():
        steps.update(_unit_entries(step))
    entry: dict[str, Any] = {"vars": pipeline.vars, "steps": steps}
    if pipeline.pinned_seeds:
        entry["reseeded"] = dict(sorted(pipeline.pinned_seeds.items()))
    if pipeline.picks:
        entry["picked"] = dict(sorted(pipeline.picks.items()))
    return entry


def write_results(pipeline: Pipeline, instances: Iterable[tuple[Pipeline, str]], results: Mapping[str, RunResult]) -> None:
    """After a run: the lockfile sections of the instances that succeeded (the one place it is written).

    ``instances`` are (pipeline, name) pairs in plan order; sections of instances not run, or not
    successful, this time are kept as they were."""
    entries = {name: instance_entry(instance, results[name]) for instance, name in instances
               if name in results and results[name].ok}
    if not entries:
        return
    path = lock_path(pipeline)
    write_lock(path, pipeline.name, entries, keep=read_lock(path))  # re-read: another run may have written it


def write_lock(path: Path, pipeline_name: str, instances: Mapping[str, dict[str, Any]], keep: Mapping[str, Any] | None = None) -> None:
    """Write the lockfile (instances not run this time are kept from ``keep``)."""
    merged = dict((keep or {}).get("instances") or {})
    merged.update(instances)
    document = {"wanflow_lock": LOCK_VERSION, "pipeline": pipeline_name, "instances": dict(sorted(merged.items()))}
    if read_lock(path) == json.loads(canonical_json(document)):  # as JSON reads it back (tuples are lists)
        return  # a no-op rerun: the same lock, so no durable rewrite (and no new mtime for tools that watch it)
    atomic_write_json(path, document)


@dataclass(frozen=True)
class LockDifference:
    """One unit whose resolved request differs from the lock."""

    unit: str
    changes: tuple[str, ...]

    def format(self) -> str:
        return f"{self.unit}: " + "; ".join(self.changes)


def compare(locked: Mapping[str, Any], requests: Mapping[str, dict[str, Any]], ignore_upstream_inputs: bool) -> list[LockDifference]:
    """Differences between locked requests and ``requests`` (unit name -> canonical request).

    Before running, inputs that come from upstream steps are unknown (``sha256:`` of nothing):
    with ``ignore_upstream_inputs`` they are left out of the comparison and checked at run time.
    """
    steps = locked.get("steps") or {}
    differences = []
    for unit in sorted(set(steps) | set(requests)):
        if unit not in requests:
            differences.append(LockDifference(unit, ("in the lockfile but no longer in the pipeline",)))
            continue
        if unit not in steps:
            differences.append(LockDifference(unit, ("new: not in the lockfile",)))
            continue
        before, after = dict(steps[unit]["request"]), dict(requests[unit])
        if ignore_upstream_inputs:
            for request in (before, after):
                request.pop("adaptations", None)
            after_inputs = after.get("inputs") or {}
            before["inputs"] = {slot: [x for x, y in zip(items, after_inputs.get(slot, items), strict=False) if y != "sha256:"]
                                for slot, items in (before.get("inputs") or {}).items()}
            after["inputs"] = {slot: [x for x in items if x != "sha256:"] for slot, items in after_inputs.items()}
        changes = diff_requests(before, after)
        if changes:
            differences.append(LockDifference(unit, tuple(changes)))
    return differences


def static_units(pipeline: Pipeline, provider_override: str | None) -> dict[str, dict[str, Any]]:
    """Every unit's request as far as it is known before running (upstream inputs unknown)."""
    from wanflow.pipelines.static_checks import static_requests

    return {name: request.canonical() for name, request in static_requests(pipeline, provider_override).items()}


def prepare(pipeline: Pipeline, data: Mapping[str, Any] | None, *, frozen: bool, reseed_all: bool,
            reseed_steps: frozenset[str], provider_override: str | None,
            instance: str = DEFAULT_INSTANCE) -> dict[str, Any] | None:
    """Apply the lockfile ``data`` (see read_lock) before a run: keep reseeded seeds, draw new ones,
    check ``--frozen``.

    Returns the locked instance for run-time checks under ``--frozen`` (else None). Raises
    FrozenMismatch (nothing has run) when the pipeline or vars would change a locked request.
    """
    pipeline.pinned_seeds = pinned_seeds(data, instance)
    pipeline.picks = picks(data, instance)
    if frozen and (reseed_all or reseed_steps):
        raise UsageError("--frozen reproduces the locked seeds; it cannot be combined with --reseed")
    for step in pipeline.steps.values():
        if (reseed_all or step.id in reseed_steps) and step.seed is None and step.op is None:
            import secrets  # with hmac and random, ~2 ms to import: only for --reseed

            pipeline.pinned_seeds[step.id] = secrets.randbelow(2_147_483_648)
    if not frozen:
        return None
    if data is None:
        problem = lock_problem(lock_path(pipeline))
        if problem:
            raise UsageError(f"--frozen: {problem}")
    locked = locked_instance(data, instance)
    if not locked:
        raise UsageError(f"--frozen needs {lock_path(pipeline).name} with instance '{instance}'; run once without --frozen to write it")
    differences = compare(locked, static_units(pipeline, provider_override), ignore_upstream_inputs=True)
    if differences:
        raise FrozenMismatch(lock_path(pipeline), differences, instance)
    return locked

