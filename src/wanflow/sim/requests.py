"""Read a create body the way the documented services do: find the model, decode inputs, apply
the documented rules, and answer with the documented error codes."""

from __future__ import annotations

import base64
import binascii
import hashlib
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from wanflow.artifacts import Artifact
from wanflow.catalog import ModelSpec, load_catalog
from wanflow.catalog.rules import (
    MediaFacts,
    check_input_count,
    check_media,
    check_params,
    coerce_param,
    truncate_text,
)
from wanflow.media import MediaError, probe
from wanflow.pipelines.resolve import StepRequest
from wanflow.runner.fsutil import atomic_write_bytes
from wanflow.sim.state import SimState

class Rejection(Exception):
    """The service refuses the request: HTTP status, error code, message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


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


def _code_family(model: ModelSpec) -> str:
    """The code family prefix for vtrix (``001015``), from any code the catalog holds."""
    for code in [model.prompt.code, model.seed_code, *(p.code for p in model.params.values())]:
        if code and code.isdigit():
            return code[:6]
    return ""


def _reject(model: ModelSpec, protocol: str, code: str | None, message: str, generic_suffix: str = "") -> Rejection:
    if protocol == "vtrix":
        family = _code_family(model)
        return Rejection(400, code or (family + generic_suffix if family and generic_suffix else "InvalidParameter"), message)
    return Rejection(400, "InvalidParameter", message)


def interpret(protocol: str, path: str | None, body: Any, state: SimState, base_url: str) -> Interpreted:
    """Turn a create body into the request the renderer gets, or raise Rejection."""
    if not isinstance(body, dict):
        raise Rejection(400, "InvalidParameter", "request body must be a JSON object")
    model = find_model(protocol, body.get("model"), path)
    ids = model.providers[protocol]
    body_input = body.get("input")
    if not isinstance(body_input, dict):
        raise _reject(model, protocol, None, "Missing required field input", "001")
    parameters = dict(body.get("parameters") or {})
    if ids.shape == "messages":
        prompt, images = _messages(model, protocol, body_input)
        media = {"images": images}
    elif ids.shape == "images_list":
        prompt, media = body_input.get("prompt"), {"images": list(body_input.get("images") or [])}
    else:
        prompt = body_input.get("prompt")
        media = {"image": [body_input["img_url"]] if body_input.get("img_url") else []}
        if body_input.get("audio_url"):
            media["audio"] = [body_input["audio_url"]]
    negative = body_input.get("negative_prompt", parameters.pop("negative_prompt", None))
    seed = parameters.pop("seed", None)

    params: dict[str, Any] = {}
    for name, value in parameters.items():
        spec = model.params.get(name)
        if spec is None:
            continue  # like the services: unknown parameters are ignored
        value, problem = coerce_param(spec, value)
        if problem is not None:
            raise _reject(model, protocol, problem.code, f"{name}: {problem.message}")
        params[name] = value
    completed = model.with_defaults(params)
    for finding in check_params(model, completed, set(params)):
        if finding.severity == "error":
            raise _reject(model, protocol, finding.code, f"{'.'.join(map(str, finding.field))}: {finding.message}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= 2_147_483_647):
        raise _reject(model, protocol, model.seed_code, "seed must be an integer between 0 and 2147483647")
    completed["seed"] = seed if seed is not None else random.randrange(2_147_483_648)

    moderated = state.knobs.moderate
    if moderated and any(moderated in str(text) for text in (prompt, negative) if text):
        state.stats["moderated"] += 1
        raise Rejection(400, "DataInspectionFailed", "Input data may contain inappropriate content.")
    if model.prompt.required or prompt is not None:
        if not isinstance(prompt, str) or not prompt.strip():
            raise _reject(model, protocol, model.prompt.code, f"Text length must be between 1-{model.prompt.max_chars} characters")
    # Over-long text is truncated silently, as the pages say.
    prompt = truncate_text(model.prompt, prompt) if isinstance(prompt, str) else None
    negative = truncate_text(model.negative_prompt, negative) if isinstance(negative, str) else None

    slots = model.inputs_for(completed)
    inputs: dict[str, tuple[Artifact, ...]] = {}
    for name, slot in slots.items():
        items = media.get(name, [])
        for finding in check_input_count(model, completed, slot, len(items)):
            raise _reject(model, protocol, finding.code, finding.message)
        artifacts = []
        for item in items:
            artifact = _decode(item, state, base_url)
            rules = load_catalog().media[slot.media]
            verdict = check_media(slot, rules, MediaFacts(artifact.media_type, artifact.size, artifact.width,
                                                          artifact.height, artifact.duration, artifact.has_alpha))
            problems = verdict.fatal + verdict.fixable
            if problems:
                raise _reject(model, protocol, slot.code, f"{name}: " + "; ".join(problems))
            artifacts.append(artifact)
        if artifacts:
            inputs[name] = tuple(artifacts)
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


def _messages(model: ModelSpec, protocol: str, body_input: dict[str, Any]) -> tuple[Any, list[str]]:
    messages = body_input.get("messages")
    if not isinstance(messages, list) or len(messages) != 1:
        raise _reject(model, protocol, None, "input.messages must contain one message", "002")
    message = messages[0] if isinstance(messages[0], dict) else {}
    if message.get("role") != "user":
        raise _reject(model, protocol, None, "message.role must be user", "003")
    content = message.get("content")
    if not isinstance(content, list):
        raise _reject(model, protocol, None, "message.content must be array", "004")
    texts = [item["text"] for item in content if isinstance(item, dict) and "text" in item]
    if len(texts) != 1:
        raise _reject(model, protocol, None, "message.content must contain one text object", "005")
    images = [item["image"] for item in content if isinstance(item, dict) and "image" in item]
    return texts[0], images


def _decode(value: Any, state: SimState, base_url: str) -> Artifact:
    """A data: URI or one of the simulator's own result URLs, as a probed file."""
    if not isinstance(value, str):
        raise Rejection(400, "InvalidParameter", "media must be a URL or a data: URI")
    if value.startswith("data:"):
        header, _, encoded = value.partition(",")
        if ";base64" not in header:
            raise Rejection(400, "InvalidParameter", "data: URIs must be base64")
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise Rejection(400, "InvalidParameter", "invalid base64 data") from None
        digest = hashlib.sha256(data).hexdigest()
        state.stats["inputs_by_data_uri"] += 1
        path = state.workdir / "inputs" / digest
        if not path.exists():  # written atomically: concurrent requests may carry the same bytes
            atomic_write_bytes(path, data, durable=False)
    elif value.startswith(("http://", "https://")):
        parsed = urlparse(value)
        parts = parsed.path.split("/")
        if not value.startswith(base_url) or len(parts) < 4 or parts[1:3] != ["_sim", "files"]:
            raise Rejection(400, "InvalidURL", f"the simulator cannot download {value[:80]}")
        file = state.file(parts[3])
        if file is None:
            raise Rejection(400, "InvalidURL", "url not found")
        if file.expires_at < time.time():
            raise Rejection(400, "InvalidURL", "url expired")
        path, digest = file.path, hashlib.sha256(file.path.read_bytes()).hexdigest()
        state.stats["inputs_by_url"] += 1
    else:
        raise Rejection(400, "InvalidParameter", "media must be an http(s) URL or a data: URI")
    try:
        info = probe(path)
    except MediaError as error:
        raise Rejection(400, "InvalidParameter", str(error)) from None
    return Artifact(digest, info.media_type, path.stat().st_size, Path(path), **info.as_meta())  # type: ignore[arg-type]
