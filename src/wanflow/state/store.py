"""The content-addressed artifact store: every object is named by the sha256 of its bytes."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from wanflow._confine import is_sha256
from wanflow._fs import copy_hashing, sha256_file
from wanflow._fs_errors import file_system_error
from wanflow.artifacts import Artifact

if TYPE_CHECKING:
    from wanflow.state.shared_store import SharedStore


class ArtifactStore:
    """Objects live at ``<root>/<first two hex digits>/<sha256>``; writes are verified and atomic."""

    def __init__(self, root: Path, remote: SharedStore | None = None) -> None:
        self.root = root
        self.remote = remote  # a shared store (--store): written through, read through on a local miss

    def path_for(self, sha256: str) -> Path:
        """Where the object ``sha256`` is (or would be) stored; ValueError for anything but a
        sha256 (a hash read back from a record or entry never names a path outside the store)."""
        if not is_sha256(sha256):
            raise ValueError(f"not a sha256: {str(sha256)[:80]!r}")
        return self.root / sha256[:2] / sha256

    def put_file(self, source: Path, media_type: str, move: bool = False, **meta: object) -> Artifact:
        """Copy ``source`` into the store (or, with ``move``, rename it there) and return its artifact.

        The hash is computed from the bytes actually written, so a stored object always matches
        its name; an object that already exists is not written again. ``move`` is for files wanflow
        itself just wrote (downloads, renders): hashing them in place and renaming saves a copy.
        """
        if move:
            try:
                return self._move_in(source, media_type, meta)
            except OSError:
                pass  # another filesystem, or a race: fall back to copying
        temp = self.root / f".incoming-{os.urandom(6).hex()}"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with open(source, "rb") as reader, open(temp, "wb") as writer:
                digest, size = copy_hashing(reader, writer)
                writer.flush()
                os.fsync(writer.fileno())
            final = self._settle(temp, digest, size)
        except OSError as error:
            # A full disk or a read-only store: the message names the path and what to do (a FileSystemError).
            raise file_system_error(error, error.filename or self.root, "--state-dir") from None
        finally:
            with contextlib.suppress(OSError):
                temp.unlink(missing_ok=True)
        return Artifact(sha256=digest, media_type=media_type, size=size, path=final, **meta)  # type: ignore[arg-type]

    def _move_in(self, source: Path, media_type: str, meta: dict[str, object]) -> Artifact:
        with open(source, "rb") as reader:
            digest, size = copy_hashing(reader)
            # A duplicate of a stored object is deleted, not kept, so it needs no fsync. (Should
            # the object vanish before _settle looks again, the copy renamed in unsynced is still
            # hashed before any use: a cache lookup finds it damaged, never wrong.)
            if not self._has(digest, size):
                os.fsync(reader.fileno())
        final = self._settle(source, digest, size)
        return Artifact(sha256=digest, media_type=media_type, size=size, path=final, **meta)  # type: ignore[arg-type]

    def _settle(self, incoming: Path, digest: str, size: int) -> Path:
        """Rename a complete, fsync'd ``incoming`` file to its object path (or drop it when that
        object is already stored)."""
        final = self.path_for(digest)
        if self._has(digest, size):
            incoming.unlink()
        else:
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(incoming, final)
        if self.remote is not None:
            self.remote.push_object(digest, final)
        return final

    def has(self, digest: str, size: int) -> bool:
        """Whether the object is already stored with this size (one stat)."""
        return self._has(digest, size)

    def _has(self, digest: str, size: int) -> bool:
        """Whether the object is already stored with this size (one stat)."""
        try:
            return self.path_for(digest).stat().st_size == size
        except OSError:
            return False

    def put_bytes(self, data: bytes, media_type: str) -> Artifact:
        """Store ``data`` (used for text outputs)."""
        temp = self.root / f".bytes-{os.urandom(6).hex()}"
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            temp.write_bytes(data)
            return self.put_file(temp, media_type)
        finally:
            temp.unlink(missing_ok=True)

    def is_intact(self, sha256: str, size: int) -> bool:
        """Whether the object exists with the right size and the right hash."""
        path = self.path_for(sha256)
        try:
            if path.stat().st_size != size:
                return False
        except OSError:
            # Not here: the shared store may have it (it is verified as it is fetched).
            return self.remote is not None and self.remote.pull_object(sha256, size, path)
        return sha256_file(path) == sha256
