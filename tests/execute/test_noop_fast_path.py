"""The no-op fast path (execute/noop.py): a fully cached run is done without an event loop, and it
writes exactly what the engine writes for the same rerun: the run record, ``out/`` and its
manifest, the request history, the lockfile, the batch record and the report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

import wanflow
import wanflow._api as api
import wanflow.execute.noop as noop

PAIR = """
name: pair
vars: {look: blue}
defaults: {seed: 7}
steps:
  hero: {model: wan2.6-t2i, prompt: "a lamp", params: {size: 1104*1472, n: 1}}
  edit: {model: wan2.6-image, images: ["{{ steps.hero.images[0] }}"], prompt: "make it {{ vars.look }}", params: {n: 1}}
outputs: {final: "{{ steps.edit.images[0] }}"}
"""

# What differs between any two runs: their ids, their clocks, and how long a step took.
VOLATILE = {"run_id", "started_at", "finished_at", "seconds", "at", "record", "ctime_ns", "mtime_ns", "ino", "report"}


def _stable(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _stable(item) for key, item in value.items() if key not in VOLATILE}
    if isinstance(value, list):
        return [_stable(item) for item in value]
    if isinstance(value, str) and value.startswith("20") and "Z-" in value:  # a run id inside a path or a link
        return "<run id>"
    return value


def _written(folder: Path) -> dict[str, Any]:
    """Everything a run leaves in its project, timestamps, run ids and the project's own path aside."""
    def read(path: Path) -> Any:
        return _stable(json.loads(path.read_text().replace(json.dumps(str(folder))[1:-1], "<project>")))

    # Every record, in a stable order: run ids carry only the second, and a matrix's instances start
    # together, so no order by name or time says which record is whose.
    runs = list((folder / ".wanflow" / "runs").glob("*.json"))
    state = {
        "records": sorted(json.dumps(read(path), sort_keys=True) for path in runs),
        "out": sorted(str(path.relative_to(folder / "out")) for path in (folder / "out").rglob("*")
                      if "index_files" not in path.parts),
        "history": {path.name: read(path) for path in (folder / ".wanflow" / "index").glob("*.json")},
        "lockfile": (folder / "pair.lock").read_text(),
    }
    for manifest in (folder / "out").rglob(".wanflow-manifest.json"):
        state[str(manifest.relative_to(folder))] = read(manifest)
    for record in (folder / "out").rglob("run.json"):
        state[str(record.relative_to(folder))] = read(record)
    return state


def _no_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the fully cached run started an event loop")

    monkeypatch.setattr(api.anyio, "run", refuse)


def _through_the_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(noop, "can_run_cached", lambda the_plan, workspace: False)


def _two_copies(project: Path, tmp_path_factory: pytest.TempPathFactory, text: str = PAIR) -> tuple[Path, Path]:
    """A project after its first run, twice: one copy to rerun through the engine, one by the fast path."""
    (project / "pair.yaml").write_text(text)
    assert wanflow.run(project / "pair.yaml", provider="local").ok
    engine, fast = tmp_path_factory.mktemp("engine") / "p", tmp_path_factory.mktemp("fast") / "p"
    shutil.copytree(project, engine)
    shutil.copytree(project, fast)
    return engine, fast


def _rerun_both(engine: Path, fast: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    """The same cached rerun in each copy: through the engine, and by the fast path (no event loop)."""
    with monkeypatch.context() as patch:
        _through_the_engine(patch)
        patch.chdir(engine)
        by_engine = wanflow.run(engine / "pair.yaml", provider="local")
    with monkeypatch.context() as patch:
        _no_event_loop(patch)
        patch.chdir(fast)
        by_fast_path = wanflow.run(fast / "pair.yaml", provider="local")
    return by_engine, by_fast_path


def test_a_cached_rerun_writes_what_the_engine_writes_without_an_event_loop(project, tmp_path_factory, monkeypatch):
    engine, fast = _two_copies(project, tmp_path_factory)
    by_engine, by_fast_path = _rerun_both(engine, fast, monkeypatch)
    assert isinstance(by_fast_path, wanflow.RunResult) and by_fast_path.ok
    assert [step.status for step in by_fast_path.steps.values()] == ["cached", "cached"]
    assert by_fast_path.report_path == fast / "out" / "pair" / "index.html" and by_fast_path.report_path.is_file()
    assert by_fast_path.outputs.keys() == by_engine.outputs.keys() == {"final"}
    assert _written(fast) == _written(engine)


def test_a_cached_matrix_writes_what_the_engine_writes(project, tmp_path_factory, monkeypatch):
    engine, fast = _two_copies(project, tmp_path_factory, PAIR.replace("defaults:", "matrix: {look: [blue, red]}\ndefaults:"))
    by_engine, by_fast_path = _rerun_both(engine, fast, monkeypatch)
    assert isinstance(by_fast_path, wanflow.BatchResult) and by_fast_path.ok
    assert sorted(by_fast_path.instances) == sorted(by_engine.instances) and len(by_fast_path.instances) == 2
    assert all(step.status == "cached" for one in by_fast_path.instances.values() for step in one.steps.values())
    assert _written(fast) == _written(engine)


def test_a_run_with_one_unit_to_generate_goes_through_the_engine(project, monkeypatch):
    (project / "pair.yaml").write_text(PAIR)
    assert wanflow.run(project / "pair.yaml", provider="local").ok
    _no_event_loop(monkeypatch)
    with pytest.raises(AssertionError, match="event loop"):
        wanflow.run(project / "pair.yaml", provider="local", vars={"look": "green"})  # edit must run: the engine's job
    assert wanflow.plan(project / "pair.yaml", provider="local").all_cached
    assert not wanflow.plan(project / "pair.yaml", provider="local", fresh=["edit"]).all_cached


def test_a_record_this_process_wrote_is_read_back_without_the_type_walk_until_it_changes(project, monkeypatch):
    import wanflow.state.state_files as state_files
    from wanflow.records.runs import read_record

    (project / "pair.yaml").write_text(PAIR)
    result = wanflow.run(project / "pair.yaml", provider="local", report=False)
    walked: list[Path] = []
    real = state_files.check_state
    monkeypatch.setattr(state_files, "check_state", lambda data, kind, where: walked.append(where) or real(data, kind, where))
    assert read_record(result.record_path)["status"] == "succeeded" and walked == []
    result.record_path.write_text(result.record_path.read_text().replace('"succeeded"', '"succeeded" '))  # edited by hand
    assert read_record(result.record_path)["status"] == "succeeded" and walked == [result.record_path]
    result.record_path.write_text('{"status": 5}')
    with pytest.raises(state_files.DamagedState):
        read_record(result.record_path)
