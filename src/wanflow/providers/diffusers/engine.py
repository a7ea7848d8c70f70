"""The diffusers engine: load a Wan pipeline once per process, run it, stop between denoising steps.

Everything here is blocking and runs in a worker thread (see ``provider``). Pipelines are kept
per (weights, device, dtype, offload) for the life of the process (a cluster worker included),
so a second step or instance on the same weights pays no load time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from wanflow._exceptions import ProviderError, UsageError
from wanflow.pipelines.weights import resolve_device, resolve_dtype

INSTALL = "pip install 'wanflow[diffusers]'"
_LOCK = threading.Lock()
_PIPELINES: dict[tuple[str, str, str, str, str], Any] = {}


class Interrupted(Exception):
    """The run was cancelled; raised from the step callback so the pipeline stops between steps."""


def require_diffusers() -> None:
    """UsageError naming the install command when the ``diffusers`` extra is missing."""
    try:
        import diffusers  # noqa: F401
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as error:
        raise UsageError(f"provider diffusers needs the diffusers extra ({error.name or error} is not installed): "
                         f"{INSTALL}; for a CUDA GPU install the matching torch first (see README, 'Your own GPU')") from None


def quiet_libraries() -> None:
    """No download bars or load chatter on the terminal: the live view shows the progress."""
    import diffusers
    import transformers

    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def versions() -> dict[str, str]:
    """The versions that shape the frames, for the record and the lockfile."""
    import diffusers
    import torch

    return {"diffusers": diffusers.__version__, "torch": torch.__version__}


def pick_device(name: str) -> str:
    """``auto``: the first CUDA GPU, else Apple's MPS, else the CPU (the cache key resolves it alike)."""
    return resolve_device(name)


def pick_dtype(name: str, device: str) -> Any:
    """``auto``: bfloat16 on a GPU (Wan's training precision), float32 on the CPU."""
    import torch

    return getattr(torch, resolve_dtype(name, device))


@dataclass(frozen=True)
class Job:
    """One generation, as plain values: what the provider asks of the engine."""

    source: str  # repo id or folder
    identity: str  # which weights exactly: new weights at the same path are loaded anew
    pipeline_class: str  # from the folder's model_index.json; empty for a catalog id
    kind: str
    prompt: str
    negative_prompt: str | None
    params: Mapping[str, Any]
    image: Any = None  # a PIL image for i2v / ti2v, the first frame for flf2v
    last_image: Any = None  # the last frame for flf2v
    video: Any = None  # VACE: num_frames PIL stills to condition on
    mask: Any = None  # VACE: num_frames PIL stills, white where to generate
    references: Any = None  # VACE: PIL reference images


def load_pipeline(job: Job, device: str, dtype: Any) -> Any:
    """The pipeline for ``job``'s weights on ``device``, loaded once per process."""
    import diffusers

    offload = str(job.params.get("offload", "none"))
    shift = job.params.get("flow_shift")
    image_kind = job.kind in ("i2v", "flf2v") or (job.kind == "t2v" and job.image is not None)
    wanted_class = "WanImageToVideoPipeline" if image_kind else ""
    key = (f"{job.source}@{job.identity}", device, str(dtype), offload, f"{wanted_class}:{shift}")
    with _LOCK:
        pipe = _PIPELINES.get(key)
        if pipe is not None:
            return pipe
        for stale in [k for k in _PIPELINES if k[0].startswith(f"{job.source}@") and k[0] != key[0]]:
            del _PIPELINES[stale]  # older weights at this path: free their memory
        quiet_libraries()
        cls = getattr(diffusers, wanted_class or job.pipeline_class or "DiffusionPipeline")
        try:
            pipe = cls.from_pretrained(job.source, torch_dtype=dtype)
        except OSError as error:
            if "/" in job.source and not job.source.startswith("/"):
                raise ProviderError(f"model {job.source} is not in the local Hugging Face cache and cannot be downloaded "
                                    f"here ({error}); download it (huggingface-cli download {job.source}) or unset "
                                    "HF_HUB_OFFLINE") from None
            raise ProviderError(f"cannot load the pipeline at {job.source}: {error}") from None
        if shift is not None:
            name = "flow_shift" if "flow_shift" in pipe.scheduler.config else "shift"  # UniPC / FlowMatchEuler
            pipe.scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config, **{name: float(shift)})
        if offload == "model":
            pipe.enable_model_cpu_offload(device=device)
        elif offload == "sequential":
            pipe.enable_sequential_cpu_offload(device=device)
        else:
            pipe.to(device)
        pipe.set_progress_bar_config(disable=True)
        _PIPELINES[key] = pipe
        return pipe


