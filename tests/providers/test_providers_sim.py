"""The vtrix and DashScope clients against the simulator, over real HTTP on loopback."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

import wanflow
from sim_helpers import point_providers_at
from wanflow.project.settings import ServiceConfig
from wanflow.providers.dashscope import DashScopeProtocol, cancel_task, dashscope_provider, list_tasks
from wanflow.sim.server import SimServer
from wanflow.sim.state import Knobs

PIPELINE = """
name: simad
vars: {product: a red sneaker}
defaults: {seed: 11}
steps:
  hero: {model: wan2.6-t2i, prompt: "{{ vars.product }} on marble", params: {size: 1280*1280, n: 2}}
  edit:
    model: wan2.6-image
    images: ["{{ steps.hero.images[0] }}", photo.png]
    prompt: put it on a beach
    params: {n: 1}
  clip:
    model: wan2.6-i2v
    image: "{{ steps.edit.images[0] }}"
    prompt: slow orbit
    params: {resolution: 720P, duration: 2, audio: true}
outputs: {poster: "{{ steps.edit.images[0] }}", clip: "{{ steps.clip.video }}"}
"""

# The poll that finds a video task done renders its preview first: seconds on a busy machine.
RENDER_TIMEOUT = 60

FOUR_IMAGES = """
name: four
defaults: {seed: 3}
steps:
""" + "".join(f"  s{i}: {{model: wan2.6-t2i, prompt: image number {i}, params: {{n: 1}}}}\n" for i in range(4))


@pytest.fixture
def sim_env(monkeypatch: pytest.MonkeyPatch, project: Path):
    """Start a simulator with the given knobs and point both providers at it."""
    servers: list[SimServer] = []
    monkeypatch.setenv("WANFLOW_POLL_INTERVAL", "0.05")
    Image.new("RGB", (640, 480), (20, 160, 90)).save(project / "photo.png")

    def start(**knobs) -> SimServer:
        server = SimServer(Knobs(task_seconds=knobs.pop("task_seconds", 0.2), seed=knobs.pop("seed", 7), **knobs),
                           workdir=project / "sim")
        server.__enter__()
        servers.append(server)
        point_providers_at(monkeypatch, server)
        return server

    yield start
    for server in servers:
        server.__exit__(None, None, None)


def _run(path: Path, provider: str, **options) -> wanflow.RunResult:
    result = wanflow.run(path, provider=provider, **options)  # a paid provider named explicitly may spend
    assert isinstance(result, wanflow.RunResult)
    return result


@pytest.mark.parametrize("provider", ["dashscope", "vtrix"])
def test_pipeline_runs_end_to_end_and_a_rerun_makes_zero_creates(sim_env, write_pipeline, provider):
    sim = sim_env()
    path = write_pipeline(PIPELINE)
    result = _run(path, provider)
    assert result.ok, {k: s.error for k, s in result.steps.items()}
    assert not result.preview
    with Image.open(result.outputs["poster"][0].path) as poster:
        assert poster.format == "PNG"
    import av

    with av.open(str(result.outputs["clip"][0].path)) as video:
        assert video.streams.video[0].codec_context.name == "h264" and len(video.streams.audio) == 1
    stats = sim.stats()
    assert stats["creates"] == 3 and stats["duplicate_creates"] == 0
    # The upstream image went to i2v by its still-valid service URL; the local photo as a data: URI.
    assert stats["inputs_by_url"] >= 2 and stats["inputs_by_data_uri"] == 1
    assert stats["downloads_with_auth"] == 0
    record = json.loads(result.record_path.read_text())
    hero = record["steps"]["hero"]
    assert hero["provider_info"]["task_id"] and hero["provider_info"]["request_ids"]
    assert any("submitted task" in event["message"] for event in hero["events"])
    assert hero["cost_usd"] == pytest.approx(0.06)

    again = _run(path, provider)
    assert {s.status for s in again.steps.values()} == {"cached"}
    assert sim.stats()["creates"] == 3


def test_transient_errors_and_throttling_never_duplicate_a_task(sim_env, write_pipeline, project):
    sim = sim_env(error_rate=0.15, throttle_rps=2.0)
    # Push harder than the service allows, to be throttled on purpose.
    (project / "wanflow.toml").write_text("[limits.dashscope]\nsubmits_per_second = 50\nconcurrent = 8\n")
    result = _run(write_pipeline(FOUR_IMAGES), "dashscope", jobs=4)
    assert result.ok, {k: s.error for k, s in result.steps.items()}
    stats = sim.stats()
    assert stats["throttles"] > 0 and stats["errors_injected"] > 0
    assert stats["creates"] == 4 and stats["duplicate_creates"] == 0
    events = [e["message"] for step in result.steps.values() for e in step.events]
    assert any("throttled" in message and "slowing down" in message for message in events)


def test_example_pipeline_completes_under_errors_and_throttling(sim_env, project):
    """The issue's acceptance run: the README example with --error-rate 0.1 --throttle-rps 2."""
    sim = sim_env(error_rate=0.1, throttle_rps=2.0)
    import shutil

    # A copy: a run writes its lockfile next to the pipeline, and the repository must stay clean.
    shutil.copytree(Path(__file__).parents[2] / "examples/product-ad", project / "product-ad")
    example = project / "product-ad/product-ad.yaml"
    for provider in ("dashscope", "vtrix"):
        result = _run(example, provider)
        assert result.ok, (provider, {k: s.error for k, s in result.steps.items()})
    assert sim.stats()["duplicate_creates"] == 0
    assert sim.stats()["creates"] == 10


