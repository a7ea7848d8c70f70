"""One workflow for the CLI and the Python API: the same keywords as the flags, the pipeline's own
project wherever it is run from, and an honest run history (a killed run is ``abandoned``)."""

from __future__ import annotations

import inspect
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import wanflow
from sim_helpers import SECRET, TWO_STEPS
from wanflow.cli.main import main
from wanflow.cli.parser import build_parser

# The run command's flags that are not keywords of wanflow.run, and why.
CLI_ONLY = {
    "pipeline": "the first positional argument",
    "json": "printing",
    "yes": "the CLI's confirm hook (confirm=)",
    "no_report": "report=False",
    "no_lock": "lock=False",
    "var": "vars={...}",
    "allow_path": "allow_paths=[...]",
    "help": "argparse",
}
RENAMED = {"no_report": "report", "no_lock": "lock", "var": "vars", "allow_path": "allow_paths", "yes": "confirm"}

LOCAL = """
name: where
defaults: {seed: 3}
steps:
  hero: {model: wan2.6-t2i, prompt: "a kite", params: {n: 1, size: 1104*1472}}
"""


def _run_flags() -> set[str]:
    run = build_parser()._subparsers._group_actions[0].choices["run"]  # type: ignore[union-attr]
    return {action.dest for action in run._actions}


def test_every_run_flag_has_its_keyword():
    keywords = set(inspect.signature(wanflow.run).parameters)
    missing = sorted(flag for flag in _run_flags() if flag not in keywords and RENAMED.get(flag) not in keywords
                     and flag not in ("pipeline", "json", "help"))
    assert missing == []
    assert set(RENAMED) <= set(CLI_ONLY)


def test_plan_explain_and_arun_take_the_same_keywords_as_run():
    run_keywords = set(inspect.signature(wanflow.run).parameters) - {"budget", "confirm", "report", "reporter"}
    for function in (wanflow.plan, wanflow.explain, wanflow.arun):
        assert run_keywords <= set(inspect.signature(function).parameters), function.__name__


def test_an_unknown_keyword_names_itself_and_the_closest_one(project):
    (project / "p.yaml").write_text(LOCAL)
    with pytest.raises(wanflow.UsageError, match="unknown keyword 'provder'; did you mean 'provider'"):
        wanflow.plan("p.yaml", provder="local")


def test_errors_name_the_keyword_not_only_the_flag(project):
    (project / "p.yaml").write_text(LOCAL)
    with pytest.raises(wanflow.UsageError, match=r"fresh \(--fresh\): unknown step nope"):
        wanflow.plan("p.yaml", fresh=["nope"])
    with pytest.raises(wanflow.UsageError, match=r"jobs must be a whole number .*--jobs"):
        wanflow.plan("p.yaml", jobs=0)


def test_a_paid_provider_is_refused_by_keyword_without_allow_paid(project, monkeypatch):
    monkeypatch.setenv("DASHSCOPE_API_KEY", "k")
    (project / "p.yaml").write_text(LOCAL.replace("defaults: {seed: 3}", "defaults: {seed: 3, provider: dashscope}"))
    with pytest.raises(wanflow.UsageError, match=r"allow_paid=True \(--allow-paid\)"):
        wanflow.run("p.yaml")


def _project_with_sim(root: Path, sim_url: str) -> Path:
    project = root / "proj"
    (project / "pipes").mkdir(parents=True)
    (project / "wanflow.toml").write_text(f'[providers.dashscope]\nbase_url = "{sim_url}"\n')
    (project / "pipes" / "p.yaml").write_text(TWO_STEPS)
    return project


