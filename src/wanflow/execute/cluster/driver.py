"""Dask as the engine: ``--cluster local:N`` (a LocalCluster of N worker processes) or
``--cluster tcp://HOST:8786`` (an existing scheduler); ``[cluster] address`` in wanflow.toml or
``WANFLOW_CLUSTER`` set it too.

The driver builds the plan (``runner.plan.build_plan``: budgets, ``--frozen`` and reseeds are
decided there, once) and submits one Dask future per instance of the matrix or batch (one for a
plain pipeline). A worker runs the very ``Runner`` a local run uses for that instance, on the same
project paths (one machine, or a shared mount) and the same shared store. On a worker:

- each cache key is generated under a ``distributed.Lock`` named after the key (on top of the OS
  lock and the shared store's lease), so identical requests in different instances run once;
- each provider/model's concurrent-task limit is a ``distributed.Semaphore`` with that many
  leases, so the limit holds cluster-wide, not per worker; like the submit rate below, it is kept
  per account (a short hash of the worker's API key for that provider), as the services count;
- each provider/model's submit rate is one token bucket for the whole cluster
  (``ClusterTokenBucket``): the times of its latest creates live in the scheduler and are booked
  under a ``distributed.Lock``, so N workers together keep the configured pace, not N times it;
- a worker that dies (``kill -9``) loses its OS locks at once and its Dask leases after
  ``distributed.scheduler.locks.lease-timeout`` (30 s by default); Dask runs the future again
  elsewhere, and the unit resumes from the journal (polling the same task: no second create).

The driver keeps at most ``SUBMIT_WINDOW`` units (``WANFLOW_CLUSTER_WINDOW``) submitted at once
(submitting the next as each finishes), gathers each instance's ``RunResult`` as it finishes, tells the reporter, and writes the
lockfile as a local batch does. Its Ctrl-C (or SIGTERM) cancels the futures not finished yet and
tells the workers to stop this driver's running units as a local Ctrl-C stops a run (Dask itself
cannot stop a running task): they stop waiting, flush their records as interrupted and keep remote
tasks in flight in the journal, so the next run resumes them. Then the client (and a local
cluster) closes. The workers of a local cluster ignore SIGINT (a terminal's Ctrl-C reaches the whole
process group), so only the driver acts on it. ``distributed`` comes with ``pip install 'wanflow[cluster]'`` and is
imported only here, only when a cluster is used.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread

from wanflow._exceptions import UsageError, WanflowError
from wanflow._settings import number_setting
from wanflow.execute.limits import TokenBucket, next_grant
from wanflow.execute.signals import stop_signals
from wanflow.records import lockfile
from wanflow.records.results import RunResult

_worker: Any = None  # the distributed.Worker this process serves, once a unit ran here
# Units submitted and not finished, at most: enough to keep any cluster busy, few enough that a
# 10,000-row batch does not keep every row's spec in the scheduler's memory at once.
SUBMIT_WINDOW = 512


def active() -> bool:
    """Whether this process is a Dask worker running wanflow units."""
    return _worker is not None


def address_for(options_cluster: str | None, config: Mapping[str, Any]) -> str | None:
    """The cluster to use: the flag, else WANFLOW_CLUSTER, else ``[cluster] address``; None: run locally."""
    value = options_cluster or os.environ.get("WANFLOW_CLUSTER", "").strip() or (config.get("cluster") or {}).get("address")
    return str(value).strip() or None if value else None


CONNECT_SECONDS = 5.0  # how long a remote scheduler may take to answer


def _client(address: str) -> tuple[Any, Any]:
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise UsageError("--cluster needs Dask's distributed: pip install 'wanflow[cluster]'") from None
    if address.startswith("local:"):
        try:
            workers = int(address.split(":", 1)[1])
        except ValueError:
            workers = 0
        if workers < 1:
            raise UsageError(f"--cluster {address}: say local:N with N at least 1 worker")
        local = LocalCluster(n_workers=workers, threads_per_worker=4, processes=True, dashboard_address=None)
        client = Client(local)
        client.register_plugin(_ignore_interrupts(), name="wanflow-ignore-sigint")
        return client, local
    if "://" not in address:
        raise UsageError(f"--cluster {address}: expected local:N or a scheduler address such as tcp://HOST:8786")
    try:  # a scheduler that is not there is a clear exit 2 within seconds, before anything is sent
        return Client(address, timeout=CONNECT_SECONDS), None
    except (OSError, TimeoutError, ValueError) as error:
        raise UsageError(f"--cluster {address}: no Dask scheduler answered within {CONNECT_SECONDS:g} s "
                         f"({type(error).__name__}: {str(error)[:160]}); check the address and that the scheduler runs") from None


def _ignore_interrupts() -> Any:
    """A worker plugin for our own LocalCluster: its worker processes ignore SIGINT. A terminal's
    Ctrl-C reaches the whole process group; the driver alone handles it (it stops the units
    gracefully, then closes the cluster), so the workers neither die mid-task nor print tracebacks."""
    from distributed import WorkerPlugin

    class IgnoreInterrupts(WorkerPlugin):
        def setup(self, worker: Any) -> None:
            import signal
            import threading

            if threading.current_thread() is threading.main_thread():  # where signal handlers are set
                signal.signal(signal.SIGINT, signal.SIG_IGN)

    return IgnoreInterrupts()


def unit_key(pipeline_name: str, instance: str, cache_keys: list[str], run_token: str) -> str:
    """The Dask key of one instance's work: its name and the cache keys of its units, within one
    driver's run. Identical units of one submission collapse; another driver's identical unit is
    its own Dask task (which waits on the key locks and finds the cache), so that one driver's
    Ctrl-C never stops a unit another driver is waiting for."""
    digest = hashlib.sha256("\n".join([instance, *sorted(cache_keys)]).encode("utf-8")).hexdigest()[:20]
    return f"wanflow-{pipeline_name}-{instance}-{digest}-{run_token}"


def run_unit(spec: dict[str, Any]) -> RunResult:
    """On a worker: run one instance with the local runner, against the shared paths and store.

    Every unit of a worker process runs on one event loop with one set of providers and one
    workspace per project, as the instances of a local batch do: an HTTP client costs an SSL
    context (tens of ms) and an S3 store a session, which a unit must not pay each time.
    """
    global _worker
    from distributed import get_worker

    from wanflow.execute.instance import Runner

    _worker = get_worker()
    portal, workspace, providers = _worker_state(spec)
    runner = Runner(spec["pipeline"], workspace, providers, spec["options"])
    runner.prepared = {"locked": spec["locked"]}

    async def interruptible() -> RunResult:
        with anyio.CancelScope() as scope:
            with _units_guard:
                _units[spec["key"]] = (anyio.lowlevel.current_token(), scope)
            try:
                return await runner.run()
            finally:
                with _units_guard:
                    _units.pop(spec["key"], None)
                for provider in providers.values():  # what polling learned, kept as a local run keeps it
                    durations = getattr(provider, "durations", None)
                    if durations is not None:
                        durations.flush()
        runner.result.interrupted = True  # the driver's Ctrl-C: the runner flushed its record as interrupted
        return runner.result

    result: RunResult = portal.call(interruptible)
    return result


_state_guard = threading.Lock()
_portal: Any = None  # the worker process's event loop for units (a BlockingPortal on a daemon thread)
_workspaces: dict[tuple[str, ...], Any] = {}
_providers: dict[tuple[str, ...], Any] = {}


def _worker_state(spec: dict[str, Any]) -> tuple[Any, Any, Any]:
    """This worker process's unit loop, and the workspace and providers for ``spec`` (made once)."""
    global _portal
    from wanflow.providers import create_providers
    from wanflow.state.workspace import Workspace

    with _state_guard:
        if _portal is None:
            _portal = _start_loop()
        # per driver run too: a long-lived cluster must read a project's wanflow.toml as it is now
        place = (spec["run"], spec["root"], spec["state_dir"], spec["out_dir"], spec["store_url"] or "")
        if place not in _workspaces:
            while len(_workspaces) >= 8:  # the oldest runs' (dicts keep insertion order)
                _workspaces.pop(next(iter(_workspaces)))
            _workspaces[place] = Workspace(Path(spec["root"]), Path(spec["state_dir"]), Path(spec["out_dir"]), spec["store_url"])
        # per driver run as well: a changed API key or envelope setting is read anew
        names = (spec["run"], *spec["providers"])
        if names not in _providers:
            while len(_providers) >= 8:  # the oldest runs' (their HTTP clients are simply dropped)
                _providers.pop(next(iter(_providers)))
            _providers[names] = create_providers(set(spec["providers"]))
        return _portal, _workspaces[place], _providers[names]


