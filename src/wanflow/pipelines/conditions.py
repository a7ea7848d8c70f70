"""``for_each`` and ``when``: which items a step fans out over, and whether it runs at all."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wanflow._diagnostics import Diagnostic
from wanflow.artifacts import Artifact
from wanflow.pipelines.located import FAILED, StepDiagnostics, base_context
from wanflow.pipelines.model import Pipeline, StepSpec
from wanflow.pipelines.templating import StepOutputs
from wanflow.pipelines.variables import BOOLEAN_WORDS, parse_boolean_word


def evaluate_for_each(pipeline: Pipeline, step: StepSpec, upstream: Mapping[str, StepOutputs]) -> tuple[list[Any] | None, list[Diagnostic]]:
    """The items of a ``for_each`` step (None when the step has none)."""
    if step.for_each is None:
        return None, []
    if isinstance(step.for_each, list):
        return list(step.for_each), []
    collector = StepDiagnostics(pipeline, step)
    context = base_context(pipeline, {dep: upstream[dep] for dep in step.depends_on if dep in upstream})
    value = collector.render(step.for_each, context, step.path("for_each"))
    if value is FAILED:
        return None, collector.diagnostics
    if not isinstance(value, (list, tuple)):
        collector.add(step.path("for_each"), f"for_each must give a list, got {type(value).__name__}",
                      allowed="a list, a var that is a list, or an upstream step's images")
        return None, collector.diagnostics
    if len(value) > MAX_ITEMS:
        collector.add(step.path("for_each"), f"for_each gave {len(value)} items", allowed=f"at most {MAX_ITEMS}")
        return None, collector.diagnostics
    return list(value), []


MAX_ITEMS = 10_000


def evaluate_when(pipeline: Pipeline, step: StepSpec, upstream: Mapping[str, StepOutputs]) -> tuple[bool, list[Diagnostic]]:
    """Whether ``step`` should run: a boolean, 0 or 1, or one of the documented words ("false", "no",
    "0" from a CSV, say). Anything else (``flase``, ``maybe``) is an error, never a silent yes."""
    if step.when is None or isinstance(step.when, bool):
        return step.when is not False, []
    collector = StepDiagnostics(pipeline, step)
    context = base_context(pipeline, {dep: upstream[dep] for dep in step.depends_on if dep in upstream})
    value = collector.render(step.when, context, step.path("when"))
    if value is FAILED:
        return False, collector.diagnostics
    if isinstance(value, Artifact) and value.kind == "text":
        if value.pending:  # a stand-in before the run: its text is not known yet
            return True, []
        value = value.read_text()
    decided = condition_value(value)
    if decided is None:
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        collector.add(step.path("when"), f"{shown} is neither true nor false",
                      allowed=f"a boolean, or {BOOLEAN_WORDS}")
        return False, collector.diagnostics
    return decided, []


def condition_value(value: Any) -> bool | None:
    """A ``when:`` value as a boolean: booleans, 0 and 1, and the true/false words; else None."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        return parse_boolean_word(value)
    return None
