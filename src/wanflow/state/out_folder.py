"""Copy artifacts from the store to out/<pipeline>/ under readable names, atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from wanflow._confine import confined
from wanflow._fs import atomic_copy, atomic_write_json, sha256_file
from wanflow.artifacts import Artifact, MaterializedFile
from wanflow.pipelines.naming import safe_name

MANIFEST = ".wanflow-manifest.json"
OWNER_KEY = "pipeline"  # the pipeline file that owns the folder (see out_owner); kept when the manifest is rewritten


def _stamp(path: Path) -> dict[str, int]:
    """What the manifest keeps to tell later whether a placed file is untouched: size, mtime, and
    the inode and its change time, which no editor or ``touch -r`` can set back."""
    found = path.stat()
    return {"size": found.st_size, "mtime_ns": found.st_mtime_ns, "ino": found.st_ino, "ctime_ns": found.st_ctime_ns}


class OutputFolder:
    """``out/<pipeline>/``: per-step files under steps/<id>/, named outputs at the top.

    A manifest records which files wanflow wrote, for which step or output, with each file's
    sha256, size and mtime: a file whose object, size and mtime are unchanged is not copied again.
    When a step or output is written again, its files that are no longer produced are removed;
    files of steps that failed this time, and anything the user put there, are left alone.

    The folder belongs to the user too (docs/decisions.md, "Trust boundaries"): a file whose
    stamps show a hand edit, or a file the manifest does not list, is neither overwritten nor
    removed unless ``force`` (``--force-out``); it is kept and ``notes`` says so. The manifest is
    read as untrusted data: an entry naming a path outside the folder is ignored.
    """

    def __init__(self, root: Path, force: bool = False) -> None:
        self.root = root
        self.force = force
        self.notes: list[str] = []  # files kept, entries ignored: the run prints them as warnings
        self._owner: str | None = None
        self._previous = self._read_manifest()
        self._written: dict[str, dict[str, Any]] = {}
        self._by_owner: dict[str, list[str]] | None = None  # the previous manifest's files by owner

    def _read_manifest(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads((self.root / MANIFEST).read_text("utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, RecursionError):
            self.notes.append(f"{self.root / MANIFEST} is unreadable: every file in {self.root} is treated as yours")
            return {}
        if not isinstance(data, dict):
            return {}
        owner = data.get(OWNER_KEY)
        self._owner = owner if isinstance(owner, str) else None
        files = data.get("files")
        entries: dict[str, dict[str, Any]] = {}
        for key, value in (files.items() if isinstance(files, dict) else []):
            if not isinstance(value, dict) or confined(self.root, key) is None:
                self.notes.append(f"{self.root / MANIFEST}: ignored the entry {key!r} (not a file inside {self.root})")
                continue
            entries[key] = value
        return entries

    def _place(self, relative: str, artifact: Artifact, label: str, owner: str) -> MaterializedFile:
        assert artifact.path is not None
        target = confined(self.root, relative)
        if target is None:  # a symlinked folder leading out of out/: never written through
            self.notes.append(f"{self.root / relative} leads outside {self.root}: not written (the result is in the store)")
            return MaterializedFile(label, artifact.path, artifact)
        stamp = self._unchanged_stamp(relative, artifact.sha256, target)
        if stamp is None:
            if not self.force and self._users_file(relative, target, artifact.sha256):
                self.notes.append(f"kept {target}: it was changed by hand or not written by wanflow; the new "
                                  f"{label} is in the store. Delete the file or run with --force-out to replace it")
                self._previous.pop(relative, None)  # no longer wanflow's copy
                return MaterializedFile(label, artifact.path, artifact)
            atomic_copy(artifact.path, target, durable=False)  # a copy of a durable store file
            stamp = _stamp(target)
        self._written[relative] = {"sha256": artifact.sha256, "owner": owner, **stamp}
        return MaterializedFile(label, target, artifact)

    def _users_file(self, relative: str, target: Path, sha256: str) -> bool:
        """Whether ``target`` holds something wanflow must not replace silently: a file the
        manifest does not list (unless it already has the new content), or one whose stamps
        show it was edited since wanflow wrote it."""
        if not target.exists() and not target.is_symlink():
            return False
        if target.is_symlink() or not target.is_file():
            return True
        entry = self._previous.get(relative)
        if entry is None:
            try:
                return sha256_file(target) != sha256
            except OSError:
                return True
        return not self._stamped(entry, target)

    @staticmethod
    def _stamped(entry: dict[str, Any], target: Path) -> bool:
        """Whether ``target`` still carries the stamps the manifest recorded for it."""
        try:
            stamp = _stamp(target)
        except OSError:
            return False
        return "size" in entry and all(entry.get(field) == value for field, value in stamp.items())

    def _unchanged_stamp(self, relative: str, sha256: str, target: Path) -> dict[str, int] | None:
        """The file's stamp when it is still the copy the manifest recorded (a no-op rerun copies
        nothing), or None when it must be copied: another object, or the file was touched."""
        entry = self._previous.get(relative)
        if entry is None or entry.get("sha256") != sha256 or not self._stamped(entry, target):
            return None
        return _stamp(target)

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
                    self._remove(relative)
                    del self._previous[relative]

    def _remove(self, relative: str) -> None:
        """Remove a file wanflow wrote and no longer produces, unless it was edited since."""
        target = confined(self.root, relative)
        if target is None or not (target.exists() or target.is_symlink()):
            return
        if not self.force and not self._stamped(self._previous[relative], target):
            self.notes.append(f"kept {target}: it was changed by hand since wanflow wrote it, and its step no longer "
                              "makes it. Delete it yourself, or run with --force-out to let wanflow remove it")
            return
        target.unlink(missing_ok=True)

    def take_notes(self) -> list[str]:
        """The notes gathered since the last call (files kept, manifest entries ignored)."""
        notes, self.notes = self.notes, []
        return notes

    def finish(self, step_ids: set[str], output_names: set[str]) -> None:
        """Remove files of steps and outputs the pipeline no longer has; save the manifest."""
        current = {f"step:{step}" for step in step_ids} | {f"output:{name}" for name in output_names}
        gone = {str(entry.get("owner", "")) for entry in self._previous.values()} - current
        self._remove_stale(gone)
        merged = {**self._previous, **self._written}
        document: dict[str, object] = {"files": dict(sorted(merged.items()))}
        if self._owner:
            document[OWNER_KEY] = self._owner
        atomic_write_json(self.root / MANIFEST, document, durable=False, compact=True)
