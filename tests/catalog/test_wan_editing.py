"""The editing, speech and animate members of the Wan family: VACE's five functions, and the
models that take a clip, a speech track or a driving video. Each is checked before paying,
previewed offline, and run on the simulator with the catalog's routes and field names; every paid
task is counted from the simulator's stats.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from PIL import Image
from test_wan_family import _request, clip

import wanflow
from sim_helpers import SECRET
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


# --- speech-to-video --------------------------------------------------------------------------------

S2V_PIPELINE = """
name: talk
steps:
  talk: {model: wan2.2-s2v, image: face.png, audio: speech.wav, params: {resolution: 480P}}
  sing: {model: wan2.2-s2v, image: face.png, audio: song.wav, params: {resolution: 720P}}
"""


@pytest.fixture
def s2v(project: Path) -> Path:
    from sim_helpers import wav_bytes

    Image.new("RGB", (640, 480), (200, 160, 120)).save(project / "face.png")
    (project / "speech.wav").write_bytes(wav_bytes(4.0))
    (project / "song.wav").write_bytes(wav_bytes(3.0))
    (project / "talk.yaml").write_text(S2V_PIPELINE)
    return project / "talk.yaml"


def test_s2v_previews_as_long_as_its_speech_with_the_speech_as_sound(s2v):
    result = wanflow.run(s2v)
    assert result.ok, {step: info.error for step, info in result.steps.items()}
    talk, sing = result.steps["talk"].outputs.video, result.steps["sing"].outputs.video
    assert talk is not None and sing is not None and talk.path is not None
    assert talk.duration == pytest.approx(4, abs=0.1) and sing.duration == pytest.approx(3, abs=0.1)
    assert has_audio_stream(talk.path)
    assert abs(talk.width * talk.height - 832 * 480) < 0.05 * 832 * 480  # the 480P tier at the face's aspect


def test_the_face_check_runs_before_each_paid_s2v_create_with_its_cost_in_the_plan(s2v, sim, monkeypatch):
    server = sim(task_seconds=0.2)
    (s2v.parent / "wanflow.toml").write_text(f'[providers.dashscope]\nbase_url = "{server.dashscope_url}"\n')
    monkeypatch.setenv("DASHSCOPE_API_KEY", SECRET)
    monkeypatch.setenv("WANFLOW_POLL_INTERVAL", "0.05")
    plan = wanflow.plan(s2v, provider="dashscope")
    talk = next(unit for unit in plan.units["default"] if unit.step_id == "talk")
    assert "wan2.2-s2v-detect check" in talk.estimate_basis and talk.estimated_usd == pytest.approx(4 * 0.07 + 0.0006)
    result = wanflow.run(s2v, provider="dashscope", allow_paid=True, confirm=lambda *_: True)
    assert result.ok, {step: info.error for step, info in result.steps.items()}
    stats = server.stats()
    assert stats["prechecks"] == 2 and stats["creates"] == 2 and stats["tasks"] == {"SUCCEEDED": 2}
    task = next(task for task in server.state.tasks.values() if task.request.params["resolution"] == "480P")
    assert set(task.request.inputs) == {"image", "audio"}
    assert task.request.params["duration"] == 4  # set from the speech's length
    record = result.record_path.read_text("utf-8")
    assert '"precheck"' in record and "wan2.2-s2v-detect" in record


def test_a_large_portrait_is_checked_through_an_upload_made_for_the_check_model(s2v, sim, monkeypatch):
    """An upload serves one model: the face check gets its own (and never a data: URI, which the
    check's page does not take), so a portrait over the inline limit reaches the paid create."""
    import numpy as np

    noise = np.random.default_rng(7).integers(0, 255, (1100, 1400, 3), dtype=np.uint8)
    Image.fromarray(noise).save(s2v.parent / "face.png")
    assert (s2v.parent / "face.png").stat().st_size > 1_000_000
    server = sim(task_seconds=0.2)
    (s2v.parent / "wanflow.toml").write_text(f'[providers.dashscope]\nbase_url = "{server.dashscope_url}"\n')
    monkeypatch.setenv("DASHSCOPE_API_KEY", SECRET)
    monkeypatch.setenv("WANFLOW_POLL_INTERVAL", "0.05")
    result = wanflow.run(s2v, provider="dashscope", allow_paid=True, confirm=lambda *_: True)
    assert result.ok, {step: info.error for step, info in result.steps.items()}
    stats = server.stats()
    assert stats["prechecks"] == 2 and stats["creates"] == 2 and stats["rejected"] == 0


def test_a_provider_wide_limit_does_not_lift_s2vs_one_task_at_a_time():
    from wanflow.execute.limits import ProviderLimits

    assert ProviderLimits({"dashscope": {"concurrent": 4}})._settings("dashscope", "wan2.2-s2v")[1] == 1
    assert ProviderLimits({"dashscope": {"concurrent": 4}})._settings("dashscope", "wan2.6-i2v")[1] == 4
    assert ProviderLimits({"dashscope": {"wan2.2-s2v": {"concurrent": 2}}})._settings("dashscope", "wan2.2-s2v")[1] == 2


def test_s2v_bodies_send_image_url_and_audio_url_and_no_duration():
    request = replace(_request("wan2.2-s2v", {"resolution": "480P", "duration": 4}), prompt=None, negative_prompt=None)
    body = build_body(request, "dashscope", {"image": ["i"], "audio": ["a"]})
    assert body == {"model": "wan2.2-s2v", "input": {"image_url": "i", "audio_url": "a"},
                    "parameters": {"resolution": "480P"}}


def test_a_failed_face_check_stops_before_the_paid_create(s2v, sim, monkeypatch):
    server = sim(task_seconds=0.2, face_check_fails=True)
    (s2v.parent / "wanflow.toml").write_text(f'[providers.dashscope]\nbase_url = "{server.dashscope_url}"\n')
    monkeypatch.setenv("DASHSCOPE_API_KEY", SECRET)
    result = wanflow.run(s2v, provider="dashscope", allow_paid=True, confirm=lambda *_: True)
    assert not result.ok
    error = result.steps["talk"].error or ""
    assert "did not pass the wan2.2-s2v-detect check" in error and "was not sent" in error
    assert server.stats()["prechecks"] == 2 and server.stats()["creates"] == 0 and not server.state.tasks


def test_s2v_outside_beijing_is_refused_before_anything_is_sent(s2v, monkeypatch):
    monkeypatch.setenv("DASHSCOPE_API_KEY", SECRET)
    monkeypatch.setenv("DASHSCOPE_REGION", "singapore")
    with pytest.raises(wanflow.UsageError, match=r"steps sing, talk: wan2\.2-s2v is served only in the beijing region"):
        wanflow.run(s2v, provider="dashscope", allow_paid=True, confirm=lambda *_: True)


@pytest.mark.parametrize(("step", "expected"), [
    ("{model: wan2.2-s2v, image: face.png, audio: speech.wav, prompt: hello}", "prompt: is not taken by this model"),
    ("{model: wan2.2-s2v, image: face.png}", "needs audio:"),
    ("{model: wan2.2-s2v, audio: speech.wav}", "needs image:"),
    ("{model: wan2.2-s2v, image: face.png, audio: long.wav}", "lasts 25.0 s (allowed: 1 to 20 s)"),
    ("{model: wan2.2-s2v, image: face.png, audio: speech.wav, params: {resolution: 1080P}}", "'1080P' is not allowed"),
])
def test_s2v_rules_are_refused_before_anything_is_sent(s2v, step, expected):
    from sim_helpers import wav_bytes

    (s2v.parent / "long.wav").write_bytes(wav_bytes(25.0))
    assert expected in _refusal(s2v.parent, step)


def test_s2v_runs_one_task_at_a_time_as_documented():
    from wanflow.execute.limits import ProviderLimits

    limits = ProviderLimits()
    assert limits._settings("dashscope", "wan2.2-s2v") == (2.0, 1)
    assert limits._settings("dashscope", "wan2.6-i2v") == (2.0, 2)


# --- animate ------------------------------------------------------------------------------------

ANIMATE_PIPELINE = """
name: dance
steps:
  move: {model: wan2.2-animate-move, image: hero.png, video: dance.mp4, params: {mode: wan-std}}
  mix: {model: wan2.2-animate-mix, image: hero.png, video: dance.mp4, params: {mode: wan-pro}}
"""


@pytest.fixture
def animate(project: Path) -> Path:
    Image.new("RGB", (640, 480), (40, 90, 200)).save(project / "hero.png")
    clip(project / "dance.mp4", 3)
    (project / "dance.yaml").write_text(ANIMATE_PIPELINE)
    return project / "dance.yaml"


def test_animate_previews_last_as_long_as_the_driving_clip_offline_then_run_on_the_simulator(animate, sim, monkeypatch):
    result = wanflow.run(animate)
    assert result.ok, {step: info.error for step, info in result.steps.items()}
    for step in ("move", "mix"):
        video = result.steps[step].outputs.video
        assert video is not None and video.duration == pytest.approx(3, abs=0.1), step
    server = sim(task_seconds=0.2)
    (animate.parent / "wanflow.toml").write_text(f'[providers.dashscope]\nbase_url = "{server.dashscope_url}"\n')
    monkeypatch.setenv("DASHSCOPE_API_KEY", SECRET)
    monkeypatch.setenv("WANFLOW_POLL_INTERVAL", "0.05")
    plan = wanflow.plan(animate, provider="dashscope")
    assert plan.upper_usd == pytest.approx(3 * 0.06 + 3 * 0.09)
    paid = wanflow.run(animate, provider="dashscope", allow_paid=True, confirm=lambda *_: True)
    assert paid.ok, {step: info.error for step, info in paid.steps.items()}
    assert server.stats()["creates"] == 2 and server.stats()["rejected"] == 0
    modes = sorted((task.provider_model, task.request.params["mode"]) for task in server.state.tasks.values())
    assert modes == [("wan2.2-animate-mix", "wan-pro"), ("wan2.2-animate-move", "wan-std")]
    body = build_body(replace(_request("wan2.2-animate-move", {"mode": "wan-std", "duration": 3}), prompt=None,
                              negative_prompt=None), "dashscope", {"image": ["i"], "video": ["v"]})
    assert body["input"] == {"image_url": "i", "video_url": "v"}
    assert body["parameters"] == {"check_image": True, "mode": "wan-std"}


@pytest.mark.parametrize(("step", "expected"), [
    ("{model: wan2.2-animate-move, image: hero.png, video: dance.mp4}", "needs params.mode"),
    ("{model: wan2.2-animate-mix, image: hero.png, video: dance.mp4, params: {mode: wan-max}}", "'wan-max' is not allowed"),
    ("{model: wan2.2-animate-move, image: hero.png, params: {mode: wan-std}}", "needs video:"),
    ("{model: wan2.2-animate-move, video: dance.mp4, params: {mode: wan-std}}", "needs image:"),
    ("{model: wan2.2-animate-move, image: hero.png, video: short.mp4, params: {mode: wan-std}}", "lasts 1.0 s"),
    ("{model: wan2.2-animate-move, image: hero.png, video: dance.mp4, prompt: dance, params: {mode: wan-std}}",
     "prompt: is not taken by this model"),
])
def test_animate_rules_are_refused_before_anything_is_sent(animate, step, expected):
    clip(animate.parent / "short.mp4", 1)
    assert expected in _refusal(animate.parent, step)


# --- wan2.7-i2v: the media list -------------------------------------------------------------------

I2V27_PIPELINE = """
name: i2v27
defaults: {params: {resolution: 720P}}
steps:
  morph: {model: wan2.7-i2v, prompt: dusk falls, first_frame: day.png, last_frame: night.png, audio: voice.wav,
          params: {duration: 4}}
  more: {model: wan2.7-i2v, prompt: the boat sails on, first_clip: boat.mp4, params: {audio: false}}
"""


@pytest.fixture
def i2v27(project: Path) -> Path:
    from sim_helpers import wav_bytes

    Image.new("RGB", (640, 480), (240, 200, 60)).save(project / "day.png")
    Image.new("RGB", (640, 480), (10, 10, 80)).save(project / "night.png")
    (project / "voice.wav").write_bytes(wav_bytes(4.0))
    clip(project / "boat.mp4", 3)
    (project / "i2v27.yaml").write_text(I2V27_PIPELINE)
    return project / "i2v27.yaml"


def test_wan27_i2v_bodies_are_a_media_list_built_from_the_dsl_inputs():
    body = build_body(_request("wan2.7-i2v", {"resolution": "720P"}), "dashscope",
                      {"first_frame": ["f"], "last_frame": ["l"], "audio": ["a"]})
    assert body["input"]["media"] == [{"type": "first_frame", "url": "f"}, {"type": "last_frame", "url": "l"},
                                      {"type": "driving_audio", "url": "a"}]
    assert body["parameters"]["resolution"] == "720P" and body["parameters"]["audio"] is True
    clip_body = build_body(_request("wan2.7-i2v", {}), "dashscope", {"first_clip": ["c"]})
    assert clip_body["input"]["media"] == [{"type": "first_clip", "url": "c"}]


def test_wan27_i2v_previews_offline_and_runs_on_the_dashscope_simulator(i2v27, sim, monkeypatch):
    result = wanflow.run(i2v27)
    assert result.ok, {step: info.error for step, info in result.steps.items()}
    morph, more = result.steps["morph"].outputs.video, result.steps["more"].outputs.video
    assert morph is not None and morph.path is not None and morph.duration == pytest.approx(4, abs=0.1)
    assert has_audio_stream(morph.path) and more is not None and more.path is not None and not has_audio_stream(more.path)
    server = sim(task_seconds=0.2)
    (i2v27.parent / "wanflow.toml").write_text(f'[providers.dashscope]\nbase_url = "{server.dashscope_url}"\n')
    monkeypatch.setenv("DASHSCOPE_API_KEY", SECRET)
    monkeypatch.setenv("WANFLOW_POLL_INTERVAL", "0.05")
    paid = wanflow.run(i2v27, provider="dashscope", allow_paid=True, confirm=lambda *_: True)
    assert paid.ok, {step: info.error for step, info in paid.steps.items()}
    assert server.stats()["creates"] == 2 and server.stats()["rejected"] == 0
    inputs = sorted(tuple(sorted(task.request.inputs)) for task in server.state.tasks.values())
    assert inputs == [("audio", "first_frame", "last_frame"), ("first_clip",)]


@pytest.mark.parametrize(("step", "expected"), [
    ("{model: wan2.7-i2v, prompt: x, last_frame: night.png}", "needs at least one of first_frame:, first_clip:"),
    ("{model: wan2.7-i2v, prompt: x, first_frame: day.png, first_clip: boat.mp4}", "takes first_frame or first_clip, not both"),
    ("{model: wan2.7-i2v, prompt: x, image: day.png}", "does not take image:"),
    ("{model: wan2.7-i2v, prompt: x, first_frame: day.png, params: {duration: 20}}", "20 is out of range"),
])
def test_wan27_i2v_rules_are_refused_before_anything_is_sent(i2v27, step, expected):
    assert expected in _refusal(i2v27.parent, step)


@pytest.mark.parametrize(("media", "message"), [
    ([{"type": "first_frame", "url": "x"}, {"type": "first_frame", "url": "y"}], "more than once"),
    ([{"type": "reference_voice", "url": "x"}], "media type 'reference_voice' is not supported"),
    ([{"type": "last_frame", "url": "x"}], "needs at least one of first_frame"),
])
def test_the_simulator_refuses_wan27_i2v_media_lists_that_break_a_rule(sim, media, message):
    server = sim()
    body = {"model": "wan2.7-i2v", "input": {"prompt": "x", "media": media}, "parameters": {}}
    answer = httpx.post(server.dashscope_url + "/services/aigc/video-generation/video-synthesis", json=body,
                        headers={"Authorization": f"Bearer {SECRET}", "X-DashScope-Async": "enable"}, timeout=30)
    assert answer.status_code == 400 and message in answer.json()["message"], answer.text


# --- wan2.7-videoedit and wanx2.1-imageedit --------------------------------------------------------

EDITS_PIPELINE = """
name: edits
steps:
  restyle:
    model: wan2.7-videoedit
    prompt: the whole scene in clay
    video: street.mp4
    params: {resolution: 720P}
  dress:
    model: wan2.7-videoedit
    prompt: she wears the coat from the image
    video: street.mp4
    images: [coat.png]
    params: {resolution: 720P, duration: 2, audio_setting: origin}
  painted:
    model: wanx2.1-imageedit
    prompt: as a watercolour
    image: coat.png
    params: {function: stylization_all, strength: 0.7}
  patched:
    model: wanx2.1-imageedit
    prompt: a red scarf
    image: coat.png
    mask: mask.png
    params: {function: description_edit_with_mask, n: 2}
"""


@pytest.fixture
def edits(project: Path) -> Path:
    Image.new("RGB", (640, 640), (120, 80, 40)).save(project / "coat.png")
    Image.new("RGB", (640, 640), (255, 255, 255)).save(project / "mask.png")
    clip(project / "street.mp4", 3, side=320)
    (project / "edits.yaml").write_text(EDITS_PIPELINE)
    return project / "edits.yaml"


def test_video_and_image_edits_preview_offline_and_run_on_the_dashscope_simulator(edits, sim, monkeypatch):
    result = wanflow.run(edits)
    assert result.ok, {step: info.error for step, info in result.steps.items()}
    restyle, dress = result.steps["restyle"].outputs.video, result.steps["dress"].outputs.video
    assert restyle is not None and restyle.duration == pytest.approx(3, abs=0.1)  # duration 0: the clip's length
    assert dress is not None and dress.duration == pytest.approx(2, abs=0.1)
    assert len(result.steps["patched"].outputs.images) == 2 and len(result.steps["painted"].outputs.images) == 1
    server = sim(task_seconds=0.2)
    (edits.parent / "wanflow.toml").write_text(f'[providers.dashscope]\nbase_url = "{server.dashscope_url}"\n')
    monkeypatch.setenv("DASHSCOPE_API_KEY", SECRET)
    monkeypatch.setenv("WANFLOW_POLL_INTERVAL", "0.05")
    plan = wanflow.plan(edits, provider="dashscope")
    assert plan.upper_usd == pytest.approx(3 * 0.10 + 3 * 0.10 + 0.02 + 2 * 0.02)
    paid = wanflow.run(edits, provider="dashscope", allow_paid=True, confirm=lambda *_: True)
    assert paid.ok, {step: info.error for step, info in paid.steps.items()}
    assert server.stats()["creates"] == 4 and server.stats()["rejected"] == 0
    dressed = next(task for task in server.state.tasks.values() if task.request.params.get("duration") == 2)
    assert set(dressed.request.inputs) == {"video", "images"} and dressed.request.params["audio_setting"] == "origin"
    patched = next(task for task in server.state.tasks.values() if task.request.params.get("function") == "description_edit_with_mask")
    assert set(patched.request.inputs) == {"image", "mask"}


def test_edit_bodies_carry_the_services_fields():
    videoedit = build_body(_request("wan2.7-videoedit", {"resolution": "720P"}), "dashscope",
                           {"video": ["v"], "images": ["r1", "r2"]})
    assert videoedit["input"]["media"] == [{"type": "video", "url": "v"}, {"type": "reference_image", "url": "r1"},
                                           {"type": "reference_image", "url": "r2"}]
    assert videoedit["parameters"]["duration"] == 0 and "input_seconds" not in videoedit["parameters"]
    imageedit = build_body(replace(_request("wanx2.1-imageedit", {"function": "expand", "left_scale": 1.5}),
                                   negative_prompt=None), "dashscope", {"image": ["b"]})
    assert imageedit["input"] == {"prompt": "character1 waves", "function": "expand", "base_image_url": "b"}
    assert imageedit["parameters"]["left_scale"] == 1.5 and "strength" not in imageedit["parameters"]


@pytest.mark.parametrize(("step", "expected"), [
    ("{model: wan2.7-videoedit, prompt: x}", "needs video:"),
    ("{model: wan2.7-videoedit, prompt: x, video: street.mp4, images: [coat.png, coat.png, coat.png, coat.png, coat.png]}",
     "got 5 images"),
    ("{model: wan2.7-videoedit, prompt: x, video: street.mp4, params: {duration: 12}}", "12 is not allowed"),
    ("{model: wan2.7-videoedit, prompt: x, video: street.mp4, params: {audio_setting: loud}}", "'loud' is not allowed"),
    ("{model: wanx2.1-imageedit, prompt: x, image: coat.png}", "needs params.function"),
    ("{model: wanx2.1-imageedit, prompt: x, image: coat.png, params: {function: description_edit_with_mask}}",
     "needs mask: when function=description_edit_with_mask"),
    ("{model: wanx2.1-imageedit, prompt: x, image: coat.png, params: {function: expand, strength: 0.5}}",
     "strength only applies when function is stylization_all or function is description_edit"),
    ("{model: wanx2.1-imageedit, prompt: x, image: coat.png, params: {function: super_resolution, upscale_factor: 8}}",
     "8 is out of range"),
    ("{model: wanx2.1-imageedit, prompt: x, image: coat.png, mask: mask.png, params: {function: colorization}}",
     "does not take mask:"),
])
def test_edit_rules_are_refused_before_anything_is_sent(edits, step, expected):
    assert expected in _refusal(edits.parent, step)


def test_wan27_videoedit_runs_on_the_vtrix_simulator_with_a_clip_by_url(project, sim, monkeypatch):
    server = sim(task_seconds=0.2)
    monkeypatch.setenv("VTRIX_BASE_URL", server.url)
    monkeypatch.setenv("VTRIX_API_KEY", SECRET)
    monkeypatch.setenv("WANFLOW_POLL_INTERVAL", "0.05")
    url = server.url + server.state.publish(clip(project / "street.mp4", 3), "video/mp4")
    (project / "v.yaml").write_text(f"name: v\nsteps:\n  clay:\n    model: wan27_videoedit\n    prompt: clay\n"
                                    f"    video: {url}\n    params: {{resolution: 720P, duration: 2}}\n")
    result = wanflow.run(project / "v.yaml", provider="vtrix", allow_paid=True, confirm=lambda *_: True)
    assert result.ok, {step: info.error for step, info in result.steps.items()}
    (task,) = server.state.tasks.values()
    assert task.provider_model == "wan27_videoedit" and set(task.request.inputs) == {"video"}
    video = result.steps["clay"].outputs.video
    assert video is not None and video.duration == pytest.approx(2, abs=0.1)


# --- wan2.7-image-pro: 4K only for text-to-image ----------------------------------------------------

@pytest.mark.parametrize(("step", "expected"), [
    ("{model: wan2.7-image-pro, prompt: x, images: [leaf.png], params: {size: 4K}}",
     "4K is for text-to-image only: wan2.7-image-pro takes no images with it (here 1)"),
    ("{model: wan2.7-image-pro, prompt: x, images: [leaf.png], params: {size: 3072*3072}}",
     "3072*3072 is 9,437,184 pixels in total"),
])
def test_wan27_image_pro_refuses_4k_with_input_images(project, step, expected):
    Image.new("RGB", (640, 480), (90, 160, 30)).save(project / "leaf.png")
    assert expected in _refusal(project, step)


def test_wan27_image_pro_takes_4k_and_large_sizes_for_text_to_image(project):
    Image.new("RGB", (640, 480), (90, 160, 30)).save(project / "leaf.png")
    (project / "ok.yaml").write_text("name: ok\nsteps:\n  big: {model: wan2.7-image-pro, prompt: x, params: {size: 4K}}\n"
                                     "  wide: {model: wan2.7-image-pro, prompt: x, params: {size: 3072*3072}}\n"
                                     "  edit: {model: wan2.7-image-pro, prompt: x, images: [leaf.png], params: {size: 2K}}\n")
    pipeline = wanflow.load_pipeline(project / "ok.yaml")
    assert set(pipeline.steps) == {"big", "wide", "edit"}


def test_the_simulator_refuses_a_4k_edit_on_wan27_image_pro(sim, tmp_path):
    from sim_helpers import data_uri, messages

    server = sim()
    body = {"model": "wan2.7-image-pro", "input": messages("autumn", data_uri()), "parameters": {"size": "4K"}}
    answer = httpx.post(server.dashscope_url + "/services/aigc/image-generation/generation", json=body,
                        headers={"Authorization": f"Bearer {SECRET}", "X-DashScope-Async": "enable"}, timeout=30)
    assert answer.status_code == 400 and "text-to-image only" in answer.json()["message"], answer.text
    assert not server.state.tasks


def test_wanflow_models_lists_the_newer_kinds_and_their_rules(capsys):
    from wanflow.cli.main import main

    assert main(["models"]) == 0
    listing = capsys.readouterr().out
    for name in ("wan2.1-vace-plus", "wan2.2-s2v", "wan2.2-animate-move", "wan2.2-animate-mix", "wan2.7-i2v",
                 "wan2.7-videoedit", "wanx2.1-imageedit"):
        assert name in listing, name
    for title in ("video editing functions (VACE)", "speech-to-video", "animate a character from a driving video",
                  "video editing"):
        assert title in listing
    assert main(["models", "wan2.2-s2v"]) == 0
    detail = capsys.readouterr().out
    assert "wan2.2-s2v-detect check" in detail and "set from the length of `audio`" in detail
    assert "checked against public material" in detail and "Text: none" in detail
    assert main(["models", "wan2.1-vace-plus"]) == 0
    vace = capsys.readouterr().out
    assert "at least one of `first_frame`, `last_frame`, `first_clip`" in vace and "**an estimate**" in vace


def test_a_length_set_from_an_input_cannot_be_written(s2v):
    assert "duration is set from the length of audio: leave it out" in _refusal(
        s2v.parent, "{model: wan2.2-s2v, image: face.png, audio: speech.wav, params: {duration: 4}}")
