"""Turn a step's templates into a concrete, checked request.

The same code runs twice: before anything is spent, with stand-in outputs for upstream steps
(so every template, reference, parameter and documented rule is checked), and at run time with
the real outputs. Rules come from the catalog (``wanflow.catalog.rules``); this module renders
values and places each finding at its line in the pipeline file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from wanflow._diagnostics import Diagnostic
from wanflow._exceptions import TemplateProblem
from wanflow.artifacts import Artifact, MediaInput
from wanflow.catalog.open_weights import PROVIDER as OPEN_WEIGHTS_PROVIDER
from wanflow.catalog.rules import (
    check_cross_inputs,
    check_ignored_inputs,
    check_input_count,
    check_params,
    check_seed,
    check_text,
    coerce_param,
    params_from_inputs,
    truncate_text,
)
from wanflow.catalog.spec import InputSpec
from wanflow.ops.specs import OP_PROVIDER
from wanflow.pipelines.located import FAILED, StepDiagnostics, base_context
from wanflow.pipelines.model import MEDIA_FIELDS, Pipeline, StepSpec
from wanflow.pipelines.op_steps import resolve_op_step
from wanflow.pipelines.request import SEED_MAX, StepRequest, derive_seed
from wanflow.pipelines.source_document import DataPath
from wanflow.pipelines.templating import StepOutputs, render

DEFAULT_PROVIDER = "local"



class MediaResolver(Protocol):
    """Turns media written in a pipeline into inputs and fits them to the model's rules."""

    def resolve_path(self, text: str, step: StepSpec, path: DataPath) -> MediaInput:
        """A literal file path or URL as an input; raise TemplateProblem for the user."""
        ...

    def fit(self, item: MediaInput, slot: InputSpec, step: StepSpec, path: DataPath) -> tuple[MediaInput, dict[str, Any] | None]:
        """Check ``item`` against ``slot``; return it (or a conformed copy and what was done)."""
        ...


def pipeline_seed(pipeline: Pipeline) -> tuple[int, str]:
    """The pipeline-wide seed and where it came from.

    Without ``defaults.seed`` the seed derives from the pipeline name, so reruns reproduce and hit
    the cache instead of drawing a new random seed every time.
    """
    if isinstance(pipeline.default_seed, int):
        return pipeline.default_seed, "defaults.seed"
    if isinstance(pipeline.default_seed, str):
        value = _as_seed(render(pipeline.default_seed, base_context(pipeline, {})))
        if value is None:
            raise TemplateProblem(f"seed must be an integer from 0 to {SEED_MAX}")
        return value, "defaults.seed"
    return derive_seed("pipeline:" + pipeline.name, ""), "derived from the pipeline name"


def _as_seed(value: Any) -> int | None:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= SEED_MAX:
        return None
    return value


def choose_provider(pipeline: Pipeline, step: StepSpec, override: str | None) -> str:
    """``--provider`` beats the step's provider, which beats ``defaults.provider``; else local.
    An ``op:`` step always runs here, on the free ``op`` provider. An open-weights step the file
    puts on ``diffusers`` stays there: no other provider can run its weights, so ``--provider``
    only moves the service steps (``resolve_step`` says so in a warning; docs/decisions.md)."""
    if step.op is not None:
        return OP_PROVIDER
    own = step.provider or pipeline.default_provider or DEFAULT_PROVIDER
    if step.model.open_weights is not None and own == OPEN_WEIGHTS_PROVIDER:
        return own
    return override or own


