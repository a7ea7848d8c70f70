"""The official DashScope Python SDK runs unchanged against the simulator.

The SDK is an independent reading of the service: whatever it sends (paths, headers, bodies, the
temporary-upload flow for local files) the simulator must accept, and what it answers the SDK
must understand. Nothing here patches the SDK; only its base URL and key are set, as a user would.
"""

from __future__ import annotations

import datetime as dt
from http import HTTPStatus
from pathlib import Path

import httpx
import pytest
from PIL import Image

from sim_helpers import KEY, running, wav_bytes

dashscope = pytest.importorskip("dashscope", reason="the official DashScope SDK is not installed (pip install dashscope)")
image_generation = pytest.importorskip("dashscope.aigc.image_generation",
                                       reason="this DashScope SDK has no ImageGeneration (wan2.6 image models); upgrade it")
ImageGeneration = image_generation.ImageGeneration
ImageSynthesis = dashscope.ImageSynthesis
VideoSynthesis = dashscope.VideoSynthesis


@pytest.fixture
def sdk_sim(tmp_path, monkeypatch):
    """Start a simulator and point the SDK at it (base URL and key, nothing else)."""
    servers = []

    def start(**knobs):
        server = running(tmp_path, **{"task_seconds": 0.3, **knobs})
        sim = server.__enter__()
        servers.append(server)
        monkeypatch.setenv("DASHSCOPE_HTTP_BASE_URL", sim.dashscope_url)
        monkeypatch.setattr(dashscope, "base_http_api_url", sim.dashscope_url)
        monkeypatch.setattr(dashscope, "api_key", KEY)
        return sim

    yield start
    for server in servers:
        server.__exit__(None, None, None)


@pytest.fixture
def media(tmp_path) -> dict[str, Path]:
    """Local files, as a user hands them to the SDK (it uploads them through the policy flow)."""
    photo, frame, voice = tmp_path / "photo.png", tmp_path / "frame.png", tmp_path / "voice.wav"
    Image.new("RGB", (640, 480), (30, 120, 200)).save(photo)
    Image.new("RGB", (768, 432), (200, 120, 30)).save(frame)
    voice.write_bytes(wav_bytes(4.0))
    return {"photo": photo, "frame": frame, "voice": voice}


def _ok(response) -> None:
    assert response.status_code == HTTPStatus.OK, f"{response.code}: {response.message}"


def _content(response) -> list[dict]:
    return list(response.output.choices[0].message.content)


def test_t2i_plain_call_uses_the_synchronous_endpoint(sdk_sim):
    sim = sdk_sim()
    messages = [{"role": "user", "content": [{"text": "a lighthouse at dusk"}]}]
    response = ImageGeneration.call(model="wan2.6-t2i", api_key=KEY, messages=messages, n=1, size="1280*1280")
    _ok(response)
    images = [item["image"] for item in _content(response) if item.get("type") == "image"]
    assert len(images) == 1 and httpx.get(images[0]).status_code == 200
    # The async pair goes through a task.
    task = ImageGeneration.async_call(model="wan2.6-t2i", api_key=KEY, messages=messages, n=2)
    _ok(task)
    assert task.output.task_status == "PENDING"
    done = ImageGeneration.wait(task, api_key=KEY)
    _ok(done)
    assert done.output.task_status == "SUCCEEDED" and len(_content(done)) == 2
    stats = sim.stats()
    assert stats["sync_calls"] == 1 and stats["creates"] == 2 and stats["rejected"] == 0


def test_image_edit_uploads_a_local_file(sdk_sim, media):
    sim = sdk_sim()
    messages = [{"role": "user", "content": [{"text": "make the sky green"}, {"image": f"file://{media['photo']}"}]}]
    response = ImageGeneration.async_call(model="wan2.6-image", api_key=KEY, messages=messages, n=1)
    _ok(response)
    done = ImageGeneration.wait(response, api_key=KEY)
    _ok(done)
    assert [item["type"] for item in _content(done)] == ["image"]
    stats = sim.stats()
    assert stats["upload_policies"] == 1 and stats["uploads"] == 1 and stats["inputs_by_oss"] == 1


def test_interleaved_text_and_images(sdk_sim):
    sdk_sim()
    messages = [{"role": "user", "content": [{"text": "a three-step recipe for tea"}]}]
    task = ImageGeneration.async_call(model="wan2.6-image", api_key=KEY, messages=messages, enable_interleave=True,
                                      max_images=2, n=1)
    _ok(task)
    done = ImageGeneration.wait(task, api_key=KEY)
    _ok(done)
    kinds = [item["type"] for item in _content(done)]
    assert "text" in kinds and 1 <= kinds.count("image") <= 2


