"""Where a project is, and where the user's own wanflow folders are.

A project is the nearest folder at or above a pipeline file that holds ``wanflow.toml`` or
``.wanflow/``; its settings and state apply to every run of that pipeline, from any folder.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from wanflow.project.config_files import read_toml

CONFIG_NAME = "wanflow.toml"
STATE_NAME = ".wanflow"


def find_project_root(start: Path) -> Path:
    """The nearest folder at or above ``start`` holding wanflow.toml or .wanflow/; else ``start``."""
    for folder in (start, *start.parents):
        if (folder / CONFIG_NAME).is_file() or (folder / STATE_NAME).is_dir():
            return folder
    return start


def project_of(pipeline_file: Path) -> Path | None:
    """The project a pipeline file belongs to: the nearest folder at or above it holding wanflow.toml
    or .wanflow/ (None when it is in no project)."""
    start = pipeline_file.resolve().parent
    found = find_project_root(start)
    if found == start and not ((start / CONFIG_NAME).is_file() or (start / STATE_NAME).is_dir()):
        return None
    return found


def read_config(root: Path) -> dict[str, Any]:
    """The project's wanflow.toml as a dict ({} when absent)."""
    return read_toml(root / CONFIG_NAME)


def cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The user's wanflow cache folder."""
    env = environ if environ is not None else os.environ
    if env.get("WANFLOW_CACHE_DIR"):
        return Path(env["WANFLOW_CACHE_DIR"]).expanduser()
    base = Path(env["XDG_CACHE_HOME"]).expanduser() if env.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "wanflow"
