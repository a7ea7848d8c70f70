"""The in-memory form of a validated pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wanflow._diagnostics import Diagnostic, Location
from wanflow.catalog.spec import ModelSpec
from wanflow.pipelines.source_document import DataPath, SourceDocument

# Step fields whose strings are templates, in the order they are resolved.
# Media inputs are named after the service's fields, less ``_url`` (the catalog maps them back).
MEDIA_FIELDS = ("images", "image", "first_frame", "last_frame", "first_clip", "references", "video", "mask", "audio")
TEMPLATED_STEP_FIELDS = ("when", "for_each", "prompt", "negative_prompt", *MEDIA_FIELDS, "videos", "params", "seed")
OP_MEDIA_FIELDS = ("video", "videos", "image", "images", "audio")  # what an ``op:`` step may take


@dataclass
class StepSpec:
    """One step as written (templates unrendered), with its model looked up in the catalog."""

    id: str
    model: ModelSpec
    provider: str | None = None
    prompt: str | None = None
    negative_prompt: str | None = None
    images: list[str] | str | None = None
    image: str | None = None
    first_frame: str | None = None
    last_frame: str | None = None
    first_clip: str | None = None
    references: list[str] | str | None = None
    video: str | None = None
    mask: str | None = None
    audio: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    seed: int | str | None = None
    needs: tuple[str, ...] = ()
    cache: bool = True
    conform: bool = True
    version: str | int | None = None
    when: bool | str | None = None
    for_each: list[Any] | str | None = None
    description: str = ""
    depends_on: tuple[str, ...] = ()
    # ``op:`` steps (local media operations, wanflow.ops): the op's name and its list of videos.
    op: str | None = None
    videos: list[str] | str | None = None

    def path(self, *parts: str | int) -> DataPath:
        """The data path of a field of this step, for locating messages."""
        return ("steps", self.id, *parts)


@dataclass
class Pipeline:
    """A loaded, validated pipeline with its vars resolved."""

    path: Path
    name: str
    description: str
    vars: dict[str, Any]
    default_provider: str | None
    default_seed: int | str | None
    default_params: dict[str, Any]
    steps: dict[str, StepSpec]
    outputs: dict[str, str]
    source: SourceDocument
    warnings: list[Diagnostic] = field(default_factory=list)
    allowed_paths: tuple[Path, ...] = ()  # folders outside base_dir that local inputs may come from
    pinned_seeds: dict[str, int] = field(default_factory=dict)  # seeds drawn by --reseed, kept in the lockfile
    picks: dict[str, int] = field(default_factory=dict)  # `wanflow pick` choices of op: pick steps, kept in the lockfile
    matrix: dict[str, Any] | None = None
    provider_override: str | None = None  # the provider it was loaded (and checked) for: every run of it uses that one
    chosen_vars: frozenset[str] = frozenset()  # set by --var or --vars-file: on a matrix axis, they pick its value

    @property
    def base_dir(self) -> Path:
        """The folder relative input paths are resolved against."""
        return self.path.parent

    def locate(self, path: DataPath) -> Location:
        """Where ``path`` is written in the pipeline file."""
        return self.source.locate(path)

    def order(self) -> list[str]:
        """Step ids in a dependency-respecting order (file order where free)."""
        done: list[str] = []
        placed: set[str] = set()
        pending = list(self.steps)
        while pending:
            for step_id in pending:
                if all(dep in placed for dep in self.steps[step_id].depends_on):
                    done.append(step_id)
                    placed.add(step_id)
                    pending.remove(step_id)
                    break
            else:  # pragma: no cover - cycles are rejected at load time
                raise RuntimeError("dependency cycle")
        return done
