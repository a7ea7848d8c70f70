"""Turn a step's templates into a concrete, checkable request.

The same code runs twice: before anything is spent, with stand-in outputs for upstream steps
(so every template, reference and parameter is checked), and at run time with the real outputs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Mapping, Protocol

from wanflow._diagnostics import Diagnostic, format_path
from wanflow.artifacts import Artifact, MediaInput, RemoteInput
from wanflow.catalog import InputSpec, ModelSpec, ParamSpec
from wanflow.pipelines.model import MEDIA_FIELDS, Pipeline, StepSpec
from wanflow.pipelines.templating import StepOutputs, StepsNamespace, TemplateProblem, VarsNamespace, render
from wanflow.pipelines.yaml_source import DataPath

SEED_MAX = 2_147_483_647
DEFAULT_PROVIDER = "local"
_MEDIA_KIND = {"images": "image", "image": "image", "audio": "audio"}


class MediaResolver(Protocol):
    """Turns a literal path or URL written in a media field into an input."""

    def __call__(self, text: str, step: StepSpec, path: DataPath) -> MediaInput:
        """Return the input, or raise TemplateProblem with a message for the user."""
        ...


@dataclass(frozen=True)
class StepRequest:
    """A step with every template rendered: exactly what will be asked of the provider."""

    step_id: str
    model: ModelSpec
    provider: str
    prompt: str | None
    negative_prompt: str | None
    inputs: Mapping[str, tuple[MediaInput, ...]]
    params: Mapping[str, Any]
    explicit_params: frozenset[str]
    seed_source: str

    @property
    def seed(self) -> int:
        """The resolved seed (always present)."""
        return int(self.params["seed"])

    def canonical(self) -> dict[str, Any]:
        """The request as plain JSON data: inputs by content hash, never by local path."""
        return {
            "model": self.model.name,
            "provider": self.provider,
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "inputs": {name: [_input_id(item) for item in items] for name, items in sorted(self.inputs.items())},
            "params": dict(sorted(self.params.items())),
        }


def _input_id(item: MediaInput) -> str:
    if isinstance(item, RemoteInput):
        return f"url:{item.url}"
    return f"sha256:{item.sha256}"


def derive_seed(parent: int | str, step_id: str) -> int:
    """A stable seed in 0..2147483647 for ``step_id`` under the pipeline seed ``parent``."""
    digest = hashlib.sha256(f"wanflow-seed-v1\x00{parent}\x00{step_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % (SEED_MAX + 1)


def pipeline_seed(pipeline: Pipeline) -> tuple[int, str]:
    """The pipeline-wide seed and where it came from.

    Without ``defaults.seed`` the seed derives from the pipeline name, so reruns reproduce and hit
    the cache instead of drawing a new random seed every time.
    """
    if isinstance(pipeline.default_seed, int):
        return pipeline.default_seed, "defaults.seed"
    if isinstance(pipeline.default_seed, str):
        value = render(pipeline.default_seed, base_context(pipeline, {}))
        return _check_seed(value), "defaults.seed"
    return derive_seed("pipeline:" + pipeline.name, ""), "derived from the pipeline name"


def _check_seed(value: Any) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= SEED_MAX:
        raise TemplateProblem(f"seed must be an integer from 0 to {SEED_MAX}, got {value!r}")
    return value


def base_context(pipeline: Pipeline, upstream: Mapping[str, StepOutputs]) -> dict[str, Any]:
    """The names templates can use: ``vars``, ``steps`` and ``pipeline``."""
    return {
        "vars": VarsNamespace(pipeline.vars),
        "steps": StepsNamespace(upstream),
        "pipeline": {"name": pipeline.name},
    }


def choose_provider(pipeline: Pipeline, step: StepSpec, override: str | None) -> str:
    """``--provider`` beats the step's provider, which beats ``defaults.provider``; else local."""
    return override or step.provider or pipeline.default_provider or DEFAULT_PROVIDER


