"""The finished-ad example runs offline: the ad is the two shots minus the crossfade with music, the
9:16 cut has the asked size, a rerun is all cached, and a new logo re-runs only the overlay on."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image

import wanflow
from conftest import EXAMPLES
from ops_helpers import decoded

AFTER_LOGO = ["branded", "captioned", "scored", "vertical", "social"]


@pytest.mark.slow
def test_finished_ad_runs_offline_and_reruns_only_what_a_new_logo_changes(project: Path) -> None:
    shutil.copytree(EXAMPLES / "finished-ad", project / "ad")
    path = project / "ad" / "finished-ad.yaml"
    plan = wanflow.plan(path)
    ops = [unit for unit in plan.units["default"] if unit.provider == "op"]
    assert len(ops) == 8 and all(unit.estimated_usd == 0 and unit.estimate_basis in ("a local operation: free", "run-if-inputs-change") for unit in ops)

    first = wanflow.run(path, report=False)
    assert first.ok
    ad = decoded(first.outputs["ad"][0].path)
    assert abs(ad["frames"] / ad["fps"] - 9.5) <= 1 / ad["fps"]  # 5 s + 5 s - a 0.5 s crossfade
    assert ad["audio_codec"] == "aac" and ad["video_codec"] == "h264" and ad["pix_fmt"] == "yuv420p"
    assert abs(ad["audio_seconds"] - 9.5) < 0.1
    social = decoded(first.outputs["ad_9x16"][0].path)
    assert social["size"] == (720, 1280) and social["frames"] == ad["frames"]

    again = wanflow.run(path, report=False)
    assert {step.status for step in again.steps.values()} == {"cached"}

    logo = Image.open(project / "ad" / "logo.png")
    logo.putpixel((160, 20), (0, 90, 200, 255))
    logo.save(project / "ad" / "logo.png")
    changed = wanflow.run(path, report=False)
    ran = [name for name, step in changed.steps.items() if step.status == "ran"]
    assert ran == AFTER_LOGO
