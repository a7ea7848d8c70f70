"""``fit``: a video or an image cut to a platform's aspect (9:16, 1:1, 16:9, 4:5) at a given width,
by cropping (centred or at an anchor) or by padding (a colour, or a blurred copy of the frame).
An image goes through the very same crop or pad as one video frame."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image, ImageColor, ImageFilter

from wanflow.ops.video_io import map_frames, to_rgb, video_info


def target_size(aspect: str, width: int) -> tuple[int, int]:
    """The output size: ``width`` (made even) and the height the aspect gives (even, as yuv420p needs)."""
    across, down = (int(part) for part in aspect.split(":"))
    width -= width % 2
    height = round(width * down / across)
    return width, height - height % 2


def fit(video: Path, params: Mapping[str, Any], out: Path) -> Path:
    """Every frame cropped or padded to ``aspect`` at ``width``; the audio is kept as it is."""
    source_w, source_h, _, _ = video_info(video)
    width, height = target_size(str(params["aspect"]), int(params["width"]))
    mode, anchor = params.get("mode", "crop"), params.get("anchor", "center")
    fill = str(params.get("fill", "blur"))
    colour = None if fill == "blur" else ImageColor.getrgb(fill)
    if mode == "crop":
        return map_frames(video, out / "video.mp4", lambda _, frame: _crop(frame, source_w, source_h, width, height, anchor),
                          (width, height))
    return map_frames(video, out / "video.mp4", lambda _, frame: _pad(frame, source_w, source_h, width, height, colour),
                      (width, height))


def fit_image(image: Path, params: Mapping[str, Any], out: Path) -> Path:
    """The image cropped or padded to ``aspect`` at ``width``, as a PNG (transparency is flattened:
    a fitted picture is a full frame)."""
    with Image.open(image) as source:
        picture = source.convert("RGBA")
    flat = Image.new("RGB", picture.size, (0, 0, 0))
    flat.paste(picture, mask=picture.getchannel("A"))
    frame = av.VideoFrame.from_image(flat)
    width, height = target_size(str(params["aspect"]), int(params["width"]))
    if params.get("mode", "crop") == "crop":
        result = _crop(frame, flat.width, flat.height, width, height, str(params.get("anchor", "center")))
    else:
        fill = str(params.get("fill", "blur"))
        result = _pad(frame, flat.width, flat.height, width, height, None if fill == "blur" else ImageColor.getrgb(fill))
    path = out / "fitted.png"
    Image.fromarray(np.ascontiguousarray(result)).save(path, format="PNG", optimize=False)
    return path


def _crop(frame: Any, sw: int, sh: int, width: int, height: int, anchor: str) -> np.ndarray:
    scale = max(width / sw, height / sh)  # cover the target, then cut the overflow
    w, h = max(width, round(sw * scale)), max(height, round(sh * scale))
    picture = to_rgb(frame, w - w % 2, h - h % 2)
    h, w = picture.shape[:2]
    left = {"left": 0, "right": w - width}.get(anchor, (w - width) // 2)
    top = {"top": 0, "bottom": h - height}.get(anchor, (h - height) // 2)
    return picture[top:top + height, left:left + width]


def _pad(frame: Any, sw: int, sh: int, width: int, height: int, colour: tuple[int, ...] | None) -> np.ndarray:
    scale = min(width / sw, height / sh)  # fit inside the target, fill the rest
    w, h = max(2, round(sw * scale)), max(2, round(sh * scale))
    if colour is None:
        # A blurred, darkened cover of the frame itself: computed small, then scaled up (cheap).
        small = Image.fromarray(to_rgb(frame, max(2, width // 8), max(2, height // 8)))
        back = small.filter(ImageFilter.GaussianBlur(3)).resize((width, height), Image.Resampling.BILINEAR)
        canvas = (np.asarray(back, dtype=np.uint16) * 3 // 5).astype(np.uint8)
    else:
        canvas = np.empty((height, width, 3), np.uint8)
        canvas[:] = colour[:3]
    top, left = (height - h) // 2, (width - w) // 2
    canvas[top:top + h, left:left + w] = to_rgb(frame, w, h)
    return canvas
