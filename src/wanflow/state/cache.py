"""The step cache: cache key -> the artifacts a step produced, kept as small JSON entries."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wanflow._fs import atomic_write_json
from wanflow.artifacts import Artifact
from wanflow.state.input_stamps import stamp_of
from wanflow.state.store import ArtifactStore

if TYPE_CHECKING:
    from wanflow.state.shared_store import SharedStore


@dataclass
class StepOutputsData:
    """A step's produced artifacts by output field."""

    images: list[Artifact] = field(default_factory=list)
    video: Artifact | None = None
    text: Artifact | None = None

    def all(self) -> list[tuple[str, Artifact]]:
        """(field label, artifact) pairs: ``images[0]``, ``video``, ``text``."""
        pairs = [(f"images[{index}]", artifact) for index, artifact in enumerate(self.images)]
        if self.video is not None:
            pairs.append(("video", self.video))
        if self.text is not None:
            pairs.append(("text", self.text))
        return pairs

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {}
        if self.images:
            record["images"] = [artifact.to_record() for artifact in self.images]
        if self.video is not None:
            record["video"] = self.video.to_record()
        if self.text is not None:
            record["text"] = self.text.to_record()
        return record


@dataclass
class CacheEntry:
    """One cached step result."""

    key: str
    request: dict[str, Any]
    outputs: StepOutputsData
    provider_info: dict[str, Any]
    created_at: float


# Objects found intact, by (path, size, mtime, inode, ctime): any rewrite of the file changes the
# stamp (the kernel sets ctime; nobody can set it back), and a changed stamp is hashed again. The
# stamps are kept in ``<cache>/verified.jsonl`` too, so a later process trusts them as DVC's state
# and Ninja's log do, instead of hashing every object of a fully cached run again.
_VERIFIED: set[tuple[str, int, int, int, int]] = set()
_VERIFIED_MAX = 200_000  # a long-lived process (a Dask worker) forgets and hashes again past this
_STAMPS_FILE = "verified.jsonl"
_STAMPS_MAX_BYTES = 16_000_000  # past this the file starts over (the objects are hashed once more)
_RACY_NS = 2_000_000_000  # a stamp this fresh may not show a rewrite in the same clock tick: not kept
_loaded: set[Path] = set()


def _stamp(path: Path | None) -> tuple[str, int, int, int, int] | None:
    return stamp_of(path) if path is not None else None


class StepCache:
    """Entries live at ``<root>/<first two hex digits>/<key>.json``."""

    def __init__(self, root: Path, store: ArtifactStore, remote: SharedStore | None = None) -> None:
        self.root = root
        self.store = store
        self.remote = remote  # a shared store (--store): entries are written through and read through

    def _remote_name(self, key: str) -> str:
        return f"cache/{key[:2]}/{key}.json"

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def entry_path(self, key: str) -> Path:
        """Where the entry of ``key`` is (or would be) written."""
        return self._path(key)

    def lookup(self, key: str, origin: str = "") -> CacheEntry | None:
        """The entry for ``key`` if every object it names is intact; else None (and it re-runs)."""
        try:
            raw = json.loads(self._path(key).read_text("utf-8"))
        except (OSError, ValueError):
            raw = self._pull(key)
            if raw is None:
                return None
        try:  # an entry is read back: a wrong shape or a hash that is not one means "not cached"
            outputs = self._outputs_from(raw["outputs"], origin)
        except (AttributeError, KeyError, TypeError, ValueError):
            return None
        if not isinstance(raw.get("request", {}), dict) or not isinstance(raw.get("provider", {}), dict):
            return None
        for _, artifact in outputs.all():
            if not self._intact(artifact):
                return None
        return CacheEntry(key, raw.get("request", {}), outputs, raw.get("provider", {}), raw.get("created_at", 0.0))

    def _intact(self, artifact: Artifact) -> bool:
        """The store's full check (the hash of every byte), once for an unchanged file: a run
        looks each object up twice (planning, then running), and a rerun finds its stamp kept."""
        stamp = _stamp(artifact.path)
        if stamp is not None and stamp[1] == artifact.size:
            if self.root not in _loaded:
                self._load_stamps()
            if stamp in _VERIFIED:
                return True
        if not self.store.is_intact(artifact.sha256, artifact.size):
            return False
        if stamp is not None and stamp == _stamp(artifact.path):  # unchanged while it was hashed
            if len(_VERIFIED) >= _VERIFIED_MAX:
                _VERIFIED.clear()
            _VERIFIED.add(stamp)
            if time.time_ns() - stamp[4] > _RACY_NS:
                self._keep_stamp(stamp)
        return True

    def _load_stamps(self) -> None:
        """The stamps earlier processes verified (a damaged or foreign line is skipped: it only costs a hash)."""
        _loaded.add(self.root)
        path = self.root / _STAMPS_FILE
        try:
            if path.stat().st_size > _STAMPS_MAX_BYTES:
                path.unlink()
                return
            text = path.read_text("utf-8", errors="replace")
        except OSError:
            return
        for line in text.splitlines():
            try:
                name, size, mtime, inode, ctime = json.loads(line)
                _VERIFIED.add((str(name), int(size), int(mtime), int(inode), int(ctime)))
            except (ValueError, TypeError):
                continue

    def _keep_stamp(self, stamp: tuple[str, int, int, int, int]) -> None:
        """Append one stamp (one short write in append mode: concurrent runs do not mix lines)."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(self.root / _STAMPS_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(descriptor, (json.dumps(list(stamp)) + "\n").encode("utf-8"))
            finally:
                os.close(descriptor)
        except OSError:
            pass  # a read-only cache: the next process hashes again

    def save(self, key: str, request: dict[str, Any], outputs: StepOutputsData, provider_info: dict[str, Any]) -> None:
        """Record that ``key`` produced ``outputs``."""
        atomic_write_json(
            self._path(key),
            {
                "key": key,
                "request": request,
                "outputs": outputs.to_record(),
                "provider": provider_info,
                "created_at": time.time(),
            },
            compact=True,
        )
        if self.remote is not None:
            self.remote.write(self._remote_name(key), self._path(key).read_bytes())

    def _pull(self, key: str) -> dict[str, Any] | None:
        """The shared store's entry for ``key`` (kept locally too), or None."""
        data = self.remote.read(self._remote_name(key)) if self.remote is not None else None
        if data is None:
            return None
        try:
            raw = json.loads(data)
        except ValueError:
            return None
        atomic_write_json(self._path(key), raw, compact=True)
        return dict(raw)

    def _outputs_from(self, raw: dict[str, Any], origin: str) -> StepOutputsData:
        def rebuild(record: dict[str, Any], label: str) -> Artifact:
            return Artifact.from_record(record, self.store.path_for(record["sha256"]), origin=f"{origin}.{label}")

        return StepOutputsData(
            images=[rebuild(item, f"images[{i}]") for i, item in enumerate(raw.get("images", []))],
            video=rebuild(raw["video"], "video") if raw.get("video") else None,
            text=rebuild(raw["text"], "text") if raw.get("text") else None,
        )
