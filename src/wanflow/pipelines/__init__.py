"""The pipeline DSL: loading, schema validation, templates and the step graph.

Names are imported on first use (as in ``wanflow``), so ``wanflow.pipelines.request`` (what
providers and the simulator need) loads without the template engine or the catalog's rules.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# public name -> the module that defines it
_EXPORTS = {
    "Pipeline": "wanflow.pipelines.model",
    "StepSpec": "wanflow.pipelines.model",
    "StepRequest": "wanflow.pipelines.request",
    "load_pipeline": "wanflow.pipelines.load",
    "to_mermaid": "wanflow.pipelines.graph",
}

if TYPE_CHECKING:
    from wanflow.pipelines.graph import to_mermaid
    from wanflow.pipelines.load import load_pipeline
    from wanflow.pipelines.model import Pipeline, StepSpec
    from wanflow.pipelines.request import StepRequest


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'wanflow.pipelines' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*_EXPORTS, *globals()])


__all__ = ["Pipeline", "StepRequest", "StepSpec", "load_pipeline", "to_mermaid"]
