"""What the comparing benchmarks share: timed child processes, min / median / max, tables, peer venvs.

Not a benchmark itself. ``peers_noop.py``, ``sample_flow.py`` and ``dag_bound.py`` import it (they
run as ``python benchmarks/<script>.py``, so this folder is on ``sys.path``).
"""

from __future__ import annotations

import os
import resource
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
VENVS = BENCH / ".venvs"  # peers' virtualenvs (git-ignored)


@dataclass
class Timed:
    """One finished child process: wall seconds, CPU seconds (user + system of it and its children)."""

    wall: float
    cpu: float
    returncode: int
    stdout: str
    stderr: str


# The two-step batch pipeline that batch_overhead.py and cluster_batch.py run, at a concurrency
# high enough that the service's limits are not what is measured.
BATCH_PIPELINE = """
name: bench
vars: {product: thing}
defaults: {seed: 1}
steps:
  hero: {model: wan2.6-t2i, prompt: "a {{ vars.product }}", params: {size: 1280*1280, n: 1}}
  edit: {model: wan2.6-image, images: ["{{ steps.hero.images[0] }}"], prompt: "a {{ vars.product }} at night", params: {n: 1}}
"""
BATCH_JOBS = 64
BATCH_LIMITS = f"[limits.dashscope]\nsubmits_per_second = 100000\nconcurrent = {BATCH_JOBS}\n"


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def timed(cmd: Sequence[str | os.PathLike[str]], cwd: Path, env: Mapping[str, str] | None = None,
          check: bool = True) -> Timed:
    """Run ``cmd`` to completion; CPU is the RUSAGE_CHILDREN delta, so it counts the process and what it waited for."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([str(part) for part in cmd], cwd=cwd, env=dict(env) if env is not None else None,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if check and done.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed with exit {done.returncode} in {cwd}:\n"
                         f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return Timed(wall, cpu, done.returncode, done.stdout, done.stderr)


def spread(values: Iterable[float], digits: int = 3) -> dict[str, Any]:
    """min / median / max (and the count) of repeated measurements."""
    data = sorted(values)
    if not data:
        return {"min": None, "median": None, "max": None, "n": 0}
    return {"min": round(data[0], digits), "median": round(statistics.median(data), digits),
            "max": round(data[-1], digits), "n": len(data)}


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def fmt_spread(entry: Mapping[str, Any] | None) -> str:
    """``median (min–max)``."""
    if not entry or entry.get("median") is None:
        return "-"
    return f"{fmt(entry['median'])} ({fmt(entry['min'])}–{fmt(entry['max'])})"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table (also valid Markdown)."""
    cells = [[str(h) for h in headers]] + [[c if isinstance(c, str) else fmt(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def peer_venv(name: str, requirement: str, install: bool = True) -> Path:
    """``benchmarks/.venvs/<name>`` with ``requirement`` installed from PyPI; returns its bin folder."""
    folder = VENVS / name
    bin_dir = folder / "bin"
    marker = folder / ".installed"
    if marker.exists() and marker.read_text() == requirement:
        return bin_dir
    if not install:
        raise SystemExit(f"{name} is not installed in {folder} (run without --no-install)")
    print(f"installing {requirement} into {folder} (once) ...", file=sys.stderr, flush=True)
    if not (bin_dir / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    done = subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                           requirement], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"pip install {requirement} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    marker.write_text(requirement)
    return bin_dir


def user_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment as a user's shell would have it: without PYTHONDONTWRITEBYTECODE.

    Some sandboxes set it; then every start compiles wanflow's own modules from source (about
    0.1 s here), which no installed wanflow does. The measured commands therefore write and use
    bytecode, as pip-installed peers do (pip compiles their modules when it installs them).
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(extra or {})
    return env


def wanflow_command() -> list[str]:
    """The console script next to this interpreter, as a user runs it (``python -m wanflow`` if absent)."""
    script = Path(sys.executable).with_name("wanflow")
    return [str(script)] if script.exists() else [sys.executable, "-m", "wanflow"]


def python_speed_us() -> float:
    """Microseconds for ``sum(range(1000))``: how fast Python ran during the measurement (a 2024 laptop: ~10)."""
    import timeit

    return round(min(timeit.repeat("sum(range(1000))", number=2000, repeat=5)) / 2000 * 1e6, 1)


def machine() -> dict[str, Any]:
    """What the figures were measured on: the wanflow this interpreter imports, and its commit.

    That is the checkout the interpreter's environment installed (``pip install -e``), which need
    not be this one: to measure a fixed commit while the work tree changes, unpack it elsewhere
    (``git archive HEAD | tar -x -C DIR; git rev-parse HEAD > DIR/COMMIT``), install it in a venv
    there and run these scripts with that venv's python.
    """
    import wanflow

    source = Path(wanflow.__file__).resolve().parents[2]
    head = subprocess.run(["git", "-C", str(source), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0:
        dirty = subprocess.run(["git", "-C", str(source), "status", "--porcelain", "--", "src"], capture_output=True, text=True)
        commit, uncommitted = head.stdout.strip(), bool(dirty.stdout.strip())
    else:
        marker = source / "COMMIT"
        commit, uncommitted = (marker.read_text().strip()[:7] if marker.exists() else None), False
    return {"cores": os.cpu_count(), "python": sys.version.split()[0], "wanflow_source": str(source), "commit": commit,
            "src_uncommitted_changes": uncommitted, "python_speed_sum_range_1000_us": python_speed_us(),
            # Other work on the machine skews wall times (2 cores): the load over the last 1, 5, 15 min.
            "load_average": [round(x, 2) for x in os.getloadavg()], "date": time.strftime("%Y-%m-%d %H:%M")}
