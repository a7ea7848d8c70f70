"""The runner: caching, selective re-runs, concurrency, failures, outputs and run records."""

from __future__ import annotations

import json

import wanflow
from conftest import CHAIN, TWO_BRANCHES


def test_first_run_produces_outputs_and_rerun_makes_zero_provider_calls(write_pipeline, run_with, recorder):
    path = write_pipeline(CHAIN)
    first = run_with(path)
    assert first.ok
    assert sorted(recorder.steps()) == ["edit", "hero", "other"]
    assert {step.status for step in first.steps.values()} == {"ran"}

    recorder.calls.clear()
    second = run_with(path)
    assert second.ok
    assert recorder.calls == []
    assert {step.status for step in second.steps.values()} == {"cached"}
    # Cached outputs are the same bytes as the first run's.
    assert second.outputs["final"][0].artifact.sha256 == first.outputs["final"][0].artifact.sha256


def test_changing_one_prompt_reruns_exactly_that_step_and_its_dependents(write_pipeline, run_with, recorder):
    path = write_pipeline(CHAIN)
    run_with(path)
    recorder.calls.clear()
    path.write_text(path.read_text().replace("on a table", "on a shelf"))
    result = run_with(path)
    assert sorted(recorder.steps()) == ["edit", "hero"]
    assert result.steps["other"].status == "cached"
    assert result.steps["hero"].reason.startswith("changed: prompt")


def test_a_var_override_reruns_only_steps_using_that_var(write_pipeline, run_with, recorder):
    path = write_pipeline(CHAIN)
    run_with(path)
    recorder.calls.clear()
    result = run_with(path, overrides={"subject": "a vase"})
    assert sorted(recorder.steps()) == ["edit", "hero"]
    assert result.steps["other"].status == "cached"


def test_upstream_rerun_with_identical_bytes_leaves_dependents_cached(write_pipeline, run_with, recorder):
    # Early cutoff: `hero` always regenerates (cache: false) but the preview is deterministic, so
    # its bytes are unchanged and `edit` keeps its cached result.
    path = write_pipeline(CHAIN.replace("params: {size: 1280*1280, n: 2}", "params: {size: 1280*1280, n: 2}\n    cache: false"))
    run_with(path)
    recorder.calls.clear()
    result = run_with(path)
    assert recorder.steps() == ["hero"]
    assert result.steps["hero"].reason == "cache: false on this step"
    assert result.steps["edit"].status == "cached"


def test_fresh_all_and_fresh_one_step(write_pipeline, run_with, recorder):
    path = write_pipeline(CHAIN)
    run_with(path)
    recorder.calls.clear()
    run_with(path, fresh=["other"])
    assert recorder.steps() == ["other"]
    recorder.calls.clear()
    run_with(path, fresh=True)
    assert sorted(recorder.steps()) == ["edit", "hero", "other"]


def test_independent_branches_overlap_in_time(write_pipeline, run_with, recorder):
    recorder.delay = 0.4
    result = run_with(write_pipeline(TWO_BRANCHES), jobs=4)
    assert result.ok
    left, right = sorted(recorder.calls, key=lambda call: call.step_id)
    assert left.started < right.finished and right.started < left.finished


def test_jobs_one_runs_steps_one_at_a_time(write_pipeline, run_with, recorder):
    recorder.delay = 0.2
    run_with(write_pipeline(TWO_BRANCHES), jobs=1)
    first, second = sorted(recorder.calls, key=lambda call: call.started)
    assert second.started >= first.finished


def test_a_failing_step_skips_only_its_dependents(write_pipeline, run_with, recorder):
    recorder.fail_steps = {"hero"}
    result = run_with(write_pipeline(CHAIN))
    assert not result.ok
    assert result.steps["hero"].status == "failed"
    assert "injected failure" in (result.steps["hero"].error or "")
    assert result.steps["edit"].status == "skipped"
    assert "upstream 'hero' failed" in result.steps["edit"].reason
    assert result.steps["other"].status == "ran"
    assert "final" in result.output_errors


def test_a_failed_step_does_not_lose_earlier_outputs(write_pipeline, run_with, recorder, project):
    path = write_pipeline(CHAIN)
    run_with(path)
    poster = project / "out/chain/final.png"
    before = poster.read_bytes()
    recorder.fail_steps = {"edit"}
    result = run_with(path, fresh=True)
    assert result.steps["edit"].status == "failed"
    assert poster.read_bytes() == before
    assert (project / "out/chain/steps/edit/edit-1.png").exists()


def test_seeds_are_derived_per_step_recorded_and_stable(write_pipeline, run_with, project):
    result = run_with(write_pipeline(CHAIN))
    seeds = {step_id: step.seed for step_id, step in result.steps.items()}
    assert len(set(seeds.values())) == 3
    assert all(0 <= seed <= 2_147_483_647 for seed in seeds.values())
    record = json.loads(result.record_path.read_text())
    assert {step_id: data["seed"] for step_id, data in record["steps"].items()} == seeds
    assert record["steps"]["hero"]["seed_source"] == "derived from the pipeline seed and step id"
    again = run_with(write_pipeline(CHAIN))
    assert {step_id: step.seed for step_id, step in again.steps.items()} == seeds


