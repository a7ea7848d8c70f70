"""A 200-step DAG against its critical-path bound, on the simulator with a fixed task time.

The DAG has 25 levels of 8 steps. Level 0 is 8 text-to-image steps; every later step is an edit
(wan2.6-image, n: 1) of one or two images of the level before it (seeded choice), so each level
can start only when (part of) the level before has finished, and data really flows along every
edge. With 8 tasks at once (``--jobs 8`` and ``[limits.dashscope] concurrent = 8``; submits are
allowed 1,000 per second so that their pacing does not bind) the best possible wall is
25 task times: the critical path is 25 steps long and no level is wider than the limit. That is
the bound; the figure is wall ÷ bound (goal ≤ 1.05).

The simulator (``SimServer``, ``Knobs(task_seconds=T, tiny_results=True)``: plain 512 px results,
so that rendering does not compete with the runner for the 2 cores) runs in this process's
thread; wanflow runs as ``wanflow run dag.yaml --provider dashscope --jobs 8 --no-report --json``
in a fresh project folder each time. Two polling set-ups:

- ``learned``: the default polling, with a user cache (``XDG_CACHE_HOME``) warmed beforehand by a
  wanflow run of 8 independent tasks per model (each repetition starts from a copy of it);
- ``fixed 0.05 s``: ``WANFLOW_POLL_INTERVAL=0.05``, which makes detection nearly immediate and so
  shows the runner's own scheduling overhead.

Per repetition it reports the process wall (interpreter start included) and the run's own span
(the run record's started_at → finished_at), each ÷ the bound, and the detection delay
(from the simulator's poll log, as in ``sample_flow.py``).

Usage: python benchmarks/dag_bound.py [--quick] [--repeats N] [--task-seconds T]
Prints JSON on stdout and a table on stderr.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib import fmt, fmt_spread, machine, spread, table, wanflow_command
from sample_flow import TERMINAL, PollLog, client_env, run

LEVELS, WIDTH = 25, 8
GOAL = 1.05
LIMITS = f"[limits.dashscope]\nsubmits_per_second = 1000\nconcurrent = {WIDTH}\n"


def dag_pipeline(tag: str, seed: int = 7) -> str:
    """The DAG; ``tag`` goes into the root prompts so that no two runs send the same request."""
    rng = random.Random(seed)
    lines = ["wanflow: 1", "name: dag", "defaults: {seed: 3, params: {watermark: false}}", "steps:"]
    for column in range(WIDTH):
        lines.append(f'  l00s{column}: {{model: wan2.6-t2i, prompt: "root {column} of run {tag}", params: {{size: 1280*1280, n: 1}}}}')
    for level in range(1, LEVELS):
        for column in range(WIDTH):
            # One or two parents in the level before; column's own parent always among them so that
            # every step of the level before has a child (the critical path runs through every level).
            parents = {column} | ({rng.randrange(WIDTH)} if rng.random() < 0.5 else set())
            images = ", ".join(f'"{{{{ steps.l{level - 1:02d}s{p}.images[0] }}}}"' for p in sorted(parents))
            lines.append(f'  l{level:02d}s{column}: {{model: wan2.6-image, images: [{images}], '
                         f'prompt: "edit {level}-{column}", params: {{n: 1}}}}')
    return "\n".join(lines) + "\n"


def warm_pipeline() -> str:
    lines = ["wanflow: 1", "name: warmup", "defaults: {seed: 1, params: {watermark: false}}", "steps:"]
    for index in range(WIDTH):
        lines += [f'  t{index}: {{model: wan2.6-t2i, prompt: "warm {index}", params: {{size: 1280*1280, n: 1}}}}',
                  f'  e{index}: {{model: wan2.6-image, images: [frame.png], prompt: "warm edit {index}", params: {{n: 1}}}}']
    return "\n".join(lines) + "\n"


def iso(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


def one_run(sim: Any, folder: Path, key: str, cache: Path, fixed: bool) -> dict[str, Any]:
    folder.mkdir(parents=True)
    (folder / "dag.yaml").write_text(dag_pipeline(key))
    (folder / "wanflow.toml").write_text(LIMITS)
    env = client_env(sim.url, key, cache)
    if fixed:
        env["WANFLOW_POLL_INTERVAL"] = "0.05"
    proc = run(wanflow_command() + ["run", "dag.yaml", "--provider", "dashscope", "--jobs", str(WIDTH), "--no-report",
                                    "--json", "--yes"], folder, env)
    summary = json.loads(proc.stdout)
    record = json.loads(next((folder / ".wanflow" / "runs").glob("*.json")).read_text())
    return {"wall_s": proc.wall, "span_s": iso(record["finished_at"]) - iso(record["started_at"]), "ok": summary["ok"],
            "ran": sum(1 for s in summary["steps"].values() if s["status"] == "ran")}


def main() -> None:
    from PIL import Image

    from wanflow.sim.server import SimServer
    from wanflow.sim.state import Knobs

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 repetition instead of 3")
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--task-seconds", type=float, default=2.0)
    args = parser.parse_args()
    repeats = args.repeats or (1 if args.quick else 3)
    seconds = args.task_seconds
    bound = LEVELS * seconds
    setups = {"learned": False, "fixed 0.05 s": True}
    slugs = {"learned": "learned", "fixed 0.05 s": "fixed"}
    keys = ["warm"] + [f"{slugs[name]}-{r}" for name in setups for r in range(repeats)]
    root = Path(tempfile.mkdtemp(prefix="wanflow-dag-"))
    poll_log: list[dict[str, Any]] = []
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in setups}
    try:
        sim = SimServer(Knobs(task_seconds=seconds, tiny_results=True, keys=tuple(keys)), workdir=root / "sim")
        sim.app.add_middleware(PollLog, log=poll_log)
        with sim:
            warm_cache = root / "warm-cache"
            warm = root / "warm"
            warm.mkdir()
            (warm / "warmup.yaml").write_text(warm_pipeline())
            (warm / "wanflow.toml").write_text(LIMITS.replace(f"concurrent = {WIDTH}", "concurrent = 16"))
            Image.new("RGB", (1280, 1280), (180, 120, 60)).save(warm / "frame.png")
            print("warm-up ...", file=sys.stderr, flush=True)
            run(wanflow_command() + ["run", "warmup.yaml", "--provider", "dashscope", "--jobs", "16", "--no-report", "--yes"],
                warm, client_env(sim.url, "warm", warm_cache))
            learned = json.loads((warm_cache / "wanflow" / "durations.json").read_text())
            for r in range(repeats):
                for name, fixed in setups.items():  # the set-ups take turns
                    print(f"{name} {r + 1}/{repeats} ...", file=sys.stderr, flush=True)
                    key = f"{slugs[name]}-{r}"
                    shutil.copytree(warm_cache, root / f"cache-{key}")
                    runs[name].append(one_run(sim, root / f"run-{key}", key, root / f"cache-{key}", fixed))
            time.sleep(0.2)
            tasks = list(sim.state.tasks.values())
            stats = sim.stats()
    finally:
        shutil.rmtree(root, ignore_errors=True)

    first_terminal: dict[str, float] = {}
    poll_counts: dict[str, int] = {}
    for entry in sorted(poll_log, key=lambda e: e["at"]):
        poll_counts[entry["task_id"]] = poll_counts.get(entry["task_id"], 0) + 1
        if entry["status"] in TERMINAL:
            first_terminal.setdefault(entry["task_id"], entry["at"])
    results: dict[str, Any] = {}
    for name in setups:
        mine = [t for t in tasks if t.api_key.startswith(slugs[name] + "-")]
        delays = [max(0.0, first_terminal[t.task_id] - (t.created_at + seconds)) for t in mine if t.task_id in first_terminal]
        results[name] = {
            "wall_s": spread([x["wall_s"] for x in runs[name]], 2),
            "span_s": spread([x["span_s"] for x in runs[name]], 2),
            "wall_over_bound": spread([x["wall_s"] / bound for x in runs[name]], 3),
            "span_over_bound": spread([x["span_s"] / bound for x in runs[name]], 3),
            "detection_delay_s": spread(delays, 3),
            "polls_per_task": spread([poll_counts.get(t.task_id, 0) for t in mine], 1),
            "all_ok": all(x["ok"] and x["ran"] == LEVELS * WIDTH for x in runs[name]),
        }
    goal = {"goal": GOAL, "measured": results["learned"]["wall_over_bound"]["median"],
            "met": results["learned"]["wall_over_bound"]["median"] <= GOAL,
            "measured_fixed_polling": results["fixed 0.05 s"]["wall_over_bound"]["median"],
            "met_fixed_polling": results["fixed 0.05 s"]["wall_over_bound"]["median"] <= GOAL}
    print(json.dumps({"benchmark": "dag_bound", "machine": machine(), "steps": LEVELS * WIDTH, "levels": LEVELS,
                      "width": WIDTH, "task_seconds": seconds, "bound_s": bound, "repeats": repeats,
                      "warm_cache": learned, "setups": results, "goal_wall_over_bound": goal,
                      "simulator": {k: stats[k] for k in ("creates", "polls", "duplicate_creates", "throttles")}}, indent=2))
    rows = []
    for name, r in results.items():
        rows += [[name, "wall s", fmt_spread(r["wall_s"])], [name, "wall ÷ bound", fmt_spread(r["wall_over_bound"])],
                 [name, "run span ÷ bound", fmt_spread(r["span_over_bound"])],
                 [name, "detection delay s", fmt_spread(r["detection_delay_s"])],
                 [name, "polls per task", fmt_spread(r["polls_per_task"])]]
    print("\n" + table(["polling", f"measure (bound {bound:g} s)", "median (min–max)"], rows), file=sys.stderr)
    print(f"\ngoal wall ÷ bound ≤ {GOAL}: learned polling {fmt(goal['measured'])} ({fmt(goal['met'])}), "
          f"fixed 0.05 s polling {fmt(goal['measured_fixed_polling'])} ({fmt(goal['met_fixed_polling'])})", file=sys.stderr)


if __name__ == "__main__":
    main()
