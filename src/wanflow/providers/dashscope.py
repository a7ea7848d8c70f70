"""Alibaba Cloud Model Studio (DashScope): the asynchronous task protocol.

Create with ``X-DashScope-Async: enable`` on the model family's path, poll ``GET /tasks/{id}``
(``PENDING``, ``SUSPENDED`` and ``RUNNING`` all mean "wait"; only ``UNKNOWN`` means the id is gone),
read ``output.choices[].message.content[]`` (wan2.6), ``output.results[].url`` (wan2.5) or
``output.video_url`` (i2v). Cancel (``POST /tasks/{id}/cancel``) and list (``GET /tasks``) are
there for reconciliation. Base URLs are per region and keys are region-bound.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import httpx

from wanflow._exceptions import ProviderError
from wanflow.pipelines.request import StepRequest
from wanflow.providers.config import ServiceConfig, parse_clock_offset, service_config
from wanflow.providers.protocol import CreateCall, RemoteOutput, ServiceProtocol, TaskState, read_error
from wanflow.providers.remote import RemoteProvider
from wanflow.providers.shapes import build_body


class DashScopeProtocol(ServiceProtocol):
    """DashScope's request and response shapes."""

    name = "dashscope"

    def __init__(self, service_clock: str = "auto") -> None:
        # The task list's clock zone: configured, or unknown ("auto").
        self.clock_offsets = (parse_clock_offset(service_clock),) if service_clock != "auto" else None

    def create_call(self, request: StepRequest, inputs: dict[str, list[str]], envelope: str | None = None) -> CreateCall:
        ids = request.model.providers["dashscope"]
        assert ids.path, f"catalog: {request.model.name} has no DashScope path"
        return CreateCall(ids.path, build_body(request, "dashscope", inputs), {"X-DashScope-Async": "enable"})

    def created(self, payload: Any) -> tuple[str | None, str | None]:
        output = payload.get("output") if isinstance(payload, dict) else None
        task_id = output.get("task_id") if isinstance(output, dict) else None
        return (str(task_id) if task_id else None), self.request_id(payload)

    def cancel_path(self, task_id: str) -> str:
        return f"/tasks/{task_id}/cancel"

    async def find_tasks(self, client: httpx.AsyncClient, auth: dict[str, str], request: StepRequest,
                         sent_at: float, body: dict[str, Any]) -> list[str] | None:
        """Tasks of this model the service created between the create call and its timeout.

        The list takes ``start_time``/``end_time`` as ``YYYYMMDDhhmmss`` in the service's own
        clock, whose zone is not documented. The query spans every zone up to the catalog's
        ``max_clock_offset_hours`` from UTC; each listed task's ``gmt_create`` (service clock) is then
        compared with the send time under the configured zone (``service_clock``) or, when none is
        set, under each likely one (UTC, Beijing's UTC+8, this machine's zone). A task that matches
        under any of them is a candidate, so a wrong guess of the zone can only add candidates
        (which makes the caller stop and ask), never hide the one.
        """
        spec = self.spec.task_list
        assert spec is not None, "catalog: dashscope names its task list"
        model = request.model.providers["dashscope"].model
        earliest, latest = sent_at - 1.0, sent_at + CREATE_WINDOW
        offsets = self.clock_offsets or _LIKELY_OFFSETS
        widest = spec.max_clock_offset_hours * 3600 if self.clock_offsets is None else 0.0
        low = min(offsets) - widest + earliest
        high = max(offsets) + widest + latest
        params = {"model_name": model, "start_time": _service_time(low, spec.time_format),
                  "end_time": _service_time(high, spec.time_format), "page_size": "100"}
        found: list[str] = []
        for page in range(1, 50):
            response = await client.get(spec.path, params={**params, "page_no": str(page)}, headers=auth)
            if not response.is_success:
                raise ProviderError(f"could not list tasks to reconcile a lost create (HTTP {response.status_code})")
            listing = response.json()
            items = listing.get("data") or (listing.get("output") or {}).get("data") or []
            for item in items:
                created = _parse_service_time(item.get("gmt_create") or item.get("submit_time"))
                if not item.get("task_id"):
                    continue
                if created is not None and not any(earliest <= created - offset <= latest for offset in offsets):
                    continue
                if _echo_differs(item, body):
                    continue
                found.append(str(item["task_id"]))
            if page >= int(listing.get("total_page") or 1):
                break
        return found

    def task_state(self, payload: Any, request: StepRequest) -> TaskState:
        output = payload.get("output", {}) if isinstance(payload, dict) else {}
        output = output if isinstance(output, dict) else {}
        state = self.state_for(output.get("task_status"))
        if state.status in ("failed", "canceled", "gone"):
            state.error_code, state.error_message = read_error(output)
            return state
        if state.status != "succeeded":
            return state
        submitted, ended = _parse_service_time(output.get("submit_time")), _parse_service_time(output.get("end_time"))
        if submitted is not None and ended is not None and ended >= submitted:
            state.service_seconds = ended - submitted  # one clock, whatever its zone
        for choice in output.get("choices") or []:
            for item in (choice.get("message") or {}).get("content") or []:
                if item.get("type") == "text" or ("text" in item and "image" not in item):
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
# Zones the service's clock is likely in when none is configured: UTC, Beijing, this machine's.
_LIKELY_OFFSETS = tuple(sorted({0.0, 8 * 3600.0, float(-time.timezone if not time.daylight else -time.altzone)}))


def _echo_differs(item: dict[str, Any], body: dict[str, Any]) -> bool:
    """Whether a listed task's echo of its request (where the list gives one) contradicts ``body``.

    Only what is echoed is compared: the model, the prompt text, and the parameters both name
    (a service may add its own defaults to what it echoes).
    """
    if item.get("model_name") not in (None, "", body.get("model")):
        return True
    echoed = item.get("input")
    if isinstance(echoed, dict):
        prompt = _prompt_of(echoed)
        if prompt is not None and prompt != _prompt_of(body.get("input") or {}):
            return True
    params, sent = item.get("parameters"), body.get("parameters") or {}
    if isinstance(params, dict):
        return any(name in sent and params[name] != sent[name] for name in params)
    return False


def _prompt_of(body_input: dict[str, Any]) -> str | None:
    if isinstance(body_input.get("prompt"), str):
        return str(body_input["prompt"])
    for message in body_input.get("messages") or []:
        for part in (message.get("content") or []) if isinstance(message, dict) else []:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                return str(part["text"])
    return None


def _service_time(timestamp: float, fmt: str) -> str:
    """``timestamp`` (already shifted into the service's zone) as the list wants it."""
    return time.strftime(fmt, time.gmtime(timestamp))


def _parse_service_time(text: Any) -> float | None:
    """A service-clock time as seconds (as if it were UTC); None when absent or unreadable."""
    if not text:
        return None
    for fmt in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S", "%Y%m%d%H%M%S"):
        try:
            return datetime.strptime(str(text), fmt).replace(tzinfo=UTC).timestamp()
        except ValueError:
            continue
    return None


def dashscope_provider(config: ServiceConfig | None = None, **options: Any) -> RemoteProvider:
    """A DashScope provider configured from the environment or the user config."""
    config = config or service_config("dashscope")
    return RemoteProvider(DashScopeProtocol(config.service_clock), config, **options)


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
