"""Checks a model documents before its paid create: the region that serves it, and a cheap
synchronous pre-check of an input (wan2.2-s2v's face check, ``wan2.2-s2v-detect``).

A failed check stops the step before the paid create is sent; a check the service could not
answer (a transport error, a 429, a 5xx, an unreadable answer) is retryable: the paid create was
not sent either way. The check takes its input as a public URL or as an upload made for the check's
own model (an upload serves one model only, and the check takes no inline ``data:`` URI).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import httpx

from wanflow._exceptions import ProviderError
from wanflow.catalog.loader import load_catalog
from wanflow.catalog.spec import ModelSpec
from wanflow.pipelines.request import StepRequest
from wanflow.providers.protocol import CreateCall

PRECHECK_SECONDS = 60


def region_problem(model: ModelSpec, service: str, base_url: str) -> str | None:
    """Why ``base_url`` cannot serve ``model``, when it is a known region outside the model's regions.

    A base URL that is no known region (a proxy, the simulator) is taken at its word."""
    ids = model.providers.get(service)
    if ids is None or not ids.regions:
        return None
    known = load_catalog().services[service].regions  # every spelling of a region -> its URL
    serving = {known[region] for region in ids.regions if region in known}
    base = base_url.rstrip("/")
    if base in {url.rstrip("/") for url in known.values()} and base not in {url.rstrip("/") for url in serving}:
        return (f"{model.name} is served only in the {', '.join(ids.regions)} region, and the configured "
                f"DashScope URL {base} is another region's: set region = \"{ids.regions[0]}\" under "
                "[providers.dashscope] (with a key of that region); nothing was sent")
    return None


async def run_precheck(client: httpx.AsyncClient, request: StepRequest, call: CreateCall, value: str,
                       headers: dict[str, str], log: Callable[[str], None]) -> dict[str, Any]:
    """Run the model's pre-check on ``value`` (its checked input, encoded for the check's own model
    by the caller); the check's record. Raises ProviderError when it fails or cannot be made:
    only an answer that says it passed lets the paid create go."""
    check = request.model.precheck
    assert check is not None
    sent_headers = {**{k: v for k, v in call.headers.items() if k.lower() != "x-dashscope-async"}, **headers}
    body = {"model": check.model, "input": {check.field: value}}
    try:
        with anyio.fail_after(PRECHECK_SECONDS):
            response = await client.post(check.path, json=body, headers=sent_headers)
    except (httpx.TransportError, TimeoutError) as error:
        raise ProviderError(f"the {check.model} pre-check could not be made ({type(error).__name__}); the paid "
                            f"{request.model.name} create was not sent", code="precheck-unanswered", retryable=True) from None
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if not response.is_success:
        code = payload.get("code") if isinstance(payload, dict) else None
        message = payload.get("message", "") if isinstance(payload, dict) else ""
        raise ProviderError(f"the {check.model} pre-check was refused (HTTP {response.status_code}: {message}); "
                            f"the paid {request.model.name} create was not sent", code=code or "precheck-refused",
                            retryable=response.status_code == 429 or response.status_code >= 500)
    output = payload.get("output") if isinstance(payload, dict) else None
    if not isinstance(output, dict) or check.passed not in output:
        raise ProviderError(f"the {check.model} pre-check answered without {check.passed} (an unreadable answer); the "
                            f"paid {request.model.name} create was not sent: rerun to check again",
                            code="precheck-unreadable", retryable=True)
    if output[check.passed] is not True:
        humanoid = f", humanoid: {output['humanoid']}" if "humanoid" in output else ""
        raise ProviderError(f"{check.input} did not pass the {check.model} check ({check.passed}: "
                            f"{output[check.passed]}{humanoid}); the paid {request.model.name} create was not sent: "
                            "use a clear, front-facing portrait", code="precheck-failed")
    log(f"{check.input} passed the {check.model} check (~${check.usd:g})")
    return {"model": check.model, "passed": True, "cost_usd": check.usd}
