"""Checks a model documents before its paid create: the region that serves it, and a cheap
synchronous pre-check of an input (wan2.2-s2v's face check, ``wan2.2-s2v-detect``).

A failed check stops the step before the paid create is sent; a check the service could not
answer (a transport error, a 5xx) is retryable: the paid create was not sent either way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import httpx

from wanflow._exceptions import ProviderError
from wanflow.catalog.loader import load_catalog
from wanflow.pipelines.request import StepRequest
from wanflow.providers.protocol import CreateCall

PRECHECK_SECONDS = 60


def region_problem(request: StepRequest, service: str, base_url: str) -> str | None:
    """Why ``base_url`` cannot serve the model, when it is a known region outside the model's regions.

    A base URL that is no known region (a proxy, the simulator) is taken at its word."""
    ids = request.model.providers.get(service)
    if ids is None or not ids.regions:
        return None
    known = load_catalog().services[service].regions  # every spelling of a region -> its URL
    serving = {known[region] for region in ids.regions if region in known}
    base = base_url.rstrip("/")
    if base in {url.rstrip("/") for url in known.values()} and base not in {url.rstrip("/") for url in serving}:
        return (f"{request.model.name} is served only in the {', '.join(ids.regions)} region, and the configured "
                f"DashScope URL {base} is another region's: set region = \"{ids.regions[0]}\" under "
                "[providers.dashscope] (with a key of that region); nothing was sent")
    return None


async def run_precheck(client: httpx.AsyncClient, service: str, request: StepRequest, call: CreateCall,
                       auth: dict[str, str], log: Callable[[str], None]) -> dict[str, Any] | None:
    """Run the model's pre-check on the input as the create will send it; its record, or None
    when the model has none. Raises ProviderError when the check fails or cannot be made."""
    check = request.model.precheck
    if check is None or service != "dashscope":
        return None
    value = call.body.get("input", {}).get(check.field)
    headers = {**auth, **{k: v for k, v in call.headers.items() if k.lower() != "x-dashscope-async"}}
    body = {"model": check.model, "input": {check.field: value}}
    try:
        with anyio.fail_after(PRECHECK_SECONDS):
            response = await client.post(check.path, json=body, headers=headers)
    except (httpx.TransportError, TimeoutError) as error:
        raise ProviderError(f"the {check.model} pre-check could not be made ({type(error).__name__}); the paid "
                            f"{request.model.name} create was not sent", code="precheck-unanswered", retryable=True) from None
    try:
        payload = response.json()
    except ValueError:
        payload = {}
    output = payload.get("output", {}) if isinstance(payload, dict) else {}
    if not response.is_success:
        code = payload.get("code") if isinstance(payload, dict) else None
        raise ProviderError(f"the {check.model} pre-check was refused (HTTP {response.status_code}: "
                            f"{payload.get('message', '') if isinstance(payload, dict) else ''}); the paid "
                            f"{request.model.name} create was not sent", code=code or "precheck-refused",
                            retryable=response.status_code >= 500)
    if not isinstance(output, dict) or output.get(check.passed) is not True:
        raise ProviderError(f"{check.input} did not pass the {check.model} check ({check.passed}: "
                            f"{output.get(check.passed) if isinstance(output, dict) else None}"
                            + (f", humanoid: {output['humanoid']}" if isinstance(output, dict) and "humanoid" in output else "")
                            + f"); the paid {request.model.name} create was not sent: use a clear, front-facing "
                            "portrait", code="precheck-failed")
    log(f"{check.input} passed the {check.model} check (~${check.usd:g})")
    return {"model": check.model, "passed": True, "cost_usd": check.usd}
