"""Files that two outputs (or two steps) would both write, found before anything runs.

``out/<pipeline>/`` names files after outputs and step ids, cleaned to safe characters. Two names
can still land on one file: ``poster`` and ``Poster`` on macOS or Windows, ``poster.`` and
``poster`` after cleaning, an output ``hero-1`` beside an output ``hero`` that is a list of two.
The second write would silently replace the first, so each such pair is an error at the second name.
"""

from __future__ import annotations

from collections.abc import Mapping

from wanflow._diagnostics import Diagnostic, format_path
from wanflow._exceptions import TemplateProblem
from wanflow.artifacts import Artifact
from wanflow.pipelines.located import base_context
from wanflow.pipelines.model import Pipeline
from wanflow.pipelines.naming import safe_name
from wanflow.pipelines.templating import StepOutputs, render

_CASE_NOTE = " (on macOS and Windows, where letter case does not count)"


def _case_note(mine: str, theirs: str) -> str:
    return _CASE_NOTE if mine != theirs else ""


def output_collisions(pipeline: Pipeline, outputs: Mapping[str, StepOutputs]) -> list[Diagnostic]:
    """Every output file or step folder that another output or step of ``pipeline`` also writes."""

    problems: list[Diagnostic] = []
    folders: dict[str, tuple[str, str]] = {}
    for step_id in pipeline.steps:
        folder = f"steps/{safe_name(step_id)}"
        other, other_folder = folders.setdefault(folder.casefold(), (step_id, folder))
        if other != step_id:
            path = ("steps", step_id)
            problems.append(Diagnostic(f"step '{step_id}' writes its files to {folder}/, the folder of step '{other}'"
                                       f"{_case_note(folder, other_folder)}; rename one of them",
                                       pipeline.source.locate_key(path), path=format_path(path)))
    files: dict[tuple[str, str], tuple[str, str]] = {}
    context = base_context(pipeline, outputs)
    for name, text in pipeline.outputs.items():
        try:
            value = render(text, context)
        except TemplateProblem:
            continue  # reported by check_output_templates
        artifacts = [item for item in (value if isinstance(value, list) else [value]) if isinstance(item, Artifact)]
        stem = safe_name(name)
        for index, artifact in enumerate(artifacts, start=1):
            file = stem if len(artifacts) == 1 else f"{stem}-{index}"
            other, other_file = files.setdefault((file.casefold(), artifact.kind), (name, file))
            if other != name:
                path = ("outputs", name)
                problems.append(Diagnostic(
                    f"output '{name}' writes the {artifact.kind} file {file}, as output '{other}' does"
                    f"{_case_note(file, other_file)}; rename one of them", pipeline.source.locate_key(path),
                    path=format_path(path)))
                break
    return problems
