"""Cross-process locks, so concurrent wanflow runs sharing a cache generate each request once.

On POSIX every cache key locks one byte of a single file, ``<locks>/keys.lock``, at an offset
taken from the key (``fcntl`` record locks). That costs one system call per lock and leaves no
file per key behind, which matters for batches of thousands of steps. Record locks belong to
the process, so a per-process table keeps two runners in one process apart as well. Where
``fcntl`` does not exist (Windows), each key gets its own lock file through ``filelock``.

Either way the operating system releases a lock when its holder dies, even by ``kill -9``, so a
crashed run never blocks the next one.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio

from wanflow._exceptions import WorkspaceBusy

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

POLL_SECONDS = 0.1
LOCK_FILE = "keys.lock"


class _KeyLockFile:
    """The open lock file of one locks folder, and the offsets this process holds in it.

    The descriptor stays open for the life of the process: closing any descriptor of the file
    would drop every record lock the process holds on it.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        self._held: set[int] = set()
        self._guard = threading.Lock()

    def is_current(self, path: Path) -> bool:
        """Whether ``path`` is still this file (someone may have deleted the state folder)."""
        try:
            return os.stat(path).st_ino == os.fstat(self._fd).st_ino
        except OSError:
            return False

    def try_acquire(self, offset: int) -> bool:
        with self._guard:
            if offset in self._held:
                return False
            try:
                fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset, os.SEEK_SET)
            except OSError:  # EAGAIN / EACCES: another process holds it
                return False
            self._held.add(offset)
            return True

    def release(self, offset: int) -> None:
        with self._guard:
            fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, offset, os.SEEK_SET)
            self._held.discard(offset)


_lock_files: dict[Path, _KeyLockFile] = {}
_lock_files_guard = threading.Lock()


def _lock_file(locks_dir: Path) -> _KeyLockFile:
    path = (locks_dir / LOCK_FILE).absolute()
    with _lock_files_guard:
        current = _lock_files.get(path)
        if current is None or not current.is_current(path):
            # A replaced file must not be used: other processes lock the new one. Holders of the
            # old object still release through it.
            current = _lock_files[path] = _KeyLockFile(path)
        return current


def _offset(key: str) -> int:
    """60 bits of the key: distinct keys collide with negligible probability (and a collision
    would only make two generations wait for each other, never share a result)."""
    try:
        return int(key[:15], 16)
    except ValueError:
        return int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:15], 16)


@asynccontextmanager
async def process_lock(locks_dir: Path, key: str, on_wait: Callable[[], None] | None = None) -> AsyncIterator[None]:
    """Hold the lock of ``key`` (across processes and runners) without blocking the event loop."""
    if fcntl is None:  # pragma: no cover - exercised on Windows; tests force it through _filelock
        async with _filelock(locks_dir, key, on_wait):
            yield
        return
    lock_file, offset = _lock_file(locks_dir), _offset(key)
    await _acquire(lambda: lock_file.try_acquire(offset), on_wait)
    try:
        yield
    finally:
        lock_file.release(offset)


async def _acquire(try_acquire: Callable[[], bool], on_wait: Callable[[], None] | None) -> None:
    """Poll ``try_acquire`` until it succeeds, telling ``on_wait`` once that we are waiting."""
    told = False
    while not try_acquire():
        if not told and on_wait is not None:
            on_wait()
            told = True
        await anyio.sleep(POLL_SECONDS)


@asynccontextmanager
async def _filelock(locks_dir: Path, key: str, on_wait: Callable[[], None] | None) -> AsyncIterator[None]:
    """The portable path: one lock file per key."""
    from filelock import FileLock, Timeout

    # One mkdir per lock, no costlier than the non-blocking acquire attempts below.
    locks_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - a single cheap syscall, not worth a thread hop
    lock = FileLock(str(locks_dir / f"{key}.lock"))

    def try_acquire() -> bool:
        try:
            lock.acquire(timeout=0)
            return True
        except Timeout:
            return False

    await _acquire(try_acquire, on_wait)
    try:
        yield
    finally:
        lock.release()


WORKSPACE_LOCK = "workspace.lock"


class WorkspaceLock:
    """Runs hold ``<locks>/workspace.lock`` shared; ``cache gc`` holds it exclusive.

    ``flock`` locks belong to the open file, so each holder opens its own descriptor, and the
    kernel drops the lock when its holder dies. Where ``flock`` does not exist (Windows) the lock
    is a no-op: gc then relies on the journal and the records alone.
    """

    def __init__(self, locks_dir: Path) -> None:
        self.path = locks_dir / WORKSPACE_LOCK
        self._fd: int | None = None

    def try_lock(self, exclusive: bool) -> bool:
        """Take (or convert to) the given mode without waiting; False when another holder excludes it."""
        if fcntl is None:  # pragma: no cover - Windows
            return True
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except OSError:
            return False
        return True

    def release(self) -> None:
        """Drop the lock (idempotent)."""
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases its flock
            self._fd = None

    def hold_exclusive(self, what: str) -> None:
        """Take the lock exclusively now, or raise WorkspaceBusy naming ``what`` would be unsafe."""
        if not self.try_lock(exclusive=True):
            self.release()
            raise WorkspaceBusy(f"a wanflow run is using this workspace, so {what} now could remove its files; "
                                "try again when it has finished")

    async def hold_shared(self, on_wait: Callable[[], None] | None = None) -> None:
        """Take the lock shared, waiting (without blocking the loop) while gc holds it."""
        await _acquire(lambda: self.try_lock(exclusive=False), on_wait)
