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
  leases, so the limit holds cluster-wide, not per worker;
- a worker that dies (``kill -9``) loses its Dask leases and its OS locks; Dask runs the future
  again elsewhere, and the unit resumes from the journal (polling the same task: no second create).

The driver gathers each instance's ``RunResult`` as it finishes, tells the reporter, and writes the
lockfile as a local batch does. ``distributed`` comes with ``pip install 'wanflow[cluster]'`` and is
imported only here, only when a cluster is used.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread

from wanflow._exceptions import UsageError
from wanflow.runner import lockfile
from wanflow.runner.results import RunResult

_worker: Any = None  # the distributed.Worker this process serves, once a unit ran here


def active() -> bool:
    """Whether this process is a Dask worker running wanflow units."""
    return _worker is not None


def address_for(options_cluster: str | None, config: Mapping[str, Any]) -> str | None:
    """The cluster to use: the flag, else WANFLOW_CLUSTER, else ``[cluster] address``; None: run locally."""
    value = options_cluster or os.environ.get("WANFLOW_CLUSTER", "").strip() or (config.get("cluster") or {}).get("address")
    return str(value).strip() or None if value else None


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
        return Client(local), local
    if "://" not in address:
        raise UsageError(f"--cluster {address}: expected local:N or a scheduler address such as tcp://HOST:8786")
    return Client(address), None


def unit_key(pipeline_name: str, instance: str, cache_keys: list[str]) -> str:
    """The Dask key of one instance's work: its name and the cache keys of its units."""
    digest = hashlib.sha256("\n".join([instance, *sorted(cache_keys)]).encode("utf-8")).hexdigest()[:20]
    return f"wanflow-{pipeline_name}-{instance}-{digest}"


def run_unit(spec: dict[str, Any]) -> RunResult:
    """On a worker: run one instance with the local runner, against the shared paths and store."""
    global _worker
    from distributed import get_worker

    from wanflow._api import closing
    from wanflow.providers import create_providers
    from wanflow.runner.scheduler import Runner
    from wanflow.runner.workspace import Workspace

    _worker = get_worker()
    workspace = Workspace(Path(spec["root"]), Path(spec["state_dir"]), Path(spec["out_dir"]), spec["store_url"])
    providers = create_providers(set(spec["providers"]))
    runner = Runner(spec["pipeline"], workspace, providers, spec["options"])
    runner.prepared = {"locked": spec["locked"]}
    return anyio.run(closing, providers, runner.run)


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


_semaphores: dict[tuple[str, str], Any] = {}


def _semaphore(provider: str, model: str, concurrent: int) -> Any:
    """One Semaphore client per worker process and model, never closed: closing a distributed
    Semaphore closes it for every holder in the cluster (the leases of other units included)."""
    from distributed import Semaphore

    key = (provider, model)
    if key not in _semaphores:
        _semaphores[key] = Semaphore(concurrent, f"wanflow-slots-{provider}-{model}",
                                     scheduler_rpc=_worker.scheduler, loop=_worker.loop)
    return _semaphores[key]


async def execute_on_cluster(the_plan: Any, workspace: Any, providers: Mapping[str, Any], address: str,
                             reporter: Any, on_instance_done: Callable[[str, RunResult], None] | None) -> Any:
    """Run ``the_plan`` on the cluster at ``address``; a RunResult or a BatchResult, as ``execute`` returns."""
    from wanflow.runner.batch import BatchResult, _Prefixed

    pipeline = the_plan.pipeline
    instances = the_plan.instances
    specs = []
    for instance in instances:
        options = replace(the_plan.options, instance=instance.name, write_lock=False, handle_signals=False, cluster=None)
        specs.append({
            "root": str(workspace.root), "state_dir": str(workspace.state_dir), "out_dir": str(workspace.out_dir),
            "store_url": workspace.store_url, "pipeline": instance.pipeline, "options": options,
            "providers": sorted(providers), "locked": the_plan.locked.get(instance.name),
            "key": unit_key(pipeline.name, instance.name,
                            [unit.cache_key for unit in the_plan.units.get(instance.name, []) if unit.cache_key]),
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

    def drive() -> None:
        from distributed import as_completed

        client, local = _client(address)
        try:
            futures = {client.submit(run_unit, spec, key=spec["key"], pure=False): spec["options"].instance for spec in specs}
            try:
                for future in as_completed(list(futures)):
                    result = future.result()
                    anyio.from_thread.run_sync(tell, futures[future], result)
            except BaseException:
                client.cancel(list(futures))
                raise
        finally:
            client.close()
            if local is not None:
                local.close()

    await anyio.to_thread.run_sync(drive)
    if not the_plan.batch:
        result = results[instances[0].name]
        if result.ok and the_plan.options.write_lock:
            path = lockfile.lock_path(pipeline)
            lockfile.write_lock(path, pipeline.name, {the_plan.options.instance: lockfile.instance_entry(pipeline, result)},
                                keep=lockfile.read_lock(path))
        return result
    batch = BatchResult(instances={instance.name: results[instance.name] for instance in instances if instance.name in results},
                        rejected=list(the_plan.rejected))
    if batch.instances and the_plan.options.write_lock and instances:
        entries = {instance.name: lockfile.instance_entry(instance.pipeline, batch.instances[instance.name])
                   for instance in instances if instance.name in batch.instances and batch.instances[instance.name].ok}
        path = lockfile.lock_path(instances[0].pipeline)
        lockfile.write_lock(path, instances[0].pipeline.name, entries, keep=lockfile.read_lock(path))
    return batch
