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
from wanflow.catalog.spec import InputSpec
from wanflow.media.conform import target_size
from wanflow.media.probe import MediaInfo, probe
from wanflow.pipelines.model import Pipeline, StepSpec
from wanflow.pipelines.resolve import choose_provider
from wanflow.pipelines.yaml_source import DataPath

_LOCAL_ONLY_PROVIDERS = {"local"}


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


def media_verdict(item: Artifact, slot: InputSpec) -> MediaVerdict:
    """Check an artifact against a slot's rules."""
    rules = load_catalog().media[slot.media]
    facts = MediaFacts(item.media_type, item.size, item.width, item.height, item.duration, item.has_alpha)
    return check_media(slot, rules, facts)


def local_input_path(pipeline: Pipeline, text: str) -> Path:
    """Resolve a local input path written in the pipeline (relative to the pipeline's folder).

    A pipeline may only read files inside its own folder (symlinks resolved), or inside folders
    the user allowed with ``--allow-path``: a recipe from someone else cannot read your files.
    """
    candidate = Path(text).expanduser()
    file = candidate if candidate.is_absolute() else pipeline.base_dir / candidate
    roots = [pipeline.base_dir.resolve(), *(root.resolve() for root in pipeline.allowed_paths)]
    resolved = file.resolve()
    if not any(resolved == root or root in resolved.parents for root in roots):
        raise TemplateProblem(
            f"input file {text} is outside the pipeline's folder ({pipeline.base_dir}); "
            "allow its folder with --allow-path DIR"
        )
    if not resolved.is_file():
        shown = text if candidate.is_absolute() else f"{text} (looked in {pipeline.base_dir})"
        raise TemplateProblem(f"input file not found: {shown}")
    return resolved
