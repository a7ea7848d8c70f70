"""The services' protocol dialects, as data: status words, envelopes, uploads and the task list.

The service modules (``providers/dashscope.py``, ``providers/vtrix.py``) read these instead of
carrying their own tables, so a word or an envelope seen in public material is added in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

TaskStatus = Literal["queued", "running", "succeeded", "failed", "canceled", "gone"]
_STATES: tuple[TaskStatus, ...] = ("queued", "running", "succeeded", "failed", "canceled", "gone")


@dataclass(frozen=True)
class Envelope:
    """Where and how create calls are sent in one dialect."""

    name: str
    base: str  # the ServiceConfig attribute holding the base URL: base_url | gateway_url
    create: str | None = None  # None: the model's own path (DashScope)
    task: str = "/tasks/{id}"
    wrap: str | None = None  # params_list: {model, input: [{params: {input, parameters}}]}


@dataclass(frozen=True)
class UploadSpec:
    """A service's temporary upload of local files."""

    policy_path: str
    resolve_header: str
    lifetime_hours: float
    inline_max_bytes: int
    always: frozenset[str]


@dataclass(frozen=True)
class TaskListSpec:
    """The task list used for reconciliation."""

    path: str
    time_format: str
    max_clock_offset_hours: float
    max_span_hours: float = 24.0
    match_before_seconds: float = 2.0
    match_after_seconds: float = 30.0
    evidence_hours: float = 2.0
    max_settle_seconds: float = 90.0


@dataclass(frozen=True)
class CreateAnswers:
    """Which create answers prove that no task was made (everything else is "outcome unknown")."""

    not_created_statuses: frozenset[int] = frozenset()
    not_created_5xx_codes: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ServiceSpec:
    """One service's dialect."""

    name: str
    words: Mapping[str, TaskStatus]  # normalised word -> state
    case: str  # lower | upper: how words are normalised before lookup
    gone_codes: frozenset[str]
    default_envelope: str
    envelopes: Mapping[str, Envelope]
    url_only_inputs: frozenset[str] = frozenset()
    uploads: UploadSpec | None = None
    task_list: TaskListSpec | None = None
    known_words: tuple[str, ...] = field(default=())
    create_ids: tuple[str, ...] = ("output.task_id",)  # dotted paths to the task id in a create answer
    create_answers: CreateAnswers = CreateAnswers()
    regions: Mapping[str, str] = field(default_factory=dict)  # every spelling of a region -> its base URL
    workspace_header: str | None = None

    def status(self, word: Any) -> TaskStatus | None:
        """The state a status word names; None for a word this catalog does not know."""
        text = str(word if word is not None else "").strip()
        text = text.upper() if self.case == "upper" else text.lower()
        return self.words.get(text)

    def envelope(self, name: str | None) -> Envelope:
        """The named envelope (the default for None); KeyError for an unknown name."""
        return self.envelopes[name or self.default_envelope]


def parse_service(name: str, data: Mapping[str, Any]) -> ServiceSpec:
    """Build a ServiceSpec from its YAML mapping."""
    case = data.get("status_case", "lower")
    words: dict[str, TaskStatus] = {}
    for state in _STATES:
        for word in data.get("status_words", {}).get(state, []):
            words[word.upper() if case == "upper" else word.lower()] = state
    uploads = data.get("uploads")
    task_list = data.get("task_list")
    return ServiceSpec(
        name=name,
        words=words,
        case=case,
        gone_codes=frozenset(data.get("gone_codes", [])),
        default_envelope=data.get("default_envelope", "documented"),
        envelopes={key: Envelope(name=key, **value) for key, value in data.get("envelopes", {}).items()},
        url_only_inputs=frozenset(data.get("url_only_inputs", [])),
        uploads=UploadSpec(
            policy_path=uploads["policy_path"],
            resolve_header=uploads["resolve_header"],
            lifetime_hours=float(uploads["lifetime_hours"]),
            inline_max_bytes=int(uploads["inline_max_bytes"]),
            always=frozenset(uploads.get("always", [])),
        ) if uploads else None,
        task_list=TaskListSpec(str(task_list["path"]), str(task_list["time_format"]),
                               **{key: float(value) for key, value in task_list.items()
                                  if key not in ("path", "time_format")}) if task_list else None,
        known_words=tuple(words),
        create_ids=tuple(data.get("create_ids", ["output.task_id"])),
        regions={spelling.lower(): str(region["url"]) for name, region in data.get("regions", {}).items()
                 for spelling in (name, *region.get("aliases", []))},
        workspace_header=data.get("workspace_header"),
        create_answers=CreateAnswers(
            frozenset(int(status) for status in data.get("create_answers", {}).get("not_created_statuses", [])),
            frozenset(data.get("create_answers", {}).get("not_created_5xx_codes", []))),
    )
