"""The outcome of a run, per step and overall."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from wanflow.artifacts import Artifact, MaterializedFile
from wanflow.catalog.rules import tier_aspect_warning
from wanflow.state.cache import StepOutputsData

if TYPE_CHECKING:
    from wanflow.pipelines.request import StepRequest

StepStatus = Literal["pending", "running", "ran", "cached", "failed", "skipped"]
SUCCESS = ("ran", "cached")


@dataclass
class StepResult:
    """What happened to one step, and why."""

    step_id: str
    model: str
    provider: str | None = None
    status: StepStatus = "pending"
    reason: str = ""
    error: str | None = None
    cache_key: str | None = None
    seed: int | None = None
    seed_source: str | None = None
    request: dict[str, Any] | None = None
    outputs: StepOutputsData | None = None
    files: list[MaterializedFile] = field(default_factory=list)
    provider_info: dict[str, Any] = field(default_factory=dict)
    adaptations: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    estimated_usd: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    condition_skipped: bool = False  # skipped because its `when:` (or an upstream one's) was false
    items: list[StepResult] | None = None  # the sub-tasks of a for_each step, in item order

    @property
    def ok(self) -> bool:
        """Whether the step has usable outputs."""
        return self.status in SUCCESS

    @property
    def fine(self) -> bool:
        """Succeeded, or was skipped on purpose by a condition."""
        return self.ok or self.condition_skipped

    @property
    def cost_usd(self) -> float:
        """The cost the provider reported for this run of the step, its items' for a ``for_each``
        step (0 when cached or free)."""
        if self.items is not None:
            return sum(item.cost_usd for item in self.items)
        if self.status != "ran":
            return 0.0
        return float(self.provider_info.get("cost_usd") or 0.0)

    def units(self) -> list[StepResult]:
        """What was generated or looked up: the step itself, or its items."""
        return self.items if self.items is not None else [self]

    @property
    def seconds(self) -> float | None:
        """Wall-clock duration, when the step ran or was looked up."""
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at

    def describe(self, request: StepRequest, key: str) -> dict[str, Any]:
        """Fill in what the unit's resolved request says (provider, key, request, seed, input
        adaptations and their warnings); returns the canonical request."""
        canonical = request.canonical()
        self.provider, self.cache_key, self.request = request.provider, key, canonical
        self.seed, self.seed_source = request.drawn_seed, request.seed_source
        self.adaptations = [dict(item) for item in request.adaptations]
        for adaptation in self.adaptations:  # a changed picture must not pass unnoticed
            if any("transparency" in str(action) for action in adaptation.get("actions") or []):
                self.warnings.append(f"input {str(adaptation.get('from', ''))[:19]}…: its transparency was flattened onto "
                                     "white (the model takes no alpha); give an opaque image to choose the background")
        aspect = tier_aspect_warning(request.model, request.params, [
            (item.width, item.height) if isinstance(item, Artifact) and item.width and item.height else None
            for item in request.inputs.get("images", ())])
        if aspect:
            self.warnings.append(aspect)
        return canonical


@dataclass
class RunResult:
    """A whole run: every step's result, the named outputs and where the record went."""

    run_id: str
    pipeline_name: str
    steps: dict[str, StepResult]
    outputs: dict[str, list[MaterializedFile]] = field(default_factory=dict)
    output_errors: dict[str, str] = field(default_factory=dict)
    out_notes: list[str] = field(default_factory=list)  # out/ files kept or manifest entries ignored
    record_path: Path | None = None
    out_dir: Path | None = None
    preview: bool = False
    interrupted: bool = False
    report_path: Path | None = None  # out/<pipeline>/index.html, once written
    report_error: str | None = None  # why the report was not written

    def units(self) -> list[StepResult]:
        """Every unit: each step, or each item of a ``for_each`` step (as ``plan`` lists them)."""
        return [unit for step in self.steps.values() for unit in step.units()]

    @property
    def estimated_usd(self) -> float:
        """The estimated cost of every unit that ran (what ``plan`` estimated for them)."""
        return round(sum(unit.estimated_usd for unit in self.units() if unit.status == "ran"), 6)

    @property
    def cost_usd(self) -> float:
        """The cost the providers reported (or estimated, where they report none) for this run."""
        return round(sum(unit.cost_usd for unit in self.units()), 6)

    @property
    def ok(self) -> bool:
        """True when every step succeeded and every named output was written."""
        return all(step.fine for step in self.steps.values()) and not self.output_errors and not self.interrupted

    def counts(self) -> dict[str, int]:
        """Number of steps per status."""
        counts: dict[str, int] = {}
        for step in self.steps.values():
            counts[step.status] = counts.get(step.status, 0) + 1
        return counts
