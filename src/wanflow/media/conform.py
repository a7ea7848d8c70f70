"""Adapt an image to a model's input rules: resize keeping the aspect ratio, flatten
transparency, and re-encode under the byte limit. Deterministic, so the result (and the cache key
it feeds) is the same every time.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

from wanflow._exceptions import ConformError
from wanflow.catalog.spec import InputSpec, MediaRules

_JPEG_QUALITIES = (92, 85, 75, 60)


@dataclass(frozen=True)
class Conformed:
    """The adapted bytes and what was done to get them."""

    data: bytes
    media_type: str
    width: int
    height: int
    actions: tuple[str, ...]


def target_size(width: int, height: int, slot: InputSpec) -> tuple[int, int]:
    """The largest size within the slot's per-side bounds that keeps the aspect ratio."""
    scale = 1.0
    if slot.max_side is not None and max(width, height) > slot.max_side:
        scale = slot.max_side / max(width, height)
    if slot.min_side is not None and min(width, height) * scale < slot.min_side:
        scale = slot.min_side / min(width, height)
    new_w, new_h = max(1, math.floor(width * scale)), max(1, math.floor(height * scale))
    if (slot.max_side is not None and max(new_w, new_h) > slot.max_side) or (slot.min_side is not None and min(new_w, new_h) < slot.min_side):
        raise ConformError(
            f"{width}x{height} cannot be resized to {slot.min_side}-{slot.max_side} pixels per side "
            "without changing its aspect ratio; crop it first"
        )
    return new_w, new_h


def conform_image(path: Path, slot: InputSpec, rules: MediaRules) -> Conformed:
    """Return ``path``'s image adapted to ``slot`` and ``rules``."""
    from PIL import Image

    actions: list[str] = []
    with Image.open(path) as opened:
        image = opened.copy()
        source_format = opened.format or "PNG"
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        image = flat
        actions.append("flattened transparency onto white")
    elif image.mode != "RGB":
        image = image.convert("RGB")
    width, height = target_size(image.width, image.height, slot)
    if (width, height) != image.size:
        actions.append(f"resized {image.width}x{image.height} to {width}x{height}")
        image = image.resize((width, height), Image.Resampling.LANCZOS)
    keep_jpeg = source_format == "JPEG"
    data, media_type = _encode(image, "JPEG" if keep_jpeg else "PNG", 95)
    if len(data) > rules.max_bytes:
        for quality in _JPEG_QUALITIES:
            data, media_type = _encode(image, "JPEG", quality)
            if len(data) <= rules.max_bytes:
                actions.append(f"re-encoded as JPEG quality {quality} ({len(data) / 1048576:.1f} MB)")
                break
        else:
            raise ConformError(f"cannot re-encode under {rules.max_bytes / 1048576:.0f} MB")
    return Conformed(data, media_type, width, height, tuple(actions))


def _encode(image: object, fmt: str, quality: int) -> tuple[bytes, str]:
    buffer = io.BytesIO()
    if fmt == "JPEG":
        image.save(buffer, format="JPEG", quality=quality, optimize=False)  # type: ignore[attr-defined]
        return buffer.getvalue(), "image/jpeg"
    image.save(buffer, format="PNG", compress_level=6)  # type: ignore[attr-defined]
    return buffer.getvalue(), "image/png"
