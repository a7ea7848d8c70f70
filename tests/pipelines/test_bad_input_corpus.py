"""Every file in bad_pipelines/ is rejected before anything runs: exit 2, file:line, no traceback.

Each file starts with ``# expect-line: N`` and ``# expect: <fragment of the message>``.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from wanflow.cli.main import main

CORPUS = Path(__file__).parents[1] / "bad_pipelines"
CASES = sorted(CORPUS.glob("*.yaml"))


def _expectations(path: Path) -> tuple[int, str]:
    text = path.read_bytes().decode("utf-8", "replace")  # some cases are deliberately not UTF-8
    line = int(re.search(r"^# expect-line: (\d+)$", text, re.M).group(1))
    fragment = re.search(r"^# expect: (.+)$", text, re.M).group(1)
    return line, fragment


def test_corpus_is_not_empty():
    assert len(CASES) >= 60


@pytest.mark.parametrize("case", CASES, ids=[case.stem for case in CASES])
@pytest.mark.parametrize("command", ["validate", "run"])
def test_bad_pipeline_is_rejected_clearly(case, command, capsys, use_instrumented_local, project):
    line, fragment = _expectations(case)
    started = time.process_time()  # the work this file makes us do: CPU seconds, whatever else the machine runs
    code = main([command, str(case)])
    elapsed = time.process_time() - started
    captured = capsys.readouterr()
    assert code == 2, captured.err
    assert elapsed < 2.0, f"{case.name} took {elapsed:.1f} s of CPU"
    assert "internal error" not in captured.err
    assert "Traceback" not in captured.err
    assert f"{case}:{line}:" in captured.err, captured.err
    assert fragment in captured.err, captured.err
    assert "nothing was run" in captured.err
    assert use_instrumented_local.calls == [], "no provider call for an invalid pipeline"
    assert not (project / "out").exists()
