"""Deterministic preview videos: a real H.264 MP4 that pans and zooms over the first frame.

Resolution follows the requested tier with the input's aspect ratio, duration is exact, and an
AAC track is added when audio is requested (the given audio file, or a soft seed-derived chord).
"""

from __future__ import annotations

import math
import random
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from wanflow.preview.chrome import strip_chrome
from wanflow.preview.images import PREVIEW_NOTICE, banner, draw_caption, fit_dimensions
from wanflow.preview.seeds import stable_int

FPS = 16  # previews only need to show motion; 16 fps keeps offline renders quick
SAMPLE_RATE = 44_100
TIER_AREAS = {"480P": 832 * 480, "720P": 1280 * 720, "1080P": 1920 * 1080}
# Fixed encoder settings keep preview bytes identical from run to run and machine to machine.
_X264_OPTIONS = {"preset": "ultrafast", "crf": "26", "threads": "2"}
_CONTAINER_OPTIONS = {"fflags": "+bitexact"}


def first_picture(path: Path) -> Image.Image:
    """The first picture of a video file (r2v previews show their references' frames)."""
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            return frame.to_image()
    raise ValueError(f"{path} has no video frame")


def video_dimensions(resolution: str, aspect: float) -> tuple[int, int]:
    """Frame size for a resolution tier at the input image's aspect ratio."""
    return fit_dimensions(aspect, TIER_AREAS.get(resolution, TIER_AREAS["720P"]), multiple=8)


def _motion(seed: int) -> tuple[float, float, float]:
    """Zoom amount and pan direction chosen by the seed."""
    rng = random.Random(stable_int("motion", seed))
    angle = rng.random() * math.tau
    return 0.10 + rng.random() * 0.12, math.cos(angle), math.sin(angle)


