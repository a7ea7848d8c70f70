"""Polling a task until it ends, and the GET calls behind it: retried on connection errors,
timeouts, 429 and 5xx with capped backoff (honouring Retry-After); UNKNOWN / 404 of a fresh task is
"not yet visible" for a bounded settling time. Mixed into ``RemoteProvider``."""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx

from wanflow._exceptions import ProviderError
from wanflow.pipelines.request import StepRequest
from wanflow.project.settings import ServiceConfig
from wanflow.providers.base import GenerationContext, TaskInfo
from wanflow.providers.durations import DurationBook, duration_key
from wanflow.providers.failures import classify
from wanflow.providers.policies import LearnedSchedule, RetryPolicy, fixed_poll_interval, parse_retry_after, poll_policy
from wanflow.providers.protocol import ServiceProtocol, TaskGone, TaskState

POLL_CAP = 100  # polls of one task before the pace slows down hard (a stuck task must not hammer the service)
VISIBILITY_POLLS = 5  # polls (over 7.5 s) of a listed candidate before it counts as another key's task


class TaskPolling:
    """Poll tasks and read JSON answers (needs the provider's protocol, config, retry policy, clock)."""

    name: str
    protocol: ServiceProtocol
    config: ServiceConfig
    retry: RetryPolicy
    durations: DurationBook
    settle_seconds: float
    _rng: random.Random
    _sleep: Callable[[float], Awaitable[None]]

    def _auth(self) -> dict[str, str]:
        """The headers every API call carries: the key, and the workspace where the user names one."""
        headers = {"Authorization": f"Bearer {self.config.require_key()}"}
        if self.config.workspace and self.protocol.spec.workspace_header:
            headers[self.protocol.spec.workspace_header] = self.config.workspace
        return headers

    async def _wait(self, client: httpx.AsyncClient, task_id: str, request: StepRequest, info: TaskInfo,
                    context: GenerationContext) -> TaskState:
        policy = poll_policy(request.model.kind)
        started = anyio.current_time()
        deadline = started + policy.deadline
        # A task this call submitted has a known start, so the learned schedule applies; a resumed
        # or adopted one is polled at the documents' pace. WANFLOW_POLL_INTERVAL fixes the pace.
        fresh = not info.get("resumed") and not info.get("adopted")
        key = duration_key(self.name, request)
        estimate = self.durations.get(key) if fresh and not fixed_poll_interval() else None
        schedule = LearnedSchedule(estimate.mean, estimate.deviation, policy.interval) if estimate else None
        if estimate is not None:
            context.log(f"expected to finish in about {estimate.mean:.0f} s (learned from {estimate.count} "
                        f"earlier {request.model.name} tasks)")
        poll = 0
        last_status = ""
        last_unfinished = 0.0  # seconds after the start of the last poll that saw the task unfinished
        unknown_words: set[str] = set()
        unseen_since: float | None = None
        while True:
            elapsed = anyio.current_time() - started
            delay = schedule.delay(poll, elapsed, self._rng) if schedule else policy.delay(poll, self._rng)
            if poll >= POLL_CAP:
                delay = max(delay, min(60.0, policy.interval * 2 ** ((poll - POLL_CAP) // 20 + 1)))
            await self._sleep(delay)
            poll += 1
            try:
                payload = await self._get_json(client, self.protocol.task_path(task_id, self.config.envelope), context, auth=True)
                state = self.protocol.task_state(payload, request)
            except TaskGone as gone:
                state = TaskState("gone", "not found", error_code=str(gone) or None)
            if state.status == "gone":
                # UNKNOWN / 404 on one answer is "not yet visible" (a fresh task can take a while to show):
                # keep polling, with the usual backoff, for a bounded settling time.
                now = anyio.current_time()
                unseen_since = now if unseen_since is None else unseen_since
                if now - unseen_since < self.settle_seconds:
                    if poll == 1 or state.raw_status != last_status:
                        context.log(f"task {task_id}: not visible yet ({state.error_code or state.raw_status}); "
                                    "polling on")
                        last_status = state.raw_status
                    continue
                info["polls"] = poll
                return state
            unseen_since = None
            if state.raw_status != last_status:
                context.log(f"task {task_id}: {state.raw_status or '(no status)'}")
                last_status = state.raw_status
            if not state.recognized and state.raw_status not in unknown_words:
                # Public clients show words the documents do not; an unknown one is not an ending.
                unknown_words.add(state.raw_status)
                warning = (f"{self.name} answered task {task_id} with the status word '{state.raw_status or '(none)'}', "
                           "which wanflow does not know; treating it as still running")
                context.log(warning)
                info.setdefault("warnings", []).append(warning)
            now = anyio.current_time() - started
            if state.terminal:
                info["polls"] = poll
                if state.status == "succeeded" and fresh:
                    # The service's own times when it reports them; else the middle of the last gap.
                    seconds = state.service_seconds if state.service_seconds is not None else (last_unfinished + now) / 2
                    self.durations.record(key, seconds)
                return state
            last_unfinished = now
            if anyio.current_time() > deadline:
                raise ProviderError(
                    f"task {task_id} was still {state.raw_status} after {policy.deadline / 60:.0f} min; "
                    "stopped waiting (the task id is in the run record)", retryable=True)

    async def _visible(self, client: httpx.AsyncClient, task_id: str, context: GenerationContext) -> bool:
        """Whether this key can see ``task_id`` (a candidate it cannot see is another key's). A fresh
        task may answer UNKNOWN / 404 for its first polls, so a few are tried, with backoff."""
        for attempt in range(VISIBILITY_POLLS):
            if attempt:
                await self._sleep(0.5 * 2 ** (attempt - 1))
            try:
                payload = await self._get_json(client, self.protocol.task_path(task_id, self.config.envelope), context,
                                               auth=True)
            except TaskGone:
                continue
            if self.protocol.visible(payload):
                return True
        return False

    async def _get_json(self, client: httpx.AsyncClient, path: str, context: GenerationContext, auth: bool,
                        params: dict[str, str] | None = None) -> Any:
        for attempt in range(1, self.retry.attempts + 1):
            try:
                response = await client.get(path, headers=self._auth() if auth else None, params=params)
            except httpx.TransportError as error:
                await self._backoff(attempt, None, context, f"poll: {type(error).__name__}")
                continue
            if response.status_code == 429 or response.status_code >= 500:
                retry_after = parse_retry_after(response.headers.get("Retry-After"), time.time())
                await self._backoff(attempt, retry_after, context, f"poll: HTTP {response.status_code}")
                continue
            payload = _json(response)
            if not response.is_success:
                code, message = self.protocol.error_of(payload)
                # A 404 whose body names no code (a string error, a gateway page) is "not found" too.
                if response.status_code in (404, 410) and (code in self.protocol.spec.gone_codes or code is None):
                    raise TaskGone(code)
                raise ProviderError(f"poll refused with HTTP {response.status_code}: {classify(code, message).describe()}",
                                    code=code)
            return payload
        raise ProviderError(f"could not read the task status after {self.retry.attempts} attempts", retryable=True)

    async def _backoff(self, attempt: int, retry_after: float | None, context: GenerationContext, what: str) -> None:
        await self._retry_wait(attempt, retry_after, context, what)

    async def _retry_wait(self, attempt: int, retry_after: float | None, context: GenerationContext, what: str) -> bool:
        """Wait before retry ``attempt + 1``; False (without waiting) when the attempts are used up."""
        if attempt >= self.retry.attempts:
            return False
        delay = self.retry.delay(attempt, self._rng, retry_after)
        context.log(f"{what}; retrying in {delay:.1f}s")
        await self._sleep(delay)
        return True


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return {"message": response.text[:200]}
