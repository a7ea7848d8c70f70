"""Before a run: can it write everything it will write?

The state folder (``.wanflow/`` and its store, cache, records, journal, locks), the output folder
``out/<pipeline>/`` (and each instance's), and the lockfile beside the pipeline. A folder that is
really a file, one that cannot be written, a read-only file system or a full disk is a usage
error (exit 2) naming the path and what to do, before anything is generated or paid for.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from wanflow._exceptions import UsageError
from wanflow._fs_errors import describe
from wanflow.pipelines.model import Pipeline
from wanflow.state.out_owner import claim_out_folder
from wanflow.state.workspace import Workspace

MIN_FREE_BYTES = 1 << 20  # below this the first stored image would fail
STATE_HOW = "--state-dir DIR (or WANFLOW_STATE_DIR)"
OUT_HOW = "--out-dir DIR (or WANFLOW_OUT_DIR)"
_STATE_PARTS = {"objects": "the store", "cache": "the step cache", "runs": "the run records folder",
                "journal": "the task journal", "locks": "the locks folder", "tmp": "the temporary folder",
                "index": "the request index", "uploads": "the uploads folder"}


def prepare_run(workspace: Workspace, pipeline: Pipeline, instances: Iterable[str] = (), write_lock: bool = True) -> None:
    """Everything checked before a run writes: the folders (check_run_folders), then the claim on
    ``out/<pipeline>/`` (another pipeline file with the same name owns it: refused)."""
    names = list(instances)
    check_run_folders(workspace, pipeline, names, write_lock)
    claim_out_folder(workspace.out_dir / pipeline.name, pipeline, workspace.root)


def check_run_folders(workspace: Workspace, pipeline: Pipeline, instances: Iterable[str] = (),
                      write_lock: bool = True) -> None:
    """Raise UsageError (nothing has run) when a folder or file the run writes cannot be written."""
    out_root = workspace.out_dir / pipeline.name
    checks = [
        (workspace.state_dir, "the state folder", STATE_HOW),
        *((workspace.state_dir / part, role, STATE_HOW) for part, role in _STATE_PARTS.items()),
        (workspace.out_dir, "the output folder", OUT_HOW),
        (out_root, "the pipeline's output folder", OUT_HOW),
        *((out_root / name, f"instance {name}'s output folder", OUT_HOW) for name in instances if name != "default"),
    ]
    for folder, role, how in checks:
        require_folder(folder, role, how)
    probe_write(workspace.state_dir / "tmp", "the state folder", STATE_HOW)
    probe_write(out_root, "the pipeline's output folder", OUT_HOW)
    if write_lock:
        _check_lockfile(pipeline.path.with_suffix(".lock"))


def require_folder(folder: Path, role: str, how: str) -> None:
    """``folder`` is a folder, or can be made one: no file in the way, not read-only, space left."""
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{role} {folder} is a file, not a folder: move the file away, or choose another folder "
                         f"with {how}")
    existing = next((parent for parent in (folder, *folder.parents) if parent.exists()), None)
    if existing is None:
        return
    if not existing.is_dir():
        raise UsageError(f"{role} {folder} cannot be created: {existing} is a file, not a folder; move it away, or "
                         f"choose another folder with {how}")
    if _read_only(existing):
        raise UsageError(f"{role} {folder} is on a read-only file system: choose a folder on a writable disk with {how}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{role} {folder} is not writable ({existing}: permission denied): make it writable for you, "
                         f"or choose another folder with {how}")
    free = shutil.disk_usage(existing).free
    if free < MIN_FREE_BYTES:
        raise UsageError(f"the disk holding {role} {folder} is full ({free // 1024} KB free): free some space "
                         f"(`wanflow cache gc` removes results nothing refers to), or choose another folder with {how}")


def probe_write(folder: Path, role: str, how: str) -> None:
    """Create ``folder`` and write (then remove) a small file in it: the one test every file system answers."""
    probe = folder / f".wanflow-probe-{os.urandom(4).hex()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(probe, "wb") as handle:
            handle.write(b"\0" * 4096)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as error:
        raise UsageError(f"{role}: " + describe(error, error.filename or folder, how)) from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink(missing_ok=True)


def _check_lockfile(path: Path) -> None:
    how = "--no-lock to skip writing it"
    if path.is_dir():
        raise UsageError(f"the lockfile {path} is a folder: move it away, or run with {how}")
    folder = path.parent
    if _read_only(folder) or not os.access(folder, os.W_OK | os.X_OK) \
            or (path.exists() and not os.access(path, os.W_OK)):
        raise UsageError(f"the lockfile {path} cannot be written (its folder is read-only or not writable for you): "
                         f"make it writable, or run with {how}")


def _read_only(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # AttributeError: no statvfs on Windows
        return False
