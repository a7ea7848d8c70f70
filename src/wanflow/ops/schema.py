"""The ops part of ``pipeline.schema.json``, generated from the op table (``wanflow.ops.specs.OPS``).

The table is the one source of truth: the validator checks params against it, and this module writes
the schema editors see (each op's params with their types, choices and ranges). A test keeps the
shipped file equal to what this generates. After changing an op's params, regenerate it with::

    python -m wanflow.ops.schema
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from wanflow.ops.specs import HEX_COLOUR, OPS, OpParam, colour_names, op_names

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "schemas" / "pipeline.schema.json"
TEMPLATE: dict[str, Any] = {"type": "string", "pattern": "\\{\\{"}  # rendered, then checked by the validator



def param_schema(param: OpParam) -> dict[str, Any]:
    """One param as JSON Schema: its literal values, or a template (checked once rendered)."""
    literal: list[dict[str, Any]]
    if param.type in ("number", "integer"):
        bounds = {key: _plain(value) for key, value in (("minimum", param.minimum), ("maximum", param.maximum))
                  if value is not None}
        literal = [{"type": param.type, **bounds}]
    elif param.type == "at":
        literal = [{"enum": ["first", "last"]}, {"type": "number", "minimum": 0}]
    elif param.type == "choice":
        literal = [{"enum": list(param.choices)}]
    elif param.type in ("colour", "fill"):
        literal = ([{"const": "blur"}] if param.type == "fill" else []) + [{"$ref": "#/$defs/colour"}]
    elif param.type == "boolean":
        literal = [{"type": "boolean"}]
    elif param.type in ("string", "font"):
        literal = [{"type": "string", "minLength": 1}]
    else:  # a new type must be described here before the schema can be written
        raise ValueError(f"no schema for op param type {param.type!r}")
    described: dict[str, Any] = {"x-allowed": param.allowed() + ("" if param.type in ("string", "font") else ", or a template")}
    if param.default is not None:
        described["default"] = param.default
    if param.type in ("string", "font"):
        return {**literal[0], **described}
    return {"anyOf": [*literal, TEMPLATE], **described}


def op_params_schema(name: str) -> dict[str, Any]:
    """The ``params:`` mapping of one op: only its own params, the required ones required."""
    op = OPS[name]
    schema: dict[str, Any] = {
        "description": f"Params of op: {name} ({op.title}).",
        "type": "object",
        "additionalProperties": False,
        "properties": {key: param_schema(param) for key, param in op.params.items()},
    }
    required = [key for key, param in op.params.items() if param.required]
    if required:
        schema["required"] = required
    return schema


def with_ops(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` (the pipeline schema) with its ops part replaced by the one the op table gives."""
    result = json.loads(json.dumps(schema))
    step = result["$defs"]["step"]
    step["properties"]["op"]["enum"] = op_names()
    result["$defs"]["colour"] = {"description": "A CSS colour name in lower case, or #RGB, #RGBA, #RRGGBB, #RRGGBBAA.",
                                 "anyOf": [{"type": "string", "pattern": f"^{HEX_COLOUR}$"}, {"enum": colour_names()}]}
    result["$defs"]["opParams"] = {name: op_params_schema(name) for name in op_names()}
    rules = []
    for name in op_names():
        then: dict[str, Any] = {"properties": {"params": {"$ref": f"#/$defs/opParams/{name}"}}}
        if any(param.required for param in OPS[name].params.values()):
            then["required"] = ["params"]
        rules.append({"if": {"required": ["op"], "properties": {"op": {"const": name}}}, "then": then})
    step["allOf"] = rules
    return result


def render(schema: dict[str, Any]) -> str:
    """The file's text (stable, so the test can compare bytes): one line for what fits in 120."""
    return _format(schema, 0) + "\n"


def _format(value: Any, depth: int) -> str:
    flat = json.dumps(value, ensure_ascii=False)
    if not isinstance(value, (dict, list)) or len(flat) + 2 * depth <= 120 or (
            isinstance(value, list) and all(not isinstance(item, (dict, list)) for item in value)):
        return flat
    inner = "  " * (depth + 1)
    if isinstance(value, list):
        items = [inner + _format(item, depth + 1) for item in value]
        return "[\n" + ",\n".join(items) + "\n" + "  " * depth + "]"
    entries = [f"{inner}{json.dumps(key)}: {_format(item, depth + 1)}" for key, item in value.items()]
    return "{\n" + ",\n".join(entries) + "\n" + "  " * depth + "}"


def main() -> int:
    """Rewrite the shipped schema's ops part from the op table."""
    current = json.loads(SCHEMA_FILE.read_text("utf-8"))
    SCHEMA_FILE.write_text(render(with_ops(current)), "utf-8")
    print(f"wrote {SCHEMA_FILE}")
    return 0


def _plain(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


if __name__ == "__main__":
    sys.exit(main())
