"""One unit's work (a step, or one item of a ``for_each`` step): resolve its request, take it from
the cache or generate it under the key locks, then store, check and cache what came back.

One generation per key at a time: in this process (an anyio lock per key), across processes on
this machine (an OS lock), across a cluster (the coordinator) and across machines sharing a store
(the store's lease). A second unit with the identical request waits, then finds the first one's
result instead of paying for it again.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import anyio

from wanflow._exceptions import MediaError, StepFailed
from wanflow.catalog.loader import load_catalog
from wanflow.catalog.pricing import estimate
from wanflow.execute.repair import repair_from_urls, repairable_objects
from wanflow.execute.result_check import ResultCheck, check_result
from wanflow.execute.shared import SharedState
from wanflow.media.probe import probe
from wanflow.pipelines.model import Pipeline, StepSpec
from wanflow.pipelines.request import StepRequest
from wanflow.pipelines.resolve import resolve_step
from wanflow.pipelines.templating import StepOutputs
from wanflow.planning.decision import decide
from wanflow.planning.media_inputs import RuntimeMedia
from wanflow.planning.options import RunOptions, forced_reason
from wanflow.providers.base import GenerationContext, GenerationResult, Provider, RemoteUrl, TaskInfo
from wanflow.providers.uploads import UploadCache
from wanflow.records import lockfile
from wanflow.records.request_history import RequestHistory
from wanflow.records.results import StepResult
from wanflow.state.cache import StepOutputsData
from wanflow.state.claims import claimed_task_ids, known_task_times
from wanflow.state.journal import KeyJournal
from wanflow.state.keys import cache_key
from wanflow.state.locks import process_lock
from wanflow.state.shared_store import shared_key_lock
from wanflow.state.workspace import Workspace


class UnitRunner:
    """The units of one instance: what they share with the instance and with the whole run."""

    def __init__(self, pipeline: Pipeline, workspace: Workspace, providers: Mapping[str, Provider], options: RunOptions,
                 shared: SharedState, locked: dict | None, history: RequestHistory, run_id: str,
                 started: Callable[[StepResult], None], log: Callable[[StepResult, str], None]) -> None:
        self.pipeline = pipeline
        self.workspace = workspace
        self.providers = providers
        self.options = options
        self.shared = shared  # the run's SharedState: limits, jobs, coordinator, key locks, known URLs
        self.locked = locked  # the locked section --frozen checks against
        self.history = history
        self.run_id = run_id
        self.started = started
        self.log = log
        self.store = workspace.store
        self.cache = workspace.cache
        self.journal = workspace.journal
        self.media = RuntimeMedia(pipeline, options.provider_override, self.store, workspace.input_stamps)
        self.prices = workspace.price_overrides
        self.workdir = workspace.tmp_dir / run_id

    async def produce(self, step: StepSpec, result: StepResult, outputs: Mapping[str, StepOutputs],
                      item: tuple[int, object] | None = None) -> None:
        """Resolve the unit's request, then take it from the cache or generate it (fills ``result``)."""
        request = self._resolve(step, outputs, item)
        provider = self.providers[request.provider]
        key = cache_key(request, provider.cache_salt)
        canonical = result.describe(request, key)
        if self.locked is not None:
            locked = (self.locked.get("steps") or {}).get(result.step_id)
            changes = lockfile.compare({"steps": {result.step_id: locked}}, {result.step_id: canonical}, False) if locked else []
            if changes or locked is None:
                detail = changes[0].format() if changes else f"{result.step_id}: not in the lockfile"
                raise StepFailed(f"--frozen: the resolved request differs from the lock ({detail})")
        cost = estimate(request.model, request.params, request.provider, self.prices)
        self.history.remember(result.step_id, key, canonical)

        forced = forced_reason(step, self.options)
        # One generation per key at a time, in this process and across processes sharing the
        # cache: a second step with the identical request waits, then finds the first one's result
        # instead of paying for it again.
        waiting = lambda: self.log(result, "waiting: another wanflow run is generating the same request")  # noqa: E731
        async with self.shared.key_locks.setdefault(key, anyio.Lock()), process_lock(self.workspace.locks_dir, key, waiting), \
                self.shared.coordinator.key_lock(key, waiting), shared_key_lock(self.workspace, key, waiting):
            again = forced is not None and key in self.shared.generated  # already regenerated by this run
            entry = None if forced and not again else self.cache.lookup(key, origin=f"steps.{step.id}")
            broken = repairable_objects(self.cache.entry_path(key), self.store, self.workdir) \
                if entry is None and not forced else []
            # A damaged or missing object of a paid result: its still-valid URL serves it again.
            repaired = bool(broken) and await repair_from_urls(broken, self.store, self.workdir,
                                                               lambda message: self.log(result, message))
            if repaired:
                entry = self.cache.lookup(key, origin=f"steps.{step.id}")
            decision = decide(cached=entry is not None, forced=None if again else forced, made_by=None, pending_inputs=[],
                              own_changes=[], miss_reason=lambda: self.history.explain_miss(result.step_id, key, canonical))
            if decision.status == "cached":
                assert entry is not None
                result.status = "cached"
                result.reason = "same request as a result this run generated" if again else decision.reason
                if repaired:
                    result.reason += " (a damaged object was downloaded again from its still-valid result URL)"
                result.estimated_usd = 0.0
                result.outputs, result.provider_info = entry.outputs, dict(entry.provider_info)
                self._remember_urls(result)
                return
            result.estimated_usd = cost.usd
            await self._generate(step, request, provider, key, canonical, result, decision.reason)

    async def _generate(
        self, step: StepSpec, request: StepRequest, provider: Provider, key: str, canonical: dict,
        result: StepResult, reason: str,
    ) -> None:
        result.reason = reason
        result.status = "running"
        self.started(result)
        gates = self.shared.limits.gates(provider.name, request.model.name)
        # The model's slot first, then a job: a task queued behind one model's limit must not hold
        # a job that a step of another model could use.
        async with self.shared.limits.slot(provider.name, request.model.name, on_queue=lambda depth: self.log(
            result, f"queued: {depth} waiting for {gates.label if gates else provider.name}"
        )), self.shared.jobs:
            # A folder of its own beside the run's (no parent to create, no tree to remove later):
            # downloads land here and are moved into the store.
            workdir = _new_work_folder(self.workspace.tmp_dir, self.run_id)
            context = GenerationContext(
                workdir=workdir,
                cache_key=key,
                log=lambda message: self.log(result, message),
                known_urls=self.shared.known_urls,
                journal=KeyJournal(self.journal, key, result.step_id, provider.name,
                                   claims=lambda: claimed_task_ids(self.workspace.state_dir),
                                   known=lambda: known_task_times(self.workspace.state_dir)) if provider.paid else None,
                resubmit_unknown=self.options.resubmit_unknown,
                cancel_on_interrupt=self.options.cancel_on_interrupt,
                before_create=gates.submits.take if gates is not None and gates.submits is not None else None,
                on_throttled=gates.submits.slow_down if gates is not None and gates.submits is not None else None,
                on_accepted=gates.submits.speed_up if gates is not None and gates.submits is not None else None,
                create_blocked=lambda: self.shared.limits.creates_stopped(provider.name, request.model.name),
                uploads=UploadCache(self.workspace.state_dir / "uploads" / f"{provider.name}.json") if provider.paid else None,
            )
            try:
                generated = await provider.generate(request, context)
            except BaseException:
                _remove_folder(workdir)
                raise
        info = generated.info.copy()
        try:
            # Hashing, fsync and renames wait on the disk: one trip to a worker thread, not the
            # event loop. Shielded: an interrupt must not drop downloaded paid results.
            with anyio.CancelScope(shield=True):
                outputs, check = await anyio.to_thread.run_sync(self._store_results, step, request, provider, key,
                                                                canonical, generated, info, workdir)
            result.outputs = outputs
        finally:
            result.provider_info = dict(info)  # the task ids stay in the record even if the files were unusable
        tasks = ", ".join(str(task) for task in info.get("task_ids") or [])
        if info.get("resumed") or info.get("adopted"):  # paid earlier: "new" would hide that nothing was paid now
            result.reason = f"{'resumed' if info.get('resumed') else 'adopted'} task {tasks} (paid by an earlier run)"
        result.warnings.extend(generated.warnings)
        self._remember_urls(result)
        if check is not None:
            self._check_result(request, provider, key, result, check)
        self.shared.generated.add(key)
        result.status = "ran"

    def _store_results(self, step: StepSpec, request: StepRequest, provider: Provider, key: str, canonical: dict,
                       generated: GenerationResult, info: TaskInfo, workdir: Path) -> tuple[StepOutputsData, ResultCheck | None]:
        """Store the files, check a paid result, and (if it matches) save the cache entry durably,
        then remove the journal entry: the paid work is safely stored. Blocking (a worker thread)."""
        try:
            outputs = self._ingest(step, request, generated, info, workdir)
        finally:
            _remove_folder(workdir)  # (a directory removal waits on the disk too)
        check = check_result(request, outputs) if provider.paid else None
        if check is None or not check.mismatches:
            self.cache.save(key, canonical, outputs, dict(info))
            self.journal.remove(key)
        return outputs, check

    def _check_result(self, request: StepRequest, provider: Provider, key: str, result: StepResult,
                      check: ResultCheck) -> None:
        """The paid-run safety net: a result that ignored its request stops that provider and model.

        The outputs are already stored and stay in the record; they are not cached under the
        request's key, because they are not what the request asked for.
        """
        result.warnings.extend(f"result check: {warning}" for warning in check.warnings)
        if not check.mismatches:
            return
        result.provider_info["result_mismatch"] = check.mismatches
        self.journal.remove(key)  # the task is delivered and its files are stored: nothing to resume
        service = load_catalog().services.get(provider.name)
        if service is not None and len(service.envelopes) > 1:  # a service spoken in several envelopes (vtrix)
            envelope = result.provider_info.get("envelope") or service.default_envelope
            cause = (f"the likely cause is the request envelope (now '{envelope}': see 'envelope' under "
                     f"[providers.{provider.name}] in the README)")
        else:
            cause = "keep the run record when you report it to the service"
        reason = (f"{provider.name} returned a result that does not match the request ({'; '.join(check.mismatches)}). "
                  f"The service evidently ignored the parameters; {cause}. No further {request.model.name} tasks go to "
                  f"{provider.name} in this run; the result is kept in the run record")
        self.shared.limits.stop_creates(provider.name, request.model.name, reason)
        raise StepFailed(reason)

    def _resolve(self, step: StepSpec, outputs: Mapping[str, StepOutputs], item: tuple[int, object] | None = None) -> StepRequest:
        request, problems = resolve_step(self.pipeline, step, outputs, self.media, self.options.provider_override, item)
        if request is None:
            raise StepFailed("; ".join(problem.format() for problem in problems))
        return request

    def _remember_urls(self, result: StepResult) -> None:
        """Keep still-valid service URLs of a step's outputs so later steps can pass them by URL."""
        urls = result.provider_info.get("result_urls") or {}
        expires = float(result.provider_info.get("urls_expire_at") or 0)
        if expires > time.time():
            for sha, url in urls.items():
                self.shared.known_urls[sha] = RemoteUrl(str(result.provider), url, expires)

    def _ingest(
        self, step: StepSpec, request: StepRequest, generated: GenerationResult, info: TaskInfo, workdir: Path
    ) -> StepOutputsData:
        """Verify each produced file is real media, store it, and check the step got what it needs."""
        outputs = StepOutputsData()
        for produced in generated.files:
            try:
                probed = probe(produced.path) if produced.field != "text" else None
            except MediaError as error:
                raise StepFailed(f"provider returned an unusable file: {error}") from None
            media_type = probed.media_type if probed else "text/plain"
            artifact = self.store.put_file(produced.path, media_type, move=produced.path.is_relative_to(workdir),
                                           **(probed.as_meta() if probed else {}))
            if produced.source_url:
                info.setdefault("result_urls", {})[artifact.sha256] = produced.source_url
            if produced.field == "images":
                outputs.images.append(artifact)
            elif produced.field == "video":
                outputs.video = artifact
            else:
                outputs.text = artifact
        expected = request.model.outputs_for(request.params)
        if "video" in expected and outputs.video is None:
            raise StepFailed(f"{request.model.name} returned no video")
        if "images" in expected and not outputs.images:
            raise StepFailed(f"{request.model.name} returned no images")
        return outputs


def _new_work_folder(parent: Path, run_id: str) -> Path:
    """A fresh, empty folder for one step's downloads. Unique by construction: step ids may
    contain ``-``, so a name built from the id could be shared (``shot[0]`` and ``shot-0``)."""
    try:
        return Path(tempfile.mkdtemp(dir=parent, prefix=f"{run_id}-"))
    except FileNotFoundError:
        parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(dir=parent, prefix=f"{run_id}-"))


def _remove_folder(folder: Path) -> None:
    """Remove a step's work folder: empty once its files are in the store, so one rmdir."""
    try:
        folder.rmdir()
    except FileNotFoundError:
        pass
    except OSError:
        shutil.rmtree(folder, ignore_errors=True)
