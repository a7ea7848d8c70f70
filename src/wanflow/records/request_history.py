"""The last resolved request of each step, so a re-run can say which field changed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from wanflow._fs import atomic_write_json
from wanflow.pipelines.model import Pipeline
from wanflow.state.keys import diff_requests


def history_name(pipeline: Pipeline, instance: str = "default") -> str:
    """The history file of a pipeline, or of one instance of a matrix or batch run."""
    return pipeline.name if instance == "default" else f"{pipeline.name}@{instance}"


class RequestHistory:
    """``.wanflow/index/<pipeline>.json``: step id -> {key, request} from the latest run."""

    def __init__(self, index_dir: Path, pipeline_name: str) -> None:
        self.path = index_dir / f"{pipeline_name}.json"
        try:
            document = json.loads(self.path.read_text("utf-8"))
            self._entries: dict[str, dict[str, Any]] = document.get("steps", {})
            self.previous_vars: dict[str, Any] | None = document.get("vars")
        except (OSError, ValueError, AttributeError, RecursionError):
            self._entries, self.previous_vars = {}, None
        if not isinstance(self._entries, dict) or not all(isinstance(v, dict) for v in self._entries.values()):
            self._entries = {}  # damaged: the next run explains less, and rewrites it
        if not isinstance(self.previous_vars, dict | None):
            self.previous_vars = None
        self._updates: dict[str, dict[str, Any]] = {}
        self._vars: dict[str, Any] | None = None

    def explain_miss(self, step_id: str, key: str, request: dict[str, Any]) -> str:
        """Why ``step_id`` must run: what changed since last time, or that it is new."""
        previous = self._entries.get(step_id)
        if previous is None:
            return "new: no earlier result for this request"
        if previous.get("key") == key:
            return "its cached result is missing or damaged"
        changes = diff_requests(previous.get("request", {}), request)
        if not changes:
            return "request changed"
        return "changed: " + "; ".join(changes[:4]) + (f" (+{len(changes) - 4} more)" if len(changes) > 4 else "")

    def previous(self, step_id: str) -> dict[str, Any] | None:
        """What ``step_id`` resolved to in the latest run ({key, request}), if anything."""
        return self._entries.get(step_id)

    def remember(self, step_id: str, key: str, request: dict[str, Any]) -> None:
        """Note the request a step resolved to in this run."""
        self._updates[step_id] = {"key": key, "request": request}

    def remember_vars(self, values: dict[str, Any]) -> None:
        """Note the vars of this run, so the next ``explain`` can name a var that changed."""
        self._vars = dict(values)

    def save(self) -> None:
        """Persist (merging with what earlier runs recorded)."""
        if not self._updates:
            return
        entries = {**self._entries, **self._updates}
        document: dict[str, Any] = {"steps": entries}
        if self._vars is not None or self.previous_vars is not None:
            document["vars"] = self._vars if self._vars is not None else self.previous_vars
        # Rebuilt by the next run if lost, so it skips the fsyncs.
        atomic_write_json(self.path, document, durable=False, compact=True)
