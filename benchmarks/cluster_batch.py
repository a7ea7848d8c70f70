"""A two-step batch on Dask (issue 17): N rows (default 10,000) against the simulator with zero task
time and tiny results, run locally, on a LocalCluster of 1 worker and of 4 workers (4 unit threads
each), on this one machine.

Reports throughput (steps per second of wall), wall and CPU per step (CPU of the driver, the
workers and the scheduler together; the simulator's is excluded), the cluster's overhead per step
against the local run, creates and duplicate creates, and the scheduler's memory (this process hosts
the scheduler: its RSS after the run and its peak). JSON on stdout, a table on stderr, min / median /
max over ``--repeat`` repetitions.

Usage: python benchmarks/cluster_batch.py [--rows N] [--repeat R] [--workers 1,4] [--no-local]
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import BATCH_JOBS as JOBS
from benchlib import BATCH_LIMITS as LIMITS
from benchlib import BATCH_PIPELINE as PIPELINE
from benchlib import fmt_spread, free_port, machine, spread, table, user_env, wanflow_command


def trimmed_rss_mb() -> float:
    """This process's resident memory after a collection and glibc's ``malloc_trim``: what the
    scheduler still holds, without the freed memory the allocator keeps from the run's busiest
    moment (that high-water mark depends on bursts, not on what is kept)."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    return rss_mb()


