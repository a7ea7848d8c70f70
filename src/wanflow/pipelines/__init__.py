"""The pipeline DSL: loading, schema validation, templates and the step graph."""

from wanflow.pipelines.graph import to_mermaid
from wanflow.pipelines.load import load_pipeline
from wanflow.pipelines.model import Pipeline, StepSpec
from wanflow.pipelines.resolve import StepRequest

__all__ = ["Pipeline", "StepRequest", "StepSpec", "load_pipeline", "to_mermaid"]
