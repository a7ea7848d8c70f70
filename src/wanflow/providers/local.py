"""The local preview provider: free, offline, deterministic stand-ins for every Wan model.

It renders real PNG and MP4 files shaped like the request (sizes, counts, durations, audio) so a
pipeline can be built and checked end to end before any money is spent. Every file says it is a
preview, and so does the run record.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

from wanflow._exceptions import ProviderError
from wanflow.artifacts import Artifact, RemoteInput
from wanflow.pipelines.request import StepRequest
from wanflow.providers.base import GenerationContext, GenerationResult, ProducedFile

RENDERER_VERSION = "preview-2"  # bump when preview output changes: it salts the cache keys


class LocalPreviewProvider:
    """Renders previews in worker threads so independent steps overlap."""

    name = "local"
    paid = False
    cache_salt = f"local:{RENDERER_VERSION}"

    async def generate(self, request: StepRequest, context: GenerationContext) -> GenerationResult:
        """Render ``request`` into ``context.workdir``."""
        files = await anyio.to_thread.run_sync(render_request, request, context.workdir)
        return GenerationResult(files=files, info={"preview": True, "renderer": RENDERER_VERSION, "cost_usd": 0.0})


def _open_images(request: StepRequest, slot: str) -> list[Any]:
    from PIL import Image

    images = []
    for item in request.inputs.get(slot, ()):
        if isinstance(item, RemoteInput):
            raise ProviderError(f"the local provider works offline and cannot fetch {item.url}")
        assert isinstance(item, Artifact) and item.path is not None
        with Image.open(item.path) as image:
            image.load()
            images.append(image.convert("RGB"))
    return images


def _render_t2i(request: StepRequest, workdir: Path) -> list[ProducedFile]:
    from wanflow.catalog.rules import parse_size
    from wanflow.preview.images import render_text_to_image, save_png

    size = parse_size(str(request.params["size"])) or (1280, 1280)
    files = []
    for index in range(int(request.params.get("n", 1))):
        image = render_text_to_image(request.prompt or "", request.seed, size, index, request.model.name)
        path = workdir / f"image-{index + 1}.png"
        save_png(image, path, f"model={request.model.name} seed={request.seed} index={index}")
        files.append(ProducedFile(path, "images"))
    return files


def _render_edit(request: StepRequest, workdir: Path) -> list[ProducedFile]:
    from wanflow.preview.images import edit_output_size, interleaved_text, render_edit, save_png

    inputs = _open_images(request, "images")
    size = edit_output_size(str(request.params.get("size", "1K")), inputs)
    count = request.model.image_count(request.params)
    files = []
    for index in range(count):
        image = render_edit(request.prompt or "", request.seed, size, inputs, index, request.model.name)
        path = workdir / f"image-{index + 1}.png"
        save_png(image, path, f"model={request.model.name} seed={request.seed} index={index}")
        files.append(ProducedFile(path, "images"))
    if "text" in request.model.outputs_for(request.params):
        text_path = workdir / "text.txt"
        text_path.write_text(interleaved_text(request.prompt or "", request.seed, count), "utf-8")
        files.append(ProducedFile(text_path, "text"))
    return files


def _render_i2v(request: StepRequest, workdir: Path) -> list[ProducedFile]:
    from wanflow.preview.video import render_image_to_video

    (first,) = _open_images(request, "image")
    audio_inputs = request.inputs.get("audio", ())
    audio_path = None
    if audio_inputs:
        audio = audio_inputs[0]
        if isinstance(audio, RemoteInput):
            raise ProviderError(f"the local provider works offline and cannot fetch {audio.url}")
        audio_path = audio.path
    # As documented for the service: audio=false wins over audio_url.
    with_audio = bool(request.params.get("audio", True))
    path = workdir / "video.mp4"
    render_image_to_video(
        first,
        path,
        seed=request.seed,
        resolution=str(request.params.get("resolution", "720P")),
        seconds=int(request.params.get("duration", 5)),
        with_audio=with_audio,
        audio_path=audio_path if with_audio else None,
        model=request.model.name,
        prompt=request.prompt or "",
    )
    return [ProducedFile(path, "video")]


_RENDERERS: dict[str, Callable[[StepRequest, Path], list[ProducedFile]]] = {
    "t2i": _render_t2i,
    "edit": _render_edit,
    "i2v": _render_i2v,
}


def render_request(request: StepRequest, workdir: Path) -> list[ProducedFile]:
    """Render the preview of ``request`` into ``workdir`` (blocking; the simulator uses it too)."""
    return _RENDERERS[request.model.kind](request, workdir)