def rss_mb() -> float:
    """This process's resident memory now (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def one_run(env: dict[str, str], rows: int, label: str, workers: int) -> dict[str, Any]:
    """One ``wanflow run --batch`` of ``rows`` rows, locally (workers 0) or on a fresh LocalCluster."""
    cluster = None
    if workers:
        from wanflow.execute.cluster.driver import local_cluster

        cluster = local_cluster(workers)  # what `--cluster local:N` makes, with its configuration
    self_before = resource.getrusage(resource.RUSAGE_SELF)
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        with tempfile.TemporaryDirectory() as folder:
            project = Path(folder)
            (project / "bench.yaml").write_text(PIPELINE)
            (project / "wanflow.toml").write_text(LIMITS)
            (project / "rows.jsonl").write_text("".join(json.dumps({"product": f"{label} {n}"}) + "\n" for n in range(rows)))
            extra = ["--cluster", cluster.scheduler_address] if cluster is not None else ["--jobs", str(JOBS)]
            # The driver's output goes to files, not into this process: its JSON summary grows with the
            # rows, and held here it would count as the scheduler's memory.
            with open(project / "out.json", "w") as out, open(project / "err.txt", "w") as err:
                started = time.perf_counter()
                done = subprocess.run([*wanflow_command(), "run", "bench.yaml", "--provider", "dashscope", "--batch",
                                       "rows.jsonl", "--json", "--yes", "--no-report", *extra], cwd=project, env=env,
                                      stdout=out, stderr=err, stdin=subprocess.DEVNULL)
                wall = time.perf_counter() - started
            scheduler_mb = rss_mb()
            state = scheduler_state(cluster) if cluster is not None else None
            if state is not None:
                state["rss_mb_trimmed"] = round(trimmed_rss_mb(), 1)
            if done.returncode != 0:
                raise SystemExit(f"the {label} run failed (exit {done.returncode}):\n{(project / 'err.txt').read_text()[-3000:]}")
            summary = json.loads((project / "out.json").read_text())
    finally:
        if cluster is not None:
            cluster.close()  # its worker processes end here, so their CPU is in RUSAGE_CHILDREN below
    self_after = resource.getrusage(resource.RUSAGE_SELF)
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    steps = sum(len(instance["steps"]) for instance in summary["instances"].values())
    cpu = sum((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
              for before, after in ((self_before, self_after), (children_before, children_after)))
    return {"ok": summary["ok"], "steps": steps, "wall": wall, "cpu": cpu, "scheduler_mb": scheduler_mb, "state": state}


def scheduler_state(cluster: Any) -> dict[str, float]:
    """What the scheduler (in this process) still holds after the run: tasks, the semaphores behind
    wanflow's key locks, model slots and submit rates (Dask's Lock is a one-lease Semaphore), and its
    transition log (capped by Dask's ``distributed.admin.low-level-log-length``)."""
    scheduler = cluster.scheduler
    semaphores = scheduler.extensions.get("semaphores")
    names = list(getattr(semaphores, "max_leases", {}))
    return {"tasks": len(scheduler.tasks), "semaphores": len(names),
            "key_lock_semaphores": sum(1 for name in names if name.startswith("wanflow-key-")),
            "transition_log": len(scheduler.transition_log)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", default="1,4", help="cluster sizes to compare, e.g. 1,4")
    parser.add_argument("--no-local", action="store_true", help="skip the local run (no overhead figures)")
    args = parser.parse_args()
    sizes = [*([] if args.no_local else [0]), *(int(size) for size in args.workers.split(","))]
    port = free_port()
    sim = subprocess.Popen([sys.executable, "-m", "wanflow", "sim", "--port", str(port), "--task-seconds", "0",
                            "--tiny-results"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stats_url = f"http://127.0.0.1:{port}/_sim/stats"
    results: dict[str, Any] = {}
    try:
        for _ in range(200):
            try:
                httpx.get(stats_url)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        env = user_env({"DASHSCOPE_HTTP_BASE_URL": f"http://127.0.0.1:{port}/api/v1", "DASHSCOPE_API_KEY": "sim-key",
                        "WANFLOW_POLL_INTERVAL": "0"})
        os.environ.update(env)  # the LocalCluster's workers (started from this process) run the units with it
        for workers in sizes:
            name = f"{workers} workers" if workers else "local"
            runs = []
            for repetition in range(args.repeat):
                before = httpx.get(stats_url).json()
                run = one_run(env, args.rows, f"{name} #{repetition}", workers)  # new requests every time
                after = httpx.get(stats_url).json()
                run["creates"] = after["creates"] - before["creates"]
                run["duplicate_creates"] = after["duplicate_creates"] - before["duplicate_creates"]
                runs.append(run)
                print(f"{name} #{repetition}: {run['wall']:.1f} s", file=sys.stderr, flush=True)
            results[name] = {
                "all_ok": all(run["ok"] for run in runs),
                "steps": runs[0]["steps"],
                "steps_per_second": spread(run["steps"] / run["wall"] for run in runs),
                "wall_ms_per_step": spread(run["wall"] / run["steps"] * 1000 for run in runs),
                "cpu_ms_per_step": spread(run["cpu"] / run["steps"] * 1000 for run in runs),
                "creates": [run["creates"] for run in runs],
                "duplicate_creates": sum(run["duplicate_creates"] for run in runs),
                "scheduler_rss_mb_after": spread((run["scheduler_mb"] for run in runs), 1) if workers else None,
                "scheduler_state_after": runs[-1]["state"],
            }
    finally:
        sim.terminate()
        sim.wait()
    if "local" in results:
        local_wall = results["local"]["wall_ms_per_step"]["median"]
        local_cpu = results["local"]["cpu_ms_per_step"]["median"]
        for entry in results.values():
            entry["overhead_vs_local_wall_ms_per_step"] = round(entry["wall_ms_per_step"]["median"] - local_wall, 3)
            entry["overhead_vs_local_cpu_ms_per_step"] = round(entry["cpu_ms_per_step"]["median"] - local_cpu, 3)
    # The peak of this process: the scheduler's peak over every cluster run (it starts small).
    document = {"rows": args.rows, "repeat": args.repeat, "results": results,
                "benchmark_process_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "machine": machine()}
    print(json.dumps(document, indent=2))
    print(table(["run", "steps/s", "wall ms/step", "CPU ms/step", "+wall vs local", "+CPU vs local", "dupes",
                 "scheduler RSS MB"],
                [[name, fmt_spread(entry["steps_per_second"]), fmt_spread(entry["wall_ms_per_step"]),
                  fmt_spread(entry["cpu_ms_per_step"]), entry.get("overhead_vs_local_wall_ms_per_step", "-"),
                  entry.get("overhead_vs_local_cpu_ms_per_step", "-"), entry["duplicate_creates"],
                  fmt_spread(entry["scheduler_rss_mb_after"])] for name, entry in results.items()]), file=sys.stderr)
    for name, entry in results.items():
        if entry["scheduler_state_after"]:
            print(f"{name}: the scheduler holds {entry['scheduler_state_after']}", file=sys.stderr)


if __name__ == "__main__":
    main()
