"""Media inputs at run time: local files checked, hashed and stored; inputs that break a model's
rules conformed (resized, flattened, re-encoded) and the adaptation recorded."""

from __future__ import annotations

import hashlib
from typing import Any

from wanflow._exceptions import ConformError, TemplateProblem
from wanflow._fs import sha256_file
from wanflow.artifacts import Artifact, MediaInput, RemoteInput
from wanflow.catalog.spec import InputSpec
from wanflow.media.conform import conform_image
from wanflow.media.trim import trim_video
from wanflow.pipelines.model import Pipeline, StepSpec
from wanflow.pipelines.source_document import DataPath
from wanflow.pipelines.static_media import StaticMedia, media_verdict, slot_rules
from wanflow.state.input_stamps import InputStamps, stamp_of
from wanflow.state.store import ArtifactStore


class RuntimeMedia:
    """Media resolver yielding real artifacts: stored when ``store`` is given, else only hashed (for plans)."""

    def __init__(self, pipeline: Pipeline, provider_override: str | None, store: ArtifactStore | None,
                 stamps: InputStamps | None = None) -> None:
        self._static = StaticMedia(pipeline, provider_override, stamps.probe) if stamps else StaticMedia(pipeline, provider_override)
        self._store = store
        self._stamps = stamps  # probe results and hashes of unchanged input files (plan and run alike)
        self._conformed: dict[tuple[Any, ...], tuple[Artifact, dict[str, Any]]] = {}

    def resolve_path(self, text: str, step: StepSpec, path: DataPath) -> MediaInput:
        checked = self._static.resolve_path(text, step, path)  # existence and media checks
        if isinstance(checked, RemoteInput) or checked.path is None:
            return checked
        meta = {key: getattr(checked, key) for key in ("width", "height", "duration", "has_alpha")}
        stamp = stamp_of(checked.path) if self._stamps is not None else None
        known = self._stamps.sha256(checked.path) if self._stamps is not None else None
        if self._store is None:
            digest = known or sha256_file(checked.path)
            if self._stamps is not None and known is None:
                self._stamps.remember(checked.path, stamp, digest)
            return Artifact(digest, checked.media_type, checked.size, checked.path, origin=checked.origin, **meta)
        if known is not None and self._store.remote is None and self._store.has(known, checked.size):  # stored: no copy
            return Artifact(known, checked.media_type, checked.size, self._store.path_for(known), origin=checked.origin, **meta)
        stored = self._store.put_file(checked.path, checked.media_type)
        if self._stamps is not None:
            self._stamps.remember(checked.path, stamp, stored.sha256)
        return Artifact(stored.sha256, stored.media_type, stored.size, stored.path, origin=checked.origin, **meta)

    def fit(self, item: MediaInput, slot: InputSpec, step: StepSpec, path: DataPath) -> tuple[MediaInput, dict[str, Any] | None]:
        if isinstance(item, RemoteInput):
            return item, None
        verdict = media_verdict(item, slot)
        label = item.origin or item.describe()
        if verdict.fatal:
            raise TemplateProblem(f"{label}: " + "; ".join(verdict.fatal))
        if not verdict.fixable:
            return item, None
        if not step.conform:
            raise TemplateProblem(f"{label}: " + "; ".join(verdict.fixable) + " (conform: false forbids adapting it)")
        key = (item.sha256, slot.media, slot.min_side, slot.max_side)
        if key not in self._conformed:
            self._conformed[key] = self._conform(item, slot)
        return self._conformed[key]

    def _conform(self, item: Artifact, slot: InputSpec) -> tuple[Artifact, dict[str, Any]]:
        assert item.path is not None
        rules = slot_rules(item, slot)
        try:
            if slot.media == "video" and rules.max_seconds is not None:
                result = trim_video(item.path, rules.max_seconds)
            else:
                result = conform_image(item.path, slot, rules)
        except ConformError as error:
            raise TemplateProblem(f"{item.origin or item.describe()}: {error}") from None
        if self._store is not None:
            stored = self._store.put_bytes(result.data, result.media_type)
            digest, location = stored.sha256, stored.path
        else:
            digest, location = hashlib.sha256(result.data).hexdigest(), None
        trimmed = min(item.duration, rules.max_seconds) if slot.media == "video" and item.duration and rules.max_seconds else None
        conformed = Artifact(digest, result.media_type, len(result.data), location, result.width, result.height,
                             duration=trimmed, origin=f"{item.origin} (conformed)")
        adaptation = {"from": f"sha256:{item.sha256}", "to": f"sha256:{digest}", "actions": list(result.actions)}
        return conformed, adaptation
