"""Run a pipeline: every step starts as soon as its inputs exist, bounded by ``jobs``.

Structured concurrency with anyio: one task group holds one task per step; a step waits on its
dependencies' completion events, so independent branches overlap. A failing step marks only its
dependents as skipped. Nothing outlives the task group.
"""

from __future__ import annotations

import shutil
import signal
import tempfile
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import anyio

from wanflow import _fs_errors as fs_errors
from wanflow._exceptions import StepFailed, UsageError, WanflowError
from wanflow.artifacts import Artifact
from wanflow.catalog.pricing import estimate
from wanflow.execute.limits import ProviderLimits
from wanflow.execute.repair import repair_from_urls, repairable_objects
from wanflow.execute.result_check import ResultCheck, check_result
from wanflow.execute.signals import stop_signals
from wanflow.media.probe import MediaError, probe
from wanflow.pipelines.model import Pipeline, StepSpec
from wanflow.pipelines.resolve import StepRequest, base_context, evaluate_for_each, evaluate_when, pipeline_seed, resolve_step
from wanflow.pipelines.static_checks import fan_in
from wanflow.pipelines.templating import OutputList, StepOutputs, TemplateProblem, referenced_steps, render
from wanflow.planning.decision import decide
from wanflow.planning.media_inputs import RuntimeMedia
from wanflow.providers.base import GenerationContext, GenerationResult, Provider, RemoteUrl
from wanflow.providers.uploads import UploadCache
from wanflow.records import lockfile
from wanflow.records.abandoned import running_in
from wanflow.records.request_history import RequestHistory, history_name
from wanflow.records.results import RunResult, StepResult
from wanflow.records.run_record import RunRecorder, new_run_id
from wanflow.state.cache import StepOutputsData
from wanflow.state.claims import claimed_task_ids, known_task_times
from wanflow.state.journal import KeyJournal
from wanflow.state.keys import cache_key
from wanflow.state.locks import process_lock
from wanflow.state.out_folder import OutputFolder
from wanflow.state.shared_store import shared_key_lock
from wanflow.state.workspace import Workspace


@dataclass
class SharedState:
    """What the instances of one batch share: per-key locks, provider limits, the jobs bound,
    known result URLs, and the lockfile read once for all of them. One step whose request
    several instances share runs once."""

    limits: ProviderLimits
    jobs: anyio.CapacityLimiter
    lock_data: dict | None = None
    key_locks: dict = field(default_factory=dict)
    known_urls: dict = field(default_factory=dict)
    generated: set = field(default_factory=set)  # keys this run generated: --fresh regenerates each once


@dataclass(frozen=True)
class RunOptions:
    """How to run: concurrency, what to regenerate, which provider to force."""

    jobs: int = 4
    fresh_all: bool = False
    fresh_steps: frozenset[str] = field(default_factory=frozenset)
    provider_override: str | None = None
    allow_paid: bool = False
    resubmit_unknown: bool = False  # allow a new create when an earlier one's outcome is unknown
    cancel_on_interrupt: bool = False  # default: keep remote tasks running; the next run resumes them
    handle_signals: bool = False  # Ctrl-C / SIGTERM stop the run in order (the CLI turns this on)
    frozen: bool = False  # reproduce the lockfile exactly, or refuse
    reseed_all: bool = False  # draw new seeds for every step (kept in the lockfile)
    reseed_steps: frozenset[str] = field(default_factory=frozenset)
    write_lock: bool = True  # write <pipeline>.lock after a successful run
    cluster: str | None = None  # run on Dask: "local:N" or "tcp://HOST:8786" (else [cluster] address, WANFLOW_CLUSTER)
    instance: str = "default"  # the lockfile section of this run (matrix and batch runs name theirs)
    force_out: bool = False  # replace or remove hand-edited and foreign files in out/ (--force-out)


class Reporter(Protocol):
    """Receives progress as it happens (the CLI's live display implements this)."""

    def step_started(self, step: StepResult) -> None: ...

    def step_finished(self, step: StepResult) -> None: ...

    def step_note(self, step: StepResult, message: str) -> None: ...


