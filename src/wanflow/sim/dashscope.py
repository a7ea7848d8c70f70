"""DashScope (Alibaba Model Studio), as the documents and the official Python SDK speak it.

Async (``X-DashScope-Async: enable``):
    POST /api/v1/services/aigc/{image-generation/generation | image2image/image-synthesis |
         video-generation/video-synthesis}
Sync, wan2.6 image models only (the SDK's plain ``ImageGeneration.call``):
    POST /api/v1/services/aigc/multimodal-generation/generation
Tasks: GET /api/v1/tasks/{id}, POST /api/v1/tasks/{id}/cancel, GET /api/v1/tasks (the list).
Every timestamp is written in the service's clock (``--list-clock-offset``).
"""

from __future__ import annotations

import time
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from wanflow.catalog.loader import load_catalog
from wanflow.catalog.pricing import list_price
from wanflow.sim.clock import parse_list_time, parse_offset, service_time
from wanflow.sim.core import Core, base_url, lost_answer, lost_request
from wanflow.sim.envelopes import Rejection, dashscope_error
from wanflow.sim.inputs import Caller, decode_media
from wanflow.sim.requests import Interpreted, interpret
from wanflow.sim.state import SimTask
from wanflow.sim.uploads import RESOLVE_HEADER

PREFIX = "/api/v1"
SYNC_PATH = "/services/aigc/multimodal-generation/generation"
TASK_STATUSES = ("PENDING", "RUNNING", "SUSPENDED", "SUCCEEDED", "FAILED", "CANCELED")
MAX_PAGE_SIZE = 100


def _error(rejection: Rejection) -> JSONResponse:
    return dashscope_error(rejection.status, rejection.code, rejection.message, rejection.headers)


def _header_enabled(request: Request, name: str) -> bool:
    return request.headers.get(name, "").strip().lower() == "enable"


