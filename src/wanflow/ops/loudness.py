"""Integrated loudness (ITU-R BS.1770-4 / EBU R 128: K-weighting, 400 ms blocks, the -70 LUFS
absolute and -10 LU relative gates) measured by FFmpeg's ``ebur128`` filter, which the PyAV wheel
already carries: no new dependency, and the meter broadcasters' tools are checked against.
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction

import av
import numpy as np

from wanflow.ops.video_io import SAMPLE_RATE

SILENCE_LUFS = -70.0  # the absolute gate: nothing above it was heard (silence, or shorter than a block)


def measure(chunks: Iterable[np.ndarray], rate: int = SAMPLE_RATE) -> tuple[float, float]:
    """The integrated loudness in LUFS of stereo float chunks (2 x n each), and their sample peak.

    Streams: each chunk goes through the meter and is dropped. A signal with no gated block
    (silence, or under 0.4 s) reads ``SILENCE_LUFS``."""
    graph = av.filter.Graph()
    source = graph.add_abuffer(format="fltp", sample_rate=rate, layout="stereo", time_base=Fraction(1, rate))
    meter = graph.add("ebur128", "metadata=1")
    sink = graph.add("abuffersink")
    source.link_to(meter)
    meter.link_to(sink)
    graph.configure()
    integrated, peak, done = SILENCE_LUFS, 0.0, 0

    def drain() -> None:
        nonlocal integrated
        while True:
            try:
                frame = graph.pull()
            except (av.error.BlockingIOError, av.error.EOFError):
                return
            value = frame.metadata.get("lavfi.r128.I")
            if value is not None:
                integrated = float(value)

    for chunk in chunks:
        if not chunk.size:
            continue
        peak = max(peak, float(np.abs(chunk).max()))
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk, np.float32), format="fltp", layout="stereo")
        frame.sample_rate, frame.pts, frame.time_base = rate, done, Fraction(1, rate)
        graph.push(frame)
        done += chunk.shape[1]
        drain()
    graph.push(None)
    drain()
    return max(integrated, SILENCE_LUFS), peak
