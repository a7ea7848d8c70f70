"""``concat``: videos joined in order, by a cut or a crossfade, streamed frame by frame.

The first clip sets the output's size and frame rate; a clip of another size is scaled to fit
inside it (padded, never stretched) and one of another rate is resampled in time. Each such
adaptation is returned so the run record can say what was done.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import av
import numpy as np

from wanflow.ops.video_io import AudioTake, VideoWriter, at_rate, audio, frames, to_rgb, video_info


def concat(videos: list[Path], params: Mapping[str, Any], out: Path) -> tuple[Path, list[dict[str, Any]]]:
    """Join ``videos``; with ``transition: crossfade`` each join overlaps ``transition_seconds``.

    The length is the sum of the clips minus one transition per join (exact to a frame).
    """
    infos = [video_info(path) for path in videos]
    width, height, fps, _ = infos[0]
    width, height = width - width % 2, height - height % 2
    adaptations = []
    for index, (w, h, rate, _) in enumerate(infos[1:], start=1):
        actions = ([f"scaled {w}x{h} to fit {width}x{height}"] if (w, h) != (width, height) else []) + (
            [f"frame rate {float(rate):g} -> {float(fps):g} fps"] if rate != fps else [])
        if actions:
            adaptations.append({"input": f"videos[{index}]", "actions": actions})
    fade = round(float(params.get("transition_seconds", 0.5)) * fps) if params.get("transition") == "crossfade" else 0
    counts = [max(1, math.floor(duration * fps + 1e-6)) for _, _, _, duration in infos]
    if (fade and any(count <= 2 * fade for count in counts[1:-1])) or (fade and min(counts) <= fade):
        raise ValueError(f"concat: a {fade / fps:g} s crossfade is longer than a clip")
    path = out / "video.mp4"
    with VideoWriter(path, width, height, fps) as writer:
        tail: list[tuple[np.ndarray, np.ndarray]] = []  # the previous clip's last ``fade`` frames and their audio
        for index, source in enumerate(videos):
            sound = AudioTake(audio(source))
            clip = _conformed(at_rate(frames(source), fps, counts[index]), width, height)
            keep = counts[index] - (fade if index < len(videos) - 1 else 0)
            for position, picture in enumerate(clip):
                samples = sound.take(writer.samples_for_next_frame())
                shown: av.VideoFrame | np.ndarray = picture
                if position < len(tail):  # overlapping the previous clip's end: mix both
                    weight = (position + 1) / (fade + 1)
                    before, before_sound = tail[position]
                    shown = (before * (1 - weight) + to_rgb(picture) * weight).astype(np.uint8)
                    samples = _fit_length(before_sound, samples.shape[1]) * (1 - weight) + samples * weight
                if position < keep:
                    writer.write(shown, samples)
                else:
                    tail.append((to_rgb(picture), samples))
            tail = tail[-fade:] if fade else []
    return path, adaptations


def _conformed(source: Iterator[av.VideoFrame], width: int, height: int) -> Iterator[av.VideoFrame]:
    """Frames of exactly ``width`` x ``height``: scaled to fit and padded with black if needed.
    A frame of the right size passes through as decoded (no colour conversion: the fast path)."""
    for frame in source:
        if (frame.width, frame.height) == (width, height):
            yield frame
            continue
        scale = min(width / frame.width, height / frame.height)
        w, h = max(2, round(frame.width * scale)), max(2, round(frame.height * scale))
        canvas = np.zeros((height, width, 3), np.uint8)
        top, left = (height - h) // 2, (width - w) // 2
        canvas[top:top + h, left:left + w] = to_rgb(frame, w, h)
        yield av.VideoFrame.from_ndarray(canvas, format="rgb24")


def _fit_length(samples: np.ndarray, count: int) -> np.ndarray:
    """``samples`` cut or padded with silence to ``count`` (per-frame counts differ by one at most)."""
    if samples.shape[1] >= count:
        return samples[:, :count]
    return np.concatenate([samples, np.zeros((2, count - samples.shape[1]), np.float32)], axis=1)
