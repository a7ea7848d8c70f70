"""The fully cached no-op rerun, side by side with DVC and Snakemake on the same 100-stage DAG.

The same DAG is written three ways: stage i depends on stage i-1, and every fifth stage also on
stage i-5 (a chain with short skip edges: one root, one sink, 119 edges).

- wanflow: a 100-step pipeline on the local (free, offline) provider; each step is a 1104*1472
  text-to-image preview (the smallest recommended size: no size warnings are printed) with
  ``n: 1`` and ``needs:`` for the edges;
- DVC: ``dvc.yaml`` with 100 stages whose ``cmd`` writes a small file (``echo i > out/sNNN.txt``),
  with ``deps`` on the upstream files, in a git repository (``git init`` + ``dvc init``, analytics
  off), as DVC is normally used;
- Snakemake: a Snakefile with 100 rules doing the same, plus ``rule all``.

DVC and Snakemake are installed by this script, each in its own virtualenv under
``benchmarks/.venvs/`` (pinned versions below; once). Each tool runs once to fill its caches
(untimed), once more untimed to warm the OS and bytecode caches, then the no-op is timed
repeatedly, the tools taking turns in each repetition:

- ``wanflow run chain.yaml`` (the default command: it also rewrites the HTML report), and with
  ``--no-report``;
- ``dvc repro`` ("Data and pipelines are up to date");
- ``snakemake --cores 1`` (a real no-op run: "Nothing to be done") and ``snakemake -n --cores 1``
  (a dry run);
- ``wanflow --help``, ``wanflow plan`` and ``wanflow run`` on a 500-step cached pipeline (and on 10
  steps, to see whether the cost is linear in steps); ``python -c pass`` as the interpreter floor.

Wall time is measured around the child process and CPU is its user + system time
(``getrusage(RUSAGE_CHILDREN)`` deltas, so children it waited for count too).

Usage: python benchmarks/peers_noop.py [--quick] [--repeats N] [--no-install] [--keep DIR]
Prints JSON on stdout and a table on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchlib import Timed, fmt, fmt_spread, machine, peer_venv, spread, table, timed, user_env, wanflow_command

DVC = "dvc==3.67.1"
SNAKEMAKE = "snakemake==9.27.1"
STAGES = 100
BIG = 500  # steps for plan / linearity (500 is wanflow's limit per pipeline)
SMALL = 10
SIZE = "1104*1472"

GOALS = {
    "wanflow_run_100_wall_s": 0.15,
    "dvc_cpu_over_wanflow_cpu": 10.0,
    "wanflow_plan_500_wall_s": 0.3,
    "wanflow_help_wall_s": 0.1,
}


def edges(index: int) -> list[int]:
    """Stage ``index``'s upstream stages."""
    ups = [index - 1] if index else []
    if index >= 5 and index % 5 == 0:
        ups.append(index - 5)
    return ups


def wanflow_pipeline(steps: int) -> str:
    lines = ["wanflow: 1", f"name: chain{steps}", "defaults: {seed: 1}", "steps:"]
    for index in range(steps):
        needs = ", ".join(f"s{up:03d}" for up in edges(index))
        needs_field = f", needs: [{needs}]" if needs else ""
        lines.append(f'  s{index:03d}: {{model: wan2.6-t2i, prompt: "stage {index}", '
                     f"params: {{size: {SIZE}, n: 1}}{needs_field}}}")
    return "\n".join(lines) + "\n"


def dvc_yaml(steps: int) -> str:
    lines = ["stages:"]
    for index in range(steps):
        lines += [f"  s{index:03d}:", f"    cmd: echo {index} > out/s{index:03d}.txt"]
        if edges(index):
            lines.append("    deps:")
            lines += [f"      - out/s{up:03d}.txt" for up in edges(index)]
        lines += ["    outs:", f"      - out/s{index:03d}.txt"]
    return "\n".join(lines) + "\n"


def snakefile(steps: int) -> str:
    parts = [f'rule all:\n    input: "out/s{steps - 1:03d}.txt"\n']
    for index in range(steps):
        inputs = ", ".join(f'"out/s{up:03d}.txt"' for up in edges(index))
        parts.append(f"rule s{index:03d}:\n" + (f"    input: {inputs}\n" if inputs else "")
                     + f'    output: "out/s{index:03d}.txt"\n    shell: "echo {index} > {{output}}"\n')
    return "\n".join(parts)