def test_wan25_i2i_preview_with_a_local_image(sdk_sim, media):
    sim = sdk_sim()
    response = ImageSynthesis.call(model="wan2.5-i2i-preview", api_key=KEY, prompt="put the cup on a table",
                                   images=[f"file://{media['photo']}"], n=1, watermark=False, seed=12345)
    _ok(response)
    assert response.output.task_status == "SUCCEEDED" and len(response.output.results) == 1
    assert httpx.get(response.output.results[0].url).status_code == 200
    assert response.output.task_metrics == {"TOTAL": 1, "SUCCEEDED": 1, "FAILED": 0}
    assert response.usage.image_count == 1 and sim.stats()["inputs_by_oss"] == 1


def test_i2v_with_a_local_audio_file(sdk_sim, media):
    sim = sdk_sim()
    response = VideoSynthesis.call(model="wan2.6-i2v", api_key=KEY, prompt="a slow push-in",
                                   img_url=f"file://{media['frame']}", audio_url=f"file://{media['voice']}",
                                   resolution="720P", duration=2)
    _ok(response)
    assert response.output.task_status == "SUCCEEDED"
    assert httpx.get(response.output.video_url, timeout=60).content[4:8] == b"ftyp"
    stats = sim.stats()
    assert stats["uploads"] == 2 and stats["inputs_by_oss"] == 2  # the frame and the audio
    assert sorted(key.rsplit("/", 1)[-1] for key in sim.state.objects) == ["frame.png", "voice.wav"]


def test_cancel_a_pending_task(sdk_sim):
    sdk_sim(task_seconds=30)
    messages = [{"role": "user", "content": [{"text": "a lighthouse"}]}]
    task = ImageGeneration.async_call(model="wan2.6-t2i", api_key=KEY, messages=messages, n=1)
    _ok(task)
    _ok(ImageGeneration.cancel(task, api_key=KEY))
    fetched = ImageGeneration.fetch(task, api_key=KEY)
    _ok(fetched)
    assert fetched.output.task_status == "CANCELED"
    assert ImageGeneration.cancel(task, api_key=KEY).status_code == HTTPStatus.BAD_REQUEST  # only PENDING tasks


def test_list_in_the_service_clock(sdk_sim):
    sdk_sim(task_seconds=30, list_clock_offset="+08:00")
    messages = [{"role": "user", "content": [{"text": "a lighthouse"}]}]
    task_id = ImageGeneration.async_call(model="wan2.6-t2i", api_key=KEY, messages=messages, n=1).output.task_id
    beijing = dt.datetime.now(dt.timezone(dt.timedelta(hours=8)))
    listed = ImageGeneration.list(start_time=(beijing - dt.timedelta(minutes=5)).strftime("%Y%m%d%H%M%S"),
                                  end_time=(beijing + dt.timedelta(minutes=5)).strftime("%Y%m%d%H%M%S"),
                                  model_name="wan2.6-t2i", api_key=KEY)
    _ok(listed)
    assert [item["task_id"] for item in listed.output["data"]] == [task_id] and listed.output["total"] == 1
    refused = ImageGeneration.list(start_time=beijing.isoformat(), api_key=KEY)
    assert refused.status_code == HTTPStatus.BAD_REQUEST and refused.code == "InvalidParameter"


def test_wait_keeps_polling_through_suspended(sdk_sim):
    sim = sdk_sim(task_seconds=1.9, suspend_rate=1.0)  # SUSPENDED from 0.57 s to 1.71 s: the poll at ~1 s sees it
    messages = [{"role": "user", "content": [{"text": "a lighthouse"}]}]
    done = ImageGeneration.wait(ImageGeneration.async_call(model="wan2.6-t2i", api_key=KEY, messages=messages, n=1),
                                api_key=KEY)
    _ok(done)
    assert done.output.task_status == "SUCCEEDED" and sim.stats()["suspended_polls"] >= 1


def test_wait_gives_up_on_a_throttled_poll(sdk_sim):
    """As the README says of the SDK: a 429 while polling ends its wait (only 503/504 are retried)."""
    sdk_sim(task_seconds=30, poll_throttle_rps=0.5)
    messages = [{"role": "user", "content": [{"text": "a lighthouse"}]}]
    task = ImageGeneration.async_call(model="wan2.6-t2i", api_key=KEY, messages=messages, n=1)
    done = ImageGeneration.wait(task, api_key=KEY)
    assert done.status_code == HTTPStatus.TOO_MANY_REQUESTS and done.code == "Throttling.RateQuota"


