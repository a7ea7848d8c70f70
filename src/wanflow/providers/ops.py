"""The ``op`` provider: runs local media operations (``op:`` steps) in worker threads.

Free and deterministic, so its results are cached by content hash like any step's. At most
``WANFLOW_OP_WORKERS`` (default 1) ops encode at once: media work must not take the cores the event
loop, polling and downloads of paid steps need.
"""

from __future__ import annotations

from pathlib import Path

import anyio

from wanflow._exceptions import ProviderError
from wanflow._fs import sha256_file
from wanflow.artifacts import Artifact
from wanflow.ops.run import run_op
from wanflow.ops.specs import FONT_TYPE
from wanflow.pipelines.request import StepRequest
from wanflow.providers.base import GenerationContext, GenerationResult, ProducedFile, TaskInfo

OPS_VERSION = "ops-2"  # bump when an op's output changes: it salts the cache keys
_LIMITER: anyio.CapacityLimiter | None = None


def _limiter() -> anyio.CapacityLimiter:
    global _LIMITER
    if _LIMITER is None:
        from wanflow._settings import number_setting

        _LIMITER = anyio.CapacityLimiter(int(number_setting("WANFLOW_OP_WORKERS", 1)))
    return _LIMITER


class OpProvider:
    """Runs ``op:`` steps locally; nothing is paid, nothing leaves the machine."""

    name = "op"
    paid = False
    cache_salt = f"op:{OPS_VERSION}"

    async def generate(self, request: StepRequest, context: GenerationContext) -> GenerationResult:
        """Run the op named by the request's model (``op:concat``) into ``context.workdir``."""
        inputs: dict[str, list[Path]] = {}
        for slot, items in request.inputs.items():
            paths = []
            for item in items:
                if not isinstance(item, Artifact) or item.path is None:
                    raise ProviderError(f"an op works on local files; {item.describe()} is not one")
                if item.media_type == FONT_TYPE and sha256_file(item.path) != item.sha256:  # read in place, not stored
                    raise ProviderError(f"{item.origin} changed while the run was resolving it; run again")
                paths.append(item.path)
            inputs[slot] = paths
        op = request.model.name.removeprefix("op:")
        def progress(frames: int) -> None:  # called in the worker thread: the log belongs to the event loop
            anyio.from_thread.run_sync(context.log, f"{op}: {frames} frames written")

        try:
            produced, adaptations = await anyio.to_thread.run_sync(
                run_op, op, inputs, dict(request.params), context.workdir, progress, limiter=_limiter())
        except ValueError as error:
            raise ProviderError(str(error)) from None
        info = TaskInfo(op=op, ops_version=OPS_VERSION, cost_usd=0.0)
        if adaptations:
            info["adaptations"] = adaptations
        return GenerationResult(files=[ProducedFile(path, field) for path, field in produced], info=info)
