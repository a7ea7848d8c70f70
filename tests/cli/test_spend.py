"""Money in sight: confirmation above a threshold before a paid run, and the cost after it."""

from __future__ import annotations

import io

import pytest

from conftest import CHAIN
from wanflow._exceptions import UsageError
from wanflow.cli.main import main
from wanflow.cli.spend import confirm_spend, confirm_threshold, cost_lines
from wanflow.records.results import RunResult, StepResult


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_threshold_from_env_config_or_default(monkeypatch):
    monkeypatch.delenv("WANFLOW_CONFIRM_ABOVE", raising=False)
    assert confirm_threshold({}) == 5.0
    assert confirm_threshold({"run": {"confirm_above_usd": 12}}) == 12.0
    monkeypatch.setenv("WANFLOW_CONFIRM_ABOVE", "0.5")
    assert confirm_threshold({"run": {"confirm_above_usd": 12}}) == 0.5
    monkeypatch.setenv("WANFLOW_CONFIRM_ABOVE", "lots")
    with pytest.raises(UsageError):
        confirm_threshold({})


def test_confirmation_rules():
    pipe = io.StringIO()
    confirm_spend(4.0, 5.0, yes=False, budget=None, stdin=pipe, stderr=pipe)  # under the threshold
    confirm_spend(9.0, 5.0, yes=True, budget=None, stdin=pipe, stderr=pipe)
    confirm_spend(9.0, 5.0, yes=False, budget=10.0, stdin=pipe, stderr=pipe)
    with pytest.raises(UsageError, match="no terminal to ask; pass --yes, or --budget"):
        confirm_spend(9.0, 5.0, yes=False, budget=None, stdin=pipe, stderr=pipe)
    asked = Terminal()
    confirm_spend(9.0, 5.0, yes=False, budget=None, stdin=Terminal("y\n"), stderr=asked)
    assert "estimated at $9.00" in asked.getvalue() and "[y/N]" in asked.getvalue()
    with pytest.raises(UsageError, match="not confirmed"):
        confirm_spend(9.0, 5.0, yes=False, budget=None, stdin=Terminal("\n"), stderr=Terminal())


def test_a_costly_paid_run_is_refused_without_a_terminal(write_pipeline, capsys, monkeypatch):
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-test")
    monkeypatch.setenv("WANFLOW_CONFIG", "/nonexistent/config.toml")
    monkeypatch.setenv("DASHSCOPE_HTTP_BASE_URL", "http://127.0.0.1:9/api/v1")  # nothing listens: nothing may be sent
    monkeypatch.setenv("WANFLOW_CONFIRM_ABOVE", "0.01")
    monkeypatch.setattr("sys.stdin", io.StringIO())
    assert main(["run", str(write_pipeline(CHAIN)), "--provider", "dashscope"]) == 2
    err = capsys.readouterr().err
    assert "over the $0.01 confirmation threshold" in err and "Nothing was run" in err


def _step(step_id: str, provider: str, estimated: float, cost: float, source: str) -> StepResult:
    step = StepResult(step_id, "wan2.6-t2i", provider=provider, status="ran", estimated_usd=estimated)
    step.provider_info = {"cost_usd": cost, "cost_source": source}
    return step


def test_cost_after_a_paid_run():
    result = RunResult("r", "p", {
        "a": _step("a", "vtrix", 0.06, 0.05, "reported by the service"),
        "b": _step("b", "dashscope", 0.5, 0.5, "estimated from list prices (the service reports none)"),
    })
    lines = cost_lines([result], {"vtrix", "dashscope"})
    assert lines[0] == "cost: estimated $0.56 before the run (list prices) for 2 paid task(s)"
    assert "reported by the service: $0.05 for 1 task(s); 1 task(s) reported no cost" in lines[1]
    free = RunResult("r", "p", {"a": _step("a", "local", 0.0, 0.0, "")})
    assert cost_lines([free], {"vtrix", "dashscope"}) == []


def test_a_paid_run_prints_its_estimated_and_reported_cost(write_pipeline, capsys, monkeypatch, project):
    """Against the simulator over loopback: the summary ends with what the run cost."""
    from sim_helpers import running

    monkeypatch.setenv("WANFLOW_POLL_INTERVAL", "0.05")
    monkeypatch.setenv("WANFLOW_CONFIG", "/nonexistent/config.toml")
    path = write_pipeline("""
        name: paid
        defaults: {seed: 3}
        steps:
          hero: {model: wan2.6-t2i, prompt: a lighthouse at dusk, params: {size: 1280*1280, n: 1}}
        """)
    with running(project) as sim:
        monkeypatch.setenv("VTRIX_BASE_URL", sim.url)
        monkeypatch.setenv("VTRIX_API_KEY", "sim-key")
        assert main(["run", str(path), "--provider", "vtrix"]) == 0
    out = capsys.readouterr().out
    assert "cost: estimated $0.03 before the run (list prices) for 1 paid task(s)" in out
    assert "reported by the service: $" in out
    assert (project / "out/paid/index.html").is_file()
