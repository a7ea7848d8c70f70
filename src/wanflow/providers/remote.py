"""The submit → poll → download engine shared by the paid Wan services (the create call is in
creates.py, the journal side in recovery.py and absence.py, the protocol types in protocol.py).

A service module (``dashscope``, ``vtrix``) supplies a ``Protocol``: how to shape the create
call and how to read its answers. This module owns what the users' money rides on:

- A create call is sent again only when the service said it made nothing (a coded 4xx, 429, a
  503 "not accepted", no connection). Any other answer after the request left (500/502/504, an
  HTML or empty body, a 2xx without an id, a read timeout, a reset) is reconciled, never resent.
- A task answered UNKNOWN / 404 is "not yet visible" for a bounded settling time, never "gone".
- Polls and downloads are retried on connection errors, timeouts, 429 and 5xx, with capped
  exponential backoff and jitter, honouring Retry-After.
- Results are downloaded the moment a task succeeds, streamed to disk, size- and
  scheme-limited, with no Authorization header (result URLs are presigned).
- Failures are classified; only internal errors lead to a bounded number of new tasks.
"""

from __future__ import annotations

import base64
import random
import time
from collections.abc import Awaitable, Callable

import anyio
import anyio.lowlevel
import httpx

from wanflow._exceptions import ProviderError, ResultGone
from wanflow._version import __version__
from wanflow.artifacts import Artifact, RemoteInput
from wanflow.catalog.pricing import list_price
from wanflow.catalog.spec import ModelSpec
from wanflow.pipelines.request import StepRequest
from wanflow.project.settings import ServiceConfig
from wanflow.providers.base import GenerationContext, GenerationResult, ProducedFile, TaskInfo
from wanflow.providers.creates import CreateCalls
from wanflow.providers.downloads import download_verified, output_target
from wanflow.providers.durations import DurationBook
from wanflow.providers.failures import classify
from wanflow.providers.policies import RetryPolicy
from wanflow.providers.polling import TaskPolling
from wanflow.providers.prechecks import region_problem, run_precheck
from wanflow.providers.protocol import (
    CreateCall,
    ServiceProtocol,
    TaskState,
)
from wanflow.providers.recovery import JournalRecovery, clear_journal, lost_message, refuse_if_creates_stopped
from wanflow.providers.uploads import upload_file

MAX_TASK_ATTEMPTS = 3  # one task, plus two new ones after internal failures
USER_AGENT = {"User-Agent": f"wanflow/{__version__}"}
NOT_VISIBLE_PATIENCE = 120.0  # seconds a task answered UNKNOWN / 404 is polled on before wanflow stops and asks
# Keep every pooled connection alive: httpcore closes idle connections whenever the pool holds
# more than max_keepalive, so a lower keep-alive bound means a new TCP (and TLS) handshake per
# request in a busy batch. Eight connections carry the documented task limits with room to spare;
# httpcore's pool checks every connection on every request, so more of them cost CPU per request
# in a large batch without adding throughput (requests beyond them wait for a free one).
CONNECTION_LIMITS = httpx.Limits(max_connections=8, max_keepalive_connections=8, keepalive_expiry=30)


Sleep = Callable[[float], Awaitable[None]]


