"""Every documented request rule, applied from catalog data.

The checks here know nothing about files or locations: each returns Findings that name a field
of the step (``("params", "n")``), the limit, and the service's own error code where the
documents define one. The pipeline resolver places them in the file.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from wanflow.catalog.spec import InputSpec, MediaRules, ModelSpec, ParamSpec, TextSpec

Severity = Literal["error", "warning"]
FieldPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Finding:
    """One broken or doubtful rule, relative to a step."""

    field: FieldPath
    message: str
    allowed: str | None = None
    code: str | None = None
    severity: Severity = "error"


def _error(field: FieldPath, message: str, allowed: str | None = None, code: str | None = None) -> Finding:
    return Finding(field, message, allowed, code, "error")


def _warning(field: FieldPath, message: str, allowed: str | None = None, code: str | None = None) -> Finding:
    return Finding(field, message, allowed, code, "warning")


# --- text ----------------------------------------------------------------------------------------

def count_chars(text: str) -> int:
    """Characters as the documents count them: each Chinese character, letter, digit or symbol is one."""
    return len(text)


def truncate_text(spec: TextSpec, text: str) -> str:
    """What the model sees: the service silently keeps only the first ``max_chars`` characters."""
    return text[: spec.max_chars]


def check_text(spec: TextSpec, field: str, text: str | None) -> list[Finding]:
    """Length rules of a prompt field.

    Disputed: the pages say over-long text is "automatically truncated", the t2i error table says
    1-2100 is enforced (001015006). wanflow sends the truncated text (so what the model sees is
    known) and warns, quoting where it was cut; ``--strict`` makes it an error.
    """
    if text is None:
        return []
    if spec.max_chars == 0:
        return [_error((field,), "is not taken by this model: it has no such field", "leave it out")]
    allowed = f"1 to {spec.max_chars} characters" if field == "prompt" else f"at most {spec.max_chars} characters"
    if field == "prompt" and not text.strip():
        return [_error((field,), "is empty", allowed, spec.code)]
    length = count_chars(text)
    if length <= spec.max_chars:
        return []
    kept = truncate_text(spec, text)
    tail = kept[-40:].replace("\n", " ")
    dropped = text[spec.max_chars: spec.max_chars + 30].replace("\n", " ")
    return [
        _warning(
            (field,),
            f"is {length:,} characters; the service keeps the first {spec.max_chars:,} and silently drops "
            f"the rest, so the model will see text ending '…{tail}' (dropped from '{dropped}…')",
            allowed,
            spec.code,
        )
    ]


def check_prompt_names(model: ModelSpec, prompt: str | None, counts: Mapping[str, int]) -> list[Finding]:
    """An r2v prompt calls its references ``character1``..``characterN``: a name past N is an error."""
    if model.prompt.names is None or prompt is None:
        return []
    slot, word = model.prompt.names
    count = counts.get(slot, 0)
    named = sorted({int(number) for number in re.findall(rf"\b{re.escape(word)}(\d+)\b", prompt)})
    allowed = f"{word}1 to {word}{count}" if count > 1 else f"{word}1"
    beyond = [number for number in named if not 1 <= number <= count]
    if beyond:
        return [_error(("prompt",), f"names {word}{beyond[0]}, but the step gives {count} {slot}", allowed)]
    if count and not named:
        return [_warning(("prompt",), f"names none of its {slot}: the model knows them as {allowed}", allowed)]
    return []


def check_cross_inputs(model: ModelSpec, prompt: str | None, params: Mapping[str, Any],
                       counts: Mapping[str, int]) -> list[Finding]:
    """Rules across a step's inputs: the prompt's names for them, the groups of which one is needed
    (VACE's video_extension: a first frame, a last frame or a first clip), and list params that
    describe each item of an input (VACE's obj_or_bg, one per reference image)."""
    findings = check_prompt_names(model, prompt, counts)
    mode = model.mode_for(params)
    groups = mode or model
    condition = f" {mode_condition(model, [mode.name])}" if mode is not None else ""
    for group in groups.any_of:
        if not any(counts.get(name) for name in group):
            wanted = ", ".join(f"{name}:" for name in group)
            findings.append(_error((group[0],), f"{model.name} needs at least one of {wanted}{condition}", " or ".join(group)))
    for group in groups.exclusive:
        given = [name for name in group if counts.get(name)]
        if len(given) > 1:
            findings.append(_error((given[1],), f"{model.name} takes {' or '.join(given)}, not both{condition}",
                                   "one of " + ", ".join(f"{name}:" for name in group)))
    for name, value in params.items():
        spec = model.param_spec(name, params)
        if spec is not None and spec.with_inputs and counts.get(spec.with_inputs["input"]) and isinstance(value, str):
            findings.extend(_check_with_inputs(model, spec, value, counts))
        if spec is not None and spec.same_length_as and isinstance(value, list) and len(value) != counts.get(spec.same_length_as, 0):
            findings.append(_error(("params", name), f"has {len(value)} items for {counts.get(spec.same_length_as, 0)} "
                                   f"{spec.same_length_as}", spec.describe_allowed(), spec.code))
    return findings


def params_from_inputs(model: ModelSpec, params: Mapping[str, Any], seconds: Mapping[str, float | None]) -> dict[str, Any]:
    """``params`` with each ``from_input`` param set from its input's length (s2v's duration is its
    audio's, rounded up to whole seconds); kept at its default when the length is not known yet."""
    completed = dict(params)
    for name, spec in model.params.items():
        length = seconds.get(spec.from_input) if spec.from_input else None
        if length:
            completed[name] = max(1, math.ceil(length - 0.05))  # 4.02 s of audio bills as 4 s, not 5
    return completed


def _check_with_inputs(model: ModelSpec, spec: ParamSpec, value: str, counts: Mapping[str, int]) -> list[Finding]:
    """A size while an input has items, under the narrower rules the catalog gives for that case."""
    rule = spec.with_inputs
    slot, count = rule["input"], counts.get(rule["input"], 0)
    narrow = replace(spec, tiers=tuple(rule.get("tiers", spec.tiers)),
                     pixels=tuple(rule["pixels"]) if "pixels" in rule else spec.pixels)
    if value in spec.tiers and value not in narrow.tiers:
        return [_error(("params", spec.name), f"{value} is for text-to-image only: {model.name} takes no {slot} with it "
                       f"(here {count})", f"with {slot}: {narrow.describe_allowed()}")]
    return [replace(finding, message=f"{finding.message} (with {slot}: {narrow.describe_allowed()})")
            for finding in check_size(narrow, value) if finding.severity == "error"]


# --- params --------------------------------------------------------------------------------------

def parse_size(text: str) -> tuple[int, int] | None:
    """``'1280*1280'`` -> (1280, 1280); None when the text is not WIDTH*HEIGHT of integers."""
    width, sep, height = text.partition("*")
    if not sep or not width.strip().isdigit() or not height.strip().isdigit():
        return None
    return int(width), int(height)


def coerce_param(spec: ParamSpec, value: Any) -> tuple[Any, Finding | None]:
    """Convert a rendered value to the param's type; a Finding when it cannot be."""
    field: FieldPath = ("params", spec.name)
    code = spec.code or spec.codes.get("format")
    if spec.type == "integer":
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            return value, _error(field, f"expected an integer, got {value!r}", spec.describe_allowed(), code)
        return value, None
    if spec.type == "number":
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return value, _error(field, f"expected a number, got {value!r}", spec.describe_allowed(), code)
        return float(value), None
    if spec.type == "list":
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, (list, tuple)):
            return value, _error(field, f"expected a list, got {value!r}", spec.describe_allowed(), code)
        return list(value), None
    if spec.type == "boolean":
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            value = value.strip().lower() == "true"
        if not isinstance(value, bool):
            return value, _error(field, f"expected true or false, got {value!r}", "true or false")
        return value, None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return value, _error(field, f"expected text, got {value!r}", spec.describe_allowed(), code)
    return str(value), None


def check_param_value(spec: ParamSpec, value: Any) -> list[Finding]:
    """Range, enum, size and option rules for one (already coerced) value."""
    field: FieldPath = ("params", spec.name)
    if spec.type == "list":
        wrong = [item for item in value if spec.items is not None and item not in spec.items]
        if wrong:
            return [_error(field, f"{wrong[0]!r} is not allowed", spec.describe_allowed(), spec.code)]
        return [_error(field, f"has {value.count(item)} {item!r} (at most {most})", spec.describe_allowed(), spec.code)
                for item, most in spec.at_most.items() if value.count(item) > most]
    if spec.type in ("integer", "number"):
        if spec.fixed and value != spec.minimum:
            return [_error(field, f"{value} is not possible: this model is fixed at {spec.minimum}",
                           spec.describe_allowed(), spec.code)]
        if spec.enum is not None and value not in spec.enum:
            return [_error(field, f"{value} is not allowed", spec.describe_allowed(), spec.code)]
        if (spec.minimum is not None and value < spec.minimum) or (spec.maximum is not None and value > spec.maximum):
            return [_error(field, f"{value} is out of range", spec.describe_allowed(), spec.code)]
        if spec.options and value not in spec.options:
            listed = ", ".join(map(str, spec.options))
            return [_warning(field, f"{value} is inside the documented range but not one of the listed options ({listed}); "
                                    "the documents disagree, so the service may reject it", spec.describe_allowed())]
        return []
    if spec.enum is not None and value not in spec.enum:
        return [_error(field, f"'{value}' is not allowed", spec.describe_allowed(), spec.code)]
    if spec.type == "size":
        return check_size(spec, str(value))
    return []


def check_size(spec: ParamSpec, value: str) -> list[Finding]:
    """``WIDTH*HEIGHT`` (or a tier): format, total pixels and aspect ratio."""
    field: FieldPath = ("params", "size")
    if value in spec.tiers:
        return []
    allowed = spec.describe_allowed()
    if "*" not in value:
        return [_error(field, f"'{value}' is not in the form WIDTH*HEIGHT", allowed, spec.codes.get("format"))]
    size = parse_size(value)
    if size is None:
        return [_error(field, f"'{value}' must be two integers as WIDTH*HEIGHT", allowed, spec.codes.get("integers"))]
    width, height = size
    if width <= 0 or height <= 0:
        return [_error(field, f"'{value}' has a zero side", allowed, spec.codes.get("integers"))]
    findings = []
    if spec.pixels and not spec.pixels[0] <= width * height <= spec.pixels[1]:
        findings.append(_error(field, f"{value} is {width * height:,} pixels in total", allowed, spec.codes.get("pixels")))
    if spec.aspect and not spec.aspect[0] <= width / height <= spec.aspect[1]:
        findings.append(_error(field, f"{value} has aspect ratio {width / height:.3g}", allowed, spec.codes.get("aspect")))
    disputed = spec.disputed
    if not findings and disputed and width * height < disputed.get("below_pixels", 0) and value not in disputed.get("except", ()):
        findings.append(_warning(field, f"{value} ({width * height:,} pixels) is in a disputed range: {disputed['note']}", allowed))
    return findings


def check_params(model: ModelSpec, params: Mapping[str, Any], explicit: set[str]) -> list[Finding]:
    """Mode, range and cross-parameter rules for the completed ``params`` of one step."""
    findings: list[Finding] = []
    mode = model.mode_name(params)
    for name, value in params.items():
        spec = model.param_spec(name, params)
        if spec is None or name == "seed":
            continue
        if spec.from_input and name in explicit:  # s2v's duration is its audio's: a written one would be ignored
            findings.append(_error(("params", name), f"{name} is set from the length of {spec.from_input}: leave it out",
                                   f"the {spec.from_input}'s seconds, rounded up"))
            continue
        if not spec.applies_in(mode) and name in explicit:
            wanted = " or ".join(f"mode '{m}'" for m in spec.modes)
            condition = mode_condition(model, spec.modes)
            message = f"{name} only applies {condition or 'in ' + wanted}"
            if spec.outside_modes == "error":
                findings.append(_error(("params", name), message, code=spec.outside_code))
            else:
                findings.append(_warning(("params", name), message + "; it has no effect here"))
            continue
        findings.extend(check_param_value(spec, value))
        for other, needed in ((spec.requires.get(value) if spec.requires else None) or {}).items():
            if params.get(other) != needed:
                findings.append(_error(("params", name), f"{name}: {value} needs {other}: {_yaml(needed)}; "
                                                         f"here {other} is {_yaml(params.get(other))}"))
        if spec.effective_only_with and name in explicit:
            for other, needed in spec.effective_only_with.items():
                if params.get(other) != needed:
                    findings.append(_warning(("params", name), f"{name} only takes effect when {other} is {_yaml(needed)}; "
                                                               f"here {other} is {_yaml(params.get(other))}"))
    for name, spec in model.params.items():
        effective = model.param_spec(name, params) or spec
        if effective.required and params.get(name) is None:
            findings.append(_error(("params", name), f"{model.name} needs params.{name}", effective.describe_allowed(),
                                   effective.code))
        if effective.warn_default and name not in explicit and effective.applies_in(mode):
            findings.append(_warning(("params", name), effective.warn_default, effective.describe_allowed()))
    if model.open_weights is not None:
        from wanflow.catalog.open_weights import check_video_shape

        findings.extend(_error(("params", name), message, allowed) for name, message, allowed in check_video_shape(model, params))
    return findings


def mode_condition(model: ModelSpec, modes: Sequence[str]) -> str:
    """``when enable_interleave is true``: the param values that select ``modes``."""
    conditions = []
    for mode in model.modes:
        if mode.name in modes:
            conditions.append(" and ".join(f"{key} is {_yaml(value)}" for key, value in mode.when.items()))
    if "default" in modes:
        for mode in model.modes:
            conditions.append(" and ".join(f"{key} is {_yaml(not value if isinstance(value, bool) else value)}"
                                           for key, value in mode.when.items()))
    return "when " + " or ".join(conditions) if conditions else ""


def _yaml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "unset" if value is None else str(value)


def check_seed(model: ModelSpec, seed: Any) -> list[Finding]:
    """The documented seed range 0..2147483647."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= 2_147_483_647:
        return [_error(("seed",), f"{seed!r} is out of range", "an integer from 0 to 2147483647", model.seed_code)]
    return []


# --- inputs --------------------------------------------------------------------------------------

def check_input_count(model: ModelSpec, params: Mapping[str, Any], slot: InputSpec, count: int) -> list[Finding]:
    """How many items a slot got against what the selected mode allows."""
    if slot.minimum <= count <= slot.maximum:
        return []
    mode = model.mode_for(params)
    context = ""
    if any(other.inputs != model.inputs for other in model.modes):  # the count depends on the mode: say which
        switches = mode.when if mode else {key: not value for key, value in model.modes[0].when.items()}
        context = " when " + " and ".join(f"{key}={_yaml(value)}" for key, value in switches.items())
    allowed = f"{slot.minimum} to {slot.maximum}" if slot.maximum > 1 or slot.minimum == 0 else "exactly 1"
    if count < slot.minimum and count == 0:
        noun = "at least one image in images:" if slot.name == "images" else f"{slot.name}:"
        return [_error((slot.name,), f"{model.name} needs {noun}{context}", allowed, slot.code)]
    return [_error((slot.name,), f"{model.name} got {count} {slot.name}{context}", allowed, slot.code)]


def check_ignored_inputs(params: Mapping[str, Any], slot: InputSpec, count: int) -> list[Finding]:
    """Inputs the service ignores with these params (audio=false wins over audio_url)."""
    if not count or not slot.ignored_when:
        return []
    if all(params.get(key) == value for key, value in slot.ignored_when.items()):
        condition = " and ".join(f"{key} is {_yaml(value)}" for key, value in slot.ignored_when.items())
        return [_warning((slot.name,), f"is ignored because {condition}: the output is silent and billed as silent")]
    return []


@dataclass(frozen=True)
class MediaFacts:
    """What is known about one input before it is sent."""

    media_type: str
    size_bytes: int
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    has_alpha: bool = False


@dataclass(frozen=True)
class MediaVerdict:
    """The result of checking an input against a slot: fatal problems, and fixable ones."""

    fatal: list[str]
    fixable: list[str]


def check_media(slot: InputSpec, rules: MediaRules, facts: MediaFacts) -> MediaVerdict:
    """Format, byte size, pixel bounds, transparency and duration rules for one input.

    Pixel bounds, transparency and byte size of images can be fixed by conforming; format and
    audio duration cannot.
    """
    fatal: list[str] = []
    fixable: list[str] = []
    if facts.media_type not in rules.formats:
        fatal.append(f"{facts.media_type} is not accepted (allowed: {', '.join(rules.formats)})")
        return MediaVerdict(fatal, fixable)
    if rules.kind == "image":
        if facts.width is not None and facts.height is not None:
            small, large = min(facts.width, facts.height), max(facts.width, facts.height)
            if (slot.min_side is not None and small < slot.min_side) or (slot.max_side is not None and large > slot.max_side):
                fixable.append(f"{facts.width}x{facts.height} is outside {slot.min_side}-{slot.max_side} pixels per side")
        if facts.has_alpha and not rules.alpha:
            fixable.append("has transparency, which is not accepted")
        if facts.size_bytes > rules.max_bytes:
            fixable.append(f"is {facts.size_bytes / 1048576:.1f} MB (at most {rules.max_bytes / 1048576:.0f} MB)")
    else:
        if facts.size_bytes > rules.max_bytes:
            fatal.append(f"is {facts.size_bytes / 1048576:.1f} MB (at most {rules.max_bytes / 1048576:.0f} MB)")
        if facts.duration is not None and rules.min_seconds is not None and rules.max_seconds is not None:
            if rules.kind == "video" and facts.duration > rules.max_seconds:
                # A clip too long is trimmed to the limit (conforming); too short cannot be fixed.
                fixable.append(f"lasts {facts.duration:.1f} s (allowed: {rules.min_seconds:g} to {rules.max_seconds:g} s)")
            elif not rules.min_seconds <= facts.duration <= rules.max_seconds:
                fatal.append(f"lasts {facts.duration:.1f} s (allowed: {rules.min_seconds:g} to {rules.max_seconds:g} s)")
    return MediaVerdict(fatal, fixable)


def tier_aspect_warning(model: ModelSpec, params: Mapping[str, Any], sizes: Sequence[tuple[int, int] | None]) -> str | None:
    """When a tier size (``1K``) takes its aspect from the last input image and the inputs' aspects
    differ, say which one decides (``sizes``: each input image's width and height, if known)."""
    spec = model.param_spec("size", params)
    tier = str(params.get("size", ""))
    if spec is None or spec.aspect_from != "last_input" or tier not in spec.tiers or len(sizes) < 2:
        return None
    known = [size for size in sizes if size and size[0] and size[1]]
    if len(known) != len(sizes):
        return None  # an input passed by URL: its size is not known here
    last_width, last_height = known[-1]
    last = last_width / last_height
    others = [f"{width}×{height}" for width, height in known[:-1] if abs(width / height - last) > 0.01 * last]
    if not others:
        return None
    return (f"size {tier}: the output takes the aspect of the last input image ({last_width}×{last_height}), not of "
            f"{', '.join(others)}; put the image whose framing you want last, or give an explicit size (W*H)")
