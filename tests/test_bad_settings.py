"""Settings are checked before anything is sent: every WANFLOW_* number is finite and bounded
(exit 2 before a create), learned durations are clamped, and a closed or broken stdout, stderr or
stdin never prints a traceback and keeps the command's exit code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli_helpers import SRC, cli_env, wanflow_json
from sim_helpers import SECRET
from wanflow._exceptions import UsageError
from wanflow._settings import check_environment
from wanflow.providers.durations import MAX_SECONDS, DurationBook
from wanflow.providers.policies import LearnedSchedule

ONE = "name: one\nsteps:\n  a: {model: wan2.6-t2i, prompt: a red teapot, params: {n: 1}}\n"


@pytest.mark.parametrize(("name", "value"), [
    ("WANFLOW_POLL_INTERVAL", "inf"), ("WANFLOW_POLL_INTERVAL", "nan"), ("WANFLOW_POLL_INTERVAL", "-1"),
    ("WANFLOW_POLL_INTERVAL", "1e9"), ("WANFLOW_POLL_INTERVAL", "soon"), ("WANFLOW_LEASE_SECONDS", "0"),
    ("WANFLOW_CLUSTER_WINDOW", "1.5"), ("WANFLOW_CONFIRM_ABOVE", "nan"), ("WANFLOW_URL_REUSE_HOURS", "inf"),
    ("WANFLOW_ALLOW_PAID", "yes"),
])
def test_a_bad_setting_is_exit_2_before_any_create(sim, project, name, value):
    server = sim()
    (project / "pipe.yaml").write_text(ONE)
    code, _, err = wanflow_json(["run", "pipe.yaml", "--provider", "dashscope"], project, cli_env(server, SECRET, **{name: value}))
    assert code == 2, err
    assert f"{name}={value!r}" in err and "allowed" in err, err
    assert "Traceback" not in err and "internal error" not in err
    assert server.stats()["creates"] == 0


def test_a_misspelt_setting_gets_a_did_you_mean():
    warnings = check_environment({"WANFLOW_POLL_INTERVALS": "1", "WANFLOW_TEST_CHROMIUM": "/x"})
    assert warnings == ["WANFLOW_POLL_INTERVALS is not a wanflow setting and is ignored; did you mean WANFLOW_POLL_INTERVAL?"]
    with pytest.raises(UsageError, match="WANFLOW_POLL_INTERVAL='inf' is out of range"):
        check_environment({"WANFLOW_POLL_INTERVAL": "inf"})


@pytest.mark.parametrize("stored", [
    {"mean": 1e300, "deviation": 1e300, "count": 5}, {"mean": "1e300", "deviation": 0, "count": 1},
    {"mean": 1e308 * 10, "deviation": 1, "count": 1}, {"mean": -5, "deviation": -1, "count": 1e30},
])
def test_learned_durations_are_clamped(tmp_path, stored):
    path = tmp_path / "durations.json"
    path.write_text(json.dumps({"k": stored}).replace("Infinity", "1e999"))
    estimate = DurationBook(path).get("k")
    if estimate is None:  # not finite: dropped, the documents' pace applies
        return
    assert 0 <= estimate.mean <= MAX_SECONDS and 0 <= estimate.deviation <= MAX_SECONDS and estimate.count >= 1
    schedule = LearnedSchedule(estimate.mean, estimate.deviation, 5.0)
    assert schedule.sparse_step <= MAX_SECONDS / 3 + 5


@pytest.mark.parametrize("content", ['{"k": [1, 2]}', "[1]", "\xff\xfe", '{"k": {"mean": null}}', "[" * 50000])
def test_a_damaged_durations_file_is_ignored_and_the_paid_run_finishes(sim, project, content, tmp_path):
    server = sim()
    cache = tmp_path / "user-cache"
    (cache / "wanflow").mkdir(parents=True)
    (cache / "wanflow/durations.json").write_text(content)
    (project / "pipe.yaml").write_text(ONE)
    code, _, err = wanflow_json(["run", "pipe.yaml", "--provider", "dashscope"], project,
                                cli_env(server, SECRET, WANFLOW_CACHE_DIR=str(cache / "wanflow"), WANFLOW_POLL_INTERVAL=""),
                                timeout=60)
    assert code == 0, err
    assert server.stats()["creates"] == 1


def _wanflow(args: list[str], cwd: Path, shell_tail: str) -> subprocess.CompletedProcess[str]:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("WANFLOW")}, "PYTHONPATH": SRC,
           "WANFLOW_CONFIG": "/nonexistent/config.toml"}
    command = " ".join([sys.executable, "-m", "wanflow", *args]) + " " + shell_tail
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("args", "code"), [(["runs"], 0), (["models"], 0), (["validate", "pipe.yaml"], 0),
                                            (["validate", "missing.yaml"], 2), (["run", "pipe.yaml"], 0),
                                            (["plan", "vars.yaml", "--batch", "rows.csv"], 1),
                                            (["explain", "vars.yaml", "--batch", "rows.csv"], 1)])
@pytest.mark.parametrize("edge", ["| head -c 0; exit ${PIPESTATUS[0]}", ">&-", "2>&- >&-", "<&-",
                                  "| (sleep 0.2; head -c 1 >/dev/null); exit ${PIPESTATUS[0]}"])
def test_closed_or_broken_streams_keep_the_exit_code_and_print_no_traceback(tmp_path, args, code, edge):
    (tmp_path / "pipe.yaml").write_text(ONE)
    (tmp_path / "vars.yaml").write_text(ONE.replace("a red teapot", "'{{ vars.n }} red teapots'") + "vars: {n: 1}\n")
    (tmp_path / "rows.csv").write_text("n\n2\nmany\n")  # the second row is rejected
    done = _wanflow(args, tmp_path, edge)
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr, done.stderr
