"""``encode`` (export presets: H.264 yuv420p, faststart, by quality or bitrate) and
``contact_sheet`` (a labelled grid of images, or of the middle frames of videos)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from wanflow.ops.video_io import AudioTake, VideoWriter, audio, frames, video_info

# Export presets: x264 settings and a largest width. Each param given beside ``preset`` wins.
PRESETS: dict[str, dict[str, Any]] = {
    "web": {"quality": 23, "max_width": None, "speed": "medium"},
    "social": {"quality": 20, "max_width": 1080, "speed": "medium"},
    "draft": {"quality": 30, "max_width": 720, "speed": "veryfast"},
}


def encode(video: Path, params: Mapping[str, Any], out: Path) -> Path:
    """Re-encode for export: ``preset``, then ``quality`` (x264 CRF, lower is better) or
    ``bitrate_kbps``, and ``max_width`` (scaled down keeping the aspect, never up)."""
    chosen = {**PRESETS[str(params.get("preset", "web"))], **{k: v for k, v in params.items() if k != "preset"}}
    width, height, fps, _ = video_info(video)
    if chosen.get("max_width") and width > int(chosen["max_width"]):
        width, height = int(chosen["max_width"]), round(height * int(chosen["max_width"]) / width)
    x264 = {"preset": str(chosen["speed"]), "threads": "2"}
    bitrate = int(chosen["bitrate_kbps"]) * 1000 if chosen.get("bitrate_kbps") else None
    if bitrate is None:
        x264["crf"] = str(int(chosen["quality"]))
    path = out / "video.mp4"
    sound = AudioTake(audio(video))
    with VideoWriter(path, width, height, fps, x264=x264, bitrate=bitrate) as writer:
        for _, frame in frames(video):
            writer.write(frame, sound.take(writer.samples_for_next_frame()))
    return path


def contact_sheet(images: list[Path], videos: list[Path], params: Mapping[str, Any], out: Path) -> Path:
    """Images (then the middle frame of each video) in a grid of ``columns``, each ``cell_width``
    wide, labelled with its index in the sheet when ``labels`` is true."""
    pictures: list[Image.Image] = []
    for path in images:
        with Image.open(path) as image:
            pictures.append(image.convert("RGB"))
    for path in videos:
        middle = video_info(path)[3] / 2
        chosen = None
        for time, frame in frames(path):
            chosen = frame
            if time >= middle:
                break
        if chosen is not None:
            pictures.append(chosen.to_image())
    columns = min(int(params.get("columns", 4)), len(pictures))
    cell = int(params.get("cell_width", 320))
    tallest = max(round(p.height * cell / p.width) for p in pictures)
    gap, label_h = 8, (cell // 10 if params.get("labels", True) else 0)
    rows = math.ceil(len(pictures) / columns)
    sheet = Image.new("RGB", (columns * (cell + gap) + gap, rows * (tallest + label_h + gap) + gap), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=max(10, label_h * 3 // 4)) if label_h else None
    for index, picture in enumerate(pictures):
        left = gap + (index % columns) * (cell + gap)
        top = gap + (index // columns) * (tallest + label_h + gap)
        sheet.paste(picture.resize((cell, round(picture.height * cell / picture.width)), Image.Resampling.LANCZOS),
                    (left, top + label_h))
        if font is not None:
            draw.text((left, top), str(index), fill=(235, 235, 235), font=font)
    path = out / "sheet.png"
    sheet.save(path, format="PNG")
    return path