def setup(root: Path, install: bool) -> tuple[dict[str, Callable[[], Timed]], dict[str, Any]]:
    """Build every project, fill every cache, and return the timed no-op commands."""
    wanflow = wanflow_command()
    env = user_env({"NO_COLOR": "1"})
    info: dict[str, Any] = {"first_run_s": {}}
    projects: dict[int, Path] = {}
    for steps in (SMALL, STAGES, BIG):
        project = root / f"wanflow{steps}"
        project.mkdir()
        (project / "chain.yaml").write_text(wanflow_pipeline(steps))
        print(f"wanflow: first run of {steps} steps ...", file=sys.stderr, flush=True)
        info["first_run_s"][f"wanflow_{steps}"] = round(timed(wanflow + ["run", "chain.yaml"], project, env).wall, 2)
        projects[steps] = project

    dvc_bin = peer_venv("dvc", DVC, install)
    dvc_env = {**env, "DVC_NO_ANALYTICS": "1", "PATH": f"{dvc_bin}{os.pathsep}{env.get('PATH', '')}"}
    dvc_project = root / "dvc"
    dvc_project.mkdir()
    (dvc_project / "out").mkdir()
    timed(["git", "init", "-q"], dvc_project, dvc_env)
    timed([dvc_bin / "dvc", "init", "-q"], dvc_project, dvc_env)
    timed([dvc_bin / "dvc", "config", "core.analytics", "false"], dvc_project, dvc_env)
    (dvc_project / "dvc.yaml").write_text(dvc_yaml(STAGES))
    print("dvc: first repro ...", file=sys.stderr, flush=True)
    info["first_run_s"]["dvc"] = round(timed([dvc_bin / "dvc", "repro", "-q"], dvc_project, dvc_env).wall, 2)

    smk_bin = peer_venv("snakemake", SNAKEMAKE, install)
    smk_env = {**env, "PATH": f"{smk_bin}{os.pathsep}{env.get('PATH', '')}"}
    smk_project = root / "snakemake"
    smk_project.mkdir()
    (smk_project / "Snakefile").write_text(snakefile(STAGES))
    print("snakemake: first run ...", file=sys.stderr, flush=True)
    info["first_run_s"]["snakemake"] = round(timed([smk_bin / "snakemake", "--cores", "1", "--quiet"],
                                                   smk_project, smk_env).wall, 2)
    info["versions"] = {
        "dvc": timed([dvc_bin / "dvc", "--version"], dvc_project, dvc_env).stdout.strip(),
        "snakemake": timed([smk_bin / "snakemake", "--version"], smk_project, smk_env).stdout.strip(),
    }

    commands: dict[str, Callable[[], Timed]] = {
        "python -c pass": lambda: timed([sys.executable, "-c", "pass"], root, env),
        "wanflow --help": lambda: timed(wanflow + ["--help"], root, env),
        f"wanflow run ({STAGES})": lambda: timed(wanflow + ["run", "chain.yaml"], projects[STAGES], env),
        f"wanflow run --no-report ({STAGES})": lambda: timed(wanflow + ["run", "chain.yaml", "--no-report"],
                                                             projects[STAGES], env),
        f"dvc repro ({STAGES})": lambda: timed([dvc_bin / "dvc", "repro"], dvc_project, dvc_env),
        f"snakemake --cores 1 ({STAGES})": lambda: timed([smk_bin / "snakemake", "--cores", "1"], smk_project, smk_env),
        f"snakemake -n --cores 1 ({STAGES})": lambda: timed([smk_bin / "snakemake", "-n", "--cores", "1"],
                                                            smk_project, smk_env),
        f"wanflow plan ({BIG})": lambda: timed(wanflow + ["plan", "chain.yaml"], projects[BIG], env),
        f"wanflow run ({BIG})": lambda: timed(wanflow + ["run", "chain.yaml"], projects[BIG], env),
        f"wanflow run ({SMALL})": lambda: timed(wanflow + ["run", "chain.yaml"], projects[SMALL], env),
    }
    info["projects"] = {"wanflow": str(projects[STAGES]), "dvc": str(dvc_project), "snakemake": str(smk_project)}
    return commands, info


