"""The runner: scheduling, the artifact store, the step cache, outputs and run records."""

from wanflow.runner.plan import PlannedStep, plan_pipeline
from wanflow.runner.results import MaterializedFile, RunResult, StepResult
from wanflow.runner.scheduler import Reporter, Runner, RunOptions
from wanflow.runner.workspace import Workspace

__all__ = [
    "MaterializedFile",
    "PlannedStep",
    "Reporter",
    "RunOptions",
    "RunResult",
    "Runner",
    "StepResult",
    "Workspace",
    "plan_pipeline",
]
