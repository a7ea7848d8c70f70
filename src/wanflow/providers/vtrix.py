"""vtrix, the aggregator: ``POST /model/v1/generation``, then ``GET /model/v1/generation/task/{id}``.

Task bodies carry ``status`` in two vocabularies (``pending``/``processing``/``completed`` and
i2v's ``in_queue``/``done``), results in ``output[].content[]`` and the billed cost in
``usage.cost`` (USD, a string). Paths are configurable through the base URL; the poll path comes
from public client code, not the documents.
"""

from __future__ import annotations

from typing import Any

from wanflow.pipelines.resolve import StepRequest
from wanflow.providers.config import ServiceConfig, service_config
from wanflow.providers.remote import CreateCall, RemoteOutput, RemoteProvider, ServiceProtocol, TaskState, TaskStatus
from wanflow.providers.shapes import build_body

CREATE_PATH = "/model/v1/generation"
TASK_PATH = "/model/v1/generation/task/{id}"


class VtrixProtocol(ServiceProtocol):
    """vtrix's request and response shapes."""

    name = "vtrix"
    status_words: dict[str, TaskStatus] = {
        "pending": "queued",
        "in_queue": "queued",
        "processing": "running",
        "running": "running",
        "completed": "succeeded",
        "done": "succeeded",
        "succeeded": "succeeded",
        "failed": "failed",
        "canceled": "canceled",
        "cancelled": "canceled",
    }

    def create_call(self, request: StepRequest, inputs: dict[str, list[str]]) -> CreateCall:
        return CreateCall(CREATE_PATH, build_body(request, "vtrix", inputs))

    def created(self, payload: Any) -> tuple[str | None, str | None]:
        if not isinstance(payload, dict):
            return None, None
        data = payload.get("data") if isinstance(payload.get("data"), dict) else payload
        task_id = data.get("id") or data.get("task_id")
        return (str(task_id) if task_id else None), self.request_id(payload)

    def request_id(self, payload: Any) -> str | None:
        if not isinstance(payload, dict):
            return None
        return payload.get("request_id") or (payload.get("metadata") or {}).get("request_id")

    def task_path(self, task_id: str) -> str:
        return TASK_PATH.format(id=task_id)

    def status(self, word: Any) -> TaskStatus:
        return self.status_words.get(str(word or "").strip().lower(), "unknown")

    def task_state(self, payload: Any, request: StepRequest) -> TaskState:
        data = payload.get("data") if isinstance(payload, dict) and isinstance(payload.get("data"), dict) else payload
        raw = str(data.get("status", ""))
        state = TaskState(self.status(raw), raw)
        if state.status == "failed":
            error = data.get("error") or {}
            state.error_code, state.error_message = error.get("code"), error.get("message")
            return state
        if state.status != "succeeded":
            return state
        for block in data.get("output") or []:
            for item in block.get("content") or []:
                kind = item.get("type")
                if kind == "text":
                    state.outputs.append(RemoteOutput("text", text=item.get("text", "")))
                elif kind == "image" and item.get("url"):
                    state.outputs.append(RemoteOutput("images", url=item["url"]))
                elif kind == "video" and item.get("url"):
                    state.outputs.append(RemoteOutput("video", url=item["url"]))
        usage = data.get("usage") or {}
        if usage.get("cost") is not None:
            try:
                state.cost_usd = float(usage["cost"])
            except (TypeError, ValueError):
                pass
        expected = request.model.image_count(request.params)
        got = sum(1 for output in state.outputs if output.field == "images")
        if "images" in request.model.outputs_for(request.params) and got < expected and not _up_to(request):
            state.partial_failures.append(f"{expected - got} of {expected} images were not returned")
        return state


def _up_to(request: StepRequest) -> bool:
    spec = request.model.outputs_for(request.params).get("images")
    return bool(spec and spec.up_to)


def vtrix_provider(config: ServiceConfig | None = None, **options: Any) -> RemoteProvider:
    """A vtrix provider configured from the environment or the user config."""
    return RemoteProvider(VtrixProtocol(), config or service_config("vtrix"), **options)
