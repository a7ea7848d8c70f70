"""The report's view of a run: instances, steps and their media, read from the run records."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wanflow.report.media import Media, MediaPlacer


@dataclass
class StepView:
    """One step (or one item of a fan-out step) as a card shows it."""

    id: str
    record: dict[str, Any]
    outputs: list[Media]
    items: list[StepView] | None = None

    def get(self, name: str, default: Any = None) -> Any:
        """A field of the step's record."""
        value = self.record.get(name)
        return default if value is None else value

    @property
    def status(self) -> str:
        return str(self.record.get("status", "?"))

    @property
    def request(self) -> dict[str, Any]:
        return dict(self.record.get("request") or {})

    @property
    def task_ids(self) -> list[str]:
        ids = [str(task) for task in (self.record.get("provider_info") or {}).get("task_ids") or []]
        for item in self.items or []:
            ids += item.task_ids
        return ids

    def all_media(self) -> list[Media]:
        """This step's outputs, or its items' outputs in item order."""
        media = list(self.outputs)
        for item in self.items or []:
            media += item.all_media()
        return media


@dataclass
class InstanceView:
    """One instance of a run (``default`` for a single run): its record and its steps."""

    name: str
    record: dict[str, Any]
    out_root: Path
    steps: list[StepView] = field(default_factory=list)
    outputs: dict[str, list[Media]] = field(default_factory=dict)
    page: Path | None = None  # its own report page, for a matrix or batch instance

    @property
    def status(self) -> str:
        return str(self.record.get("status", "?"))

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"

    @property
    def vars(self) -> dict[str, Any]:
        return dict(self.record.get("vars") or {})

    @property
    def totals(self) -> dict[str, Any]:
        return dict(self.record.get("totals") or {})

    def primary(self) -> Media | None:
        """What stands for this instance in a grid or table: its first named output, else the
        last step's first image or video."""
        for files in self.outputs.values():
            for media in files:
                if media.kind in ("image", "video"):
                    return media
        for step in reversed(self.steps):
            for media in step.all_media():
                if media.kind in ("image", "video"):
                    return media
        return None


def _step_view(step_id: str, record: dict[str, Any], out_root: Path, placer: MediaPlacer) -> StepView:
    items = record.get("items")
    return StepView(
        id=step_id,
        record=record,
        outputs=[placer.media(output, out_root) for output in record.get("outputs") or [] if not items],
        items=[_step_view(f"{step_id}[{index}]", item, out_root, placer) for index, item in enumerate(items)]
        if isinstance(items, list) else None,
    )


def instance_view(name: str, record: dict[str, Any], out_root: Path, placer: MediaPlacer) -> InstanceView:
    """The view of one run record whose outputs went to ``out_root``."""
    view = InstanceView(name=name, record=record, out_root=out_root)
    for step_id, step in (record.get("steps") or {}).items():
        view.steps.append(_step_view(step_id, step, out_root, placer))
    for output_name, files in (record.get("outputs") or {}).items():
        view.outputs[output_name] = [placer.media(output, out_root) for output in files]
    return view


def problems(instance: InstanceView) -> list[tuple[str, str, str]]:
    """(severity, where, text) for every failure and warning of an instance."""
    found: list[tuple[str, str, str]] = []
    for warning in instance.record.get("warnings") or []:
        found.append(("warning", "pipeline", str(warning)))
    for step in instance.steps:
        for part in [step, *(step.items or [])]:
            if part.status == "failed":
                found.append(("error", part.id, str(part.get("error", "failed"))))
            for warning in part.get("warnings", []):
                found.append(("warning", part.id, str(warning)))
    for output, problem in (instance.record.get("output_errors") or {}).items():
        found.append(("error", f"output {output}", str(problem)))
    return found