def _start_loop() -> Any:
    """An event loop on a daemon thread (it never keeps a stopping worker alive), as a BlockingPortal."""
    import queue

    from anyio.from_thread import BlockingPortal

    ready: queue.Queue[Any] = queue.Queue()

    async def serve() -> None:
        async with BlockingPortal() as portal:
            ready.put(portal)
            await anyio.sleep_forever()

    threading.Thread(target=anyio.run, args=(serve,), name="wanflow-units", daemon=True).start()
    return ready.get()


_units: dict[str, tuple[Any, anyio.CancelScope]] = {}  # Dask key -> (event loop token, cancel scope) of units running here
_units_guard = threading.Lock()


def _interrupt(keys: list[str]) -> int:
    """On a worker: stop the units with these Dask keys as a local Ctrl-C stops a run (the journal keeps
    remote tasks in flight; records say "interrupted"). Returns how many were running here."""
    with _units_guard:
        running = [_units[key] for key in keys if key in _units]
    for token, scope in running:
        try:
            anyio.from_thread.run_sync(scope.cancel, token=token)
        except RuntimeError:  # that unit's event loop has just finished
            pass
    return len(running)


@asynccontextmanager
async def key_lock(key: str, on_wait: Callable[[], None] | None = None) -> AsyncIterator[None]:
    """Hold the cluster-wide lock of a cache key (on a worker)."""
    from distributed import Lock

    lock = Lock(f"wanflow-key-{key}", scheduler_rpc=_worker.scheduler, loop=_worker.loop)
    if not await anyio.to_thread.run_sync(lambda: lock.acquire(blocking=False)):
        if on_wait is not None:
            on_wait()
        await anyio.to_thread.run_sync(lock.acquire)
    try:
        yield
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(lock.release)


