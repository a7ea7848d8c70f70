"""Thumbnails and poster frames, made once per content hash and kept under ``.wanflow/thumbs/``.

Pillow scales images; PyAV decodes a video's first frame. A report copies what it needs from this
cache into its own folder, so a rerun (or the report of another run with the same outputs) makes
nothing again.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

THUMB_PX = 360  # the long side of a thumbnail: sharp in a 180 px cell on a 2x screen
POSTER_PX = 960  # the long side of a video's poster frame
QUALITY = 82


class ThumbCache:
    """``<root>/<sha[:2]>/<sha>-<kind>.jpg``; each file is written atomically, once."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, sha256: str, kind: str) -> Path:
        return self.root / sha256[:2] / f"{sha256}-{kind}.jpg"

    def has(self, sha256: str, video: bool) -> bool:
        """Whether the thumbnail (and a video's poster) of ``sha256`` are made already."""
        return self._path(sha256, "thumb").is_file() and (not video or self._path(sha256, "poster").is_file())

    def thumbnail(self, sha256: str, source: Path, media_type: str) -> Path | None:
        """A small JPEG of an image, or of a video's first frame; None when it cannot be made."""
        target = self._path(sha256, "thumb")
        if target.is_file():
            return target
        if media_type.startswith("video/"):
            poster = self.poster(sha256, source)
            return self._save_scaled(poster, target, THUMB_PX) if poster else None
        return self._save_scaled(source, target, THUMB_PX)

    def poster(self, sha256: str, video: Path) -> Path | None:
        """A video's first frame as a JPEG (at most POSTER_PX on its long side)."""
        target = self._path(sha256, "poster")
        if target.is_file():
            return target
        try:
            import av

            with av.open(str(video)) as container:
                frame = next(container.decode(video=0))
                image = frame.to_image()
        except Exception:  # a damaged or unknown file: the report shows it without a poster
            return None
        return self._write(image, target, POSTER_PX)

    def _save_scaled(self, source: Path, target: Path, longest: int) -> Path | None:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(source) as image:
                image.draft("RGB", (longest, longest))  # JPEG sources decode at a reduced size
                return self._write(image, target, longest)
        except (OSError, UnidentifiedImageError, ValueError):
            return None

    def _write(self, image: Any, target: Path, longest: int) -> Path:
        from PIL import Image

        picture = image.convert("RGB")
        picture.thumbnail((longest, longest), Image.Resampling.BILINEAR, reducing_gap=2.0)
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f".{target.name}.{os.urandom(4).hex()}")
        picture.save(temp, format="JPEG", quality=QUALITY, optimize=False)
        os.replace(temp, target)  # two reports making the same thumbnail: either copy wins
        return target
