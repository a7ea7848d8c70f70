"""The JSON schema's op params come from the op table the validator uses, and the two agree."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

import wanflow
from wanflow.ops import schema as ops_schema
from wanflow.ops.specs import OPS, OpParam, check_op_params


def test_the_shipped_schema_is_what_the_op_table_generates() -> None:
    text = ops_schema.SCHEMA_FILE.read_text("utf-8")
    assert ops_schema.render(ops_schema.with_ops(json.loads(text))) == text, "run python -m wanflow.ops.schema"
    shipped = json.loads(text)["$defs"]["opParams"]
    assert sorted(shipped) == sorted(OPS)
    for name, op in OPS.items():
        assert list(shipped[name]["properties"]) == list(op.params)
        assert shipped[name].get("required", []) == [key for key, param in op.params.items() if param.required]


def _samples(param: OpParam) -> list[Any]:
    """Values a user may write: the good ones and the near misses, by the param's type."""
    if param.type in ("number", "integer"):
        low, high = param.minimum, param.maximum
        values: list[Any] = [None, True, "soon", [1]]
        for bound, step in ((low, -1), (high, 1)):
            if bound is not None:
                values += [bound, bound + step, bound - step * 0.5]
        return values + [7, 7.5]
    if param.type == "at":
        return ["first", "last", 0, 1.5, -1, "soon", True, None]
    if param.type == "choice":
        return [*param.choices, "nope", 3, None, param.choices[0].upper()]
    if param.type in ("colour", "fill"):
        return ["white", "black", "#102030", "#fff", "#10203040", "White", "#12345", "rgb(1,2,3)", "blur", 5, ""]
    if param.type == "boolean":
        return [True, False, "yes", 1, None]
    return ["hello", "", 5, None, True]


def test_the_schema_and_the_validator_agree_on_every_param() -> None:
    """Every param of every op, with good values and near misses. (A literal string for a number is
    the one difference: the schema wants a number or a template; the validator sees rendered text.)"""
    validator = Draft202012Validator(json.loads(ops_schema.SCHEMA_FILE.read_text("utf-8")))
    disagreements, checked = [], 0
    for op, spec in sorted(OPS.items()):
        for key, param in spec.params.items():
            for value in _samples(param):
                document = {"name": "agree", "steps": {"x": {"op": op, "params": {key: value}}}}
                schema_ok = not any(tuple(error.absolute_path)[:4] == ("steps", "x", "params", key)
                                    for error in validator.iter_errors(document))
                _, problems = check_op_params(op, {key: value})
                validator_ok = key not in {name for name, _, _ in problems}
                checked += 1
                if schema_ok != validator_ok:
                    disagreements.append((op, key, value, schema_ok, validator_ok))
    assert disagreements == [] and checked > 300


def test_a_template_passes_the_schema_and_its_rendered_value_meets_the_validator(project: Path, write_pipeline) -> None:
    from ops_helpers import make_clip

    make_clip(project / "clip.mp4", seconds=0.5)
    path = write_pipeline("""
        wanflow: 1
        name: templated
        vars: {end: 0.25, colour: teal}
        steps:
          part: {op: trim, video: clip.mp4, params: {end: "{{ vars.end }}"}}
          words: {op: caption, video: clip.mp4, params: {text: hi, color: "{{ vars.colour }}"}}
    """)
    assert sorted(unit.step_id for unit in wanflow.plan(path).units["default"]) == ["part", "words"]
    with pytest.raises(wanflow.PipelineError) as caught:
        wanflow.plan(path, vars={"end": "-2", "colour": "Teal"})
    message = "\n".join(problem.format() for problem in caught.value.diagnostics)
    assert "pipe.yaml:5:51: steps.part.params.end: end: -2.0 is not allowed (allowed: a number from 0)" in message
    assert "pipe.yaml:6:" in message and "color: 'Teal' is not allowed (allowed: a colour name (lower case) or #RRGGBB)" in message
