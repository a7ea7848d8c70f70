"""Media as the static checks see it: input files must exist inside the allowed folders and be
acceptable to the model's slot; nothing is stored (the run stores and, if needed, conforms them).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from wanflow._exceptions import ConformError, MediaError, TemplateProblem
from wanflow.artifacts import Artifact, MediaInput, RemoteInput
from wanflow.catalog.loader import load_catalog
from wanflow.catalog.rules import MediaFacts, MediaVerdict, check_media
from wanflow.catalog.spec import InputSpec, MediaRules
from wanflow.media.conform import target_size
from wanflow.media.probe import MediaInfo, probe
from wanflow.pipelines.input_paths import local_input_path
from wanflow.pipelines.model import Pipeline, StepSpec
from wanflow.pipelines.resolve import choose_provider
from wanflow.pipelines.source_document import DataPath

_LOCAL_ONLY_PROVIDERS = {"local", "diffusers"}  # they read files, never fetch


class StaticMedia:
    """Media resolver for checks before running: files must exist and be acceptable media.

    Nothing is stored. Problems conforming can fix are accepted here (they are fixed at run
    time) unless the step says ``conform: false``.
    """

    def __init__(self, pipeline: Pipeline, provider_override: str | None,
                 probe_file: Callable[[Path], MediaInfo] = probe) -> None:
        self._pipeline = pipeline
        self._provider_override = provider_override
        self._probe = probe_file  # the plan's stamped probe (state/input_stamps.py) skips unchanged files

    def resolve_path(self, text: str, step: StepSpec, path: DataPath) -> MediaInput:
        if text.startswith(("http://", "https://")):
            provider = choose_provider(self._pipeline, step, self._provider_override)
            if provider in _LOCAL_ONLY_PROVIDERS:
                raise TemplateProblem(
                    f"the {provider} provider works offline and cannot fetch {text}; download it and give the file path"
                )
            return RemoteInput(text)
        file = local_input_path(self._pipeline, text)
        try:
            info = self._probe(file)
        except MediaError as error:
            raise TemplateProblem(str(error)) from None
        return Artifact(
            sha256="",
            media_type=info.media_type,
            size=file.stat().st_size,
            path=file,
            pending=True,
            origin=f"file {text}",
            **info.as_meta(),  # type: ignore[arg-type]
        )

    def fit(self, item: MediaInput, slot: InputSpec, step: StepSpec, path: DataPath) -> tuple[MediaInput, dict[str, Any] | None]:
        if isinstance(item, RemoteInput) or item.size == 0:
            return item, None  # a URL, or an upstream output that does not exist yet
        provider = choose_provider(self._pipeline, step, self._provider_override)
        service = load_catalog().services.get(provider)
        if service is not None and slot.media in service.url_only_inputs:
            # Caught here, before the run: a step later in the pipeline must not fail after
            # earlier ones were paid for.
            raise TemplateProblem(
                f"{item.origin}: {provider} takes {slot.media} only as an http(s) URL and documents no upload; "
                f"give an http(s) URL, or use the dashscope provider, which uploads local files"
            )
        verdict = media_verdict(item, slot)
        if verdict.fatal:
            raise TemplateProblem(f"{item.origin}: " + "; ".join(verdict.fatal))
        if verdict.fixable and not step.conform:
            raise TemplateProblem(f"{item.origin}: " + "; ".join(verdict.fixable) + " (conform: false forbids adapting it)")
        if verdict.fixable and slot.media == "image" and item.width and item.height:
            try:
                target_size(item.width, item.height, slot)  # can it be fitted at all?
            except ConformError as error:
                raise TemplateProblem(f"{item.origin}: {error}") from None
        return item, None


def slot_rules(item: Artifact, slot: InputSpec) -> MediaRules:
    """The media rules ``item`` meets in ``slot``: the slot's own (open weights), else the catalog's."""
    return slot.local_rules[item.kind] if slot.local_rules else load_catalog().media[slot.rules_key]


def media_verdict(item: Artifact, slot: InputSpec) -> MediaVerdict:
    """Check an artifact against a slot's rules."""
    rules = slot_rules(item, slot)
    facts = MediaFacts(item.media_type, item.size, item.width, item.height, item.duration, item.has_alpha)
    return check_media(slot, rules, facts)
