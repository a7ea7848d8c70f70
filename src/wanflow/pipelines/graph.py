"""The step graph: dependencies from template references and ``needs``, cycles, Mermaid output."""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Any

from wanflow._diagnostics import Diagnostic, format_path
from wanflow._exceptions import TemplateProblem
from wanflow.pipelines.model import TEMPLATED_STEP_FIELDS, Pipeline, StepSpec
from wanflow.pipelines.source_document import DataPath
from wanflow.pipelines.templating import referenced_steps


def template_strings(value: Any, path: DataPath) -> Iterator[tuple[DataPath, str]]:
    """Every string inside ``value`` (a field of a step or the outputs), with its data path."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from template_strings(item, path + (index,))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from template_strings(item, path + (key,))


def step_templates(step: StepSpec) -> Iterator[tuple[DataPath, str]]:
    """Every template string of ``step``."""
    for name in TEMPLATED_STEP_FIELDS:
        yield from template_strings(getattr(step, name), step.path(name))


def link_steps(pipeline: Pipeline) -> list[Diagnostic]:
    """Fill in each step's ``depends_on``; report unknown steps and cycles."""
    diagnostics: list[Diagnostic] = []
    for step in pipeline.steps.values():
        depends: list[str] = []
        for path, text in step_templates(step):
            for ref in _known_references(pipeline, path, text, diagnostics):
                if ref == step.id:
                    diagnostics.append(_located(pipeline, path, f"step '{step.id}' refers to its own outputs"))
                elif ref not in depends:
                    depends.append(ref)
        for index, need in enumerate(step.needs):
            path = step.path("needs", index)
            if need not in pipeline.steps:
                diagnostics.append(_unknown_step(need, pipeline, path))
            elif need == step.id:
                diagnostics.append(_located(pipeline, path, f"step '{step.id}' needs itself"))
            elif need not in depends:
                depends.append(need)
        step.depends_on = tuple(depends)
    for path, text in template_strings(pipeline.outputs, ("outputs",)):
        _known_references(pipeline, path, text, diagnostics)
    if not diagnostics:
        cycle = find_cycle(pipeline)
        if cycle:
            first = pipeline.steps[cycle[0]]
            diagnostics.append(
                Diagnostic(
                    "dependency cycle: " + " -> ".join(cycle + [cycle[0]]),
                    pipeline.source.locate_key(first.path()),
                    path=format_path(first.path()),
                )
            )
    return diagnostics


def _located(pipeline: Pipeline, path: DataPath, message: str) -> Diagnostic:
    return Diagnostic(message, pipeline.locate(path), path=format_path(path))


def _known_references(pipeline: Pipeline, path: DataPath, text: str, diagnostics: list[Diagnostic]) -> list[str]:
    """The existing steps ``text`` references; syntax errors and unknown steps go to ``diagnostics``."""
    try:
        refs = referenced_steps(text)
    except TemplateProblem as problem:
        diagnostics.append(_located(pipeline, path, problem.message))
        return []
    known = []
    for ref in refs.steps:
        if ref in pipeline.steps:
            known.append(ref)
        else:
            diagnostics.append(_unknown_step(ref, pipeline, path))
    return known


def _unknown_step(name: str, pipeline: Pipeline, path: DataPath) -> Diagnostic:
    known = list(pipeline.steps)
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return Diagnostic(
        f"unknown step '{name}'{hint}", pipeline.locate(path), path=format_path(path), allowed=", ".join(known)
    )


def find_cycle(pipeline: Pipeline) -> list[str] | None:
    """One dependency cycle as a list of step ids, or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = finished
    stack: list[str] = []

    def visit(step_id: str) -> list[str] | None:
        state[step_id] = 1
        stack.append(step_id)
        for dep in pipeline.steps[step_id].depends_on:
            if state.get(dep) == 1:
                return stack[stack.index(dep):]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        state[step_id] = 2
        return None

    for step_id in pipeline.steps:
        if step_id not in state:
            found = visit(step_id)
            if found:
                return found
    return None


def to_mermaid(pipeline: Pipeline) -> str:
    """A Mermaid flowchart of the steps, their models and the named outputs."""
    from wanflow.pipelines.fanout import fan_out_label

    lines = ["flowchart LR"]
    for step in pipeline.steps.values():
        fan_out = fan_out_label(pipeline, step)
        if fan_out:  # a fan-out step is drawn as a stack (subroutine shape) saying how many sub-tasks
            lines.append(f'  {step.id}[["{step.id}<br/><small>{step.model.name}</small><br/><small>{fan_out}</small>"]]')
        else:
            lines.append(f'  {step.id}["{step.id}<br/><small>{step.model.name}</small>"]')
    for step in pipeline.steps.values():
        sources = referenced_steps(str(step.for_each)).steps if isinstance(step.for_each, str) else ()
        for dep in step.depends_on:
            lines.append(f"  {dep} -- for each --> {step.id}" if dep in sources else f"  {dep} --> {step.id}")
    for name, text in pipeline.outputs.items():
        node = f"out_{_mermaid_id(name)}"
        lines.append(f'  {node}(["{name}"])')
        for ref in referenced_steps(text).steps:
            lines.append(f"  {ref} -.-> {node}")
    return "\n".join(lines) + "\n"


def _mermaid_id(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in name)
