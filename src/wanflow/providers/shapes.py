"""Request bodies by shape, shared by the services (the catalog names each model's shape)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wanflow.catalog.spec import ProviderModel
from wanflow.pipelines.request import StepRequest


def _parameters(request: StepRequest) -> dict[str, Any]:
    """The request's params, less those the model fixes (``send: false``): the service takes no such field."""
    model = request.model
    return {
        name: value for name, value in sorted(request.params.items())
        if (spec := model.param_spec(name, request.params)) is None or spec.send
    }


def _messages(request: StepRequest, ids: ProviderModel, inputs: dict[str, list[str]]) -> dict[str, Any]:
    content: list[dict[str, str]] = [{"text": request.prompt or ""}]
    content += [{"image": image} for image in inputs.get("images", [])]
    parameters = _parameters(request)
    if request.negative_prompt is not None:
        parameters["negative_prompt"] = request.negative_prompt
    return {"model": ids.model, "input": {"messages": [{"role": "user", "content": content}]}, "parameters": parameters}


def _images_list(request: StepRequest, ids: ProviderModel, inputs: dict[str, list[str]]) -> dict[str, Any]:
    body_input: dict[str, Any] = {"prompt": request.prompt or "", "images": inputs.get("images", [])}
    parameters = _parameters(request)
    _place_negative(request, ids, body_input, parameters)
    return {"model": ids.model, "input": body_input, "parameters": parameters}


def _first_frame(request: StepRequest, ids: ProviderModel, inputs: dict[str, list[str]]) -> dict[str, Any]:
    body_input: dict[str, Any] = {"img_url": inputs["image"][0]}
    if request.prompt is not None:
        body_input["prompt"] = request.prompt
    if inputs.get("audio"):
        body_input["audio_url"] = inputs["audio"][0]
    parameters = _parameters(request)
    _place_negative(request, ids, body_input, parameters)
    return {"model": ids.model, "input": body_input, "parameters": parameters}


def _fields(request: StepRequest, ids: ProviderModel, inputs: dict[str, list[str]]) -> dict[str, Any]:
    """``input: {prompt, <field>: url | [urls]}``: each DSL input under the service's field name (catalog ``fields``)."""
    body_input: dict[str, Any] = {}
    if request.prompt is not None:
        body_input["prompt"] = request.prompt
    slots = request.model.inputs_for(request.params)
    for name, values in inputs.items():
        if values:
            body_input[ids.fields.get(name, name)] = list(values) if slots[name].many else values[0]
    parameters = _parameters(request)
    for name in ids.input_params:  # read by the service from ``input`` (VACE's function)
        if name in parameters:
            body_input[name] = parameters.pop(name)
    _place_negative(request, ids, body_input, parameters)
    return {"model": ids.model, "input": body_input, "parameters": parameters}


def _media(request: StepRequest, ids: ProviderModel, inputs: dict[str, list[str]]) -> dict[str, Any]:
    """``input: {prompt, media: [{type, url}]}`` (wan2.7-i2v): each DSL input as an item whose
    ``type`` the catalog's ``fields`` names (``audio: driving_audio``), in the catalog's order."""
    body_input: dict[str, Any] = {}
    if request.prompt is not None:
        body_input["prompt"] = request.prompt
    body_input["media"] = [{"type": kind, "url": url} for name, kind in ids.fields.items() for url in inputs.get(name, [])]
    parameters = _parameters(request)
    _place_negative(request, ids, body_input, parameters)
    return {"model": ids.model, "input": body_input, "parameters": parameters}


def _place_negative(request: StepRequest, ids: ProviderModel, body_input: dict[str, Any], parameters: dict[str, Any]) -> None:
    if request.negative_prompt is not None:
        (body_input if ids.negative_prompt_in == "input" else parameters)["negative_prompt"] = request.negative_prompt


SHAPES: dict[str, Callable[[StepRequest, ProviderModel, dict[str, list[str]]], dict[str, Any]]] = {
    "messages": _messages,
    "images_list": _images_list,
    "first_frame": _first_frame,
    "fields": _fields,
    "media": _media,
}


def build_body(request: StepRequest, service: str, inputs: dict[str, list[str]]) -> dict[str, Any]:
    """The create body for ``request`` on ``service``, shaped as the catalog says."""
    ids = request.model.providers[service]
    return SHAPES[ids.shape](request, ids, inputs)