def test_pipeline_seed_change_changes_every_derived_seed(write_pipeline, run_with, recorder):
    path = write_pipeline(CHAIN)
    first = run_with(path)
    recorder.calls.clear()
    path.write_text(path.read_text().replace("seed: 42", "seed: 43"))
    second = run_with(path)
    assert sorted(recorder.steps()) == ["edit", "hero", "other"]
    assert all(first.steps[s].seed != second.steps[s].seed for s in first.steps)
    assert "params.seed" in second.steps["other"].reason


def test_run_record_holds_what_is_needed_to_reproduce(write_pipeline, run_with, project):
    result = run_with(write_pipeline(CHAIN))
    record = json.loads(result.record_path.read_text())
    assert record["status"] == "succeeded"
    assert record["preview"] is True and "not a Wan model output" in record["notice"]
    assert record["vars"] == {"subject": "a teapot"}
    hero = record["steps"]["hero"]
    assert hero["request"]["prompt"] == "a teapot on a table"
    assert hero["request"]["params"]["n"] == 2
    assert hero["model"] == "wan2.6-t2i" and hero["provider"] == "local"
    assert len(hero["cache_key"]) == 64
    assert [o["path"] for o in hero["outputs"]] == ["steps/hero/hero-1.png", "steps/hero/hero-2.png"]
    for output in hero["outputs"]:
        assert len(output["sha256"]) == 64 and output["media_type"] == "image/png"
    assert hero["started_at"] and hero["finished_at"]
    edit_inputs = record["steps"]["edit"]["request"]["inputs"]["images"]
    assert edit_inputs == [f"sha256:{hero['outputs'][0]['sha256']}"]
    assert (project / "out/chain/run.json").read_text() == result.record_path.read_text()


def test_outputs_are_written_with_readable_names(write_pipeline, run_with, project):
    run_with(write_pipeline(CHAIN))
    out = project / "out/chain"
    assert (out / "final.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (out / "steps/hero").iterdir()) == ["hero-1.png", "hero-2.png"]
    assert not list(out.rglob(".*.tmp-*")), "no temporary files left behind"


def test_outputs_a_step_no_longer_produces_are_removed(write_pipeline, run_with, project):
    path = write_pipeline(CHAIN)
    run_with(path)
    user_file = project / "out/chain/steps/hero/notes.txt"
    user_file.write_text("mine")
    path.write_text(path.read_text().replace("n: 2}", "n: 1}", 1))
    run_with(path)
    names = sorted(p.name for p in (project / "out/chain/steps/hero").iterdir())
    assert names == ["hero-1.png", "notes.txt"]


def test_a_corrupt_store_object_is_regenerated_not_served(write_pipeline, run_with, recorder, workspace):
    path = write_pipeline(CHAIN)
    first = run_with(path)
    obj = first.steps["other"].outputs.images[0].path
    obj.write_bytes(b"garbage")
    recorder.calls.clear()
    second = run_with(path)
    assert recorder.steps() == ["other"]
    assert second.steps["other"].reason == "its cached result is missing or damaged"
    assert workspace.store.is_intact(first.steps["other"].outputs.images[0].sha256, first.steps["other"].outputs.images[0].size)


def test_state_dir_is_configurable(write_pipeline, project, monkeypatch):
    monkeypatch.setenv("WANFLOW_STATE_DIR", str(project / "elsewhere"))
    pipeline = wanflow.load_pipeline(write_pipeline(TWO_BRANCHES))
    result = wanflow.run(pipeline)
    assert result.ok
    assert (project / "elsewhere/objects").is_dir()
    assert not (project / ".wanflow").exists()


def test_project_root_is_found_from_a_subfolder(project, write_pipeline):
    (project / "wanflow.toml").write_text('[paths]\nout_dir = "renders"\n')
    sub = project / "recipes"
    sub.mkdir()
    found = wanflow.Workspace.discover(sub)
    assert found.root == project
    assert found.out_dir == project / "renders"
    assert found.state_dir == project / ".wanflow"


def test_cache_is_shared_by_steps_with_identical_requests(write_pipeline, run_with, recorder):
    # Two steps asking for exactly the same thing (same seed too), started at the same moment:
    # one generates, the other waits for it and finds its result.
    text = TWO_BRANCHES.replace("a right thing", "a left thing").replace("n: 1}", "n: 1}\n    seed: 5")
    recorder.delay = 0.2
    result = run_with(write_pipeline(text), jobs=4)
    assert result.steps["left"].cache_key == result.steps["right"].cache_key
    assert len(recorder.calls) == 1
    assert sorted(step.status for step in result.steps.values()) == ["cached", "ran"]


def test_plan_reports_cached_run_and_maybe(write_pipeline, workspace, run_with):
    path = write_pipeline(CHAIN)
    pipeline = wanflow.load_pipeline(path)
    before = {step.step_id: step.status for step in wanflow.plan(pipeline, workspace=workspace).units["default"]}
    assert before == {"hero": "run", "edit": "run-if-inputs-change", "other": "run"}
    run_with(path)
    path.write_text(path.read_text().replace("an unrelated landscape", "a mountain"))
    after = wanflow.plan(wanflow.load_pipeline(path), workspace=workspace).units["default"]
    statuses = {step.step_id: step.status for step in after}
    assert statuses == {"hero": "cached", "edit": "cached", "other": "run"}
    other = next(step for step in after if step.step_id == "other")
    assert other.reason.startswith("changed: prompt")
