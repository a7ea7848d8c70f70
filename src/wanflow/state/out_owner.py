"""One output folder, one pipeline file.

Outputs go to ``out/<name>/``, so two pipeline files that both say ``name: ad`` would overwrite
each other's files and manifests without a word. The manifest of ``out/<name>/`` records the file
that owns the folder; a run of another file with the same name is refused (exit 2) unless
``--out-dir`` gives it a folder of its own. A recorded owner that no longer exists, or no longer
has that name, was renamed: the folder passes to the new file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from wanflow._exceptions import PipelineError, UsageError
from wanflow._fs import atomic_write_json
from wanflow.pipelines.model import Pipeline
from wanflow.pipelines.source_file import load_yaml_file
from wanflow.state.out_folder import MANIFEST, OWNER_KEY


def owner_id(pipeline_file: Path, project_root: Path) -> str:
    """How the manifest names a pipeline file: relative to the project (so a moved project still
    matches), else absolute."""
    resolved = pipeline_file.resolve()
    try:
        return resolved.relative_to(project_root.resolve()).as_posix()
    except ValueError:
        return resolved.as_posix()


def claim_out_folder(out_root: Path, pipeline: Pipeline, project_root: Path) -> None:
    """Record ``pipeline`` as the owner of ``out_root``; UsageError when another pipeline file owns it."""
    manifest = out_root / MANIFEST
    data = _read(manifest)
    mine = owner_id(pipeline.path, project_root)
    owner = data.get(OWNER_KEY)
    if owner == mine:
        return
    if isinstance(owner, str) and _still_owns(owner, project_root, pipeline.name):
        raise UsageError(
            f"{out_root} holds the outputs of {owner}, another pipeline named '{pipeline.name}'; running "
            f"{mine} there would overwrite them. Rename one of the two (name:), or give this run a folder of "
            f"its own with --out-dir DIR")
    atomic_write_json(manifest, {**data, OWNER_KEY: mine}, durable=False, compact=True)


def _read(manifest: Path) -> dict[str, Any]:
    try:
        data = json.loads(manifest.read_text("utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def _still_owns(owner: str, project_root: Path, name: str) -> bool:
    path = Path(owner) if Path(owner).is_absolute() else project_root / owner
    if not path.is_file():
        return False  # renamed or deleted: the folder is free
    try:
        other = load_yaml_file(path).data
    except PipelineError:
        return True  # cannot tell: better to ask than to overwrite
    return isinstance(other, dict) and str(other.get("name", "")).casefold() == name.casefold()