@asynccontextmanager
async def model_slot(provider: str, model: str, concurrent: int) -> AsyncIterator[None]:
    """Hold one of ``concurrent`` cluster-wide task slots of a provider's model (on a worker)."""
    semaphore = _semaphore(provider, model, concurrent)
    await anyio.to_thread.run_sync(semaphore.acquire)
    try:
        yield
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(semaphore.release)


def _account(provider: str) -> str:
    """Which account this worker uses for ``provider``: a short hash of its API key (never the key),
    so workers with different keys keep separate limits and workers sharing one key share them."""
    for made in reversed(_providers.values()):  # the latest run's providers first
        config = getattr(made.get(provider), "config", None)
        key = getattr(config, "api_key", "") if config is not None else ""
        if key:
            return hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]
    return "default"


_semaphores: dict[tuple[str, str], Any] = {}


def _semaphore(provider: str, model: str, concurrent: int) -> Any:
    """One Semaphore client per worker process and model, never closed: closing a distributed
    Semaphore closes it for every holder in the cluster (the leases of other units included)."""
    from distributed import Semaphore

    key = (provider, model)
    if key not in _semaphores:
        _semaphores[key] = Semaphore(concurrent, f"wanflow-slots-{provider}-{_account(provider)}-{model}",
                                     scheduler_rpc=_worker.scheduler, loop=_worker.loop)
    return _semaphores[key]


