"""Where a local file a pipeline names lives, confined to the pipeline's folder (and --allow-path
folders). Apart from resolving, so op steps (fonts) and media inputs share the one rule."""

from __future__ import annotations

from pathlib import Path

from wanflow._exceptions import TemplateProblem
from wanflow.pipelines.model import Pipeline


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
