"""Where a report finds each output file, and the thumbnails it shows for it.

An output is referenced where the run put it (``out/<pipeline>/...``) when the output folder's
manifest says that file still has the recorded content; otherwise it is copied from the
content-addressed store into the report's own folder. Either way the report folder works from
``file://`` with nothing outside it.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wanflow._confine import is_sha256, resolved_confined
from wanflow.artifacts import EXTENSIONS
from wanflow.report.thumbs import ThumbCache
from wanflow.state.out_folder import MANIFEST
from wanflow.state.store import ArtifactStore


@dataclass
class Media:
    """One output file as the report shows it (absolute paths; pages make them relative)."""

    field: str
    media_type: str
    sha256: str
    file: Path | None = None  # None: neither the output folder nor the store has it any more
    thumb: Path | None = None
    poster: Path | None = None
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    text: str | None = None

    @property
    def kind(self) -> str:
        """``image``, ``video``, ``audio`` or ``text``."""
        return self.media_type.split("/", 1)[0]


TEXT_BYTES = 20_000


def _whole(value: Any) -> int | None:
    """A pixel size from a record: a whole number, or None (never text a page would print)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _seconds(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _manifest(folder: Path) -> dict[str, str]:
    try:
        files = json.loads((folder / MANIFEST).read_text("utf-8")).get("files", {})
        return {str(name): str(entry.get("sha256")) for name, entry in files.items()}
    except (OSError, ValueError, AttributeError, TypeError, RecursionError):
        return {}


class MediaPlacer:
    """Resolves output records to files inside ``report_root``, then makes their thumbnails."""

    def __init__(self, report_root: Path, assets: Path, store: ArtifactStore, thumbs: ThumbCache) -> None:
        self.report_root = report_root.resolve()
        self.assets = assets
        self.store = store
        self.thumbs = thumbs
        self._manifests: dict[Path, dict[str, str]] = {}
        self._pending: list[Media] = []

    def media(self, output: dict[str, Any], out_root: Path) -> Media:
        """The Media of one output record (``{"field", "path", "sha256", "media_type", ...}``)."""
        media = Media(field=str(output.get("field", "")), media_type=str(output.get("media_type", "")),
                      sha256=str(output.get("sha256", "")), width=_whole(output.get("width")),
                      height=_whole(output.get("height")), duration=_seconds(output.get("duration")))
        media.file = self._locate(media, output.get("path"), out_root) if is_sha256(media.sha256) else None
        if media.file is not None and media.kind == "text":
            try:
                with open(media.file, "rb") as handle:  # the report shows the start of a long text
                    media.text = handle.read(TEXT_BYTES).decode("utf-8", errors="replace")
            except OSError:
                media.text = None
        if media.file is not None and media.kind in ("image", "video"):
            self._pending.append(media)
        return media

    def _locate(self, media: Media, relative: Any, out_root: Path) -> Path | None:
        """The file to show: the run's copy in ``out_root`` when the manifest vouches for it and it
        lies inside both ``out_root`` and the report's folder; else the store's object, copied in."""
        manifest = self._manifests.get(out_root)
        if manifest is None:
            manifest = self._manifests[out_root] = _manifest(out_root)
        resolved = resolved_confined(out_root, relative)
        if resolved is not None and resolved.is_relative_to(self.report_root) and manifest.get(relative) == media.sha256 \
                and resolved.is_file():
            return resolved
        stored = self.store.path_for(media.sha256)
        if not stored.is_file():
            # An older run whose file was replaced and collected: say so rather than show other bytes.
            return None
        target = self.assets / "media" / f"{media.sha256[:24]}{EXTENSIONS.get(media.media_type, '.bin')}"
        if not target.is_file():
            _place(stored, target, link=False)  # never a link into the store: an edit there would corrupt it
        return target

    def finish(self) -> None:
        """Make (or take from the cache) every pending thumbnail and poster, a few at a time."""
        pending, self._pending = self._pending, []
        unique = {media.sha256: media for media in pending}
        to_make = {sha: media for sha, media in unique.items() if not self.thumbs.has(sha, media.kind == "video")}
        made = {sha: self._make(media) for sha, media in unique.items() if sha not in to_make}  # copies only
        if len(to_make) > 4:
            from concurrent.futures import ThreadPoolExecutor  # with logging, ~5 ms to import: only when needed

            with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 2)) as pool:
                made.update(zip(to_make, pool.map(self._make, to_make.values()), strict=True))
        else:
            made.update((sha, self._make(media)) for sha, media in to_make.items())
        for media in pending:
            media.thumb, media.poster = made[media.sha256]

    def _make(self, media: Media) -> tuple[Path | None, Path | None]:
        assert media.file is not None
        thumb = self.thumbs.thumbnail(media.sha256, media.file, media.media_type)
        poster = self.thumbs.poster(media.sha256, media.file) if media.kind == "video" else None
        return self._bring(thumb, "thumbs"), self._bring(poster, "thumbs")

    def _bring(self, cached: Path | None, folder: str) -> Path | None:
        """A cached file's copy inside the report's folder."""
        if cached is None:
            return None
        target = self.assets / folder / cached.name
        if not target.is_file():
            _place(cached, target, link=True)
        return target


def _place(source: Path, target: Path, link: bool) -> None:
    """Copy ``source`` to ``target`` atomically, as a hard link where allowed and asked (thumbnails
    are derived data, so sharing their bytes is free and safe); never a symlink, so the folder
    survives being zipped or moved."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.{os.getpid()}.part")
    temp.unlink(missing_ok=True)
    try:
        if not link:
            raise OSError("copy wanted")
        os.link(source, temp)
    except OSError:
        shutil.copyfile(source, temp)
    os.replace(temp, target)