def test_the_cli_from_another_folder_uses_the_pipelines_project_settings_and_state(tmp_path, monkeypatch, sim):
    server = sim()
    project = _project_with_sim(tmp_path, server.dashscope_url)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    for name in ("DASHSCOPE_HTTP_BASE_URL", "WANFLOW_STATE_DIR", "WANFLOW_OUT_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DASHSCOPE_API_KEY", SECRET)
    assert main(["run", str(project / "pipes" / "p.yaml"), "--provider", "dashscope", "--no-report"]) == 0
    assert server.stats()["creates"] == 2  # the project's base_url: the simulator, not the default region
    assert (project / ".wanflow" / "runs").is_dir() and (project / "out" / "paid").is_dir()
    assert not (elsewhere / ".wanflow").exists() and not (elsewhere / "out").exists()
    assert (project / "pipes" / "p.lock").is_file()


def test_the_api_with_provider_dashscope_from_another_folder_uses_the_same_project(tmp_path, monkeypatch, sim):
    server = sim()
    project = _project_with_sim(tmp_path, server.dashscope_url)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DASHSCOPE_HTTP_BASE_URL", raising=False)
    monkeypatch.setenv("DASHSCOPE_API_KEY", SECRET)
    path = project / "pipes" / "p.yaml"
    planned = wanflow.plan(path, provider="dashscope")
    assert [unit.status for unit in planned.units["default"]] == ["run", "run-if-inputs-change"]
    result = wanflow.run(path, provider="dashscope")
    assert isinstance(result, wanflow.RunResult) and result.ok
    assert server.stats()["creates"] == 2
    assert result.record_path is not None and result.record_path.is_relative_to(project / ".wanflow")
    assert result.report_path == project / "out" / "paid" / "index.html" and result.report_path.is_file()
    again = wanflow.run(path, provider="dashscope")
    assert {step.status for step in again.steps.values()} == {"cached"} and server.stats()["creates"] == 2
    assert [unit.status for unit in wanflow.plan(path, provider="dashscope").units["default"]] == ["cached", "cached"]


def test_a_pipeline_loaded_for_a_provider_runs_on_it(tmp_path, monkeypatch, sim):
    server = sim()
    project = _project_with_sim(tmp_path, server.dashscope_url)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DASHSCOPE_API_KEY", SECRET)
    pipeline = wanflow.load_pipeline(project / "pipes" / "p.yaml", provider_override="dashscope")
    result = wanflow.run(pipeline, allow_paid=True)
    assert result.ok and {step.provider for step in result.steps.values()} == {"dashscope"}
    assert server.stats()["creates"] == 2
    with pytest.raises(wanflow.UsageError, match="loaded for provider='dashscope'"):
        wanflow.plan(pipeline, provider="local")


def _runs_json(cwd: Path, *args: str) -> list[dict]:
    done = subprocess.run([sys.executable, "-m", "wanflow", "runs", "--json", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_killed_run_shows_as_abandoned_everywhere(tmp_path, sim):
    server = sim(task_seconds=60)
    project = _project_with_sim(tmp_path, server.dashscope_url)
    env = {**os.environ, "DASHSCOPE_API_KEY": SECRET}
    env.pop("DASHSCOPE_HTTP_BASE_URL", None)
    child = subprocess.Popen([sys.executable, "-m", "wanflow", "run", "pipes/p.yaml", "--provider", "dashscope"],
                             cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while server.stats()["creates"] < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.stats()["creates"] == 1
    while_alive = _runs_json(project)
    assert [run["status"] for run in while_alive] == ["running"]  # its process is alive: truly running
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    runs = _runs_json(project)
    assert [run["status"] for run in runs] == ["abandoned"]
    assert [run["id"] for run in _runs_json(project, "--status", "abandoned")] == [runs[0]["id"]]
    assert _runs_json(project, "--status", "succeeded") == []
    shown = subprocess.run([sys.executable, "-m", "wanflow", "runs", "show", "latest"], cwd=project, capture_output=True,
                           text=True, timeout=60)
    assert shown.returncode == 0 and "abandoned" in shown.stdout
    report = subprocess.run([sys.executable, "-m", "wanflow", "report"], cwd=project, capture_output=True, text=True,
                            timeout=120)
    assert report.returncode == 0, report.stderr
    assert '<span class="badge abandoned">abandoned</span>' in (project / "out" / "paid" / "index.html").read_text()
