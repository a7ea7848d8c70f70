"""What both simulated services share: the key check, injected faults, throttles and rendering."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio
from PIL import Image
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from wanflow.providers.local import render_request
from wanflow.sim.envelopes import Rejection
from wanflow.sim.state import SimState, SimTask, retry_after_header

TINY_SIDE = 512  # when no size is asked: a few hundred bytes as PNG, yet a valid input for every model


class DroppedResponse(Response):
    """The task exists, but the connection dies mid-answer: the client cannot know its id."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")]})
        await send({"type": "http.response.body", "body": b'{"request_id": "', "more_body": True})
        raise ConnectionAbortedError("simulated connection drop")


def lost_request(state: SimState) -> Response | None:
    """``lose_rate``: the create is lost on the way in (the front end died): no task, no answer."""
    if state.roll(state.knobs.lose_rate):
        state.stats["lost_before_create"] += 1
        return DroppedResponse()
    return None


def lost_answer(state: SimState) -> Response | None:
    """What a create that already made its task answers when a fault knob fires; None for the real answer.

    ``drop_rate``: the connection dies mid-answer. ``after_create_rate``: the front end answers a
    500 ``InternalError``, a 504 HTML page, or a 200 with an empty body (``after_create_answer``).
    """
    if state.roll(state.knobs.drop_rate):
        state.stats["dropped"] += 1
        return DroppedResponse()
    if not state.roll(state.knobs.after_create_rate):
        return None
    state.stats["answers_after_create"] += 1
    kind = state.knobs.after_create_answer
    if kind == "504-html":
        return Response("<html><head><title>504 Gateway Time-out</title></head><body><center><h1>504 Gateway "
                        "Time-out</h1></center></body></html>", status_code=504, media_type="text/html")
    if kind == "empty":
        return Response(b"", status_code=200, media_type="application/json")
    return JSONResponse({"request_id": "sim-500", "code": "InternalError", "message": "An internal error has occured, "
                         "please try again later or contact service support."}, status_code=500)


def base_url(request: Request) -> str:
    """The simulator's own address as this client reached it (result URLs are built on it)."""
    return str(request.base_url).rstrip("/")


class Core:
    """The gates every API call passes and the renderer behind every result."""

    def __init__(self, state: SimState) -> None:
        self.state = state

    def api_key(self, request: Request) -> str:
        """The caller's Bearer key; Rejection(401) when it is not one the simulator accepts."""
        auth = request.headers.get("authorization", "")
        key = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else ""
        # What the client says about itself and its workspace (tests read these).
        self.state.user_agents.add(request.headers.get("user-agent", ""))
        if request.headers.get("x-dashscope-workspace"):
            self.state.workspaces.add(request.headers["x-dashscope-workspace"])
        if key not in self.state.knobs.keys:
            self.state.stats["unauthorized"] += 1
            raise Rejection(401, "InvalidApiKey", "Invalid API-key provided.")
        return key

    def gate(self, request: Request, *, create: bool = False, poll: bool = False) -> str:
        """Auth, injected transient errors and throttling, in that order; returns the API key."""
        key = self.api_key(request)
        if self.state.roll(self.state.knobs.error_rate):
            self.state.stats["errors_injected"] += 1
            raise Rejection(503, "ServiceUnavailable", "The request has failed due to a temporary failure of the "
                                                      "server (injected).")
        now = time.monotonic()
        wait = self.state.take_token(key, now) if create else self.state.take_poll_token(key, now) if poll else None
        if wait is not None:
            self.state.stats["throttles" if create else "poll_throttles"] += 1
            raise Rejection(429, "Throttling.RateQuota", "Requests rate limit exceeded, please try again later.",
                            headers={"Retry-After": retry_after_header(wait)})
        return key

    async def results(self, task: SimTask, base: str) -> list[dict[str, Any]]:
        """Render the task's outputs once (with the local preview renderer) and publish them."""
        if task.results is None:
            await anyio.to_thread.run_sync(self._render, task, base)
        assert task.results is not None
        return task.results

    def _render(self, task: SimTask, base: str) -> None:
        with task.rendering:
            if task.results is not None:
                return
            folder = self.state.workdir / "results" / task.task_id
            folder.mkdir(parents=True, exist_ok=True)
            results: list[dict[str, Any]] = []
            produced_files = _tiny(task, folder) if self.state.knobs.tiny_results else render_request(task.request, folder)
            for produced in produced_files:
                if produced.field == "text":
                    results.append({"field": "text", "text": produced.path.read_text("utf-8")})
                    continue
                media_type = "video/mp4" if produced.field == "video" else "image/png"
                url = base + self.state.publish(produced.path, media_type)
                result: dict[str, Any] = {"field": "video" if produced.field == "video" else "image", "url": url}
                if produced.field != "video":
                    with Image.open(produced.path) as image:
                        result["size"] = f"{image.width}*{image.height}"  # what usage reports
                results.append(result)
            task.results = results


def _tiny(task: SimTask, folder: Path) -> list[Any]:
    """Small but real PNGs, one per requested image (video models are not supported in this mode)."""
    from wanflow.providers.base import ProducedFile

    if task.request.model.video:
        return render_request(task.request, folder)
    from wanflow.preview.images import edit_output_size

    # The requested size (a flat colour compresses to a few KB at any size), so that the
    # client's result check sees what it asked for.
    size = task.request.params.get("size")
    side = edit_output_size(size, []) if isinstance(size, str) else (TINY_SIDE, TINY_SIDE)
    files = []
    for index in range(task.request.model.image_count(task.request.params)):
        path = folder / f"image-{index + 1}.png"
        Image.new("RGB", side, (index * 40 % 256, 90, 160)).save(path)
        files.append(ProducedFile(path, "images"))
    return files
