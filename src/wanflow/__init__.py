"""wanflow: declarative, cached, concurrent pipelines for Alibaba's Wan 2.6 image and video models.

The public API is small and re-exported here; everything else lives in private or sub-modules::

    import wanflow
    pipeline = wanflow.load_pipeline("examples/product-ad/product-ad.yaml")
    result = wanflow.run(pipeline)
    print(result.ok, {step: s.status for step, s in result.steps.items()})

Names are imported on first use, so ``import wanflow`` (and the command line's start) stays
cheap: nothing heavy (httpx, anyio, Pillow, PyAV, Jinja) loads until something needs it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from wanflow._version import __version__

# public name -> the module that defines it
_EXPORTS = {
    "plan": "wanflow._api",
    "run": "wanflow._api",
    "arun": "wanflow._api",
    "explain": "wanflow._api",
    "pick": "wanflow._api",
    "Plan": "wanflow.planning.planner",
    "BatchResult": "wanflow.execute.batch",
    "Diagnostic": "wanflow._diagnostics",
    "Location": "wanflow._diagnostics",
    "ConformError": "wanflow._exceptions",
    "FileSystemError": "wanflow._exceptions",
    "FrozenMismatch": "wanflow._exceptions",
    "MediaError": "wanflow._exceptions",
    "PipelineError": "wanflow._exceptions",
    "ProviderError": "wanflow._exceptions",
    "StepFailed": "wanflow._exceptions",
    "StoreError": "wanflow._exceptions",
    "TemplateProblem": "wanflow._exceptions",
    "TemplateReferenceError": "wanflow._exceptions",
    "UsageError": "wanflow._exceptions",
    "WanflowError": "wanflow._exceptions",
    "WorkspaceBusy": "wanflow._exceptions",
    "Artifact": "wanflow.artifacts",
    "Pipeline": "wanflow.pipelines",
    "load_pipeline": "wanflow.pipelines",
    "RunOptions": "wanflow.planning.options",
    "RunResult": "wanflow.records.results",
    "StepResult": "wanflow.records.results",
    "Workspace": "wanflow.state.workspace",
}

if TYPE_CHECKING:
    from wanflow._api import arun, explain, pick, plan, run
    from wanflow._diagnostics import Diagnostic, Location
    from wanflow._exceptions import (
        ConformError,
        FileSystemError,
        FrozenMismatch,
        MediaError,
        PipelineError,
        ProviderError,
        StepFailed,
        StoreError,
        TemplateProblem,
        TemplateReferenceError,
        UsageError,
        WanflowError,
        WorkspaceBusy,
    )
    from wanflow.artifacts import Artifact
    from wanflow.execute.batch import BatchResult
    from wanflow.pipelines import Pipeline, load_pipeline
    from wanflow.planning.options import RunOptions
    from wanflow.planning.planner import Plan
    from wanflow.records.results import RunResult, StepResult
    from wanflow.state.workspace import Workspace


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'wanflow' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*_EXPORTS, "__version__"])


__all__ = [
    "Artifact",
    "BatchResult",
    "ConformError",
    "Diagnostic",
    "FileSystemError",
    "FrozenMismatch",
    "Location",
    "MediaError",
    "Pipeline",
    "PipelineError",
    "Plan",
    "ProviderError",
    "RunOptions",
    "RunResult",
    "StepFailed",
    "StepResult",
    "StoreError",
    "TemplateProblem",
    "TemplateReferenceError",
    "UsageError",
    "WanflowError",
    "Workspace",
    "WorkspaceBusy",
    "__version__",
    "arun",
    "explain",
    "load_pipeline",
    "pick",
    "plan",
    "run",
]
