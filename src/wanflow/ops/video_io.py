"""Streaming video in and out with PyAV: frames at an exact output rate, audio in step with them.

Nothing holds a whole clip: readers are generators over the decoder, the writer encodes each frame
(and the audio that belongs under it) as it comes. Outputs are H.264 yuv420p + AAC MP4 with the
index at the front (faststart), which browsers and phones play.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextvars import ContextVar
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

SAMPLE_RATE = 44_100
# Fixed encoder settings keep outputs identical from run to run (the cache key promises that).
X264_OPTIONS = {"preset": "veryfast", "crf": "20", "threads": "2"}
_CONTAINER_OPTIONS = {"movflags": "+faststart", "fflags": "+bitexact"}
# Who hears progress (frames written so far) while an op runs; set by run_op for its thread.
PROGRESS: ContextVar[Callable[[int], None] | None] = ContextVar("wanflow_op_progress", default=None)
PROGRESS_EVERY = 120  # frames between reports (5 s of 24 fps video)


def video_info(path: Path) -> tuple[int, int, Fraction, float]:
    """Width, height, frame rate and duration in seconds of the first video stream."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        duration = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else (
            float(container.duration) / av.time_base if container.duration else 0.0)
        return stream.codec_context.width, stream.codec_context.height, Fraction(rate), duration


def frames(path: Path) -> Iterator[tuple[float, av.VideoFrame]]:
    """Each decoded frame with its time in seconds from the clip's first frame."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        first: float | None = None
        for frame in container.decode(stream):
            time = float(frame.time) if frame.time is not None else 0.0
            first = time if first is None else first
            yield time - first, frame


def at_rate(source: Iterator[tuple[float, av.VideoFrame]], fps: Fraction, count: int | None = None,
            start: float = 0.0) -> Iterator[av.VideoFrame]:
    """Frames sampled at ``fps`` from ``start``: output frame i shows the source frame on screen at
    ``start + i / fps`` (the same frames when the rates match). Stops after ``count`` or at the end."""
    current: av.VideoFrame | None = None
    pending = next(source, None)
    index = 0
    while count is None or index < count:
        wanted = start + index / fps
        while pending is not None and pending[0] <= wanted + 1e-6:
            current = pending[1]
            pending = next(source, None)
        if current is None or (pending is None and count is None and index and wanted >= _end_of(current, fps)):
            return
        yield current
        index += 1


def _end_of(frame: av.VideoFrame, fps: Fraction) -> float:
    return (float(frame.time) if frame.time is not None else 0.0) + float(1 / fps)


def frame_count(path: Path) -> int:
    """The number of decodable video frames (counted by decoding: exact, streaming)."""
    return sum(1 for _ in frames(path))


def audio(path: Path) -> Iterator[np.ndarray]:
    """The clip's audio as float32 stereo chunks at SAMPLE_RATE (shape 2 x n); silence if it has none."""
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return
        resampler = av.AudioResampler(format="fltp", layout="stereo", rate=SAMPLE_RATE)
        for frame in container.decode(container.streams.audio[0]):
            for out in resampler.resample(frame):
                yield out.to_ndarray().astype(np.float32)
        for out in resampler.resample(None):
            yield out.to_ndarray().astype(np.float32)


class AudioTake:
    """Pulls exact sample counts from an audio chunk stream, padding with silence past its end."""

    def __init__(self, chunks: Iterator[np.ndarray], skip_seconds: float = 0.0) -> None:
        self._chunks = chunks
        self._buffer = np.zeros((2, 0), np.float32)
        skip = round(skip_seconds * SAMPLE_RATE)
        while skip > 0:
            taken = self.take(min(skip, SAMPLE_RATE))
            skip -= taken.shape[1]

    def take(self, count: int) -> np.ndarray:
        """Exactly ``count`` samples (2 x count)."""
        while self._buffer.shape[1] < count:
            chunk = next(self._chunks, None)
            if chunk is None:
                pad = np.zeros((2, count - self._buffer.shape[1]), np.float32)
                self._buffer = np.concatenate([self._buffer, pad], axis=1)
                break
            self._buffer = np.concatenate([self._buffer, chunk], axis=1)
        out, self._buffer = self._buffer[:, :count], self._buffer[:, count:]
        return out


class VideoWriter:
    """Writes frames (any size/format: reformatted to the output) and the audio under each frame."""

    def __init__(self, path: Path, width: int, height: int, fps: Fraction, x264: dict[str, str] | None = None,
                 bitrate: int | None = None) -> None:
        self.width, self.height, self.fps = width - width % 2, height - height % 2, fps
        self._container: Any = av.open(str(path), "w", format="mp4", options=_CONTAINER_OPTIONS)
        self._video = self._container.add_stream("libx264", rate=fps)
        self._video.width, self._video.height, self._video.pix_fmt = self.width, self.height, "yuv420p"
        self._video.codec_context.time_base = Fraction(1) / fps
        self._video.options = dict(x264 or X264_OPTIONS)
        if bitrate:
            self._video.bit_rate = bitrate
        self._audio = self._container.add_stream("aac", rate=SAMPLE_RATE, layout="stereo")
        self._frames = 0
        self._samples = 0

    def samples_for_next_frame(self) -> int:
        """How many audio samples belong under the next frame (the sum stays exact)."""
        end = round((self._frames + 1) * SAMPLE_RATE / self.fps)
        return end - round(self._frames * SAMPLE_RATE / self.fps)

    def write(self, frame: av.VideoFrame | np.ndarray, samples: np.ndarray | None = None) -> None:
        """Encode one frame (and its audio: 2 x samples_for_next_frame(), silence when None)."""
        count = self.samples_for_next_frame()
        if isinstance(frame, np.ndarray):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        out = frame.reformat(width=self.width, height=self.height, format="yuv420p")
        out.pts, out.time_base = self._frames, Fraction(1) / self.fps
        for packet in self._video.encode(out):
            self._container.mux(packet)
        chunk = samples if samples is not None else np.zeros((2, count), np.float32)
        sound = av.AudioFrame.from_ndarray(np.ascontiguousarray(np.clip(chunk, -1, 1), np.float32), format="fltp",
                                           layout="stereo")
        sound.sample_rate, sound.pts, sound.time_base = SAMPLE_RATE, self._samples, Fraction(1, SAMPLE_RATE)
        for packet in self._audio.encode(sound):
            self._container.mux(packet)
        self._frames += 1
        self._samples += count
        heard = PROGRESS.get()
        if heard is not None and self._frames % PROGRESS_EVERY == 0:
            heard(self._frames)

    def close(self) -> None:
        """Flush the encoders and finish the file."""
        for stream in (self._video, self._audio):
            for packet in stream.encode(None):
                self._container.mux(packet)
        self._container.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()
        else:
            self._container.close()


def map_frames(video: Path, out: Path, change: Callable[[float, av.VideoFrame], av.VideoFrame | np.ndarray],
               size: tuple[int, int] | None = None) -> Path:
    """Re-encode ``video`` with each frame replaced by ``change(time, frame)``; the audio is kept."""
    width, height, fps, _ = video_info(video)
    width, height = size or (width, height)
    sound = AudioTake(audio(video))
    with VideoWriter(out, width, height, fps) as writer:
        for time, frame in frames(video):
            writer.write(change(time, frame), sound.take(writer.samples_for_next_frame()))
    return out


def to_rgb(frame: av.VideoFrame, width: int | None = None, height: int | None = None) -> np.ndarray:
    """The frame as an RGB array (optionally scaled)."""
    return frame.to_ndarray(format="rgb24", width=width, height=height)