def _caption_overlay(size: tuple[int, int], prompt: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The prompt's caption band as (rgb, alpha) arrays covering the frame, or None without a prompt."""
    if not prompt.strip():
        return None
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    draw_caption(layer, prompt)
    pixels = np.asarray(layer)
    return pixels[..., :3].astype(np.uint16), pixels[..., 3:].astype(np.uint16)


def _frames(first: Image.Image, size: tuple[int, int], seconds: int, seed: int, label: str, prompt: str = "",
            last: Image.Image | None = None):
    """Yield each frame as an ``av.VideoFrame`` (RGB, at the output size), captioned with ``prompt``.

    With ``last`` the picture morphs from ``first`` into ``last`` (a first-and-last-frame preview)."""
    width, height = size
    target = np.asarray(_cover(last.convert("RGB"), width / height).resize(size, Image.Resampling.BILINEAR),
                        dtype=np.uint16) if last is not None else None
    caption = _caption_overlay(size, prompt)
    band_top = int(np.argmax(caption[1][:, 0, 0] > 0)) if caption is not None else height
    zoom, dx, dy = _motion(seed)
    # Scale once to the largest size a frame samples from; each frame is then an integer crop
    # scaled by swscale, which is ~10x faster than a fractional-box PIL resize.
    source = _cover(first.convert("RGB"), width / height).resize(
        (math.ceil(width * (1 + zoom)), math.ceil(height * (1 + zoom))), Image.Resampling.BILINEAR
    )
    pixels = np.asarray(source)
    strip = np.asarray(banner(width, label))
    total = seconds * FPS
    for index in range(total):
        progress = index / max(1, total - 1)
        eased = 0.5 - 0.5 * math.cos(progress * math.pi)
        scale = 1.0 + zoom * eased
        crop_w, crop_h = round(source.width / scale), round(source.height / scale)
        slack_x, slack_y = (source.width - crop_w) / 2, (source.height - crop_h) / 2
        left = round(slack_x + dx * slack_x * eased)
        top = round(slack_y + dy * slack_y * eased)
        crop = np.ascontiguousarray(pixels[top:top + crop_h, left:left + crop_w])
        frame = av.VideoFrame.from_ndarray(crop, format="rgb24").reformat(
            width=width, height=height, interpolation="BILINEAR"
        )
        rgb = frame.to_ndarray()
        if target is not None:  # cross-fade towards the last frame as the clip advances
            weight = round(255 * eased)
            rgb = ((rgb.astype(np.uint16) * (255 - weight) + target * weight) // 255).astype(np.uint8)
        rgb[: strip.shape[0]] = strip
        if caption is not None:  # a fixed caption over the moving picture, blended on its band only
            colour, alpha = caption[0][band_top:], caption[1][band_top:]
            rgb[band_top:] = ((rgb[band_top:] * (255 - alpha) + colour * alpha) // 255).astype(np.uint8)
        rgb[height - 6:, : int(width * progress)] = (255, 214, 0)
        yield av.VideoFrame.from_ndarray(rgb, format="rgb24")


def _cover(image: Image.Image, aspect: float) -> Image.Image:
    current = image.width / image.height
    if abs(current - aspect) < 1e-3:
        return image
    if current > aspect:
        new_width = int(image.height * aspect)
        left = (image.width - new_width) // 2
        return image.crop((left, 0, left + new_width, image.height))
    new_height = int(image.width / aspect)
    top = (image.height - new_height) // 2
    return image.crop((0, top, image.width, top + new_height))


def _chord(seconds: int, seed: int) -> np.ndarray:
    """A soft stereo chord with fade in/out, as float32 planar samples (2, n)."""
    rng = random.Random(stable_int("audio", seed))
    root = 196.0 * 2 ** (rng.randrange(12) / 12)
    ratios = (1.0, 1.25, 1.5) if rng.random() < 0.5 else (1.0, 1.2, 1.5)
    t = np.arange(seconds * SAMPLE_RATE, dtype=np.float64) / SAMPLE_RATE
    wave = sum(np.sin(2 * np.pi * root * ratio * t) for ratio in ratios) / len(ratios)
    envelope = np.minimum(1.0, np.minimum(t / 0.5, (seconds - t) / 0.5))
    mono = (0.25 * wave * envelope).astype(np.float32)
    return np.stack([mono, mono])


def _decoded_audio(path: Path, seconds: int) -> np.ndarray:
    """The first ``seconds`` of an audio file as float32 planar stereo at SAMPLE_RATE."""
    resampler = av.AudioResampler(format="fltp", layout="stereo", rate=SAMPLE_RATE)
    chunks = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray())
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray())
    samples = np.concatenate(chunks, axis=1) if chunks else np.zeros((2, 0), np.float32)
    wanted = seconds * SAMPLE_RATE
    # Like the service: audio longer than the video is cut, shorter leaves silence at the end.
    if samples.shape[1] < wanted:
        samples = np.pad(samples, ((0, 0), (0, wanted - samples.shape[1])))
    return samples[:, :wanted].astype(np.float32)


def _encode_audio(container: av.container.OutputContainer, stream: av.AudioStream, samples: np.ndarray) -> None:
    frame_size = 1024
    pts = 0
    for start in range(0, samples.shape[1], frame_size):
        chunk = np.ascontiguousarray(samples[:, start:start + frame_size])
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = pts
        pts += chunk.shape[1]
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


def render_image_to_video(
    first_frame: Image.Image,
    out_path: Path,
    *,
    seed: int,
    resolution: str,
    seconds: int,
    with_audio: bool,
    audio_path: Path | None,
    model: str,
    prompt: str = "",
    size: tuple[int, int] | None = None,
    last_frame: Image.Image | None = None,
) -> tuple[int, int]:
    """Write an MP4 animating ``first_frame`` with ``prompt`` as its caption; returns the frame size.

    ``size`` fixes the frame size (text-to-video's W*H); otherwise the tier's area at the input's
    aspect, as the service does. ``last_frame`` makes it a morph into that image. A preview given
    as a frame loses its own banner and caption first (no ghost text)."""
    size = size or video_dimensions(resolution, first_frame.width / first_frame.height)
    first_frame = strip_chrome(first_frame)
    last_frame = strip_chrome(last_frame) if last_frame is not None else None
    with av.open(str(out_path), mode="w", format="mp4", options=_CONTAINER_OPTIONS) as container:
        container.metadata["comment"] = PREVIEW_NOTICE
        video = container.add_stream("libx264", rate=FPS, options=_X264_OPTIONS)
        video.width, video.height = size
        video.pix_fmt = "yuv420p"
        video.time_base = Fraction(1, FPS)
        # Every stream must exist before the first packet is written.
        audio = container.add_stream("aac", rate=SAMPLE_RATE) if with_audio else None
        if audio is not None:
            audio.layout = "stereo"
        label = f"{model} · {resolution} · {seconds}s · seed {seed}"
        for index, frame in enumerate(_frames(first_frame, size, seconds, seed, label, prompt, last_frame)):
            frame.pts = index
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
        if audio is not None:
            samples = _decoded_audio(audio_path, seconds) if audio_path is not None else _chord(seconds, seed)
            _encode_audio(container, audio, samples)
    return size
