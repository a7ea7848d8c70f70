"""Where resolving a step puts what it finds: located diagnostics, and the names templates see."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wanflow._diagnostics import Diagnostic, Location, format_path
from wanflow._exceptions import TemplateProblem
from wanflow.catalog.rules import Finding
from wanflow.pipelines.model import Pipeline, StepSpec
from wanflow.pipelines.source_document import DataPath
from wanflow.pipelines.templating import StepOutputs, StepsNamespace, VarsNamespace, render


def base_context(pipeline: Pipeline, upstream: Mapping[str, StepOutputs]) -> dict[str, Any]:
    """The names templates can use: ``vars``, ``steps`` and ``pipeline``."""
    return {
        "vars": VarsNamespace(pipeline.vars),
        "steps": StepsNamespace(upstream),
        "pipeline": {"name": pipeline.name},
    }



FAILED = object()  # a template that did not render: its problem is already recorded


class StepDiagnostics:
    """Gathers located diagnostics (errors and warnings) while one step is resolved."""

    def __init__(self, pipeline: Pipeline, step: StepSpec) -> None:
        self.pipeline = pipeline
        self.step = step
        self.diagnostics: list[Diagnostic] = []

    @property
    def failed(self) -> bool:
        return any(d.severity == "error" for d in self.diagnostics)

    def add(self, path: DataPath, message: str, allowed: str | None = None, code: str | None = None,
            severity: str = "error") -> None:
        location: Location = self.pipeline.locate(path)
        self.diagnostics.append(
            Diagnostic(message, location, path=format_path(path), allowed=allowed, code=code, severity=severity)  # type: ignore[arg-type]
        )

    def finding(self, finding: Finding) -> None:
        # A rule about a param the user did not write (a costly default) is placed at the
        # nearest written ancestor: the step's params, or the step itself.
        self.add(self.step.path(*finding.field), finding.message, finding.allowed, finding.code, finding.severity)

    def render(self, text: str, context: Mapping[str, Any], path: DataPath) -> Any:
        try:
            return render(text, context)
        except TemplateProblem as problem:
            location = self.pipeline.locate(path)
            if problem.line and problem.line > 1:
                location = Location(location.file, location.line + problem.line - 1, location.column)
            self.diagnostics.append(Diagnostic(problem.message, location, path=format_path(path)))
            return FAILED
