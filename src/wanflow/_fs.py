"""Atomic file writes: a crash leaves either the old file or the new one, never half.

Durable writes (the default) also fsync the file and its folder, so the write survives a power
loss. Files that can be rebuilt from durable ones (run records, output copies, manifests) skip the
fsyncs: a kill -9 still cannot tear them, and a large batch does not wait on the disk for them.

A write that fails for a reason the user can fix (a full disk, a read-only folder, a file where a
folder should be) raises FileSystemError, which names the path and what to do.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from wanflow._fs_errors import file_system_error

CHUNK = 1 << 20


def _discard(temp: Path, error: BaseException, target: Path) -> BaseException:
    """Remove a half-written temporary file; a plain-worded error for an OSError the user can act on."""
    with contextlib.suppress(OSError):  # its folder may be the very thing that is broken
        temp.unlink(missing_ok=True)
    if isinstance(error, OSError) and not isinstance(error, FileNotFoundError):
        return file_system_error(error, error.filename or target)
    return error


def _temp_beside(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.urandom(4).hex()}")


class _DirSyncs:
    """Group commit of one folder's fsyncs: a caller needs an fsync that *starts* after its own
    change (rename, new file); while one is running, callers that arrive wait for the next, and
    one fsync then serves them all. Each caller still returns only once its change is durable,
    but a batch whose threads fsync the same folder (the journal's) pays one fsync per group."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.done = threading.Condition(self.lock)
        self.started: dict[str, int] = {}  # folder -> generation of the last fsync begun
        self.finished: dict[str, int] = {}  # folder -> generation of the last fsync ended
        self.running: set[str] = set()

    def sync(self, folder: str) -> None:
        with self.lock:
            ticket = self.started.get(folder, 0) + 1  # the first fsync to begin after this change
            while self.finished.get(folder, 0) < ticket:
                if folder in self.running:
                    self.done.wait()
                    continue
                self.running.add(folder)
                generation = self.started[folder] = self.started.get(folder, 0) + 1
                self.lock.release()
                try:
                    _fsync_folder(folder)
                finally:
                    self.lock.acquire()
                    self.running.discard(folder)
                    self.finished[folder] = generation
                    self.done.notify_all()


def _fsync_folder(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


_DIR_SYNCS = _DirSyncs()


def fsync_dir(directory: Path) -> None:
    """Make a folder's entries (new, renamed, removed files) durable (grouped with concurrent
    callers for the same folder: see ``_DirSyncs``)."""
    _DIR_SYNCS.sync(str(directory))


def _create(path: Path) -> BinaryIO:
    """Open a new file for writing, creating its folder only when missing (one syscall, not three)."""
    try:
        return open(path, "wb")
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        return open(path, "wb")


def _replace_with(path: Path, fill: Callable[[BinaryIO], object], durable: bool) -> None:
    """Write a temporary file beside ``path`` with ``fill``, then rename it over ``path``: readers see
    the old file or the whole new one, never half of it (the file fsync'd first when ``durable``)."""
    temp = _temp_beside(path)
    try:
        with _create(temp) as handle:
            fill(handle)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException as error:
        raised = _discard(temp, error, path)
        if raised is error:
            raise
        raise raised from error


def atomic_write_bytes(path: Path, data: bytes, durable: bool = True) -> None:
    """Write ``data`` to ``path`` via a temporary file and an atomic rename (fsync'd when ``durable``)."""
    _replace_with(path, lambda handle: handle.write(data), durable)
    if durable:
        fsync_dir(path.parent)


def canonical_json(value: Any) -> str:
    """Deterministic JSON: sorted keys, no spaces, no NaN; unhashable values are an error."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def json_document(value: Any, compact: bool = False) -> bytes:
    """``value`` as sorted JSON text: indented for files people read and diff (records, lockfiles),
    one line for wanflow's own state (the indented form runs about ten times slower, in Python)."""
    if compact:
        return (canonical_json(value) + "\n").encode("utf-8")
    return (json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


def atomic_write_json(path: Path, value: Any, durable: bool = True, compact: bool = False) -> None:
    """Write ``value`` as sorted JSON, atomically (see json_document for ``compact``)."""
    atomic_write_bytes(path, json_document(value, compact), durable)


def copy_hashing(source: BinaryIO, target: BinaryIO | None = None) -> tuple[str, int]:
    """Read a stream to its end, computing its sha256 (and copying it to ``target`` if given);
    returns (hex digest, byte count)."""
    digest = hashlib.sha256()
    size = 0
    while chunk := source.read(CHUNK):
        digest.update(chunk)
        if target is not None:
            target.write(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def sha256_file(path: Path) -> str:
    """The sha256 of a file's content."""
    with open(path, "rb") as handle:
        return copy_hashing(handle)[0]


def atomic_copy(source: Path, target: Path, durable: bool = True) -> None:
    """Copy ``source`` to ``target`` so ``target`` is never seen half-written."""
    # Opened directly rather than with shutil.copyfile, whose four stats (same file? special
    # files?) cannot apply to a fresh temporary name and cost more than copying a small file.
    with open(source, "rb") as reader:
        _replace_with(target, lambda writer: _copy_stream(reader, writer), durable)


def _copy_stream(reader: BinaryIO, writer: BinaryIO) -> None:
    """Copy an open file to another: sendfile(2) where the OS has it (no bytes through Python)."""
    if hasattr(os, "sendfile"):
        offset = 0
        try:
            while sent := os.sendfile(writer.fileno(), reader.fileno(), offset, CHUNK):
                offset += sent
            return
        except OSError:
            if offset:  # partly sent: start over the plain way
                writer.seek(0)
                writer.truncate()
            reader.seek(0)
    shutil.copyfileobj(reader, writer, CHUNK)
