"""``wanflow explain``: why each unit would run or hit the cache, naming what changed.

Read from the same ``Plan`` that ``run`` executes. A changed field is named with its old and new
value; a changed prompt is shown as a word diff; a var that changed since the lock (or the last
run) is named with its old and new value, since it is usually the cause.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from wanflow._exceptions import UsageError
from wanflow.planning.planner import DEFAULT_INSTANCE, Plan, PlannedStep
from wanflow.records import lockfile
from wanflow.records.diffs import render_word_diff, word_diff
from wanflow.records.request_history import RequestHistory, history_name
from wanflow.state.workspace import Workspace

_VERBS = {"cached": "cached", "run": "would run", "shared": "shared", "run-if-inputs-change": "would run if its inputs change",
          "skip": "skipped"}


@dataclass
class Explanation:
    """One step or item: its fate and why."""

    unit: str
    status: str  # cached | run | run-if-inputs-change | shared | skip
    why: str
    changed: list[str]
    vars: list[str] = field(default_factory=list)  # vars that changed: ``vars.product: red -> blue``

    def format(self) -> str:
        text = f"{self.unit}: {_VERBS[self.status]}: {self.why}"
        return text + "".join(f"\n    {change}" for change in [*self.vars, *self.changed])

    def to_json(self) -> dict[str, Any]:
        return {"step": self.unit, "status": self.status, "why": self.why, "changed": self.changed, "vars": self.vars}


def explain_plan(plan: Plan, workspace: Workspace, only: str | None = None) -> dict[str, list[Explanation]]:
    """Explain every unit of every instance (or only step ``only`` and its items)."""
    if only is not None and only not in plan.pipeline.steps:
        raise UsageError(f"no step '{only}' in {plan.pipeline.name} (steps: {', '.join(plan.pipeline.order())})")
    lock_data = lockfile.read_lock(lockfile.lock_path(plan.pipeline))
    explained: dict[str, list[Explanation]] = {}
    for instance in plan.instances:
        name = instance.name if plan.batch else plan.options.instance
        locked = lockfile.locked_instance(lock_data, name)
        history = RequestHistory(workspace.index_dir, history_name(instance.pipeline, name))
        against = "the lockfile" if locked else "the last run"
        previous_vars = (locked or {}).get("vars") if locked else history.previous_vars
        var_changes = _var_changes(previous_vars, instance.pipeline.vars)
        static = None
        explanations = []
        for unit in plan.units[instance.name if plan.batch else name]:
            if only and unit.step_id != only and not unit.step_id.startswith(f"{only}["):
                continue
            previous = (locked.get("steps") or {}).get(unit.step_id) if locked else history.previous(unit.step_id)
            if unit.status in ("run", "run-if-inputs-change") and unit.changed and previous:
                static = static if static is not None else lockfile.static_units(instance.pipeline,
                                                                                 plan.options.provider_override)
                changed = _with_prompt_diff(unit.changed, previous.get("request") or {}, static.get(unit.step_id) or {})
            else:
                changed = list(unit.changed)
            explanations.append(Explanation(unit.step_id, unit.status, _why(unit, previous, against),
                                            changed, var_changes if changed else []))
        explained[name if plan.batch else DEFAULT_INSTANCE] = explanations
    return explained


def _why(unit: PlannedStep, previous: dict[str, Any] | None, against: str) -> str:
    if unit.status in ("cached", "skip", "shared", "run-if-inputs-change"):
        return unit.reason
    if previous is None:
        return f"new: {against} has no request for it"
    if unit.changed:
        return f"changed since {against}"
    return unit.reason


def _var_changes(before: dict[str, Any] | None, after: dict[str, Any]) -> list[str]:
    if not before:
        return []
    return [f"vars.{name}: {before.get(name)!r} -> {after.get(name)!r}"
            for name in sorted(set(before) | set(after)) if before.get(name) != after.get(name)]


def _with_prompt_diff(changed: list[str], before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The changed fields, with a long prompt change shown as a word diff."""
    shown = []
    for change in changed:
        field_name = change.split(":", 1)[0]
        old, new = before.get(field_name), after.get(field_name)
        if field_name in ("prompt", "negative_prompt") and isinstance(old, str) and isinstance(new, str) and ":" not in change:
            shown.append(f"{field_name}: {render_word_diff(word_diff(old, new))}")
        else:
            shown.append(change)
    return shown
