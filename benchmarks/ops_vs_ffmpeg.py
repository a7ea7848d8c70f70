"""Each op: step against the ffmpeg command line doing the same job on the same files, on this machine.

Inputs: two 10 s 1280x720 24 fps H.264 + AAC clips, a 320x160 transparent PNG logo and a 2 s WAV
loop, made once with the product's own writer. Both sides use libx264 with the same preset, CRF
and thread count, yuv420p, AAC at 44.1 kHz, and faststart. Our side is a child process that calls
``wanflow.ops.run.run_op``; ffmpeg's is the ``ffmpeg`` command. Two figures for our side: the
op itself (as a wanflow run pays it: the process is running and has imported PyAV and numpy) and
the whole child (interpreter start and imports included). The goal (issue 25): at most 1.5x
ffmpeg's wall time for concat, overlay and soundtrack, held against the op itself.

The soundtrack normalises the music's loudness (BS.1770, -16 LUFS): ffmpeg's side measures it
first too (its ``ebur128`` filter over the music, the meter the op uses), and the two
commands' walls are added.

Usage: python benchmarks/ops_vs_ffmpeg.py [--quick] [--cases NAME,NAME]   (needs ffmpeg on PATH: apt-get install ffmpeg)
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import wave
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

from benchlib import fmt_spread, machine, spread, table, timed
from wanflow.ops.video_io import SAMPLE_RATE, X264_OPTIONS, VideoWriter

GOALS = {"concat": 1.5, "overlay": 1.5, "soundtrack": 1.5}
X264 = ["-c:v", "libx264", "-preset", X264_OPTIONS["preset"], "-crf", X264_OPTIONS["crf"], "-threads", "2",
        "-pix_fmt", "yuv420p"]
AAC = ["-c:a", "aac", "-ar", str(SAMPLE_RATE), "-ac", "2"]
MP4 = ["-movflags", "+faststart"]


def make_inputs(folder: Path, seconds: float = 10.0) -> None:
    """The clips, the logo and the music both sides work on."""
    for name, hue in (("a.mp4", 0), ("b.mp4", 2)):
        with VideoWriter(folder / name, 1280, 720, Fraction(24)) as writer:
            gradient = np.linspace(0, 255, 1280, dtype=np.float32)
            for index in range(round(seconds * 24)):
                picture = np.zeros((720, 1280, 3), np.uint8)
                picture[..., hue] = ((gradient + index * 5) % 256).astype(np.uint8)
                picture[..., 1] = np.linspace(0, 200, 720, dtype=np.uint8)[:, None]
                count = writer.samples_for_next_frame()
                start = round(index * SAMPLE_RATE / 24)
                tone = 0.2 * np.sin(2 * np.pi * (330 + 110 * hue) * (np.arange(count) + start) / SAMPLE_RATE)
                writer.write(picture, np.stack([tone, tone]).astype(np.float32))
    logo = Image.new("RGBA", (320, 160), (255, 255, 255, 200))
    logo.paste((220, 40, 40, 255), (20, 20, 140, 140))
    logo.save(folder / "logo.png")
    rate = 22050
    times = np.arange(2 * rate) / rate
    with wave.open(str(folder / "music.wav"), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes((0.3 * 32767 * np.sin(2 * np.pi * 220 * times)).astype("<i2").tobytes())


# name -> (the op, its inputs, its params, ffmpeg's arguments for the same job)
# Commands ffmpeg runs before the timed one for the same job (their walls are added): name -> argument lists.
BEFORE: dict[str, list[list[str]]] = {
    "soundtrack": [["-i", "music.wav", "-af", "ebur128", "-f", "null", "-"]],  # the meter the op uses
}
CASES: dict[str, tuple[str, dict[str, list[str]], dict, list[str]]] = {
    "concat": ("concat", {"videos": ["a.mp4", "b.mp4"]}, {"transition": "cut"},
               ["-i", "a.mp4", "-i", "b.mp4", "-filter_complex", "[0:v][0:a][1:v][1:a]concat=n=2:v=1:a=1[v][a]",
                "-map", "[v]", "-map", "[a]", *X264, *AAC, *MP4]),
    "crossfade": ("concat", {"videos": ["a.mp4", "b.mp4"]}, {"transition": "crossfade", "transition_seconds": 0.5},
                  ["-i", "a.mp4", "-i", "b.mp4", "-filter_complex",
                   "[0:v][1:v]xfade=transition=fade:duration=0.5:offset=9.5[v];[0:a][1:a]acrossfade=d=0.5[a]",
                   "-map", "[v]", "-map", "[a]", *X264, *AAC, *MP4]),
    "overlay": ("overlay", {"video": ["a.mp4"], "image": ["logo.png"]},
                {"position": "top-right", "margin": 32, "scale": 0.25, "opacity": 1.0, "start": 0.0},
                ["-i", "a.mp4", "-i", "logo.png", "-filter_complex",
                 "[1:v]scale=320:-1[l];[0:v][l]overlay=W-w-32:32[v]", "-map", "[v]", "-map", "0:a", *X264, *AAC, *MP4]),
    "soundtrack": ("soundtrack", {"video": ["a.mp4"], "audio": ["music.wav"]},
                   {"volume": 1.0, "fade_in": 0.5, "fade_out": 1.0, "loop": True, "mix": "replace"},
                   ["-i", "a.mp4", "-stream_loop", "-1", "-i", "music.wav", "-filter_complex",
                    "[1:a]volume=1.0,afade=t=in:d=0.5,afade=t=out:st=9:d=1[a]", "-map", "0:v", "-map", "[a]",
                    "-c:v", "copy", *AAC, "-t", "10", *MP4]),
    "trim": ("trim", {"video": ["a.mp4"]}, {"start": 2.0, "end": 7.0},
             ["-ss", "2", "-to", "7", "-i", "a.mp4", *X264, *AAC, *MP4]),
    "fit 9:16 crop": ("fit", {"video": ["a.mp4"]}, {"aspect": "9:16", "width": 720, "mode": "crop", "anchor": "center"},
                      ["-i", "a.mp4", "-vf", "scale=-2:1280,crop=720:1280", *X264, *AAC, *MP4]),
    "caption": ("caption", {"video": ["a.mp4"]}, {"text": "Run further.", "size": 56, "box": "black", "position": "bottom"},
                ["-i", "a.mp4", "-vf", "drawtext=text='Run further.':fontsize=56:fontcolor=white:box=1:boxcolor=black@0.6:"
                 "x=(w-text_w)/2:y=h-text_h-24", *X264, *AAC, *MP4]),
    "frame at last": ("frame", {"video": ["a.mp4"]}, {"at": "last"},
                      ["-sseof", "-0.1", "-i", "a.mp4", "-update", "1", "-frames:v", "1"]),
}


def ours(op: str, inputs: dict[str, list[str]], params: dict, folder: Path, out: Path) -> list[str]:
    code = ("import sys, json, time; from pathlib import Path; from wanflow.ops.run import run_op; "
            "a = json.loads(sys.argv[1]); started = time.perf_counter(); "
            "run_op(a['op'], {k: [Path(p) for p in v] for k, v in a['inputs'].items()}, a['params'], Path(a['out'])); "
            "print(time.perf_counter() - started)")
    return [sys.executable, "-c", code, json.dumps({"op": op, "inputs": inputs, "params": params, "out": str(out)})]


def main() -> None:
    quick = "--quick" in sys.argv
    repeats = 1 if quick else 3
    chosen = sys.argv[sys.argv.index("--cases") + 1].split(",") if "--cases" in sys.argv else list(CASES)
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise SystemExit("ffmpeg is not on PATH (apt-get install ffmpeg)")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_inputs(folder)
        for name, (op, inputs, params, args) in CASES.items():
            if name not in chosen:
                continue
            walls: dict[str, list[float]] = {"wanflow": [], "process": [], "ffmpeg": []}
            for _ in range(repeats):
                out = folder / "out"
                shutil.rmtree(out, ignore_errors=True)
                out.mkdir()
                child = timed(ours(op, inputs, params, folder, out), cwd=folder)
                walls["wanflow"].append(float(child.stdout.strip().splitlines()[-1]))
                walls["process"].append(child.wall)
                target = "frame.png" if op == "frame" else "ffmpeg.mp4"
                first = sum(timed([ffmpeg, "-v", "error", "-y", *before], cwd=folder).wall for before in BEFORE.get(name, []))
                walls["ffmpeg"].append(first + timed([ffmpeg, "-v", "error", "-y", *args, str(out / target)], cwd=folder).wall)
            mine, theirs = spread(walls["wanflow"]), spread(walls["ffmpeg"])
            process = spread(walls["process"])
            results[name] = {"wanflow_s": mine, "wanflow_process_s": process, "ffmpeg_s": theirs,
                             "ratio": round(mine["median"] / theirs["median"], 2),
                             "process_ratio": round(process["median"] / theirs["median"], 2),
                             "goal": GOALS.get(op if name == op else "")}
    rows = [[name, fmt_spread(entry["wanflow_s"]), fmt_spread(entry["wanflow_process_s"]), fmt_spread(entry["ffmpeg_s"]),
             f"{entry['ratio']:.2f}x", f"{entry['process_ratio']:.2f}x",
             f"<= {entry['goal']}x" if entry["goal"] else "-",
             ("yes" if entry["ratio"] <= entry["goal"] else "NO") if entry["goal"] else "-"]
            for name, entry in results.items()]
    print(table(["op", "wanflow op s", "wanflow process s", "ffmpeg s", "ratio (op)", "ratio (process)", "goal", "met?"],
                rows), file=sys.stderr)
    print(json.dumps({"machine": machine(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
