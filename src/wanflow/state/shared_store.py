"""A store shared by several workspaces: objects, cache entries, the task journal, run records.

``--store URL``, ``WANFLOW_STORE`` or ``[paths] store`` in wanflow.toml name any fsspec URL:
``file:///mnt/team/wanflow`` on a shared mount, ``s3://bucket/prefix`` (s3fs), ``gs://...``.
The workspace's own ``.wanflow/`` stays the local read-through cache: a read that misses locally
is fetched once from the shared store (and verified), a write goes to both.

Layout under the URL::

    objects/<2 hex>/<sha256>          written once (create-if-absent), verified by hash on read
    cache/<2 hex>/<key>.json          the step cache entry
    journal/<key>/<seq>.json          one object per journal event, each created if absent
    leases/<key>/<epoch>.json         who generates <key> now (see ``KeyLease``)
    runs/<workspace>/<run-id>.json    finished runs' records (what ``cache gc`` keeps on the store)
    uses/<owner>.json                 runs using the store now (``store_use.py``)

Two machines never both create a paid task: a key is generated under a lease, an object taken with
create-if-absent (S3 ``If-None-Match: *``; on a local or mounted file system an exclusive hard
link), and the journal's intent is created the same way, so a second writer that slipped past a
lease still cannot append its intent behind the first one's.

fsspec (and s3fs for ``s3://``) come with ``pip install 'wanflow[store]'`` and are imported only
when a store is used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio

from wanflow._exceptions import StoreConflict, UsageError
from wanflow._fs import sha256_file
from wanflow._settings import number_setting
from wanflow.state.store_url import open_options, s3_credentials_found

LEASE_SECONDS = 60.0  # a holder that stops renewing (killed, laptop closed) loses its lease after this
POLL_SECONDS = 0.2


def _complete_beside(target: Path, data: bytes) -> Path:
    """``data`` written whole to a temporary file beside ``target`` (its folder made), for an
    atomic rename or link into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.{os.urandom(4).hex()}")
    temp.write_bytes(data)
    return temp


