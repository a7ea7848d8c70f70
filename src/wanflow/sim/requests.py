"""Read a create body the way the documented services do: find the model, decode inputs, apply
the documented rules strictly, and answer with the documented error codes.

Strict where the services are: parameters are not coerced (``"n": "2"`` is refused), over-long
negative prompts are refused (the error tables name codes for them), t2i takes exactly one text,
audio comes by URL only. Over-long prompts are still truncated: the pages say so, and only the
t2i error table disagrees (docs/simulator.md).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from wanflow.artifacts import Artifact
from wanflow.catalog.loader import load_catalog
from wanflow.catalog.rules import (
    MediaFacts,
    check_cross_inputs,
    check_input_count,
    check_media,
    check_params,
    params_from_inputs,
    truncate_text,
)
from wanflow.catalog.spec import InputSpec, ModelSpec, ParamSpec
from wanflow.pipelines.request import StepRequest
from wanflow.sim.codes import vtrix_code
from wanflow.sim.envelopes import Rejection
from wanflow.sim.inputs import Caller, decode_media
from wanflow.sim.state import SimState

__all__ = ["Caller", "Interpreted", "Rejection", "find_model", "interpret"]

SEED_MAX = 2_147_483_647


@dataclass
class Interpreted:
    model: ModelSpec
    provider_model: str
    request: StepRequest


def find_model(protocol: str, model_id: Any, path: str | None) -> ModelSpec:
    """The catalog model a service id names (DashScope also checks the endpoint path)."""
    catalog = load_catalog()
    candidates = [
        model for model in catalog.models.values()
        if protocol in model.providers and model.providers[protocol].model == model_id
    ]
    candidates.sort(key=lambda model: model.name != model_id)  # an exact name first (wan2.6-image)
    if not candidates:
        raise Rejection(400, "InvalidParameter", f"Model not exist: {model_id}")
    model = candidates[0]
    expected = model.providers[protocol].path
    if protocol == "dashscope" and path is not None and expected and not path.endswith(expected):
        raise Rejection(400, "InvalidParameter", f"Model {model_id} is not supported by this API: {path}")
    return model


class _Reader:
    """Turns problems into the service's answer: a vtrix code from the model's table, or InvalidParameter."""

    def __init__(self, model: ModelSpec, protocol: str) -> None:
        self.model, self.protocol = model, protocol
        self.provider_model = model.providers[protocol].model

    def reject(self, message: str, code: str | None = None, check: str | None = None) -> Rejection:
        if self.protocol == "vtrix":
            code = code or (vtrix_code(self.provider_model, check) if check else None)
            return Rejection(400, code or "InvalidParameter", message)
        return Rejection(400, "InvalidParameter", message)


def interpret(caller: Caller, path: str | None, body: Any, state: SimState) -> Interpreted:
    """Turn a (documented-envelope) create body into the request the renderer gets, or raise Rejection."""
    if not isinstance(body, dict):
        raise Rejection(400, "InvalidParameter", "request body must be a JSON object")
    model = find_model(caller.protocol, body.get("model"), path)
    reader = _Reader(model, caller.protocol)
    ids = model.providers[caller.protocol]
    body_input = body.get("input")
    if not isinstance(body_input, dict):
        raise reader.reject("Missing required field input (input must be an object)", check="missing_input")
    raw_parameters = body.get("parameters")
    if raw_parameters is not None and not isinstance(raw_parameters, dict):
        raise reader.reject("parameters must be an object")
    # --ignore-params: the service drops what was asked and renders its defaults.
    parameters = {} if state.knobs.ignore_params else dict(raw_parameters or {})
    for name in ids.input_params:  # read from ``input`` (VACE's function), not from parameters
        parameters.pop(name, None)
        if name in body_input and not state.knobs.ignore_params:
            parameters[name] = body_input[name]
    if ids.shape == "messages":
        prompt, images = _messages(reader, body_input)
        media: dict[str, list[Any]] = {"images": images}
    elif ids.shape == "images_list":
        prompt, media = body_input.get("prompt"), {"images": list(body_input.get("images") or [])}
    elif ids.shape == "fields":
        prompt, media = body_input.get("prompt"), _fields(reader, state, body_input)
    elif ids.shape == "media":
        prompt, media = body_input.get("prompt"), _media_list(reader, body_input)
    else:
        prompt = body_input.get("prompt")
        media = {"image": [body_input["img_url"]] if body_input.get("img_url") else []}
        if body_input.get("audio_url"):
            media["audio"] = [body_input["audio_url"]]
    negative = body_input.get("negative_prompt", parameters.pop("negative_prompt", None))
    seed = parameters.pop("seed", None)

    params: dict[str, Any] = {}
    for name, value in parameters.items():
        spec = model.param_spec(name, parameters)
        if spec is None:
            continue  # like the services: unknown parameters are ignored
        problem = _type_problem(spec, value)
        if problem is not None:
            raise reader.reject(f"{name}: {problem}", code=spec.code or spec.codes.get("format"))
        params[name] = value
    completed = model.with_defaults(params)
    for finding in check_params(model, completed, set(params)):
        if finding.severity == "error":
            raise reader.reject(f"{'.'.join(map(str, finding.field))}: {finding.message}", code=finding.code)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX):
        raise reader.reject(f"seed must be an integer between 0 and {SEED_MAX}", code=model.seed_code)
    completed["seed"] = seed if seed is not None else random.randrange(SEED_MAX + 1)

    prompt, negative = _texts(reader, state, prompt, negative)
    # Groups of inputs and per-item lists, before any input is fetched (the r2v prompt's names are
    # wanflow's check, not the service's).
    for finding in check_cross_inputs(model, None, completed, {name: len(items) for name, items in media.items()}):
        if finding.severity == "error":
            raise reader.reject(f"{'.'.join(map(str, finding.field))}: {finding.message}", code=finding.code)
    inputs = _inputs(reader, caller, state, completed, media)
    completed = params_from_inputs(model, completed, {name: items[0].duration for name, items in inputs.items()})
    request = StepRequest(
        step_id="sim",
        model=model,
        provider="sim",
        prompt=prompt,
        negative_prompt=negative,
        inputs=inputs,
        params=completed,
        explicit_params=frozenset(params),
        seed_source="request",
    )
    return Interpreted(model, ids.model, request)


def _type_problem(spec: ParamSpec, value: Any) -> str | None:
    """The services take JSON types as they are: no "2" for 2, no "true" for true."""
    if spec.type == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else f"must be an integer, got {value!r}"
    if spec.type == "boolean":
        return None if isinstance(value, bool) else f"must be true or false, got {value!r}"
    if spec.type == "number":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return None if ok else f"must be a number, got {value!r}"
    if spec.type == "list":
        return None if isinstance(value, list) else f"must be an array, got {value!r}"
    return None if isinstance(value, str) else f"must be a string, got {value!r}"


def _texts(reader: _Reader, state: SimState, prompt: Any, negative: Any) -> tuple[str | None, str | None]:
    model = reader.model
    moderated = state.knobs.moderate
    if moderated and any(moderated in str(text) for text in (prompt, negative) if text):
        state.stats["moderated"] += 1
        raise Rejection(400, "DataInspectionFailed", "Input data may contain inappropriate content.")
    if model.prompt.required or prompt is not None:
        if not isinstance(prompt, str) or not prompt.strip():
            raise reader.reject(f"Text length must be between 1-{model.prompt.max_chars} characters", code=model.prompt.code)
    if negative is not None:
        if not isinstance(negative, str):
            raise reader.reject("negative_prompt must be a string")
        limit = model.negative_prompt.max_chars
        if len(negative) > limit:
            # The error tables (001015007, 001021009) refuse it, whatever the prose says about truncation.
            raise reader.reject(f"negative_prompt cannot exceed {limit} characters", code=model.negative_prompt.code,
                                check="negative_prompt")
    # Over-long prompts are truncated silently, as the pages say.
    return (truncate_text(model.prompt, prompt) if isinstance(prompt, str) else None), negative


def _inputs(reader: _Reader, caller: Caller, state: SimState, completed: dict[str, Any],
            media: dict[str, list[Any]]) -> dict[str, tuple[Artifact, ...]]:
    model = reader.model
    slots = model.inputs_for(completed)
    inputs: dict[str, tuple[Artifact, ...]] = {}
    for name, items in media.items():
        if items and name not in slots:
            raise reader.reject(f"{model.name} takes no {name}")
    for name, slot in slots.items():
        items = media.get(name, [])
        for finding in check_input_count(model, completed, slot, len(items)):
            raise reader.reject(finding.message, code=finding.code)
        artifacts = []
        for item in items:
            artifact = decode_media(item, slot.media, reader.provider_model, caller, state)
            _check_media(reader, name, slot, artifact)
            artifacts.append(artifact)
        if artifacts:
            inputs[name] = tuple(artifacts)
    return inputs


def _check_media(reader: _Reader, name: str, slot: InputSpec, artifact: Artifact) -> None:
    width, height = artifact.width, artifact.height
    if width is not None and height is not None:
        small, large = min(width, height), max(width, height)
        if (slot.min_side is not None and small < slot.min_side) or (slot.max_side is not None and large > slot.max_side):
            raise reader.reject(f"{name}: {width}x{height} is outside {slot.min_side}-{slot.max_side} pixels per side",
                                check="image_side")
    rules = load_catalog().media[slot.rules_key]
    verdict = check_media(slot, rules, MediaFacts(artifact.media_type, artifact.size, width, height,
                                                  artifact.duration, artifact.has_alpha))
    problems = verdict.fatal + verdict.fixable
    if problems:
        raise reader.reject(f"{name}: " + "; ".join(problems))


def _fields(reader: _Reader, state: SimState, body_input: dict[str, Any]) -> dict[str, list[Any]]:
    """Inputs under the field names the catalog gives (and, per the ``input_fields`` knob, their aliases)."""
    ids = reader.model.providers[reader.protocol]
    media: dict[str, list[Any]] = {}
    for name, slot in _all_slots(reader.model).items():
        primary, aliases = ids.fields.get(name, name), ids.field_aliases.get(name, ())
        accepted = {"any": (primary, *aliases), "catalog": (primary,), "aliases": aliases or (primary,)}[state.knobs.input_fields]
        found = [field for field in accepted if body_input.get(field)]
        if len(found) > 1:
            raise reader.reject(f"send {name} once: both {' and '.join(found)} are set")
        if not found:
            continue
        value = body_input[found[0]]
        if slot.many and not isinstance(value, list):
            raise reader.reject(f"{found[0]} must be an array of URLs")
        media[name] = list(value) if slot.many else [value]
    return media


def _all_slots(model: ModelSpec) -> dict[str, InputSpec]:
    """Every input slot the model has in any mode (a body names inputs before its mode is known)."""
    return {name: slot for mode in model.modes for name, slot in mode.inputs.items()} | dict(model.inputs)


def _media_list(reader: _Reader, body_input: dict[str, Any]) -> dict[str, list[Any]]:
    """``input.media``: a list of ``{type, url}`` items, each type once (wan2.7-i2v)."""
    ids = reader.model.providers[reader.protocol]
    names = {kind: name for name, kind in ids.fields.items()}
    items = body_input.get("media")
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise reader.reject("input.media must be an array of {type, url} objects")
    media: dict[str, list[Any]] = {}
    for item in items:
        kind = item.get("type")
        if kind not in names:
            raise reader.reject(f"media type {kind!r} is not supported by {reader.provider_model} "
                                f"(supported: {', '.join(names)})")
        slot = _all_slots(reader.model).get(names[kind])
        if names[kind] in media and not (slot and slot.many):
            raise reader.reject(f"media type {kind} is given more than once")
        media.setdefault(names[kind], []).append(item.get("url"))
    return media


def _messages(reader: _Reader, body_input: dict[str, Any]) -> tuple[Any, list[Any]]:
    """input.messages: one user message whose content holds exactly one text (and images where allowed)."""
    messages = body_input.get("messages")
    if not isinstance(messages, list) or len(messages) != 1:
        raise reader.reject("input.messages must contain one message", check="one_message")
    message = messages[0] if isinstance(messages[0], dict) else {}
    if message.get("role") != "user":
        raise reader.reject("message.role must be user", check="role")
    content = message.get("content")
    if not isinstance(content, list):
        raise reader.reject("message.content must be array", check="content_array")
    if any(not isinstance(item, dict) or not ({"text", "image"} & item.keys()) for item in content):
        if reader.model.kind == "t2i" and len(content) == 1:
            raise reader.reject("content[0] must contain text field", check="text_field")
        raise reader.reject("message.content items must be {text} or {image} objects", check="one_text")
    texts = [item["text"] for item in content if "text" in item]
    images = [item["image"] for item in content if "image" in item]
    if len(texts) != 1:
        raise reader.reject("message.content must contain one text object", check="one_text")
    if reader.model.kind == "t2i" and images:
        # t2i content is one text object and nothing else (001015004).
        raise reader.reject("message.content must contain one text object (text-to-image takes no image)",
                            check="one_text")
    return texts[0], images
