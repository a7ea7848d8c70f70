"""Local input files at run time: checked as media, hashed, and (when running) stored."""

from __future__ import annotations

from wanflow.artifacts import Artifact, MediaInput, RemoteInput
from wanflow.pipelines.load import StaticMedia
from wanflow.pipelines.model import Pipeline, StepSpec
from wanflow.pipelines.yaml_source import DataPath
from wanflow.runner.fsutil import sha256_file
from wanflow.runner.store import ArtifactStore


class RuntimeMedia:
    """Media resolver that yields real artifacts: stored when ``store`` is given, else only hashed."""

    def __init__(self, pipeline: Pipeline, provider_override: str | None, store: ArtifactStore | None) -> None:
        self._static = StaticMedia(pipeline, provider_override)
        self._store = store

    def __call__(self, text: str, step: StepSpec, path: DataPath) -> MediaInput:
        checked = self._static(text, step, path)  # existence and media checks
        if isinstance(checked, RemoteInput) or checked.path is None:
            return checked
        meta = {key: getattr(checked, key) for key in ("width", "height", "duration")}
        if self._store is None:
            digest = sha256_file(checked.path)
            return Artifact(digest, checked.media_type, checked.size, checked.path, origin=checked.origin, **meta)
        stored = self._store.put_file(checked.path, checked.media_type)
        return Artifact(stored.sha256, stored.media_type, stored.size, stored.path, origin=checked.origin, **meta)
