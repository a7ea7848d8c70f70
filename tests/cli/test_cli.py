"""The command line: commands, --json, exit codes, progress, and errors without tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import CHAIN, EXAMPLES, InstrumentedProvider
from wanflow.cli.main import main


def test_run_json_reports_every_step(write_pipeline, capsys, use_instrumented_local):
    path = write_pipeline(CHAIN)
    assert main(["run", str(path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["ok"] is True and summary["preview"] is True
    assert set(summary["steps"]) == {"hero", "edit", "other"}
    hero = summary["steps"]["hero"]
    assert hero["status"] == "ran" and len(hero["cache_key"]) == 64 and isinstance(hero["seed"], int)
    assert [Path(o["path"]).name for o in hero["outputs"]] == ["hero-1.png", "hero-2.png"]
    assert all(len(o["sha256"]) == 64 for o in hero["outputs"])
    assert Path(summary["record"]).is_file()

    assert main(["run", str(path), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert {s["status"] for s in again["steps"].values()} == {"cached"}


def test_plan_json_before_and_after_a_run(write_pipeline, capsys, use_instrumented_local):
    path = write_pipeline(CHAIN)
    assert main(["plan", str(path), "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert {k: v["status"] for k, v in plan["steps"].items()} == {"hero": "run", "edit": "run-if-inputs-change", "other": "run"}
    assert use_instrumented_local.calls == [], "plan generates nothing"
    main(["run", str(path)])
    capsys.readouterr()
    assert main(["plan", str(path)]) == 0
    text = capsys.readouterr().out
    assert "0 of 3 steps would run" in text


def test_fresh_before_the_pipeline_argument_still_works(write_pipeline, capsys, use_instrumented_local):
    path = write_pipeline(CHAIN)
    main(["run", str(path)])
    use_instrumented_local.calls.clear()
    assert main(["run", "--fresh", str(path)]) == 0
    assert sorted(use_instrumented_local.steps()) == ["edit", "hero", "other"]
    use_instrumented_local.calls.clear()
    assert main(["run", str(path), "--fresh", "other"]) == 0
    assert use_instrumented_local.steps() == ["other"]


def test_fresh_with_an_unknown_step_is_a_usage_error(write_pipeline, capsys):
    assert main(["run", str(write_pipeline(CHAIN)), "--fresh", "nope"]) == 2
    assert "fresh (--fresh): unknown step nope" in capsys.readouterr().err


def test_failed_step_exits_1_with_a_summary(write_pipeline, capsys, use_instrumented_local):
    use_instrumented_local.fail_steps = {"hero"}
    assert main(["run", str(write_pipeline(CHAIN))]) == 1
    out = capsys.readouterr().out
    assert "1 ran, 1 failed, 1 skipped" in out
    assert "injected failure for hero" in out and "upstream 'hero' failed" in out


def test_validate_and_graph(capsys):
    example = EXAMPLES / "product-ad/product-ad.yaml"
    assert main(["validate", str(example)]) == 0
    assert "ok (5 steps" in capsys.readouterr().out
    assert main(["graph", str(example)]) == 0
    assert capsys.readouterr().out.startswith("flowchart LR")


def test_var_override_from_the_command_line(write_pipeline, capsys, use_instrumented_local):
    path = write_pipeline(CHAIN)
    assert main(["run", str(path), "--var", "subject=a vase", "--json"]) == 0
    prompts = {call.step_id: call.prompt for call in use_instrumented_local.calls}
    assert prompts["hero"] == "a vase on a table"
    assert main(["run", str(path), "--var", "subject"]) == 2
    assert "--var expects key=value" in capsys.readouterr().err


def test_usage_errors_exit_2(capsys, project):
    assert main(["run"]) == 2
    assert main(["run", "missing.yaml"]) == 2
    assert "file not found: missing.yaml" in capsys.readouterr().err
    assert main(["frobnicate"]) == 2


def test_a_paid_provider_needs_a_key(write_pipeline, capsys, monkeypatch):
    monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)
    monkeypatch.setenv("WANFLOW_CONFIG", "/nonexistent/config.toml")
    assert main(["run", str(write_pipeline(CHAIN)), "--provider", "dashscope"]) == 2
    assert "needs an API key: set DASHSCOPE_API_KEY" in capsys.readouterr().err


def test_plan_and_explain_need_no_api_key(write_pipeline, capsys, monkeypatch):
    """Seeing what a paid run would cost must not require an account first."""
    monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)
    monkeypatch.setenv("WANFLOW_CONFIG", "/nonexistent/config.toml")
    monkeypatch.setenv("DASHSCOPE_HTTP_BASE_URL", "http://127.0.0.1:9/api/v1")  # nothing listens: nothing may be sent
    path = str(write_pipeline(CHAIN))
    assert main(["plan", path, "--provider", "dashscope", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["estimated_cost_usd"] > 0 and {step["provider"] for step in plan["steps"].values()} == {"dashscope"}
    assert main(["explain", path, "--provider", "dashscope"]) == 0
    assert "would run" in capsys.readouterr().out
    assert main(["run", path, "--provider", "dashscope", "--budget", "100"]) == 2  # running still needs one
    assert "needs an API key" in capsys.readouterr().err


def test_a_paid_provider_named_only_in_the_pipeline_is_not_used_without_consent(write_pipeline, capsys, monkeypatch):
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-test-not-used")
    monkeypatch.setenv("DASHSCOPE_HTTP_BASE_URL", "http://127.0.0.1:9/api/v1")  # nothing listens there
    monkeypatch.delenv("WANFLOW_ALLOW_PAID", raising=False)
    path = write_pipeline(CHAIN.replace("defaults: {seed: 42}", "defaults: {seed: 42, provider: dashscope}"))
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert "would spend money on dashscope; nothing was run" in err and "sk-test" not in err
    # Previewing it for free is always possible.
    assert main(["plan", str(path), "--provider", "local"]) == 0
    # WANFLOW_ALLOW_PAID=1 is consent.
    from wanflow.sim.server import SimServer
    from wanflow.sim.state import Knobs

    with SimServer(Knobs(task_seconds=0.05, tiny_results=True, keys=("sk-test-not-used",))) as sim:
        monkeypatch.setenv("DASHSCOPE_HTTP_BASE_URL", sim.dashscope_url)
        monkeypatch.setenv("WANFLOW_ALLOW_PAID", "1")
        monkeypatch.setenv("WANFLOW_POLL_INTERVAL", "0.02")
        assert main(["run", str(path)]) == 0, capsys.readouterr().err
        assert sim.stats()["creates"] == 3


def test_a_model_the_provider_does_not_offer_is_rejected_before_running(write_pipeline, capsys):
    path = write_pipeline("""
        name: wrongprovider
        steps:
          a: {model: wan2.5-i2i-preview, provider: vtrix, prompt: x, images: [img.png], params: {n: 1}}
        """)
    from PIL import Image

    Image.new("RGB", (500, 500)).save(path.parent / "img.png")
    assert main(["validate", str(path)]) == 2
    assert "wan2.5-i2i-preview is not offered by vtrix (allowed: providers local, dashscope)" in capsys.readouterr().err


def test_console_script_shows_no_traceback_and_plain_progress(write_pipeline, project):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    bad = project / "bad.yaml"
    bad.write_text("name: x\nsteps:\n  a: {model: nope, prompt: x}\n")
    done = subprocess.run([sys.executable, "-m", "wanflow", "run", str(bad)], capture_output=True, text=True, env=env, cwd=project)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and f"{bad}:3:" in done.stderr

    good = write_pipeline(CHAIN)
    done = subprocess.run([sys.executable, "-m", "wanflow", "run", str(good)], capture_output=True, text=True, env=env, cwd=project)
    assert done.returncode == 0, done.stderr
    # Not a terminal: one plain line per event on stderr, the summary on stdout.
    assert "hero             running   wan2.6-t2i via local" in done.stderr
    assert "chain: 3 ran" in done.stdout


def test_help_lists_commands_and_exit_codes(capsys):
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    for word in ("run", "plan", "validate", "graph", "exit codes"):
        assert word in text


def test_live_progress_on_a_terminal_shows_each_step_state(write_pipeline, use_instrumented_local):
    import io

    import wanflow
    from wanflow.cli.reporting import LiveProgress

    pipeline = wanflow.load_pipeline(write_pipeline(CHAIN))
    stream = io.StringIO()
    display = LiveProgress(pipeline, stream, force_terminal=True)
    providers = {"local": InstrumentedProvider(use_instrumented_local)}
    with display:
        result = wanflow.run(pipeline, reporter=display, providers={"local": lambda project: providers["local"]})
    assert result.ok
    screen = stream.getvalue()
    for step in ("hero", "edit", "other"):
        assert step in screen
    assert "✓ ran" in screen


def test_batch_progress_on_a_terminal_shows_instances_steps_and_queue_depth(project, use_instrumented_local):
    import io
    import shutil

    import wanflow
    from wanflow.cli.reporting import BatchProgress
    from wanflow.execute.limits import QueueState

    shutil.copytree(EXAMPLES / "style-matrix", project / "style-matrix")
    pipeline = wanflow.load_pipeline(project / "style-matrix/style-matrix.yaml")
    stream = io.StringIO()
    display = BatchProgress(pipeline.name, 6, lambda: [], stream, force_terminal=True)
    display.watch_queues = lambda queues: None  # type: ignore[method-assign]  # keep the fixed queue line below
    display.queues = lambda: [QueueState("dashscope/wan2.6-t2i", 2, 340)]
    provider = InstrumentedProvider(use_instrumented_local)
    with display:
        batch = wanflow.run(pipeline, reporter=display, providers={"local": lambda project: provider})
    assert batch.ok
    screen = stream.getvalue()
    assert "6/6 instances done (6 ok, 0 failed)" in screen
    assert "ran 7" in screen and "cached 5" in screen  # the shared upstream step ran once
    assert "dashscope/wan2.6-t2i: 2 running, 340 waiting" in screen


def test_queue_state_counts_tasks_holding_and_waiting_for_a_slot():
    import anyio

    from wanflow.execute.limits import ProviderLimits

    async def scenario() -> list:
        limits = ProviderLimits({"dashscope": {"concurrent": 2, "submits_per_second": 100}})
        release = anyio.Event()
        seen = []

        async def task() -> None:
            async with limits.slot("dashscope", "wan2.6-t2i"):
                await release.wait()

        async with anyio.create_task_group() as group:
            for _ in range(5):
                group.start_soon(task)
            await anyio.wait_all_tasks_blocked()
            seen.append(limits.queues())
            release.set()
        seen.append(limits.queues())
        return seen

    during, after = anyio.run(scenario)
    assert [(q.label, q.running, q.waiting) for q in during] == [("dashscope/wan2.6-t2i", 2, 3)]
    assert [(q.running, q.waiting) for q in after] == [(0, 0)]


def test_a_batch_without_a_terminal_prints_a_line_per_finished_instance(project, capsys, use_instrumented_local):
    import shutil

    shutil.copytree(EXAMPLES / "style-matrix", project / "style-matrix")
    assert main(["run", str(project / "style-matrix/style-matrix.yaml")]) == 0
    err = capsys.readouterr().err
    assert err.count(" done ") == 6 and "style-neon-noir_light-candlelight" in err


def test_sim_command_serves_stats_and_refuses_non_loopback(capsys, project):
    import socket
    import time

    import httpx

    assert main(["sim", "--host", "0.0.0.0"]) == 2
    assert "loopback only" in capsys.readouterr().err
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    server = subprocess.Popen([sys.executable, "-m", "wanflow", "sim", "--port", str(port), "--throttle-rps", "2"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        for _ in range(200):
            try:
                stats = httpx.get(f"http://127.0.0.1:{port}/_sim/stats").json()
                break
            except httpx.TransportError:
                time.sleep(0.05)
        assert stats["creates"] == 0 and stats["knobs"]["throttle_rps"] == 2.0
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_a_broken_config_file_is_a_clear_error(write_pipeline, project, capsys):
    (project / "wanflow.toml").write_text("[paths\nout_dir = 3\n")
    assert main(["run", str(write_pipeline(CHAIN))]) == 2
    err = capsys.readouterr().err
    assert "wanflow.toml:1:7: invalid TOML: Expected ']'" in err and "Traceback" not in err