@pytest.mark.parametrize("provider", ["dashscope", "vtrix"])
def test_rate_limits_at_the_services_rate_never_get_a_429(sim_env, write_pipeline, project, provider):
    sim = sim_env(throttle_rps=2.0, task_seconds=0.3)
    text = "name: many\ndefaults: {seed: 1}\nsteps:\n" + "".join(
        f"  s{i}: {{model: wan2.6-t2i, prompt: picture {i}, params: {{n: 1}}}}\n" for i in range(8))
    started = time.monotonic()
    result = _run(write_pipeline(text), provider, jobs=8)
    assert result.ok
    stats = sim.stats()
    assert stats["throttles"] == 0 and stats["creates"] == 8
    assert time.monotonic() - started >= 3.4  # 8 creates spaced 0.5 s apart
    queued = [e["message"] for step in result.steps.values() for e in step.events if e["message"].startswith("queued:")]
    assert queued, "queue depth is shown while sub-tasks wait for a slot"


def test_internal_task_failures_get_a_bounded_number_of_new_tasks(sim_env, write_pipeline):
    sim = sim_env(fail_rate=1.0)
    result = _run(write_pipeline(FOUR_IMAGES.split("  s1:")[0]), "vtrix")
    step = result.steps["s0"]
    assert step.status == "failed"
    assert "failed internally" in step.error and "001015095" in step.error
    assert sim.stats()["creates"] == 3  # one task plus two new ones, then stop
    assert sim.stats()["duplicate_creates"] == 0


def test_moderation_is_a_clear_final_error(sim_env, write_pipeline):
    sim = sim_env(moderate="forbidden")
    path = write_pipeline("name: mod\nsteps:\n  a: {model: wan2.6-t2i, prompt: a forbidden thing, params: {n: 1}}\n")
    result = _run(path, "dashscope")
    assert result.steps["a"].status == "failed"
    assert "refused by moderation" in result.steps["a"].error and "DataInspectionFailed" in result.steps["a"].error
    assert sim.stats()["moderated"] == 1 and sim.stats()["creates"] == 0


def test_a_wrong_key_is_refused_without_retrying(sim_env, write_pipeline, monkeypatch):
    sim = sim_env()
    monkeypatch.setenv("VTRIX_API_KEY", "wrong-key")
    result = _run(write_pipeline(FOUR_IMAGES.split("  s1:")[0]), "vtrix")
    assert "API key was refused" in result.steps["s0"].error
    assert "wrong-key" not in result.steps["s0"].error
    assert sim.stats()["unauthorized"] == 1


def test_an_expired_result_url_is_reported(sim_env, write_pipeline):
    sim_env(url_ttl=0.0)
    result = _run(write_pipeline(FOUR_IMAGES.split("  s1:")[0]), "dashscope")
    assert "expired or is gone" in result.steps["s0"].error


def test_service_rejections_carry_the_documented_code(sim_env):
    sim = sim_env()
    headers = {"Authorization": "Bearer sim-key"}
    body = {"model": "wan26_t2i", "input": {"messages": [{"role": "user", "content": [{"text": "x"}]}]},
            "parameters": {"size": "700*2900", "n": 1}}
    answer = httpx.post(sim.url + "/model/v1/generation", json=body, headers=headers)
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "001015012"
    # DashScope HTTP calls must be asynchronous.
    answer = httpx.post(sim.dashscope_url + "/services/aigc/image-generation/generation", json={**body, "model": "wan2.6-t2i"},
                        headers=headers)
    assert answer.status_code == 403 and "does not support synchronous calls" in answer.json()["message"]


def test_a_client_written_from_the_documents_works_unchanged(sim_env):
    """Plain httpx, following the DashScope page step by step: create, poll, download."""
    sim = sim_env(task_seconds=1.0)  # running for 0.75 s: long enough to be seen on a busy machine
    headers = {"Authorization": "Bearer sim-key", "X-DashScope-Async": "enable", "Content-Type": "application/json"}
    created = httpx.post(sim.dashscope_url + "/services/aigc/video-generation/video-synthesis", headers=headers, json={
        "model": "wan2.6-i2v",
        "input": {"prompt": "a kite", "img_url": _data_uri()},
        "parameters": {"resolution": "720P", "duration": 2, "audio": False},
    }).json()
    assert created["output"]["task_status"] == "PENDING" and created["request_id"]
    task_id = created["output"]["task_id"]
    seen = set()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        body = httpx.get(f"{sim.dashscope_url}/tasks/{task_id}", headers={"Authorization": "Bearer sim-key"},
                         timeout=RENDER_TIMEOUT).json()
        seen.add(body["output"]["task_status"])
        if body["output"]["task_status"] == "SUCCEEDED":
            break
        time.sleep(0.05)
    assert {"RUNNING", "SUCCEEDED"} <= seen
    video = httpx.get(body["output"]["video_url"], timeout=RENDER_TIMEOUT)
    assert video.status_code == 200 and video.content[4:8] == b"ftyp"
    unknown = httpx.get(f"{sim.dashscope_url}/tasks/no-such-task", headers={"Authorization": "Bearer sim-key"}).json()
    assert unknown["output"]["task_status"] == "UNKNOWN"