class SilentReporter:
    """Hears nothing (the default reporter)."""

    def step_started(self, step: StepResult) -> None:
        pass

    def step_finished(self, step: StepResult) -> None:
        pass

    def step_note(self, step: StepResult, message: str) -> None:
        pass


class Runner:
    """Executes one pipeline once."""

    def __init__(
        self,
        pipeline: Pipeline,
        workspace: Workspace,
        providers: Mapping[str, Provider],
        options: RunOptions | None = None,
        reporter: Reporter | None = None,
        limits: ProviderLimits | None = None,
        shared: SharedState | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.workspace = workspace
        self.providers = providers
        self.options = options or RunOptions()
        self.reporter = reporter or SilentReporter()
        self.store = workspace.store
        self.cache = workspace.cache
        self.media = RuntimeMedia(pipeline, self.options.provider_override, self.store)
        instance = self.options.instance
        self.history = RequestHistory(workspace.index_dir, history_name(pipeline, instance))
        self.history.remember_vars(pipeline.vars)
        out_root = workspace.out_dir / pipeline.name
        if instance != "default":
            out_root = out_root / instance
        self.outputs_folder = OutputFolder(out_root, force=self.options.force_out)
        run_id = new_run_id(pipeline.name if self.options.instance == "default" else f"{pipeline.name}-{self.options.instance}")
        self.result = RunResult(
            run_id=run_id,
            pipeline_name=pipeline.name,
            steps={step.id: StepResult(step.id, step.model.name) for step in pipeline.steps.values()},
            out_dir=out_root,
            preview=any(not provider.paid and provider.name == "local" for provider in providers.values()),
        )
        seed, seed_source = pipeline_seed(pipeline)
        self.recorder = RunRecorder(
            pipeline,
            self.result,
            workspace.runs_dir,
            out_root,
            extra={
                "pipeline_seed": seed,
                "pipeline_seed_source": seed_source,
                "jobs": self.options.jobs,
                "warnings": [warning.format() for warning in pipeline.warnings],
            },
            # A batch's instances are reported live by the CLI; rewriting a thousand records
            # after every step would cost more than the steps.
            interim_writes=shared is None,
        )
        self._done = {step_id: anyio.Event() for step_id in pipeline.steps}
        self._outputs: dict[str, StepOutputs] = {}
        self._shared = shared
        self._limiter = shared.jobs if shared else anyio.CapacityLimiter(max(1, self.options.jobs))
        self._key_locks: dict[str, anyio.Lock] = shared.key_locks if shared else {}
        self._known_urls: dict[str, RemoteUrl] = shared.known_urls if shared else {}
        self._generated: set[str] = shared.generated if shared else set()
        self.journal = workspace.journal
        self._locked: dict | None = None
        # {"locked": ...} when a Plan already applied the lockfile to this pipeline (see runner.plan)
        self.prepared: dict | None = None
        self._prices = workspace.price_overrides
        self.limits = shared.limits if shared else (limits or ProviderLimits(workspace.config().get("limits", {})))
        self._workdir = workspace.tmp_dir / run_id

    async def run(self) -> RunResult:
        """Run every step, write outputs and the record, and return the result."""
        paid = sorted(name for name, provider in self.providers.items() if provider.paid)
        if paid and not self.options.allow_paid:
            raise UsageError(
                f"this run would spend money on {', '.join(paid)}; nothing was run. Choose it explicitly with "
                f"--provider {paid[0]} or --allow-paid, or preview for free with --provider local"
            )
        if self.prepared is not None:  # the plan applied the lockfile: its seeds are the ones to send
            self._locked = self.prepared.get("locked")
        else:
            lock_data = self._shared.lock_data if self._shared else lockfile.read_lock(lockfile.lock_path(self.pipeline))
            self._locked = lockfile.prepare(
                self.pipeline, lock_data, frozen=self.options.frozen, reseed_all=self.options.reseed_all,
                reseed_steps=self.options.reseed_steps, provider_override=self.options.provider_override,
                instance=self.options.instance,
            )
        if self._shared is None:  # a batch holds the workspace for all of its instances
            async with running_in(self.workspace, lambda: self._log(StepResult("*", "-"), "waiting for cache gc to finish")):
                return await self._run_holding()
        return await self._run_holding()

    async def _run_holding(self) -> RunResult:
        self.recorder.write("running")
        self._steps_scope = anyio.CancelScope()
        try:
            async with anyio.create_task_group() as outer:
                if self.options.handle_signals:
                    outer.start_soon(self._stop_on_signal, self._steps_scope)
                with self._steps_scope:
                    async with anyio.create_task_group() as group:
                        for step_id in self.pipeline.order():
                            group.start_soon(self._run_step, self.pipeline.steps[step_id])
                outer.cancel_scope.cancel()  # the signal watcher
            self._write_named_outputs()
        except BaseException:
            self.result.interrupted = True
            self._finish("interrupted")  # synchronous: no checkpoint, so cancellation cannot cut it short
            raise
        self._finish("interrupted" if self.result.interrupted else "succeeded" if self.result.ok else "failed")
        if self.result.ok and self.options.write_lock:
            path = lockfile.lock_path(self.pipeline)
            lockfile.write_lock(path, self.pipeline.name, {self.options.instance: lockfile.instance_entry(self.pipeline, self.result)},
                                keep=lockfile.read_lock(path))
        return self.result

    async def _stop_on_signal(self, scope: anyio.CancelScope) -> None:
        """Ctrl-C or SIGTERM: stop submitting, stop waiting, keep what finished; records are flushed."""
        with stop_signals() as signals:
            async for signum in signals:
                self.result.interrupted = True
                self._log(StepResult("*", "-", status="skipped"), f"{signal.Signals(signum).name}: stopping")
                scope.cancel()
                return

    def _finish(self, status: str) -> None:
        for step in self.result.steps.values():
            if step.status in ("pending", "running"):
                step.status, step.reason = "skipped", "run was interrupted"
        self.history.save()
        self.outputs_folder.finish(set(self.pipeline.steps), set(self.pipeline.outputs))
        self.result.out_notes += self.outputs_folder.take_notes()  # named outputs, removed steps, the manifest
        if self.result.out_notes:
            self.recorder.extra["warnings"] = [*self.recorder.extra.get("warnings", []), *self.result.out_notes]
        self.recorder.write(status)
        shutil.rmtree(self._workdir, ignore_errors=True)

    async def _run_step(self, step: StepSpec) -> None:
        result = self.result.steps[step.id]
        for dep in step.depends_on:
            await self._done[dep].wait()
        try:
            blocked = [dep for dep in step.depends_on if not self.result.steps[dep].ok]
            if blocked:
                result.status = "skipped"
                result.condition_skipped = all(self.result.steps[dep].condition_skipped for dep in blocked)
                result.reason = "upstream " + ", ".join(
                    f"'{dep}' {'skipped by its condition' if self.result.steps[dep].condition_skipped else self.result.steps[dep].status}"
                    for dep in blocked
                )
                return
            run_it, problems = evaluate_when(self.pipeline, step, self._outputs)
            if problems:
                raise StepFailed("; ".join(problem.format() for problem in problems))
            if not run_it:
                result.status, result.condition_skipped = "skipped", True
                result.reason = f"when: {step.when} is false"
                return
            result.started_at = time.time()
            items, problems = evaluate_for_each(self.pipeline, step, self._outputs)
            if problems:
                raise StepFailed("; ".join(problem.format() for problem in problems))
            if items is None:
                await self._produce(step, result)
                result.files = self.outputs_folder.write_step(step.id, result.outputs.all() if result.outputs else [])
                result.warnings.extend(self.outputs_folder.take_notes())
                self._outputs[step.id] = template_outputs(step, result.outputs)
            else:
                await self._fan_out(step, result, items)
        except WanflowError as error:
            result.status, result.error = "failed", str(error)
        except Exception as error:  # a bug must fail one step, not take down its siblings
            result.status = "failed"
            result.error = _unexpected(error)
            if not fs_errors.is_file_system_error(error):
                result.provider_info["traceback"] = traceback.format_exc(limit=8)
        finally:
            result.finished_at = time.time()
            self._done[step.id].set()
            self.recorder.write("running")
            self.reporter.step_finished(result)

    async def _fan_out(self, step: StepSpec, result: StepResult, items: list) -> None:
        """One sub-task per item, all at once (within the limits); downstream sees lists in item order."""
        subs = [StepResult(f"{step.id}[{index}]", step.model.name) for index in range(len(items))]
        result.items = subs

        async def one(index: int, item: object) -> None:
            sub = subs[index]
            sub.started_at = time.time()
            try:
                await self._produce(step, sub, (index, item))
            except WanflowError as error:
                sub.status, sub.error = "failed", str(error)
            except OSError as error:  # a full or read-only disk fails the item with a plain message
                if not fs_errors.is_file_system_error(error):
                    raise
                sub.status, sub.error = "failed", _unexpected(error)
            finally:
                sub.finished_at = time.time()

        async with anyio.create_task_group() as group:
            for index, item in enumerate(items):
                group.start_soon(one, index, item)
        failed = [sub for sub in result.items if sub.status == "failed"]
        if failed:
            raise StepFailed(f"{len(failed)} of {len(items)} items failed; first: {failed[0].step_id}: {failed[0].error}")
        result.status = "ran" if any(sub.status == "ran" for sub in result.items) else "cached"
        ran = sum(1 for sub in result.items if sub.status == "ran")
        result.reason = f"{len(items)} items: {ran} ran, {len(items) - ran} cached"
        result.seed = result.items[0].seed if result.items else None
        result.provider = result.items[0].provider if result.items else None
        labelled = [(f"items[{sub_index}].{label}", artifact) for sub_index, sub in enumerate(result.items)
                    for label, artifact in (sub.outputs.all() if sub.outputs else [])]
        result.files = self.outputs_folder.write_step(step.id, labelled)
        result.warnings.extend(self.outputs_folder.take_notes())
        self._outputs[step.id] = fan_in(step, [template_outputs(step, sub.outputs) for sub in result.items])

    async def _produce(self, step: StepSpec, result: StepResult, item: tuple[int, object] | None = None) -> None:
        request = self._resolve(step, item)
        provider = self.providers[request.provider]
        key = cache_key(request, provider.cache_salt)
        canonical = request.canonical()
        result.provider, result.cache_key, result.request = request.provider, key, canonical
        result.seed, result.seed_source = request.seed, request.seed_source
        result.adaptations = [dict(item) for item in request.adaptations]
        for adaptation in result.adaptations:  # a changed picture must not pass unnoticed
            if any("transparency" in str(action) for action in adaptation.get("actions") or []):
                result.warnings.append(f"input {str(adaptation.get('from', ''))[:19]}…: its transparency was flattened onto "
                                       "white (the model takes no alpha); give an opaque image to choose the background")
        if self._locked is not None:
            locked = (self._locked.get("steps") or {}).get(result.step_id)
            changes = lockfile.compare({"steps": {result.step_id: locked}}, {result.step_id: canonical}, False) if locked else []
            if changes or locked is None:
                detail = changes[0].format() if changes else f"{result.step_id}: not in the lockfile"
                raise StepFailed(f"--frozen: the resolved request differs from the lock ({detail})")
        cost = estimate(request.model, request.params, request.provider, self._prices)
        self.history.remember(result.step_id, key, canonical)

        forced = forced_reason(step, self.options)
        # One generation per key at a time, in this process and across processes sharing the
        # cache: a second step with the identical request waits, then finds the first one's result
        # instead of paying for it again.
        waiting = lambda: self._log(result, "waiting: another wanflow run is generating the same request")  # noqa: E731
        async with self._key_locks.setdefault(key, anyio.Lock()), process_lock(self.workspace.locks_dir, key, waiting), \
                shared_key_lock(self.workspace, key, waiting):
            again = forced is not None and key in self._generated  # already regenerated by this run
            entry = None if forced and not again else self.cache.lookup(key, origin=f"steps.{step.id}")
            broken = repairable_objects(self.cache.entry_path(key), self.store, self._workdir) \
                if entry is None and not forced else []
            # A damaged or missing object of a paid result: its still-valid URL serves it again.
            repaired = bool(broken) and await repair_from_urls(broken, self.store, self._workdir,
                                                               lambda message: self._log(result, message))
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
        self.reporter.step_started(result)
        gates = self.limits.gates(provider.name, request.model.name)
        # The model's slot first, then a job: a task queued behind one model's limit must not hold
        # a job that a step of another model could use.
        async with self.limits.slot(provider.name, request.model.name, on_queue=lambda depth: self._log(
            result, f"queued: {depth} waiting for {gates.label if gates else provider.name}"
        )), self._limiter:
            # A folder of its own beside the run's (no parent to create, no tree to remove later):
            # downloads land here and are moved into the store.
            workdir = _new_work_folder(self.workspace.tmp_dir, self.result.run_id)
            context = GenerationContext(
                workdir=workdir,
                cache_key=key,
                log=lambda message: self._log(result, message),
                known_urls=self._known_urls,
                journal=KeyJournal(self.journal, key, result.step_id, provider.name,
                                   claims=lambda: claimed_task_ids(self.workspace.state_dir),
                                   known=lambda: known_task_times(self.workspace.state_dir)) if provider.paid else None,
                resubmit_unknown=self.options.resubmit_unknown,
                cancel_on_interrupt=self.options.cancel_on_interrupt,
                before_create=gates.submits.take if gates is not None and gates.submits is not None else None,
                on_throttled=gates.submits.slow_down if gates is not None and gates.submits is not None else None,
                on_accepted=gates.submits.speed_up if gates is not None and gates.submits is not None else None,
                create_blocked=lambda: self.limits.creates_stopped(provider.name, request.model.name),
                uploads=UploadCache(self.workspace.state_dir / "uploads" / f"{provider.name}.json") if provider.paid else None,
            )
            try:
                generated = await provider.generate(request, context)
            except BaseException:
                _remove_folder(workdir)
                raise
        info = dict(generated.info)
        try:
            # Hashing, fsync and renames wait on the disk: one trip to a worker thread, not the
            # event loop. Shielded: an interrupt must not drop downloaded paid results.
            with anyio.CancelScope(shield=True):
                outputs, check = await anyio.to_thread.run_sync(self._store_results, step, request, provider, key,
                                                                canonical, generated, info, workdir)
            result.outputs = outputs
        finally:
            result.provider_info = info  # the task ids stay in the record even if the files were unusable
        tasks = ", ".join(str(task) for task in info.get("task_ids") or [])
        if info.get("resumed") or info.get("adopted"):  # paid earlier: "new" would hide that nothing was paid now
            result.reason = f"{'resumed' if info.get('resumed') else 'adopted'} task {tasks} (paid by an earlier run)"
        result.warnings.extend(generated.warnings)
        self._remember_urls(result)
        if check is not None:
            self._check_result(request, provider, key, result, check)
        self._generated.add(key)
        result.status = "ran"

    def _store_results(self, step: StepSpec, request: StepRequest, provider: Provider, key: str, canonical: dict,
                       generated: GenerationResult, info: dict, workdir: Path) -> tuple[StepOutputsData, ResultCheck | None]:
        """Store the files, check a paid result, and (if it matches) save the cache entry durably,
        then remove the journal entry: the paid work is safely stored. Blocking (a worker thread)."""
        try:
            outputs = self._ingest(step, request, generated, info, workdir)
        finally:
            _remove_folder(workdir)  # (a directory removal waits on the disk too)
        check = check_result(request, outputs) if provider.paid else None
        if check is None or not check.mismatches:
            self.cache.save(key, canonical, outputs, info)
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
        envelope = result.provider_info.get("envelope") or "documented"
        reason = (f"{provider.name} returned a result that does not match the request ({'; '.join(check.mismatches)}). "
                  f"The service evidently ignored the parameters; the likely cause is the request envelope "
                  f"(now '{envelope}': see 'envelope' under [providers.{provider.name}] in the README). "
                  f"No further {request.model.name} tasks go to {provider.name} in this run; the result is kept in "
                  f"the run record")
        self.limits.stop_creates(provider.name, request.model.name, reason)
        raise StepFailed(reason)

    def _resolve(self, step: StepSpec, item: tuple[int, object] | None = None) -> StepRequest:
        request, problems = resolve_step(self.pipeline, step, self._outputs, self.media, self.options.provider_override, item)
        if request is None:
            raise StepFailed("; ".join(problem.format() for problem in problems))
        return request

    def _log(self, result: StepResult, message: str) -> None:
        result.events.append({"at": round(time.time(), 3), "message": message})
        note = getattr(self.reporter, "step_note", None)
        if note is not None:
            note(result, message)

    def _remember_urls(self, result: StepResult) -> None:
        """Keep still-valid service URLs of a step's outputs so later steps can pass them by URL."""
        urls = result.provider_info.get("result_urls") or {}
        expires = float(result.provider_info.get("urls_expire_at") or 0)
        if expires > time.time():
            for sha, url in urls.items():
                self._known_urls[sha] = RemoteUrl(str(result.provider), url, expires)

    def _ingest(
        self, step: StepSpec, request: StepRequest, generated: GenerationResult, info: dict, workdir: Path
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

    def _write_named_outputs(self) -> None:
        context = base_context(self.pipeline, self._outputs)
        for name, text in self.pipeline.outputs.items():
            sources = referenced_steps(text).steps
            if any(self.result.steps[source].condition_skipped for source in sources if source in self.result.steps):
                continue  # its step was skipped on purpose
            try:
                value = render(text, context)
            except TemplateProblem as problem:
                self.result.output_errors[name] = _output_problem(problem.message)
                continue
            artifacts = [item for item in (value if isinstance(value, list) else [value]) if isinstance(item, Artifact)]
            if artifacts:
                self.result.outputs[name] = self.outputs_folder.write_output(name, artifacts)


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


def _output_problem(message: str) -> str:
    if message.startswith("unknown step"):
        return "its step did not finish"
    return message


def _unexpected(error: Exception) -> str:
    """A step's error for an exception wanflow did not raise itself: disk trouble is the user's to
    fix (and paid results are safe in the journal); anything else is a bug of ours."""
    if isinstance(error, OSError) and fs_errors.is_file_system_error(error):
        return fs_errors.describe(error) + "; paid results are safe in the journal, and the next run resumes them"
    return f"internal error: {type(error).__name__}: {error}"


def forced_reason(step: StepSpec, options: RunOptions) -> str | None:
    """Why ``step`` must run even if its result is cached, or None."""
    if not step.cache:
        return "cache: false on this step"
    if options.fresh_all:
        return "--fresh"
    if step.id in options.fresh_steps:
        return f"--fresh {step.id}"
    return None


def template_outputs(step: StepSpec, outputs: StepOutputsData | None) -> StepOutputs:
    """A step's stored outputs as templates of later steps see them."""
    assert outputs is not None
    available: dict[str, object] = {}
    produced = step.model.outputs_for({})  # the model's fields; presence below reflects the run
    if outputs.images or "images" in produced:
        available["images"] = OutputList(outputs.images, owner=f"steps.{step.id}")
    if outputs.video is not None:
        available["video"] = outputs.video
    if outputs.text is not None:
        available["text"] = outputs.text
    return StepOutputs(step.id, step.model.name, available)

