"""The submit → poll → download engine shared by the paid Wan services.

A service module (``dashscope``, ``vtrix``) supplies a ``Protocol``: how to shape the create
call and how to read its answers. This module owns what the users' money rides on:

- A create call is retried only when it provably did not create a task: it failed before the
  request was sent, or got a definite error answer (429, 5xx) without a task id. A create whose
  response was lost (read timeout, reset connection) is never resent: a billed task may exist.
- Polls and downloads are retried on connection errors, timeouts, 429 and 5xx, with capped
  exponential backoff and jitter, honouring Retry-After.
- Results are downloaded the moment a task succeeds, streamed to disk, size- and
  scheme-limited, with no Authorization header (result URLs are presigned).
- Failures are classified; only internal errors lead to a bounded number of new tasks.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Awaitable, Callable, Literal

import anyio
import anyio.lowlevel
import httpx

from wanflow._exceptions import ProviderError
from wanflow.artifacts import Artifact, RemoteInput
from wanflow.catalog.pricing import list_price
from wanflow.pipelines.resolve import StepRequest
from wanflow.providers.base import GenerationContext, GenerationResult, ProducedFile
from wanflow.providers.config import ServiceConfig
from wanflow.providers.failures import classify
from wanflow.providers.policies import RetryPolicy, parse_retry_after, poll_policy

TaskStatus = Literal["queued", "running", "succeeded", "failed", "canceled", "unknown"]

RESULT_URL_LIFETIME = 24 * 3600
URL_SAFETY_MARGIN = 3600  # pass an upstream URL along only while it has an hour to live
MAX_DOWNLOAD_BYTES = 512 * 1024 * 1024
MAX_TASK_ATTEMPTS = 3  # one task, plus two new ones after internal failures
# Keep every pooled connection alive: httpcore closes idle connections whenever the pool holds
# more than max_keepalive, so a lower keep-alive bound means a new TCP (and TLS) handshake per
# request in a busy batch. Eight connections carry the documented task limits with room to spare;
# httpcore's pool checks every connection on every request, so more of them cost CPU per request
# in a large batch without adding throughput (requests beyond them wait for a free one).
CONNECTION_LIMITS = httpx.Limits(max_connections=8, max_keepalive_connections=8, keepalive_expiry=30)
_EXTENSIONS = {"images": ".png", "video": ".mp4", "text": ".txt"}


@dataclass
class RemoteOutput:
    """One result item: an image or video URL, or a piece of text."""

    field: str  # images | video | text
    url: str | None = None
    text: str | None = None


@dataclass
class TaskState:
    """A task as the service describes it, in wanflow's vocabulary."""

    status: TaskStatus
    raw_status: str
    outputs: list[RemoteOutput] = field(default_factory=list)
    error_code: str | None = None
    error_message: str | None = None
    cost_usd: float | None = None
    partial_failures: list[str] = field(default_factory=list)

    @property
    def terminal(self) -> bool:
        return self.status in ("succeeded", "failed", "canceled", "unknown")


