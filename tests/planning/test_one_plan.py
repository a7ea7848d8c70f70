"""One plan for everything: what ``plan --json`` lists is exactly what ``run --json`` then runs,
and the plan's estimate is the run's recorded estimate. Against the simulator, as a paid run."""

from __future__ import annotations

import asyncio
import json
import shutil
import textwrap
from pathlib import Path

import pytest

import wanflow
from cli_helpers import cli_env, wanflow_json
from wanflow.sim.server import SimServer
from wanflow.sim.state import Knobs

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def sim(project: Path):
    with SimServer(Knobs(task_seconds=0.1, tiny_results=True, seed=2), workdir=project / "sim") as server:
        yield server


def _planned(plan: dict) -> tuple[set[str], float]:
    """(units the plan says run or may run, the plan's upper estimate)."""
    instances = plan.get("instances") or {"": {"steps": plan["steps"]}}
    units = {f"{name}/{unit}" if name else unit
             for name, instance in instances.items()
             for unit, step in (instance["steps"] if "steps" in instance else instance).items()
             if step["status"] in ("run", "run-if-inputs-change")}
    return units, plan["estimated_cost_usd"]


def _ran(summary: dict) -> tuple[set[str], float]:
    """(units the run ran, the run's recorded estimate)."""
    instances = summary.get("instances") or {"": summary}
    units, estimated = set(), 0.0
    for name, run in instances.items():
        prefix = f"{name}/" if name else ""
        for step_id, step in run["steps"].items():
            if "items" in step:
                units |= {f"{prefix}{step_id}[{index}]" for index, item in enumerate(step["items"]) if item["status"] == "ran"}
            elif step["status"] == "ran":
                units.add(f"{prefix}{step_id}")
        estimated += json.loads(Path(run["record"]).read_text())["totals"]["estimated_cost_usd"]
    return units, round(estimated, 6)


def _agree(args: list[str], cwd: Path, env: dict[str, str]) -> dict:
    code, plan, err = wanflow_json(["plan", *args], cwd, env)
    assert code == 0, err
    code, summary, err = wanflow_json(["run", *args], cwd, env, timeout=300)
    assert code == 0, err
    planned, estimate = _planned(plan)
    ran, recorded = _ran(summary)
    assert planned == ran, (sorted(planned - ran), sorted(ran - planned))
    assert estimate == pytest.approx(recorded, abs=1e-6)
    return summary


@pytest.mark.parametrize("example", ["product-ad", "hero-variants", "multi-image-edit", "style-matrix", "batch-products"])
def test_every_example_runs_exactly_what_its_plan_says(sim, project, example):
    shutil.copytree(EXAMPLES / example, project / example)
    for lock in (project / example).glob("*.lock"):
        lock.unlink()
    path = project / example / f"{example}.yaml"
    args = [str(path), "--provider", "dashscope"]
    if example == "batch-products":
        args += ["--batch", str(project / example / "products.csv")]
    env = cli_env(sim)
    _agree(args, project, env)
    _agree(args, project, env)  # the rerun: everything cached, planned so, costing nothing


def _write(project: Path, text: str) -> Path:
    path = project / "pipe.yaml"
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def test_templated_params_vars_conditions_and_changed_fan_out_items(sim, project):
    env = cli_env(sim)
    path = _write(project, """
        name: shapes
        vars: {count: 2, animate: false, styles: [red, green, blue]}
        steps:
          hero: {model: wan2.6-t2i, prompt: a lamp, params: {n: "{{ vars.count }}"}}
          clip:
            model: wan2.6-i2v
            when: "{{ vars.animate }}"
            image: "{{ steps.hero.images[0] }}"
            params: {resolution: 720P, duration: 5, audio: false}
          variants:
            model: wan2.6-t2i
            for_each: "{{ vars.styles }}"
            prompt: "a {{ item }} lamp"
            params: {n: 1}
        """)
    summary = _agree([str(path), "--provider", "dashscope"], project, env)
    assert summary["steps"]["clip"]["status"] == "skipped"
    # One fan-out item changes: only it runs, and the plan says so before.
    _agree([str(path), "--provider", "dashscope", "--var", "styles=[red, green, gold]"], project, env)
    _code, plan, _ = wanflow_json(["plan", str(path), "--provider", "dashscope", "--var", "styles=[red, green, gold]"],
                                 project, env)
    assert _planned(plan)[0] == set()


