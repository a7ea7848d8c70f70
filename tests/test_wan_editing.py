"""The editing, speech and animate members of the Wan family: VACE's five functions, and the
models that take a clip, a speech track or a driving video. Each is checked before paying,
previewed offline, and run on the simulator with the catalog's routes and field names; every paid
task is counted from the simulator's stats.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from PIL import Image

import wanflow
from sim_helpers import SECRET
from test_wan_family import _request, clip
from wanflow.media.probe import has_audio_stream
from wanflow.providers.shapes import build_body

VACE_PIPELINE = """
name: vace
defaults: {seed: 3}
steps:
  ref:
    model: wan2.1-vace-plus
    prompt: a girl walks out of a misty forest
    references: [girl.png, forest.png]
    params: {function: image_reference, obj_or_bg: [obj, bg]}
  repaint:
    model: wan2.1-vace-plus
    prompt: the same motion as a watercolour
    video: long.mp4
    params: {function: video_repainting, control_condition: depth, strength: 0.6}
  edit:
    model: wan2.1-vace-plus
    prompt: a red hat
    video: "{{ steps.ref.video }}"
    mask: girl.png
    params: {function: video_edit, mask_type: fixed}
  extend:
    model: wan2.1-vace-plus
    prompt: she keeps walking
    first_frame: girl.png
    last_frame: forest.png
    params: {function: video_extension}
  wider:
    model: wan2.1-vace-plus
    prompt: more of the forest
    video: clip.mp4
    params: {function: video_outpainting, left_scale: 1.5, right_scale: 1.5}
