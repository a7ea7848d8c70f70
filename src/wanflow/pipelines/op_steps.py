"""Resolving an ``op:`` step (a local media operation): its params checked against the op's table
in ``wanflow.ops.specs``, its media inputs rendered like any step's. Ops draw no seed."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from wanflow._diagnostics import Diagnostic
from wanflow._exceptions import TemplateProblem
from wanflow._fs import sha256_file
from wanflow.artifacts import Artifact, MediaInput
from wanflow.ops.specs import FONT_TYPE, OP_PROVIDER, OPS, check_op_params, font_problem
from wanflow.pipelines.input_paths import local_input_path
from wanflow.pipelines.model import OP_MEDIA_FIELDS, Pipeline, StepSpec
from wanflow.pipelines.request import StepRequest
from wanflow.pipelines.source_document import DataPath

OP_SEED_SOURCE = "none (an op is deterministic)"


class Findings(Protocol):
    """Where resolving puts located problems (``located.StepDiagnostics``)."""

    diagnostics: list[Diagnostic]
    pipeline: Pipeline

    @property
    def failed(self) -> bool: ...

    def add(self, path: DataPath, message: str, allowed: str | None = None, code: str | None = None,
            severity: str = "error") -> None: ...


MediaItems = Callable[[str, Any], "list[tuple[MediaInput, DataPath]] | None"]


def resolve_op_step(collector: Findings, step: StepSpec, given: Mapping[str, Any], media_items: MediaItems,
                    unit: str | None = None) -> tuple[StepRequest | None, list[Diagnostic]]:
    """The op's request from its rendered params (``given``) and inputs (``media_items(field, written)``
    renders one field): params checked with defaults filled in, inputs by content hash. ``unit`` names
    one item of a ``for_each`` step (``best[1]``): each item of a pick is picked on its own."""
    assert step.op is not None
    op = OPS[step.op]
    params, problems = check_op_params(step.op, given)
    for name, message, allowed in problems:
        collector.add(step.path("params", name) if name else step.path("op"), message, allowed)
    inputs: dict[str, tuple[MediaInput, ...]] = {}
    for name in OP_MEDIA_FIELDS:
        written = getattr(step, name)
        slot = op.inputs.get(name)
        if slot is None:
            if written is not None:
                collector.add(step.path(name), f"op {op.name} does not take {name}:",
                              allowed=", ".join(f"{key}:" for key in op.inputs))
            continue
        found = [] if written is None else media_items(name, written)
        if found is None:
            continue
        _, low, high = slot
        if not low <= len(found) <= high:
            allowed = f"exactly {low}" if low == high else f"{low} to {high}"
            collector.add(step.path(name) if written is not None else step.path("op"),
                          f"op {op.name} got {len(found)} item(s) in {name}:", allowed=allowed)
            continue
        if found:
            inputs[name] = tuple(entry for entry, _ in found)
    for name, param in op.params.items():
        if param.type == "font" and name in params:
            font = _font_input(collector, step, name, str(params.pop(name)))
            if font is not None:
                inputs[name] = (font,)  # by content hash: another file at that path re-runs the step
    if op.one_of and sum(1 for slot in op.one_of if getattr(step, slot) is not None) != 1:
        collector.add(step.path("op"), f"op {op.name} takes " + " or ".join(f"{slot}:" for slot in op.one_of) + " (one of them)",
                      allowed=" or ".join(f"{slot}: ..." for slot in op.one_of))
    source = OP_SEED_SOURCE
    if step.op == "pick" and not collector.failed:
        source = _choose(collector, step, inputs, params, unit or step.id)
    if collector.failed:
        return None, collector.diagnostics
    request = StepRequest(
        step_id=step.id, model=step.model, provider=OP_PROVIDER, prompt=None, negative_prompt=None, inputs=inputs,
        params=params, explicit_params=frozenset(step.params), seed_source=source, version=step.version,
    )
    return request, collector.diagnostics


def _choose(collector: Findings, step: StepSpec, inputs: Mapping[str, tuple[MediaInput, ...]], params: dict[str, Any],
            unit: str) -> str:
    """Set ``params["choice"]``: the lockfile's ``wanflow pick`` choice, else ``default``. Only the
    choice is in the request beside the candidates, so a new pick re-runs only what follows."""
    slot = "videos" if "videos" in inputs else "images"
    count = len(inputs.get(slot, ()))
    picked = collector.pipeline.picks.get(unit)
    choice = picked if picked is not None else int(params["default"])
    if choice >= count:
        where = "the lockfile's pick (wanflow pick)" if picked is not None else "params.default"
        collector.add(step.path("params", "default") if picked is None else step.path("op"),
                      f"{where} is candidate {choice}, but there are {count}", allowed=f"0 to {count - 1}")
        return OP_SEED_SOURCE
    params["choice"] = choice
    return "picked with wanflow pick (kept in the lockfile)" if picked is not None else "params.default (no pick yet)"


def _font_input(collector: Findings, step: StepSpec, name: str, written: str) -> Artifact | None:
    """The font file ``written`` (relative to the pipeline, confined to its folder and --allow-path
    folders) as an input, or None with the problem added at ``params.<name>``."""
    where = step.path("params", name)
    try:
        file = local_input_path(collector.pipeline, written)
    except TemplateProblem as problem:
        collector.add(where, problem.message, allowed=OPS[str(step.op)].params[name].allowed())
        return None
    problem_text = font_problem(file)
    if problem_text is not None:
        collector.add(where, problem_text, allowed=OPS[str(step.op)].params[name].allowed())
        return None
    return Artifact(sha256=sha256_file(file), media_type=FONT_TYPE, size=file.stat().st_size, path=file,
                    origin=f"file {written}")