def test_reseeded_steps_run_with_the_seeds_the_plan_drew(sim, project):
    env = cli_env(sim)
    path = _write(project, """
        name: seeds
        steps:
          hero: {model: wan2.6-t2i, prompt: a lamp, params: {n: 1}}
        """)
    _agree([str(path), "--provider", "dashscope"], project, env)
    summary = _agree([str(path), "--provider", "dashscope", "--reseed", "hero"], project, env)
    lock = json.loads((project / "pipe.lock").read_text())
    assert lock["instances"]["default"]["steps"]["hero"]["seed"] == summary["steps"]["hero"]["seed"]
    # The next plan uses the seed the lockfile pinned: nothing to run.
    _code, plan, _ = wanflow_json(["plan", str(path), "--provider", "dashscope"], project, env)
    assert plan["steps"]["hero"]["status"] == "cached" and plan["steps"]["hero"]["seed"] == summary["steps"]["hero"]["seed"]


def test_budget_counts_only_what_can_run(sim, project):
    env = cli_env(sim)
    shutil.copytree(EXAMPLES / "batch-products", project / "batch")
    path = project / "batch" / "batch-products.yaml"
    args = [str(path), "--provider", "dashscope", "--batch", str(project / "batch" / "products.csv")]
    code, plan, err = wanflow_json(["plan", *args], project, env)
    assert code == 0, err
    estimate = plan["estimated_cost_usd"]
    skipped = [unit for instance in plan["instances"].values() for unit, step in instance.items()
               if step["status"] == "skip"]
    assert skipped, "rows with animate=false skip their clip, and cost nothing"
    code, _, err = wanflow_json(["run", *args, "--budget", f"{estimate - 0.01:.2f}"], project, env)
    assert code == 2 and "exceeds --budget" in err and sim.stats()["creates"] == 0
    code, _, err = wanflow_json(["run", *args, "--budget", f"{estimate:.2f}"], project, env, timeout=300)
    assert code == 0, err


# --- the library is the application -------------------------------------------------------------

def test_the_python_api_runs_every_matrix_instance(project):
    shutil.copytree(EXAMPLES / "style-matrix", project / "sm")
    pipeline = wanflow.load_pipeline(project / "sm" / "style-matrix.yaml")
    plan = wanflow.plan(pipeline)
    assert len(plan.units) == 6
    result = wanflow.run(pipeline)
    assert isinstance(result, wanflow.BatchResult) and len(result.instances) == 6 and result.ok
    explained = wanflow.explain(pipeline)
    assert {line.status for lines in explained.values() for line in lines} <= {"cached", "shared"}


def test_arun_works_inside_a_running_event_loop(project, write_pipeline):
    path = write_pipeline("""
        name: notebook
        steps:
          hero: {model: wan2.6-t2i, prompt: a lamp, params: {n: 1}}
        """)
    pipeline = wanflow.load_pipeline(path)

    async def notebook_cell():
        with pytest.raises(wanflow.UsageError, match=r"await wanflow\.arun"):
            wanflow.run(pipeline)
        return await wanflow.arun(pipeline)

    result = asyncio.run(notebook_cell())
    assert isinstance(result, wanflow.RunResult) and result.ok and result.steps["hero"].status == "ran"


def test_the_api_refuses_a_run_over_budget_before_anything_runs(project, write_pipeline):
    path = write_pipeline("""
        name: costly
        defaults: {provider: dashscope}
        steps:
          hero: {model: wan2.6-t2i, prompt: a lamp, params: {n: 4}}
        """)
    pipeline = wanflow.load_pipeline(path)
    plan = wanflow.plan(pipeline)
    assert plan.upper_usd == pytest.approx(0.12) and plan.certain_usd == pytest.approx(0.12)
    with pytest.raises(wanflow.UsageError, match="exceeds --budget"):
        wanflow.run(pipeline, allow_paid=True, budget=0.05)
