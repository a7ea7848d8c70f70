"""vtrix, in the two dialects public material shows.

documented (default): ``POST /model/v1/generation`` with ``{"model", "input": {...}, "parameters": {...}}``
    and ``GET /model/v1/generation/task/{id}``, task bodies as the model pages describe them.
gateway: the vendor CLI's envelope ``{"model": M, "input": [{"params": {"input": {...}, "parameters": {...}}}]}``
    on the gateway host (here under ``/gateway``), task bodies shaped like the CLI's ``TaskStatus``.

Only the selected dialect answers: the other one's routes are 404, and each route refuses the
other dialect's envelope with 400.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from wanflow.catalog.pricing import list_price
from wanflow.sim.codes import internal_error_code
from wanflow.sim.core import Core, base_url, lost_answer, lost_request
from wanflow.sim.envelopes import Rejection, vtrix_error, vtrix_task_error
from wanflow.sim.inputs import Caller
from wanflow.sim.requests import interpret
from wanflow.sim.state import SimTask
from wanflow.sim.words import vtrix_word

GATEWAY_PREFIX = "/gateway"


def _dialect_of(request: Request) -> str:
    return "gateway" if request.url.path.startswith(GATEWAY_PREFIX + "/") else "documented"


def _documented_body(body: Any, dialect: str) -> Any:
    """The create body in the documented envelope; Rejection when it is the other dialect's."""
    if not isinstance(body, dict):
        raise Rejection(400, "InvalidParameter", "request body must be a JSON object")
    body_input = body.get("input")
    if dialect == "documented":
        return body  # a gateway envelope here fails as "Missing required field input" (input is not an object)
    if not isinstance(body_input, list) or len(body_input) != 1 or not isinstance(body_input[0], dict) \
            or not isinstance(body_input[0].get("params"), dict):
        raise Rejection(400, "InvalidParameter", "input must be a list holding one {\"params\": {...}} block")
    params = body_input[0]["params"]
    if not isinstance(params.get("input"), dict):
        raise Rejection(400, "InvalidParameter", "params.input must be an object (input.messages / prompt, img_url)")
    documented = {"model": body.get("model"), "input": params["input"]}
    if "parameters" in params:
        documented["parameters"] = params["parameters"]
    return documented


def usage_numbers(task: SimTask, results: list[dict[str, Any]]) -> tuple[int, float, float]:
    """What was delivered and billed: (quantity, unit price, cost), from the catalog's price rule."""
    model, params = task.request.model, task.request.params
    price = model.price
    if price is not None and price.per == "second":
        quantity = int(params.get(price.count_param, 1))
    else:
        quantity = sum(1 for result in results if result["field"] == "image")
    count_param = price.mode_counts.get(model.mode_name(params), price.count_param) if price else "n"
    unit = list_price(model, {**params, count_param: 1}).usd
    return quantity, unit, round(quantity * unit, 6)