class ClusterTokenBucket(TokenBucket):
    """A provider/model's submit rate for the whole cluster (on a worker).

    The latest ``burst`` grant times live in the scheduler's metadata under ``wanflow-rate-<name>``;
    each ``take`` books the next time under a ``distributed.Lock`` (a lease: a dead worker's lock
    is freed), then sleeps until it. Times are wall-clock seconds, so the workers' clocks must agree
    (one machine, or NTP). Each runner still adapts its own pace to 429s (``slow_down``) and books
    with it.
    """

    def __init__(self, name: str, rate: float, burst: int = 1) -> None:
        super().__init__(rate, burst, clock=time.time)
        self.name = name

    async def take(self) -> None:
        """Wait until one more create keeps the cluster within the pace."""
        at = await anyio.to_thread.run_sync(self._book)
        delay = at - time.time()
        if delay > 0:
            await anyio.sleep(delay)

    def _book(self) -> float:
        from distributed.utils import sync

        metadata_key = [f"wanflow-rate-{self.name}"]
        lock = _rate_lock(self.name)
        lock.acquire()
        try:
            granted = sync(_worker.loop, _worker.scheduler.get_metadata, keys=metadata_key, default=None) or []
            at = next_grant(list(granted), time.time(), self.burst, self.window)  # the local bucket's rule
            sync(_worker.loop, _worker.scheduler.set_metadata, keys=metadata_key, value=[*granted, at][-self.burst:])
            return at
        finally:
            lock.release()


_rate_locks: dict[str, Any] = {}
_rate_locks_guard = threading.Lock()


def _rate_lock(name: str) -> Any:
    """One Lock client per worker process and bucket (kept, like the semaphores)."""
    from distributed import Lock

    with _rate_locks_guard:
        if name not in _rate_locks:
            _rate_locks[name] = Lock(f"wanflow-rate-{name}", scheduler_rpc=_worker.scheduler, loop=_worker.loop)
        return _rate_locks[name]


def submit_bucket(provider: str, model: str, rate: float, burst: int) -> TokenBucket:
    """The submit-rate bucket of ``provider``/``model``: cluster-wide on a worker, this process's otherwise."""
    if active():
        return ClusterTokenBucket(f"{provider}-{_account(provider)}-{model}", rate, burst)
    return TokenBucket(rate, burst)


