"""``overlay`` (an image such as a logo or end card) and ``caption`` (text in a box) over a video,
at a position and for a time range. Both draw one RGBA layer once and blend it into each frame,
so transparency is kept and the cost per frame is one alpha blend of the layer's area."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image, ImageColor, ImageDraw, ImageFont

from wanflow.ops.video_io import map_frames, video_info


def place(position: str, box: tuple[int, int], frame: tuple[int, int], margin: int) -> tuple[int, int]:
    """The top-left corner of a ``box`` at ``position`` inside ``frame``, ``margin`` pixels from the edges."""
    (w, h), (width, height) = box, frame
    vertical, _, horizontal = position.partition("-") if "-" in position else (
        (position, "", "center") if position in ("top", "bottom") else ("center", "", position))
    left = {"left": margin, "right": width - w - margin}.get(horizontal, (width - w) // 2)
    top = {"top": margin, "bottom": height - h - margin}.get(vertical, (height - h) // 2)
    return max(0, min(left, width - w)), max(0, min(top, height - h))


def _blend_into(video: Path, out: Path, layer: Image.Image, corner: tuple[int, int], start: float,
                end: float | None) -> Path:
    """Blend ``layer`` at ``corner`` into the frames shown from ``start`` to ``end``.

    The blend happens on the frame's own yuv420p planes (the layer converted once by the same
    swscale the writer uses), so a frame costs one blend of the layer's area and no full-frame
    colour conversion; the even-aligned corner keeps the chroma planes in register."""
    left, top = corner[0] - corner[0] % 2, corner[1] - corner[1] % 2
    layer = layer.convert("RGBA")
    if layer.width % 2 or layer.height % 2:
        padded = Image.new("RGBA", (layer.width + layer.width % 2, layer.height + layer.height % 2), (0, 0, 0, 0))
        padded.paste(layer, (0, 0))
        layer = padded
    rgba = np.asarray(layer)
    planes = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgba[..., :3]), format="rgb24").reformat(format="yuv420p")
    h, w = rgba.shape[:2]
    luma, chroma_u, chroma_v = (plane.astype(np.float32) for plane in _planes(planes.to_ndarray(), h, w))
    alpha = rgba[..., 3].astype(np.float32) / 255.0
    alpha_c = alpha.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))

    def change(time: float, frame: av.VideoFrame) -> av.VideoFrame | np.ndarray:
        if time + 1e-6 < start or (end is not None and time >= end - 1e-6):
            return frame
        if frame.format.name != "yuv420p":
            frame = frame.reformat(format="yuv420p")
        data = frame.to_ndarray()  # a copy: a decoded frame may be the decoder's reference picture
        height, width = frame.height, frame.width
        y, u, v = _planes(data, height, width)
        hh, ww = min(h, height - top), min(w, width - left)
        _mix(y[top:top + hh, left:left + ww], luma[:hh, :ww], alpha[:hh, :ww])
        _mix(u[top // 2:(top + hh) // 2, left // 2:(left + ww) // 2], chroma_u[:hh // 2, :ww // 2], alpha_c[:hh // 2, :ww // 2])
        _mix(v[top // 2:(top + hh) // 2, left // 2:(left + ww) // 2], chroma_v[:hh // 2, :ww // 2], alpha_c[:hh // 2, :ww // 2])
        blended = av.VideoFrame.from_ndarray(data, format="yuv420p")
        return blended

    return map_frames(video, out, change)


def _planes(data: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Views of the Y, U and V planes of a packed yuv420p array (PyAV's ``to_ndarray`` layout)."""
    flat = data.reshape(-1)
    quarter = (height // 2) * (width // 2)
    return (flat[:height * width].reshape(height, width),
            flat[height * width:height * width + quarter].reshape(height // 2, width // 2),
            flat[height * width + quarter:height * width + 2 * quarter].reshape(height // 2, width // 2))


def _mix(target: np.ndarray, layer: np.ndarray, alpha: np.ndarray) -> None:
    """``target = layer * alpha + target * (1 - alpha)``, in place (uint8 plane views)."""
    target[...] = (layer * alpha + target * (1 - alpha) + 0.5).astype(np.uint8)


def overlay(video: Path, image: Path, params: Mapping[str, Any], out: Path) -> Path:
    """``image`` (alpha kept) scaled to ``scale`` of the video's width, at ``position`` with
    ``margin``, at ``opacity``, from ``start`` to ``end`` seconds (the whole clip by default)."""
    width, height, _, _ = video_info(video)
    with Image.open(image) as source:
        logo = source.convert("RGBA")
    target_w = max(1, min(width, round(width * float(params.get("scale", 0.2)))))
    target_h = max(1, min(height, round(logo.height * target_w / logo.width)))
    logo = logo.resize((target_w, target_h), Image.Resampling.LANCZOS)
    if float(params.get("opacity", 1.0)) < 1.0:
        alpha = logo.getchannel("A").point(lambda value: round(value * float(params["opacity"])))
        logo.putalpha(alpha)
    corner = place(str(params.get("position", "bottom-right")), logo.size, (width, height), int(params.get("margin", 24)))
    return _blend_into(video, out / "video.mp4", logo, corner, float(params.get("start", 0.0)), _end(params))


def caption(video: Path, params: Mapping[str, Any], out: Path, font_file: Path | None = None) -> Path:
    """``text`` in ``color`` at ``size`` pixels, on an optional ``box`` colour, at ``position``,
    from ``start`` to ``end``, in ``font_file`` or else the font that ships with Pillow (a FreeType sans)."""
    width, height, _, _ = video_info(video)
    size = int(params.get("size") or max(12, height // 18))
    font = ImageFont.truetype(str(font_file), size) if font_file is not None else ImageFont.load_default(size=size)
    text = str(params["text"])
    probe = ImageDraw.Draw(Image.new("RGBA", (1, 1)))
    left, top, right, bottom = (round(v) for v in probe.multiline_textbbox((0, 0), text, font=font, align="center"))
    pad = size // 3
    layer = Image.new("RGBA", (min(width, right - left + 2 * pad), min(height, bottom - top + 2 * pad)), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    if params.get("box"):
        fill = ImageColor.getrgb(str(params["box"]))
        draw.rounded_rectangle((0, 0, layer.width - 1, layer.height - 1), radius=pad,
                               fill=(*fill[:3], round(255 * float(params.get("box_opacity", 0.6)))))
    draw.multiline_text((pad - left, pad - top), text, font=font, fill=ImageColor.getrgb(str(params.get("color", "white"))),
                        align="center")
    corner = place(str(params.get("position", "bottom")), layer.size, (width, height), int(params.get("margin", 24)))
    return _blend_into(video, out / "video.mp4", layer, corner, float(params.get("start", 0.0)), _end(params))


def _end(params: Mapping[str, Any]) -> float | None:
    return float(params["end"]) if params.get("end") is not None else None
