"""The simulator's HTTP surface: vtrix and DashScope, as the documents describe them.

vtrix:     POST /model/v1/generation, GET /model/v1/generation/task/{id}
DashScope: POST /api/v1/services/aigc/{image-generation/generation | image2image/image-synthesis |
           video-generation/video-synthesis}, GET /api/v1/tasks/{id}, POST /api/v1/tasks/{id}/cancel,
           GET /api/v1/tasks
Results:   GET /_sim/files/{token}/{name} (expires), and GET /_sim/stats.
"""

from __future__ import annotations

import datetime as dt
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from wanflow.catalog.pricing import list_price
from wanflow.providers.local import render_request
from wanflow.sim.requests import Rejection, interpret
from wanflow.sim.state import Knobs, SimState, SimTask, retry_after_header

DASHSCOPE_PREFIX = "/api/v1"
_VTRIX_WORDS = {"PENDING": "pending", "RUNNING": "processing", "SUCCEEDED": "completed", "FAILED": "failed", "CANCELED": "canceled"}
_VTRIX_VIDEO_WORDS = {**_VTRIX_WORDS, "PENDING": "in_queue", "SUCCEEDED": "done"}


def _error(protocol: str, status: int, code: str, message: str, headers: dict[str, str] | None = None,
           request_id: str | None = None) -> JSONResponse:
    if protocol == "vtrix":
        body: dict[str, Any] = {"error": {"code": code, "message": message}}
    else:
        body = {"request_id": request_id or "sim-" + str(int(time.time() * 1000)), "code": code, "message": message}
    return JSONResponse(body, status_code=status, headers=headers)