class DashScope:
    """The DashScope routes, bound to the simulator's core."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.state = core.state

    def _clock(self, timestamp: float) -> str:
        return service_time(timestamp, parse_offset(self.state.knobs.list_clock_offset))

    async def _interpret(self, request: Request, key: str, path: str | None) -> tuple[Any, Interpreted]:
        try:
            body = await request.json()
        except ValueError:
            raise Rejection(400, "InvalidParameter", "request body is not JSON") from None
        caller = Caller("dashscope", key, base_url(request), _header_enabled(request, RESOLVE_HEADER))
        return body, await anyio.to_thread.run_sync(interpret, caller, path, body, self.state)

    async def create(self, request: Request) -> Response:
        """An async create on one of the documented task endpoints."""
        try:
            key = self.core.gate(request, create=True)
            if not _header_enabled(request, "x-dashscope-async"):
                raise Rejection(403, "AccessDenied", "current user api does not support synchronous calls")
            body, interpreted = await self._interpret(request, key, request.url.path.removeprefix(PREFIX))
        except Rejection as rejection:
            if rejection.status == 400:
                self.state.stats["rejected"] += 1
            return _error(rejection)
        lost_in = lost_request(self.state)
        if lost_in is not None:
            return lost_in
        task = self.state.new_task("dashscope", interpreted.model.name, interpreted.provider_model, body,
                                   interpreted.request, api_key=key)
        task.cost_usd = list_price(interpreted.model, interpreted.request.params).usd
        lost = lost_answer(self.state)
        if lost is not None:
            return lost
        if self.state.knobs.create_answer == "top-level":
            # The shape the 1.x SDK's DashScopeAPIResponse also reads: the id beside request_id.
            return JSONResponse({"request_id": task.request_id, "task_id": task.task_id,
                                 "task_status": self.state.status(task)})
        return JSONResponse({"request_id": task.request_id,
                             "output": {"task_id": task.task_id, "task_status": self.state.status(task)}})

    async def sync_generation(self, request: Request) -> Response:
        """The synchronous multimodal-generation call: renders, then answers with the result itself."""
        try:
            key = self.core.gate(request, create=True)
            if _header_enabled(request, "x-dashscope-async"):
                raise Rejection(403, "AccessDenied", "current user api does not support asynchronous calls")
            body, interpreted = await self._interpret(request, key, None)
            if interpreted.model.providers["dashscope"].result != "choices":
                raise Rejection(400, "InvalidParameter", f"Model {interpreted.provider_model} is not supported by this API: "
                                                         f"{SYNC_PATH}")
        except Rejection as rejection:
            if rejection.status == 400:
                self.state.stats["rejected"] += 1
            return _error(rejection)
        self.state.stats["sync_calls"] += 1
        task = self.state.new_task("dashscope", interpreted.model.name, interpreted.provider_model, body,
                                   interpreted.request, api_key=key, register=False)
        await anyio.sleep(self.state.knobs.task_seconds)  # the call lasts as long as the generation
        if task.will_fail:
            return _error(Rejection(500, "InternalError", "Internal error during generation (injected)."))
        output, usage = await self._result(task, base_url(request))
        output["finished"] = True
        return JSONResponse({"request_id": task.request_id, "output": output, "usage": usage})

    async def precheck(self, request: Request) -> Response:
        """A model's synchronous pre-check (wan2.2-s2v-detect on image2video/face-detect): ``check_pass``
        for any readable image, false for every image with ``--face-check-fails``."""
        try:
            key = self.core.gate(request, create=True)
            try:
                body = await request.json()
            except ValueError:
                raise Rejection(400, "InvalidParameter", "request body is not JSON") from None
            check = next((model.precheck for model in load_catalog().models.values() if model.precheck is not None
                          and model.precheck.model == (body.get("model") if isinstance(body, dict) else None)), None)
            if check is None or not request.url.path.endswith(check.path):
                raise Rejection(400, "InvalidParameter", f"Model not exist: {body.get('model') if isinstance(body, dict) else body}")
            value = (body.get("input") or {}).get(check.field) if isinstance(body.get("input"), dict) else None
            if not value:
                raise Rejection(400, "InvalidParameter", f"Missing required field input.{check.field}")
            if isinstance(value, str) and value.startswith("data:"):  # the check's page: a URL only
                raise Rejection(400, "InvalidParameter", f"input.{check.field} must be a URL; a data: URI is not supported")
            caller = Caller("dashscope", key, base_url(request), _header_enabled(request, RESOLVE_HEADER))
            await anyio.to_thread.run_sync(decode_media, value, "image", check.model, caller, self.state)
        except Rejection as rejection:
            if rejection.status == 400:
                self.state.stats["rejected"] += 1
            return _error(rejection)
        self.state.stats["prechecks"] += 1
        passed = not self.state.knobs.face_check_fails
        return JSONResponse({"request_id": f"sim-check-{self.state.stats['prechecks']}",
                             "output": {check.passed: passed, "humanoid": passed}, "usage": {"image_count": 1}})

    async def task(self, request: Request) -> Response:
        """``GET /api/v1/tasks/{id}``: UNKNOWN (HTTP 200) for an id this account does not have."""
        try:
            key = self.core.gate(request, poll=True)
        except Rejection as rejection:
            return _error(rejection)
        self.state.stats["polls"] += 1
        task = self.state.tasks.get(request.path_params["task_id"])
        if task is None or task.protocol != "dashscope" or task.api_key != key or self.state.hidden(task):
            return JSONResponse({"request_id": "sim", "output": {"task_id": request.path_params["task_id"],
                                                                  "task_status": "UNKNOWN"}})
        status = self.state.status(task)
        if status == "SUSPENDED":
            self.state.stats["suspended_polls"] += 1
        output: dict[str, Any] = {"task_id": task.task_id, "task_status": status, "submit_time": self._clock(task.created_at)}
        body: dict[str, Any] = {"request_id": task.request_id, "output": output}
        if status != "PENDING" and not (status == "CANCELED" and task.canceled_at is not None
                                        and task.canceled_at < self.state.scheduled_at(task)):
            output["scheduled_time"] = self._clock(self.state.scheduled_at(task))
        if status in ("SUCCEEDED", "FAILED", "CANCELED"):
            output["end_time"] = self._clock(self.state.ended_at(task))
        if status == "SUCCEEDED":
            result, body["usage"] = await self._result(task, base_url(request))
            output.update(result)
        elif status == "FAILED":
            output["code"], output["message"] = "InternalError", "Internal error during generation (injected)."
        return JSONResponse(body)

    async def _result(self, task: SimTask, base: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """The finished task's output fields and usage, in the model's result shape."""
        results = await self.core.results(task, base)
        shape = task.request.model.providers["dashscope"].result
        if task.empty:
            return ({"results": []} if shape == "results" else {"choices": []} if shape == "choices" else {},
                    {"image_count": 0} if shape != "video_url" else {"video_count": 0})
        if shape == "video_url":
            params = task.request.params
            usage = {"video_count": 1, "video_duration": params.get("duration")}
            tier = task.request.model.resolution_tier(params)
            if tier:  # the service reports the resolution tier as SR (480, 720, 1080)
                usage["SR"] = int(tier.rstrip("P"))
            return {"video_url": results[0]["url"]}, usage
        failed = min(self.state.knobs.partial_failures, len(results) - 1) if len(results) > 1 else 0
        results = results[:len(results) - failed]
        images = [r for r in results if "url" in r]
        if shape == "results":
            items: list[dict[str, Any]] = [{"url": r["url"], "orig_prompt": task.request.prompt} for r in results]
            items += [{"code": "InternalError.Algo", "message": "image generation failed (injected)"}] * failed
            return ({"results": items,
                     "task_metrics": {"TOTAL": len(items), "SUCCEEDED": len(results), "FAILED": failed}},
                    {"image_count": len(images)})
        content = [{"type": "text", "text": r["text"]} if "text" in r else {"type": "image", "image": r["url"]}
                   for r in results]
        metrics = {"task_metrics": {"TOTAL": len(results) + failed, "SUCCEEDED": len(results), "FAILED": failed}} \
            if failed else {}
        return ({"choices": [{"finish_reason": "stop", "message": {"role": "assistant", "content": content}}], **metrics},
                {"image_count": len(images), **({"size": images[0]["size"]} if images else {})})

    async def cancel(self, request: Request) -> Response:
        """``POST /api/v1/tasks/{id}/cancel``: PENDING tasks only."""
        try:
            key = self.core.gate(request)
        except Rejection as rejection:
            return _error(rejection)
        task = self.state.tasks.get(request.path_params["task_id"])
        if task is None or task.protocol != "dashscope" or task.api_key != key:
            return _error(Rejection(404, "InvalidParameter", "task not found"))
        if self.state.status(task) != "PENDING":
            return _error(Rejection(400, "UnsupportedOperation", "only PENDING tasks can be canceled"))
        task.canceled_at = time.time()
        self.state.stats["cancels"] += 1
        return JSONResponse({"request_id": task.request_id})

    async def list(self, request: Request) -> Response:
        """``GET /api/v1/tasks``: filters as the SDK sends them, times strictly ``YYYYMMDDhhmmss`` in the service clock."""
        try:
            key = self.core.gate(request)
            query = request.query_params
            zone = parse_offset(self.state.knobs.list_clock_offset)
            try:
                start = parse_list_time(query["start_time"], zone) if query.get("start_time") else float("-inf")
                end = parse_list_time(query["end_time"], zone) if query.get("end_time") else float("inf")
            except ValueError as error:
                raise Rejection(400, "InvalidParameter", f"start_time/end_time: {error}") from None
            page_no, page_size = _page(query.get("page_no", "1"), 10**6), _page(query.get("page_size", "10"), MAX_PAGE_SIZE)
            status_filter = query.get("status")
            if status_filter and status_filter not in TASK_STATUSES:
                raise Rejection(400, "InvalidParameter", f"status must be one of {', '.join(TASK_STATUSES)}")
            if -float("inf") < start and end < float("inf") and end - start > self.state.knobs.list_max_span_hours * 3600:
                # The documented rule: one query spans at most 24 hours.
                self.state.stats["lists_refused"] += 1
                raise Rejection(400, "InvalidParameter", "the time span between start_time and end_time must not "
                                                         f"exceed {self.state.knobs.list_max_span_hours:g} hours")
        except Rejection as rejection:
            return _error(rejection)
        self.state.stats["lists"] += 1
        knobs, now = self.state.knobs, time.time()
        tasks = [t for t in self.state.tasks.values()
                 if t.protocol == "dashscope" and (knobs.list_account_wide or t.api_key == key)
                 and start <= t.created_at < end + 1 and self.state.listed(t, now)]
        if query.get("model_name"):
            tasks = [t for t in tasks if t.provider_model == query["model_name"]]
        if status_filter:
            tasks = [t for t in tasks if self.state.status(t) == status_filter]
        tasks.sort(key=lambda t: t.created_at)
        page = tasks[(page_no - 1) * page_size: page_no * page_size]
        data = [self._list_item(t) for t in page]
        return JSONResponse({"request_id": "sim-list", "data": data, "total": len(tasks), "page_no": page_no,
                             "page_size": page_size, "total_page": max(1, -(-len(tasks) // page_size))})

    def _list_item(self, task: SimTask) -> dict[str, Any]:
        """One list item. ``strings``: what the 1.x SDK's list reader keys on (``task_status``, service-clock
        strings). ``documented``: the "manage asynchronous tasks" page (``status``, epoch milliseconds)."""
        status = self.state.status(task)
        if self.state.knobs.list_format == "documented":
            item: dict[str, Any] = {"task_id": task.task_id, "status": status, "model_name": task.provider_model,
                                    "request_id": task.request_id, "gmt_create": int(task.created_at * 1000)}
            if status != "PENDING":
                item["start_time"] = int(self.state.scheduled_at(task) * 1000)
            if status in ("SUCCEEDED", "FAILED", "CANCELED"):
                item["end_time"] = int(self.state.ended_at(task) * 1000)
            return item
        return {"task_id": task.task_id, "task_status": status, "model_name": task.provider_model,
                "request_id": task.request_id, "gmt_create": self._clock(task.created_at)}


def _page(text: str, maximum: int) -> int:
    if not text.isdigit() or not 1 <= int(text) <= maximum:
        raise Rejection(400, "InvalidParameter", f"page_no/page_size must be integers from 1 to {maximum}, got {text!r}")
    return int(text)
