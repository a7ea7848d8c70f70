"""The plan's resolution cache for local input files: an unchanged file is not probed or hashed again.

A file's stat stamp (path, size, mtime, inode, ctime) maps to what probing and hashing it found
(media type, size, width, height, duration, alpha, sha256), kept in ``<cache>/inputs.jsonl``.
Ninja trusts a file's mtime alone and DVC its inode, mtime and size; wanflow adds the change time
(ctime), which the kernel sets on every write, rename or ``touch`` and nobody can set back, so an
edit that keeps the size and restores the mtime (``touch -r``, ``rsync -t``, ``cp -p``) is seen.
A stamp younger than 2 s is not kept (Git's "racy" rule: a write in the same clock tick as the
stamp could hide); such a file is hashed again on the next run until its stamp is old enough.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from wanflow.media.probe import MediaInfo, probe

RACY_NS = 2_000_000_000
_FILE = "inputs.jsonl"
_MAX_BYTES = 16_000_000  # past this the file starts over (inputs are probed and hashed once more)

Stamp = tuple[str, int, int, int, int]


def stamp_of(path: Path) -> Stamp | None:
    """(resolved path, size, mtime ns, inode, ctime ns), or None when it cannot be read."""
    try:
        found = os.stat(path)
    except OSError:
        return None
    return str(path), found.st_size, found.st_mtime_ns, found.st_ino, found.st_ctime_ns


class InputStamps:
    """Probe results and hashes of local inputs, by stat stamp (loaded once per process and folder)."""

    def __init__(self, cache_root: Path) -> None:
        self.path = cache_root / _FILE
        self.known: dict[Stamp, dict[str, Any]] = {}
        self._loaded = False

    def _load(self) -> None:
        self._loaded = True
        try:
            if self.path.stat().st_size > _MAX_BYTES:
                self.path.unlink()
                return
            text = self.path.read_text("utf-8", errors="replace")
        except OSError:
            return
        for line in text.splitlines():
            try:  # a damaged or foreign line is skipped: it only costs a probe and a hash
                stamp, facts = json.loads(line)
                name, size, mtime, inode, ctime = stamp
                checked = (str(name), int(size), int(mtime), int(inode), int(ctime))
                if isinstance(facts, dict) and isinstance(facts.get("media_type"), str):
                    self.known[checked] = facts
            except (ValueError, TypeError):
                continue

    def _facts(self, path: Path) -> tuple[Stamp | None, dict[str, Any] | None]:
        if not self._loaded:
            self._load()
        stamp = stamp_of(path)
        return stamp, self.known.get(stamp) if stamp is not None else None

    def probe(self, path: Path) -> MediaInfo:
        """``media.probe.probe``, skipped for a file whose stamp was probed before."""
        stamp, facts = self._facts(path)
        if facts is not None:
            return MediaInfo(facts["media_type"], facts.get("width"), facts.get("height"), facts.get("duration"),
                             bool(facts.get("has_alpha")))
        info = probe(path)
        # Kept only for a stamp unchanged while it was probed and old enough to trust (the racy rule).
        if stamp is not None and stamp == stamp_of(path) and time.time_ns() - stamp[4] > RACY_NS:
            self.known[stamp] = {"media_type": info.media_type, "width": info.width, "height": info.height,
                                 "duration": info.duration, "has_alpha": info.has_alpha}
        return info

    def sha256(self, path: Path) -> str | None:
        """The hash recorded for the file's current stamp, or None (hash it, then ``remember``)."""
        facts = self._facts(path)[1]
        digest = facts.get("sha256") if facts is not None else None
        return digest if isinstance(digest, str) else None

    def remember(self, path: Path, stamp: Stamp | None, digest: str) -> None:
        """Keep ``digest`` for ``stamp`` (taken before hashing) if the file is still as stamped and
        the stamp is old enough to trust; appended in one write, so concurrent runs do not mix lines."""
        if stamp is None or stamp != stamp_of(path) or time.time_ns() - stamp[4] <= RACY_NS:
            return
        facts = self.known.get(stamp)
        if facts is None or facts.get("sha256") == digest:
            return
        facts["sha256"] = digest
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(descriptor, (json.dumps([list(stamp), facts]) + "\n").encode("utf-8"))
            finally:
                os.close(descriptor)
        except OSError:
            pass  # a read-only state folder: the next run probes and hashes again
