"""The Wan family beyond the first five models: text-to-video, first and last frame,
reference-to-video (and the older i2v and t2i ids), end to end.

The example chain (t2i -> edit -> kf2v, t2v, r2v) runs offline, then all cached, then on the
simulator through DashScope with the catalog's routes and field names; the vtrix ids run on the
simulator's vtrix. Every paid task is counted from the simulator's stats.
"""

from __future__ import annotations

import shutil
from fractions import Fraction
from pathlib import Path

import httpx
import pytest

import wanflow
from sim_helpers import SECRET
from wanflow.catalog.loader import load_catalog
from wanflow.media.probe import has_audio_stream, probe
from wanflow.pipelines.request import StepRequest
from wanflow.providers.shapes import build_body

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "character-story" / "character-story.yaml"


def clip(path: Path, seconds: int, side: int = 64) -> Path:
    """A small real MP4 of ``seconds`` seconds (one frame a second): a reference clip."""
    import av
    import numpy as np

    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=1)
        stream.width = stream.height = side
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, 1)
        for index in range(seconds):
            frame = av.VideoFrame.from_ndarray(np.full((side, side, 3), index * 20 % 256, np.uint8), format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


@pytest.fixture
def story(project: Path) -> Path:
    folder = project / "character-story"
    folder.mkdir()
    shutil.copy(EXAMPLE, folder / EXAMPLE.name)
    return folder / EXAMPLE.name


# --- the example chain ----------------------------------------------------------------------------

def test_the_example_chain_runs_offline_with_the_asked_shapes_then_all_cached(story):
    result = wanflow.run(story)
    assert result.ok, {step: info.error for step, info in result.steps.items()}
    assert {info.status for info in result.steps.values()} == {"ran"}
    outputs = {name: files[0].path for name, files in result.outputs.items()}
    morph, shot = probe(outputs["morph"]), probe(outputs["shot"])
    assert morph.duration == pytest.approx(5, abs=0.1)  # kf2v is fixed at 5 s
    assert (shot.width, shot.height) == (1280, 720) and shot.duration == pytest.approx(5, abs=0.1)
    assert has_audio_stream(outputs["shot"])  # wan2.6-r2v: audio defaults to true
    assert not has_audio_stream(outputs["morph"])  # the kf2v models take no audio
    again = wanflow.run(story)
    assert again.ok and {info.status for info in again.steps.values()} == {"cached"}


def test_the_kf2v_preview_morphs_from_the_first_frame_into_the_last(project):
    from PIL import Image

    from wanflow.preview.video import first_picture

    Image.new("RGB", (640, 480), (250, 20, 20)).save(project / "red.png")
    Image.new("RGB", (640, 480), (20, 20, 250)).save(project / "blue.png")
    (project / "p.yaml").write_text(
        "name: morph\nsteps:\n  m:\n    model: wan2.1-kf2v-plus\n    first_frame: red.png\n    last_frame: blue.png\n")
    result = wanflow.run(project / "p.yaml")
    assert result.ok
    video = result.steps["m"].outputs.video
    assert video is not None and video.path is not None
    import av

    with av.open(str(video.path)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    middle_row = frames[0].shape[0] // 2
    first, last = frames[0][middle_row].mean(axis=0), frames[-1][middle_row].mean(axis=0)
    assert first[0] > 150 and first[2] < 100  # red at the start
    assert last[2] > 150 and last[0] < 100  # blue at the end
    assert first_picture(video.path).size == (video.width, video.height)


def test_a_reference_clip_too_long_is_trimmed_and_the_adaptation_recorded(project):
    clip(project / "long.mp4", 34)
    (project / "p.yaml").write_text("name: trim\nsteps:\n  s:\n    model: wan2.6-r2v-flash\n"
                                    "    references: [long.mp4]\n    prompt: character1 bows\n"
                                    "    params: {size: 1280*720, duration: 5}\n")
    plan = wanflow.plan(project / "p.yaml")
    assert [unit.status for unit in plan.units["default"]] == ["run"]
    result = wanflow.run(project / "p.yaml")
    assert result.ok, {step: info.error for step, info in result.steps.items()}
    record = __import__("json").loads(result.record_path.read_text("utf-8"))
    text = __import__("json").dumps(record)
    assert "trimmed to the first 30 s" in text and "references[0]" in text
    stored = [path for path in (project / ".wanflow").rglob("*") if path.is_file() and path.stat().st_size > 1000
              and path.read_bytes()[4:8] == b"ftyp"]
    durations = sorted(round(probe(path).duration or 0) for path in stored)
    assert 30 in durations and 34 in durations  # the original kept, the trimmed copy sent


def test_the_example_runs_on_dashscope_with_the_documented_routes_and_fields(story, sim, monkeypatch):
    server = sim(task_seconds=0.2, input_fields="catalog")
    (story.parent.parent / "wanflow.toml").write_text(f'[providers.dashscope]\nbase_url = "{server.dashscope_url}"\n')
    monkeypatch.setenv("DASHSCOPE_API_KEY", SECRET)
    monkeypatch.setenv("WANFLOW_POLL_INTERVAL", "0.05")
    plan = wanflow.plan(story, provider="dashscope")
    assert plan.upper_usd == pytest.approx(0.03 + 0.03 + 5 * 0.015 + 5 * 0.10 + 5 * 0.10)
    result = wanflow.run(story, provider="dashscope", allow_paid=True, confirm=lambda *_: True)
    assert result.ok, {step: info.error for step, info in result.steps.items()}
    stats = server.stats()
    assert stats["creates"] == 5 and stats["rejected"] == 0 and stats["tasks"] == {"SUCCEEDED": 5}
    models = sorted(task.provider_model for task in server.state.tasks.values())
    assert models == ["wan2.2-kf2v-flash", "wan2.6-image", "wan2.6-r2v", "wan2.6-t2i", "wan2.6-t2v"]
    kf2v = next(task for task in server.state.tasks.values() if task.model == "wan2.2-kf2v-flash")
    assert set(kf2v.request.inputs) == {"first_frame", "last_frame"} and kf2v.request.params["duration"] == 5
    again = wanflow.run(story, provider="dashscope", allow_paid=True)
    assert {info.status for info in again.steps.values()} == {"cached"} and server.stats()["creates"] == 5


def test_vtrix_ids_run_on_the_vtrix_simulator(project, sim, monkeypatch):
    server = sim(task_seconds=0.2)
    monkeypatch.setenv("VTRIX_BASE_URL", server.url)
    monkeypatch.setenv("VTRIX_API_KEY", SECRET)
    monkeypatch.setenv("WANFLOW_POLL_INTERVAL", "0.05")
    (project / "p.yaml").write_text("""
name: vtrix-family
defaults: {seed: 5, params: {watermark: false}}
steps:
  hero: {model: wan26_t2i, prompt: a red kite, params: {n: 1, size: 1280*1280}}
  move:
    model: wan22_i2v_flash
    image: "{{ steps.hero.images[0] }}"
    params: {resolution: 480P}
  still:
    model: wan27_image_pro
    images: ["{{ steps.hero.images[0] }}"]
    prompt: the kite over a beach
    params: {n: 1, size: 1K}
  scene:
    model: wan27_r2v
    references: ["{{ steps.move.video }}"]
    prompt: character1 flies over a beach
    params: {resolution: 720P, duration: 5, audio: false}
""")
    result = wanflow.run(project / "p.yaml", provider="vtrix", allow_paid=True, confirm=lambda *_: True)
    assert result.ok, {step: info.error for step, info in result.steps.items()}
    assert sorted(task.provider_model for task in server.state.tasks.values()) == [
        "wan22_i2v_flash", "wan26_t2i", "wan27_image_pro", "wan27_r2v"]
    assert server.stats()["creates"] == 4 and server.stats()["rejected"] == 0
    scene = result.steps["scene"].outputs.video
    assert scene is not None and scene.duration == pytest.approx(5, abs=0.1)


def test_wan27_image_makes_images_from_text_alone_or_from_up_to_nine_images(project):
    from PIL import Image

    Image.new("RGB", (640, 480), (90, 160, 30)).save(project / "leaf.png")
    (project / "p.yaml").write_text(
        "name: w27\nsteps:\n  new: {model: wan2.7-image, prompt: a leaf, params: {n: 2}}\n"
        "  edit: {model: wan2.7-image, images: [leaf.png, leaf.png, leaf.png], prompt: autumn, params: {size: 2K}}\n")
    result = wanflow.run(project / "p.yaml")
    assert result.ok and len(result.steps["new"].outputs.images) == 2
    (edited,) = result.steps["edit"].outputs.images
    assert abs(edited.width * edited.height - 2048 * 2048) < 0.02 * 2048 * 2048  # the 2K tier at the input's aspect
    (project / "p.yaml").write_text("name: w27\nsteps:\n  edit: {model: wan2.7-image, images: ["
                                    + ", ".join(["leaf.png"] * 10) + "], prompt: autumn}\n")
    with pytest.raises(wanflow.PipelineError) as error:
        wanflow.load_pipeline(project / "p.yaml")
    assert "got 10 images" in str(error.value.diagnostics[0].format()) and "0 to 9" in error.value.diagnostics[0].format()


# --- request bodies from the catalog --------------------------------------------------------------

def _request(model: str, params: dict, **inputs) -> StepRequest:
    spec = load_catalog().get(model)
    assert spec is not None
    return StepRequest(step_id="s", model=spec, provider="dashscope", prompt="character1 waves",
                       negative_prompt="blur", inputs=inputs, params=spec.with_defaults(params),
                       explicit_params=frozenset(params), seed_source="step")


def test_bodies_use_the_services_field_names_and_leave_fixed_values_out():
    kf2v = build_body(_request("wan2.2-kf2v-flash", {}), "dashscope", {"first_frame": ["u1"], "last_frame": ["u2"]})
    assert kf2v["input"] == {"prompt": "character1 waves", "first_frame_url": "u1", "last_frame_url": "u2",
                             "negative_prompt": "blur"}
    assert "duration" not in kf2v["parameters"] and kf2v["parameters"]["resolution"] == "720P"
    r2v = build_body(_request("wan2.6-r2v", {"size": "1280*720"}), "dashscope", {"references": ["v1", "v2"]})
    assert r2v["input"]["reference_video_urls"] == ["v1", "v2"] and r2v["parameters"]["size"] == "1280*720"
    t2v = build_body(_request("wan2.6-t2v", {}), "dashscope", {})
    assert t2v["input"] == {"prompt": "character1 waves", "negative_prompt": "blur"}
    assert t2v["parameters"]["duration"] == 5 and t2v["parameters"]["size"] == "1920*1080"


@pytest.mark.parametrize(("knob", "field", "accepted"), [
    ("any", "reference_video_urls", True), ("any", "reference_urls", True),
    ("catalog", "reference_video_urls", True), ("catalog", "reference_urls", False),
    ("aliases", "reference_urls", True), ("aliases", "reference_video_urls", False),
])
def test_the_simulator_takes_each_documented_r2v_field_behind_a_knob(sim, tmp_path, knob, field, accepted):
    server = sim(task_seconds=0.2, input_fields=knob)
    reference = clip(tmp_path / "ref.mp4", 3)
    url = server.url + server.state.publish(reference, "video/mp4")
    body = {"model": "wan2.6-r2v", "input": {"prompt": "character1 waves", field: [url]},
            "parameters": {"size": "1280*720", "duration": 5}}
    answer = httpx.post(server.dashscope_url + "/services/aigc/video-generation/video-synthesis", json=body,
                        headers={"Authorization": f"Bearer {SECRET}", "X-DashScope-Async": "enable"}, timeout=30)
    assert (answer.status_code == 200) is accepted, answer.text
    if not accepted:
        assert "references" in answer.json()["message"]


def test_the_simulator_refuses_kf2v_on_the_text_to_video_route(sim):
    server = sim()
    body = {"model": "wan2.2-kf2v-flash", "input": {"first_frame_url": "x", "last_frame_url": "y"}, "parameters": {}}
    answer = httpx.post(server.dashscope_url + "/services/aigc/video-generation/video-synthesis", json=body,
                        headers={"Authorization": f"Bearer {SECRET}", "X-DashScope-Async": "enable"}, timeout=30)
    assert answer.status_code == 400 and "not supported by this API" in answer.json()["message"]


def test_wanflow_models_lists_every_model_by_kind_with_json(capsys):
    from wanflow.cli.main import main

    assert main(["models"]) == 0
    listing = capsys.readouterr().out
    for name in ("wan2.6-t2v", "wan2.5-t2v-preview", "wan2.2-t2v-plus", "wan2.7-t2v", "wan2.6-i2v-flash",
                 "wan2.5-i2v-preview", "wan2.2-i2v-plus", "wan2.2-i2v-flash", "wan2.6-r2v", "wan2.6-r2v-flash",
                 "wan2.7-r2v", "wan2.2-kf2v-flash", "wan2.1-kf2v-plus", "wan2.5-t2i-preview", "wan2.2-t2i-flash",
                 "wan2.2-t2i-plus", "wan22_i2v_flash", "wan27_r2v", "wan2.7-image", "wan27_image_pro"):
        assert name in listing
    assert "reference-to-video (r2v)" in listing and "first and last frame to video (kf2v)" in listing
    assert main(["models", "--json"]) == 0
    import json

    data = json.loads(capsys.readouterr().out)
    assert data["wan2.2-kf2v-flash"]["services"]["dashscope"]["path"] == "/services/aigc/image2video/video-synthesis"
    assert data["wan2.6-r2v"]["services"]["dashscope"]["fields"] == {"references": "reference_video_urls"}
    assert data["wan2.6-r2v"]["inputs"]["references"] == {"min": 1, "max": 3, "media": "video", "min_side": None,
                                                          "max_side": None, "list": True}
    assert main(["models", "wan2.2-kf2v-flash"]) == 0
    detail = capsys.readouterr().out
    assert "fixed by the model, not sent" in detail and "Estimated price" in detail