class SharedStore:
    """One fsspec location, used through a handful of small operations."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        try:
            import fsspec
        except ImportError:
            raise UsageError("--store needs fsspec: pip install 'wanflow[store]'") from None
        if self.url.startswith("s3://") and s3_credentials_found() is False:
            raise UsageError(f"--store {url}: no AWS credentials found; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                             "or AWS_PROFILE, before using an s3:// store")
        try:  # other machines write too: no listings cache
            self.fs, root = fsspec.core.url_to_fs(self.url, use_listings_cache=False, **open_options(self.url))
        except (ImportError, ValueError) as error:
            raise UsageError(f"--store {url}: {error} (pip install 'wanflow[store]' brings s3fs)") from None
        self.root = root.rstrip("/")
        self.local = getattr(self.fs, "protocol", None) in ("file", ("file", "local")) or \
            type(self.fs).__name__ == "LocalFileSystem"
        if self.local:
            try:
                Path(self.root).mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise UsageError(f"--store {url}: cannot use the folder {self.root}: {error.strerror or error}") from None
        else:
            self._probe()

    def _probe(self) -> None:
        """Ask the store once, now, so an unreachable one or refused credentials are an exit 2
        before anything is sent."""
        try:
            self.fs.ls(self.root, detail=False)
        except FileNotFoundError:
            pass  # an empty prefix: fine, it is created by the first write
        except Exception as error:  # botocore, aiohttp and gcsfs raise their own kinds
            raise UsageError(f"--store {self.url}: the store did not answer ({type(error).__name__}: "
                             f"{str(error)[:200]}); check the URL, the network and the credentials") from None

    @property
    def public_url(self) -> str:
        """The URL to show: never a password written into it."""
        scheme, _, rest = self.url.partition("://")
        return f"{scheme}://{rest.rpartition('@')[2]}" if rest else self.url

    def _path(self, relative: str) -> str:
        return f"{self.root}/{relative}"

    # --- small operations --------------------------------------------------------------------

    def read(self, relative: str) -> bytes | None:
        """The object's bytes, or None when it does not exist."""
        try:
            return bytes(self.fs.cat_file(self._path(relative)))
        except (FileNotFoundError, IsADirectoryError):
            return None

    def write(self, relative: str, data: bytes) -> None:
        """Write (or replace) an object whole."""
        path = self._path(relative)
        if self.local:
            target = Path(path)
            os.replace(_complete_beside(target, data), target)
            return
        self.fs.pipe_file(path, data)

    def create(self, relative: str, data: bytes) -> bool:
        """Write the object only if it does not exist yet: True when this call created it."""
        path = self._path(relative)
        if self.local:
            target = Path(path)
            temp = _complete_beside(target, data)
            try:
                os.link(temp, target)  # atomic and exclusive: the object appears whole or not at all
                return True
            except FileExistsError:
                return False
            finally:
                temp.unlink(missing_ok=True)
        try:
            self.fs.pipe_file(path, data, mode="create")
        except (FileExistsError, OSError) as error:
            if _precondition_failed(error):
                return False
            raise
        return True

    def delete(self, relative: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self._path(relative))

    def names(self, folder: str) -> list[str]:
        """The names directly inside ``folder`` (sorted; [] when it does not exist)."""
        path = self._path(folder)
        try:
            listed = self.fs.ls(path, detail=False, refresh=True) if not self.local else self.fs.ls(path, detail=False)
        except (FileNotFoundError, NotADirectoryError):
            return []
        found = sorted({str(item).rstrip("/").rsplit("/", 1)[-1] for item in listed})
        here = path.rstrip("/").rsplit("/", 1)[-1]
        return [name for name in found if name and not name.startswith(".") and name != here]

    # --- objects -----------------------------------------------------------------------------

    def push_object(self, sha256: str, source: Path) -> None:
        """Upload a stored object unless the shared store has it (objects are written once)."""
        relative = f"objects/{sha256[:2]}/{sha256}"
        if self.fs.exists(self._path(relative)):
            return
        if self.local:
            self.create(relative, source.read_bytes())
            return
        self.fs.put_file(str(source), self._path(relative))

    def pull_object(self, sha256: str, size: int, dest: Path) -> bool:
        """Fetch object ``sha256`` to ``dest`` if the shared store has it intact (hash and size checked)."""
        relative = f"objects/{sha256[:2]}/{sha256}"
        temp = dest.with_name(f".pull-{os.urandom(6).hex()}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.fs.get_file(self._path(relative), str(temp))
            if temp.stat().st_size != size or sha256_file(temp) != sha256:
                return False  # damaged on the shared store: the step runs again
            os.replace(temp, dest)
            return True
        except (FileNotFoundError, OSError):
            return False
        finally:
            temp.unlink(missing_ok=True)

    def object_names(self) -> list[str]:
        """Every object's name (its sha256) in the store."""
        return [name for prefix in self.names("objects") for name in self.names(f"objects/{prefix}")]

    def object_hash(self, sha256: str) -> str | None:
        """The sha256 of the stored bytes of object ``sha256`` (streamed), or None when it is gone."""
        digest = hashlib.sha256()
        try:
            with self.fs.open(self._path(f"objects/{sha256[:2]}/{sha256}"), "rb") as stream:
                while chunk := stream.read(1 << 20):
                    digest.update(chunk)
        except FileNotFoundError:
            return None
        return digest.hexdigest()

    def has_object(self, sha256: str) -> bool:
        return bool(self.fs.exists(self._path(f"objects/{sha256[:2]}/{sha256}")))

    def quarantine_object(self, sha256: str) -> None:
        """Move a corrupt object to ``quarantine/`` in the store (nothing is deleted; no lookup serves it again)."""
        relative = f"objects/{sha256[:2]}/{sha256}"
        data = self.read(relative)
        if data is not None:
            self.write(f"quarantine/{sha256}.{int(time.time())}", data)
        self.delete(relative)

    # --- run records -------------------------------------------------------------------------

    def push_run(self, record: Path, workspace_id: str) -> None:
        """Keep a finished run's record on the store as ``runs/<workspace>/<run-id>.json``: what
        the records there refer to is what ``cache gc`` keeps on the store (best effort: a record
        that did not get there only leaves its workspace's own copies to protect it)."""
        with contextlib.suppress(OSError):
            self.write(f"runs/{workspace_id}/{record.name}", record.read_bytes())

    def sizes(self, folder: str) -> dict[str, int]:
        """Name -> size of the files directly inside ``folder`` ({} when it does not exist)."""
        path = self._path(folder)
        try:
            listed = self.fs.ls(path, detail=True, **({} if self.local else {"refresh": True}))
        except (FileNotFoundError, NotADirectoryError):
            return {}
        found = {str(item["name"]).rstrip("/").rsplit("/", 1)[-1]: int(item.get("size") or 0)
                 for item in listed if item.get("type") == "file"}
        return {name: size for name, size in found.items() if not name.startswith(".")}


def _precondition_failed(error: BaseException) -> bool:
    if isinstance(error, FileExistsError):
        return True
    text = f"{error} {getattr(error, '__cause__', '')}"
    return "PreconditionFailed" in text or "412" in text or "ConditionalRequestConflict" in text


_stores: dict[str, SharedStore] = {}


def open_store(url: str) -> SharedStore:
    """One SharedStore per URL and process."""
    store = _stores.get(url)
    if store is None:
        store = _stores[url] = SharedStore(url)
    return store


# --- the journal on the shared store ------------------------------------------------------------

class SharedJournal:
    """One object per event under ``journal/<key>/``; each created if absent, numbered in order."""

    def __init__(self, store: SharedStore) -> None:
        self.store = store

    def _events(self, key: str) -> list[str]:
        return [name for name in self.store.names(f"journal/{key}") if name.endswith(".json")]

    def last(self, key: str) -> dict[str, Any] | None:
        """The latest complete event of ``key``, or None."""
        for name in reversed(self._events(key)):
            data = self.store.read(f"journal/{key}/{name}")
            if data is None:
                continue
            try:
                event = json.loads(data)
            except (ValueError, RecursionError):
                continue
            if isinstance(event, dict):
                return event  # its types are checked by Journal.get (a wrong one: damaged, stop and ask)
            return {"damaged": "not an object"}
        return None

    def append(self, key: str, record: dict[str, Any], intent: bool) -> None:
        """Add an event; an intent that finds another machine's newer event is refused."""
        data = json.dumps(record, sort_keys=True).encode("utf-8")
        for _ in range(20):
            events = self._events(key)
            number = int(events[-1].split(".")[0]) + 1 if events else 1
            if self.store.create(f"journal/{key}/{number:08d}.json", data):
                return
            if intent:
                raise StoreConflict("another machine is creating the same request right now (its intent is on the "
                                    "shared store); this run will use its result")
        raise StoreConflict(f"could not append to the shared journal of {key}")

    def keys(self) -> list[str]:
        return self.store.names("journal")

    def remove(self, key: str) -> None:
        for name in self._events(key):
            self.store.delete(f"journal/{key}/{name}")


# --- the lease of a key ---------------------------------------------------------------------------

_EPOCH = re.compile(r"\d{1,12}\.json")


def _held(record: bytes | None) -> bool:
    """Whether a lease record says its holder still holds it (False for a damaged record)."""
    try:
        state = json.loads(record) if record is not None else None
        return isinstance(state, dict) and not state.get("released") and float(state.get("expires", 0)) > time.time()
    except (ValueError, TypeError, RecursionError):
        return False

class KeyLease:
    """Who generates a key now, across machines, on a store without locks.

    Leases are numbered objects ``leases/<key>/<epoch>.json``; taking one means creating the next
    epoch with create-if-absent, so of two machines only one succeeds. The holder renews it every
    few seconds; one that is killed stops renewing and loses it after ``LEASE_SECONDS``, when the
    next taker resumes the key from the shared journal (polling the same task, never creating a
    second one). Releasing marks the epoch released; the highest epoch is never deleted, so epochs
    only grow.
    """

    def __init__(self, store: SharedStore, key: str, seconds: float = LEASE_SECONDS) -> None:
        self.store = store
        self.key = key
        self.seconds = seconds
        import socket  # only with a shared store: ~4 ms to import

        self.owner = f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"
        self.epoch: int | None = None

    def _record(self, released: bool = False) -> bytes:
        return json.dumps({"owner": self.owner, "expires": time.time() + self.seconds, "released": released}).encode()

    def try_take(self) -> bool:
        # Lease names and records are read back from a shared folder: a name that is not an epoch
        # is ignored, a damaged record counts as expired (the journal still guards the create).
        epochs = sorted(int(name[:-5]) for name in self.store.names(f"leases/{self.key}") if _EPOCH.fullmatch(name))
        if epochs:
            current = self.store.read(f"leases/{self.key}/{epochs[-1]:08d}.json")
            if _held(current):
                return False
        epoch = (epochs[-1] if epochs else 0) + 1
        if not self.store.create(f"leases/{self.key}/{epoch:08d}.json", self._record()):
            return False
        self.epoch = epoch
        for old in epochs[:-1]:
            self.store.delete(f"leases/{self.key}/{old:08d}.json")
        return True

    def renew(self) -> None:
        if self.epoch is not None:
            self.store.write(f"leases/{self.key}/{self.epoch:08d}.json", self._record())

    def release(self) -> None:
        if self.epoch is not None:
            self.store.write(f"leases/{self.key}/{self.epoch:08d}.json", self._record(released=True))
            self.epoch = None


@asynccontextmanager
async def lease(store: SharedStore, key: str, on_wait: Callable[[], None] | None = None) -> AsyncIterator[None]:
    """Hold ``key``'s lease on the shared store for the block (waiting while another machine holds it)."""
    held = KeyLease(store, key, number_setting("WANFLOW_LEASE_SECONDS", LEASE_SECONDS))
    told = False
    while not await anyio.to_thread.run_sync(held.try_take):
        if not told and on_wait is not None:
            on_wait()
            told = True
        await anyio.sleep(POLL_SECONDS)
    async with renewed(held.seconds / 4, held.renew, held.release):
        yield


@asynccontextmanager
async def renewed(every: float, renew: Callable[[], None], release: Callable[[], None]) -> AsyncIterator[None]:
    """The block, while ``renew`` runs every ``every`` seconds in a thread; then ``release``
    (shielded: a cancelled run still gives its lease or marker back)."""
    try:
        async with anyio.create_task_group() as group:
            async def again() -> None:
                while True:
                    await anyio.sleep(every)
                    await anyio.to_thread.run_sync(renew)

            group.start_soon(again)
            try:
                yield
            finally:
                group.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(release)


@asynccontextmanager
async def shared_key_lock(workspace: Any, key: str, on_wait: Callable[[], None] | None = None) -> AsyncIterator[None]:
    """Beyond the OS lock of one machine: the shared store's lease of ``key`` across machines."""
    store = workspace.shared
    if store is None:
        yield
        return
    async with lease(store, key, on_wait):
        yield
