"""Machine-readable errors, and command-line values checked as they are parsed."""

from __future__ import annotations

import json

import pytest

from wanflow.cli.main import main

BAD = "name: j\nsteps:\n  hero:\n    model: wan2.6-t2i\n    promt: a teapot\n    params: {n: 9}\n"
GOOD = "name: j\nsteps:\n  hero: {model: wan2.6-t2i, prompt: a teapot, params: {n: 1}}\n"
FIELDS = {"file", "line", "column", "path", "message", "code", "allowed", "severity", "text"}


@pytest.mark.parametrize("command", ["validate", "plan", "run"])
def test_an_invalid_pipeline_under_json_prints_its_diagnostics_on_stdout(command, write_pipeline, capsys,
                                                                         use_instrumented_local):
    path = write_pipeline(BAD)
    assert main([command, str(path), "--json"]) == 2
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["ok"] is False and report["error"] == "invalid pipeline"
    assert all(set(item) == FIELDS for item in report["diagnostics"])
    typo = next(item for item in report["diagnostics"] if item["path"] == "steps.hero.promt")
    assert (typo["file"], typo["line"], typo["column"]) == (str(path), 5, 5)
    assert "did you mean 'prompt'" in typo["message"]
    assert "nothing was run" in captured.err  # people still read stderr
    assert use_instrumented_local.calls == []


def test_a_service_code_is_in_the_json(write_pipeline, capsys):
    path = write_pipeline(BAD.replace("promt", "prompt"))
    assert main(["validate", str(path), "--json"]) == 2
    item = json.loads(capsys.readouterr().out)["diagnostics"][0]
    assert item["path"] == "steps.hero.params.n" and item["code"] == "001015008" and item["line"] == 6


def test_validate_json_on_a_valid_pipeline(write_pipeline, capsys):
    path = write_pipeline(GOOD)
    assert main(["validate", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"ok": True, "file": str(path), "steps": ["hero"], "warnings": []}


def test_a_usage_error_under_json_is_json_too(write_pipeline, capsys):
    path = write_pipeline(GOOD)
    assert main(["plan", str(path), "--json", "--fresh", "nope"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["error"] == "usage" and "unknown step nope" in report["diagnostics"][0]["message"]


@pytest.mark.parametrize(("argv", "message"), [
    (["run", "{path}", "--jobs", "0"], "argument --jobs/-j: must be at least 1, got 0"),
    (["run", "{path}", "-j", "two"], "argument --jobs/-j: expected a whole number, got 'two'"),
    (["run", "{path}", "--budget", "-1"], "argument --budget: must be a number of at least 0, got '-1'"),
    (["run", "{path}", "--budget", "nan"], "argument --budget: must be a number of at least 0, got 'nan'"),
    (["cache", "gc", "--keep-days", "-1"], "argument --keep-days: must be a number of at least 0, got '-1'"),
    (["plan", "{path}", "--batch-delimiter", ";;"], "';;' is not a delimiter"),
])
def test_command_line_values_are_checked(argv, message, write_pipeline, capsys, use_instrumented_local):
    path = write_pipeline(GOOD)
    assert main([part.format(path=path) for part in argv]) == 2
    assert message in capsys.readouterr().err
    assert use_instrumented_local.calls == []