"""


@pytest.fixture
def vace(project: Path) -> Path:
    Image.new("RGB", (640, 480), (220, 40, 40)).save(project / "girl.png")
    Image.new("RGB", (640, 480), (30, 120, 40)).save(project / "forest.png")
    clip(project / "clip.mp4", 4)
    clip(project / "long.mp4", 8)
    (project / "vace.yaml").write_text(VACE_PIPELINE)
    return project / "vace.yaml"


def _refusal(project: Path, step: str) -> str:
    (project / "bad.yaml").write_text(f"name: bad\nsteps:\n  s: {step}\n")
    with pytest.raises(wanflow.PipelineError) as error:
        wanflow.load_pipeline(project / "bad.yaml")
    return " | ".join(diagnostic.format() for diagnostic in error.value.diagnostics)


# --- VACE ---------------------------------------------------------------------------------------

def test_each_vace_function_previews_offline_at_720p_for_5_s_silent_then_all_cached(vace):
    result = wanflow.run(vace)
    assert result.ok, {step: info.error for step, info in result.steps.items()}
    for step, info in result.steps.items():
        video = info.outputs.video
        assert video is not None and video.path is not None, step
        assert (video.width, video.height) == (1280, 720) and video.duration == pytest.approx(5, abs=0.1), step
        assert not has_audio_stream(video.path), step  # VACE makes silent videos
    record = result.record_path.read_text("utf-8")
    assert "trimmed to the first 5 s" in record  # the 8 s clip is cut to VACE's 5 s
    again = wanflow.run(vace)
    assert {info.status for info in again.steps.values()} == {"cached"}


@pytest.mark.parametrize(("step", "expected"), [
    ("{model: wan2.1-vace-plus, prompt: x, references: [girl.png]}", "needs params.function"),
    ("{model: wan2.1-vace-plus, prompt: x, video: clip.mp4, params: {function: video_edit}}",
     "needs mask: when function=video_edit"),
    ("{model: wan2.1-vace-plus, prompt: x, video: clip.mp4, params: {function: video_extension}}",
     "needs at least one of first_frame:, last_frame:, first_clip: when function is video_extension"),
    ("{model: wan2.1-vace-plus, prompt: x, video: clip.mp4, params: {function: video_repainting}}",
     "needs params.control_condition"),
    ("{model: wan2.1-vace-plus, prompt: x, params: {function: image_reference}}", "needs references:"),
    ("{model: wan2.1-vace-plus, prompt: x, references: [girl.png, girl.png, girl.png, girl.png], "
     "params: {function: image_reference}}", "got 4 references"),
    ("{model: wan2.1-vace-plus, prompt: x, references: [girl.png], params: {function: image_reference, "
     "obj_or_bg: [obj, bg]}}", "has 2 items for 1 references"),
    ("{model: wan2.1-vace-plus, prompt: x, references: [girl.png, forest.png], params: {function: image_reference, "
     "obj_or_bg: [bg, bg]}}", "has 2 'bg' (at most 1)"),
    ("{model: wan2.1-vace-plus, prompt: x, references: [girl.png], params: {function: image_reference, strength: 0.5}}",
     "strength only applies when function is video_repainting"),
    ("{model: wan2.1-vace-plus, prompt: x, video: clip.mp4, references: [girl.png], params: {function: image_reference}}",
     "does not take video:"),
    ("{model: wan2.1-vace-plus, prompt: x, video: clip.mp4, params: {function: video_outpainting, top_scale: 3}}",
     "3.0 is out of range"),
    ("{model: wan2.1-vace-plus, prompt: x, video: clip.mp4, params: {function: video_outpainting, duration: 10}}",
     "fixed at 5"),
    ("{model: wan2.1-vace-plus, prompt: x, video: clip.mp4, params: {function: video_outpainting, size: 1920*1080}}",
     "'1920*1080' is not allowed"),
])
def test_vace_rules_are_refused_before_anything_is_sent(vace, step, expected):
    assert expected in _refusal(vace.parent, step)


def test_vace_bodies_carry_function_in_input_and_each_input_under_its_field():
    request = _request("wan2.1-vace-plus", {"function": "image_reference", "obj_or_bg": ["obj", "bg"]})
    body = build_body(request, "dashscope", {"references": ["u1", "u2"]})
    assert body["input"]["function"] == "image_reference" and body["input"]["ref_images_url"] == ["u1", "u2"]
    assert "function" not in body["parameters"] and body["parameters"]["obj_or_bg"] == ["obj", "bg"]
    assert "duration" not in body["parameters"] and body["parameters"]["size"] == "1280*720"
    edit = build_body(_request("wan2.1-vace-plus", {"function": "video_edit"}), "dashscope",
                      {"video": ["v"], "mask": ["m"]})
    assert edit["input"]["video_url"] == "v" and edit["input"]["mask_image_url"] == "m"
    assert edit["parameters"]["mask_type"] == "tracking" and "strength" not in edit["parameters"]


def test_the_vace_functions_run_on_the_dashscope_simulator(vace, sim, monkeypatch):
    server = sim(task_seconds=0.2, input_fields="catalog")
    (vace.parent / "wanflow.toml").write_text(f'[providers.dashscope]\nbase_url = "{server.dashscope_url}"\n')
    monkeypatch.setenv("DASHSCOPE_API_KEY", SECRET)
    monkeypatch.setenv("WANFLOW_POLL_INTERVAL", "0.05")
    plan = wanflow.plan(vace, provider="dashscope")
    assert plan.upper_usd == pytest.approx(5 * 5 * 0.10)
    result = wanflow.run(vace, provider="dashscope", allow_paid=True, confirm=lambda *_: True)
    assert result.ok, {step: info.error for step, info in result.steps.items()}
    stats = server.stats()
    assert stats["creates"] == 5 and stats["rejected"] == 0 and stats["tasks"] == {"SUCCEEDED": 5}
    functions = sorted(task.request.params["function"] for task in server.state.tasks.values())
    assert functions == ["image_reference", "video_edit", "video_extension", "video_outpainting", "video_repainting"]
    edit = next(task for task in server.state.tasks.values() if task.request.params["function"] == "video_edit")
    assert set(edit.request.inputs) == {"video", "mask"} and edit.request.params["mask_type"] == "fixed"


@pytest.mark.parametrize(("body_input", "parameters", "message"), [
    ({"function": "video_edit", "prompt": "x"}, {}, "needs video"),
    ({"function": "video_extension", "prompt": "x"}, {}, "needs at least one of first_frame"),
    ({"prompt": "x"}, {}, "needs params.function"),
    ({"function": "image_reference", "prompt": "x"}, {"strength": 0.5}, "strength only applies"),
])
def test_the_simulator_refuses_vace_bodies_that_break_a_functions_rules(sim, body_input, parameters, message):
    server = sim()
    body = {"model": "wan2.1-vace-plus", "input": body_input, "parameters": parameters}
    answer = httpx.post(server.dashscope_url + "/services/aigc/video-generation/video-synthesis", json=body,
                        headers={"Authorization": f"Bearer {SECRET}", "X-DashScope-Async": "enable"}, timeout=30)
    assert answer.status_code == 400 and message in answer.json()["message"], answer.text
    assert not server.state.tasks  # refused before any task was made