def test_a_top_level_task_id_is_what_the_sdk_reads_too(sdk_sim):
    """The create answer with ``task_id`` beside ``request_id`` (``--create-answer top-level``): the
    SDK's response reader finds it and its ``wait`` runs the task to the end."""
    sdk_sim(create_answer="top-level")
    messages = [{"role": "user", "content": [{"text": "a lighthouse"}]}]
    task = ImageGeneration.async_call(model="wan2.6-t2i", api_key=KEY, messages=messages, n=1)
    _ok(task)
    assert task.output.task_id
    done = ImageGeneration.wait(task, api_key=KEY)
    _ok(done)
    assert done.output.task_status == "SUCCEEDED"


def test_the_documented_list_with_epoch_milliseconds_over_the_whole_account(sdk_sim):
    sim = sdk_sim(task_seconds=30, list_format="documented", list_account_wide=True, keys=(KEY, "another-key"))
    messages = [{"role": "user", "content": [{"text": "a lighthouse"}]}]
    ours = ImageGeneration.async_call(model="wan2.6-t2i", api_key=KEY, messages=messages, n=1).output.task_id
    theirs = ImageGeneration.async_call(model="wan2.6-t2i", api_key="another-key", messages=messages, n=1).output.task_id
    now = dt.datetime.now(dt.UTC)
    listed = ImageGeneration.list(start_time=(now - dt.timedelta(minutes=5)).strftime("%Y%m%d%H%M%S"),
                                  end_time=(now + dt.timedelta(minutes=5)).strftime("%Y%m%d%H%M%S"), api_key=KEY)
    _ok(listed)
    items = {item["task_id"]: item for item in listed.output["data"]}
    assert set(items) == {ours, theirs}
    assert items[ours]["status"] == "PENDING" and "task_status" not in items[ours]
    assert abs(items[ours]["gmt_create"] / 1000 - sim.state.tasks[ours].created_at) < 0.01
    too_wide = ImageGeneration.list(start_time=(now - dt.timedelta(hours=30)).strftime("%Y%m%d%H%M%S"),
                                    end_time=now.strftime("%Y%m%d%H%M%S"), api_key=KEY)
    assert too_wide.status_code == HTTPStatus.BAD_REQUEST and too_wide.code == "InvalidParameter"


# --- the rest of the family: text-to-video, first and last frame, reference-to-video --------------

def test_t2v_makes_a_video_of_the_asked_size(sdk_sim):
    sim = sdk_sim()
    response = VideoSynthesis.call(model="wan2.6-t2v", api_key=KEY, prompt="a paper boat on a river",
                                   size="1280*720", duration=5, prompt_extend=True, shot_type="multi", seed=7)
    _ok(response)
    assert response.output.task_status == "SUCCEEDED"
    assert httpx.get(response.output.video_url, timeout=60).content[4:8] == b"ftyp"
    task = next(iter(sim.state.tasks.values()))
    assert task.provider_model == "wan2.6-t2v" and task.request.params["size"] == "1280*720"
    assert response.usage.video_duration == 5 and sim.stats()["rejected"] == 0


def test_kf2v_goes_to_the_image2video_route_with_local_frames(sdk_sim, media):
    sim = sdk_sim()
    response = VideoSynthesis.call(model="wan2.2-kf2v-flash", api_key=KEY, prompt="day turns to night",
                                   first_frame_url=f"file://{media['frame']}", last_frame_url=f"file://{media['photo']}",
                                   resolution="480P")
    _ok(response)
    assert response.output.task_status == "SUCCEEDED"
    task = next(iter(sim.state.tasks.values()))
    assert set(task.request.inputs) == {"first_frame", "last_frame"} and task.request.params["duration"] == 5
    assert sim.stats()["uploads"] == 2 and sim.stats()["inputs_by_oss"] == 2


def test_kf2v_with_a_duration_is_refused_as_the_model_is_fixed_at_five_seconds(sdk_sim, media):
    sim = sdk_sim()
    response = VideoSynthesis.async_call(model="wan2.1-kf2v-plus", api_key=KEY, first_frame_url=f"file://{media['frame']}",
                                         last_frame_url=f"file://{media['photo']}", duration=10)
    assert response.status_code == HTTPStatus.BAD_REQUEST and "fixed at 5" in response.message
    assert sim.stats()["creates"] == 0