def resolve_step(
    pipeline: Pipeline,
    step: StepSpec,
    upstream: Mapping[str, StepOutputs],
    media: MediaResolver,
    provider_override: str | None = None,
    item: tuple[int, Any] | None = None,
) -> tuple[StepRequest | None, list[Diagnostic]]:
    """Render and check ``step`` against ``upstream`` outputs.

    ``item`` is ``(index, value)`` for one sub-task of a ``for_each`` step: templates see them as
    ``index`` and ``item``, and the sub-task gets a seed of its own. Returns the request (None
    when there are errors) and every diagnostic, warnings included.
    """
    collector = StepDiagnostics(pipeline, step)
    context = base_context(pipeline, {dep: upstream[dep] for dep in step.depends_on if dep in upstream})
    if item is not None:
        context["index"], context["item"] = item
    if step.op is not None:
        rendered = {name: collector.render(value, context, step.path("params", name)) if isinstance(value, str) else value
                    for name, value in step.params.items()}
        return resolve_op_step(collector, step, {k: v for k, v in rendered.items() if v is not FAILED},
                               lambda name, written: _media_items(collector, step, name, step.model.inputs[name],
                                                                  written, context, media),
                               unit=f"{step.id}[{item[0]}]" if item else step.id)
    model = step.model

    prompt = _render_text(collector, step, "prompt", context)
    negative = _render_text(collector, step, "negative_prompt", context)
    if step.prompt is None and model.prompt.required:
        collector.add(step.path(), f"{model.name} needs a prompt", code=model.prompt.code)

    params, explicit = _resolve_params(collector, pipeline, step, context)
    seed, seed_source = _resolve_seed(collector, pipeline, step, context, f"{step.id}[{item[0]}]" if item else step.id)
    params["seed"] = seed
    inputs, adaptations = _resolve_inputs(collector, step, params, context, media)
    for finding in [] if collector.failed else check_cross_inputs(model, prompt, params, {k: len(v) for k, v in inputs.items()}):
        collector.finding(finding)

    provider = choose_provider(pipeline, step, provider_override)
    if provider_override and provider == OPEN_WEIGHTS_PROVIDER != provider_override:
        collector.add(step.path("model"), f"stays on provider diffusers: {model.name} is open weights, which "
                      f"--provider {provider_override} cannot run (it moves the other steps)", severity="warning")
    if model.open_weights is not None and provider not in model.providers:
        collector.add(step.path("model"), f"{model.name} is open weights: it runs on your own GPU with provider diffusers, "
                      f"not {provider}", allowed="provider: diffusers on the step (or defaults.provider, or --provider diffusers)")
    elif provider != DEFAULT_PROVIDER and provider not in model.providers:
        offered = ", ".join([DEFAULT_PROVIDER, *model.providers])
        collector.add(step.path("model"), f"{model.name} is not offered by {provider}", allowed=f"providers {offered}")
    if collector.failed:
        return None, collector.diagnostics
    request = StepRequest(
        step_id=step.id,
        model=model,
        provider=provider,
        prompt=prompt,
        negative_prompt=negative,
        inputs=inputs,
        params=params_from_inputs(model, params, {name: getattr(items[0], "duration", None) for name, items in inputs.items()}),
        explicit_params=frozenset(explicit),
        seed_source=seed_source,
        adaptations=tuple(adaptations),
        version=step.version,
    )
    return request, collector.diagnostics


def _render_text(collector: StepDiagnostics, step: StepSpec, name: str, context: Mapping[str, Any]) -> str | None:
    source = getattr(step, name)
    if source is None:
        return None
    value = collector.render(source, context, step.path(name))
    if value is FAILED:
        return None
    if isinstance(value, Artifact):
        if value.kind != "text":
            collector.add(step.path(name), f"{value.describe()} cannot be used as {name}; it must be text")
            return None
        value = value.read_text()
    text = str(value)
    spec = step.model.prompt if name == "prompt" else step.model.negative_prompt
    for finding in check_text(spec, name, text):
        collector.finding(finding)
    # Send what the model will see anyway: the service truncates silently past the limit.
    return truncate_text(spec, text)


def _resolve_params(
    collector: StepDiagnostics, pipeline: Pipeline, step: StepSpec, context: Mapping[str, Any]
) -> tuple[dict[str, Any], set[str]]:
    model = step.model
    given: dict[str, tuple[Any, DataPath]] = {}
    # Shared defaults apply only where the model has the parameter: `size` in defaults must not
    # break an i2v step, which has none.
    for name, value in pipeline.default_params.items():
        if name in model.params:
            given[name] = (value, ("defaults", "params", name))
    for name, value in step.params.items():
        given[name] = (value, step.path("params", name))
    params: dict[str, Any] = {}
    for name, (value, path) in given.items():
        if isinstance(value, str):
            value = collector.render(value, context, path)
            if value is FAILED:
                continue
        spec = model.params.get(name)
        if spec is None:
            collector.add(path, f"{model.name} has no parameter '{name}'", allowed=", ".join(model.params))
            continue
        value, problem = coerce_param(spec, value)
        if problem is not None:
            collector.add(path, problem.message, problem.allowed, problem.code)
            continue
        params[name] = value
    explicit = set(params)
    completed = model.with_defaults(params)
    for finding in check_params(model, completed, explicit):
        collector.finding(finding)
    return completed, explicit


