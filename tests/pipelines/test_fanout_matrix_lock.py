"""Fan-out, matrix and batch runs, conditions, step versions, the lockfile, --frozen, --reseed and explain."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import EXAMPLES
from wanflow.cli.main import main

VARIANTS = """
name: variants
vars: {colors: [red, blue, green, gold]}
defaults: {seed: 9}
steps:
  hero: {model: wan2.6-t2i, prompt: a sneaker, params: {n: 3}}
  restyle:
    model: wan2.6-image
    for_each: "{{ steps.hero.images }}"
    images: ["{{ item }}"]
    prompt: "variant {{ index + 1 }} in watercolor"
    params: {n: 1}
  tint:
    model: wan2.6-image
    for_each: "{{ vars.colors }}"
    images: ["{{ steps.hero.images[0] }}"]
    prompt: "make it {{ item }}"
    params: {n: 1}
  sizes:
    model: wan2.6-t2i
    for_each: [1280*1280, 1104*1472]
    prompt: a sneaker poster
    params: {n: 1, size: "{{ item }}"}
  pick:
    model: wan2.6-image
    images: ["{{ steps.tint.images[1] }}", "{{ steps.restyle.items[2].images[0] }}"]
    prompt: fuse
    params: {n: 1}
outputs: {variants: "{{ steps.restyle.images }}", tints: "{{ steps.tint.images }}"}
"""


def _json_run(capsys, *args: str) -> dict:
    code = main(["run", *args, "--json"])
    out = capsys.readouterr().out
    assert code in (0, 1), out
    return json.loads(out)


def test_for_each_gives_each_item_its_own_seed_key_and_name_and_lists_in_item_order(write_pipeline, capsys, project,
                                                                                      use_instrumented_local):
    summary = _json_run(capsys, str(write_pipeline(VARIANTS)))
    assert summary["ok"]
    restyle = summary["steps"]["restyle"]
    assert len(restyle["items"]) == 3
    assert len({item["seed"] for item in restyle["items"]}) == 3
    assert len({item["cache_key"] for item in restyle["items"]}) == 3
    assert [Path(o["path"]).name for o in restyle["outputs"]] == ["restyle-1.png", "restyle-2.png", "restyle-3.png"]
    assert [o["sha256"] for o in summary["outputs"]["variants"]] == [o["sha256"] for o in restyle["outputs"]]
    # Item order: the restyle of hero image i was made from hero image i.
    record = json.loads(Path(summary["record"]).read_text())
    hero_outputs = [o["sha256"] for o in record["steps"]["hero"]["outputs"]]
    inputs = [item["request"]["inputs"]["images"][0] for item in record["steps"]["restyle"]["items"]]
    assert inputs == [f"sha256:{sha}" for sha in hero_outputs]
    sizes = [item["request"]["params"]["size"] for item in record["steps"]["sizes"]["items"]]
    assert sizes == ["1280*1280", "1104*1472"]
    pick_inputs = record["steps"]["pick"]["request"]["inputs"]["images"]
    assert pick_inputs[0] == f"sha256:{record['steps']['tint']['items'][1]['outputs'][0]['sha256']}"


def test_adding_a_fifth_item_runs_only_the_fifth(write_pipeline, capsys, use_instrumented_local):
    path = write_pipeline(VARIANTS)
    _json_run(capsys, str(path))
    use_instrumented_local.calls.clear()
    summary = _json_run(capsys, str(path), "--var", "colors=[red, blue, green, gold, pink]")
    assert [call.prompt for call in use_instrumented_local.calls] == ["make it pink"]
    assert summary["steps"]["tint"]["status"] == "ran" and summary["steps"]["pick"]["status"] == "cached"


def test_for_each_must_give_a_list(write_pipeline, capsys):
    path = write_pipeline("name: bad\nvars: {one: x}\nsteps:\n  a: {model: wan2.6-t2i, for_each: '{{ vars.one }}', prompt: x, params: {n: 1}}\n")
    assert main(["validate", str(path)]) == 2
    assert "for_each must give a list, got str" in capsys.readouterr().err


def test_when_skips_a_step_and_its_dependents_and_the_run_is_still_ok(write_pipeline, capsys, use_instrumented_local):
    text = """
    name: cond
    vars: {animate: false}
    steps:
      hero: {model: wan2.6-t2i, prompt: a kite, params: {n: 1}}
      restyle: {model: wan2.6-image, when: "{{ vars.animate }}", images: ["{{ steps.hero.images[0] }}"], prompt: x, params: {n: 1}}
      after: {model: wan2.6-image, images: ["{{ steps.restyle.images[0] }}"], prompt: y, params: {n: 1}}
    outputs: {poster: "{{ steps.hero.images[0] }}", styled: "{{ steps.after.images[0] }}"}
    """
    path = write_pipeline(text)
    summary = _json_run(capsys, str(path))
    assert summary["ok"] and set(summary["outputs"]) == {"poster"}
    assert summary["steps"]["restyle"]["status"] == "skipped" and summary["steps"]["restyle"]["condition_skipped"]
    assert "skipped by its condition" in summary["steps"]["after"]["reason"]
    assert use_instrumented_local.steps() == ["hero"]
    summary = _json_run(capsys, str(path), "--var", "animate=true")
    assert {name: step["status"] for name, step in summary["steps"].items()} == {"hero": "cached", "restyle": "ran", "after": "ran"}


def test_step_version_reruns_that_step_only(write_pipeline, capsys, use_instrumented_local):
    path = write_pipeline(VARIANTS)
    _json_run(capsys, str(path))
    use_instrumented_local.calls.clear()
    path.write_text(path.read_text().replace("  hero: {model: wan2.6-t2i, prompt: a sneaker, params: {n: 3}}",
                                             "  hero: {model: wan2.6-t2i, prompt: a sneaker, params: {n: 3}, version: 2}"))
    summary = _json_run(capsys, str(path))
    assert use_instrumented_local.steps() == ["hero"]
    assert "version: unset -> 2" in summary["steps"]["hero"]["reason"]


# --- matrix and batch ------------------------------------------------------------------------------

def test_style_matrix_example_runs_six_instances_with_the_shared_step_once(project, capsys, use_instrumented_local):
    shutil.copytree(EXAMPLES / "style-matrix", project / "style-matrix")
    summary = _json_run(capsys, str(project / "style-matrix/style-matrix.yaml"))
    assert summary["ok"] and len(summary["instances"]) == 6
    assert use_instrumented_local.steps().count("product") == 1
    assert use_instrumented_local.steps().count("styled") == 6
    prompts = sorted(call.prompt for call in use_instrumented_local.calls if call.step_id == "styled")
    assert prompts[0] == "Repaint the ceramic teapot in clay stop-motion style, lit by candlelight"
    folders = sorted(p.name for p in (project / "out/style-matrix").iterdir() if p.is_dir() and p.name != "index_files")
    assert len(folders) == 6 and "style-neon-noir_light-candlelight" in folders
    lock = json.loads((project / "style-matrix/style-matrix.lock").read_text())
    assert len(lock["instances"]) == 6


def test_matrix_include_and_exclude(write_pipeline, capsys, use_instrumented_local):
    text = """
    name: mx
    vars: {style: a, size: s}
    matrix: {style: [a, b], size: [s, l], exclude: [{style: b, size: l}], include: [{style: c, size: s}]}
    steps:
      x: {model: wan2.6-t2i, prompt: "{{ vars.style }} {{ vars.size }}", params: {n: 1}}
    """
    summary = _json_run(capsys, str(write_pipeline(text)))
    assert sorted(summary["instances"]) == ["style-a_size-l", "style-a_size-s", "style-b_size-s", "style-c_size-s"]


def test_matrix_axes_must_be_declared_vars(write_pipeline, capsys):
    path = write_pipeline("name: mx\nvars: {style: a}\nmatrix: {stlye: [a, b]}\nsteps:\n  x: {model: wan2.6-t2i, prompt: x, params: {n: 1}}\n")
    assert main(["validate", str(path)]) == 2
    assert "pipe.yaml:3:10: matrix.stlye: matrix axis 'stlye' is not a declared var" in capsys.readouterr().err


def test_batch_rows_share_the_cache_and_bad_rows_are_reported_by_line(project, capsys, use_instrumented_local):
    shutil.copytree(EXAMPLES / "batch-products", project / "bp")
    rows = project / "bp/rows.csv"
    rows.write_text("name,product,setting,animate\n"
                    "a,red sneaker,a marble pedestal,false\n"
                    "b,red sneaker,a marble pedestal,false\n"
                    "c,blue boot,wet sand,maybe\n"
                    "d,green hat,a shelf,no\n")
    code = main(["run", str(project / "bp/batch-products.yaml"), "--batch", str(rows), "--json"])
    captured = capsys.readouterr()
    assert code == 1  # one row could not run
    summary = json.loads(captured.out)
    assert sorted(summary["instances"]) == ["a", "b", "d"]
    assert summary["rejected"] == [{"row": "rows.csv:4", "problems": ["var 'animate' is a boolean; got 'maybe' (allowed: true or false)"]}]
    assert "rows.csv:4" in captured.err
    # Rows a and b ask for the same hero image: it is generated once.
    assert use_instrumented_local.steps().count("hero") == 2
    assert all(instance["steps"]["clip"]["condition_skipped"] for instance in summary["instances"].values())


def test_batch_from_jsonl(project, capsys, use_instrumented_local):
    shutil.copytree(EXAMPLES / "batch-products", project / "bp")
    rows = project / "bp/rows.jsonl"
    rows.write_text('{"product": "teapot", "animate": false}\n[1, 2]\n{"product": "lamp", "animate": false, "colour": "red"}\n')
    main(["run", str(project / "bp/batch-products.yaml"), "--batch", str(rows), "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert sorted(summary["instances"]) == ["row-1"]
    assert [r["row"] for r in summary["rejected"]] == ["rows.jsonl:2", "rows.jsonl:3"]
    assert "unknown var 'colour'" in summary["rejected"][1]["problems"][0]


# --- lockfile, --frozen, --reseed, explain -------------------------------------------------------

def _outputs(project: Path, name: str) -> dict[str, bytes]:
    root = project / "out" / name
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and p.suffix in (".png", ".mp4")}


def test_lockfile_is_sorted_and_frozen_after_a_clean_cache_reproduces_identical_bytes(project, capsys):
    shutil.copytree(EXAMPLES / "product-ad", project / "ad")
    path = project / "ad/product-ad.yaml"
    assert main(["run", str(path)]) == 0
    lock_text = (project / "ad/product-ad.lock").read_text()
    lock = json.loads(lock_text)
    assert lock_text == json.dumps(lock, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    hero = lock["instances"]["default"]["steps"]["hero"]
    assert {"seed", "model", "cache_key", "outputs", "request"} <= set(hero)
    before = _outputs(project, "product-ad")
    shutil.rmtree(project / ".wanflow")
    shutil.rmtree(project / "out")
    capsys.readouterr()
    assert main(["run", str(path), "--frozen", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert {step["status"] for step in summary["steps"].values()} == {"ran"}
    assert _outputs(project, "product-ad") == before
    assert (project / "ad/product-ad.lock").read_text() == lock_text


def test_frozen_refuses_with_a_diff_when_a_var_would_change_a_request(project, capsys, use_instrumented_local):
    shutil.copytree(EXAMPLES / "product-ad", project / "ad")
    path = project / "ad/product-ad.yaml"
    assert main(["run", str(path)]) == 0
    use_instrumented_local.calls.clear()
    capsys.readouterr()
    assert main(["run", str(path), "--frozen", "--var", "product=blue boot"]) == 2
    err = capsys.readouterr().err
    assert "--frozen: 5 request(s) would differ from product-ad.lock; nothing was run" in err
    assert "hero: prompt" in err and "beach_clip: prompt" in err
    assert use_instrumented_local.calls == []


def test_frozen_needs_a_lockfile(write_pipeline, capsys):
    assert main(["run", str(write_pipeline(VARIANTS)), "--frozen"]) == 2
    assert "--frozen needs pipe.lock" in capsys.readouterr().err


def test_explain_names_exactly_the_affected_steps_and_fields(project, capsys):
    shutil.copytree(EXAMPLES / "product-ad", project / "ad")
    path = project / "ad/product-ad.yaml"
    assert main(["run", str(path)]) == 0
    capsys.readouterr()
    assert main(["explain", str(path), "--var", "style=harsh noon light", "--json"]) == 0
    explained = {entry["step"]: entry for entry in json.loads(capsys.readouterr().out)}
    assert explained["hero"]["status"] == "run" and len(explained["hero"]["changed"]) == 1
    assert explained["hero"]["changed"][0].startswith("prompt: A red running sneaker")
    assert "{+harsh noon light+}" in explained["hero"]["changed"][0]
    assert explained["hero"]["vars"] == ["vars.style: 'soft studio light, high detail' -> 'harsh noon light'"]
    assert explained["hero"]["why"] == "changed since the lockfile"
    for step in ("beach", "city", "beach_clip", "city_clip"):
        assert explained[step]["status"] == "run-if-inputs-change" and explained[step]["changed"] == []
        assert explained[step]["why"].startswith("after ")
    # A step whose own request changed surely runs, whatever its inputs do.
    assert main(["explain", str(path), "beach_clip", "--var", "product=blue boot"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("beach_clip: would run: changed since the lockfile")
    assert "prompt" in text and "vars.product: 'red running sneaker' -> 'blue boot'" in text
    assert "hero" not in text.splitlines()[0].split(":")[0]
    # An unknown step is an error naming the steps.
    assert main(["explain", str(path), "nosuch"]) == 2
    assert "no step 'nosuch'" in capsys.readouterr().err


def test_reseed_draws_new_seeds_records_them_and_keeps_them(write_pipeline, capsys, use_instrumented_local):
    path = write_pipeline(VARIANTS)
    first = _json_run(capsys, str(path))
    use_instrumented_local.calls.clear()
    reseeded = _json_run(capsys, str(path), "--reseed", "hero")
    assert reseeded["steps"]["hero"]["seed"] != first["steps"]["hero"]["seed"]
    assert reseeded["steps"]["sizes"]["items"][0]["seed"] == first["steps"]["sizes"]["items"][0]["seed"]
    lock = json.loads(path.with_suffix(".lock").read_text())
    assert lock["instances"]["default"]["reseeded"] == {"hero": reseeded["steps"]["hero"]["seed"]}
    use_instrumented_local.calls.clear()
    again = _json_run(capsys, str(path))
    assert again["steps"]["hero"]["seed"] == reseeded["steps"]["hero"]["seed"]
    assert use_instrumented_local.calls == []


def test_fresh_in_a_matrix_regenerates_the_shared_step_once(project, capsys, use_instrumented_local):
    shutil.copytree(EXAMPLES / "style-matrix", project / "style-matrix")
    path = str(project / "style-matrix/style-matrix.yaml")
    assert _json_run(capsys, path)["ok"]
    use_instrumented_local.calls.clear()
    summary = _json_run(capsys, path, "--fresh")
    assert summary["ok"]
    assert use_instrumented_local.steps().count("product") == 1  # not once per instance
    assert use_instrumented_local.steps().count("styled") == 6
    reasons = sorted(instance["steps"]["product"]["reason"] for instance in summary["instances"].values())
    assert reasons.count("--fresh") == 1
    assert reasons.count("same request as a result this run generated") == 5


def test_plan_covers_every_batch_row_and_counts_a_shared_request_once(project, capsys, use_instrumented_local, monkeypatch):
    monkeypatch.setenv("DASHSCOPE_API_KEY", "never-used")
    monkeypatch.setenv("DASHSCOPE_HTTP_BASE_URL", "http://127.0.0.1:9/api/v1")
    shutil.copytree(EXAMPLES / "batch-products", project / "bp")
    rows = project / "bp/rows.csv"
    rows.write_text("name,product,setting,animate\n"
                    "a,red sneaker,a marble pedestal,false\n"
                    "b,red sneaker,a marble pedestal,false\n"
                    "c,blue boot,wet sand,maybe\n")
    pipeline = str(project / "bp/batch-products.yaml")
    assert main(["plan", pipeline, "--batch", str(rows), "--provider", "dashscope", "--json"]) == 1  # row c is rejected: exit 1, as run
    plan = json.loads(capsys.readouterr().out)
    assert sorted(plan["instances"]) == ["a", "b"]
    assert [r["row"] for r in plan["rejected"]] == ["rows.csv:4"]
    assert plan["instances"]["a"]["hero"]["status"] == "run"
    assert plan["instances"]["b"]["hero"]["status"] == "shared"
    assert plan["instances"]["b"]["hero"]["reason"].startswith("same request as a/hero")
    assert plan["instances"]["b"]["hero"]["estimated_cost_usd"] == 0
    per_instance = sum(step["estimated_cost_usd"] for step in plan["instances"]["a"].values())
    assert plan["estimated_cost_usd"] == pytest.approx(per_instance + sum(
        step["estimated_cost_usd"] for step in plan["instances"]["b"].values()))
    assert use_instrumented_local.calls == []  # planning generates nothing


def test_budget_counts_every_instance_of_a_batch(project, capsys, monkeypatch):
    shutil.copytree(EXAMPLES / "batch-products", project / "bp")
    rows = project / "bp/rows.csv"
    rows.write_text("product,setting,animate\n" + "".join(f"item {n},a shelf,false\n" for n in range(10)))
    monkeypatch.setenv("DASHSCOPE_API_KEY", "never-used")
    monkeypatch.setenv("DASHSCOPE_HTTP_BASE_URL", "http://127.0.0.1:9/api/v1")  # nothing listens: nothing may be sent
    pipeline = str(project / "bp/batch-products.yaml")
    main(["plan", pipeline, "--batch", str(rows), "--provider", "dashscope", "--json"])
    total = json.loads(capsys.readouterr().out)["estimated_cost_usd"]
    one = total / 10
    code = main(["run", pipeline, "--batch", str(rows), "--provider", "dashscope", "--budget", f"{one * 2:.2f}"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"estimated cost ${total:.2f} exceeds --budget" in err and "nothing was run" in err


def test_explain_on_a_matrix_names_each_instance_and_the_shared_step(project, capsys):
    shutil.copytree(EXAMPLES / "style-matrix", project / "sm")
    pipeline = str(project / "sm/style-matrix.yaml")
    assert main(["run", pipeline]) == 0
    capsys.readouterr()
    assert main(["explain", pipeline, "--var", "product=a blue vase", "--json"]) == 0
    lines = {line["step"]: line for line in json.loads(capsys.readouterr().out)}
    assert len(lines) == 12
    first = "style-watercolor_light-morning-sun/product"
    assert lines[first]["status"] == "run" and len(lines[first]["changed"]) == 1
    assert lines[first]["changed"][0].startswith("prompt: A [-ceramic teapot-] {+a blue vase+}")
    assert "vars.product: 'ceramic teapot' -> 'a blue vase'" in lines[first]["vars"]
    shared = [unit for unit, line in lines.items() if unit.endswith("/product") and line["status"] == "shared"]
    assert len(shared) == 5
