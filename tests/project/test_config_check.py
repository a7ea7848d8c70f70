"""wanflow.toml is checked before anything uses it: every file in bad_configs/ is a located exit 2.

Each file starts with ``# expect-line: N`` and ``# expect: <fragment of the message>``.
"""

from __future__ import annotations

import re
import shutil
import tomllib
from pathlib import Path

import pytest

from wanflow.cli.main import main

CORPUS = Path(__file__).parents[1] / "bad_configs"
CASES = sorted(CORPUS.glob("*.toml"))
PIPE = "name: c\nsteps:\n  a: {model: wan2.6-t2i, prompt: a teapot, params: {n: 1}}\n"


def _expectations(path: Path) -> tuple[int, str]:
    text = path.read_text("utf-8")
    line = re.search(r"^# expect-line: (\d+)$", text, re.M)
    fragment = re.search(r"^# expect: (.+)$", text, re.M)
    assert line and fragment, path
    return int(line.group(1)), fragment.group(1)


@pytest.mark.parametrize("case", CASES, ids=[case.stem for case in CASES])
@pytest.mark.parametrize("command", ["validate", "plan", "run"])
def test_a_bad_config_is_refused_with_its_line(case, command, project, write_pipeline, capsys, use_instrumented_local):
    line, fragment = _expectations(case)
    shutil.copy(case, project / "wanflow.toml")
    path = write_pipeline(PIPE)
    code = main([command, str(path)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"{project / 'wanflow.toml'}:{line}:" in err, err
    assert fragment in err, err
    assert "Traceback" not in err and "internal error" not in err
    assert use_instrumented_local.calls == []
    assert not (project / "out").exists()


def test_a_key_is_never_echoed(project, write_pipeline, capsys):
    shutil.copy(CORPUS / "api_key_in_project.toml", project / "wanflow.toml")
    main(["validate", str(write_pipeline(PIPE)), "--json"])
    captured = capsys.readouterr()
    assert "sk-not-a-real-key" not in captured.out + captured.err


def test_a_good_config_passes(project, write_pipeline, capsys, use_instrumented_local):
    (project / "wanflow.toml").write_text(
        '[paths]\nout_dir = "build"\n[run]\njobs = 2\n'
        '[limits.dashscope]\nconcurrent = 1\nsubmits_per_second = 0.5\n[limits.dashscope."wan2.6-i2v"]\nconcurrent = 1\n'
        '[prices."wan2.6-t2i"]\nusd = 0\n[prices."wan2.6-i2v".usd_by.resolution]\n"720P" = 0.1\n"1080P" = 0.2\n'
        '[providers.vtrix]\nenvelope = "gateway"\ngateway_url = "https://gateway.example"\n')
    path = write_pipeline(PIPE)
    assert main(["validate", str(path)]) == 0
    assert main(["run", str(path)]) == 0
    assert (project / "build/c").is_dir()


def test_every_setting_wanflow_init_writes_is_accepted():
    from wanflow.project.config_check import check_config
    from wanflow.project.init import CONFIG

    text = re.sub(r"^# ?(\[|\w+ = |\"\w+\" = )", r"\1", CONFIG, flags=re.M)  # uncomment every example
    config = tomllib.loads(text)
    assert config["run"] and config["prices"] and config["limits"] and config["providers"]
    assert check_config(config, text, "wanflow.toml") == []
