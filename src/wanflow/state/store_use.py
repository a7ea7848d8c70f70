"""Who uses the shared store now, so that ``cache gc`` never sweeps under a running run.

Machines hold no lock another can see, so the store keeps two kinds of objects for this:

    uses/<owner>.json            a run (any machine) uses the store: {"owner", "expires"}, renewed
    leases/sweep/<epoch>.json    a ``cache gc`` sweeps the store (a ``KeyLease`` of the name "sweep")

A run writes its use marker *then* looks for a held sweep lease; a gc takes the sweep lease *then*
lists the use markers. On a store that reads its own writes (S3 since 2020, a file system), at
least one of the two sees the other: the run waits for the sweep to end, or the gc removes nothing
from the store. A killed run stops renewing; its marker counts until it expires
(``LEASE_SECONDS``), as a key's lease does.
"""

from __future__ import annotations

import functools
import json
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio

from wanflow._settings import number_setting
from wanflow.state.shared_store import _EPOCH, LEASE_SECONDS, POLL_SECONDS, KeyLease, _held, renewed

if TYPE_CHECKING:
    from wanflow.state.shared_store import SharedStore

SWEEP_KEY = "sweep"


class UseMarker:
    """One run's ``uses/<owner>.json``."""

    def __init__(self, store: SharedStore, seconds: float) -> None:
        self.store = store
        self.seconds = seconds
        import socket  # only with a shared store: ~4 ms to import

        self.owner = f"{socket.gethostname()}-{os.getpid()}-{os.urandom(4).hex()}"
        self.name = f"uses/{self.owner}.json"

    def mark(self) -> None:
        """Write (or renew) the marker."""
        self.store.write(self.name, json.dumps({"owner": self.owner, "expires": time.time() + self.seconds}).encode())

    def clear(self) -> None:
        self.store.delete(self.name)


def sweeping(store: SharedStore) -> bool:
    """Whether a ``cache gc`` holds the store's sweep lease now."""
    epochs = sorted(int(name[:-5]) for name in store.names(f"leases/{SWEEP_KEY}") if _EPOCH.fullmatch(name))
    return bool(epochs) and _held(store.read(f"leases/{SWEEP_KEY}/{epochs[-1]:08d}.json"))


def live_uses(store: SharedStore) -> list[str]:
    """The use markers that still count: unexpired ones, and damaged ones (fail closed: a marker
    that cannot be read may be a live run's; delete it by hand if no run is alive)."""
    live = []
    for name in store.names("uses"):
        data = store.read(f"uses/{name}")
        if data is None:
            continue  # removed since the listing: its run ended
        try:
            expires = float(json.loads(data)["expires"])
        except (ValueError, TypeError, KeyError, RecursionError):
            live.append(f"uses/{name} (damaged)")
            continue
        if expires > time.time():
            live.append(name.removesuffix(".json"))
    return live


def sweep_lease(store: SharedStore) -> KeyLease:
    """The lease a ``cache gc`` holds on the whole store while it sweeps."""
    return KeyLease(store, SWEEP_KEY, number_setting("WANFLOW_LEASE_SECONDS", LEASE_SECONDS))


@dataclass
class _Held:
    marker: UseMarker
    count: int
    marked: float


# One marker per process and store, shared by every run in it (a batch's instances, a cluster
# worker's units): a unit must not pay four store requests for it.
_markers: dict[str, _Held] = {}
_guard = threading.Lock()


def _enter(store: SharedStore, seconds: float) -> bool:
    """Join this process's marker, or write one and look for a sweep: False while a gc sweeps."""
    with _guard:
        held = _markers.get(store.url)
        if held is not None:  # marked and renewed since before any sweep could have begun
            held.count += 1
            return True
        marker = UseMarker(store, seconds)
        marker.mark()
        if sweeping(store):
            marker.clear()  # the sweep must not wait for us, nor we for it
            return False
        _markers[store.url] = _Held(marker, 1, time.monotonic())
        return True


def _renew(store: SharedStore) -> None:
    with _guard:
        held = _markers.get(store.url)
        if held is not None and time.monotonic() - held.marked >= held.marker.seconds / 5:
            held.marker.mark()
            held.marked = time.monotonic()


def _leave(store: SharedStore) -> None:
    with _guard:
        held = _markers.get(store.url)
        if held is None:
            return
        held.count -= 1
        if held.count == 0:
            del _markers[store.url]
            held.marker.clear()


@asynccontextmanager
async def using_store(store: SharedStore | None, on_wait: Callable[[], None] | None = None) -> AsyncIterator[None]:
    """Hold this process's use marker on the shared store for the block (waiting while a gc sweeps it)."""
    if store is None:
        yield
        return
    seconds = number_setting("WANFLOW_LEASE_SECONDS", LEASE_SECONDS)
    told = False
    while not await anyio.to_thread.run_sync(_enter, store, seconds):
        if not told and on_wait is not None:
            on_wait()
            told = True
        await anyio.sleep(POLL_SECONDS)
    async with renewed(seconds / 4, functools.partial(_renew, store), functools.partial(_leave, store)):
        yield