async def execute_on_cluster(the_plan: Any, workspace: Any, providers: Mapping[str, Any], address: str,
                             reporter: Any, on_instance_done: Callable[[str, RunResult], None] | None) -> Any:
    """Run ``the_plan`` on the cluster at ``address``; a RunResult or a BatchResult, as ``execute`` returns."""
    from wanflow.execute.batch import BatchResult, _Prefixed

    pipeline = the_plan.pipeline
    instances = the_plan.instances
    specs = []
    run_token = os.urandom(8).hex()
    for instance in instances:
        options = replace(the_plan.options, instance=instance.name, write_lock=False, handle_signals=False, cluster=None)
        specs.append({
            "run": run_token, "root": str(workspace.root), "state_dir": str(workspace.state_dir), "out_dir": str(workspace.out_dir),
            "store_url": workspace.store_url, "options": options,
            # absolute: a worker of an existing cluster does not share the driver's working directory
            "pipeline": replace(instance.pipeline, path=instance.pipeline.path.resolve()),
            "providers": sorted(providers), "locked": the_plan.locked.get(instance.name),
            "key": unit_key(pipeline.name, instance.name,
                            [unit.cache_key for unit in the_plan.units.get(instance.name, []) if unit.cache_key], run_token),
        })
    results: dict[str, RunResult] = {}

    def tell(name: str, result: RunResult) -> None:
        results[name] = result
        if the_plan.batch and reporter is not None:
            prefixed = _Prefixed(reporter, name)
            for step in result.steps.values():
                prefixed.step_finished(step)
        elif reporter is not None:
            for step in result.steps.values():
                reporter.step_finished(step)
        if on_instance_done is not None and the_plan.batch:
            on_instance_done(name, result)

    stop = threading.Event()  # Ctrl-C or SIGTERM on the driver
    live: dict[str, Any] = {}  # the client and the futures not finished yet, once submitted
    guard = threading.Lock()  # over live["futures"]: drive() changes it, cancel() reads it

    def cancel() -> None:
        stop.set()
        with guard:
            state = dict(live)  # drive() clears it when it returns
            futures = list(state.get("futures", {}))
        if "client" not in state:
            return
        client = state["client"]
        calls: list[tuple[Callable[..., Any], tuple[Any, ...]]] = [
            (client.run, (_interrupt, [future.key for future in futures])),  # first: Dask cannot stop a running task
            (client.cancel, (futures,)),  # wakes as_completed up: cancelled futures are done
        ]
        if state["local"] is not None:  # our own workers are about to stop: no log noise about it
            calls.insert(0, (client.run, (_quiet,)))
        for call, args in calls:
            try:
                call(*args)
            except Exception:  # a worker died meanwhile (a terminal's Ctrl-C reaches our local workers too)
                continue

    def drive() -> None:
        from distributed import as_completed

        client, local = _client(address)
        waiting = iter(specs)
        futures: dict[Any, str] = {}
        finished = as_completed()

        def submit_next() -> None:
            spec = next(waiting, None)
            if spec is not None and not stop.is_set():
                future = client.submit(run_unit, spec, key=spec["key"], pure=False)
                with guard:
                    futures[future] = spec["options"].instance
                finished.add(future)

        try:
            with guard:
                live.update(client=client, futures=futures, local=local)
            window = int(number_setting("WANFLOW_CLUSTER_WINDOW", SUBMIT_WINDOW))
            for _ in range(max(1, window)):  # not all at once: the scheduler keeps each waiting unit's spec
                submit_next()
            try:
                for future in finished:
                    if stop.is_set():
                        return
                    with guard:
                        name = futures.pop(future)  # done: the scheduler may forget it
                    anyio.from_thread.run_sync(tell, name, _result_of(future, name))
                    submit_next()
            except BaseException:
                with guard:
                    client.cancel(list(futures))
                raise
        finally:
            with guard:
                live.clear()
            client.close()
            if local is not None:
                local.close()  # its workers stop mid-task; the journal keeps what they paid for

    failed: list[BaseException] = []

    def drive_once() -> None:
        try:
            drive()
        except BaseException as error:  # raised below as itself, not inside the task group's ExceptionGroup
            failed.append(error)

    async with anyio.create_task_group() as group:
        if the_plan.options.handle_signals:
            group.start_soon(_cancel_on_signal, cancel)
        await anyio.to_thread.run_sync(drive_once)
        group.cancel_scope.cancel()
    if failed:
        raise failed[0]
    if stop.is_set() and not the_plan.batch and instances[0].name not in results:
        raise KeyboardInterrupt  # the CLI says "interrupted" and exits 130; the journal keeps paid tasks
    if not the_plan.batch:
        result = results[instances[0].name]
        if result.ok and the_plan.options.write_lock:
            path = lockfile.lock_path(pipeline)
            lockfile.write_lock(path, pipeline.name, {the_plan.options.instance: lockfile.instance_entry(pipeline, result)},
                                keep=lockfile.read_lock(path))
        return result
    batch = BatchResult(instances={instance.name: results[instance.name] for instance in instances if instance.name in results},
                        rejected=list(the_plan.rejected), interrupted=stop.is_set())
    if batch.instances and the_plan.options.write_lock and instances:
        entries = {instance.name: lockfile.instance_entry(instance.pipeline, batch.instances[instance.name])
                   for instance in instances if instance.name in batch.instances and batch.instances[instance.name].ok}
        path = lockfile.lock_path(instances[0].pipeline)
        lockfile.write_lock(path, instances[0].pipeline.name, entries, keep=lockfile.read_lock(path))
    return batch


def _result_of(future: Any, instance: str) -> RunResult:
    """A unit's RunResult; a unit whose workers kept dying is a clear error, not a traceback."""
    from distributed import KilledWorker

    try:
        result: RunResult = future.result()
    except KilledWorker as error:
        raise WanflowError(f"instance {instance}: its worker died again and again, so Dask gave up ({error}); "
                           "paid tasks are journaled and the next run resumes them") from None
    return result


def _quiet() -> None:
    """On a worker of our own LocalCluster being stopped: Dask's warnings about cancelled work are noise."""
    import logging

    logging.disable(logging.CRITICAL)


async def _cancel_on_signal(cancel: Callable[[], None]) -> None:
    """The driver's Ctrl-C or SIGTERM: cancel the futures not finished (once; the driver then stops)."""
    with stop_signals() as signals:
        async for _ in signals:
            await anyio.to_thread.run_sync(cancel)
            return
