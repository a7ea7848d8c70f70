"""Many instances of one pipeline: a ``matrix`` of vars (cross product with include/exclude) and
``--batch`` rows from CSV or JSON Lines. Each instance is the pipeline with its own vars."""

from __future__ import annotations

import csv
import itertools
import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

from wanflow._diagnostics import Diagnostic, Location
from wanflow._exceptions import PipelineError, UsageError
from wanflow.pipelines.load import check_templates
from wanflow.pipelines.model import Pipeline
from wanflow.pipelines.variables import coerce_override

MAX_INSTANCES = 100_000
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class Instance:
    """One pipeline instance: a name (its output folder and lockfile section) and its vars."""

    name: str
    pipeline: Pipeline
    row: int | None = None  # the batch file's line number


@dataclass
class RejectedRow:
    """A batch row that cannot run, and why."""

    label: str
    problems: list[str]


def _slug(values: Mapping[str, Any]) -> str:
    text = "_".join(f"{key}-{value}" for key, value in values.items())
    return _NAME_UNSAFE.sub("-", text).strip("-.")[:80] or "instance"


def matrix_combinations(pipeline: Pipeline) -> list[dict[str, Any]]:
    """The matrix's var combinations: the cross product, minus ``exclude``, plus ``include``."""
    matrix = dict(pipeline.matrix or {})
    if not matrix:
        return [{}]
    include = matrix.pop("include", []) or []
    exclude = matrix.pop("exclude", []) or []
    axes = list(matrix)
    combos = [dict(zip(axes, values)) for values in itertools.product(*(matrix[axis] for axis in axes))]
    combos = [combo for combo in combos if not any(all(combo.get(k) == v for k, v in rule.items()) for rule in exclude)]
    for extra in include:
        if dict(extra) not in combos:
            combos.append(dict(extra))
    return combos


def read_batch(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """Rows of a CSV (with a header) or JSON Lines file, each with its line number."""
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"--batch {path}: cannot read it ({error})") from None
    rows: list[tuple[int, dict[str, Any]]] = []
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except ValueError as error:
                value = {"__error__": f"not JSON ({error.msg})"}
            rows.append((number, value if isinstance(value, dict) else {"__error__": "a row must be a JSON object"}))
    elif path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        for row in reader:
            rows.append((reader.line_num, {key.strip(): value for key, value in row.items() if key is not None}))
    else:
        raise UsageError(f"--batch {path}: use a .csv (with a header row) or .jsonl file")
    if len(rows) > MAX_INSTANCES:
        raise UsageError(f"--batch {path}: {len(rows)} rows (at most {MAX_INSTANCES})")
    return rows


def instantiate(base: Pipeline, values: Mapping[str, Any], strict: bool = False) -> Pipeline:
    """``base`` with ``values`` for some vars, checked again (templates, params, media)."""
    pipeline = replace(base, vars={**base.vars, **values}, warnings=[], pinned_seeds={})
    found = check_templates(pipeline)
    errors = [d for d in found if d.severity == "error" or strict]
    if errors:
        raise PipelineError(errors)
    pipeline.warnings = list(dict.fromkeys(found))
    return pipeline


def expand(base: Pipeline, batch: Path | None = None, strict: bool = False) -> tuple[list[Instance], list[RejectedRow]]:
    """Every instance to run, and the batch rows that cannot run (with their line numbers)."""
    combos = matrix_combinations(base)
    rows: list[tuple[int | None, dict[str, Any]]] = read_batch(batch) if batch else [(None, {})]
    instances: list[Instance] = []
    rejected: list[RejectedRow] = []
    for number, row in rows:
        label = f"{batch.name}:{number}" if batch and number is not None else "pipeline"
        values, problems = _row_values(base, row)
        if problems:
            rejected.append(RejectedRow(label, problems))
            continue
        for combo in combos:
            parts = []
            if number is not None:
                parts.append(_row_name(row, number))
            if combo:
                parts.append(_slug(combo))
            name = "__".join(parts) or "default"
            try:
                instances.append(Instance(name, instantiate(base, {**values, **combo}, strict), number))
            except PipelineError as error:
                rejected.append(RejectedRow(f"{label} ({name})" if combo else label, [d.format() for d in error.diagnostics]))
    if len(instances) > MAX_INSTANCES:
        raise UsageError(f"{len(instances)} instances (at most {MAX_INSTANCES})")
    return instances, rejected


def _row_name(row: Mapping[str, Any], number: int) -> str:
    named = row.get("name") or row.get("id")
    return _NAME_UNSAFE.sub("-", str(named)).strip("-.")[:60] if named else f"row-{number}"


def _row_values(base: Pipeline, row: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    if "__error__" in row:
        return {}, [str(row["__error__"])]
    values: dict[str, Any] = {}
    problems: list[str] = []
    for key, value in row.items():
        if key in ("name", "id") and key not in base.vars:
            continue
        if key not in base.vars:
            problems.append(f"unknown var '{key}' (declared: {', '.join(base.vars) or 'none'})")
            continue
        if isinstance(value, str):
            try:
                value = coerce_override(key, value, base.vars[key])
            except ValueError as error:
                problems.append(str(error))
                continue
        values[key] = value
    return values, problems


def matrix_diagnostics(pipeline: Pipeline) -> list[Diagnostic]:
    """Matrix axes must be declared vars (typos must not silently add an unused axis)."""
    problems = []
    for axis in (pipeline.matrix or {}):
        if axis in ("include", "exclude"):
            for index, rule in enumerate(pipeline.matrix[axis] or []):
                for key in rule:
                    if key not in pipeline.vars:
                        problems.append(Diagnostic(f"unknown var '{key}'", pipeline.locate(("matrix", axis, index, key)),
                                                   path=f"matrix.{axis}[{index}].{key}", allowed=", ".join(pipeline.vars)))
        elif axis not in pipeline.vars:
            location: Location = pipeline.source.locate_key(("matrix", axis))
            problems.append(Diagnostic(f"matrix axis '{axis}' is not a declared var", location, path=f"matrix.{axis}",
                                       allowed=", ".join(pipeline.vars) or "declare it under vars"))
    return problems