def check_noops(root: Path, samples: dict[str, Timed]) -> dict[str, bool]:
    """Every timed rerun really was a no-op."""
    wanflow = wanflow_command()
    checks = {}
    for steps in (SMALL, STAGES, BIG):
        summary = json.loads(timed(wanflow + ["run", "chain.yaml", "--json"], root / f"wanflow{steps}", user_env()).stdout)
        checks[f"wanflow_{steps}_all_cached"] = all(s["status"] == "cached" for s in summary["steps"].values())
    checks["dvc_up_to_date"] = "up to date" in (samples[f"dvc repro ({STAGES})"].stdout
                                                + samples[f"dvc repro ({STAGES})"].stderr)
    smk = samples[f"snakemake --cores 1 ({STAGES})"]
    checks["snakemake_nothing_to_do"] = "Nothing to be done" in smk.stdout + smk.stderr
    return checks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 repetitions instead of 7")
    parser.add_argument("--repeats", type=int, help="timed repetitions of each command")
    parser.add_argument("--no-install", action="store_true", help="fail instead of installing DVC / Snakemake")
    parser.add_argument("--keep", type=Path, help="build the projects in this (new) folder and keep them")
    args = parser.parse_args()
    repeats = args.repeats or (2 if args.quick else 7)

    if args.keep:
        args.keep.mkdir(parents=True)
        root = args.keep.resolve()
    else:
        root = Path(tempfile.mkdtemp(prefix="wanflow-peers-"))
    try:
        commands, info = setup(root, not args.no_install)
        last: dict[str, Timed] = {}
        for command in commands.values():  # warm the OS and bytecode caches once, untimed
            command()
        walls: dict[str, list[float]] = {name: [] for name in commands}
        cpus: dict[str, list[float]] = {name: [] for name in commands}
        for repeat in range(repeats):
            print(f"repetition {repeat + 1}/{repeats} ...", file=sys.stderr, flush=True)
            for name, command in commands.items():  # the tools take turns, so drift hits all alike
                last[name] = sample = command()
                walls[name].append(sample.wall)
                cpus[name].append(sample.cpu)
        checks = check_noops(root, last)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)

    measures = {name: {"wall_s": spread(walls[name]), "cpu_s": spread(cpus[name])} for name in commands}

    def med(name: str, what: str) -> float:
        return measures[name][what]["median"]

    run100, dvc, smk, smk_n = (f"wanflow run ({STAGES})", f"dvc repro ({STAGES})", f"snakemake --cores 1 ({STAGES})",
                               f"snakemake -n --cores 1 ({STAGES})")
    ratios = {
        "dvc_cpu_over_wanflow_cpu": round(med(dvc, "cpu_s") / med(run100, "cpu_s"), 2),
        "dvc_wall_over_wanflow_wall": round(med(dvc, "wall_s") / med(run100, "wall_s"), 2),
        "snakemake_cpu_over_wanflow_cpu": round(med(smk, "cpu_s") / med(run100, "cpu_s"), 2),
        "snakemake_wall_over_wanflow_wall": round(med(smk, "wall_s") / med(run100, "wall_s"), 2),
        "snakemake_dry_run_cpu_over_wanflow_cpu": round(med(smk_n, "cpu_s") / med(run100, "cpu_s"), 2),
        "dvc_cpu_over_wanflow_no_report_cpu": round(med(dvc, "cpu_s") / med(f"wanflow run --no-report ({STAGES})", "cpu_s"), 2),
    }
    small, big = med(f"wanflow run ({SMALL})", "cpu_s"), med(f"wanflow run ({BIG})", "cpu_s")
    mid = med(run100, "cpu_s")
    linearity = {
        "cpu_ms_per_step_10_to_100": round((mid - small) / (STAGES - SMALL) * 1000, 2),
        "cpu_ms_per_step_100_to_500": round((big - mid) / (BIG - STAGES) * 1000, 2),
    }
    linearity["slope_ratio"] = round(linearity["cpu_ms_per_step_100_to_500"] / linearity["cpu_ms_per_step_10_to_100"], 2) \
        if linearity["cpu_ms_per_step_10_to_100"] > 0 else None
    figures = {
        "wanflow_run_100_wall_s": med(run100, "wall_s"),
        "dvc_cpu_over_wanflow_cpu": ratios["dvc_cpu_over_wanflow_cpu"],
        "wanflow_plan_500_wall_s": med(f"wanflow plan ({BIG})", "wall_s"),
        "wanflow_help_wall_s": med("wanflow --help", "wall_s"),
    }
    goals = {name: {"goal": goal, "measured": figures[name],
                    "met": figures[name] >= goal if name.endswith("over_wanflow_cpu") else figures[name] <= goal}
             for name, goal in GOALS.items()}
    result = {"benchmark": "peers_noop", "stages": STAGES, "repeats": repeats, "machine": machine(), **info,
              "noop_checks": checks, "measures": measures, "ratios": ratios, "linearity": linearity, "goals": goals}
    print(json.dumps(result, indent=2))

    rows = [[name, fmt_spread(m["wall_s"]), fmt_spread(m["cpu_s"])] for name, m in measures.items()]
    print("\n" + table(["no-op command", "wall s, median (min–max)", "CPU s, median (min–max)"], rows), file=sys.stderr)
    print("\n" + table(["ratio (medians)", "value"], [[k, v] for k, v in {**ratios, **linearity}.items()]), file=sys.stderr)
    print("\n" + table(["goal", "measured", "goal", "met?"],
                       [[name, fmt(g["measured"]), ("≥ " if name.endswith("over_wanflow_cpu") else "≤ ") + fmt(g["goal"]),
                         fmt(g["met"])] for name, g in goals.items()]), file=sys.stderr)
    if not all(checks.values()):
        print(f"WARNING: not every timed rerun was a no-op: {checks}", file=sys.stderr)


if __name__ == "__main__":
    main()
