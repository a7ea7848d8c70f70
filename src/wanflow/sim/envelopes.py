"""Error bodies, in the shapes each service (and each reading of it) uses.

vtrix, by ``--error-shape``:
  object        {"error": {"code": "001015008", "message": ...}}          the documents
  string        {"error": "the message"}                                  the vendor CLI (TaskError as a string)
  numeric       {"error": {"code": 1015008, "error_message": ...}}        the vendor CLI's TaskError comment
  message-only  {"message": ...}                                          the vendor CLI's HTTP error reader
A failed task's ``error`` field takes the same shape (message-only: {"message": ...}).

DashScope: {"request_id", "code", "message"} on every HTTP error.
"""

from __future__ import annotations

import uuid
from typing import Any

from starlette.responses import JSONResponse


class Rejection(Exception):
    """The service refuses the request: HTTP status, error code, message (and headers, e.g. Retry-After)."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers


def _numeric(code: str, fallback: int) -> int:
    """A code as a number: 001015008 -> 1015008; words (InvalidApiKey) become the HTTP status."""
    return int(code) if code.isdigit() else fallback


def vtrix_task_error(shape: str, code: str, message: str, status: int = 500) -> Any:
    """The value of a vtrix task body's ``error`` field."""
    if shape == "string":
        return message
    if shape == "numeric":
        return {"code": _numeric(code, status), "error_message": message}
    if shape == "message-only":
        return {"message": message}
    return {"code": code, "message": message}


def vtrix_error_body(shape: str, status: int, code: str, message: str) -> dict[str, Any]:
    """The body of a vtrix HTTP error."""
    if shape == "message-only":
        return {"message": message}
    return {"error": vtrix_task_error(shape, code, message, status)}


def vtrix_error(shape: str, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """A vtrix HTTP error response."""
    return JSONResponse(vtrix_error_body(shape, status, code, message), status_code=status, headers=headers)


def dashscope_error(status: int, code: str, message: str, headers: dict[str, str] | None = None,
                    request_id: str | None = None) -> JSONResponse:
    """A DashScope HTTP error response."""
    body = {"request_id": request_id or str(uuid.uuid4()), "code": code, "message": message}
    return JSONResponse(body, status_code=status, headers=headers)
