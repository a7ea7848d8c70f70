"""Load a pipeline file and check everything that can be checked before any step runs.

Loading (YAML, schema, vars, steps, links) is here; the checks after it are in
``static_checks`` and the media they check in ``static_media``. Their public names stay
importable from this module.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from wanflow._diagnostics import Diagnostic, format_path
from wanflow._exceptions import PipelineError
from wanflow.catalog.loader import load_catalog
from wanflow.catalog.open_weights import open_weights_ids, open_weights_model
from wanflow.ops.specs import op_model
from wanflow.pipelines.graph import link_steps
from wanflow.pipelines.instances import matrix_diagnostics
from wanflow.pipelines.model import MEDIA_FIELDS, Pipeline, StepSpec
from wanflow.pipelines.schema_check import check_schema
from wanflow.pipelines.source_document import DataPath
from wanflow.pipelines.source_file import load_yaml_file
from wanflow.pipelines.static_checks import (
    check_default_params,
    check_templates,
)
from wanflow.pipelines.variables import resolve_vars
from wanflow.pipelines.weights import with_identity


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
    steps, step_problems = _build_steps(data["steps"], document, path.parent)
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
        provider_override=provider_override,
    )
    problems = step_problems + check_default_params(pipeline) + matrix_diagnostics(pipeline)
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


def _build_steps(raw: Mapping[str, Any], document: Any, base_dir: Path) -> tuple[dict[str, StepSpec], list[Diagnostic]]:
    catalog = load_catalog()
    steps: dict[str, StepSpec] = {}
    problems: list[Diagnostic] = []
    for step_id, body in raw.items():
        if ("op" in body) == ("model" in body):
            problems.append(_op_or_model(step_id, body, document))
            continue
        model = op_model(body["op"], set(body)) if "op" in body else catalog.get(body["model"])
        if model is None and "op" not in body:  # not in the services' catalog: an open-weights release?
            try:
                model = open_weights_model(body["model"], base_dir, frames_given="first_frame" in body or "last_frame" in body)
            except ValueError as error:
                where: DataPath = ("steps", step_id, "model")
                problems.append(Diagnostic(str(error), document.locate(where), path=format_path(where)))
                continue
            model = with_identity(model) if model is not None else None
        if model is None:
            path: DataPath = ("steps", step_id, "model")
            names = catalog.names() + open_weights_ids()
            aliases = [a for m in catalog.names() for a in catalog.models[m].aliases]
            close = difflib.get_close_matches(body["model"], names + aliases, n=1)
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
            **{name: body.get(name) for name in MEDIA_FIELDS},
            params=dict(body.get("params") or {}),
            seed=body.get("seed"),
            needs=tuple(body.get("needs") or ()),
            cache=bool(body.get("cache", True)),
            conform=bool(body.get("conform", True)),
            version=body.get("version"),
            for_each=body.get("for_each"),
            when=body.get("when"),
            description=body.get("description", ""),
            op=body.get("op"),
            videos=body.get("videos"),
        )
    return steps, problems


def _op_or_model(step_id: str, body: Mapping[str, Any], document: Any) -> Diagnostic:
    """A step names either a model (a paid or previewed generation) or an op (local media work)."""
    both = "op" in body
    path: DataPath = ("steps", step_id, "op") if both else ("steps", step_id)
    message = f"step '{step_id}' has both model: and op:" if both else f"step '{step_id}' needs model: or op:"
    return Diagnostic(message, document.locate(path), path=format_path(path),
                      allowed="model: <a Wan model> or op: <an operation>, not both")
