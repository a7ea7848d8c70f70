"""Load a pipeline file and check everything that can be checked before any step runs."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from wanflow._diagnostics import Diagnostic, format_path
from wanflow._exceptions import PipelineError
from wanflow.artifacts import Artifact, MediaInput, RemoteInput
from wanflow.catalog import OUTPUT_FIELDS, InputSpec, load_catalog
from wanflow.catalog.rules import MediaFacts, MediaVerdict, check_media
from wanflow.media import MediaError, probe
from wanflow.media_conform import ConformError, target_size
from wanflow.pipelines.collisions import output_collisions
from wanflow.pipelines.graph import link_steps, template_strings
from wanflow.pipelines.model import Pipeline, StepSpec
from wanflow.pipelines.resolve import StepRequest, base_context, choose_provider, evaluate_for_each, evaluate_when, resolve_step
from wanflow.pipelines.schema_check import check_schema
from wanflow.pipelines.templating import OutputList, StepOutputs, TemplateProblem, render
from wanflow.pipelines.variables import resolve_vars
from wanflow.pipelines.yaml_source import DataPath, load_yaml_file

_PLACEHOLDER_TYPES = {"images": "image/png", "video": "video/mp4", "text": "text/plain"}
_LOCAL_ONLY_PROVIDERS = {"local"}


def load_pipeline(
    path: Path | str,
    *,
    overrides: Mapping[str, str] | None = None,
    vars_file: Path | None = None,
    provider_override: str | None = None,
    strict: bool = False,
    allowed_paths: tuple[Path, ...] = (),
) -> Pipeline:
    """Load, validate and statically check the pipeline at ``path``.

    Raises PipelineError listing every problem found; nothing has been generated at that point.
    Warnings (disputed values, truncated prompts, costly defaults) are kept in
    ``pipeline.warnings``; with ``strict`` they are errors too.
    """
    path = Path(path)
    document = load_yaml_file(path)
    diagnostics = check_schema(document)
    if diagnostics:
        raise PipelineError(diagnostics)
    data: dict[str, Any] = document.data
    chosen: set[str] = set()
    values, var_problems = resolve_vars(data.get("vars") or {}, vars_file=vars_file, overrides=overrides, chosen=chosen)
    if var_problems:
        raise PipelineError(var_problems)

    defaults = data.get("defaults") or {}
    steps, step_problems = _build_steps(data["steps"], document)
    pipeline = Pipeline(
        path=path,
        name=data["name"],
        description=data.get("description", ""),
        vars=values,
        default_provider=defaults.get("provider"),
        default_seed=defaults.get("seed"),
        default_params=dict(defaults.get("params") or {}),
        steps=steps,
        outputs=dict(data.get("outputs") or {}),
        source=document,
        allowed_paths=tuple(Path(p) for p in allowed_paths),
        matrix=data.get("matrix"),
        chosen_vars=frozenset(chosen),
    )
    from wanflow.pipelines.instances import matrix_diagnostics

    problems = step_problems + _check_default_params(pipeline) + matrix_diagnostics(pipeline)
    if problems:
        raise PipelineError(problems)
    problems = link_steps(pipeline)
    if problems:
        raise PipelineError(problems)
    found = check_templates(pipeline, provider_override)
    errors = list(dict.fromkeys(replace(d, severity="error") for d in found if d.severity == "error" or strict))
    if errors:
        raise PipelineError(errors)
    pipeline.warnings = list(dict.fromkeys(found))
    return pipeline


def _build_steps(raw: Mapping[str, Any], document: Any) -> tuple[dict[str, StepSpec], list[Diagnostic]]:
    catalog = load_catalog()
    steps: dict[str, StepSpec] = {}
    problems: list[Diagnostic] = []
    for step_id, body in raw.items():
        model = catalog.get(body["model"])
        if model is None:
            path: DataPath = ("steps", step_id, "model")
            names = catalog.names()
            close = difflib.get_close_matches(body["model"], names + [a for m in names for a in catalog.models[m].aliases], n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            problems.append(
                Diagnostic(
                    f"unknown model '{body['model']}'{hint}", document.locate(path), path=format_path(path), allowed=", ".join(names)
                )
            )
            continue
        steps[step_id] = StepSpec(
            id=step_id,
            model=model,
            provider=body.get("provider"),
            prompt=body.get("prompt"),
            negative_prompt=body.get("negative_prompt"),
            images=body.get("images"),
            image=body.get("image"),
            audio=body.get("audio"),
            params=dict(body.get("params") or {}),
            seed=body.get("seed"),
            needs=tuple(body.get("needs") or ()),
            cache=bool(body.get("cache", True)),
            conform=bool(body.get("conform", True)),
            version=body.get("version"),
            for_each=body.get("for_each"),
            when=body.get("when"),
            description=body.get("description", ""),
        )
    return steps, problems


def _check_default_params(pipeline: Pipeline) -> list[Diagnostic]:
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


class StaticMedia:
    """Media resolver for checks before running: files must exist and be acceptable media.

    Nothing is stored. Problems conforming can fix are accepted here (they are fixed at run
    time) unless the step says ``conform: false``.
    """

    def __init__(self, pipeline: Pipeline, provider_override: str | None) -> None:
        self._pipeline = pipeline
        self._provider_override = provider_override

    def resolve_path(self, text: str, step: StepSpec, path: DataPath) -> MediaInput:
        if text.startswith(("http://", "https://")):
            provider = choose_provider(self._pipeline, step, self._provider_override)
            if provider in _LOCAL_ONLY_PROVIDERS:
                raise TemplateProblem(
                    f"the {provider} provider works offline and cannot fetch {text}; download it and give the file path"
                )
            return RemoteInput(text)
        file = local_input_path(self._pipeline, text)
        try:
            info = probe(file)
        except MediaError as error:
            raise TemplateProblem(str(error)) from None
        return Artifact(
            sha256="",
            media_type=info.media_type,
            size=file.stat().st_size,
            path=file,
            pending=True,
            origin=f"file {text}",
            **info.as_meta(),  # type: ignore[arg-type]
        )

    def fit(self, item: MediaInput, slot: InputSpec, step: StepSpec, path: DataPath) -> tuple[MediaInput, dict[str, Any] | None]:
        if isinstance(item, RemoteInput) or item.size == 0:
            return item, None  # a URL, or an upstream output that does not exist yet
        provider = choose_provider(self._pipeline, step, self._provider_override)
        service = load_catalog().services.get(provider)
        if service is not None and slot.media in service.url_only_inputs:
            # Caught here, before the run: a step later in the pipeline must not fail after
            # earlier ones were paid for.
            raise TemplateProblem(
                f"{item.origin}: {provider} takes {slot.media} only as an http(s) URL and documents no upload; "
                f"give an http(s) URL, or use the dashscope provider, which uploads local files"
            )
        verdict = media_verdict(item, slot)
        if verdict.fatal:
            raise TemplateProblem(f"{item.origin}: " + "; ".join(verdict.fatal))
        if verdict.fixable and not step.conform:
            raise TemplateProblem(f"{item.origin}: " + "; ".join(verdict.fixable) + " (conform: false forbids adapting it)")
        if verdict.fixable and item.width and item.height:
            try:
                target_size(item.width, item.height, slot)  # can it be fitted at all?
            except ConformError as error:
                raise TemplateProblem(f"{item.origin}: {error}") from None
        return item, None


def media_verdict(item: Artifact, slot: InputSpec) -> MediaVerdict:
    """Check an artifact against a slot's rules."""
    rules = load_catalog().media[slot.media]
    facts = MediaFacts(item.media_type, item.size, item.width, item.height, item.duration, item.has_alpha)
    return check_media(slot, rules, facts)


def local_input_path(pipeline: Pipeline, text: str) -> Path:
    """Resolve a local input path written in the pipeline (relative to the pipeline's folder).

    A pipeline may only read files inside its own folder (symlinks resolved), or inside folders
    the user allowed with ``--allow-path``: a recipe from someone else cannot read your files.
    """
    candidate = Path(text).expanduser()
    file = candidate if candidate.is_absolute() else pipeline.base_dir / candidate
    roots = [pipeline.base_dir.resolve(), *(root.resolve() for root in pipeline.allowed_paths)]
    resolved = file.resolve()
    if not any(resolved == root or root in resolved.parents for root in roots):
        raise TemplateProblem(
            f"input file {text} is outside the pipeline's folder ({pipeline.base_dir}); "
            "allow its folder with --allow-path DIR"
        )
    if not resolved.is_file():
        shown = text if candidate.is_absolute() else f"{text} (looked in {pipeline.base_dir})"
        raise TemplateProblem(f"input file not found: {shown}")
    return resolved


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
