"""A long concat streams: minutes of 1080p joined in a process whose peak memory stays under a
fixed cap, far below what holding the decoded video would take. Slow tier (tens of seconds)."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from wanflow.ops.video_io import VideoWriter

WIDTH, HEIGHT, FPS, SECONDS = 1920, 1080, 4, 60
CAP_MB = 512  # peak growth of the op's process; x264 and two decoders at 1080p need about 200-330 MB

PROBE = """
import json, resource, sys
from pathlib import Path
import av, numpy, PIL.Image  # what the op loads, so the baseline holds the libraries
from wanflow.ops.run import run_op
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
produced, _ = run_op("concat", {"videos": [Path(p) for p in sys.argv[2:]]},
                     {"transition": "crossfade", "transition_seconds": 0.5}, Path(sys.argv[1]))
print(json.dumps({"baseline_kb": baseline, "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "output": str(produced[0][0])}))
"""


def _still_clip(path: Path, colour: tuple[int, int, int]) -> Path:
    """A minute of 1080p: one picture held (cheap to encode), with a silent track."""
    picture = np.empty((HEIGHT, WIDTH, 3), np.uint8)
    picture[:] = colour
    picture[:, : WIDTH // 4] = 255 - np.array(colour, np.uint8)
    with VideoWriter(path, WIDTH, HEIGHT, Fraction(FPS), x264={"preset": "ultrafast", "crf": "35"}) as writer:
        for _ in range(SECONDS * FPS):
            writer.write(picture)
    return path


def test_a_three_minute_1080p_concat_stays_under_a_fixed_memory_cap(tmp_path: Path) -> None:
    first = _still_clip(tmp_path / "a.mp4", (200, 40, 40))
    second = _still_clip(tmp_path / "b.mp4", (40, 40, 200))
    clips = [first, second, first]  # three minutes
    out = tmp_path / "out"
    out.mkdir()
    done = subprocess.run([sys.executable, "-c", PROBE, str(out), *map(str, clips)], capture_output=True, text=True,
                          timeout=600, check=True)
    facts = json.loads(done.stdout.strip().splitlines()[-1])
    growth_mb = (facts["peak_kb"] - facts["baseline_kb"]) / 1024  # ru_maxrss is in KiB on Linux
    frames = len(clips) * SECONDS * FPS - 2 * round(0.5 * FPS)  # two crossfades
    decoded_mb = frames * WIDTH * HEIGHT * 1.5 / 2**20  # the video decoded (yuv420p), were it held
    assert decoded_mb > 4 * CAP_MB  # so a whole-video-in-memory concat could not pass
    assert growth_mb < CAP_MB, f"peak grew by {growth_mb:.0f} MB"
    with av.open(facts["output"]) as container:  # the output is what was asked: every frame, 1080p
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (WIDTH, HEIGHT)
        assert stream.frames == frames
        assert abs(float(container.duration or 0) / av.time_base - frames / FPS) < 0.5
