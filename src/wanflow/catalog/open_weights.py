"""Open-weights Wan releases for the ``diffusers`` provider: catalog ids and saved pipeline folders.

A step's ``model:`` is a catalog id from open_weights.yaml (``wan2.1-t2v-1.3b``) or a path to a
saved diffusers pipeline folder, whose kind is read from its ``model_index.json``. Either way it
becomes a ``ModelSpec`` like the service models, so the DSL, the checks, the cache and the records
treat it as any other model. The video shape rules (multiples of 16, ``4k + 1`` frames, native
sizes) live here because they are the same for every release.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

from wanflow.catalog.parse import parse_media
from wanflow.catalog.spec import (
    Kind,
    MediaRules,
    Mode,
    ModelSpec,
    OpenWeights,
    ProviderModel,
    TextSpec,
    parse_inputs,
    parse_outputs,
    parse_param,
)

PROVIDER = "diffusers"
SIDE_MULTIPLE = 16  # the VAE (8x) and the transformer's 2x2 patches
FRAME_STEP = 4  # the VAE compresses time 4x after the first frame
MAX_REFERENCES = 4  # VACE takes a list; more than a few subjects crowd one frame (not a model limit)

# The params every open-weights step takes, with diffusers' names. Defaults come per model.
_PARAMS: dict[str, dict[str, Any]] = {
    "height": {"type": "integer", "min": 16, "max": 4096},
    "width": {"type": "integer", "min": 16, "max": 4096},
    "num_frames": {"type": "integer", "min": 1, "max": 1025},
    "num_inference_steps": {"type": "integer", "min": 1, "max": 1000},
    "guidance_scale": {"type": "number", "min": 0, "max": 50},
    "guidance_scale_2": {"type": "number", "min": 0, "max": 50},
    "fps": {"type": "integer", "min": 1, "max": 120},
    "flow_shift": {"type": "number", "min": 0, "max": 100},
    "max_sequence_length": {"type": "integer", "min": 1, "max": 512, "default": 512},
    "device": {"type": "string", "default": "auto"},
    "dtype": {"type": "string", "enum": ["auto", "float32", "bfloat16", "float16"], "default": "auto"},
    "offload": {"type": "string", "enum": ["none", "model", "sequential"], "default": "none"},
}
# Media inputs per kind, in the catalog's input form. VACE: ``video`` the clip to condition on,
# ``mask`` where to generate (white) or keep (black), a clip or one still for every frame, and
# ``references`` images of subjects to bring in (diffusers' ``reference_images``).
_INPUTS: dict[str, dict[str, Any]] = {
    "t2v": {},
    "i2v": {"image": {"required": True}},
    "flf2v": {"first_frame": {"required": True}, "last_frame": {"required": True}},
    "vace": {"video": {"media": "video"}, "mask": {"media": "video or image"},
             "references": {"many": True, "min": 0, "max": MAX_REFERENCES, "media": "image"}},
}


@functools.cache
def _raw() -> Mapping[str, Any]:
    import yaml  # PyYAML costs ~30 ms to import: only when an open-weights model is named

    text = Path(__file__).with_name("open_weights.yaml").read_text("utf-8")
    return cast(Mapping[str, Any], yaml.safe_load(text))


@functools.cache
def _media_rules() -> Mapping[str, MediaRules]:
    """What a local model reads: open_weights.yaml's ``media`` (no service upload limits)."""
    return parse_media(_raw()["media"])


def open_weights_ids() -> list[str]:
    """The catalog ids of the open-weights releases."""
    return list(_raw()["models"])


def _sizes(values: list[str]) -> tuple[tuple[int, int], ...]:
    return tuple((int(w), int(h)) for w, h in (value.split("*") for value in values))


def _spec(name: str, title: str, kind: Kind, defaults: Mapping[str, Any], weights: OpenWeights,
          image: str | None = None) -> ModelSpec:
    params = {key: parse_param(key, {**rule, **({"default": defaults[key]} if key in defaults else {})})
              for key, rule in _PARAMS.items()}
    inputs = dict(_INPUTS[kind])
    if image == "optional":
        inputs["image"] = {}
    local_rules = _media_rules()
    slots = {slot_name: replace(slot, local_rules=local_rules) for slot_name, slot in parse_inputs(inputs).items()}
    return ModelSpec(
        name=name, kind=kind, title=title, aliases=(),
        prompt=TextSpec(True, 10_000), negative_prompt=TextSpec(False, 10_000), seed_code=None,
        inputs=slots, outputs=parse_outputs({"video": {}}), params=params,
        # One frame is a picture: written as a PNG, offered as steps.<id>.image and .images.
        modes=(Mode("image", {"num_frames": 1}, slots, parse_outputs({"images": {}}), {}),),
        providers={PROVIDER: ProviderModel(model=weights.source)}, open_weights=weights,
    )


def open_weights_model(name: str, base_dir: Path, frames_given: bool = False) -> ModelSpec | None:
    """The open-weights model ``name`` (a catalog id, or a folder relative to ``base_dir`` holding a
    saved diffusers pipeline), or None when it is neither. Raises ValueError for a folder that is
    not a Wan pipeline. FLF2V is an image-to-video pipeline too: a folder step that gives
    ``first_frame``/``last_frame`` (``frames_given``) is first/last-frame-to-video."""
    raw = _raw()
    entry = raw["models"].get(name.strip().lower())
    if entry is not None:
        weights = OpenWeights(entry["repo"], "", _sizes(entry.get("sizes", [])), tuple(entry.get("frames", ())))
        return _spec(name.strip().lower(), entry["title"], entry["kind"], entry["defaults"], weights, entry.get("image"))
    folder = (base_dir / name).expanduser()
    index = folder / "model_index.json"
    if not index.is_file():
        return None
    try:
        class_name = str(json.loads(index.read_text("utf-8")).get("_class_name", ""))
    except (OSError, ValueError, AttributeError) as error:
        raise ValueError(f"{index} cannot be read as a diffusers model_index.json ({error})") from None
    kind = raw["kinds"].get(class_name)
    if kind is None:
        raise ValueError(f"{index} names pipeline class '{class_name}', which is not a Wan pipeline "
                         f"(allowed: {', '.join(raw['kinds'])})")
    if kind == "i2v" and frames_given:
        kind = "flf2v"
    weights = OpenWeights(str(folder.resolve()), class_name)
    return _spec(name, f"saved {class_name} at {name}", kind, raw["folder_defaults"], weights)


def check_video_shape(model: ModelSpec, params: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(param, problem, allowed) for sizes and frame counts the model cannot make."""
    weights = model.open_weights
    problems: list[tuple[str, str, str]] = []
    if weights is None:
        return problems
    width, height, frames = params.get("width"), params.get("height"), params.get("num_frames")
    for key, value in (("height", height), ("width", width)):
        if isinstance(value, int) and value % SIDE_MULTIPLE:
            problems.append((key, f"{value} is not a multiple of {SIDE_MULTIPLE}", f"a multiple of {SIDE_MULTIPLE}"))
    if isinstance(frames, int) and (frames - 1) % FRAME_STEP:
        problems.append(("num_frames", f"{frames} frames cannot be made: (num_frames - 1) must be a multiple of {FRAME_STEP}",
                         f"1, 5, 9, ... (4k + 1), e.g. {frames - (frames - 1) % FRAME_STEP}"))
    if weights.sizes and (width, height) not in weights.sizes and not problems:
        native = ", ".join(f"width {w} height {h}" for w, h in weights.sizes)
        problems.append(("width", f"{width}x{height} is not a native size of {model.name}", native))
    return problems
