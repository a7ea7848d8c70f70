"""``wanflow runs diff``: what differs between two runs, per instance and step.

Vars, resolved prompts (as a word diff), negative prompts, params, seed, model, provider, status,
and whether the outputs differ by hash.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any

from wanflow.records.runs import Run, run_records, steps_in_order

_WORD_FIELDS = ("prompt", "negative_prompt")


@dataclass
class Change:
    """One difference: a field, its two values, and for prompts the word diff."""

    field: str
    before: Any
    after: Any
    words: list[tuple[str, str]] | None = None  # (op, text): op is "=", "-" or "+"

    def format(self) -> str:
        """``params.n: 2 -> 3``, or a prompt as ``[-old-]{+new+}``."""
        if self.words is not None:
            return f"{self.field}: " + render_word_diff(self.words)
        return f"{self.field}: {_short(self.before)} -> {_short(self.after)}"

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"field": self.field, "before": self.before, "after": self.after}
        if self.words is not None:
            data["words"] = [{"op": op, "text": text} for op, text in self.words]
        return data


@dataclass
class InstanceDiff:
    """Differences within one instance (``default`` for a single run)."""

    instance: str
    vars: list[Change] = field(default_factory=list)
    steps: dict[str, list[Change]] = field(default_factory=dict)
    only_in: str | None = None  # "a" or "b" when the instance exists in one run only

    @property
    def empty(self) -> bool:
        return not self.vars and not any(self.steps.values()) and self.only_in is None


@dataclass
class RunDiff:
    """The whole comparison of run A with run B."""

    a: str
    b: str
    instances: list[InstanceDiff]

    def to_json(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "identical": all(item.empty for item in self.instances), "instances": {
            item.instance: {"only_in": item.only_in, "vars": [change.to_json() for change in item.vars],
                            "steps": {step: [change.to_json() for change in changes]
                                      for step, changes in item.steps.items() if changes}}
            for item in self.instances}}


def word_diff(before: str, after: str) -> list[tuple[str, str]]:
    """Word-level diff of two texts as (op, text) runs."""
    old, new = before.split(), after.split()
    runs: list[tuple[str, str]] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes():
        if tag == "equal":
            runs.append(("=", " ".join(old[i1:i2])))
            continue
        if i2 > i1:
            runs.append(("-", " ".join(old[i1:i2])))
        if j2 > j1:
            runs.append(("+", " ".join(new[j1:j2])))
    return runs


def render_word_diff(words: list[tuple[str, str]]) -> str:
    """git's ``--word-diff`` style: ``[-removed-]{+added+}``."""
    marks = {"=": "{}", "-": "[-{}-]", "+": "{{+{}+}}"}
    return " ".join(marks[op].format(text) for op, text in words)


_HASH = re.compile(r"sha256:([0-9a-f]{12})[0-9a-f]{52}")


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else value
    text = _HASH.sub(r"sha256:\1…", text)  # content hashes: 12 digits tell them apart
    return text if len(text) <= 80 else text[:77] + "..."


def _flatten(value: Any, prefix: str) -> dict[str, Any]:
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: value}


def _compare(before: dict[str, Any], after: dict[str, Any], prefix: str) -> list[Change]:
    old, new = _flatten(before, prefix), _flatten(after, prefix)
    return [Change(name, old.get(name), new.get(name)) for name in sorted(set(old) | set(new)) if old.get(name) != new.get(name)]


def _output_hashes(step: dict[str, Any]) -> list[str]:
    hashes = [str(output.get("sha256")) for output in step.get("outputs") or []]
    for item in step.get("items") or []:
        hashes += _output_hashes(item)
    return hashes


def step_changes(a: dict[str, Any] | None, b: dict[str, Any] | None) -> list[Change]:
    """What differs between two records of one step."""
    if a is None or b is None:
        return [Change("step", "present" if a else "absent", "present" if b else "absent")]
    changes: list[Change] = []
    request_a, request_b = a.get("request") or {}, b.get("request") or {}
    for name in _WORD_FIELDS:
        before, after = request_a.get(name), request_b.get(name)
        if before != after:
            words = word_diff(before or "", after or "") if isinstance(before, str) and isinstance(after, str) else None
            changes.append(Change(name, before, after, words))
    for name in ("model", "provider", "seed"):
        if a.get(name) != b.get(name):
            changes.append(Change(name, a.get(name), b.get(name)))
    params_a = {key: value for key, value in (request_a.get("params") or {}).items() if key != "seed"}
    params_b = {key: value for key, value in (request_b.get("params") or {}).items() if key != "seed"}
    changes += _compare(params_a, params_b, "params")
    changes += _compare(request_a.get("inputs") or {}, request_b.get("inputs") or {}, "inputs")
    statuses = {a.get("status"), b.get("status")}
    if len(statuses) > 1 and not statuses <= {"ran", "cached"}:  # ran vs cached is the cache at work, not a change
        changes.append(Change("status", a.get("status"), b.get("status")))
    hashes_a, hashes_b = _output_hashes(a), _output_hashes(b)
    if hashes_a != hashes_b:
        changes.append(Change("outputs", f"{len(hashes_a)} file(s)", f"{len(hashes_b)} file(s), different content"
                              if hashes_a and hashes_b else f"{len(hashes_b)} file(s)"))
    return changes


def diff_records(instance: str, a: dict[str, Any], b: dict[str, Any]) -> InstanceDiff:
    """The differences between two run records of one instance."""
    result = InstanceDiff(instance, vars=_compare(a.get("vars") or {}, b.get("vars") or {}, "vars"))
    steps_a, steps_b = dict(steps_in_order(a)), dict(steps_in_order(b))
    for step in list(steps_a) + [name for name in steps_b if name not in steps_a]:  # pipeline order
        result.steps[step] = step_changes(steps_a.get(step), steps_b.get(step))
    return result


def diff_runs(a: Run, b: Run) -> RunDiff:
    """Compare two runs instance by instance (a single run's instance is ``default``).

    A single run compared with one instance of a batch pairs them whatever the names."""
    records_a, records_b = run_records(a), run_records(b)
    if len(records_a) == 1 and len(records_b) == 1:
        (name_a, record_a), (name_b, record_b) = next(iter(records_a.items())), next(iter(records_b.items()))
        name = name_a if name_a == name_b else f"{name_a} / {name_b}"
        return RunDiff(a.id, b.id, [diff_records(name, record_a, record_b)])
    instances: list[InstanceDiff] = []
    for name in list(records_a) + [name for name in records_b if name not in records_a]:
        if name not in records_b:
            instances.append(InstanceDiff(name, only_in="a"))
        elif name not in records_a:
            instances.append(InstanceDiff(name, only_in="b"))
        else:
            instances.append(diff_records(name, records_a[name], records_b[name]))
    return RunDiff(a.id, b.id, instances)