@pytest.mark.parametrize("field", ["reference_video_urls", "reference_urls"])
def test_r2v_with_local_reference_clips_under_either_documented_field(sdk_sim, tmp_path, field):
    from test_wan_family import clip

    sim = sdk_sim()
    references = [f"file://{clip(tmp_path / f'ref{index}.mp4', 3)}" for index in (1, 2)]
    response = VideoSynthesis.call(model="wan2.6-r2v", api_key=KEY, prompt="character1 hands character2 a cup",
                                   size="1280*720", duration=5, **{field: references})
    _ok(response)
    assert response.output.task_status == "SUCCEEDED"
    task = next(iter(sim.state.tasks.values()))
    assert len(task.request.inputs["references"]) == 2 and sim.stats()["uploads"] == 2


def test_r2v_with_four_references_is_refused(sdk_sim, tmp_path):
    from test_wan_family import clip

    sim = sdk_sim()
    path = clip(tmp_path / "ref.mp4", 3)
    response = VideoSynthesis.async_call(model="wan2.6-r2v", api_key=KEY, prompt="character1",
                                         reference_video_urls=[f"file://{path}"] * 4)
    assert response.status_code == HTTPStatus.BAD_REQUEST and "references" in response.message
    assert sim.stats()["creates"] == 0


def test_older_t2i_models_through_image_synthesis(sdk_sim):
    sdk_sim()
    response = ImageSynthesis.call(model="wan2.2-t2i-flash", api_key=KEY, prompt="a glass teapot", n=2, size="1024*1024")
    _ok(response)
    assert response.output.task_status == "SUCCEEDED" and len(response.output.results) == 2
    assert httpx.get(response.output.results[0].url).status_code == 200


def test_wan27_i2v_with_a_media_list_of_local_files(sdk_sim, media):
    sim = sdk_sim()
    items = [{"type": VideoSynthesis.MediaType.FIRST_FRAME, "url": f"file://{media['frame']}"},
             {"type": VideoSynthesis.MediaType.LAST_FRAME, "url": f"file://{media['photo']}"},
             {"type": VideoSynthesis.MediaType.DRIVING_AUDIO, "url": f"file://{media['voice']}"}]
    response = VideoSynthesis.call(model="wan2.7-i2v", api_key=KEY, prompt="dusk falls", media=items,
                                   resolution="720P", duration=3, audio=True)
    _ok(response)
    assert response.output.task_status == "SUCCEEDED"
    task = next(iter(sim.state.tasks.values()))
    assert set(task.request.inputs) == {"first_frame", "last_frame", "audio"} and task.request.params["duration"] == 3
    assert sim.stats()["uploads"] == 3 and sim.stats()["rejected"] == 0


def test_vace_image_reference_through_the_sdk_with_function_in_input(sdk_sim, media):
    # The SDK's call() takes `function` for its own routing, so VACE's input.function goes in extra_input.
    sim = sdk_sim()
    url = sim.url + sim.state.publish(media["photo"], "image/png")
    response = VideoSynthesis.call(model="wan2.1-vace-plus", api_key=KEY, prompt="a girl in a forest",
                                   extra_input={"function": "image_reference", "ref_images_url": [url]},
                                   obj_or_bg=["obj"], size="1280*720")
    _ok(response)
    task = next(iter(sim.state.tasks.values()))
    assert task.request.params["function"] == "image_reference" and task.request.params["obj_or_bg"] == ["obj"]
    assert len(task.request.inputs["references"]) == 1 and sim.stats()["rejected"] == 0


def test_wanx21_imageedit_through_image_synthesis_with_a_local_base_image(sdk_sim, tmp_path):
    sim = sdk_sim()
    base = tmp_path / "base.png"  # at least 512 px a side, as the model documents
    Image.new("RGB", (640, 640), (30, 120, 200)).save(base)
    response = ImageSynthesis.call(model="wanx2.1-imageedit", api_key=KEY, prompt="as a watercolour",
                                   function="stylization_all", base_image_url=f"file://{base}", n=1)
    _ok(response)
    assert response.output.task_status == "SUCCEEDED" and len(response.output.results) == 1
    task = next(iter(sim.state.tasks.values()))
    assert task.request.params["function"] == "stylization_all" and set(task.request.inputs) == {"image"}
    assert sim.stats()["uploads"] == 1