class Vtrix:
    """The vtrix routes, bound to the simulator's core."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.state = core.state

    def _error(self, rejection: Rejection) -> JSONResponse:
        return vtrix_error(self.state.knobs.error_shape, rejection.status, rejection.code, rejection.message,
                           rejection.headers)

    def _word(self, task: SimTask, status: str) -> str:
        return vtrix_word(self.state.knobs.status_words, status, task.request.model.video, self.state.rng)

    def _with_status(self, body: dict[str, Any], word: str, output: list[dict[str, Any]] | None) -> dict[str, Any]:
        """Put the status where the knob says: top level (default) or only in output[0].status."""
        if self.state.knobs.status_in_output:
            group = output[0] if output else {}
            body["output"] = [{"status": word, **group}]
        else:
            body["status"] = word
            if output is not None:
                body["output"] = output
        return body

    async def create(self, request: Request) -> Response:
        """``POST [/gateway]/model/v1/generation``."""
        dialect = _dialect_of(request)
        if dialect != self.state.knobs.vtrix_dialect:
            return PlainTextResponse("Not Found", status_code=404)
        try:
            key = self.core.gate(request, create=True)
            try:
                raw = await request.json()
            except ValueError:
                raise Rejection(400, "InvalidParameter", "request body is not JSON") from None
            body = _documented_body(raw, dialect)
            caller = Caller("vtrix", key, base_url(request))
            interpreted = await anyio.to_thread.run_sync(interpret, caller, None, body, self.state)
        except Rejection as rejection:
            if rejection.status == 400:
                self.state.stats["rejected"] += 1
            return self._error(rejection)
        lost_in = lost_request(self.state)
        if lost_in is not None:
            return lost_in
        task = self.state.new_task("vtrix", interpreted.model.name, interpreted.provider_model, raw,
                                   interpreted.request, api_key=key)
        task.cost_usd = list_price(interpreted.model, interpreted.request.params).usd
        lost = lost_answer(self.state)
        if lost is not None:
            return lost
        word = self._word(task, self.state.status(task))
        if dialect == "gateway":
            answer: dict[str, Any] = {"id": task.task_id, "model": task.provider_model,
                                      "created_at": int(task.created_at), "progress": 0}
        else:
            answer = {"id": task.task_id, "request_id": task.request_id}
        return JSONResponse(self._with_status(answer, word, None))

    async def task(self, request: Request) -> Response:
        """``GET [/gateway]/model/v1/generation/task/{id}``."""
        dialect = _dialect_of(request)
        if dialect != self.state.knobs.vtrix_dialect:
            return PlainTextResponse("Not Found", status_code=404)
        try:
            key = self.core.gate(request, poll=True)
        except Rejection as rejection:
            return self._error(rejection)
        self.state.stats["polls"] += 1
        task = self.state.tasks.get(request.path_params["task_id"])
        if task is None or task.protocol != "vtrix" or task.api_key != key or self.state.hidden(task):
            return self._error(Rejection(404, "TaskNotFound", "task not found"))
        status = self.state.status(task)
        results = await self.core.results(task, base_url(request)) if status == "SUCCEEDED" else None
        if results is not None:
            # An empty success returns nothing; partial failures leave images out (vtrix reports no per-image code).
            failed = min(self.state.knobs.partial_failures, len(results) - 1) if len(results) > 1 else 0
            results = [] if task.empty else results[:len(results) - failed]
        if dialect == "gateway":
            body = self._gateway_body(task, status, results)
        else:
            body = self._documented_body(task, status, results)
        if status == "FAILED":
            body["error"] = vtrix_task_error(self.state.knobs.error_shape, internal_error_code(task.provider_model),
                                             "Internal generation error (injected)")
        return JSONResponse(body)

    def _documented_body(self, task: SimTask, status: str, results: list[dict[str, Any]] | None) -> dict[str, Any]:
        body: dict[str, Any] = {"id": task.task_id, "jobId": task.task_id,
                                "metadata": {"model": task.provider_model, "request_id": task.request_id}}
        output = None
        if results is not None:
            output = [{"content": [{"type": r["field"], **({"text": r["text"]} if "text" in r else {"url": r["url"]})}
                                   for r in results]}]
            images = sum(1 for r in results if r["field"] == "image")
            _, _, cost = usage_numbers(task, results)
            body["usage"] = {"cost": f"{cost:.4f}", "discount": 0, "image_count": images}
        return self._with_status(body, self._word(task, status), output)

    def _gateway_body(self, task: SimTask, status: str, results: list[dict[str, Any]] | None) -> dict[str, Any]:
        """The vendor CLI's TaskStatus: id, status, model, progress (0-1), created_at (unix), output, usage."""
        body: dict[str, Any] = {"id": task.task_id, "model": task.provider_model, "created_at": int(task.created_at),
                                "progress": round(self.state.progress(task, time.time()), 3)}
        output = None
        if results is not None:
            params = task.request.params
            content: list[dict[str, Any]] = []
            for index, result in enumerate(results):
                if result["field"] == "text":
                    content.append({"type": "text", "text": result["text"]})
                elif result["field"] == "video":
                    # duration is a string in the CLI's OutputContent.
                    content.append({"type": "video", "url": result["url"], "duration": str(params.get("duration", "")),
                                    "id": f"{task.task_id}-{index}"})
                else:
                    content.append({"type": "image", "url": result["url"], "id": f"{task.task_id}-{index}",
                                    "img_id": index + 1})
            output = [{"content": content}]
            quantity, unit, cost = usage_numbers(task, results)
            extra = {name: params[name] for name in ("resolution", "duration", "size") if name in params}
            body["usage"] = {"cost": f"{cost:.4f}", "quantity": quantity, "unit_price": f"{unit:.4f}", "extra_info": extra}
        return self._with_status(body, self._word(task, status), output)