def test_vtrix_video_uses_its_own_status_words(sim_env):
    sim = sim_env(task_seconds=2.0)  # queued for the first 0.5 s: long enough to be seen on a busy machine
    headers = {"Authorization": "Bearer sim-key"}
    created = httpx.post(sim.url + "/model/v1/generation", headers=headers, json={
        "model": "wan26_i2v", "input": {"img_url": _data_uri()}, "parameters": {"resolution": "720P", "duration": 2}}).json()
    words = set()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        body = httpx.get(f"{sim.url}/model/v1/generation/task/{created['id']}", headers=headers, timeout=RENDER_TIMEOUT).json()
        words.add(body["status"])
        if body["status"] == "done":
            break
        time.sleep(0.05)
    assert "in_queue" in words and "done" in words
    assert body["output"][0]["content"][0]["type"] == "video" and float(body["usage"]["cost"]) > 0


def test_dashscope_list_and_cancel(sim_env):
    sim = sim_env(task_seconds=30)
    provider = dashscope_provider(ServiceConfig("dashscope", sim.dashscope_url, "sim-key"))
    headers = {"Authorization": "Bearer sim-key", "X-DashScope-Async": "enable"}
    body = {"model": "wan2.6-t2i", "input": {"messages": [{"role": "user", "content": [{"text": "x"}]}]}, "parameters": {"n": 1}}
    task_id = httpx.post(sim.dashscope_url + "/services/aigc/image-generation/generation", json=body, headers=headers).json()["output"]["task_id"]
    import anyio

    listed = anyio.run(lambda: list_tasks(provider, model_name="wan2.6-t2i", page_size="10"))
    assert [t["task_id"] for t in listed["data"]] == [task_id] and listed["total"] == 1
    anyio.run(lambda: cancel_task(provider, task_id))
    status = httpx.get(f"{sim.dashscope_url}/tasks/{task_id}", headers=headers).json()["output"]["task_status"]
    assert status == "CANCELED"


def test_partial_success_is_reported():
    from wanflow.catalog.loader import load_catalog
    from wanflow.pipelines.request import StepRequest

    protocol = DashScopeProtocol()
    model = load_catalog().get("wan2.5-i2i-preview")
    request = StepRequest("a", model, "dashscope", "x", None, {}, model.with_defaults({"n": 2, "seed": 1}), frozenset(), "step")
    state = protocol.task_state({"output": {"task_status": "SUCCEEDED", "results": [
        {"url": "https://example.invalid/1.png"}, {"code": "DataInspectionFailed", "message": "image 2 refused"}],
        "task_metrics": {"TOTAL": 2, "SUCCEEDED": 1, "FAILED": 1}}}, request)
    assert state.status == "succeeded" and len(state.outputs) == 1
    assert state.partial_failures == ["DataInspectionFailed: image 2 refused"]


def _data_uri() -> str:
    import base64
    import io

    buffer = io.BytesIO()
    Image.new("RGB", (640, 480), (200, 50, 50)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def test_a_step_queued_behind_one_models_limit_does_not_hold_a_job_another_model_could_use(sim_env, write_pipeline, project):
    """jobs=2, wan2.6-t2i limited to 1 task at a time: the edit step must not wait behind the t2i queue."""
    sim_env(task_seconds=0.6)
    (project / "wanflow.toml").write_text('[limits.dashscope."wan2.6-t2i"]\nconcurrent = 1\n'
                                          '[limits.dashscope]\nsubmits_per_second = 50\n')
    text = "name: mixed\ndefaults: {seed: 1}\nsteps:\n" + "".join(
        f"  t{i}: {{model: wan2.6-t2i, prompt: picture {i}, params: {{n: 1}}}}\n" for i in range(4)) + \
        "  edit: {model: wan2.6-image, images: [photo.png], prompt: make it blue, params: {n: 1}}\n"
    result = _run(write_pipeline(text), "dashscope", jobs=2)
    assert result.ok, {k: s.error for k, s in result.steps.items()}
    first_t2i_done = min(result.steps[f"t{i}"].finished_at for i in range(4))
    edit_submitted = min(e["at"] for e in result.steps["edit"].events if e["message"].startswith("submitted task"))
    assert edit_submitted < first_t2i_done  # it ran beside the first t2i task, not after the queue
