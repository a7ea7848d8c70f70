"""Pipeline text that is not plain UTF-8, null keys, and the words a ``when:`` accepts."""

from __future__ import annotations

import pytest

import wanflow
from wanflow.cli.main import main
from wanflow.pipelines.conditions import condition_value

PIPE = "name: y\nsteps:\n  a: {model: wan2.6-t2i, prompt: a teapot, params: {n: 1}}\n"


def test_a_utf8_byte_order_mark_is_fine(project):
    path = project / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + PIPE.encode())
    assert wanflow.load_pipeline(path).name == "y"


def test_utf16_text_is_refused_with_advice(project, capsys):
    path = project / "wide.yaml"
    path.write_bytes(PIPE.encode("utf-16"))
    assert main(["validate", str(path)]) == 2
    assert f"{path}:1:1: the file is UTF-16 text; save it as UTF-8" in capsys.readouterr().err


def test_a_vars_file_with_a_nul_byte_is_located(project, write_pipeline, capsys):
    path = write_pipeline("name: y\nvars: {product: x}\nsteps:\n  a: {model: wan2.6-t2i, prompt: '{{ vars.product }}', params: {n: 1}}\n")
    (project / "vars.yaml").write_text("product: red\0shoe\n")
    assert main(["validate", str(path), "--vars-file", "vars.yaml"]) == 2
    assert "vars.yaml:1:13: a NUL byte (\\0) is not allowed in YAML text" in capsys.readouterr().err


def test_a_null_key_anywhere_is_refused(write_pipeline, capsys):
    path = write_pipeline("name: y\nvars: {~: 1}\n" + PIPE.split("\n", 1)[1])
    assert main(["validate", str(path)]) == 2
    assert ":2:8: vars: a key must not be empty" in capsys.readouterr().err


@pytest.mark.parametrize(("value", "expected"), [
    (True, True), (False, False), (1, True), (0, False), ("yes", True), ("No", False), (" ON ", True), ("off", False),
    ("TRUE", True), ("0", False), ("1", True), ("flase", None), ("maybe", None), ("", None), (2, None), (None, None),
    (["x"], None),
])
def test_condition_words(value, expected):
    assert condition_value(value) is expected


@pytest.mark.parametrize(("when", "runs"), [("'no'", False), ("'Yes'", True), ("'{{ 1 > 2 }}'", False), ("'0'", False), ("false", False)])
def test_a_condition_decides_whether_the_step_runs(when, runs, write_pipeline, capsys, use_instrumented_local):
    path = write_pipeline(PIPE.replace("params: {n: 1}}", f"params: {{n: 1}}, when: {when}}}"))
    assert main(["run", str(path)]) == 0
    assert use_instrumented_local.steps() == (["a"] if runs else [])
