"""Copy artifacts from the store to out/<pipeline>/ under readable names, atomically."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from wanflow.artifacts import Artifact
from wanflow.runner.fsutil import atomic_copy, atomic_write_json
from wanflow.runner.results import MaterializedFile

MANIFEST = ".wanflow-manifest.json"
OWNER_KEY = "pipeline"  # the pipeline file that owns the folder (see out_owner); kept when the manifest is rewritten
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _stamp(path: Path) -> dict[str, int]:
    """What the manifest keeps to tell later whether a placed file is untouched: size, mtime, and
    the inode and its change time, which no editor or ``touch -r`` can set back."""
    found = path.stat()
    return {"size": found.st_size, "mtime_ns": found.st_mtime_ns, "ino": found.st_ino, "ctime_ns": found.st_ctime_ns}


def safe_name(name: str) -> str:
    """A file-name-safe form of ``name`` that cannot climb out of its folder."""
    cleaned = _UNSAFE.sub("_", name).strip("._") or "output"
    return cleaned[:80]


class OutputFolder:
    """``out/<pipeline>/``: per-step files under steps/<id>/, named outputs at the top.

    A manifest records which files wanflow wrote, for which step or output, with each file's
    sha256, size and mtime: a file whose object, size and mtime are unchanged is not copied again.
    When a step or output is written again, its files that are no longer produced are removed;
    files of steps that failed this time, and anything the user put there, are left alone.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._owner: str | None = None
        self._previous = self._read_manifest()
        self._written: dict[str, dict[str, Any]] = {}
        self._by_owner: dict[str, list[str]] | None = None  # the previous manifest's files by owner

    def _read_manifest(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads((self.root / MANIFEST).read_text("utf-8"))
            owner = data.get(OWNER_KEY)
            self._owner = owner if isinstance(owner, str) else None
            return {str(key): dict(value) for key, value in data.get("files", {}).items()}
        except (OSError, ValueError, AttributeError, TypeError):
            return {}

    def _place(self, relative: str, artifact: Artifact, label: str, owner: str) -> MaterializedFile:
        target = self.root / relative
        assert artifact.path is not None
        stamp = self._unchanged_stamp(relative, artifact.sha256, target)
        if stamp is None:
            atomic_copy(artifact.path, target, durable=False)  # a copy of a durable store file
            stamp = _stamp(target)
        self._written[relative] = {"sha256": artifact.sha256, "owner": owner, **stamp}
        return MaterializedFile(label, target, artifact)

    def _unchanged_stamp(self, relative: str, sha256: str, target: Path) -> dict[str, int] | None:
        """The file's stamp when it is still the copy the manifest recorded (a no-op rerun copies
        nothing), or None when it must be copied: another object, or the file was touched."""
        entry = self._previous.get(relative)
        if entry is None or entry.get("sha256") != sha256 or "size" not in entry:
            return None
        try:
            stamp = _stamp(target)
        except OSError:
            return None
        return stamp if all(entry.get(field) == value for field, value in stamp.items()) else None

    def write_step(self, step_id: str, artifacts: list[tuple[str, Artifact]]) -> list[MaterializedFile]:
        """Materialize one step's outputs under steps/<id>/: ``<id>-<n>.<ext>``, or ``<id>.<ext>`` when
        the step has a single file of that kind (one video, one text)."""
        stem = safe_name(step_id)
        owner = f"step:{step_id}"
        totals: dict[str, int] = {}
        for _, artifact in artifacts:
            totals[artifact.kind] = totals.get(artifact.kind, 0) + 1
        numbers: dict[str, int] = {}
        files = []
        for label, artifact in artifacts:
            numbers[artifact.kind] = numbers.get(artifact.kind, 0) + 1
            single = totals[artifact.kind] == 1 and artifact.kind != "image"
            name = f"{stem}{artifact.extension}" if single else f"{stem}-{numbers[artifact.kind]}{artifact.extension}"
            files.append(self._place(f"steps/{stem}/{name}", artifact, label, owner))
        self._remove_stale({owner})
        return files

    def write_output(self, name: str, artifacts: list[Artifact]) -> list[MaterializedFile]:
        """Materialize a named output as <name>.<ext>, or <name>-<n>.<ext> for a list."""
        base = safe_name(name)
        owner = f"output:{name}"
        files = []
        for index, artifact in enumerate(artifacts, start=1):
            suffix = "" if len(artifacts) == 1 else f"-{index}"
            files.append(self._place(f"{base}{suffix}{artifact.extension}", artifact, name, owner))
        self._remove_stale({owner})
        return files

    def _remove_stale(self, owners: set[str]) -> None:
        if self._by_owner is None:  # built once: a step's files are found without scanning every entry
            self._by_owner = {}
            for relative, entry in self._previous.items():
                self._by_owner.setdefault(str(entry.get("owner")), []).append(relative)
        for owner in owners:
            for relative in self._by_owner.pop(owner, []):
                if relative in self._previous and relative not in self._written:
                    (self.root / relative).unlink(missing_ok=True)
                    del self._previous[relative]

    def finish(self, step_ids: set[str], output_names: set[str]) -> None:
        """Remove files of steps and outputs the pipeline no longer has; save the manifest."""
        current = {f"step:{step}" for step in step_ids} | {f"output:{name}" for name in output_names}
        gone = {entry.get("owner", "") for entry in self._previous.values()} - current
        self._remove_stale(gone)
        merged = {**self._previous, **self._written}
        document: dict[str, object] = {"files": dict(sorted(merged.items()))}
        if self._owner:
            document[OWNER_KEY] = self._owner
        atomic_write_json(self.root / MANIFEST, document, durable=False, compact=True)
