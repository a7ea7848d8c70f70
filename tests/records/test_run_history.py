"""`wanflow runs`, `runs show` and `runs diff`: the history built from the run records."""

from __future__ import annotations

import json
import os
import shutil

from conftest import CHAIN
from wanflow.cli.main import main

MATRIX = """
name: grid
vars: {subject: a kite, style: ink, light: dawn}
defaults: {seed: 3}
matrix:
  style: [ink, neon]
  light: [dawn, dusk]
steps:
  base:
    model: wan2.6-t2i
    prompt: "{{ vars.subject }}"
    params: {size: 1280*1280, n: 1}
  look:
    model: wan2.6-image
    images: ["{{ steps.base.images[0] }}"]
    prompt: "{{ vars.subject }} in {{ vars.style }} at {{ vars.light }}"
    params: {n: 1}
"""


def _runs(capsys, *extra: str) -> list[dict]:
    capsys.readouterr()
    assert main(["runs", "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_runs_lists_newest_first_and_diff_names_the_changed_var_and_prompt(write_pipeline, capsys, project):
    path = str(write_pipeline(CHAIN))
    assert main(["run", path, "--no-report"]) == 0
    assert main(["run", path, "--var", "subject=a vase", "--no-report"]) == 0
    runs = _runs(capsys)
    assert [run["pipeline"] for run in runs] == ["chain", "chain"]
    newest, older = runs
    assert newest["started_at"] >= older["started_at"]
    assert newest["steps"] == {"ran": 2, "cached": 1} and older["steps"] == {"ran": 3}
    assert newest["instances"] == 1 and newest["status"] == "succeeded" and newest["kind"] == "single"

    assert main(["runs"]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split()[:4] == ["RUN", "PIPELINE", "INST", "STATUS"]
    assert newest["id"] in table and "2/1/0" in table and "3/0/0" in table

    assert main(["runs", "diff", older["id"], newest["id"]]) == 0
    diff = capsys.readouterr().out
    assert "vars.subject: a teapot -> a vase" in diff
    assert "prompt: a [-teapot-] {+vase+} on a table" in diff
    assert "step hero:" in diff and "outputs:" in diff
    assert "step other:" not in diff, "an unchanged step is not listed"
    # One argument compares a run with the one before it.
    assert main(["runs", "diff", "latest"]) == 0
    assert capsys.readouterr().out == diff

    assert main(["runs", "diff", older["id"], newest["id"], "--json"]) == 0
    data = json.loads(capsys.readouterr().out)["instances"]["default"]
    assert data["vars"] == [{"field": "vars.subject", "before": "a teapot", "after": "a vase"}]
    words = next(change for change in data["steps"]["hero"] if change["field"] == "prompt")["words"]
    assert {"op": "+", "text": "vase"} in words and {"op": "-", "text": "teapot"} in words

    assert main(["runs", "show", "latest"]) == 0
    shown = capsys.readouterr().out
    assert newest["id"] in shown and "prompt: a vase on a table" in shown and "same request as a stored result" in shown


def test_filters_limit_and_unknown_runs(write_pipeline, capsys, project):
    path = str(write_pipeline(CHAIN))
    other = str(write_pipeline(CHAIN.replace("name: chain", "name: other"), "other.yaml"))
    assert main(["run", path, "--no-report"]) == 0
    assert main(["run", other, "--no-report"]) == 0
    assert [run["pipeline"] for run in _runs(capsys, "--pipeline", "other")] == ["other"]
    assert _runs(capsys, "--status", "failed") == []
    assert len(_runs(capsys, "--limit", "1")) == 1
    assert main(["runs", "--limit", "1"]) == 0
    assert "1 older run(s) not shown" in capsys.readouterr().out
    assert main(["runs", "show", "nope"]) == 2
    assert "no run 'nope'" in capsys.readouterr().err


def test_the_index_is_only_a_cache(write_pipeline, capsys, project):
    path = str(write_pipeline(CHAIN))
    assert main(["run", path, "--no-report"]) == 0
    before = _runs(capsys)
    index = project / ".wanflow/index/_runs.json"
    assert index.is_file()
    index.unlink()
    assert _runs(capsys) == before
    index.write_text("{not json", "utf-8")
    assert _runs(capsys) == before


def test_a_matrix_run_is_one_run_with_its_instances(write_pipeline, capsys, project):
    path = str(write_pipeline(MATRIX))
    assert main(["run", path, "--no-report"]) == 0
    (run,) = _runs(capsys)
    assert run["kind"] == "matrix" and run["instances"] == 4 and run["status"] == "succeeded"
    assert run["steps"] == {"ran": 5, "cached": 3}, "the shared base step runs once"
    batch_records = list((project / ".wanflow/runs/batches").glob("*.json"))
    assert len(batch_records) == 1
    # Records written before batch records existed are still grouped as one run.
    shutil.rmtree(project / ".wanflow/runs/batches")
    (legacy,) = _runs(capsys)
    assert legacy["instances"] == 4 and legacy["kind"] == "instances"
    assert main(["runs", "show", "latest"]) == 0
    assert "[style-neon_light-dusk]" in capsys.readouterr().out


def test_the_dead_run_check_rereads_only_records_written_since_it_last_saw_them(tmp_path):
    """The check keeps the stamps of the records it found settled: an unchanged one is not read
    again (a settled record made unreadable since stays as it is), a rewritten one is, and a
    damaged or old-style (empty) mark means reading everything."""
    from wanflow.records.abandoned import CHECKED_MARK, mark_abandoned

    runs = tmp_path / "runs"
    runs.mkdir()
    done, later = runs / "r1.json", runs / "r2.json"
    done.write_text(json.dumps({"run_id": "r1", "status": "succeeded"}))
    later.write_text(json.dumps({"run_id": "r2", "status": "succeeded"}))
    assert mark_abandoned(runs) == []
    # Proof that an unchanged stamp is not read: same size, mtime put back (a stat cache's limit,
    # as make's and DVC's; wanflow rewrites records whole, so a real rewrite changes the stamp).
    stamp = done.stat()
    done.write_text('{"run_id": "r1",   "status": "running"}')
    assert done.stat().st_size == stamp.st_size
    os.utime(done, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert mark_abandoned(runs) == []
    later.write_text(json.dumps({"run_id": "r2", "status": "running"}))  # a new stamp: read again
    assert mark_abandoned(runs) == ["r2"]
    assert json.loads(later.read_text())["status"] == "abandoned"
    for mark in (b"", b"\x00garbage", b'{"settled": 7}'):
        (runs / CHECKED_MARK).write_bytes(mark)
        done.write_text(json.dumps({"run_id": "r1", "status": "running"}))
        assert mark_abandoned(runs) == ["r1"], mark