_CALL_PARAMS = ("height", "width", "num_frames", "num_inference_steps", "guidance_scale", "guidance_scale_2",
                "max_sequence_length")


def call_arguments(job: Job) -> dict[str, Any]:
    """diffusers' call arguments for ``job`` (the params that are not machine or scheduler settings)."""
    arguments: dict[str, Any] = {name: job.params[name] for name in _CALL_PARAMS if name in job.params}
    arguments["prompt"] = job.prompt
    if job.negative_prompt:
        arguments["negative_prompt"] = job.negative_prompt
    if job.image is not None:
        arguments["image"] = job.image
    if job.last_image is not None:
        arguments["last_image"] = job.last_image
    for name, value in (("video", job.video), ("mask", job.mask), ("reference_images", job.references)):
        if value is not None:
            arguments[name] = value
    return arguments


def generate(job: Job, stop: threading.Event, progress: Callable[[int, int], None]) -> tuple[Any, dict[str, str]]:
    """Run ``job``; returns the frames (numpy, frames x H x W x 3 in 0..1) and what to record.

    ``stop`` is checked after every denoising step; ``progress(i, n)`` is called after each one.
    """
    import torch

    device = pick_device(str(job.params.get("device", "auto")))
    dtype = pick_dtype(str(job.params.get("dtype", "auto")), device)
    try:
        pipe = load_pipeline(job, device, dtype)
        total = int(job.params.get("num_inference_steps", 50))

        def on_step_end(pipeline: Any, index: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            progress(index + 1, total)
            if stop.is_set():
                raise Interrupted
            return tensors

        generator = torch.Generator(device="cpu" if device == "mps" else device).manual_seed(int(job.params["seed"]))
        output = pipe(**call_arguments(job), generator=generator, output_type="np", callback_on_step_end=on_step_end)
    except (torch.OutOfMemoryError, RuntimeError) as error:
        if not is_out_of_memory(error):
            raise
        raise ProviderError(out_of_memory_message(job, device, str(error))) from None
    frames = output.frames[0]
    info = {"device": device, "dtype": str(dtype).removeprefix("torch."), **versions()}
    return frames, info


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA's OutOfMemoryError, or the CPU allocator's RuntimeError (torch has no class for that one)."""
    import torch

    text = str(error)
    return isinstance(error, torch.OutOfMemoryError) or "can't allocate memory" in text or "out of memory" in text.lower()


def out_of_memory_message(job: Job, device: str, detail: str) -> str:
    """What to change when the model does not fit: offload, dtype or a smaller size."""
    first_line = detail.strip().splitlines()[0] if detail.strip() else "out of memory"
    hints = []
    if job.params.get("offload", "none") == "none":
        hints.append("offload: model (or sequential, slower, for the smallest GPUs)")
    if job.params.get("dtype", "auto") in ("auto", "float32") and device != "cpu":
        hints.append("dtype: bfloat16")
    hints.append(f"a smaller size than {job.params.get('width')}x{job.params.get('height')} "
                 f"or fewer frames than {job.params.get('num_frames')}")
    return f"{device} ran out of memory ({first_line}); try " + ", or ".join(hints)
