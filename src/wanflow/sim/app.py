"""The simulator's HTTP surface: vtrix and DashScope, as the documents and public clients show them.

vtrix:     POST /model/v1/generation, GET /model/v1/generation/task/{id}       (--vtrix-dialect documented)
           POST /gateway/model/v1/generation, GET /gateway/.../task/{id}        (--vtrix-dialect gateway)
DashScope: POST /api/v1/services/aigc/{image-generation/generation | image2image/image-synthesis |
           video-generation/video-synthesis | image2video/video-synthesis | text2image/image-synthesis}:
           every create path of the catalog (async), POST .../multimodal-generation/generation (sync),
           GET /api/v1/tasks/{id}, POST /api/v1/tasks/{id}/cancel, GET /api/v1/tasks,
           GET /api/v1/uploads?action=getPolicy, POST /_sim/oss (the temporary-upload bucket)
Results:   GET /_sim/files/{token}/{name} (expires), and GET /_sim/stats.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from wanflow.catalog.loader import load_catalog
from wanflow.sim.core import Core
from wanflow.sim.dashscope import PREFIX, SYNC_PATH, DashScope
from wanflow.sim.state import Knobs, SimState
from wanflow.sim.uploads import Uploads
from wanflow.sim.vtrix import GATEWAY_PREFIX, Vtrix


def flip_bytes(data: bytes, rng: Any) -> bytes:
    """256 bytes inverted somewhere past the first quarter: right length, valid header, damaged content."""
    damaged = bytearray(data)
    if len(damaged) > 1024:
        start = rng.randrange(len(damaged) // 4, len(damaged) - 256)
        for index in range(start, start + 256):
            damaged[index] ^= 0xFF
    return bytes(damaged)


class FaultyBody(Response):
    """Announces ``length`` bytes, sends ``body`` (maybe fewer, maybe none), then drops the connection."""

    def __init__(self, body: bytes, length: int, media_type: str) -> None:
        super().__init__(media_type=media_type)
        self._part, self._length = body, length

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", (self.media_type or "application/octet-stream").encode()), (b"content-length", str(self._length).encode())]})
        if self._part:
            await send({"type": "http.response.body", "body": self._part, "more_body": True})
        raise ConnectionResetError("simulated download fault")


class Files:
    """Result downloads and the statistics page."""

    def __init__(self, state: SimState) -> None:
        self.state = state

    async def file(self, request: Request) -> Response:
        """A result file, until its URL expires (as presigned OSS URLs do)."""
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
        knobs = self.state.knobs
        if self.state.roll(knobs.reset_rate):
            self.state.stats["downloads_reset"] += 1
            return FaultyBody(b"", 0, entry.media_type)
        if self.state.roll(knobs.short_rate):
            self.state.stats["downloads_short"] += 1
            data = entry.path.read_bytes()
            return FaultyBody(data[: len(data) // 2], len(data), entry.media_type)
        if self.state.roll(knobs.corrupt_rate):
            self.state.stats["downloads_corrupted"] += 1
            return Response(flip_bytes(entry.path.read_bytes(), self.state.rng), media_type=entry.media_type)
        return FileResponse(entry.path, media_type=entry.media_type)

    async def stats(self, request: Request) -> Response:
        """Counters, task states and knobs, as JSON."""
        return JSONResponse(self.state.snapshot())


def create_app(knobs: Knobs | None = None, workdir: Path | None = None) -> tuple[Starlette, SimState]:
    """The ASGI app and its state (the state is also how tests read and change the knobs)."""
    state = SimState(knobs or Knobs(), workdir or Path(tempfile.mkdtemp(prefix="wanflow-sim-")))
    core = Core(state)
    vtrix, dashscope, uploads, files = Vtrix(core), DashScope(core), Uploads(core), Files(state)
    routes = []
    # Both vtrix dialects are routed; the one not selected answers 404 (the handlers check).
    for root in ("", GATEWAY_PREFIX):
        routes += [
            Route(root + "/model/v1/generation", vtrix.create, methods=["POST"]),
            Route(root + "/model/v1/generation/task/{task_id}", vtrix.task, methods=["GET"]),
        ]
    # Every create route a catalog model names (adding a model on a new route adds the route).
    paths = sorted({ids.path for model in load_catalog().models.values()
                    for name, ids in model.providers.items() if name == "dashscope" and ids.path})
    routes += [Route(PREFIX + path, dashscope.create, methods=["POST"]) for path in paths]
    checks = sorted({model.precheck.path for model in load_catalog().models.values() if model.precheck is not None})
    routes += [Route(PREFIX + path, dashscope.precheck, methods=["POST"]) for path in checks]
    routes += [
        Route(PREFIX + SYNC_PATH, dashscope.sync_generation, methods=["POST"]),
        Route(PREFIX + "/tasks/{task_id}/cancel", dashscope.cancel, methods=["POST"]),
        Route(PREFIX + "/tasks/{task_id}", dashscope.task, methods=["GET"]),
        Route(PREFIX + "/tasks", dashscope.list, methods=["GET"]),
        Route(PREFIX + "/uploads", uploads.get_policy, methods=["GET"]),
        Route("/_sim/oss", uploads.oss_post, methods=["POST"]),
        Route("/_sim/files/{token}/{name}", files.file, methods=["GET"]),
        Route("/_sim/stats", files.stats, methods=["GET"]),
    ]
    return Starlette(routes=routes), state