def _clock(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


class DroppedResponse(Response):
    """The task exists, but the connection dies mid-answer: the client cannot know its id."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")]})
        await send({"type": "http.response.body", "body": b'{"request_id": "', "more_body": True})
        raise ConnectionAbortedError("simulated connection drop")


class Simulator:
    """Routes bound to one SimState."""

    def __init__(self, state: SimState) -> None:
        self.state = state

    # --- shared gates --------------------------------------------------------------------------

    def _gate(self, request: Request, protocol: str, create: bool) -> JSONResponse | None:
        """Auth, injected transient errors and throttling, in that order."""
        auth = request.headers.get("authorization", "")
        key = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else ""
        if key not in self.state.knobs.keys:
            self.state.stats["unauthorized"] += 1
            return _error(protocol, 401, "InvalidApiKey", "Invalid API-key provided.")
        if self.state.roll(self.state.knobs.error_rate):
            self.state.stats["errors_injected"] += 1
            return _error(protocol, 503, "InternalError", "The service is temporarily unavailable (injected).")
        if create:
            wait = self.state.take_token(key, time.monotonic())
            if wait is not None:
                self.state.stats["throttles"] += 1
                return _error(protocol, 429, "Throttling.RateQuota", "Requests rate limit exceeded, please try again later.",
                              headers={"Retry-After": retry_after_header(wait)})
        return None

    async def _create(self, request: Request, protocol: str) -> Response:
        denied = self._gate(request, protocol, create=True)
        if denied is not None:
            return denied
        if protocol == "dashscope" and request.headers.get("x-dashscope-async", "").lower() != "enable":
            return _error(protocol, 403, "AccessDenied", "current user api does not support synchronous calls")
        try:
            body = await request.json()
        except ValueError:
            return _error(protocol, 400, "InvalidParameter", "request body is not JSON")
        base_url = str(request.base_url).rstrip("/")
        path = request.url.path.removeprefix(DASHSCOPE_PREFIX) if protocol == "dashscope" else None
        try:
            interpreted = await anyio.to_thread.run_sync(interpret, protocol, path, body, self.state, base_url)
        except Rejection as rejection:
            self.state.stats["rejected"] += 1
            return _error(protocol, rejection.status, rejection.code, rejection.message)
        task = self.state.add_task(protocol, interpreted.model.name, interpreted.provider_model, body, interpreted.request)
        task.cost_usd = list_price(interpreted.model, interpreted.request.params).usd
        if self.state.roll(self.state.knobs.drop_rate):
            self.state.stats["dropped"] += 1
            return DroppedResponse()
        status = self.state.status(task)
        if protocol == "vtrix":
            return JSONResponse({"id": task.task_id, "status": self._vtrix_word(task, status), "request_id": task.request_id})
        return JSONResponse({"request_id": task.request_id, "output": {"task_id": task.task_id, "task_status": status}})

    # --- endpoints -----------------------------------------------------------------------------

    async def vtrix_create(self, request: Request) -> Response:
        return await self._create(request, "vtrix")

    async def dashscope_create(self, request: Request) -> Response:
        return await self._create(request, "dashscope")

    async def vtrix_task(self, request: Request) -> Response:
        denied = self._gate(request, "vtrix", create=False)
        if denied is not None:
            return denied
        self.state.stats["polls"] += 1
        task = self.state.tasks.get(request.path_params["task_id"])
        if task is None or task.protocol != "vtrix":
            return _error("vtrix", 404, "TaskNotFound", "task not found")
        status = self.state.status(task)
        body: dict[str, Any] = {"id": task.task_id, "status": self._vtrix_word(task, status), "jobId": task.task_id,
                                "metadata": {"model": task.provider_model, "request_id": task.request_id}}
        if status == "SUCCEEDED":
            results = await self._results(task, str(request.base_url).rstrip("/"))
            body["output"] = [{"content": [{"type": r["field"], **({"text": r["text"]} if "text" in r else {"url": r["url"]})}
                                           for r in results]}]
            images = sum(1 for r in results if r["field"] == "image")
            body["usage"] = {"cost": f"{task.cost_usd:.4f}", "discount": 0, "image_count": images}
        elif status == "FAILED":
            family = next((c[:6] for c in [task.request.model.prompt.code, task.request.model.seed_code] if c), "001000")
            body["error"] = {"code": f"{family}095", "message": "Internal generation error (injected)"}
        return JSONResponse(body)

    async def dashscope_task(self, request: Request) -> Response:
        denied = self._gate(request, "dashscope", create=False)
        if denied is not None:
            return denied
        self.state.stats["polls"] += 1
        task = self.state.tasks.get(request.path_params["task_id"])
        if task is None or task.protocol != "dashscope":
            return JSONResponse({"request_id": "sim", "output": {"task_id": request.path_params["task_id"],
                                                                  "task_status": "UNKNOWN"}})
        status = self.state.status(task)
        output: dict[str, Any] = {"task_id": task.task_id, "task_status": status, "submit_time": _clock(task.created_at)}
        body: dict[str, Any] = {"request_id": task.request_id, "output": output}
        if status == "SUCCEEDED":
            results = await self._results(task, str(request.base_url).rstrip("/"))
            shape = task.request.model.providers["dashscope"].result
            if shape == "video_url":
                output["video_url"] = results[0]["url"]
                body["usage"] = {"video_count": 1, "video_duration": task.request.params.get("duration")}
            elif shape == "results":
                output["results"] = [{"url": r["url"], "orig_prompt": task.request.prompt} for r in results]
                output["task_metrics"] = {"TOTAL": len(results), "SUCCEEDED": len(results), "FAILED": 0}
                body["usage"] = {"image_count": len(results)}
            else:
                content = [{"type": "text", "text": r["text"]} if "text" in r else {"type": "image", "image": r["url"]}
                           for r in results]
                output["choices"] = [{"finish_reason": "stop", "message": {"role": "assistant", "content": content}}]
                body["usage"] = {"image_count": sum(1 for r in results if "url" in r)}
        elif status == "FAILED":
            output["code"], output["message"] = "InternalError", "Internal error during generation (injected)."
        return JSONResponse(body)

    async def dashscope_cancel(self, request: Request) -> Response:
        denied = self._gate(request, "dashscope", create=False)
        if denied is not None:
            return denied
        task = self.state.tasks.get(request.path_params["task_id"])
        if task is None:
            return _error("dashscope", 404, "InvalidParameter", "task not found")
        if self.state.status(task) != "PENDING":
            return _error("dashscope", 400, "UnsupportedOperation", "only PENDING tasks can be canceled")
        task.canceled = True
        self.state.stats["cancels"] += 1
        return JSONResponse({"request_id": task.request_id})

    async def dashscope_list(self, request: Request) -> Response:
        denied = self._gate(request, "dashscope", create=False)
        if denied is not None:
            return denied
        self.state.stats["lists"] += 1
        query = request.query_params
        start = _parse_clock(query.get("start_time"), 0.0)
        end = _parse_clock(query.get("end_time"), float("inf"))
        tasks = [t for t in self.state.tasks.values() if t.protocol == "dashscope" and start <= t.created_at <= end]
        if query.get("model_name"):
            tasks = [t for t in tasks if t.provider_model == query["model_name"]]
        if query.get("status"):
            tasks = [t for t in tasks if self.state.status(t) == query["status"]]
        tasks.sort(key=lambda t: t.created_at)
        page_no, page_size = int(query.get("page_no", 1)), min(100, int(query.get("page_size", 10)))
        page = tasks[(page_no - 1) * page_size: page_no * page_size]
        data = [{"task_id": t.task_id, "task_status": self.state.status(t), "model_name": t.provider_model,
                 "request_id": t.request_id, "gmt_create": _clock(t.created_at)} for t in page]
        return JSONResponse({"request_id": "sim-list", "data": data, "total": len(tasks), "page_no": page_no,
                             "page_size": page_size, "total_page": max(1, -(-len(tasks) // page_size))})

    async def file(self, request: Request) -> Response:
        if self.state.roll(self.state.knobs.error_rate):
            self.state.stats["errors_injected"] += 1
            return Response("injected", status_code=503)
        entry = self.state.file(request.path_params["token"])
        if entry is None:
            return Response("<Error><Code>NoSuchKey</Code></Error>", status_code=404, media_type="application/xml")
        if entry.expires_at < time.time():
            return Response("<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
                            status_code=403, media_type="application/xml")
        self.state.stats["downloads"] += 1
        if "authorization" in request.headers:
            self.state.stats["downloads_with_auth"] += 1  # presigned URLs must not get the API key
        return FileResponse(entry.path, media_type=entry.media_type)

    async def stats(self, request: Request) -> Response:
        return JSONResponse(self.state.snapshot())

    # --- helpers -------------------------------------------------------------------------------

    def _vtrix_word(self, task: SimTask, status: str) -> str:
        words = _VTRIX_VIDEO_WORDS if task.request.model.kind == "i2v" else _VTRIX_WORDS
        return words[status]

    async def _results(self, task: SimTask, base_url: str) -> list[dict[str, Any]]:
        """Render the task's outputs once (with the local preview renderer) and publish them."""
        if task.results is None:
            await anyio.to_thread.run_sync(self._render, task, base_url)
        assert task.results is not None
        return task.results

    def _render(self, task: SimTask, base_url: str) -> None:
        with task.rendering:
            if task.results is not None:
                return
            folder = self.state.workdir / "results" / task.task_id
            folder.mkdir(parents=True, exist_ok=True)
            results = []
            produced_files = _tiny(task, folder) if self.state.knobs.tiny_results else render_request(task.request, folder)
            for produced in produced_files:
                if produced.field == "text":
                    results.append({"field": "text", "text": produced.path.read_text("utf-8")})
                    continue
                media_type = "video/mp4" if produced.field == "video" else "image/png"
                url = base_url + self.state.publish(produced.path, media_type)
                results.append({"field": "video" if produced.field == "video" else "image", "url": url})
            task.results = results


TINY_SIDE = 512  # a few hundred bytes as PNG, yet a valid input for every model (no conforming)


def _tiny(task: SimTask, folder: Path) -> list:
    """Small but real PNGs, one per requested image (video models are not supported in this mode)."""
    from PIL import Image

    from wanflow.providers.base import ProducedFile

    if task.request.model.kind == "i2v":
        return render_request(task.request, folder)
    files = []
    for index in range(task.request.model.image_count(task.request.params)):
        path = folder / f"image-{index + 1}.png"
        Image.new("RGB", (TINY_SIDE, TINY_SIDE), (index * 40 % 256, 90, 160)).save(path)
        files.append(ProducedFile(path, "images"))
    return files


def _parse_clock(text: str | None, default: float) -> float:
    if not text:
        return default
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S.%f"):
        try:
            return dt.datetime.strptime(text, fmt).timestamp()
        except ValueError:
            continue
    return default


def create_app(knobs: Knobs | None = None, workdir: Path | None = None) -> tuple[Starlette, SimState]:
    """The ASGI app and its state (the state is also how tests read and change the knobs)."""
    state = SimState(knobs or Knobs(), workdir or Path(tempfile.mkdtemp(prefix="wanflow-sim-")))
    sim = Simulator(state)
    prefix = DASHSCOPE_PREFIX
    routes = [
        Route("/model/v1/generation", sim.vtrix_create, methods=["POST"]),
        Route("/model/v1/generation/task/{task_id}", sim.vtrix_task, methods=["GET"]),
        Route(prefix + "/services/aigc/image-generation/generation", sim.dashscope_create, methods=["POST"]),
        Route(prefix + "/services/aigc/image2image/image-synthesis", sim.dashscope_create, methods=["POST"]),
        Route(prefix + "/services/aigc/video-generation/video-synthesis", sim.dashscope_create, methods=["POST"]),
        Route(prefix + "/tasks/{task_id}/cancel", sim.dashscope_cancel, methods=["POST"]),
        Route(prefix + "/tasks/{task_id}", sim.dashscope_task, methods=["GET"]),
        Route(prefix + "/tasks", sim.dashscope_list, methods=["GET"]),
        Route("/_sim/files/{token}/{name}", sim.file, methods=["GET"]),
        Route("/_sim/stats", sim.stats, methods=["GET"]),
    ]
    return Starlette(routes=routes), state
