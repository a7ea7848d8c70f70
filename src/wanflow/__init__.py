"""wanflow: declarative, cached, concurrent pipelines for Alibaba's Wan 2.6 image and video models.

The public API is small and re-exported here; everything else lives in private or sub-modules::

    import wanflow
    pipeline = wanflow.load_pipeline("examples/product-ad/product-ad.yaml")
    result = wanflow.run(pipeline)
    print(result.ok, {step: s.status for step, s in result.steps.items()})
"""

from __future__ import annotations

__version__ = "0.1.0"

from wanflow._diagnostics import Diagnostic, Location  # noqa: E402
from wanflow._exceptions import (  # noqa: E402
    PipelineError,
    ProviderError,
    StepFailed,
    StoreError,
    TemplateReferenceError,
    UsageError,
    WanflowError,
)
from wanflow._api import plan, run  # noqa: E402
from wanflow.artifacts import Artifact  # noqa: E402
from wanflow.pipelines import Pipeline, load_pipeline  # noqa: E402
from wanflow.runner import RunOptions, RunResult, StepResult, Workspace  # noqa: E402

__all__ = [
    "Artifact",
    "Diagnostic",
    "Location",
    "Pipeline",
    "PipelineError",
    "ProviderError",
    "RunOptions",
    "RunResult",
    "StepFailed",
    "StepResult",
    "StoreError",
    "TemplateReferenceError",
    "UsageError",
    "WanflowError",
    "Workspace",
    "__version__",
    "load_pipeline",
    "plan",
    "run",
]
