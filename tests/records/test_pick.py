"""op: pick and `wanflow pick`: the choice lives in the lockfile beside the seeds; a new pick re-runs
only the steps after it; matrix instances are picked one by one."""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import wanflow
from wanflow.cli.main import main

PIPELINE = """
    wanflow: 1
    name: choose
    defaults: {seed: 11}
    steps:
      hero:
        model: wan2.6-t2i
        prompt: a lighthouse at dawn
        params: {size: 1024*1024, n: 3}
      best:
        op: pick
        images: "{{ steps.hero.images }}"
      sheet:
        op: contact_sheet
        images: ["{{ steps.best.images[0] }}"]
"""


def _statuses(result: wanflow.RunResult) -> dict[str, str]:
    return {name: step.status for name, step in result.steps.items()}


def test_a_new_pick_reruns_only_what_follows_and_is_versioned(project: Path, write_pipeline, capsys) -> None:
    path = write_pipeline(PIPELINE)
    first = wanflow.run(path, report=False)
    hero = first.steps["hero"].outputs.images
    assert first.steps["best"].outputs.images[0].sha256 == hero[0].sha256  # default: candidate 0
    assert main(["pick", str(path), "best", "2"]) == 0
    assert "candidate 2 of 3 candidates picked" in capsys.readouterr().out
    lock = json.loads(path.with_suffix(".lock").read_text())
    assert lock["instances"]["default"]["picked"] == {"best": 2}
    plan = wanflow.plan(path)
    assert {u.step_id: u.status for u in plan.units["default"]}["hero"] == "cached"
    second = wanflow.run(path, report=False)
    assert _statuses(second) == {"hero": "cached", "best": "ran", "sheet": "ran"}
    assert second.steps["best"].outputs.images[0].sha256 == hero[2].sha256
    assert second.steps["best"].seed_source.startswith("picked with wanflow pick")
    assert json.loads(path.with_suffix(".lock").read_text())["instances"]["default"]["picked"] == {"best": 2}
    third = wanflow.run(path, report=False)
    assert set(_statuses(third).values()) == {"cached"}
    picked = np.asarray(Image.open(second.steps["best"].outputs.images[0].path))
    assert np.array_equal(picked, np.asarray(Image.open(hero[2].path)))


@pytest.mark.parametrize(("argv", "expected"), [
    (["hero", "0"], "'hero' is not an op: pick step (pick steps: best)"),
    (["best", "3"], "best has 3 candidates; INDEX is 0 to 2"),
    (["best", "-1"], "INDEX counts from 0"),
])
def test_bad_picks_are_refused(project: Path, write_pipeline, capsys, argv: list[str], expected: str) -> None:
    path = write_pipeline(PIPELINE)
    wanflow.run(path, report=False)
    assert main(["pick", str(path), *argv]) == 2
    assert expected in capsys.readouterr().err


def test_matrix_instances_are_picked_one_by_one(project: Path, write_pipeline, capsys) -> None:
    path = write_pipeline(PIPELINE.replace("a lighthouse at dawn", "a {{ vars.place }} at dawn").replace(
        "defaults: {seed: 11}", "defaults: {seed: 11}\n    vars: {place: lighthouse}\n    matrix: {place: [lighthouse, harbour]}"))
    first = wanflow.run(path, report=False)
    names = sorted(first.instances)
    assert main(["pick", str(path), "best", "1", "--instance", names[1]]) == 0
    assert main(["pick", str(path), "best", "1", "--instance", "nowhere"]) == 2
    assert "no instance 'nowhere'" in capsys.readouterr().err
    second = wanflow.run(path, report=False)
    ran = {name: _statuses(result) for name, result in second.instances.items()}
    assert ran[names[0]] == {"hero": "cached", "best": "cached", "sheet": "cached"}
    assert ran[names[1]] == {"hero": "cached", "best": "ran", "sheet": "ran"}


def test_the_report_shows_every_candidate_the_choice_and_the_command(project: Path, write_pipeline) -> None:
    path = write_pipeline(PIPELINE)
    assert main(["pick", str(path), "best", "1"]) == 0
    result = wanflow.run(path)
    page = result.report_path.read_text("utf-8")
    section = page[page.index('<section id="picks">'):]
    section = section[:section.index("</section>")]
    for index in range(3):
        assert f"wanflow pick {path} best {index}</code>" in section  # the exact command, to copy
    assert section.count("<img") == 3
    assert '<div class="pick chosen"><b>1 ✓ chosen</b>' in section
    assert "picked with wanflow pick" in section


