"""What a paid service says, in wanflow's words: task states, create calls, and the protocol
interface each service module (``dashscope``, ``vtrix``) fills in, with one reader for every
error shape the services use."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import httpx

from wanflow.catalog.loader import load_catalog
from wanflow.catalog.services import ServiceSpec, TaskStatus
from wanflow.pipelines.request import StepRequest


@dataclass
class RemoteOutput:
    """One result item: an image or video URL, or a piece of text."""

    field: str  # images | video | text
    url: str | None = None
    text: str | None = None


@dataclass
class TaskState:
    """A task as the service describes it, in wanflow's vocabulary.

    ``recognized`` is False for a status word the catalog does not know: such a task counts as
    still running (until the overall deadline), never as ended or gone.
    """

    status: TaskStatus
    raw_status: str
    recognized: bool = True
    outputs: list[RemoteOutput] = field(default_factory=list)
    error_code: str | None = None
    error_message: str | None = None
    cost_usd: float | None = None
    partial_failures: list[str] = field(default_factory=list)
    service_seconds: float | None = None  # how long the service says the task took, when it says
    extra_outputs: list[dict[str, str]] = field(default_factory=list)  # items wanflow keeps only as URLs (audio)

    @property
    def terminal(self) -> bool:
        return self.status in ("succeeded", "failed", "canceled", "gone")


class TaskGone(Exception):
    """The service said explicitly that a task id does not exist."""


class ListUnreadable(Exception):
    """A task-list page that could not be read: "unknown", never "empty"."""


@dataclass(frozen=True)
class ListedTask:
    """One task-list item. ``created`` is the service's create time in seconds: true epoch seconds
    when ``absolute`` (epoch-millisecond lists), else the service clock's wall time read as UTC."""

    task_id: str
    model: str | None
    created: float | None
    absolute: bool


@dataclass(frozen=True)
class CreateCall:
    """A create request: path under the base URL, JSON body, extra headers."""

    path: str
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    @cached_property
    def fingerprint(self) -> str:
        """sha256 of the canonical body: names the request in messages and journals."""
        text = json.dumps(self.body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


class ServiceProtocol:
    """What differs between services. Subclasses fill these in; the words, envelopes and
    uploads they speak come from the catalog's ``services`` section."""

    name = "service"
    # Offsets (seconds east of UTC) the service clock may have, for list times read as date strings.
    match_offsets: tuple[float, ...] = (0.0,)

    @cached_property
    def spec(self) -> ServiceSpec:
        return load_catalog().services[self.name]

    def create_call(self, request: StepRequest, inputs: dict[str, list[str]], envelope: str | None = None) -> CreateCall:
        raise NotImplementedError

    def created(self, payload: Any) -> tuple[str | None, str | None]:
        """(task id, request id) from a create answer, wherever a public client reads the id
        (the catalog's ``create_ids``: ``output.task_id`` and a top-level ``task_id`` on DashScope,
        ``id`` on vtrix)."""
        for path in self.spec.create_ids:
            value: Any = payload
            for part in path.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value):
                return str(value), self.request_id(payload)
        return None, self.request_id(payload)

    def not_created(self, status: int, code: str | None) -> bool:
        """Whether an answer proves the create made no task (docs/decisions.md, "Recovery decisions")."""
        answers = self.spec.create_answers
        if 400 <= status < 500:
            return status in answers.not_created_statuses or (code is not None and status != 408)
        return status == 503 and code in answers.not_created_5xx_codes

    def task_path(self, task_id: str, envelope: str | None = None) -> str:
        return self.spec.envelope(envelope).task.format(id=task_id)

    def task_state(self, payload: Any, request: StepRequest) -> TaskState:
        raise NotImplementedError

    def error_of(self, payload: Any) -> tuple[str | None, str]:
        """(code, message) of an error answer, whatever its shape."""
        return read_error(payload)

    def request_id(self, payload: Any) -> str | None:
        return _text(payload.get("request_id")) if isinstance(payload, dict) else None

    def cancel_path(self, task_id: str) -> str | None:
        """Where to cancel a queued task; None when the service cannot."""
        return None

    def list_model(self, request: StepRequest) -> str:
        """The service's model id of ``request`` (as its task list names it)."""
        return request.model.providers[self.name].model

    async def list_tasks(self, client: httpx.AsyncClient, auth: dict[str, str], low: float,
                         high: float) -> list[ListedTask] | None:
        """Every listed task (of the whole account) created between ``low`` and ``high`` (UTC
        seconds), whatever the service clock's zone; None when the service has no task list.
        Raises ListUnreadable when a page cannot be read."""
        return None

    def visible(self, payload: Any) -> bool:
        """Whether a task answer shows the task (not an "unknown id" answer given with HTTP 200)."""
        return True

    def state_for(self, word: Any) -> TaskState:
        """A TaskState for a status word; an unknown word is "still running", marked unrecognized."""
        raw = "" if word is None else str(word)
        status = self.spec.status(raw)
        return TaskState(status or "running", raw, recognized=status is not None)


def read_error(payload: Any) -> tuple[str | None, str]:
    """(code, message) from any error shape the services use.

    Seen: ``{"code", "message"}`` (DashScope), ``{"error": {"code", "message"}}`` (vtrix documents),
    ``{"error": "text"}`` and ``{"message": "text"}`` (the vtrix gateway), ``{"error": {"code": 1015008,
    "error_message": ...}}`` (numeric codes). A numeric code is written as the documents' 9 digits.
    """
    if isinstance(payload, str):
        return None, payload[:500]
    if not isinstance(payload, dict):
        return None, str(payload)[:200]
    error = payload.get("error")
    if isinstance(error, str) and error.strip():
        return _code(payload.get("code")), error[:500]
    source = error if isinstance(error, dict) else payload
    code = _code(source.get("code", source.get("error_code")))
    if code is None and source is not payload:
        code = _code(payload.get("code"))
    message = next((str(source[key]) for key in ("message", "error_message", "msg") if source.get(key)), "")
    if not message and source is not payload:
        message = next((str(payload[key]) for key in ("message", "error_message") if payload.get(key)), "")
    return code, message[:500]


def _code(value: Any) -> str | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        digits = str(value)
        # vtrix's codes are 9 digits with leading zeros (001015008); a JSON number loses them.
        return digits.zfill(9) if 6 <= len(digits) < 9 else digits
    return str(value)


def _text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None
