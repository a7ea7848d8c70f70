"""What each ``op:`` step takes and gives: its media inputs, its output and its params, as data.

An op is presented to the rest of wanflow as a model (``op:frame``) of kind ``op`` with no price,
so plans, keys, records, the lockfile and the report treat it like any other step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from wanflow.catalog.spec import InputSpec, ModelSpec, OutputSpec, ProviderModel, TextSpec

OP_PROVIDER = "op"
ASPECTS = ("9:16", "1:1", "16:9", "4:5")
ANCHORS = ("center", "top", "bottom", "left", "right")
_NO_ROUTE = ProviderModel(model="op")


@dataclass(frozen=True)
class OpParam:
    """One op parameter: its type (number, integer, string, choice, at), default and bounds."""

    type: str
    default: Any = None
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    required: bool = False

    def allowed(self) -> str:
        """Human wording of the allowed values."""
        if self.type == "choice":
            return "one of " + ", ".join(self.choices)
        if self.type == "at":
            return "first, last, or a time in seconds (a number >= 0)"
        bounds = "" if self.minimum is None else f" from {self.minimum:g}" + (
            "" if self.maximum is None else f" to {self.maximum:g}")
        return f"a {self.type}{bounds}"


@dataclass(frozen=True)
class OpDef:
    """An operation: input slots (name -> (media, minimum, maximum)), its one output, its params."""

    name: str
    title: str
    inputs: Mapping[str, tuple[str, int, int]]
    output: str  # video | images
    params: Mapping[str, OpParam] = field(default_factory=dict)


_SECONDS = OpParam("number", minimum=0.0)
OPS: dict[str, OpDef] = {
    "frame": OpDef("frame", "one image from a video", {"video": ("video", 1, 1)}, "images",
                   {"at": OpParam("at", "last")}),
    "trim": OpDef("trim", "a part of a video", {"video": ("video", 1, 1)}, "video",
                  {"start": OpParam("number", 0.0, minimum=0.0), "end": _SECONDS, "duration": OpParam("number", minimum=0.0)}),
    "concat": OpDef("concat", "videos joined in order", {"videos": ("video", 2, 64)}, "video",
                    {"transition": OpParam("choice", "cut", ("cut", "crossfade")),
                     "transition_seconds": OpParam("number", 0.5, minimum=0.04, maximum=5.0)}),
    "fit": OpDef("fit", "a video fitted to an aspect and width", {"video": ("video", 1, 1)}, "video",
                 {"aspect": OpParam("choice", None, ASPECTS, required=True),
                  "width": OpParam("integer", None, minimum=16, maximum=4096, required=True),
                  "mode": OpParam("choice", "crop", ("crop", "pad")),
                  "anchor": OpParam("choice", "center", ANCHORS),
                  "fill": OpParam("string", "blur")}),
}


def op_names() -> list[str]:
    """Every op, for messages and the schema."""
    return sorted(OPS)


def op_model(name: str) -> ModelSpec:
    """The op as a model: inputs, one output, no prompt, no price, offered by the ``op`` provider."""
    op = OPS[name]
    output = op.output
    return ModelSpec(
        name=f"op:{name}", kind="op", title=op.title, aliases=(),
        prompt=TextSpec(False, 0), negative_prompt=TextSpec(False, 0), seed_code=None,
        inputs={slot: InputSpec(slot, low, high, media) for slot, (media, low, high) in op.inputs.items()},
        outputs={output: OutputSpec(output)}, params={}, providers={OP_PROVIDER: _NO_ROUTE},
    )


def check_op_params(name: str, given: Mapping[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str, str | None]]]:
    """Coerce ``given`` to the op's params with defaults filled in; problems are (param, message, allowed)."""
    op = OPS[name]
    values: dict[str, Any] = {}
    problems: list[tuple[str, str, str | None]] = []
    for key, value in given.items():
        spec = op.params.get(key)
        if spec is None:
            problems.append((key, f"op {name} has no parameter '{key}'", ", ".join(op.params) or "none"))
            continue
        coerced = _coerce(spec, value)
        if coerced is None:
            problems.append((key, f"{key}: {value!r} is not allowed", spec.allowed()))
        else:
            values[key] = coerced
    for key, spec in op.params.items():
        if key not in values:
            if spec.required:
                problems.append(("", f"op {name} needs params.{key}", spec.allowed()))
            elif spec.default is not None:
                values[key] = spec.default
    return values, problems


def _coerce(spec: OpParam, value: Any) -> Any:
    if isinstance(value, bool):
        return None
    if spec.type == "at":
        if value in ("first", "last"):
            return value
        spec = OpParam("number", minimum=0.0)
    if spec.type == "choice":
        return value if value in spec.choices else None
    if spec.type == "string":
        return value if isinstance(value, str) and value else None
    if isinstance(value, str):
        try:
            value = float(value) if spec.type == "number" else int(value)
        except ValueError:
            return None
    if spec.type == "integer" and (not isinstance(value, (int, float)) or int(value) != value):
        return None
    if not isinstance(value, (int, float)):
        return None
    if (spec.minimum is not None and value < spec.minimum) or (spec.maximum is not None and value > spec.maximum):
        return None
    return int(value) if spec.type == "integer" else float(value)

