"""How much a fully cached rerun costs compared with the first run.

Runs the README's example pipeline twice in a fresh project folder through the real console
entry point and reports both wall times, their ratio and the number of provider calls on the
rerun (which must be 0). Usage: python benchmarks/rerun_cached.py
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def timed_run(project: Path) -> tuple[float, dict]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "wanflow", "run", "examples/product-ad/product-ad.yaml", "--json"],
        cwd=project, capture_output=True, text=True, check=True,
    )
    return time.perf_counter() - started, json.loads(done.stdout)


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        project = Path(folder)
        shutil.copytree(REPO / "examples", project / "examples")
        first, _ = timed_run(project)
        rerun, summary = timed_run(project)
    generated = sum(1 for step in summary["steps"].values() if step["status"] == "ran")
    print(json.dumps({
        "first_run_seconds": round(first, 3),
        "cached_rerun_seconds": round(rerun, 3),
        "rerun_to_first_ratio": round(rerun / first, 4),
        "steps_generated_on_rerun": generated,
        "rerun_under_2s": rerun < 2.0,
    }, indent=2))


if __name__ == "__main__":
    main()