def test_batch_rows_are_picked_one_by_one(project: Path, write_pipeline, capsys) -> None:
    path = write_pipeline(PIPELINE.replace("a lighthouse at dawn", "a {{ vars.place }} at dawn").replace(
        "defaults: {seed: 11}", "defaults: {seed: 11}\n    vars: {place: lighthouse}"))
    rows = project / "rows.csv"
    rows.write_text("place\nlighthouse\nharbour\nmill\n")
    first = wanflow.run(path, batch=rows, report=False)
    names = sorted(first.instances)
    assert main(["pick", str(path), "best", "2", "--instance", names[1]]) == 0
    assert f"best (instance {names[1]}): candidate 2 of 3 candidates picked" in capsys.readouterr().out
    second = wanflow.run(path, batch=rows, report=False)
    ran = {name: _statuses(result) for name, result in second.instances.items()}
    assert ran[names[1]] == {"hero": "cached", "best": "ran", "sheet": "ran"}
    assert all(set(ran[name].values()) == {"cached"} for name in (names[0], names[2]))
    hero = first.instances[names[1]].steps["hero"].outputs.images
    assert second.instances[names[1]].steps["best"].outputs.images[0].sha256 == hero[2].sha256
    assert main(["pick", str(path), "best", "1", "--instance", "nowhere"]) == 2
    assert "no instance 'nowhere'" in capsys.readouterr().err


FAN_OUT = """
    wanflow: 1
    name: fanned
    defaults: {seed: 5}
    steps:
      hero:
        model: wan2.6-t2i
        prompt: "a {{ item }} on a beach"
        for_each: [lighthouse, harbour]
        params: {size: 1024*1024, n: 3}
      best:
        op: pick
        for_each: [0, 1]
        images: "{{ steps.hero.images[index * 3:index * 3 + 3] }}"
      sheet:
        op: contact_sheet
        images: "{{ steps.best.images }}"
"""


def test_each_item_of_a_pick_that_fans_out_is_picked_on_its_own(project: Path, write_pipeline, capsys) -> None:
    path = write_pipeline(FAN_OUT)
    first = wanflow.run(path, report=False)
    heroes = [image.sha256 for item in first.steps["hero"].items for image in item.outputs.images]
    assert [item.outputs.images[0].sha256 for item in first.steps["best"].items] == [heroes[0], heroes[3]]
    assert main(["pick", str(path), "best", "1"]) == 2
    assert "best fans out with for_each, so each item is picked on its own: name one as best[0], best[1], ... " \
           "(the last run had best[0], best[1])" in capsys.readouterr().err
    assert main(["pick", str(path), "best[1]", "3"]) == 2
    assert "best[1] has 3 candidates; INDEX is 0 to 2" in capsys.readouterr().err
    assert main(["pick", str(path), "best[1]", "2"]) == 0
    assert json.loads(path.with_suffix(".lock").read_text())["instances"]["default"]["picked"] == {"best[1]": 2}
    second = wanflow.run(path)
    assert [item.status for item in second.steps["best"].items] == ["cached", "ran"]
    assert _statuses(second) == {"hero": "cached", "best": "ran", "sheet": "ran"}
    assert [item.outputs.images[0].sha256 for item in second.steps["best"].items] == [heroes[0], heroes[5]]
    page = second.report_path.read_text("utf-8")
    for unit, index in (("best[1]", 0), ("best[0]", 2)):  # quoted for the shell: [ ] are glob characters
        assert html.escape(f"wanflow pick {path} '{unit}' {index}") + "</code>" in page
    assert page.count("✓ chosen") == 2


@pytest.mark.parametrize("value", ['"x"', "-1", "1.7", "true", "[1]"])
def test_a_hand_edited_pick_in_the_lockfile_is_a_clear_error_never_a_guess(project: Path, write_pipeline, capsys,
                                                                          value: str) -> None:
    path = write_pipeline(PIPELINE)
    assert wanflow.run(path, report=False).ok
    lock_file = path.with_suffix(".lock")
    lock_file.write_text(lock_file.read_text().replace('"picked": {}', "").replace(
        '"default": {', '"default": {"picked": {"best": ' + value + '}, ', 1))
    assert '"picked": {"best": ' + value in lock_file.read_text()
    capsys.readouterr()
    assert main(["plan", str(path)]) == 2
    err = capsys.readouterr().err
    assert "the lockfile's picked value of step 'best'" in err and "allowed: a whole number from 0" in err
    assert "Traceback" not in err and "internal error" not in err
