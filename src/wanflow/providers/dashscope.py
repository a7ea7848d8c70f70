"""Alibaba Cloud Model Studio (DashScope): the asynchronous task protocol.

Create with ``X-DashScope-Async: enable`` on the model family's path, poll ``GET /tasks/{id}``,
read ``output.choices[].message.content[]`` (wan2.6), ``output.results[].url`` (wan2.5) or
``output.video_url`` (i2v). Cancel (``POST /tasks/{id}/cancel``) and list (``GET /tasks``) are
there for reconciliation. Base URLs are per region and keys are region-bound.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import httpx

from wanflow._exceptions import ProviderError
from wanflow.pipelines.resolve import StepRequest
from wanflow.providers.config import ServiceConfig, service_config
from wanflow.providers.remote import CreateCall, RemoteOutput, RemoteProvider, ServiceProtocol, TaskState, TaskStatus
from wanflow.providers.shapes import build_body


class DashScopeProtocol(ServiceProtocol):
    """DashScope's request and response shapes."""

    name = "dashscope"
    status_words: dict[str, TaskStatus] = {
        "PENDING": "queued",
        "RUNNING": "running",
        "SUCCEEDED": "succeeded",
        "FAILED": "failed",
        "CANCELED": "canceled",
        "UNKNOWN": "unknown",
    }

    def create_call(self, request: StepRequest, inputs: dict[str, list[str]]) -> CreateCall:
        ids = request.model.providers["dashscope"]
        assert ids.path, f"catalog: {request.model.name} has no DashScope path"
        return CreateCall(ids.path, build_body(request, "dashscope", inputs), {"X-DashScope-Async": "enable"})

    def created(self, payload: Any) -> tuple[str | None, str | None]:
        output = payload.get("output") if isinstance(payload, dict) else None
        task_id = output.get("task_id") if isinstance(output, dict) else None
        return task_id, self.request_id(payload)

    def task_path(self, task_id: str) -> str:
        return f"/tasks/{task_id}"

    def cancel_path(self, task_id: str) -> str:
        return f"/tasks/{task_id}/cancel"

    async def find_tasks(self, client: httpx.AsyncClient, auth: dict[str, str], request: StepRequest,
                         sent_at: float) -> list[str] | None:
        """Tasks of this model the service created between the create call and its timeout.

        The list API filters by model and time (``YYYY-MM-DD HH:MM:SS``, the service's clock; the
        local clock is used, with a second of slack). A task created before the call was sent
        cannot be its result, nor one created after the call would have timed out.
        """
        model = request.model.providers["dashscope"].model
        earliest, latest = sent_at - 1.0, sent_at + CREATE_WINDOW
        params = {"model_name": model, "start_time": _clock(earliest), "end_time": _clock(latest), "page_size": "100"}
        found: list[str] = []
        for page in range(1, 20):
            response = await client.get("/tasks", params={**params, "page_no": str(page)}, headers=auth)
            if not response.is_success:
                raise ProviderError(f"could not list tasks to reconcile a lost create (HTTP {response.status_code})")
            body = response.json()
            for item in body.get("data") or []:
                created = _parse_clock(item.get("gmt_create"))
                if item.get("task_id") and (created is None or earliest <= created <= latest):
                    found.append(item["task_id"])
            if page >= int(body.get("total_page") or 1):
                break
        return found

    def task_state(self, payload: Any, request: StepRequest) -> TaskState:
        output = payload.get("output", {}) if isinstance(payload, dict) else {}
        raw = str(output.get("task_status", ""))
        state = TaskState(self.status(raw), raw)
        if state.status in ("failed", "canceled", "unknown"):
            state.error_code, state.error_message = output.get("code"), output.get("message")
            return state
        if state.status != "succeeded":
            return state
        for choice in output.get("choices") or []:
            for item in (choice.get("message") or {}).get("content") or []:
                if item.get("type") == "text" or "text" in item and "image" not in item:
                    state.outputs.append(RemoteOutput("text", text=item.get("text", "")))
                elif item.get("image"):
                    state.outputs.append(RemoteOutput("images", url=item["image"]))
        for result in output.get("results") or []:
            if result.get("url"):
                state.outputs.append(RemoteOutput("images", url=result["url"]))
            elif result.get("code"):
                state.partial_failures.append(f"{result.get('code')}: {result.get('message', '')}")
        if output.get("video_url"):
            state.outputs.append(RemoteOutput("video", url=output["video_url"]))
        metrics = output.get("task_metrics") or {}
        missing = int(metrics.get("FAILED") or 0) - len(state.partial_failures)
        state.partial_failures += [f"image failed ({metrics.get('FAILED')} of {metrics.get('TOTAL')})"] * max(0, missing)
        return state


CREATE_WINDOW = 60.0  # seconds: longer than any create call may take before it times out


def _clock(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def _parse_clock(text: str | None) -> float | None:
    if not text:
        return None
    for fmt in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.strptime(text, fmt).timestamp()
        except ValueError:
            continue
    return None


def dashscope_provider(config: ServiceConfig | None = None, **options: Any) -> RemoteProvider:
    """A DashScope provider configured from the environment or the user config."""
    return RemoteProvider(DashScopeProtocol(), config or service_config("dashscope"), **options)


async def list_tasks(provider: RemoteProvider, **filters: str) -> Any:
    """``GET /tasks`` with DashScope's filters (start_time, end_time, model_name, status, page_no, page_size)."""
    async with httpx.AsyncClient(base_url=provider.config.base_url, timeout=30, transport=provider._transport) as client:
        response = await client.get("/tasks", params=filters, headers=provider._auth())
        response.raise_for_status()
        return response.json()


async def cancel_task(provider: RemoteProvider, task_id: str) -> Any:
    """Cancel a PENDING task."""
    async with httpx.AsyncClient(base_url=provider.config.base_url, timeout=30, transport=provider._transport) as client:
        response = await client.post(f"/tasks/{task_id}/cancel", headers=provider._auth())
        return response.json()
