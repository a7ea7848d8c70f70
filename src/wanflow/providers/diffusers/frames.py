"""Frames to and from files: an H.264 MP4 at the step's fps (PyAV), a PNG for one frame, clips read as stills."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

_X264_OPTIONS = {"crf": "18", "preset": "medium"}


def to_uint8(frames: Any) -> np.ndarray:
    """Float frames in 0..1 (frames x H x W x 3) as uint8."""
    return np.clip(np.rint(np.asarray(frames, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


def write_video(frames: Any, path: Path, fps: int, comment: str = "") -> None:
    """Encode ``frames`` as H.264 (yuv420p) in an MP4 at ``fps``."""
    pixels = to_uint8(frames)
    height, width = pixels.shape[1:3]
    with av.open(str(path), mode="w", format="mp4") as container:
        if comment:
            container.metadata["comment"] = comment
        stream = container.add_stream("libx264", rate=fps, options=_X264_OPTIONS)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, fps)
        for index, picture in enumerate(pixels):
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def write_image(frames: Any, path: Path) -> None:
    """The one frame of ``frames`` (1 x H x W x 3 in 0..1) as a PNG."""
    from PIL import Image

    Image.fromarray(to_uint8(frames)[0]).save(path, format="PNG")  # uint8 H x W x 3: RGB


def read_clip(path: Path, count: int, size: tuple[int, int]) -> tuple[list[Any], int]:
    """The first ``count`` frames of the clip at ``path`` as RGB images of ``size`` (width, height),
    and how many frames the clip has: decoding stops once ``count`` are read, so a long clip costs
    no more than its first frames (the total is then the container's count, at least ``count``)."""
    from PIL import Image

    stills: list[Any] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            stills.append(frame.to_image().convert("RGB").resize(size, Image.Resampling.BICUBIC))
            if len(stills) == count:
                return stills, max(count, int(stream.frames or 0))
    return stills, len(stills)
