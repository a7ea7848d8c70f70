"""``wanflow explain``: why each step would run or hit the cache, naming the changed fields."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wanflow.pipelines.model import Pipeline
from wanflow.providers.base import Provider
from wanflow.runner import lockfile
from wanflow.runner.history import RequestHistory, history_name
from wanflow.runner.plan import PlannedStep, plan_pipeline
from wanflow.runner.scheduler import RunOptions
from wanflow.runner.workspace import Workspace


@dataclass
class Explanation:
    """One step or item: its fate and why."""

    unit: str
    status: str  # cached | run | shared | maybe | skip
    why: str
    changed: list[str]

    def format(self) -> str:
        verb = {"cached": "cached", "run": "would run", "shared": "shared", "maybe": "would run if its inputs change",
                "skip": "skipped"}[self.status]
        text = f"{self.unit}: {verb}: {self.why}"
        return text + "".join(f"\n    {change}" for change in self.changed)

    def to_json(self) -> dict[str, Any]:
        return {"step": self.unit, "status": self.status, "why": self.why, "changed": self.changed}


def explain(pipeline: Pipeline, workspace: Workspace, providers: Mapping[str, Provider], options: RunOptions,
            only: str | None = None, planned_steps: list[PlannedStep] | None = None) -> list[Explanation]:
    """Explain every unit (or only ``only`` and its items); ``planned_steps`` is the instance's part
    of plan_instances() for a matrix or batch (else the pipeline is planned on its own)."""
    data = lockfile.read_lock(lockfile.lock_path(pipeline))
    locked = lockfile.locked_instance(data, options.instance)
    pipeline.pinned_seeds = lockfile.pinned_seeds(data, options.instance)
    static = lockfile.static_units(pipeline, options.provider_override)
    history = RequestHistory(workspace.index_dir, history_name(pipeline, options.instance))
    against = "the lockfile" if locked else "the last run"
    explanations = []
    for planned in planned_steps if planned_steps is not None else plan_pipeline(pipeline, workspace, providers, options):
        if only and planned.step_id != only and not planned.step_id.startswith(f"{only}["):
            continue
        previous = (locked.get("steps") or {}).get(planned.step_id) if locked else history.previous(planned.step_id)
        changed: list[str] = []
        if planned.status in ("run", "maybe") and previous and planned.step_id in static:
            differences = lockfile.compare({"steps": {planned.step_id: previous}}, {planned.step_id: static[planned.step_id]},
                                           ignore_upstream_inputs=True)
            changed = list(differences[0].changes) if differences else []
        if planned.status == "cached":
            why = "same request as a stored result"
        elif planned.status in ("skip", "shared"):
            why = planned.reason
        elif planned.status == "maybe":
            why = (f"its own request changed since {against}" if changed else "its own request is unchanged") + \
                f"; {planned.reason}"
        elif previous is None:
            why = f"new: {against} has no request for it"
        elif changed:
            why = f"changed since {against}"
        else:
            why = planned.reason
        explanations.append(Explanation(planned.step_id, planned.status, why, changed))
    return explanations