def _resolve_seed(collector: StepDiagnostics, pipeline: Pipeline, step: StepSpec, context: Mapping[str, Any],
                  seed_name: str) -> tuple[int, str]:
    pinned = pipeline.pinned_seeds.get(step.id)
    if step.seed is None and pinned is not None:
        # A reseeded step keeps its drawn seed (from the lockfile); its items derive from it.
        seed = pinned if seed_name == step.id else derive_seed(pinned, seed_name)
        return seed, "reseeded (kept in the lockfile)"
    if step.seed is None:
        try:
            parent, _ = pipeline_seed(pipeline)
        except TemplateProblem as problem:
            collector.add(("defaults", "seed"), problem.message, code=step.model.seed_code)
            return 0, "invalid"
        return derive_seed(parent, seed_name), "derived from the pipeline seed and step id"
    value = step.seed if isinstance(step.seed, int) else collector.render(step.seed, context, step.path("seed"))
    if value is FAILED:
        return 0, "invalid"
    chosen = _as_seed(value)
    if chosen is None:
        for finding in check_seed(step.model, value):
            collector.finding(finding)
        return 0, "invalid"
    return chosen, "step"


def _resolve_inputs(
    collector: StepDiagnostics,
    step: StepSpec,
    params: Mapping[str, Any],
    context: Mapping[str, Any],
    media: MediaResolver,
) -> tuple[dict[str, tuple[MediaInput, ...]], list[dict[str, Any]]]:
    model = step.model
    slots = model.inputs_for(params)
    inputs: dict[str, tuple[MediaInput, ...]] = {}
    adaptations: list[dict[str, Any]] = []
    for name in MEDIA_FIELDS:
        written = getattr(step, name)
        slot = slots.get(name)
        if slot is None:
            if written is not None:
                takes = ", ".join(f"{key}:" for key in slots) or "no media inputs"
                collector.add(step.path(name), f"{model.name} does not take {name}:", allowed=takes)
            continue
        items = [] if written is None else _media_items(collector, step, name, slot, written, context, media)
        if items is None:
            continue
        for finding in check_input_count(model, params, slot, len(items)):
            collector.finding(finding)
        for finding in check_ignored_inputs(params, slot, len(items)):
            collector.finding(finding)
        fitted = []
        for index, (item, path) in enumerate(items):
            try:
                item, adaptation = media.fit(item, slot, step, path)
            except TemplateProblem as problem:
                collector.add(path, problem.message, code=slot.code)
                continue
            if adaptation is not None:
                adaptations.append({"input": f"{name}[{index}]" if slot.many else name, **adaptation})
            fitted.append(item)
        if fitted:
            inputs[name] = tuple(fitted)
    return inputs, adaptations


def _media_items(
    collector: StepDiagnostics,
    step: StepSpec,
    name: str,
    slot: InputSpec,
    written: list[str] | str,
    context: Mapping[str, Any],
    media: MediaResolver,
) -> list[tuple[MediaInput, DataPath]] | None:
    entries = list(enumerate(written)) if isinstance(written, list) else [(None, written)]
    items: list[tuple[MediaInput, DataPath]] = []
    ok = True
    for index, text in entries:
        path = step.path(name) if index is None else step.path(name, index)
        value = collector.render(text, context, path)
        if value is FAILED:
            ok = False
            continue
        for item in (list(value) if isinstance(value, (list, tuple)) else [value]):
            resolved = _media_item(collector, step, name, slot, item, path, media)
            if resolved is None:
                ok = False
            else:
                items.append((resolved, path))
    return items if ok else None


def _media_item(
    collector: StepDiagnostics, step: StepSpec, name: str, slot: InputSpec, value: Any, path: DataPath, media: MediaResolver
) -> MediaInput | None:
    wanted = slot.media
    if isinstance(value, Artifact):
        if not slot.accepts(value.kind):
            collector.add(path, f"{value.describe()} is {value.kind}; {name}: needs {wanted}")
            return None
        return value
    if isinstance(value, str) and value.strip():
        try:
            item = media.resolve_path(value.strip(), step, path)
        except TemplateProblem as problem:
            collector.add(path, problem.message)
            return None
        if isinstance(item, Artifact) and not slot.accepts(item.kind):
            collector.add(path, f"'{value}' is {item.media_type}; {name}: needs {wanted}")
            return None
        return item
    collector.add(path, f"expected {wanted} (an upstream output, a file path or a URL), got {value!r}")
    return None
