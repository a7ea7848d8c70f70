"""Everything checked before any step runs, once the pipeline is loaded: default params, every
step resolved against stand-in upstream outputs (templates, references, params, media, rules),
named outputs and output collisions.

``placeholder_outputs`` and ``fan_in`` give those stand-ins (and a fan-out's outputs at run time)
the shape later steps see.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from wanflow._diagnostics import Diagnostic, format_path
from wanflow._exceptions import TemplateProblem
from wanflow.artifacts import Artifact
from wanflow.catalog.loader import OUTPUT_FIELDS, load_catalog
from wanflow.pipelines.collisions import output_collisions
from wanflow.pipelines.conditions import evaluate_for_each, evaluate_when
from wanflow.pipelines.graph import template_strings
from wanflow.pipelines.located import base_context
from wanflow.pipelines.model import Pipeline, StepSpec
from wanflow.pipelines.request import StepRequest
from wanflow.pipelines.resolve import resolve_step
from wanflow.pipelines.source_document import DataPath
from wanflow.pipelines.static_media import StaticMedia
from wanflow.pipelines.templating import OutputList, StepOutputs, render

_PLACEHOLDER_TYPES = {"images": "image/png", "video": "video/mp4", "text": "text/plain"}


def check_default_params(pipeline: Pipeline) -> list[Diagnostic]:
    """A shared default must be a parameter of at least one model, or it is a typo."""
    known = sorted(load_catalog().all_param_names())
    problems = []
    path: DataPath
    for name in pipeline.default_params:
        if name == "seed":
            path = ("defaults", "params", "seed")
            problems.append(
                Diagnostic("set the seed with defaults.seed, not in params", pipeline.source.locate_key(path), path=format_path(path))
            )
        elif name not in known:
            path = ("defaults", "params", name)
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            problems.append(
                Diagnostic(f"no model has a parameter '{name}'{hint}", pipeline.source.locate_key(path), path=format_path(path), allowed=", ".join(known))
            )
    for step in pipeline.steps.values():
        if "seed" in step.params:
            path = step.path("params", "seed")
            problems.append(Diagnostic("set the seed with the step's seed: field, not in params", pipeline.source.locate_key(path), path=format_path(path)))
    return problems


def placeholder_outputs(step: StepSpec, params: Mapping[str, Any], items: int | None = None) -> StepOutputs:
    """Stand-in outputs with the shape ``step`` will produce, for checking downstream templates.

    A ``for_each`` step (``items`` sub-tasks) offers every field as a list in item order, and
    ``items`` with each sub-task's own outputs.
    """
    per_item = []
    for index in range(items if items is not None else 1):
        available: dict[str, Any] = {}
        for name in step.model.outputs_for(params):
            origin = f"steps.{step.id}.{name}" if items is None else f"steps.{step.id}.items[{index}].{name}"
            if name == "images":
                count = step.model.image_count(params)
                available[name] = OutputList(
                    [Artifact("", _PLACEHOLDER_TYPES[name], 0, pending=True, origin=f"{origin}[{i}]") for i in range(count)],
                    owner=f"steps.{step.id}",
                )
            else:
                available[name] = Artifact("", _PLACEHOLDER_TYPES[name], 0, pending=True, origin=origin)
        if (step.op is not None or step.model.open_weights is not None) and "images" in available:
            # an op's one image, or an open-weights step's one frame, is also `steps.<id>.image`
            available["image"] = available["images"][0]
        per_item.append(StepOutputs(step.id, step.model.name, available))
    return per_item[0] if items is None else fan_in(step, per_item)


def fan_in(step: StepSpec, per_item: list[StepOutputs]) -> StepOutputs:
    """The outputs of a ``for_each`` step as later steps see them: each field a list in item order."""
    fields: dict[str, Any] = {"items": OutputList(per_item, owner=f"steps.{step.id}", noun="item")}
    for name in step.model.outputs:
        if name == "images":
            fields[name] = OutputList([image for outputs in per_item for image in outputs._available.get("images", [])],
                                      owner=f"steps.{step.id}")
        else:
            fields[name] = OutputList([outputs._available[name] for outputs in per_item if name in outputs._available],
                                      owner=f"steps.{step.id}", noun=name)
    return StepOutputs(step.id, step.model.name, fields)


def resolve_statically(pipeline: Pipeline, provider_override: str | None = None) -> tuple[dict[str, StepRequest], list[Diagnostic]]:
    """Resolve every step (every item of a fan-out) against stand-in upstream outputs.

    Returns the requests by unit name (``step`` or ``step[i]``: seeds, params and providers are
    final, upstream inputs are not) and every problem found, outputs included.
    """
    media = StaticMedia(pipeline, provider_override)
    outputs: dict[str, StepOutputs] = {}
    requests: dict[str, StepRequest] = {}
    problems: list[Diagnostic] = []
    for step_id in pipeline.order():
        step = pipeline.steps[step_id]
        items, found = evaluate_for_each(pipeline, step, outputs)
        problems.extend(found)
        problems.extend(evaluate_when(pipeline, step, outputs)[1])
        params = step.model.with_defaults({})
        for item in enumerate(items) if items is not None else [None]:
            request, found = resolve_step(pipeline, step, outputs, media, provider_override, item=item)
            problems.extend(found)
            if request is not None:
                requests[step_id if item is None else f"{step_id}[{item[0]}]"] = request
                params = dict(request.params)
        outputs[step_id] = placeholder_outputs(step, params, len(items) if items is not None else None)
    problems.extend(check_output_templates(pipeline, outputs))
    problems.extend(output_collisions(pipeline, outputs))
    return requests, list(dict.fromkeys(problems))


def check_templates(pipeline: Pipeline, provider_override: str | None = None) -> list[Diagnostic]:
    """Every problem a static resolution finds (errors and warnings)."""
    return resolve_statically(pipeline, provider_override)[1]


def static_requests(pipeline: Pipeline, provider_override: str | None = None) -> dict[str, StepRequest]:
    """Requests resolved against stand-ins (seeds, params and providers are final; inputs are not)."""
    return resolve_statically(pipeline, provider_override)[0]


def check_output_templates(pipeline: Pipeline, outputs: Mapping[str, StepOutputs]) -> list[Diagnostic]:
    """Each named output must render to one or more artifacts."""
    context = base_context(pipeline, outputs)
    problems = []
    for path, text in template_strings(pipeline.outputs, ("outputs",)):
        try:
            value = render(text, context)
        except TemplateProblem as problem:
            problems.append(Diagnostic(problem.message, pipeline.locate(path), path=format_path(path)))
            continue
        items = value if isinstance(value, list) else [value]
        if not items or not all(isinstance(item, Artifact) for item in items):
            problems.append(
                Diagnostic(
                    "an output must be a step output such as \"{{ steps.hero.images[0] }}\"",
                    pipeline.locate(path),
                    path=format_path(path),
                    allowed=", ".join(f"steps.<id>.{name}" for name in OUTPUT_FIELDS),
                )
            )
    return problems
