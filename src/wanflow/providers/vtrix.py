"""vtrix, the aggregator: ``POST /model/v1/generation``, then ``GET /model/v1/generation/task/{id}``.

vtrix is spoken in two envelopes (the catalog's ``services.vtrix.envelopes``):

- ``documented``: the API documents' ``{"model", "input": {...}, "parameters": {...}}`` sent to
  the base URL (``VTRIX_BASE_URL``);
- ``gateway``: the vendor CLI's ``{"model", "input": [{"params": {"input", "parameters"}}]}`` sent
  to the gateway host, configured apart (``VTRIX_GENERATION_URL`` / ``gateway_url``).

Task bodies are read in every shape seen: ``status`` at the top or only in ``output[0]``, in any
of the catalog's words (an unknown word means still running), ``error`` as a string or an object,
results in ``output[].content[]`` (image, video, text, audio) and the billed cost in
``usage.cost`` or ``usage.quantity`` × ``usage.unit_price``.
"""

from __future__ import annotations

from typing import Any

from wanflow.pipelines.request import StepRequest
from wanflow.project.settings import ServiceConfig, service_config
from wanflow.providers.protocol import CreateCall, RemoteOutput, ServiceProtocol, TaskState, read_error
from wanflow.providers.remote import RemoteProvider
from wanflow.providers.shapes import build_body

_FIELDS = {"image": "images", "video": "video"}


class VtrixProtocol(ServiceProtocol):
    """vtrix's request and response shapes."""

    name = "vtrix"

    def create_call(self, request: StepRequest, inputs: dict[str, list[str]], envelope: str | None = None) -> CreateCall:
        dialect = self.spec.envelope(envelope)
        body = build_body(request, "vtrix", inputs)
        if dialect.wrap == "params_list":
            body = {"model": body["model"], "input": [{"params": {"input": body["input"], "parameters": body["parameters"]}}]}
        assert dialect.create, "catalog: vtrix envelopes name their create path"
        return CreateCall(dialect.create, body)

    def request_id(self, payload: Any) -> str | None:
        if not isinstance(payload, dict):
            return None
        metadata = payload.get("metadata")
        value = payload.get("request_id") or (metadata.get("request_id") if isinstance(metadata, dict) else None)
        return str(value) if value else None

    def task_state(self, payload: Any, request: StepRequest) -> TaskState:
        data = _data(payload)
        blocks = [block for block in data.get("output") or [] if isinstance(block, dict)] \
            if isinstance(data.get("output"), list) else []
        word = data.get("status")
        if word in (None, "") and blocks:
            word = blocks[0].get("status")  # the i2v document puts it inside output[0]
        state = self.state_for(word)
        if state.status == "failed":
            error = data.get("error") if data.get("error") is not None else (blocks[0].get("error") if blocks else None)
            state.error_code, state.error_message = read_error({"error": error} if error is not None else data)
            return state
        if state.status != "succeeded":
            return state
        for block in blocks:
            for item in block.get("content") or []:
                if not isinstance(item, dict):
                    continue
                kind = item.get("type")
                if kind == "text":
                    state.outputs.append(RemoteOutput("text", text=str(item.get("text", ""))))
                elif kind in _FIELDS and item.get("url"):
                    state.outputs.append(RemoteOutput(_FIELDS[kind], url=str(item["url"])))
                elif item.get("url"):
                    # audio (a separate track of a video task): kept by URL in the record, not stored.
                    state.extra_outputs.append({"type": str(kind), "url": str(item["url"])})
        state.cost_usd = _cost(data.get("usage"))
        expected = request.model.image_count(request.params)
        got = sum(1 for output in state.outputs if output.field == "images")
        if "images" in request.model.outputs_for(request.params) and got < expected and not _up_to(request):
            state.partial_failures.append(f"{expected - got} of {expected} images were not returned")
        return state


def _data(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        return {}
    return payload["data"] if isinstance(payload.get("data"), dict) else payload


def _cost(usage: Any) -> float | None:
    """USD from ``usage.cost``, or ``quantity`` × ``unit_price`` (strings or numbers)."""
    if not isinstance(usage, dict):
        return None
    try:
        if usage.get("cost") not in (None, ""):
            return float(usage["cost"])
        if usage.get("quantity") not in (None, "") and usage.get("unit_price") not in (None, ""):
            return float(usage["quantity"]) * float(usage["unit_price"])
    except (TypeError, ValueError):
        pass
    return None


def _up_to(request: StepRequest) -> bool:
    spec = request.model.outputs_for(request.params).get("images")
    return bool(spec and spec.up_to)


def vtrix_provider(config: ServiceConfig | None = None, **options: Any) -> RemoteProvider:
    """A vtrix provider configured from the environment, the project's wanflow.toml or the user config."""
    return RemoteProvider(VtrixProtocol(), config or service_config("vtrix"), **options)
