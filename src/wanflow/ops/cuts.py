"""``frame`` (one exact frame of a video) and ``trim`` (a time range of a video, with its audio)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from wanflow.ops.video_io import AudioTake, VideoWriter, at_rate, audio, frames, video_info


def take_frame(video: Path, params: Mapping[str, Any], out: Path) -> Path:
    """The decoded frame shown at ``at`` (``first``, ``last`` = the true final frame, or seconds) as PNG."""
    at = params.get("at", "last")
    chosen = None
    for time, frame in frames(video):
        if chosen is None or at == "last" or (at != "first" and time <= float(at) + 1e-6):
            chosen = frame
        if at == "first" or (at != "last" and time > float(at)):
            break
    if chosen is None:
        raise ValueError(f"{video.name} has no video frames")
    path = out / "frame.png"
    chosen.to_image().save(path, format="PNG", optimize=False)
    return path


def trim(video: Path, params: Mapping[str, Any], out: Path) -> Path:
    """Frames from ``start`` up to ``end`` (or ``start + duration``), audio cut at the same times."""
    width, height, fps, length = video_info(video)
    start = float(params.get("start", 0.0))
    end = params.get("end")
    if end is None and params.get("duration") is not None:
        end = start + float(params["duration"])
    end = min(float(end), length) if end is not None else length
    if end <= start:
        raise ValueError(f"trim: end ({end:g} s) must be after start ({start:g} s) within the {length:g} s clip")
    count = max(1, math.floor((end - start) * fps + 1e-6))
    path = out / "video.mp4"
    sound = AudioTake(audio(video), skip_seconds=start)
    with VideoWriter(path, width, height, fps) as writer:
        for frame in at_rate(frames(video), fps, count, start):
            writer.write(frame, sound.take(writer.samples_for_next_frame()))
    return path
