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

    inputs = _open_images(request, "images") or _open_images(request, "image")  # wanx2.1-imageedit: one base image
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


def _audio_for(request: StepRequest) -> tuple[bool, Path | None]:
    """Whether the preview has a sound track, and the file to use (else a seed-derived chord).

    As documented for the services: audio=false wins over audio_url, and a model without an
    ``audio`` param makes silent videos unless it takes an audio file."""
    audio_inputs = request.inputs.get("audio", ())
    audio_path = None
    if audio_inputs:
        audio = audio_inputs[0]
        if isinstance(audio, RemoteInput):
            raise ProviderError(f"the local provider works offline and cannot fetch {audio.url}")
        audio_path = audio.path
    if "audio" in request.model.params:
        with_audio = bool(request.params.get("audio", True))
    else:
        with_audio = audio_path is not None
    return with_audio, audio_path if with_audio else None


def _video_size(request: StepRequest) -> tuple[int, int] | None:
    """The frame size a request fixes: a W*H ``size``, or a tier at a ``ratio``; None: the input's aspect."""
    from wanflow.catalog.rules import parse_size
    from wanflow.preview.images import fit_dimensions
    from wanflow.preview.video import TIER_AREAS

    size = request.params.get("size")
    if isinstance(size, str) and parse_size(size):
        return parse_size(size)
    ratio = request.params.get("ratio")
    if isinstance(ratio, str) and ":" in ratio:
        across, _, down = ratio.partition(":")
        tier = request.model.resolution_tier(request.params) or "720P"
        return fit_dimensions(int(across) / int(down), TIER_AREAS.get(tier, TIER_AREAS["720P"]), multiple=8)
    return None


def _render_video(request: StepRequest, workdir: Path, first: Any, last: Any = None) -> list[ProducedFile]:
    from wanflow.preview.video import render_image_to_video

    with_audio, audio_path = _audio_for(request)
    path = workdir / "video.mp4"
    render_image_to_video(
        first,
        path,
        seed=request.seed,
        resolution=request.model.resolution_tier(request.params) or "720P",
        # duration 0 (wan2.7-videoedit): as long as the input clip
        seconds=int(request.params.get("duration") or request.params.get("input_seconds") or 5),
        with_audio=with_audio,
        audio_path=audio_path,
        model=request.model.name,
        prompt=request.prompt or "",
        size=_video_size(request),
        last_frame=last,
    )
    return [ProducedFile(path, "video")]


def _render_i2v(request: StepRequest, workdir: Path) -> list[ProducedFile]:
    """The first frame (``image`` or ``first_frame``, else a first clip's opening picture) set in
    motion, morphing into ``last_frame`` when there is one."""
    starts = (_open_images(request, "image") or _open_images(request, "first_frame")
              or _first_pictures(request, "first_clip") or _first_pictures(request, "video"))
    lasts = _open_images(request, "last_frame")
    size = _video_size(request) or (1280, 720)
    first = starts[0] if starts else _sheet(lasts, size)
    return _render_video(request, workdir, first, lasts[0] if lasts and starts else None)


def _render_s2v(request: StepRequest, workdir: Path) -> list[ProducedFile]:
    """The portrait set in motion for as long as its speech, with the speech as its sound track."""
    return _render_i2v(request, workdir)


def _render_animate(request: StepRequest, workdir: Path) -> list[ProducedFile]:
    """The character image set in motion for as long as the driving clip, whose first picture is
    inset in a corner (the motion it follows)."""
    (character,) = _open_images(request, "image")
    driving = _first_pictures(request, "video")
    frame = character.copy()
    if driving:
        inset = driving[0].copy()
        inset.thumbnail((max(1, frame.width // 4), max(1, frame.height // 4)))
        frame.paste(inset, (frame.width - inset.width - 8, frame.height - inset.height - 8))
    return _render_video(request, workdir, frame)


def _render_videoedit(request: StepRequest, workdir: Path) -> list[ProducedFile]:
    """The clip's opening picture set in motion, with the reference images inset along its top."""
    (frame,) = _first_pictures(request, "video")
    references = _open_images(request, "images")
    for index, reference in enumerate(references):
        inset = reference.copy()
        inset.thumbnail((max(1, frame.width // 5), max(1, frame.height // 5)))
        frame.paste(inset, (8 + index * (frame.width // 5 + 8), 8))
    return _render_video(request, workdir, frame)


def _render_t2v(request: StepRequest, workdir: Path) -> list[ProducedFile]:
    """A text-to-image preview of the prompt at the video's size, set in motion."""
    from wanflow.preview.images import render_text_to_image

    size = _video_size(request) or (1280, 720)
    first = render_text_to_image(request.prompt or "", request.seed, size, 0, request.model.name)
    return _render_video(request, workdir, first)


def _render_kf2v(request: StepRequest, workdir: Path) -> list[ProducedFile]:
    """A morph from the first frame into the last one."""
    (first,) = _open_images(request, "first_frame")
    last = _open_images(request, "last_frame")
    return _render_video(request, workdir, first, last[0] if last else None)


def _first_pictures(request: StepRequest, slot: str) -> list[Any]:
    """The first picture of each clip given to ``slot``."""
    from wanflow.preview.video import first_picture

    pictures = []
    for item in request.inputs.get(slot, ()):
        if isinstance(item, RemoteInput):
            raise ProviderError(f"the local provider works offline and cannot fetch {item.url}")
        assert isinstance(item, Artifact) and item.path is not None
        pictures.append(first_picture(item.path).convert("RGB"))
    return pictures


def _sheet(pictures: list[Any], size: tuple[int, int]) -> Any:
    """Pictures side by side on a dark frame of ``size`` (character1, character2, ...)."""
    from PIL import Image

    width, height = size
    sheet = Image.new("RGB", (width, height), (24, 24, 32))
    cell = width // max(1, len(pictures))
    for index, picture in enumerate(pictures):
        picture = picture.copy()
        picture.thumbnail((cell, height))
        sheet.paste(picture, (index * cell + (cell - picture.width) // 2, (height - picture.height) // 2))
    return sheet


def _render_r2v(request: StepRequest, workdir: Path) -> list[ProducedFile]:
    """The references' first frames side by side (character1, character2, ...), set in motion."""
    return _render_video(request, workdir, _sheet(_first_pictures(request, "references"), _video_size(request) or (1280, 720)))


def _render_vace(request: StepRequest, workdir: Path) -> list[ProducedFile]:
    """VACE by function: the reference images side by side (image_reference), the input clip's
    first picture (repaint, edit, outpaint), or a morph from the first frame or clip into the last
    frame (extension)."""
    if request.inputs.get("references") and not request.inputs.get("video"):
        return _render_video(request, workdir, _sheet(_open_images(request, "references"), _video_size(request) or (1280, 720)))
    return _render_i2v(request, workdir)


_RENDERERS: dict[str, Callable[[StepRequest, Path], list[ProducedFile]]] = {
    "t2i": _render_t2i,
    "edit": _render_edit,
    "i2v": _render_i2v,
    "t2v": _render_t2v,
    "kf2v": _render_kf2v,
    "r2v": _render_r2v,
    "vace": _render_vace,
    "s2v": _render_s2v,
    "animate": _render_animate,
    "videoedit": _render_videoedit,
}


def render_request(request: StepRequest, workdir: Path) -> list[ProducedFile]:
    """Render the preview of ``request`` into ``workdir`` (blocking; the simulator uses it too)."""
    return _RENDERERS[request.model.kind](request, workdir)
