"""The "chrome" of a preview (its top banner and bottom caption band): measured, recognized and cut.

A preview that feeds another preview (t2i -> edit -> i2v) would otherwise carry its own caption
into the next render, where it shows through faintly under the new caption ("ghost text").
"""

from __future__ import annotations

from PIL import Image

from wanflow.preview.notice import PREVIEW_NOTICE

BANNER_GREY = (20, 20, 20)
CAPTION_MAX_LINES = 4


def banner_height(width: int) -> int:
    """Height of the banner ``images.banner`` draws on an image ``width`` pixels wide."""
    return int(max(10, width // 48) * 1.8)


def caption_size(width: int, height: int) -> int:
    """Font size of the caption ``images.draw_caption`` draws."""
    return max(12, min(width, height) // 34)


def caption_band_height(width: int, height: int, lines: int = CAPTION_MAX_LINES) -> int:
    """Height of a caption band of ``lines`` lines (the tallest band, by default)."""
    size = caption_size(width, height)
    return int(lines * size * 1.35 + size)


def is_preview(image: Image.Image) -> bool:
    """Whether ``image`` is a wanflow preview: its PNG text chunk says so, or (after a re-encode that
    dropped the chunk, e.g. a conformed input) its top-right corner is the banner's flat grey."""
    if str(image.info.get("Comment", "")).startswith(PREVIEW_NOTICE):
        return True
    width, height = image.size
    strip = banner_height(width)
    if width < 64 or height < 4 * strip:
        return False
    rgb = image.convert("RGB")
    # The banner's text sits at the left; its right end is plain grey on every preview.
    points = [(width - 1 - dx, dy) for dx in (2, width // 40, width // 20) for dy in (1, strip // 2, strip - 2)]
    return all(max(abs(a - b) for a, b in zip(rgb.getpixel(point), BANNER_GREY, strict=True)) <= 6  # type: ignore[arg-type]
               for point in points)


def strip_chrome(image: Image.Image) -> Image.Image:
    """``image`` without its banner and caption band when it is a preview; otherwise unchanged."""
    if not is_preview(image):
        return image
    width, height = image.size
    top = banner_height(width)
    bottom = height - caption_band_height(width, height)
    if bottom - top < height // 3:  # a strange size: keep the picture rather than a sliver
        return image
    picture = image.crop((0, top, width, bottom))
    picture.info.pop("Comment", None)  # crop keeps the text chunk; the picture is chrome-free now
    return picture
