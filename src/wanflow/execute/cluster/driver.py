"""Dask as the engine: ``--cluster local:N`` (a LocalCluster of N worker processes) or
``--cluster tcp://HOST:8786`` (an existing scheduler); ``[cluster] address`` in wanflow.toml or
``WANFLOW_CLUSTER`` set it too.

The driver builds the plan (``runner.plan.build_plan``: budgets, ``--frozen`` and reseeds are
decided there, once) and submits one Dask future per instance of the matrix or batch (one for a
plain pipeline). A worker runs the very ``Runner`` a local run uses for that instance, on the same
project paths (one machine, or a shared mount) and the same shared store. On a worker:

- each cache key is generated under a ``distributed.Lock`` (on top of the OS lock and the shared
  store's lease), so identical requests in different instances run once; the keys share a fixed
  number of such locks (``worker.key_stripe``), so the scheduler does not keep one per row;
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
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread

from wanflow._exceptions import UsageError, WanflowError
from wanflow._settings import number_setting
from wanflow.execute.signals import stop_on_signal
from wanflow.records.results import RunResult

# Units submitted and not finished, at most: enough to keep any cluster busy, few enough that a
# 10,000-row batch does not keep every row's spec in the scheduler's memory at once.
SUBMIT_WINDOW = 512


CONNECT_SECONDS = 5.0  # how long a remote scheduler may take to answer
# A unit with an open-weights step goes only to workers started with `--resources GPU=1`.
GPU_RESOURCES = {"GPU": 1}


def needs_gpu(pipeline: Any) -> bool:
    """Whether a step of ``pipeline`` runs open weights (provider diffusers) and so needs a GPU worker."""
    return any(step.model.open_weights is not None for step in pipeline.steps.values())


def _check_gpu_workers(client: Any, specs: list[dict[str, Any]]) -> None:
    """A clear error, before anything is sent, when GPU units would wait for a GPU worker forever."""
    if not any(spec["resources"] for spec in specs):
        return
    workers = client.scheduler_info().get("workers", {}).values()
    if not any(worker.get("resources", {}).get("GPU", 0) >= 1 for worker in workers):
        raise UsageError("this pipeline runs open weights (provider diffusers) but no worker of the cluster declares a GPU: "
                         "start GPU workers with `dask worker SCHEDULER --resources GPU=1` (see README, 'Your own GPU')")


# Dask keeps each comm's last messages for debugging (1,000 by default). A unit's message carries its
# whole pipeline, so at a 10,000-row batch those copies, not the work, were most of the scheduler's
# memory: 145 MB at 1,000 rows, 259 MB at 5,000 (benchmarks/cluster_batch.py). A short log keeps it flat.
MESSAGE_LOG_KEY = "distributed.admin.low-level-log-length"
MESSAGE_LOG_LENGTH = 50


def short_message_log() -> None:
    """Keep Dask's per-comm message log short in this process (the driver's client, and the scheduler
    of a ``local:N`` cluster), unless the user set it to something other than Dask's default."""
    import dask

    if dask.config.get(MESSAGE_LOG_KEY, 1000) == 1000:
        dask.config.set({MESSAGE_LOG_KEY: MESSAGE_LOG_LENGTH})


def local_cluster(workers: int) -> Any:
    """The ``local:N`` cluster: N worker processes of 4 unit threads, the scheduler in this process."""
    from distributed import LocalCluster

    short_message_log()
    return LocalCluster(n_workers=workers, threads_per_worker=4, processes=True, dashboard_address=None)


def _client(address: str) -> tuple[Any, Any]:
    try:
        from distributed import Client
    except ImportError:
        raise UsageError("--cluster needs Dask's distributed: pip install 'wanflow[cluster]'") from None
    if address.startswith("local:"):
        try:
            workers = int(address.split(":", 1)[1])
        except ValueError:
            workers = 0
        if workers < 1:
            raise UsageError(f"--cluster {address}: say local:N with N at least 1 worker")
        local = local_cluster(workers)
        client = Client(local)
        client.register_plugin(_ignore_interrupts(), name="wanflow-ignore-sigint")
        return client, local
    if "://" not in address:
        raise UsageError(f"--cluster {address}: expected local:N or a scheduler address such as tcp://HOST:8786")
    short_message_log()
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


async def execute_on_cluster(the_plan: Any, workspace: Any, providers: Mapping[str, Any], address: str,
                             reporter: Any) -> Any:
    """Run ``the_plan`` on the cluster at ``address``: a BatchResult, as a local run gives."""
    from wanflow.execute.batch import BatchResult, _Prefixed
    from wanflow.execute.cluster.worker import interrupt_units, run_unit

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
            "resources": GPU_RESOURCES if needs_gpu(instance.pipeline) else None,
            "key": unit_key(pipeline.name, instance.name,
                            [unit.cache_key for unit in the_plan.units.get(instance.name, []) if unit.cache_key], run_token),
        })
    results: dict[str, RunResult] = {}

    finished = getattr(reporter, "instance_finished", None) if the_plan.batch else None

    def tell(name: str, result: RunResult) -> None:
        results[name] = result
        if reporter is not None:
            heard = _Prefixed(reporter, name) if the_plan.batch else reporter
            for step in result.steps.values():
                heard.step_finished(step)
        if finished is not None:
            finished(name, result)

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
            (client.run, (interrupt_units, [future.key for future in futures])),  # first: Dask cannot stop a running task
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
                # local:N shares this machine's GPU through the provider's device slot; a real cluster routes by resource
                resources = spec["resources"] if local is None else None
                future = client.submit(run_unit, spec, key=spec["key"], pure=False, resources=resources)
                with guard:
                    futures[future] = spec["options"].instance
                finished.add(future)

        try:
            with guard:
                live.update(client=client, futures=futures, local=local)
            if local is None:
                _check_gpu_workers(client, specs)
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
            group.start_soon(stop_on_signal, lambda _name: anyio.to_thread.run_sync(cancel))
        await anyio.to_thread.run_sync(drive_once)
        group.cancel_scope.cancel()
    if failed:
        raise failed[0]
    return BatchResult(instances={instance.name: results[instance.name] for instance in instances if instance.name in results},
                       rejected=list(the_plan.rejected), interrupted=stop.is_set())


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
