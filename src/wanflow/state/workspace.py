"""Where wanflow keeps its state (.wanflow/) and writes outputs (out/)."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wanflow.project.locate import STATE_NAME, find_project_root, read_config
from wanflow.state.cache import StepCache
from wanflow.state.journal import Journal
from wanflow.state.store import ArtifactStore

if TYPE_CHECKING:
    from wanflow.state.input_stamps import InputStamps
    from wanflow.state.shared_store import SharedStore

@dataclass(frozen=True)
class Workspace:
    """The project root, the state folder and the output folder of one invocation."""

    root: Path
    state_dir: Path
    out_dir: Path
    store_url: str | None = None  # a shared store (fsspec URL) behind the state folder, or None

    @classmethod
    def discover(cls, cwd: Path | None = None, state_dir: Path | None = None, out_dir: Path | None = None,
                 store: str | None = None) -> Workspace:
        """Find the project from ``cwd``; flags beat WANFLOW_STATE_DIR / WANFLOW_OUT_DIR / WANFLOW_STORE,
        which beat wanflow.toml."""
        root = find_project_root((cwd or Path.cwd()).resolve())
        paths = read_config(root).get("paths", {})
        state = state_dir or _env_path("WANFLOW_STATE_DIR") or Path(paths.get("state_dir", STATE_NAME))
        out = out_dir or _env_path("WANFLOW_OUT_DIR") or Path(paths.get("out_dir", "out"))
        shared = store or os.environ.get("WANFLOW_STORE", "").strip() or paths.get("store") or None
        return cls(root=root, state_dir=(root / state).resolve(), out_dir=(root / out).resolve(),
                   store_url=_store_url(shared, root))

    def config(self) -> dict[str, Any]:
        """The project's wanflow.toml ({} when absent), read once per workspace."""
        return self._config

    @functools.cached_property
    def _config(self) -> dict[str, Any]:
        # Batches build a Runner per instance; each asks for prices and limits.
        return read_config(self.root)

    @property
    def price_overrides(self) -> dict[str, Any]:
        """``[prices]`` from wanflow.toml: per-model price overrides."""
        return dict(self.config().get("prices", {}))

    @functools.cached_property
    def input_stamps(self) -> InputStamps:
        """Probe results and hashes of unchanged local input files (``state/input_stamps.py``)."""
        from wanflow.state.input_stamps import InputStamps

        return InputStamps(self.state_dir / "cache")

    @functools.cached_property
    def identity(self) -> str:
        """A short name of this state folder on this machine (its run records' folder on a shared store)."""
        import hashlib
        import socket

        return hashlib.sha256(f"{socket.gethostname()}\0{self.state_dir.resolve()}".encode()).hexdigest()[:16]

    @functools.cached_property
    def shared(self) -> SharedStore | None:
        """The shared store (``--store``), opened on first use; None without one."""
        if not self.store_url:
            return None
        from wanflow.state.shared_store import open_store

        return open_store(self.store_url)

    @property
    def store(self) -> ArtifactStore:
        return ArtifactStore(self.state_dir / "objects", self.shared)

    @property
    def cache(self) -> StepCache:
        return StepCache(self.state_dir / "cache", self.store, self.shared)

    @property
    def journal(self) -> Journal:
        """The task journal (its events also on the shared store, when there is one)."""
        if self.shared is None:
            return Journal(self.journal_dir)
        from wanflow.state.shared_store import SharedJournal

        return Journal(self.journal_dir, SharedJournal(self.shared))

    @property
    def runs_dir(self) -> Path:
        return self.state_dir / "runs"

    @property
    def index_dir(self) -> Path:
        return self.state_dir / "index"

    @property
    def tmp_dir(self) -> Path:
        return self.state_dir / "tmp"

    @property
    def journal_dir(self) -> Path:
        return self.state_dir / "journal"

    @property
    def locks_dir(self) -> Path:
        return self.state_dir / "locks"


def _store_url(value: str | None, root: Path) -> str | None:
    """A store URL as fsspec takes it, checked (state/store_url.py): a plain path (relative to
    the project) becomes file://."""
    if not value:
        return None
    from wanflow.state.store_url import store_url

    return store_url(str(value), root)


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name, "").strip()
    return Path(value).expanduser() if value else None