@dataclass(frozen=True)
class CreateCall:
    """A create request: path under the base URL, JSON body, extra headers."""

    path: str
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    @cached_property
    def fingerprint(self) -> str:
        """sha256 of the canonical body: names the request in messages and journals."""
        text = json.dumps(self.body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


class ServiceProtocol:
    """What differs between services. Subclasses fill these in."""

    name = "service"
    status_words: dict[str, TaskStatus] = {}

    def create_call(self, request: StepRequest, inputs: dict[str, list[str]]) -> CreateCall:
        raise NotImplementedError

    def created(self, payload: Any) -> tuple[str | None, str | None]:
        """(task id, request id) from a create answer."""
        raise NotImplementedError

    def task_path(self, task_id: str) -> str:
        raise NotImplementedError

    def task_state(self, payload: Any, request: StepRequest) -> TaskState:
        raise NotImplementedError

    def error_of(self, payload: Any) -> tuple[str | None, str]:
        """(code, message) of an error answer."""
        if isinstance(payload, dict):
            error = payload.get("error") if isinstance(payload.get("error"), dict) else payload
            return (str(error.get("code")) if error.get("code") is not None else None, str(error.get("message", "")))
        return None, str(payload)[:200]

    def request_id(self, payload: Any) -> str | None:
        return payload.get("request_id") if isinstance(payload, dict) else None

    def cancel_path(self, task_id: str) -> str | None:
        """Where to cancel a queued task; None when the service cannot."""
        return None

    async def find_tasks(self, client: httpx.AsyncClient, auth: dict[str, str], request: StepRequest,
                         sent_at: float) -> list[str] | None:
        """Task ids that a create sent at ``sent_at`` may have made; None when the service cannot say."""
        return None

    def status(self, word: Any) -> TaskStatus:
        return self.status_words.get(str(word or "").strip(), "unknown")


Sleep = Callable[[float], Awaitable[None]]


class RemoteProvider:
    """A paid Wan service behind the Provider interface."""

    paid = True

    def __init__(
        self,
        protocol: ServiceProtocol,
        config: ServiceConfig,
        *,
        retry: RetryPolicy | None = None,
        sleep: Sleep | None = None,
        rng: random.Random | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.protocol = protocol
        self.config = config
        self.name = protocol.name
        self.cache_salt = f"{protocol.name}:v1"
        self.retry = retry or RetryPolicy()
        self._sleep = sleep or anyio.sleep
        self._rng = rng or random.Random()
        self._transport = transport
        self._timeout = timeout
        self._clients_pair: tuple[httpx.AsyncClient, httpx.AsyncClient] | None = None
        self._clients_loop: object = None

    def _clients(self) -> tuple[httpx.AsyncClient, httpx.AsyncClient]:
        """One API client and one download client per provider and event loop.

        Creating a client builds an SSL context (~40 ms); a batch of thousands of steps must not
        pay that per step.
        """
        loop = anyio.lowlevel.current_token()
        if self._clients_pair is None or self._clients_loop != loop:
            self._clients_pair = (self._client(), self._client(downloads=True))
            self._clients_loop = loop
        return self._clients_pair

    def check_ready(self) -> None:
        """Raise a UsageError now, before anything runs, if a call would need a missing key."""
        self.config.require_key()

    async def aclose(self) -> None:
        """Close the HTTP clients (idempotent)."""
        if self._clients_pair is not None:
            for client in self._clients_pair:
                await client.aclose()
            self._clients_pair = None

    # --- the whole task ------------------------------------------------------------------------

    async def generate(self, request: StepRequest, context: GenerationContext) -> GenerationResult:
        """Submit (or resume), wait for and download one generation."""
        inputs = self._encode_inputs(request, context)
        call = self.protocol.create_call(request, inputs)
        info: dict[str, Any] = {"request_ids": [], "task_ids": [], "request_fingerprint": call.fingerprint}
        api, downloads = self._clients()
        task_id = await self._recover(api, call, request, info, context)
        for attempt in range(1, MAX_TASK_ATTEMPTS + 1):
            if task_id is None:
                task_id = await self._submit(api, call, request, info, context)
            state = await self._wait_or_cancel(api, task_id, request, info, context)
            if state.status == "succeeded":
                break
            if state.status == "unknown":
                _clear(context)
                raise ProviderError(f"task {task_id} is unknown to the service (expired after 24 h, or never existed); "
                                    "its result cannot be fetched", code=state.error_code)
            failure = classify(state.error_code, state.error_message or state.raw_status)
            if not failure.retryable or attempt == MAX_TASK_ATTEMPTS:
                _clear(context)
                raise ProviderError(f"task {task_id} {state.raw_status}: {failure.describe()}", code=failure.code,
                                    retryable=failure.retryable)
            context.log(f"task {task_id} failed internally ({failure.code}); submitting a new task "
                        f"(attempt {attempt + 1} of {MAX_TASK_ATTEMPTS})")
            task_id = None
        files = await self._download_all(downloads, state, context)
        info["task_id"] = info["task_ids"][-1]
        info["urls_expire_at"] = time.time() + RESULT_URL_LIFETIME - URL_SAFETY_MARGIN
        info["cost_usd"], info["cost_source"] = self._cost(state, request)
        warnings = []
        if state.partial_failures:
            info["partial_failures"] = state.partial_failures
            warnings.append(f"{len(state.partial_failures)} of the requested images failed: " + "; ".join(state.partial_failures))
        return GenerationResult(files=files, info=info, warnings=warnings)

    # --- the journal: never pay twice ----------------------------------------------------------

    async def _recover(self, client: httpx.AsyncClient, call: CreateCall, request: StepRequest, info: dict[str, Any],
                       context: GenerationContext) -> str | None:
        """A task an earlier run already paid for, or None when it is safe to create one."""
        journal = context.journal
        entry = journal.pending() if journal is not None else None
        if entry is None:
            return None
        sent = _when(entry.intent_at)
        if entry.task_id:
            if entry.expired:
                if context.resubmit_unknown:
                    context.log(f"task {entry.task_id} from {sent} is past the 24 h validity; submitting anew (--resubmit-unknown)")
                    journal.clear()
                    return None
                raise ProviderError(f"task {entry.task_id}, submitted at {sent}, is past the services' 24 h validity: its "
                                    "result is gone. Run with --resubmit-unknown to pay for a new one", code="task-expired")
            context.log(f"resuming task {entry.task_id} submitted at {sent} (not creating a new one)")
            info["task_ids"].append(entry.task_id)
            info["request_ids"].extend(entry.request_ids)
            info["resumed"] = True
            return entry.task_id
        # An earlier create was sent but its answer never recorded.
        adopted = await self._reconcile(client, entry, request, context)
        if adopted is not None:
            journal.submitted(entry, adopted, None)
            info["task_ids"].append(adopted)
            info["adopted"] = True
            return adopted
        return None

    async def _submit(self, client: httpx.AsyncClient, call: CreateCall, request: StepRequest, info: dict[str, Any],
                      context: GenerationContext) -> str:
        journal = context.journal
        entry = journal.intent(call.fingerprint) if journal is not None else None
        try:
            task_id = await self._create(client, call, info, context)
        except ProviderError as error:
            if error.code != "create-outcome-unknown":
                if journal is not None:
                    journal.clear()  # a definite refusal: nothing was created
                raise
            if entry is None:
                raise
            adopted = await self._reconcile(client, entry, request, context, lost=str(error))
            if adopted is None:
                if not context.resubmit_unknown:
                    raise
                context.log("the lost create left no task the service lists; submitting again")
                return await self._submit(client, call, request, info, context)
            task_id = adopted
            info["task_ids"].append(adopted)
            info["adopted"] = True
        if entry is not None:
            journal.submitted(entry, task_id, info["request_ids"][-1] if info["request_ids"] else None)
        return task_id

    async def _reconcile(self, client: httpx.AsyncClient, entry: Any, request: StepRequest, context: GenerationContext,
                         lost: str | None = None) -> str | None:
        """Find the task a create of unknown outcome made; None when there provably is none.

        Raises when the service offers no way to know (vtrix) and the user has not allowed a
        resubmission, or when several tasks could be the one.
        """
        sent = _when(entry.intent_at)
        candidates = await self.protocol.find_tasks(client, self._auth(), request, entry.intent_at)
        if candidates is None:
            if context.resubmit_unknown:
                context.log(f"the create sent at {sent} has an unknown outcome; resubmitting (--resubmit-unknown)")
                context.journal.clear()
                return None
            raise ProviderError(
                (lost + ". " if lost else "") +
                f"A create call for this step was sent at {sent} (request fingerprint {entry.fingerprint[:16]}) and its "
                f"outcome is unknown; {self.name} has no task list to check, so wanflow will not risk paying twice. "
                "Run with --resubmit-unknown to submit it again", code="create-outcome-unknown")
        fresh = [task for task in candidates if task not in context.journal.claimed_task_ids()]
        if len(fresh) == 1:
            context.log(f"the create sent at {sent} did make task {fresh[0]}; adopting it instead of creating another")
            return fresh[0]
        if not fresh:
            context.log(f"the create sent at {sent} made no task the service lists; it is safe to create one")
            context.journal.clear()
            return None
        raise ProviderError(f"a create sent at {sent} has an unknown outcome and {len(fresh)} tasks could be it "
                            f"({', '.join(fresh[:4])}); not guessing. Run with --resubmit-unknown to submit anew",
                            code="create-outcome-unknown")

    async def _wait_or_cancel(self, client: httpx.AsyncClient, task_id: str, request: StepRequest, info: dict[str, Any],
                              context: GenerationContext) -> TaskState:
        try:
            return await self._wait(client, task_id, request, info, context)
        except anyio.get_cancelled_exc_class():
            if context.cancel_on_interrupt:
                with anyio.CancelScope(shield=True):
                    await self._cancel(client, task_id, context)
            raise

    async def _cancel(self, client: httpx.AsyncClient, task_id: str, context: GenerationContext) -> None:
        path = self.protocol.cancel_path(task_id)
        if path is None:
            context.log(f"{self.name} cannot cancel tasks; task {task_id} keeps running and the next run resumes it")
            return
        try:
            with anyio.fail_after(10):
                response = await client.post(path, headers=self._auth())
        except (httpx.TransportError, TimeoutError):
            return
        if response.is_success:
            context.log(f"canceled queued task {task_id}")
            _clear(context)
        else:
            context.log(f"task {task_id} could not be canceled (only queued tasks can); the next run resumes it")

    def _cost(self, state: TaskState, request: StepRequest) -> tuple[float, str]:
        if state.cost_usd is not None:
            return state.cost_usd, "reported by the service"
        params = dict(request.params)
        images = sum(1 for output in state.outputs if output.field == "images")
        if images and "n" in params:
            params["n"] = images
        return list_price(request.model, params).usd, "estimated from list prices (the service reports none)"

    # --- inputs --------------------------------------------------------------------------------

    def _encode_inputs(self, request: StepRequest, context: GenerationContext) -> dict[str, list[str]]:
        """Each input as the service takes it: a still-valid URL, or a ``data:`` URI of the bytes."""
        encoded: dict[str, list[str]] = {}
        now = time.time()
        for slot, items in request.inputs.items():
            values = []
            for item in items:
                if isinstance(item, RemoteInput):
                    values.append(item.url)
                    continue
                assert isinstance(item, Artifact) and item.path is not None
                known = context.known_urls.get(item.sha256)
                if known is not None and known.provider == self.name and known.expires_at > now:
                    values.append(known.url)
                    continue
                data = base64.b64encode(item.path.read_bytes()).decode("ascii")
                values.append(f"data:{item.media_type};base64,{data}")
            encoded[slot] = values
        return encoded

    # --- HTTP ----------------------------------------------------------------------------------

    def _client(self, downloads: bool = False) -> httpx.AsyncClient:
        if downloads:
            # Presigned result URLs: no Authorization header, few redirects, http(s) only.
            return httpx.AsyncClient(timeout=self._timeout, follow_redirects=True, max_redirects=3,
                                     transport=self._transport, limits=CONNECTION_LIMITS)
        return httpx.AsyncClient(base_url=self.config.base_url, timeout=self._timeout, follow_redirects=False,
                                 transport=self._transport, limits=CONNECTION_LIMITS)

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.config.require_key()}"}

    async def _create(self, client: httpx.AsyncClient, call: CreateCall, info: dict[str, Any],
                      context: GenerationContext) -> str:
        headers = {**self._auth(), "Content-Type": "application/json", **call.headers}
        for attempt in range(1, self.retry.attempts + 1):
            if context.before_create is not None:
                await context.before_create()  # the provider's submit rate
            sent_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            try:
                response = await client.post(call.path, json=call.body, headers=headers)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as error:
                # Nothing reached the service: safe to try again.
                await self._backoff(attempt, None, context, f"create: could not connect ({type(error).__name__})")
                continue
            except httpx.TransportError as error:
                raise ProviderError(
                    f"the create call was sent at {sent_at} but its answer was lost ({type(error).__name__}); "
                    f"a billed task may exist, so it was not resent (request fingerprint {call.fingerprint[:16]})",
                    code="create-outcome-unknown",
                ) from None
            payload = _json(response)
            request_id = self.protocol.request_id(payload)
            if request_id:
                info["request_ids"].append(request_id)
            task_id, _ = self.protocol.created(payload) if response.is_success or response.status_code >= 500 else (None, None)
            if task_id:
                info["task_ids"].append(task_id)
                context.log(f"submitted task {task_id} (request_id {request_id or '-'})")
                return task_id
            if response.status_code == 429 or response.status_code >= 500:
                code, message = self.protocol.error_of(payload)
                retry_after = parse_retry_after(response.headers.get("Retry-After"), time.time())
                await self._backoff(attempt, retry_after, context,
                                    f"create: HTTP {response.status_code} {code or ''} (request_id {request_id or '-'})")
                continue
            code, message = self.protocol.error_of(payload)
            if response.is_success:
                raise ProviderError(f"the service accepted the request but returned no task id (request_id {request_id})")
            failure = classify(code or ("InvalidApiKey" if response.status_code == 401 else None), message)
            raise ProviderError(f"HTTP {response.status_code}: {failure.describe()} (request_id {request_id or '-'})",
                                code=failure.code)
        raise ProviderError(f"the service kept refusing the create call after {self.retry.attempts} attempts "
                            "(no task was created)", retryable=True)

    async def _wait(self, client: httpx.AsyncClient, task_id: str, request: StepRequest, info: dict[str, Any],
                    context: GenerationContext) -> TaskState:
        policy = poll_policy(request.model.kind)
        deadline = anyio.current_time() + policy.deadline
        poll = 0
        last_status = ""
        while True:
            await self._sleep(policy.delay(poll, self._rng))
            poll += 1
            payload = await self._get_json(client, self.protocol.task_path(task_id), context, auth=True)
            state = self.protocol.task_state(payload, request)
            if state.raw_status != last_status:
                context.log(f"task {task_id}: {state.raw_status}")
                last_status = state.raw_status
            if state.terminal:
                return state
            if anyio.current_time() > deadline:
                raise ProviderError(
                    f"task {task_id} was still {state.raw_status} after {policy.deadline / 60:.0f} min; "
                    "stopped waiting (the task id is in the run record)", retryable=True)

    async def _get_json(self, client: httpx.AsyncClient, path: str, context: GenerationContext, auth: bool) -> Any:
        for attempt in range(1, self.retry.attempts + 1):
            try:
                response = await client.get(path, headers=self._auth() if auth else None)
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
                raise ProviderError(f"poll refused with HTTP {response.status_code}: {classify(code, message).describe()}",
                                    code=code)
            return payload
        raise ProviderError(f"could not read the task status after {self.retry.attempts} attempts", retryable=True)

    async def _backoff(self, attempt: int, retry_after: float | None, context: GenerationContext, what: str) -> None:
        if attempt >= self.retry.attempts:
            return
        delay = self.retry.delay(attempt, self._rng, retry_after)
        context.log(f"{what}; retrying in {delay:.1f}s")
        await self._sleep(delay)

    # --- results -------------------------------------------------------------------------------

    async def _download_all(self, client: httpx.AsyncClient, state: TaskState, context: GenerationContext) -> list[ProducedFile]:
        files: list[ProducedFile] = []
        counters: dict[str, int] = {}
        for output in state.outputs:
            counters[output.field] = counters.get(output.field, 0) + 1
            target = context.workdir / f"{output.field}-{counters[output.field]}{_EXTENSIONS[output.field]}"
            if output.text is not None:
                target.write_text(output.text, "utf-8")
                files.append(ProducedFile(target, output.field))
            elif output.url:
                await self._download(client, output.url, target, context)
                files.append(ProducedFile(target, output.field, source_url=output.url))
        return files

    async def _download(self, client: httpx.AsyncClient, url: str, target: Path, context: GenerationContext) -> None:
        if not url.startswith(("http://", "https://")):
            raise ProviderError(f"refusing to download a result from a non-http(s) URL: {url[:60]}")
        for attempt in range(1, self.retry.attempts + 1):
            try:
                async with client.stream("GET", url) as response:
                    if response.status_code in (403, 404, 410):
                        raise ProviderError(f"result URL answered HTTP {response.status_code}: it expired or is gone")
                    if response.status_code == 429 or response.status_code >= 500:
                        retry_after = parse_retry_after(response.headers.get("Retry-After"), time.time())
                        await self._backoff(attempt, retry_after, context, f"download: HTTP {response.status_code}")
                        continue
                    response.raise_for_status()
                    expected = int(response.headers.get("Content-Length") or 0)
                    if expected > MAX_DOWNLOAD_BYTES:
                        raise ProviderError(f"result is {expected:,} bytes, over the {MAX_DOWNLOAD_BYTES:,} byte limit")
                    written = 0
                    with open(target, "wb") as handle:
                        async for chunk in response.aiter_bytes():
                            written += len(chunk)
                            if written > MAX_DOWNLOAD_BYTES:
                                raise ProviderError(f"result exceeded the {MAX_DOWNLOAD_BYTES:,} byte limit")
                            handle.write(chunk)
                    if expected and written != expected or written == 0:
                        await self._backoff(attempt, None, context, f"download: got {written} of {expected} bytes")
                        continue
                    return
            except httpx.TooManyRedirects:
                raise ProviderError("result URL redirected too many times") from None
            except httpx.HTTPStatusError as error:
                raise ProviderError(f"result download failed with HTTP {error.response.status_code}") from None
            except httpx.TransportError as error:
                await self._backoff(attempt, None, context, f"download: {type(error).__name__}")
        raise ProviderError(f"could not download a result after {self.retry.attempts} attempts", retryable=True)


def _clear(context: GenerationContext) -> None:
    if context.journal is not None:
        context.journal.clear()


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp))


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return {"message": response.text[:200]}

