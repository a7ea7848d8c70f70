"""wanflow's own cost around a diffusers generation, against a plain diffusers script.

Both sides run in a fresh process each, the same saved pipeline, seed and settings, and do the
same work: import, load the pipeline, denoise, decode and write an H.264 MP4 with PyAV. Reported:
wall seconds per video (median of ``--repeat``), the ratio wanflow / plain, peak GPU memory
(``torch.cuda.max_memory_allocated``) on a GPU, else the process's peak RSS, and whether both
made the same frames.

Models (``--model``, repeatable):
- ``tiny``: the tiny random Wan of the tests (tests/diffusers_helpers.py), 2 steps at 32x16, on
  the CPU: what wanflow adds around a generation (import, validation, cache, record, report).
- ``wan2.1-1.3b`` / ``wan2.2-5b``: random weights at the released transformer and VAE configs
  (from diffusers' conversion script), built from the config so nothing is downloaded; the text
  encoder keeps the UMT5 width (4096) with two layers and a small vocabulary. These are the
  check to run on a GPU: ``python benchmarks/diffusers_overhead.py --model wan2.1-1.3b --device cuda``.

Goal (issue 26): wanflow within 3 % of the plain script's time, and no more peak memory.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchlib import table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

SETTINGS: dict[str, dict[str, Any]] = {
    "tiny": {"height": 16, "width": 32, "num_frames": 5, "num_inference_steps": 2, "max_sequence_length": 16, "fps": 16},
    "wan2.1-1.3b": {"height": 480, "width": 832, "num_frames": 33, "num_inference_steps": 10, "max_sequence_length": 64, "fps": 16},
    "wan2.2-5b": {"height": 704, "width": 1280, "num_frames": 33, "num_inference_steps": 10, "max_sequence_length": 64, "fps": 24},
}
TRANSFORMERS = {  # the released configs (diffusers scripts/convert_wan_to_diffusers.py)
    "wan2.1-1.3b": {"num_attention_heads": 12, "ffn_dim": 8960, "in_channels": 16, "out_channels": 16},
    "wan2.2-5b": {"num_attention_heads": 24, "ffn_dim": 14336, "in_channels": 48, "out_channels": 48},
}
VAE22 = {"base_dim": 160, "z_dim": 48, "is_residual": True, "in_channels": 12, "out_channels": 12, "decoder_base_dim": 256,
         "scale_factor_temporal": 4, "scale_factor_spatial": 16, "patch_size": 2, "latents_mean": [0.0] * 48,
         "latents_std": [1.0] * 48, "clip_output": False}
PROMPT = "a red fox running through fresh snow, cinematic"
SEED = 1234


def build(model: str, folder: Path) -> Path:
    """Save the pipeline ``model`` into ``folder`` (random weights, nothing downloaded)."""
    if model == "tiny":
        from diffusers_helpers import save_tiny_wan

        return save_tiny_wan(folder, "t2v")
    import torch
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    from diffusers_helpers import byte_tokenizer

    torch.manual_seed(0)
    transformer = WanTransformer3DModel(patch_size=(1, 2, 2), attention_head_dim=128, text_dim=4096, freq_dim=256,
                                        num_layers=30, cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6,
                                        **TRANSFORMERS[model])
    vae = AutoencoderKLWan(**VAE22) if model == "wan2.2-5b" else AutoencoderKLWan()
    encoder = UMT5EncoderModel(UMT5Config(vocab_size=300, d_model=4096, d_kv=64, d_ff=10240, num_layers=2, num_heads=64))
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=5.0)
    pipe = WanPipeline(transformer=transformer, vae=vae, scheduler=scheduler, text_encoder=encoder.eval(), tokenizer=byte_tokenizer(),
                       expand_timesteps=model == "wan2.2-5b")
    pipe.save_pretrained(folder)
    return folder


PLAIN = """
import json, resource, sys, time
from fractions import Fraction
started = time.perf_counter()
import av, numpy as np, torch, diffusers
folder, settings, device, dtype = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], getattr(torch, sys.argv[4])
pipe = diffusers.WanPipeline.from_pretrained(folder, torch_dtype=dtype).to(device)
pipe.set_progress_bar_config(disable=True)
fps = settings.pop("fps")
frames = pipe(prompt=PROMPT, generator=torch.Generator(device).manual_seed(SEED), output_type="np", **settings).frames[0]
pixels = np.clip(np.rint(frames * 255.0), 0, 255).astype(np.uint8)
with av.open("plain.mp4", mode="w", format="mp4") as container:
    stream = container.add_stream("libx264", rate=fps, options={"crf": "18", "preset": "medium"})
    stream.width, stream.height, stream.pix_fmt, stream.time_base = pixels.shape[2], pixels.shape[1], "yuv420p", Fraction(1, fps)
    for index, picture in enumerate(pixels):
        frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
        frame.pts = index
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)
""".replace("PROMPT", repr(PROMPT)).replace("SEED", str(SEED))

WANFLOW = """
import json, resource, sys, time
started = time.perf_counter()
import torch, wanflow
result = wanflow.run("p.yaml", fresh=True, report=False)
assert result.ok, {name: step.error for name, step in result.steps.items()}
"""

FOOTER = """
cuda = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None
print(json.dumps({"seconds": time.perf_counter() - started, "gpu_peak": cuda,
                  "rss_peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def _child(code: str, args: list[str], cwd: Path) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", code + FOOTER, *args], cwd=cwd, capture_output=True, text=True,
                          env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HOME": str(cwd)})
    if done.returncode != 0:
        raise SystemExit(f"child failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _frames(path: Path) -> Any:
    import av
    import numpy as np

    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def measure(model: str, device: str, dtype: str, repeat: int, work: Path) -> dict[str, Any]:
    """Both sides ``repeat`` times, alternating, on one saved pipeline."""
    import numpy as np

    folder = build(model, work / model)
    settings = SETTINGS[model]
    params = dict(settings, device=device, dtype=dtype)
    (work / "p.yaml").write_text(json.dumps({
        "name": "bench", "defaults": {"provider": "diffusers"},
        "steps": {"clip": {"model": str(folder), "prompt": PROMPT, "seed": SEED, "params": params}},
        "outputs": {"clip": "{{ steps.clip.video }}"}}), "utf-8")
    plain, ours = [], []
    for _ in range(repeat):
        plain.append(_child(PLAIN, [str(folder), json.dumps(settings), device, dtype if dtype != "auto" else "float32"], work))
        ours.append(_child(WANFLOW, [], work))
    same = bool(np.array_equal(_frames(work / "plain.mp4"), _frames(work / "out" / "bench" / "clip.mp4")))

    def median(rows: list[dict[str, Any]], key: str) -> float | None:
        values = [row[key] for row in rows if row[key] is not None]
        return statistics.median(values) if values else None

    result = {"model": model, "device": device, "plain_s": median(plain, "seconds"), "wanflow_s": median(ours, "seconds"),
              "plain_gpu_peak": median(plain, "gpu_peak"), "wanflow_gpu_peak": median(ours, "gpu_peak"),
              "plain_rss_peak": median(plain, "rss_peak"), "wanflow_rss_peak": median(ours, "rss_peak"), "same_frames": same}
    result["ratio"] = round(result["wanflow_s"] / result["plain_s"], 3)
    return result


def main() -> None:
    """Measure each ``--model`` and print the table (stderr) and JSON (stdout)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", choices=sorted(SETTINGS), help="default: tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as temp:
        for model in options.model or ["tiny"]:
            work = Path(temp) / f"run-{model}"
            work.mkdir()
            rows.append(measure(model, options.device, options.dtype, options.repeat, work))
    mib = 2 ** 20
    print(table(["model", "device", "plain s", "wanflow s", "ratio", "peak GPU MiB plain / wanflow",
                 "peak RSS MiB plain / wanflow", "same frames"],
                [[r["model"], r["device"], r["plain_s"], r["wanflow_s"], r["ratio"],
                  "-" if r["plain_gpu_peak"] is None else f"{r['plain_gpu_peak'] / mib:.0f} / {r['wanflow_gpu_peak'] / mib:.0f}",
                  f"{r['plain_rss_peak'] / mib:.0f} / {r['wanflow_rss_peak'] / mib:.0f}", r["same_frames"]] for r in rows]),
          file=sys.stderr)
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
