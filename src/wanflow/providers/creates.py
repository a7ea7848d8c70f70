"""The create call: sent again only when the service said it made nothing (docs/decisions.md,
"Create answers"). Mixed into ``RemoteProvider``."""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import httpx

from wanflow._exceptions import ProviderError
from wanflow.project.settings import ServiceConfig
from wanflow.providers.base import GenerationContext, TaskInfo
from wanflow.providers.failures import classify
from wanflow.providers.policies import RetryPolicy, parse_retry_after
from wanflow.providers.protocol import CreateCall, ServiceProtocol

CREATE_READ_TIMEOUT = 300.0  # seconds a create waits for its answer (the official SDKs wait as long)
THROTTLE_PATIENCE = 30 * 60  # seconds a create waits out 429s before it gives up (nothing is lost then)


class CreateCalls:
    """Send create calls (needs the provider's protocol, retry policy, sleep and auth)."""

    protocol: ServiceProtocol
    config: ServiceConfig
    retry: RetryPolicy
    _rng: random.Random
    _sleep: Callable[[float], Awaitable[None]]
    _timeout: float

    if TYPE_CHECKING:  # supplied by the other parts of RemoteProvider

        def _auth(self) -> dict[str, str]:
            ...

        async def _retry_wait(self, attempt: int, retry_after: float | None, context: GenerationContext, what: str) -> bool:
            ...

    async def _create(self, client: httpx.AsyncClient, call: CreateCall, info: TaskInfo,
                      context: GenerationContext, token_taken: bool = False) -> str:
        """Send the create call until the service answers with a task id or says it made none.

        Sent again only after an answer that proves no task was made (``protocol.not_created``: a
        coded 4xx refusal, a 503 "not accepted", a connection that never opened). 429 is not a
        failure but a pace: it slows the provider and model's submit rate (``context.on_throttled``)
        and is waited out for up to THROTTLE_PATIENCE. Any other answer after the request left (500,
        502, 504, an HTML or empty body, a 2xx without a task id, a read timeout, a reset) raises
        ``create-outcome-unknown``: the caller reconciles and never resends on its own.
        ``token_taken``: the caller already waited for the first attempt's submit token.
        """
        headers = {**self._auth(), "Content-Type": "application/json", **call.headers}
        attempt, throttled = 0, 0
        patience_ends = time.monotonic() + THROTTLE_PATIENCE
        # The SDKs wait up to 300 s for a create answer; a slow answer must not be lost to a short timeout.
        timeout = httpx.Timeout(self._timeout, read=max(self._timeout, CREATE_READ_TIMEOUT))
        while True:
            if context.before_create is not None and not token_taken:
                await context.before_create()  # the provider's submit rate
            token_taken = False
            sent_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            try:
                response = await client.post(call.path, json=call.body, headers=headers, timeout=timeout)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as error:
                # Nothing reached the service: safe to try again.
                attempt += 1
                if await self._retry_wait(attempt, None, context, f"create: could not connect ({type(error).__name__})"):
                    continue
                break
            except httpx.TransportError as error:
                raise _outcome_unknown(call, sent_at, f"its answer was lost ({type(error).__name__})") from None
            payload = _json_or_none(response)
            request_id = self.protocol.request_id(payload)
            if request_id:
                info["request_ids"].append(request_id)
            task_id, _ = self.protocol.created(payload)
            if task_id:
                info["task_ids"].append(task_id)
                context.log(f"submitted task {task_id} (request_id {request_id or '-'})")
                if context.on_accepted is not None:
                    context.on_accepted()
                return task_id
            code, message = self.protocol.error_of(payload) if payload is not None else (None, "")
            retry_after = parse_retry_after(response.headers.get("Retry-After"), time.time())
            if response.status_code == 429:
                throttled += 1
                if context.on_throttled is not None:
                    context.on_throttled()
                if time.monotonic() < patience_ends:
                    delay = self.retry.delay(min(throttled, 6), self._rng, retry_after)
                    context.log(f"create: throttled ({code or 'HTTP 429'}); slowing down, next try in {delay:.1f}s")
                    await self._sleep(delay)
                    continue
                raise ProviderError(f"the service throttled every create for {THROTTLE_PATIENCE / 60:.0f} min "
                                    f"({throttled} times); no task was created", code=code, retryable=True)
            if not self.protocol.not_created(response.status_code, code if payload is not None else None):
                body = "an empty body" if not response.content else "a JSON body" if payload is not None else \
                    f"a {response.headers.get('content-type', 'non-JSON').split(';')[0]} body"
                what = "no task id" if response.is_success else f"{code or 'no error code'}"
                raise _outcome_unknown(call, sent_at, f"the service answered HTTP {response.status_code} with {body} "
                                                      f"({what}, request_id {request_id or '-'})")
            if response.status_code >= 500:
                attempt += 1
                if await self._retry_wait(attempt, retry_after, context,
                                          f"create: HTTP {response.status_code} {code} (not accepted; request_id "
                                          f"{request_id or '-'})"):
                    continue
                break
            failure = classify(code or ("InvalidApiKey" if response.status_code == 401 else None), message)
            raise ProviderError(f"HTTP {response.status_code}: {failure.describe()} (request_id {request_id or '-'})",
                                code=failure.code)
        raise ProviderError(f"the service kept refusing the create call after {attempt} attempts "
                            "(no task was created)", retryable=True)


def _outcome_unknown(call: CreateCall, sent_at: str, what: str) -> ProviderError:
    return ProviderError(f"the create call was sent at {sent_at} but {what}; a billed task may exist, so it was not "
                         f"resent (request fingerprint {call.fingerprint[:16]})", code="create-outcome-unknown")


def _json_or_none(response: httpx.Response) -> Any:
    """The answer's JSON; None for an empty, HTML or otherwise unreadable body."""
    try:
        return response.json()
    except ValueError:
        return None
