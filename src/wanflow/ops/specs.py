"""What each ``op:`` step takes and gives: its media inputs, its output and its params, as data.

An op is presented to the rest of wanflow as a model (``op:frame``) of kind ``op`` with no price,
so plans, keys, records, the lockfile and the report treat it like any other step.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wanflow.catalog.spec import InputSpec, ModelSpec, OutputSpec, ProviderModel, TextSpec

OP_PROVIDER = "op"
ASPECTS = ("9:16", "1:1", "16:9", "4:5")
ANCHORS = ("center", "top", "bottom", "left", "right")
POSITIONS = ("top-left", "top", "top-right", "left", "center", "right", "bottom-left", "bottom", "bottom-right")
_NO_ROUTE = ProviderModel(model="op")
FONT_TYPE = "font/sfnt"  # a caption's font file as an op input (kept by content hash)
HEX_COLOUR = "#([0-9a-fA-F]{3,4}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})"


@dataclass(frozen=True)
class OpParam:
    """One op parameter: its type (number, integer, string, choice, at, colour, fill, boolean, font),
    default and bounds. A ``font`` is a file path, resolved and checked when the step is resolved."""

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
        if self.type in ("colour", "fill"):
            return ("blur, or " if self.type == "fill" else "") + "a colour name (lower case) or #RRGGBB"
        if self.type == "at":
            return "first, last, or a time in seconds (a number >= 0)"
        if self.type == "font":
            return "a TrueType or OpenType font file (.ttf, .otf, .ttc) inside the pipeline's folder"
        bounds = "" if self.minimum is None else f" from {self.minimum:g}" + (
            "" if self.maximum is None else f" to {self.maximum:g}")
        return ("an " if self.type[0] in "aeiou" else "a ") + f"{self.type}{bounds}"


@dataclass(frozen=True)
class OpDef:
    """An operation: input slots (name -> (media, minimum, maximum)), its one output, its params.

    ``one_of``: input slots of which a step gives exactly one; ``output_for``: the output when that
    slot is the one given (``fit`` of an ``image`` gives ``images``, of a ``video`` a ``video``)."""

    name: str
    title: str
    inputs: Mapping[str, tuple[str, int, int]]
    output: str  # video | images
    params: Mapping[str, OpParam] = field(default_factory=dict)
    one_of: tuple[str, ...] = ()
    output_for: Mapping[str, str] = field(default_factory=dict)


_SECONDS = OpParam("number", minimum=0.0)
_RANGE = {"start": OpParam("number", 0.0, minimum=0.0), "end": _SECONDS}  # when an overlay shows
OPS: dict[str, OpDef] = {
    "frame": OpDef("frame", "one image from a video", {"video": ("video", 1, 1)}, "images",
                   {"at": OpParam("at", "last")}),
    "trim": OpDef("trim", "a part of a video", {"video": ("video", 1, 1)}, "video",
                  {"start": OpParam("number", 0.0, minimum=0.0), "end": _SECONDS, "duration": OpParam("number", minimum=0.0)}),
    "concat": OpDef("concat", "videos joined in order", {"videos": ("video", 2, 64)}, "video",
                    {"transition": OpParam("choice", "cut", ("cut", "crossfade")),
                     "transition_seconds": OpParam("number", 0.5, minimum=0.04, maximum=5.0)}),
    "fit": OpDef("fit", "a video or an image fitted to an aspect and width",
                 {"video": ("video", 0, 1), "image": ("image", 0, 1)}, "video",
                 {"aspect": OpParam("choice", None, ASPECTS, required=True),
                  "width": OpParam("integer", None, minimum=16, maximum=4096, required=True),
                  "mode": OpParam("choice", "crop", ("crop", "pad")),
                  "anchor": OpParam("choice", "center", ANCHORS),
                  "fill": OpParam("fill", "blur")}, one_of=("video", "image"), output_for={"image": "images"}),
    "overlay": OpDef("overlay", "an image (logo, end card) over a video, alpha kept",
                     {"video": ("video", 1, 1), "image": ("image", 1, 1)}, "video",
                     {"position": OpParam("choice", "bottom-right", POSITIONS), "margin": OpParam("integer", 24, minimum=0),
                      "scale": OpParam("number", 0.2, minimum=0.01, maximum=1.0),
                      "opacity": OpParam("number", 1.0, minimum=0.0, maximum=1.0), **_RANGE}),
    "caption": OpDef("caption", "text over a video", {"video": ("video", 1, 1)}, "video",
                     {"text": OpParam("string", required=True), "position": OpParam("choice", "bottom", POSITIONS),
                      "margin": OpParam("integer", 24, minimum=0), "size": OpParam("integer", minimum=6, maximum=512),
                      "color": OpParam("colour", "white"), "box": OpParam("colour"),
                      "box_opacity": OpParam("number", 0.6, minimum=0.0, maximum=1.0), "font": OpParam("font"), **_RANGE}),
    "soundtrack": OpDef("soundtrack", "music under a video", {"video": ("video", 1, 1), "audio": ("audio", 1, 1)}, "video",
                        {"volume": OpParam("number", 1.0, minimum=0.0, maximum=4.0),
                         "fade_in": OpParam("number", 0.0, minimum=0.0), "fade_out": OpParam("number", 0.0, minimum=0.0),
                         "loop": OpParam("boolean", True), "mix": OpParam("choice", "mix", ("mix", "replace"))}),
    "encode": OpDef("encode", "an export encode (H.264 yuv420p faststart, AAC)", {"video": ("video", 1, 1)}, "video",
                    {"preset": OpParam("choice", "web", ("web", "social", "draft")),
                     "quality": OpParam("integer", minimum=0, maximum=51),
                     "bitrate_kbps": OpParam("integer", minimum=100, maximum=100_000),
                     "max_width": OpParam("integer", minimum=16, maximum=8192)}),
    "pick": OpDef("pick", "the candidate chosen with wanflow pick (default: params.default)",
                  {"images": ("image", 0, 256), "videos": ("video", 0, 256)}, "images",
                  {"default": OpParam("integer", 0, minimum=0, maximum=255)}, one_of=("images", "videos"),
                  output_for={"videos": "video"}),
    "contact_sheet": OpDef("contact_sheet", "a labelled grid of images or video frames",
                           {"images": ("image", 0, 256), "videos": ("video", 0, 256)}, "images",
                           {"columns": OpParam("integer", 4, minimum=1, maximum=16),
                            "cell_width": OpParam("integer", 320, minimum=32, maximum=2048),
                            "labels": OpParam("boolean", True)}),
}


def op_names() -> list[str]:
    """Every op, for messages and the schema."""
    return sorted(OPS)


def op_model(name: str, written: Collection[str] = ()) -> ModelSpec:
    """The op as a model: inputs, one output, no prompt, no price, offered by the ``op`` provider.
    ``written``: the step's fields; the input given picks the output where the op says so (a
    ``pick`` of ``videos:`` gives a video; of ``images:``, an image as ``images[0]``)."""
    op = OPS[name]
    output = next((op.output_for[slot] for slot in op.output_for if slot in written), op.output)
    return ModelSpec(
        name=f"op:{name}", kind="op", title=op.title, aliases=(),
        prompt=TextSpec(False, 0), negative_prompt=TextSpec(False, 0), seed_code=None,
        inputs={slot: InputSpec(slot, low, high, media, many=slot.endswith("s")) for slot, (media, low, high) in op.inputs.items()},
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
    if spec.type == "boolean":
        return value if isinstance(value, bool) else None
    if isinstance(value, bool):
        return None
    if spec.type == "at":
        if value in ("first", "last"):
            return value
        spec = OpParam("number", minimum=0.0)
    if spec.type == "choice":
        return value if value in spec.choices else None
    if spec.type in ("string", "font"):
        return value if isinstance(value, str) and value else None
    if spec.type in ("colour", "fill"):
        fits = isinstance(value, str) and (_is_colour(value) or (spec.type == "fill" and value == "blur"))
        return value if fits else None
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



def font_problem(path: Path) -> str | None:
    """Why the file at ``path`` cannot be a caption's font (None: FreeType reads it as one)."""
    from PIL import ImageFont

    try:
        ImageFont.truetype(str(path), 12)
    except (OSError, ValueError):
        return f"{path.name} is not a font FreeType can read"
    return None


def colour_names() -> list[str]:
    """The colour names params accept (CSS names, lower case), for messages and the schema."""
    from PIL import ImageColor

    return sorted(ImageColor.colormap)


def _is_colour(text: str) -> bool:
    """A CSS colour name in lower case, or #RGB, #RGBA, #RRGGBB, #RRGGBBAA (what the schema allows)."""
    return text in colour_names() or re.fullmatch(HEX_COLOUR, text) is not None
