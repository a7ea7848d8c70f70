"""Runner overhead on a large batch: 1,000 instances of a two-step pipeline against the simulator
with zero task time and tiny results, so what is measured is wanflow, not generation.

The simulator runs in its own process; the runner's CPU time per step (user + system, from
getrusage of the finished child) is the overhead, and its peak RSS is the memory figure.
Usage: python benchmarks/batch_overhead.py [INSTANCES]
"""

from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

PIPELINE = """
name: bench
vars: {product: thing}
defaults: {seed: 1}
steps:
  hero: {model: wan2.6-t2i, prompt: "a {{ vars.product }}", params: {size: 1280*1280, n: 1}}
  edit: {model: wan2.6-image, images: ["{{ steps.hero.images[0] }}"], prompt: "a {{ vars.product }} at night", params: {n: 1}}
"""
LIMITS = "[limits.dashscope]\nsubmits_per_second = 100000\nconcurrent = 64\n"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main() -> None:
    instances = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    port = free_port()
    sim = subprocess.Popen([sys.executable, "-m", "wanflow", "sim", "--port", str(port), "--task-seconds", "0",
                            "--tiny-results"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                httpx.get(f"http://127.0.0.1:{port}/_sim/stats")
                break
            except httpx.TransportError:
                time.sleep(0.05)
        with tempfile.TemporaryDirectory() as folder:
            project = Path(folder)
            (project / "bench.yaml").write_text(PIPELINE)
            (project / "wanflow.toml").write_text(LIMITS)
            (project / "rows.jsonl").write_text("".join(json.dumps({"product": f"item {n}"}) + "\n" for n in range(instances)))
            env = {**os.environ, "DASHSCOPE_HTTP_BASE_URL": f"http://127.0.0.1:{port}/api/v1", "DASHSCOPE_API_KEY": "sim-key",
                   "WANFLOW_POLL_INTERVAL": "0"}
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "wanflow", "run", "bench.yaml", "--provider", "dashscope",
                                   "--batch", "rows.jsonl", "--jobs", "64", "--json"], cwd=project, env=env,
                                  capture_output=True, text=True)
            wall = time.perf_counter() - started
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            summary = json.loads(done.stdout)
        stats = httpx.get(f"http://127.0.0.1:{port}/_sim/stats").json()
    finally:
        sim.terminate()
        sim.wait()
    steps = sum(len(instance["steps"]) for instance in summary["instances"].values())
    errors = sorted({step["error"] for instance in summary["instances"].values() for step in instance["steps"].values()
                     if step.get("error")})
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    peak_mb = after.ru_maxrss / 1024  # Linux reports KiB
    print(json.dumps({
        "instances": len(summary["instances"]),
        "steps": steps,
        "all_ok": summary["ok"],
        "creates": stats["creates"],
        "duplicate_creates": stats["duplicate_creates"],
        "wall_seconds": round(wall, 2),
        "runner_cpu_ms_per_step": round(cpu / steps * 1000, 2),
        "wall_ms_per_step": round(wall / steps * 1000, 2),
        "runner_peak_rss_mb": round(peak_mb, 1),
        "failed_steps": sum(1 for i in summary["instances"].values() for s in i["steps"].values() if s["status"] == "failed"),
        "first_errors": errors[:3],
        "targets": {"runner_cpu_ms_per_step": 5.0, "runner_peak_rss_mb": 200.0},
    }, indent=2))


if __name__ == "__main__":
    main()