class RemoteProvider(TaskPolling, CreateCalls, JournalRecovery):
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
        durations: DurationBook | None = None,
        settle_seconds: float | None = None,
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
        self.durations = durations or DurationBook()
        self.settle_seconds = NOT_VISIBLE_PATIENCE if settle_seconds is None else settle_seconds
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
        """Raise a UsageError now, before anything runs, if a call would need a missing key or URL."""
        self.config.require_key()
        self.config.url_for(self.protocol.spec.envelope(self.config.envelope).base)

    def serving_problem(self, model: ModelSpec) -> str | None:
        """Why this provider, as configured, cannot serve ``model`` (a region that does not have it), or None.
        Asked for every paid unit before a run starts, and again before each step's first upload."""
        return region_problem(model, self.name, self.config.base_url)

    async def aclose(self) -> None:
        """Close the HTTP clients and save what was learned about durations (idempotent)."""
        self.durations.flush()
        if self._clients_pair is not None:
            for client in self._clients_pair:
                await client.aclose()
            self._clients_pair = None

    # --- the whole task ------------------------------------------------------------------------

    async def generate(self, request: StepRequest, context: GenerationContext) -> GenerationResult:
        """Submit (or resume), wait for and download one generation."""
        problem = self.serving_problem(request.model)
        if problem is not None:  # before any upload: a region that cannot serve the model gets nothing
            raise ProviderError(problem, code="region")
        api, downloads = self._clients()
        call, passed_urls = await self._create_call(api, request, context, use_urls=True)
        info: TaskInfo = {"request_ids": [], "task_ids": [], "request_fingerprint": call.fingerprint}
        if self.config.envelope != self.protocol.spec.default_envelope:
            info["envelope"] = self.config.envelope
        task_id = await self._recover(api, call, request, info, context)
        check = request.model.precheck
        if task_id is None and check is not None and check.service == self.name:
            refuse_if_creates_stopped(context)  # the check is billed too
            value, headers = await self._precheck_input(api, request, context, check.input, check.model)
            # The documented check before a paid create (s2v's face check) passed.
            info["precheck"] = await run_precheck(api, request, call, value, {**self._auth(), **headers}, context.log)
        for attempt in range(1, MAX_TASK_ATTEMPTS + 1):
            if task_id is None:
                try:
                    task_id = await self._submit(api, call, request, info, context)
                except ProviderError as error:
                    if not passed_urls or not _refused_a_url(error):
                        raise
                    # The service could not fetch an upstream URL we passed (expired, or never
                    # reachable for it). A refused create made no task, so sending the stored
                    # bytes instead is a retry, never a second payment.
                    context.log(f"the service refused a passed result URL ({error}); sending the stored bytes instead")
                    call, passed_urls = await self._create_call(api, request, context, use_urls=False)
                    info["request_fingerprint"] = call.fingerprint
                    task_id = await self._submit(api, call, request, info, context)
            state = await self._wait_or_cancel(api, task_id, request, info, context)
            if state.status == "succeeded" and not state.outputs:
                # Paid for and empty: the entry stays, so a rerun asks the service again instead of paying.
                raise ProviderError(f"task {task_id} succeeded with no result at all{_codes(state)}; nothing was paid "
                                    "again (rerun to ask the service once more)", code="empty-result")
            if state.status == "succeeded":
                break
            if state.status == "gone":
                # Journaled within 24 h (older entries stop in _recover): not yet visible, never gone.
                # The entry stays, so a rerun polls this task again before anything is paid.
                raise ProviderError(
                    f"task {task_id} was still unknown to the service ({state.error_code or state.raw_status}) after "
                    f"{self.settle_seconds:.0f} s of polling. A task created minutes ago can take a while to become "
                    "visible, so it is not treated as gone and nothing was paid again: rerun to resume polling it "
                    "(24 h after its create it counts as expired, and --resubmit-unknown pays for a new one)",
                    code="task-not-visible", retryable=True)
            failure = classify(state.error_code, state.error_message or state.raw_status)
            if not failure.retryable or attempt == MAX_TASK_ATTEMPTS:
                clear_journal(context)
                raise ProviderError(f"task {task_id} {state.raw_status}: {failure.describe()}", code=failure.code,
                                    retryable=failure.retryable)
            context.log(f"task {task_id} failed internally ({failure.code}); submitting a new task "
                        f"(attempt {attempt + 1} of {MAX_TASK_ATTEMPTS})")
            task_id = None
        ended_at = time.time()
        info["cost_usd"], info["cost_source"] = self._cost(state, request)
        try:
            files = await self._download_all(downloads, state, context)
        except ResultGone as gone:
            entry = context.journal.pending() if context.journal is not None else None
            if entry is None or entry.task_id is None:
                raise
            # Paid for and gone: say so once, and never loop on the dead URL again.
            context.paid_journal().lost(entry, ended_at, info["cost_usd"] if info["cost_source"].startswith("reported") else None)
            raise ProviderError(f"{gone}. " + lost_message(self.name, context.paid_journal().pending()), code="task-lost") from None
        info["task_id"] = info["task_ids"][-1]
        info["task_ended_at"] = ended_at  # result URLs live 24 h from here (a damaged object can be fetched again)
        info["urls_expire_at"] = ended_at + self.config.url_reuse_hours * 3600
        warnings = list(info.pop("warnings", []))
        if state.extra_outputs:
            info["extra_outputs"] = state.extra_outputs
        if state.partial_failures:
            info["partial_failures"] = state.partial_failures
            warnings.append(f"{len(state.partial_failures)} of the requested images failed: " + "; ".join(state.partial_failures))
        return GenerationResult(files=files, info=info, warnings=warnings)

    async def _wait_or_cancel(self, client: httpx.AsyncClient, task_id: str, request: StepRequest, info: TaskInfo,
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
            clear_journal(context)
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

    async def _create_call(self, client: httpx.AsyncClient, request: StepRequest, context: GenerationContext,
                           use_urls: bool) -> tuple[CreateCall, bool]:
        """The create call, and whether it passes any upstream service URL."""
        inputs, headers, passed = await self._encode_inputs(client, request, context, use_urls)
        call = self.protocol.create_call(request, inputs, self.config.envelope)
        call.headers.update(headers)
        return call, passed

    async def _encode_inputs(self, client: httpx.AsyncClient, request: StepRequest, context: GenerationContext,
                             use_urls: bool = True) -> tuple[dict[str, list[str]], dict[str, str], bool]:
        """Each input as the service takes it, and any headers that makes the create need.

        A still-valid service URL of an upstream result is passed as is. Otherwise the bytes go
        inline as a ``data:`` URI, or, where the service has a temporary upload (DashScope), large
        images and every audio or video file are uploaded and passed by their ``oss://`` name.
        """
        encoded: dict[str, list[str]] = {}
        headers: dict[str, str] = {}
        passed = False
        uploads = self.protocol.spec.uploads
        now = time.time()
        for slot, items in request.inputs.items():
            values = []
            for item in items:
                if isinstance(item, RemoteInput):
                    values.append(item.url)
                    continue
                assert isinstance(item, Artifact) and item.path is not None
                known = self._still_valid_url(item, context, now) if use_urls else None
                if known is not None:
                    values.append(known)
                    passed = True
                    continue
                kind = item.media_type.split("/")[0]
                if uploads is not None and (kind in uploads.always or item.size > uploads.inline_max_bytes):
                    values.append(await self._upload(client, request, item, context))
                    headers[uploads.resolve_header] = "enable"
                    continue
                if slot in self.protocol.spec.url_only_inputs:
                    raise ProviderError(f"{self.name} takes {slot} only as an http(s) URL and documents no upload; "
                                        "give an http(s) URL, or use the dashscope provider", code="input-needs-url")
                data = base64.b64encode(item.path.read_bytes()).decode("ascii")
                values.append(f"data:{item.media_type};base64,{data}")
            encoded[slot] = values
        return encoded, headers, passed

    def _still_valid_url(self, item: Artifact, context: GenerationContext, now: float) -> str | None:
        """This service's own result URL for ``item``'s bytes while it is still valid, else None."""
        known = context.known_urls.get(item.sha256)
        return known.url if known is not None and known.provider == self.name and known.expires_at > now else None

    async def _upload(self, client: httpx.AsyncClient, request: StepRequest, item: Artifact, context: GenerationContext,
                      model: str | None = None) -> str:
        uploads = self.protocol.spec.uploads
        assert uploads is not None
        return await upload_file(
            client, lambda path, params: self._get_json(client, path, context, auth=True, params=params),
            lambda attempt, what: self._retry_wait(attempt, None, context, what),
            uploads, self.name, request, item, context.uploads, context.log, model=model)

    async def _precheck_input(self, client: httpx.AsyncClient, request: StepRequest, context: GenerationContext,
                              slot: str, model: str) -> tuple[str, dict[str, str]]:
        """The checked input as a pre-check takes it, and the headers that needs: a URL as is (a
        still-valid result URL of this service too); a file uploaded for the check's own model."""
        item = request.inputs[slot][0]
        if isinstance(item, RemoteInput):
            return item.url, {}
        assert isinstance(item, Artifact)
        known = self._still_valid_url(item, context, time.time())
        if known is not None:
            return known, {}
        uploads = self.protocol.spec.uploads
        if uploads is None:
            raise ProviderError(f"the {model} pre-check takes {slot} only as a URL, and {self.name} documents no upload; "
                                "give an http(s) URL; nothing was sent", code="input-needs-url")
        return await self._upload(client, request, item, context, model=model), {uploads.resolve_header: "enable"}

    # --- HTTP ----------------------------------------------------------------------------------

    def _client(self, downloads: bool = False) -> httpx.AsyncClient:
        if downloads:
            # Presigned result URLs: no Authorization header, few redirects, http(s) only.
            return httpx.AsyncClient(timeout=self._timeout, follow_redirects=True, max_redirects=3,
                                     transport=self._transport, limits=CONNECTION_LIMITS)
        base = self.config.url_for(self.protocol.spec.envelope(self.config.envelope).base)
        return httpx.AsyncClient(base_url=base, timeout=self._timeout, follow_redirects=False, headers=USER_AGENT,
                                 transport=self._transport, limits=CONNECTION_LIMITS)

    # --- results -------------------------------------------------------------------------------

    async def _download_all(self, client: httpx.AsyncClient, state: TaskState, context: GenerationContext) -> list[ProducedFile]:
        files: list[ProducedFile] = []
        counters: dict[str, int] = {}

        async def wait(attempt: int, retry_after: float | None, what: str) -> bool:
            return await self._retry_wait(attempt, retry_after, context, what)

        for output in state.outputs:
            counters[output.field] = counters.get(output.field, 0) + 1
            target = output_target(context.workdir, output.field, counters[output.field])
            if output.text is not None:
                target.write_text(output.text, "utf-8")
                files.append(ProducedFile(target, output.field))
            elif output.url:
                await download_verified(client, output.url, target, wait, context.log)
                files.append(ProducedFile(target, output.field, source_url=output.url))
        return files


def _refused_a_url(error: ProviderError) -> bool:
    """Whether a definite create refusal blames an input URL (DashScope ``InvalidURL``, or a URL error)."""
    code = (error.code or "").lower()
    return error.code != "create-outcome-unknown" and ("url" in code or ("url" in str(error).lower()
                                                       and any(word in str(error) for word in ("HTTP 400", "HTTP 403"))))


def _codes(state: TaskState) -> str:
    return f" (sub-results: {'; '.join(state.partial_failures)})" if state.partial_failures else ""
