"""Many instances of one pipeline: a ``matrix`` of vars (cross product with include/exclude) and
``--batch`` rows from CSV or JSON Lines (read by ``batch_file``). Each instance is the pipeline
with its own vars, in its own folder ``out/<pipeline>/<instance>/``."""

from __future__ import annotations

import difflib
import itertools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from wanflow._diagnostics import Diagnostic, Location
from wanflow._exceptions import PipelineError, UsageError
from wanflow.pipelines import batch_file
from wanflow.pipelines.batch_file import BatchRow
from wanflow.pipelines.model import Pipeline
from wanflow.pipelines.static_checks import check_templates
from wanflow.pipelines.variables import check_typed_value

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
    line: int | None = None  # the batch file's line number


def _slug(values: Mapping[str, Any]) -> str:
    text = "_".join(f"{key}-{value}" for key, value in values.items())
    return _NAME_UNSAFE.sub("-", text).strip("-.")[:80] or "instance"


def matrix_combinations(pipeline: Pipeline, chosen: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """The matrix's var combinations: the cross product, minus ``exclude``, plus ``include``.

    A matrix axis set on purpose (``--var style=neon``, the vars file, or a batch row's column:
    ``chosen``, default the pipeline's chosen vars) keeps only the combinations with that value.
    """
    matrix = dict(pipeline.matrix or {})
    if not matrix:
        return [{}]
    include = matrix.pop("include", []) or []
    exclude = matrix.pop("exclude", []) or []
    axes = list(matrix)
    combos = [dict(zip(axes, values, strict=True)) for values in itertools.product(*(matrix[axis] for axis in axes))]
    combos = [combo for combo in combos if not any(all(combo.get(k) == v for k, v in rule.items()) for rule in exclude)]
    for extra in include:
        if dict(extra) not in combos:
            combos.append(dict(extra))
    if chosen is None:
        chosen = {name: pipeline.vars[name] for name in pipeline.chosen_vars if name in pipeline.vars}
    return _pick(combos, chosen, axes)


def _pick(combos: list[dict[str, Any]], chosen: Mapping[str, Any], axes: Iterable[str]) -> list[dict[str, Any]]:
    """The combinations that agree with the values ``chosen`` for matrix axes (all when none is chosen)."""
    picked = {name: chosen[name] for name in axes if name in chosen}
    if not picked:
        return combos
    return [combo for combo in combos if all(combo.get(name, value) == value for name, value in picked.items())]


def read_batch(path: Path, delimiter: str | None = None) -> list[BatchRow]:
    """Rows of a CSV (with a header) or JSON Lines file, each with its line number (see batch_file)."""
    return batch_file.read_batch(path, delimiter)


def instantiate(base: Pipeline, values: Mapping[str, Any], strict: bool = False) -> Pipeline:
    """``base`` with ``values`` for some vars, checked again (templates, params, media)."""
    pipeline = replace(base, vars={**base.vars, **values}, warnings=[], pinned_seeds={})
    found = check_templates(pipeline)
    errors = [d for d in found if d.severity == "error" or strict]
    if errors:
        raise PipelineError(errors)
    pipeline.warnings = list(dict.fromkeys(found))
    return pipeline


def expand(base: Pipeline, batch: Path | None = None, strict: bool = False,
           delimiter: str | None = None) -> tuple[list[Instance], list[RejectedRow]]:
    """Every instance to run, and the batch rows that cannot run (with their line numbers).

    Raises PipelineError before anything runs when the batch file is broken, when two rows (or
    matrix combinations) would write to the same folder, or when no row can run at all.
    """
    rows = read_batch(batch, delimiter) if batch else [BatchRow(0, {})]
    if batch is not None:
        _check_columns(base, batch, rows)
    combinations = matrix_combinations(base)  # --var already picked its axis values; a row may pick more
    axes = [axis for axis in base.matrix or {} if axis not in ("include", "exclude")]
    named = [(row, _row_name(row.values, row.line) if batch else "") for row in rows]
    _refuse_duplicate_names(named, batch)
    instances: list[Instance] = []
    rejected: list[RejectedRow] = []
    for row, row_name in named:
        number = row.line if batch else None
        label = f"{batch.name}:{number}" if batch else "pipeline"
        values, problems = _row_values(base, row)
        combos = _pick(combinations, values, axes)
        if not problems and not combos:
            problems = [_not_on_axis(base, name, value) for name, value in values.items() if name in (base.matrix or {})
                        and value not in axis_values(base, name)] or ["no matrix combination has these values"]
        if problems:
            rejected.append(RejectedRow(label, problems, number))
            continue
        for combo in combos:
            name = "__".join(part for part in (row_name, _slug(combo) if combo else "") if part) or "default"
            try:
                instances.append(Instance(name, instantiate(base, {**values, **combo}, strict), number))
            except PipelineError as error:
                rejected.append(RejectedRow(f"{label} ({name})" if combo else label, [d.format() for d in error.diagnostics], number))
    _refuse_duplicate_combinations(base, instances)
    if len(instances) > MAX_INSTANCES:
        raise UsageError(f"{len(instances)} instances (at most {MAX_INSTANCES})")
    if batch is not None and not instances:
        shown = [Diagnostic(problem, Location(str(batch), row.line or 1, 1))
                 for row in rejected[:_SHOWN_ROWS] for problem in row.problems]
        more = f" ({len(rejected) - _SHOWN_ROWS:,} more rows not shown)" if len(rejected) > _SHOWN_ROWS else ""
        raise PipelineError([*shown, Diagnostic(f"no row of the batch file can run{more}", Location(str(batch), 1, 1))])
    return instances, rejected


_SHOWN_ROWS = 20  # a file of a thousand bad rows (the wrong delimiter, say) needs a few examples, not all


_RESERVED_NAMES = {"default"}  # the folder and lockfile section of a run without --batch


def _row_name(values: Mapping[str, Any], number: int) -> str:
    named = values.get("name") or values.get("id")
    cleaned = _NAME_UNSAFE.sub("-", str(named)).strip("-.")[:60] if named else ""
    return cleaned or f"row-{number}"


def _refuse_duplicate_names(named: list[tuple[BatchRow, str]], batch: Path | None) -> None:
    """Two rows writing into one folder would overwrite each other's outputs: refuse before anything runs.

    Names are compared ignoring letter case, because macOS and Windows folders do."""
    if batch is None:
        return
    first: dict[str, BatchRow] = {}
    problems = []
    for row, name in named:
        key = name.casefold()
        location = Location(str(batch), row.line, 1)
        if key in _RESERVED_NAMES:
            problems.append(Diagnostic(f"the instance name '{name}' is reserved for runs without --batch; rename the row",
                                       location))
        elif key in first:
            other = first[key]
            same = "" if _row_name(other.values, other.line) == name else f" ('{_row_name(other.values, other.line)}')"
            problems.append(Diagnostic(
                f"the instance name '{name}' is also the name of line {other.line}{same}; each row writes to "
                f"out/<pipeline>/<name>/, so names must differ (letter case does not count)", location))
        else:
            first[key] = row
    if problems:
        raise PipelineError(problems)


def _refuse_duplicate_combinations(base: Pipeline, instances: list[Instance]) -> None:
    """Matrix values that differ only in characters a folder name cannot hold give one folder: refuse."""
    seen: set[str] = set()
    for instance in instances:
        key = instance.name.casefold()  # row names are unique already: a repeat comes from the matrix
        if key in seen:
            raise PipelineError([Diagnostic(
                f"two matrix combinations get the same folder name '{instance.name}'; make their values differ "
                f"in letters or digits", base.source.locate_key(("matrix",)), path="matrix")])
        seen.add(key)


def _check_columns(base: Pipeline, batch: Path, rows: list[BatchRow]) -> None:
    """Problems of the batch file as a whole, reported once before any row: a CSV header column
    that names no var (at the header line, not at every row), and a var that both ``--var`` (or
    ``--vars-file``) and the batch file set (which would win is not obvious: refused)."""
    columns = list(dict.fromkeys(key for row in rows for key in row.values))
    problems = []
    header_line = max(1, min(row.line for row in rows) - 1) if rows else 1
    if batch.suffix.lower() in (".csv", ".tsv"):
        for column in columns:
            if column not in base.vars and column not in ("name", "id"):
                close = difflib.get_close_matches(column, list(base.vars), n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                problems.append(Diagnostic(f"the header names an unknown var '{column}'{hint}",
                                           Location(str(batch), header_line, 1),
                                           allowed=", ".join(base.vars) or "no vars are declared"))
    on_axes = set(base.matrix or {})
    for column in columns:
        if column in base.chosen_vars and column not in on_axes:
            problems.append(Diagnostic(f"var '{column}' is set both by --var/--vars-file and by the batch file's "
                                       f"'{column}' column; drop one of the two", Location(str(batch), header_line, 1)))
    if problems:
        raise PipelineError(problems)


def _row_values(base: Pipeline, row: BatchRow) -> tuple[dict[str, Any], list[str]]:
    values: dict[str, Any] = {}
    problems: list[str] = list(row.problems)
    for key, value in row.values.items():
        if key in ("name", "id") and key not in base.vars:
            continue
        if key not in base.vars:
            close = difflib.get_close_matches(key, list(base.vars), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            problems.append(f"unknown var '{key}'{hint} (declared: {', '.join(base.vars) or 'none'})")
            continue
        try:
            values[key] = check_typed_value(key, value, base.vars[key])
        except ValueError as error:
            problems.append(str(error))
    return values, problems


def matrix_diagnostics(pipeline: Pipeline) -> list[Diagnostic]:
    """Matrix axes must be declared vars (typos must not silently add an unused axis)."""
    problems = []
    matrix = pipeline.matrix or {}
    for axis in matrix:
        if axis in ("include", "exclude"):
            for index, rule in enumerate(matrix[axis] or []):
                for key in rule:
                    if key not in pipeline.vars:
                        problems.append(Diagnostic(f"unknown var '{key}'", pipeline.locate(("matrix", axis, index, key)),
                                                   path=f"matrix.{axis}[{index}].{key}", allowed=", ".join(pipeline.vars)))
        elif axis not in pipeline.vars:
            location: Location = pipeline.source.locate_key(("matrix", axis))
            problems.append(Diagnostic(f"matrix axis '{axis}' is not a declared var", location, path=f"matrix.{axis}",
                                       allowed=", ".join(pipeline.vars) or "declare it under vars"))
        elif axis in pipeline.chosen_vars and pipeline.vars[axis] not in axis_values(pipeline, axis):
            problems.append(Diagnostic(_not_on_axis(pipeline, axis, pipeline.vars[axis]), path=f"--var {axis}"))
    return problems


def axis_values(pipeline: Pipeline, axis: str) -> list[Any]:
    """The values a matrix axis takes: its list, and any ``include`` entry's."""
    matrix = pipeline.matrix or {}
    return [*matrix.get(axis, []), *(rule[axis] for rule in matrix.get("include") or [] if axis in rule)]


def _not_on_axis(pipeline: Pipeline, axis: str, value: Any) -> str:
    shown = ", ".join(dict.fromkeys(str(choice) for choice in axis_values(pipeline, axis)))
    return (f"{axis}={value!r} is not a value of the matrix axis '{axis}' (setting a matrix axis picks that "
            f"value's instances; allowed: {shown})")
