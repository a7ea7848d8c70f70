"""The worker side of a Dask run: one unit (an instance) at a time on a shared event loop, and the
``DaskCoordinator`` that holds cache keys, model slots and the submit pace cluster-wide.

See ``wanflow.execute.cluster.driver`` for the whole design."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread

from wanflow._settings import number_setting
from wanflow.execute.coordination import nothing_to_hold
from wanflow.execute.pacing import TokenBucket, next_grant
from wanflow.records.results import RunResult


def run_unit(spec: dict[str, Any]) -> RunResult:
    """On a worker: run one instance with the code a local run uses, against the shared paths and store.

    Every unit of a worker process runs on one event loop with one set of providers and one
    workspace per project, as the instances of a local batch do: an HTTP client costs an SSL
    context (tens of ms) and an S3 store a session, which a unit must not pay each time.
    """
    global _worker
    from distributed import get_worker

    from wanflow.execute.batch import BatchResult, run_instances, shared_state
    from wanflow.pipelines.instances import Instance
    from wanflow.planning.planner import Plan

    _worker = get_worker()
    portal, workspace, providers = _worker_state(spec)
    options = spec["options"]
    name = options.instance
    unit = Plan(spec["pipeline"], options, [Instance(name, spec["pipeline"])], {}, {name: spec["locked"]}, batch=True)
    outcome = BatchResult()

    async def interruptible() -> RunResult:
        with anyio.CancelScope() as scope:
            with _units_guard:
                _units[spec["key"]] = (anyio.lowlevel.current_token(), scope)
            try:
                await run_instances(unit, workspace, providers, shared=shared_state(workspace, options, True, DaskCoordinator()),
                                    outcome=outcome)
            finally:
                with _units_guard:
                    _units.pop(spec["key"], None)
                for provider in providers.values():  # what polling learned, kept as a local run keeps it
                    durations = getattr(provider, "durations", None)
                    if durations is not None:
                        durations.flush()
        result = outcome.instances[name]
        if scope.cancelled_caught:
            result.interrupted = True  # the driver's Ctrl-C: the runner flushed its record as interrupted
        return result

    result: RunResult = portal.call(interruptible)
    return result


_state_guard = threading.Lock()


_portal: Any = None  # the worker process's event loop for units (a BlockingPortal on a daemon thread)


_workspaces: dict[tuple[str, ...], Any] = {}


_providers: dict[tuple[str, ...], Any] = {}


def _worker_state(spec: dict[str, Any]) -> tuple[Any, Any, Any]:
    """This worker process's unit loop, and the workspace and providers for ``spec`` (made once)."""
    global _portal
    from wanflow.providers.registry import create_providers
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
            _providers[names] = create_providers(set(spec["providers"]), project=_workspaces[place].config())
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


def interrupt_units(keys: list[str]) -> int:
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


KEY_LOCKS = 1024  # cluster-wide key lock stripes (WANFLOW_CLUSTER_KEY_LOCKS)

_key_locks: dict[str, Any] = {}


def key_stripe(key: str, stripes: int) -> str:
    """The name of the cluster lock that guards cache key ``key``: one of ``stripes``.

    Dask keeps a lock's state in the scheduler until it is closed, and closing is a hard close
    that breaks another worker waiting on it; a lock per key therefore grew the scheduler by one
    entry per row for good. Two keys in one stripe only wait for each other (a unit holds one key
    lock at a time, and takes its task slot inside it, so no cycle can form); the per-process and
    OS locks stay per key.
    """
    return f"wanflow-key-{int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % stripes}"


def _key_lock(name: str) -> Any:
    """One Lock client per worker process and stripe (a Lock client refreshes its leases on a timer)."""
    from distributed import Lock

    with _rate_locks_guard:
        if name not in _key_locks:
            _key_locks[name] = Lock(name, scheduler_rpc=_worker.scheduler, loop=_worker.loop)
        return _key_locks[name]


class DaskCoordinator:
    """On a Dask worker: a cache key, a model's task slots and its submit pace held cluster-wide."""

    @asynccontextmanager
    async def key_lock(self, key: str, on_wait: Callable[[], None] | None = None) -> AsyncIterator[None]:
        """Hold the cluster-wide lock of a cache key (on a worker): one of a fixed number of lock
        stripes (``key_stripe``), so the scheduler's lock table does not grow with the keys."""
        lock = _key_lock(key_stripe(key, int(number_setting("WANFLOW_CLUSTER_KEY_LOCKS", KEY_LOCKS))))
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
    async def _slot(self, provider: str, model: str, concurrent: int) -> AsyncIterator[None]:
        """Hold one of ``concurrent`` cluster-wide task slots of a provider's model (on a worker)."""
        semaphore = _semaphore(provider, model, concurrent)
        await anyio.to_thread.run_sync(semaphore.acquire)
        try:
            yield
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(semaphore.release)

    def model_slot(self, provider: str, model: str, concurrent: int | None) -> AbstractAsyncContextManager[None]:
        """One of ``concurrent`` cluster-wide task slots (nothing to hold when unlimited)."""
        return self._slot(provider, model, concurrent) if concurrent is not None else nothing_to_hold()

    def submit_bucket(self, provider: str, model: str, rate: float, burst: int) -> TokenBucket:
        """The submit pace of ``provider``/``model`` for the whole cluster (per account)."""
        return ClusterTokenBucket(f"{provider}-{_account(provider)}-{model}", rate, burst)


_worker: Any = None  # the distributed.Worker this process serves, once a unit ran here
