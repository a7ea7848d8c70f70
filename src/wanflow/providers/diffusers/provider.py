"""The ``diffusers`` provider: open-weights Wan on your own GPU (or CPU), free, cached like any step.

Generation runs in a worker thread, off the event loop, so paid steps and downloads go on beside
it. Each device is a slot: one generation at a time per device (``WANFLOW_DIFFUSERS_SLOTS`` allows
more), because two 14B pipelines on one GPU only fight for memory. A cancelled run (Ctrl-C) stops
between denoising steps: the step callback raises, and the thread is waited for, so nothing is
left running on the GPU.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread

from wanflow._exceptions import ProviderError
from wanflow.artifacts import Artifact, RemoteInput
from wanflow.pipelines.request import StepRequest
from wanflow.providers.base import GenerationContext, GenerationResult, ProducedFile, TaskInfo
from wanflow.providers.diffusers import engine
from wanflow.providers.diffusers.frames import read_clip, write_image, write_video

ENGINE_VERSION = "diffusers-2"  # 2: one frame is a PNG. Bump when how frames become files changes: it salts the cache keys


class DiffusersProvider:
    """Runs open-weights Wan models through diffusers, one generation per device slot."""

    name = "diffusers"
    paid = False
    cache_salt = f"diffusers:{ENGINE_VERSION}"

    def __init__(self, slots_per_device: int | None = None) -> None:
        self.slots_per_device = slots_per_device or int(os.environ.get("WANFLOW_DIFFUSERS_SLOTS", "1") or 1)
        self._slots: dict[str, anyio.CapacityLimiter] = {}

    def check_ready(self) -> None:
        """A UsageError naming the install command when the extra is missing (before anything runs)."""
        engine.require_diffusers()

    def _slot(self, device: str) -> anyio.CapacityLimiter:
        if device not in self._slots:
            self._slots[device] = anyio.CapacityLimiter(self.slots_per_device)
        return self._slots[device]

    async def generate(self, request: StepRequest, context: GenerationContext) -> GenerationResult:
        """Generate ``request``'s video (a PNG for ``num_frames: 1``) into ``context.workdir``."""
        engine.require_diffusers()
        weights = request.model.open_weights
        if weights is None:
            raise ProviderError(f"{request.model.name} is not an open-weights model; provider diffusers runs only those")
        job = engine.Job(
            source=weights.source, identity=str(weights.identity), pipeline_class=weights.pipeline_class, kind=request.model.kind,
            prompt=request.prompt or "", negative_prompt=request.negative_prompt,
            params=dict(request.params), image=_image(request, "image") or _image(request, "first_frame"),
            last_image=_image(request, "last_frame"), **await _vace_inputs(request, context),
        )
        device = engine.pick_device(str(request.params.get("device", "auto")))
        async with self._slot(device):
            frames, info = await _run_in_thread(job, context)
        if len(frames) == 1:  # num_frames: 1 is a picture
            path, field = context.workdir / "image.png", "images"
            await anyio.to_thread.run_sync(write_image, frames, path)
        else:
            path, field = context.workdir / "video.mp4", "video"
            fps = int(request.params.get("fps", 16))
            await anyio.to_thread.run_sync(write_video, frames, path, fps, f"wanflow diffusers {request.model.name}")
        task_info = TaskInfo(cost_usd=0.0, weights=weights.identity, weights_source=weights.source, device=info["device"],
                             dtype=info["dtype"], diffusers=info["diffusers"], torch=info["torch"])
        return GenerationResult(files=[ProducedFile(path, field)], info=task_info)


async def _run_in_thread(job: engine.Job, context: GenerationContext) -> tuple[Any, dict[str, str]]:
    """``engine.generate`` in a worker thread; a cancellation stops it between denoising steps."""
    stop = threading.Event()
    shown = [0]

    def progress(index: int, total: int) -> None:
        # Called in the worker thread: hand the line to the event loop's log.
        if index != shown[0]:
            shown[0] = index
            anyio.from_thread.run_sync(context.log, f"denoising step {index}/{total}")

    outcome: dict[str, Any] = {}
    finished = threading.Event()

    def work() -> None:
        try:
            outcome["value"] = engine.generate(job, stop, progress)
        except BaseException as error:  # handed back to the event loop below
            outcome["error"] = error
        finally:
            finished.set()

    try:
        await anyio.to_thread.run_sync(work, abandon_on_cancel=True)
    except anyio.get_cancelled_exc_class():
        stop.set()
        with anyio.CancelScope(shield=True):  # let the thread reach the end of its denoising step
            await anyio.to_thread.run_sync(finished.wait)
        raise
    if "error" in outcome:
        error = outcome["error"]
        if isinstance(error, engine.Interrupted):
            raise ProviderError("interrupted between denoising steps")
        raise error
    value: tuple[Any, dict[str, str]] = outcome["value"]
    return value


def _local(item: object) -> tuple[Artifact, Path]:
    """The stored file of an input (the provider reads files, it does not download)."""
    if isinstance(item, RemoteInput):
        raise ProviderError(f"provider diffusers works from local files and cannot fetch {item.url}")
    assert isinstance(item, Artifact) and item.path is not None
    return item, item.path


def _image(request: StepRequest, slot: str, index: int = 0) -> Any:
    items = request.inputs.get(slot, ())
    if len(items) <= index:
        return None
    from PIL import Image

    with Image.open(_local(items[index])[1]) as image:
        return image.convert("RGB")


async def _vace_inputs(request: StepRequest, context: GenerationContext) -> dict[str, Any]:
    """VACE's ``video`` and ``mask`` as ``num_frames`` stills of the step's size, and its reference images.

    A longer clip gives its first ``num_frames`` frames (said in the log); a shorter one is an
    error naming both counts, since the model cannot invent the missing conditioning frames.
    """
    found: dict[str, Any] = {}
    count = int(request.params.get("num_frames", 1))
    for slot in ("video", "mask"):
        items = request.inputs.get(slot, ())
        if not items:
            continue
        size = (int(request.params["width"]), int(request.params["height"]))  # every open-weights model has defaults
        item, path = _local(items[0])
        if item.kind == "image":  # a still mask: the same region in every frame
            found[slot] = [_image(request, slot).resize(size)] * count
            continue
        stills, total = await anyio.to_thread.run_sync(read_clip, path, count, size)
        if total < count:
            raise ProviderError(f"{slot}: {item.origin or item.describe()} has {total} frames and num_frames is {count}; "
                                f"give a clip of at least {count} frames, or set num_frames to at most {total} (4k + 1)")
        if total > count:
            context.log(f"{slot}: using the first {count} of {total} frames")
        elif total == count and count > 1:
            context.log(f"{slot}: using the first {count} frames")
        found[slot] = stills
    references = [_image(request, "references", index) for index in range(len(request.inputs.get("references", ())))]
    if references:
        found["references"] = references
    return found
