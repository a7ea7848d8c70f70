"""``soundtrack``: a music file under a video, looped or cut to its length, faded, at a volume,
mixed with the clip's own audio or replacing it. The video stream is copied, not re-encoded.

Loudness: the music is first measured (one streamed pass, ITU-R BS.1770 integrated loudness) and
scaled to ``TARGET_LUFS`` before ``volume`` applies, so quiet and loud tracks sit alike under the
picture, as they will on the platforms that normalise playback. The gain stops where the music's
sample peak would pass ``PEAK_CEILING_DBFS`` (very dynamic music then lands below the target).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from wanflow.ops.loudness import SILENCE_LUFS, measure
from wanflow.ops.video_io import SAMPLE_RATE, audio, video_info

TARGET_LUFS = -16.0  # web and social video (documented in docs/pipelines.md); broadcast EBU R 128 is -23
PEAK_CEILING_DBFS = -1.0  # the normalising gain never lifts the music's sample peak past this
_CHUNK = 1024  # samples per AAC frame


def normalising_gain(music: Path) -> tuple[float, str]:
    """The gain that brings ``music`` to ``TARGET_LUFS`` (peak-limited), and what was done, in words."""
    level, peak = measure(audio(music))
    if level <= SILENCE_LUFS:
        return 1.0, "too quiet or too short (under 0.4 s) to measure its loudness: not normalised"
    gain_db = TARGET_LUFS - level
    note = f"loudness {level:.1f} LUFS -> {TARGET_LUFS:g} LUFS ({gain_db:+.1f} dB)"
    if peak > 0 and gain_db > PEAK_CEILING_DBFS - 20 * math.log10(peak):
        gain_db = PEAK_CEILING_DBFS - 20 * math.log10(peak)
        note = (f"loudness {level:.1f} LUFS raised {gain_db:+.1f} dB to {level + gain_db:.1f} LUFS, short of "
                f"{TARGET_LUFS:g}: its peak stops at {PEAK_CEILING_DBFS:g} dBFS")
    return 10 ** (gain_db / 20), note


def _music(path: Path, loop: bool) -> Iterator[np.ndarray]:
    """The music's chunks, again from the start each time it ends when ``loop``."""
    while True:
        produced = False
        for chunk in audio(path):
            produced = True
            yield chunk
        if not loop or not produced:
            return


def soundtrack(video: Path, music: Path, params: Mapping[str, Any], out: Path) -> tuple[Path, str]:
    """Music under ``video`` for exactly its length: normalised to ``TARGET_LUFS``, then ``volume``,
    ``fade_in``/``fade_out`` seconds, ``loop`` (else silence after the music ends), ``mix: mix |
    replace`` with the clip's own audio. Returns the video and what normalising did, in words."""
    _, _, _, length = video_info(video)
    total = round(length * SAMPLE_RATE)
    normal, note = normalising_gain(music)
    gain = float(params.get("volume", 1.0)) * normal
    fade_in, fade_out = (round(float(params.get(name, 0.0)) * SAMPLE_RATE) for name in ("fade_in", "fade_out"))
    mixing = params.get("mix", "mix") == "mix"
    music_chunks, own_chunks = _music(music, bool(params.get("loop", True))), audio(video)
    music_buf, own_buf = np.zeros((2, 0), np.float32), np.zeros((2, 0), np.float32)
    path = out / "video.mp4"
    with av.open(str(video)) as source, av.open(str(path), "w", format="mp4",
                                                 options={"movflags": "+faststart", "fflags": "+bitexact"}) as target:
        video_in = source.streams.video[0]
        video_out = target.add_stream_from_template(video_in)
        audio_out: Any = target.add_stream("aac", rate=SAMPLE_RATE, layout="stereo")
        done = 0

        def audio_until(end: int) -> None:
            nonlocal done, music_buf, own_buf
            while done < end:
                count = min(_CHUNK, end - done)
                music_buf = _fill(music_buf, music_chunks, count)
                piece, music_buf = music_buf[:, :count] * gain, music_buf[:, count:]
                piece = piece * _envelope(done, count, total, fade_in, fade_out)
                if mixing:
                    own_buf = _fill(own_buf, own_chunks, count)
                    piece, own_buf = piece + own_buf[:, :count], own_buf[:, count:]
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(np.clip(piece, -1, 1), np.float32),
                                                   format="fltp", layout="stereo")
                frame.sample_rate, frame.pts, frame.time_base = SAMPLE_RATE, done, Fraction(1, SAMPLE_RATE)
                for packet in audio_out.encode(frame):
                    target.mux(packet)
                done += count

        for packet in source.demux(video_in):  # the picture is copied as it is: exact and fast
            if packet.dts is None:
                continue
            when = float(packet.dts * packet.time_base) if packet.time_base else 0.0
            audio_until(min(total, round(when * SAMPLE_RATE)))  # interleaved: audio up to this picture's time
            packet.stream = video_out
            target.mux(packet)
        audio_until(total)
        for packet in audio_out.encode(None):
            target.mux(packet)
    return path, note


def _fill(buffer: np.ndarray, chunks: Iterator[np.ndarray], count: int) -> np.ndarray:
    while buffer.shape[1] < count:
        chunk = next(chunks, None)
        if chunk is None:
            return np.concatenate([buffer, np.zeros((2, count - buffer.shape[1]), np.float32)], axis=1)
        buffer = np.concatenate([buffer, chunk], axis=1)
    return buffer


def _envelope(start: int, count: int, total: int, fade_in: int, fade_out: int) -> np.ndarray:
    """Linear fade gains for samples ``start .. start + count`` of ``total``."""
    index = np.arange(start, start + count, dtype=np.float32)
    gain = np.ones(count, np.float32)
    if fade_in:
        gain = np.minimum(gain, index / fade_in)
    if fade_out:
        gain = np.minimum(gain, (total - index) / fade_out)
    return np.clip(gain, 0, 1)
