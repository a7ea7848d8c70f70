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


def _biquad(kind: str, rate: int) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """BS.1770's two K-weighting stages, designed for ``rate`` (the cookbook forms pyloudnorm uses)."""
    import math

    if kind == "shelf":  # +4 dB above ~1.5 kHz: the head's effect
        gain, q, centre = 4.0, 1 / math.sqrt(2), 1500.0
        a = 10 ** (gain / 40)
        w0 = 2 * math.pi * centre / rate
        alpha, cos = math.sin(w0) / (2 * q), math.cos(w0)
        b = (a * ((a + 1) + (a - 1) * cos + 2 * math.sqrt(a) * alpha), -2 * a * ((a - 1) + (a + 1) * cos),
             a * ((a + 1) + (a - 1) * cos - 2 * math.sqrt(a) * alpha))
        den = ((a + 1) - (a - 1) * cos + 2 * math.sqrt(a) * alpha, 2 * ((a - 1) - (a + 1) * cos),
               (a + 1) - (a - 1) * cos - 2 * math.sqrt(a) * alpha)
        return b, den
    w0 = 2 * math.pi * 38.0 / rate  # the RLB high-pass
    alpha, cos = math.sin(w0) / (2 * 0.5), math.cos(w0)
    return ((1 + cos) / 2, -(1 + cos), (1 + cos) / 2), (1 + alpha, -2 * cos, 1 - alpha)


def bs1770_loudness(path: Path) -> float:
    """Integrated loudness (LUFS) of a file's audio, by ITU-R BS.1770-4 written out here with numpy:
    K-weighting applied through its frequency response, 400 ms blocks every 100 ms, the -70 LUFS
    absolute gate and the -10 LU relative gate. Independent of the product's meter (FFmpeg's)."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate
        signal = np.concatenate([frame.to_ndarray().astype(np.float64) for frame in container.decode(stream)], axis=1)
    length = signal.shape[1]
    size = length + rate  # padded: the filters' tails do not wrap around
    z = np.exp(-2j * np.pi * np.fft.rfftfreq(size))  # z^-1 on the unit circle
    response = np.ones_like(z)
    for kind in ("shelf", "highpass"):
        b, a = _biquad(kind, rate)
        response *= (b[0] + b[1] * z + b[2] * z**2) / (a[0] + a[1] * z + a[2] * z**2)
    weighted = np.fft.irfft(np.fft.rfft(signal, size) * response, size)[:, :length]
    block, step = round(0.4 * rate), round(0.1 * rate)
    energy = np.concatenate([[0.0], np.cumsum((weighted ** 2).sum(axis=0))])  # summed over the channels
    starts = np.arange(0, length - block + 1, step)
    power = (energy[starts + block] - energy[starts]) / block
    loud = power[-0.691 + 10 * np.log10(np.maximum(power, 1e-20)) > -70]
    relative = -0.691 + 10 * np.log10(loud.mean()) - 10
    gated = loud[-0.691 + 10 * np.log10(loud) > relative]
    return float(-0.691 + 10 * np.log10(gated.mean()))
