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

from wanflow.pipelines.request import StepRequest
from wanflow.project.settings import ServiceConfig, parse_clock_offset, service_config
from wanflow.providers.protocol import (
    CreateCall,
    ListedTask,
    ListUnreadable,
    RemoteOutput,
    ServiceProtocol,
    TaskState,
    read_error,
)
from wanflow.providers.remote import RemoteProvider
from wanflow.providers.shapes import build_body


class DashScopeProtocol(ServiceProtocol):
    """DashScope's request and response shapes."""

    name = "dashscope"

    def __init__(self, service_clock: str = "auto") -> None:
        # The task list's clock zone: configured, or unknown ("auto").
        self.clock_offsets = (parse_clock_offset(service_clock),) if service_clock != "auto" else None
        self.match_offsets = self.clock_offsets or _LIKELY_OFFSETS

    def create_call(self, request: StepRequest, inputs: dict[str, list[str]], envelope: str | None = None) -> CreateCall:
        ids = request.model.providers["dashscope"]
        assert ids.path, f"catalog: {request.model.name} has no DashScope path"
        return CreateCall(ids.path, build_body(request, "dashscope", inputs), {"X-DashScope-Async": "enable"})

    def cancel_path(self, task_id: str) -> str:
        return f"/tasks/{task_id}/cancel"

    async def list_tasks(self, client: httpx.AsyncClient, auth: dict[str, str], low: float,
                         high: float) -> list[ListedTask] | None:
        """``GET /tasks`` over ``low``..``high``, in queries of at most the documented 24 h.

        The filters take ``YYYYMMDDhhmmss`` in the service's clock, whose zone is not documented:
        unless ``service_clock`` names it, the span is widened by ``max_clock_offset_hours`` either
        way (and split into several queries). Items are read in both shapes seen: ``status`` or
        ``task_status``, and ``gmt_create`` as epoch milliseconds or as the service's date strings.
        """
        spec = self.spec.task_list
        assert spec is not None, "catalog: dashscope names its task list"
        offsets = self.clock_offsets or (-spec.max_clock_offset_hours * 3600, spec.max_clock_offset_hours * 3600)
        start, end = low + min(offsets), high + max(offsets)
        step = spec.max_span_hours * 3600 - 60  # whole seconds of the filter format, with room to spare
        found: dict[str, ListedTask] = {}
        while start < end:
            stop = min(end, start + step)
            params = {"start_time": _service_time(start, spec.time_format),
                      "end_time": _service_time(stop, spec.time_format), "page_size": "100"}
            for item in await _list_pages(client, spec.path, params, auth):
                found[item.task_id] = item
            start = stop
        return list(found.values())

    def visible(self, payload: Any) -> bool:
        output = payload.get("output") if isinstance(payload, dict) else None
        return isinstance(output, dict) and self.state_for(output.get("task_status")).status != "gone"

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


# Zones the service's clock is likely in when none is configured: UTC, Beijing, this machine's.
_LIKELY_OFFSETS = tuple(sorted({0.0, 8 * 3600.0, float(-time.timezone if not time.daylight else -time.altzone)}))
MAX_LIST_PAGES = 50  # 5,000 tasks in one span: more cannot be checked, so the answer is "unknown"


async def _list_pages(client: httpx.AsyncClient, path: str, params: dict[str, str],
                      auth: dict[str, str]) -> list[ListedTask]:
    """Every page of one list query; ListUnreadable for any page that cannot be read."""
    items: list[ListedTask] = []
    for page in range(1, MAX_LIST_PAGES + 1):
        try:
            response = await client.get(path, params={**params, "page_no": str(page)}, headers=auth)
            listing = response.json() if response.is_success else None
        except (httpx.TransportError, ValueError) as error:
            raise ListUnreadable(f"the task list could not be read ({type(error).__name__})") from None
        if not isinstance(listing, dict):
            code, message = read_error(_json_of(response))
            raise ListUnreadable(f"the task list answered HTTP {response.status_code} ({code or message or 'no JSON'})")
        data = listing.get("data")
        if data is None and isinstance(listing.get("output"), dict):
            data = listing["output"].get("data")
        if not isinstance(data, list):
            raise ListUnreadable("the task list's answer holds no data[] list")
        for raw in data:
            item = _listed(raw)
            if item is None:
                raise ListUnreadable(f"a task-list item could not be read: {str(raw)[:120]}")
            items.append(item)
        if page >= int(listing.get("total_page") or 1):
            return items
    raise ListUnreadable(f"the task list has more than {MAX_LIST_PAGES} pages for one span")


def _listed(raw: Any) -> ListedTask | None:
    """A list item, or None when its id or its create time cannot be read."""
    if not isinstance(raw, dict) or not raw.get("task_id"):
        return None
    created = raw.get("gmt_create", raw.get("submit_time"))
    if isinstance(created, (int, float)) and not isinstance(created, bool):
        # Epoch milliseconds (the documented shape); seconds if the number is that small.
        return ListedTask(str(raw["task_id"]), _model_of(raw), created / 1000 if created > 1e11 else float(created), True)
    text = str(created or "")
    if text.isdigit() and len(text) in (10, 13):  # epoch seconds or milliseconds as a string (14 digits: a date)
        return ListedTask(str(raw["task_id"]), _model_of(raw), int(text) / (1000 if len(text) == 13 else 1), True)
    seconds = _parse_service_time(text)
    return None if seconds is None else ListedTask(str(raw["task_id"]), _model_of(raw), seconds, False)


def _model_of(raw: dict[str, Any]) -> str | None:
    value = raw.get("model_name", raw.get("model"))
    return str(value) if value else None


def _json_of(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text[:200]


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