class _Collector:
    """Gathers located diagnostics while a step is resolved."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.diagnostics: list[Diagnostic] = []

    def add(self, path: DataPath, message: str, allowed: str | None = None) -> None:
        self.diagnostics.append(
            Diagnostic(message, self.pipeline.locate(path), path=format_path(path), allowed=allowed)
        )

    def render(self, text: str, context: Mapping[str, Any], path: DataPath) -> Any:
        try:
            return render(text, context)
        except TemplateProblem as problem:
            location = self.pipeline.locate(path)
            if problem.line and problem.line > 1:
                location = type(location)(location.file, location.line + problem.line - 1, location.column)
            self.diagnostics.append(Diagnostic(problem.message, location, path=format_path(path)))
            return _FAILED


_FAILED = object()


def resolve_step(
    pipeline: Pipeline,
    step: StepSpec,
    upstream: Mapping[str, StepOutputs],
    media: MediaResolver,
    provider_override: str | None = None,
) -> tuple[StepRequest | None, list[Diagnostic]]:
    """Render ``step`` against ``upstream`` outputs; returns the request or the problems found."""
    collector = _Collector(pipeline)
    context = base_context(pipeline, {dep: upstream[dep] for dep in step.depends_on if dep in upstream})

    prompt = _render_text(collector, step, "prompt", context)
    negative = _render_text(collector, step, "negative_prompt", context)
    if step.prompt is None and step.model.prompt_required:
        collector.add(step.path(), f"{step.model.name} needs a prompt")

    params, explicit = _resolve_params(collector, pipeline, step, context)
    seed, seed_source = _resolve_seed(collector, pipeline, step, context)
    params["seed"] = seed
    inputs = _resolve_inputs(collector, step, params, context, media)

    if collector.diagnostics:
        return None, collector.diagnostics
    request = StepRequest(
        step_id=step.id,
        model=step.model,
        provider=choose_provider(pipeline, step, provider_override),
        prompt=prompt,
        negative_prompt=negative,
        inputs=inputs,
        params=params,
        explicit_params=frozenset(explicit),
        seed_source=seed_source,
    )
    return request, []


def _render_text(collector: _Collector, step: StepSpec, name: str, context: Mapping[str, Any]) -> str | None:
    source = getattr(step, name)
    if source is None:
        return None
    value = collector.render(source, context, step.path(name))
    if value is _FAILED:
        return None
    if isinstance(value, Artifact):
        if value.kind == "text":
            return value.read_text()
        collector.add(step.path(name), f"{value.describe()} cannot be used as {name}; it must be text")
        return None
    return str(value)


def _resolve_params(
    collector: _Collector, pipeline: Pipeline, step: StepSpec, context: Mapping[str, Any]
) -> tuple[dict[str, Any], set[str]]:
    model = step.model
    given: dict[str, Any] = {}
    explicit: set[str] = set()
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
        checked = _check_param(collector, spec, value, path)
        if checked is not _FAILED:
            params[name] = checked
            explicit.add(name)
    return model.with_defaults(params), explicit


def _check_param(collector: _Collector, spec: ParamSpec, value: Any, path: DataPath) -> Any:
    """Type and range checks straight from the catalog."""
    if spec.type == "integer":
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            collector.add(path, f"expected an integer, got {value!r}", allowed=spec.describe_allowed())
            return _FAILED
        if (spec.minimum is not None and value < spec.minimum) or (spec.maximum is not None and value > spec.maximum):
            collector.add(path, f"{value} is out of range", allowed=spec.describe_allowed())
            return _FAILED
        return value
    if spec.type == "boolean":
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            value = value.strip().lower() == "true"
        if not isinstance(value, bool):
            collector.add(path, f"expected true or false, got {value!r}", allowed="true or false")
            return _FAILED
        return value
    value = str(value)
    if spec.enum is not None and value not in spec.enum:
        collector.add(path, f"'{value}' is not allowed", allowed=spec.describe_allowed())
        return _FAILED
    if spec.type == "size" and value not in spec.tiers and parse_size(value) is None:
        collector.add(path, f"'{value}' is not a size", allowed=spec.describe_allowed())
        return _FAILED
    return value


def parse_size(text: str) -> tuple[int, int] | None:
    """``'1280*1280'`` -> (1280, 1280); None when the text is not WIDTH*HEIGHT."""
    width, sep, height = text.partition("*")
    if not sep or not width.strip().isdigit() or not height.strip().isdigit():
        return None
    return int(width), int(height)


def _resolve_seed(
    collector: _Collector, pipeline: Pipeline, step: StepSpec, context: Mapping[str, Any]
) -> tuple[int, str]:
    if step.seed is None:
        try:
            parent, _ = pipeline_seed(pipeline)
        except TemplateProblem as problem:
            collector.add(("defaults", "seed"), problem.message)
            return 0, "invalid"
        return derive_seed(parent, step.id), "derived from the pipeline seed and step id"
    value = step.seed if isinstance(step.seed, int) else collector.render(step.seed, context, step.path("seed"))
    if value is _FAILED:
        return 0, "invalid"
    try:
        return _check_seed(value), "step"
    except TemplateProblem as problem:
        collector.add(step.path("seed"), problem.message)
        return 0, "invalid"


def _resolve_inputs(
    collector: _Collector,
    step: StepSpec,
    params: Mapping[str, Any],
    context: Mapping[str, Any],
    media: MediaResolver,
) -> dict[str, tuple[MediaInput, ...]]:
    slots = step.model.inputs_for(params)
    inputs: dict[str, tuple[MediaInput, ...]] = {}
    for name in MEDIA_FIELDS:
        written = getattr(step, name)
        slot = slots.get(name)
        if written is None:
            if slot is not None and slot.minimum > 0:
                noun = "at least one image in images:" if name == "images" else f"{name}:"
                collector.add(step.path(), f"{step.model.name} needs {noun}")
            continue
        if slot is None:
            takes = ", ".join(f"{key}:" for key in slots) or "no media inputs"
            collector.add(step.path(name), f"{step.model.name} does not take {name}:", allowed=takes)
            continue
        items = _media_items(collector, step, name, written, context, media)
        if items is None:
            continue
        _check_count(collector, step, name, slot, items)
        inputs[name] = tuple(items)
    return inputs


def _media_items(
    collector: _Collector,
    step: StepSpec,
    name: str,
    written: list[str] | str,
    context: Mapping[str, Any],
    media: MediaResolver,
) -> list[MediaInput] | None:
    entries = list(enumerate(written)) if isinstance(written, list) else [(None, written)]
    items: list[MediaInput] = []
    ok = True
    for index, text in entries:
        path = step.path(name) if index is None else step.path(name, index)
        value = collector.render(text, context, path)
        if value is _FAILED:
            ok = False
            continue
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        for item in values:
            resolved = _media_item(collector, step, name, item, path, media)
            if resolved is None:
                ok = False
            else:
                items.append(resolved)
    return items if ok else None


def _media_item(
    collector: _Collector, step: StepSpec, name: str, value: Any, path: DataPath, media: MediaResolver
) -> MediaInput | None:
    wanted = _MEDIA_KIND[name]
    if isinstance(value, Artifact):
        if value.kind != wanted:
            collector.add(path, f"{value.describe()} is {value.kind}; {name}: needs {wanted}")
            return None
        return value
    if isinstance(value, str) and value.strip():
        try:
            item = media(value.strip(), step, path)
        except TemplateProblem as problem:
            collector.add(path, problem.message)
            return None
        if isinstance(item, Artifact) and item.kind != wanted:
            collector.add(path, f"'{value}' is {item.media_type}; {name}: needs {wanted}")
            return None
        return item
    collector.add(path, f"expected {wanted} (an upstream output, a file path or a URL), got {value!r}")
    return None


def _check_count(collector: _Collector, step: StepSpec, name: str, slot: InputSpec, items: list[MediaInput]) -> None:
    count = len(items)
    if slot.minimum <= count <= slot.maximum:
        return
    allowed = f"{slot.minimum} to {slot.maximum}" if slot.maximum > 1 else "exactly 1"
    collector.add(step.path(name), f"{step.model.name} got {count} {name}", allowed=allowed)
