"""How a ``for_each`` step fans out, in words the graph can show (``× 4``, ``each of vars.colors``)."""

from __future__ import annotations

import re

from wanflow.pipelines.model import Pipeline, StepSpec

_STEP_LIST = re.compile(r"^\{\{\s*steps\.([A-Za-z0-9_-]+)\.images\s*\}\}$")
_VAR_LIST = re.compile(r"^\{\{\s*vars\.([A-Za-z0-9_]+)\s*\}\}$")


def fan_out_count(pipeline: Pipeline, step: StepSpec) -> int | None:
    """How many sub-tasks ``step`` makes, when that is known before the run (else None)."""
    spec = step.for_each
    if isinstance(spec, list):
        return len(spec)
    if not isinstance(spec, str):
        return None
    match = _STEP_LIST.match(spec.strip())
    if match and match.group(1) in pipeline.steps:
        source = pipeline.steps[match.group(1)]
        params = source.model.with_defaults(source.params) if not any(isinstance(v, str) and "{{" in v
                                                                      for v in source.params.values()) else None
        return source.model.image_count(params) if params is not None else None
    match = _VAR_LIST.match(spec.strip())
    if match and isinstance(pipeline.vars.get(match.group(1)), list):
        return len(pipeline.vars[match.group(1)])
    return None


def fan_out_label(pipeline: Pipeline, step: StepSpec) -> str | None:
    """``for each × 4`` or ``for each of steps.hero.images``; None for a step without ``for_each``."""
    if step.for_each is None:
        return None
    count = fan_out_count(pipeline, step)
    if count is not None:
        return f"for each × {count}"
    text = str(step.for_each).strip().removeprefix("{{").removesuffix("}}").strip()
    return f"for each of {text[:40]}"
