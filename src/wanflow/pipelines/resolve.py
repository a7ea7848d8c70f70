"""Turn a step's templates into a concrete, checked request.

The same code runs twice: before anything is spent, with stand-in outputs for upstream steps
(so every template, reference, parameter and documented rule is checked), and at run time with
the real outputs. Rules come from the catalog (``wanflow.catalog.rules``); this module renders
values and places each finding at its line in the pipeline file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from wanflow._diagnostics import Diagnostic, Location, format_path
from wanflow._exceptions import TemplateProblem
from wanflow.artifacts import Artifact, MediaInput
from wanflow.catalog.rules import (
    Finding,
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
from wanflow.pipelines.model import MEDIA_FIELDS, Pipeline, StepSpec
from wanflow.pipelines.op_steps import resolve_op_step
from wanflow.pipelines.request import SEED_MAX, StepRequest, derive_seed
from wanflow.pipelines.templating import StepOutputs, StepsNamespace, VarsNamespace, render
from wanflow.pipelines.variables import BOOLEAN_WORDS, parse_boolean_word
from wanflow.pipelines.yaml_source import DataPath

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


def base_context(pipeline: Pipeline, upstream: Mapping[str, StepOutputs]) -> dict[str, Any]:
    """The names templates can use: ``vars``, ``steps`` and ``pipeline``."""
    return {
        "vars": VarsNamespace(pipeline.vars),
        "steps": StepsNamespace(upstream),
        "pipeline": {"name": pipeline.name},
    }


def choose_provider(pipeline: Pipeline, step: StepSpec, override: str | None) -> str:
    """``--provider`` beats the step's provider, which beats ``defaults.provider``; else local.
    An ``op:`` step always runs here, on the free ``op`` provider."""
    if step.op is not None:
        return OP_PROVIDER
    return override or step.provider or pipeline.default_provider or DEFAULT_PROVIDER


_FAILED = object()


class _Collector:
    """Gathers located diagnostics (errors and warnings) while one step is resolved."""

    def __init__(self, pipeline: Pipeline, step: StepSpec) -> None:
        self.pipeline = pipeline
        self.step = step
        self.diagnostics: list[Diagnostic] = []

    @property
    def failed(self) -> bool:
        return any(d.severity == "error" for d in self.diagnostics)

    def add(self, path: DataPath, message: str, allowed: str | None = None, code: str | None = None,
            severity: str = "error") -> None:
        location: Location = self.pipeline.locate(path)
        self.diagnostics.append(
            Diagnostic(message, location, path=format_path(path), allowed=allowed, code=code, severity=severity)  # type: ignore[arg-type]
        )

    def finding(self, finding: Finding) -> None:
        # A rule about a param the user did not write (a costly default) is placed at the
        # nearest written ancestor: the step's params, or the step itself.
        self.add(self.step.path(*finding.field), finding.message, finding.allowed, finding.code, finding.severity)

    def render(self, text: str, context: Mapping[str, Any], path: DataPath) -> Any:
        try:
            return render(text, context)
        except TemplateProblem as problem:
            location = self.pipeline.locate(path)
            if problem.line and problem.line > 1:
                location = Location(location.file, location.line + problem.line - 1, location.column)
            self.diagnostics.append(Diagnostic(problem.message, location, path=format_path(path)))
            return _FAILED


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
    collector = _Collector(pipeline, step)
    context = base_context(pipeline, {dep: upstream[dep] for dep in step.depends_on if dep in upstream})
    if item is not None:
        context["index"], context["item"] = item
    if step.op is not None:
        rendered = {name: collector.render(value, context, step.path("params", name)) if isinstance(value, str) else value
                    for name, value in step.params.items()}
        return resolve_op_step(collector, step, {k: v for k, v in rendered.items() if v is not _FAILED},
                               lambda name, written: _media_items(collector, step, name, step.model.inputs[name].media,
                                                                  written, context, media))
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


def evaluate_for_each(pipeline: Pipeline, step: StepSpec, upstream: Mapping[str, StepOutputs]) -> tuple[list[Any] | None, list[Diagnostic]]:
    """The items of a ``for_each`` step (None when the step has none)."""
    if step.for_each is None:
        return None, []
    if isinstance(step.for_each, list):
        return list(step.for_each), []
    collector = _Collector(pipeline, step)
    context = base_context(pipeline, {dep: upstream[dep] for dep in step.depends_on if dep in upstream})
    value = collector.render(step.for_each, context, step.path("for_each"))
    if value is _FAILED:
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
    collector = _Collector(pipeline, step)
    context = base_context(pipeline, {dep: upstream[dep] for dep in step.depends_on if dep in upstream})
    value = collector.render(step.when, context, step.path("when"))
    if value is _FAILED:
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


def _render_text(collector: _Collector, step: StepSpec, name: str, context: Mapping[str, Any]) -> str | None:
    source = getattr(step, name)
    if source is None:
        return None
    value = collector.render(source, context, step.path(name))
    if value is _FAILED:
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
    collector: _Collector, pipeline: Pipeline, step: StepSpec, context: Mapping[str, Any]
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
            if value is _FAILED:
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


def _resolve_seed(collector: _Collector, pipeline: Pipeline, step: StepSpec, context: Mapping[str, Any],
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
    if value is _FAILED:
        return 0, "invalid"
    chosen = _as_seed(value)
    if chosen is None:
        for finding in check_seed(step.model, value):
            collector.finding(finding)
        return 0, "invalid"
    return chosen, "step"


def _resolve_inputs(
    collector: _Collector,
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
        items = [] if written is None else _media_items(collector, step, name, slot.media, written, context, media)
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
    collector: _Collector,
    step: StepSpec,
    name: str,
    slot_media: str,
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
        if value is _FAILED:
            ok = False
            continue
        for item in (list(value) if isinstance(value, (list, tuple)) else [value]):
            resolved = _media_item(collector, step, name, slot_media, item, path, media)
            if resolved is None:
                ok = False
            else:
                items.append((resolved, path))
    return items if ok else None


def _media_item(
    collector: _Collector, step: StepSpec, name: str, wanted: str, value: Any, path: DataPath, media: MediaResolver
) -> MediaInput | None:
    if isinstance(value, Artifact):
        if value.kind != wanted:
            collector.add(path, f"{value.describe()} is {value.kind}; {name}: needs {wanted}")
            return None
        return value
    if isinstance(value, str) and value.strip():
        try:
            item = media.resolve_path(value.strip(), step, path)
        except TemplateProblem as problem:
            collector.add(path, problem.message)
            return None
        if isinstance(item, Artifact) and item.kind != wanted:
            collector.add(path, f"'{value}' is {item.media_type}; {name}: needs {wanted}")
            return None
        return item
    collector.add(path, f"expected {wanted} (an upstream output, a file path or a URL), got {value!r}")
    return None
