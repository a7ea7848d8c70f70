"""Artifacts: the images, videos, audio and text that steps consume and produce."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wanflow._exceptions import TemplateReferenceError

EXTENSIONS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/webp": ".webp",
    "image/bmp": ".bmp",
    "video/mp4": ".mp4",
    "audio/mpeg": ".mp3",
    "audio/wav": ".wav",
    "text/plain": ".txt",
}


@dataclass(frozen=True)
class Artifact:
    """One piece of content in the store, known by its sha256.

    ``path`` is where the bytes live (the content-addressed store, or a placeholder before a run).
    ``pending`` marks a stand-in used to check templates before upstream steps have run.
    """

    sha256: str
    media_type: str
    size: int
    path: Path | None = None
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    has_alpha: bool = False
    pending: bool = False
    origin: str = field(default="", compare=False)

    @property
    def kind(self) -> str:
        """``image``, ``video``, ``audio`` or ``text``."""
        return self.media_type.split("/", 1)[0]

    @property
    def extension(self) -> str:
        """The usual file extension for this media type, with the dot."""
        return EXTENSIONS.get(self.media_type, ".bin")

    def read_text(self) -> str:
        """The content of a text artifact."""
        if self.kind != "text":
            raise TemplateReferenceError(f"{self.describe()} is {self.kind}, not text")
        if self.pending or self.path is None:
            return f"<text of {self.origin or 'an upstream step'}>"
        return self.path.read_text("utf-8")

    def describe(self) -> str:
        """Short human description, e.g. ``image hero.images[0] (1280x1280 PNG)``."""
        dims = f" {self.width}x{self.height}" if self.width and self.height else ""
        name = f" {self.origin}" if self.origin else ""
        return f"{self.kind}{name}{dims}"

    def to_record(self) -> dict[str, Any]:
        """JSON-ready metadata (no local path: paths differ between machines)."""
        record: dict[str, Any] = {"sha256": self.sha256, "media_type": self.media_type, "size": self.size}
        for key in ("width", "height", "duration"):
            value = getattr(self, key)
            if value is not None:
                record[key] = value
        if self.has_alpha:
            record["has_alpha"] = True
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any], path: Path | None, origin: str = "") -> Artifact:
        """Rebuild an artifact from ``to_record`` output."""
        return cls(
            sha256=record["sha256"],
            media_type=record["media_type"],
            size=int(record["size"]),
            path=path,
            width=record.get("width"),
            height=record.get("height"),
            duration=record.get("duration"),
            has_alpha=bool(record.get("has_alpha", False)),
            origin=origin,
        )


@dataclass(frozen=True)
class RemoteInput:
    """An http(s) URL given as a media input; its bytes are not ours to hash."""

    url: str

    def describe(self) -> str:
        return f"URL {self.url}"


MediaInput = Artifact | RemoteInput


@dataclass
class MaterializedFile:
    """An artifact copied to the output folder."""

    label: str  # "images[0]", "video", "text"
    path: Path
    artifact: Artifact

    def to_record(self, relative_to: Path) -> dict[str, Any]:
        record = {"field": self.label, "path": _relative(self.path, relative_to)}
        record.update(self.artifact.to_record())
        return record


def _relative(path: Path, base: Path) -> str:
    try:
        return str(path.relative_to(base))
    except ValueError:
        return str(path)
