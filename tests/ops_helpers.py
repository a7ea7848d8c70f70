"""Small real clips for op tests: H.264 + AAC made with the product's own writer, frames that differ."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from wanflow.ops.video_io import SAMPLE_RATE, VideoWriter


def make_clip(path: Path, seconds: float = 2.0, size: tuple[int, int] = (160, 96), fps: int = 16,
              hue: int = 0, tone: float | None = 440.0) -> Path:
    """A clip whose frame i has a moving bar and a colour set by ``hue``; a sine tone (or silence)."""
    width, height = size
    with VideoWriter(path, width, height, Fraction(fps)) as writer:
        for index in range(round(seconds * fps)):
            picture = np.zeros((height, width, 3), np.uint8)
            picture[..., hue % 3] = 200
            picture[:, (index * 4) % width: (index * 4) % width + 8] = 255
            count = writer.samples_for_next_frame()
            start = round(index * SAMPLE_RATE / fps)
            times = (np.arange(count) + start) / SAMPLE_RATE
            sound = None if tone is None else np.stack([0.3 * np.sin(2 * np.pi * tone * times)] * 2).astype(np.float32)
            writer.write(picture, sound)
    return path


def decoded(path: Path) -> dict[str, object]:
    """What decoding finds: codecs, pixel format, size, frame count, frame rate, audio seconds."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        facts: dict[str, object] = {
            "video_codec": video.codec_context.name, "pix_fmt": video.codec_context.pix_fmt,
            "size": (video.codec_context.width, video.codec_context.height),
            "fps": float(video.average_rate or 0),
            "audio_codec": container.streams.audio[0].codec_context.name if container.streams.audio else None,
        }
    with av.open(str(path)) as container:
        facts["frames"] = sum(1 for _ in container.decode(video=0))
    if facts["audio_codec"]:
        with av.open(str(path)) as container:
            samples = sum(frame.samples for frame in container.decode(audio=0))
            facts["audio_seconds"] = samples / SAMPLE_RATE
    return facts


def last_frame(path: Path) -> np.ndarray:
    """The clip's final decoded frame as RGB."""
    with av.open(str(path)) as container:
        final = None
        for frame in container.decode(video=0):
            final = frame
        assert final is not None
        return final.to_ndarray(format="rgb24")


def write_tone(path: Path, seconds: float, frequency: float, level: float, rate: int = 48_000) -> Path:
    """A mono 16-bit WAV sine (another rate than the outputs', as music files often are)."""
    import wave

    times = np.arange(round(seconds * rate)) / rate
    samples = (level * 32767 * np.sin(2 * np.pi * frequency * times)).astype("<i2")
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(samples.tobytes())
    return path


def write_font(path: Path, scale: int = 2) -> Path:
    """A real TrueType font unlike the default one: Pillow's own font with its em square made
    ``scale`` times smaller (head.unitsPerEm), so its glyphs draw ``scale`` times larger."""
    import struct

    from PIL import ImageFont

    data = bytearray(ImageFont.load_default(size=12).path.getvalue())  # type: ignore[union-attr]
    for index in range(struct.unpack(">H", data[4:6])[0]):
        tag, _, offset, _ = struct.unpack(">4sIII", data[12 + 16 * index:28 + 16 * index])
        if tag == b"head":
            units = struct.unpack(">H", data[offset + 18:offset + 20])[0]
            data[offset + 18:offset + 20] = struct.pack(">H", units // scale)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(data))
    return path
