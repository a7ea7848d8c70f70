"""Located problem reports: what is wrong, where, and what is allowed instead."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Location:
    """A 1-based position in a source file."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class Diagnostic:
    """One problem in a pipeline, formatted as ``file:line:col: path: message (allowed: ...)``."""

    message: str
    location: Location | None = None
    path: str | None = None
    allowed: str | None = None
    code: str | None = None
    severity: Severity = "error"

    def format(self) -> str:
        """Render the diagnostic as one human-readable line."""
        parts: list[str] = []
        if self.location is not None:
            parts.append(str(self.location))
        if self.severity == "warning":
            parts.append("warning")
        if self.path:
            parts.append(self.path)
        text = ": ".join(parts + [self.message]) if parts else self.message
        if self.allowed:
            text += f" (allowed: {self.allowed})"
        if self.code:
            text += f" [service code {self.code}]"
        return text

    def to_json(self) -> dict[str, object]:
        """The diagnostic as plain JSON data (``--json`` output): every field, null when unknown."""
        return {
            "file": self.location.file if self.location else None,
            "line": self.location.line if self.location else None,
            "column": self.location.column if self.location else None,
            "path": self.path,
            "message": self.message,
            "allowed": self.allowed,
            "code": self.code,
            "severity": self.severity,
            "text": self.format(),
        }

    def at(self, location: Location | None, path: str | None = None) -> Diagnostic:
        """Return a copy placed at ``location`` (and ``path`` when given)."""
        return replace(self, location=location, path=path if path is not None else self.path)


def format_path(path: tuple[str | int, ...]) -> str:
    """Format a data path as users write it: ``steps.beach.images[0]``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text
