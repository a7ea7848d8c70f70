"""The simulator's DashScope knobs, over real HTTP on loopback: suspension, the task list's clock,
temporary uploads, the synchronous endpoint, dropped parameters and poll throttling."""

from __future__ import annotations

import base64
import datetime as dt
import io
import time

import httpx
import pytest
from PIL import Image

from sim_helpers import (
    ASYNC,
    AUTH,
    I2V_PATH,
    SYNC_PATH,
    T2I_PATH,
    TIMEOUT,
    VTRIX_CREATE,
    data_uri,
    messages,
    png_bytes,
    poll,
    running,
    t2i,
    wav_bytes,
)
from wanflow.media.probe import probe

RESOLVE = {"X-DashScope-OssResourceResolve": "enable"}


def ds_t2i(**parameters) -> dict:
    return {"model": "wan2.6-t2i", "input": messages("a red fox"), "parameters": {"n": 1, **parameters}}


def create(sim, body: dict, path: str = T2I_PATH, headers: dict | None = None) -> httpx.Response:
    return httpx.post(sim.dashscope_url + path, json=body, headers={**ASYNC, **(headers or {})}, timeout=TIMEOUT)


def finished(body: dict) -> bool:
    return body["output"]["task_status"] in ("SUCCEEDED", "FAILED", "CANCELED")


def _runs(statuses: list[str]) -> list[str]:
    return [s for i, s in enumerate(statuses) if i == 0 or statuses[i - 1] != s]


def _in_order(runs: list[str], timeline: list[str]) -> bool:
    """Whether ``runs`` follows ``timeline`` (a short state may fall between two polls)."""
    remaining = iter(timeline)
    return all(any(state == step for step in remaining) for state in runs)


# --- task bodies and suspension ----------------------------------------------------------------


def test_task_bodies_carry_their_times_and_usage(tmp_path):
    with running(tmp_path, task_seconds=1.2) as sim:
        task_id = create(sim, ds_t2i()).json()["output"]["task_id"]
        seen = poll(f"{sim.dashscope_url}/tasks/{task_id}", finished)
    pending = next(b["output"] for b in seen if b["output"]["task_status"] == "PENDING")
    assert "submit_time" in pending and "scheduled_time" not in pending and "end_time" not in pending
    running_ = next(b["output"] for b in seen if b["output"]["task_status"] == "RUNNING")
    assert "scheduled_time" in running_ and "end_time" not in running_ and "usage" not in seen[-2]
    done = seen[-1]
    times = [dt.datetime.strptime(done["output"][k], "%Y-%m-%d %H:%M:%S.%f")
             for k in ("submit_time", "scheduled_time", "end_time")]
    assert times == sorted(times) and (times[2] - times[0]).total_seconds() == pytest.approx(1.2, abs=0.01)
    assert done["usage"] == {"image_count": 1, "size": "1280*1280"}


def test_some_tasks_spend_a_while_suspended(tmp_path):
    with running(tmp_path, task_seconds=2.0, suspend_rate=1.0) as sim:
        task_id = create(sim, ds_t2i()).json()["output"]["task_id"]
        seen = poll(f"{sim.dashscope_url}/tasks/{task_id}", finished)
        assert sim.stats()["suspended_polls"] >= 1
    runs = _runs([b["output"]["task_status"] for b in seen])
    # SUSPENDED for 1.2 s in the middle of the run; the short RUNNING spans around it may fall between polls.
    assert runs[0] == "PENDING" and "SUSPENDED" in runs and runs[-1] == "SUCCEEDED"
    assert _in_order(runs, ["PENDING", "RUNNING", "SUSPENDED", "RUNNING", "SUCCEEDED"])


def test_no_task_is_suspended_by_default(tmp_path):
    with running(tmp_path, task_seconds=0.6) as sim:
        task_id = create(sim, ds_t2i()).json()["output"]["task_id"]
        seen = poll(f"{sim.dashscope_url}/tasks/{task_id}", finished)
    assert "SUSPENDED" not in {b["output"]["task_status"] for b in seen}


# --- the task list and the service clock -------------------------------------------------------


def _list(sim, **query) -> httpx.Response:
    return httpx.get(sim.dashscope_url + "/tasks", params=query, headers=AUTH)


@pytest.mark.parametrize("offset", ["+08:00", "+00:00", "-05:30"])
def test_the_list_speaks_the_service_clock(tmp_path, offset):
    sign = -1 if offset.startswith("-") else 1
    zone = dt.timezone(sign * dt.timedelta(hours=int(offset[1:3]), minutes=int(offset[4:])))
    with running(tmp_path, list_clock_offset=offset, task_seconds=30) as sim:
        task_id = create(sim, ds_t2i()).json()["output"]["task_id"]
        now = dt.datetime.now(zone)
        window = {"start_time": (now - dt.timedelta(minutes=1)).strftime("%Y%m%d%H%M%S"),
                  "end_time": (now + dt.timedelta(minutes=1)).strftime("%Y%m%d%H%M%S")}
        listed = _list(sim, model_name="wan2.6-t2i", **window).json()
        assert [item["task_id"] for item in listed["data"]] == [task_id] and listed["total"] == 1
        item = listed["data"][0]
        assert set(item) == {"task_id", "task_status", "model_name", "request_id", "gmt_create"}
        created = dt.datetime.strptime(item["gmt_create"], "%Y-%m-%d %H:%M:%S.%f")
        assert abs((created - now.replace(tzinfo=None)).total_seconds()) < 5
        body = httpx.get(f"{sim.dashscope_url}/tasks/{task_id}", headers=AUTH).json()
        assert body["output"]["submit_time"] == item["gmt_create"]
        if offset != "+00:00":
            # The same window written in UTC misses the task: the filter is in the service's clock.
            utc = dt.datetime.now(dt.UTC)
            shifted = {"start_time": (utc - dt.timedelta(minutes=1)).strftime("%Y%m%d%H%M%S"),
                       "end_time": (utc + dt.timedelta(minutes=1)).strftime("%Y%m%d%H%M%S")}
            assert _list(sim, **shifted).json()["total"] == 0


@pytest.mark.parametrize("value", ["2024-01-01 00:00:00", "2024-01-01T00:00:00Z", "1700000000", "2024010100000", "20241301000000"])
def test_list_times_must_be_yyyymmddhhmmss(tmp_path, value):
    with running(tmp_path) as sim:
        answer = _list(sim, start_time=value)
        assert answer.status_code == 400 and answer.json()["code"] == "InvalidParameter"
        assert _list(sim, start_time="20240101000000").status_code == 200


def test_list_pages_and_filters_are_checked(tmp_path):
    with running(tmp_path, task_seconds=30) as sim:
        ids = [create(sim, ds_t2i(seed=seed)).json()["output"]["task_id"] for seed in range(3)]
        first, second = _list(sim, page_size="2").json(), _list(sim, page_size="2", page_no="2").json()
        assert [i["task_id"] for i in first["data"] + second["data"]] == ids and first["total_page"] == 2
        assert _list(sim, status="PENDING").json()["total"] == 3 and _list(sim, status="SUCCEEDED").json()["total"] == 0
        for bad in ({"page_size": "0"}, {"page_size": "101"}, {"page_no": "x"}, {"status": "DONE"}):
            assert _list(sim, **bad).status_code == 400, bad


# --- temporary uploads -------------------------------------------------------------------------


def _policy(sim, model: str = "wan2.6-i2v", headers: dict | None = None) -> httpx.Response:
    return httpx.get(sim.dashscope_url + "/uploads", params={"action": "getPolicy", "model": model},
                     headers=AUTH if headers is None else headers)


def _upload(policy: dict, name: str, data: bytes, **override: str) -> httpx.Response:
    form = {"OSSAccessKeyId": policy["oss_access_key_id"], "Signature": policy["signature"], "policy": policy["policy"],
            "key": policy["upload_dir"] + "/" + name, "x-oss-object-acl": policy["x_oss_object_acl"],
            "x-oss-forbid-overwrite": policy["x_oss_forbid_overwrite"], "success_action_status": "200",
            "x-oss-content-type": "application/octet-stream", **override}
    return httpx.post(policy["upload_host"], data=form, files={"file": (name, data)})


def _i2v(audio: str | None = None, image: str | None = None) -> dict:
    body_input = {"prompt": "a singer", "img_url": image or data_uri(), **({"audio_url": audio} if audio else {})}
    return {"model": "wan2.6-i2v", "input": body_input, "parameters": {"resolution": "720P", "duration": 2}}


def test_upload_policy_flow_and_oss_inputs(tmp_path):
    with running(tmp_path, task_seconds=30) as sim:
        assert _policy(sim, headers={}).status_code == 401
        assert httpx.get(sim.dashscope_url + "/uploads", params={"action": "other", "model": "wan2.6-i2v"},
                         headers=AUTH).status_code == 400
        assert _policy(sim, model="no-such-model").status_code == 400
        answer = _policy(sim).json()
        policy = answer["data"]  # the SDK's generic GET takes "data" (or "output") as the payload
        assert answer["request_id"] and policy["upload_host"] == sim.url + "/_sim/oss"
        assert {"upload_dir", "policy", "signature", "oss_access_key_id", "x_oss_object_acl", "x_oss_forbid_overwrite",
                "expire_in_seconds", "max_file_size_mb"} <= set(policy)
        assert _upload(policy, "voice.wav", wav_bytes()).status_code == 200
        # Forged or foreign forms are refused, and the bucket does not overwrite.
        assert _upload(policy, "x.wav", wav_bytes(), Signature="forged").status_code == 403
        assert _upload(policy, "x.wav", wav_bytes(), key="elsewhere/x.wav").status_code == 403
        assert _upload(policy, "voice.wav", wav_bytes()).status_code == 409
        assert httpx.post(policy["upload_host"], data={"policy": policy["policy"]}, files={"file": ("a", b"1")}).status_code == 400
        name = "oss://" + policy["upload_dir"] + "/voice.wav"
        # Resolved only on request: without the header the service does not read oss:// names.
        refused = create(sim, _i2v(name), I2V_PATH)
        assert refused.status_code == 400 and refused.json()["code"] == "InvalidParameter" and "url" in refused.json()["message"]
        accepted = create(sim, _i2v(name), I2V_PATH, RESOLVE)
        assert accepted.status_code == 200, accepted.text
        assert create(sim, _i2v("oss://" + policy["upload_dir"] + "/missing.wav"), I2V_PATH, RESOLVE).status_code == 400
        stats = sim.stats()
        assert stats["uploads"] == 1 and stats["inputs_by_oss"] == 1 and stats["upload_policies"] == 1


def test_uploads_are_bound_to_their_model_and_expire(tmp_path):
    ttl = 2.0
    with running(tmp_path, upload_ttl=ttl, task_seconds=30) as sim:
        policy = _policy(sim, model="wan2.6-image").json()["data"]
        assert _upload(policy, "photo.png", png_bytes()).status_code == 200
        uploaded = time.monotonic()
        name = "oss://" + policy["upload_dir"] + "/photo.png"
        other_model = create(sim, _i2v(image=name), I2V_PATH, RESOLVE)
        assert other_model.status_code == 400 and "uploaded for wan2.6-image" in other_model.json()["message"]
        edit = {"model": "wan2.6-image", "input": messages("make it blue", name), "parameters": {"n": 1}}
        assert create(sim, edit, headers=RESOLVE).status_code == 200
        time.sleep(max(0.0, uploaded + ttl + 0.1 - time.monotonic()))
        expired = create(sim, {**edit, "parameters": {"n": 1, "seed": 2}}, headers=RESOLVE)
        assert expired.status_code == 400 and "expired" in expired.json()["message"]


def test_audio_comes_by_url_never_as_a_data_uri(tmp_path):
    audio_uri = "data:audio/wav;base64," + base64.b64encode(wav_bytes()).decode()  # a valid 4 s WAV
    with running(tmp_path, task_seconds=30) as sim:
        refused = create(sim, _i2v(audio_uri), I2V_PATH)
        assert refused.status_code == 400 and refused.json()["code"] == "InvalidParameter"
        assert "data: URI" in refused.json()["message"]
        vtrix = {"model": "wan26_i2v", "input": {"img_url": data_uri(), "audio_url": audio_uri},
                 "parameters": {"resolution": "720P", "duration": 2}}
        refused = httpx.post(sim.url + VTRIX_CREATE, json=vtrix, headers=AUTH)
        assert refused.status_code == 400 and "data: URI" in refused.json()["error"]["message"]
        # An http(s) URL is fine (the simulator can fetch only its own files).
        wav = tmp_path / "voice.wav"
        wav.write_bytes(wav_bytes())
        url = sim.url + sim.state.publish(wav, "audio/wav")
        vtrix["input"]["audio_url"] = url
        assert httpx.post(sim.url + VTRIX_CREATE, json=vtrix, headers=AUTH).status_code == 200


# --- the synchronous endpoint ------------------------------------------------------------------


def test_sync_generation_answers_with_the_result(tmp_path):
    with running(tmp_path, task_seconds=0.3) as sim:
        started = time.monotonic()
        answer = httpx.post(sim.dashscope_url + SYNC_PATH, json=ds_t2i(n=2), headers=AUTH, timeout=TIMEOUT)
        assert answer.status_code == 200, answer.text
        assert time.monotonic() - started >= 0.3  # the call lasts as long as the generation
        body = answer.json()
        content = body["output"]["choices"][0]["message"]["content"]
        assert [c["type"] for c in content] == ["image", "image"] and body["usage"]["image_count"] == 2
        assert all(httpx.get(c["image"]).status_code == 200 for c in content)
        edit = {"model": "wan2.6-image", "input": messages("make it blue", data_uri()), "parameters": {"n": 1}}
        assert httpx.post(sim.dashscope_url + SYNC_PATH, json=edit, headers=AUTH, timeout=TIMEOUT).status_code == 200
        # Not for async calls, and not for models with another protocol.
        assert httpx.post(sim.dashscope_url + SYNC_PATH, json=ds_t2i(), headers=ASYNC).status_code == 403
        video = {"model": "wan2.6-i2v", "input": {"img_url": data_uri()}, "parameters": {"resolution": "720P"}}
        assert httpx.post(sim.dashscope_url + SYNC_PATH, json=video, headers=AUTH).status_code == 400
        stats = sim.stats()
        assert stats["sync_calls"] == 2 and stats["tasks"] == {}  # sync calls make no listed task


# --- dropped parameters ------------------------------------------------------------------------


def test_ignored_parameters_give_four_images(tmp_path):
    with running(tmp_path, ignore_params=True) as sim:
        task_id = create(sim, ds_t2i(n=1, size="960*1696")).json()["output"]["task_id"]
        done = poll(f"{sim.dashscope_url}/tasks/{task_id}", finished)[-1]
        urls = [c["image"] for c in done["output"]["choices"][0]["message"]["content"]]
        assert len(urls) == 4 and done["usage"]["image_count"] == 4
        images = [Image.open(io.BytesIO(httpx.get(url).content)) for url in urls]
        assert {image.size for image in images} == {(1280, 1280)}  # the default size, not the asked one
        assert len({image.tobytes() for image in images}) == 4
        vtrix_id = httpx.post(sim.url + VTRIX_CREATE, json=t2i(n=1), headers=AUTH).json()["id"]
        vtrix_done = poll(f"{sim.url}/model/v1/generation/task/{vtrix_id}", lambda b: b["status"] == "completed")[-1]
        assert len(vtrix_done["output"][0]["content"]) == 4 and vtrix_done["usage"]["image_count"] == 4


@pytest.mark.slow
def test_ignored_parameters_give_a_1080p_video(tmp_path):
    with running(tmp_path, ignore_params=True) as sim:
        body = {"model": "wan2.6-i2v", "input": {"prompt": "a kite", "img_url": data_uri(768, 432)},
                "parameters": {"resolution": "720P", "duration": 2, "audio": False}}
        task_id = create(sim, body, I2V_PATH).json()["output"]["task_id"]
        done = poll(f"{sim.dashscope_url}/tasks/{task_id}", finished, timeout=60)[-1]
        path = tmp_path / "video.mp4"
        path.write_bytes(httpx.get(done["output"]["video_url"], timeout=TIMEOUT).content)
    info = probe(path)
    assert (info.width, info.height) == (1920, 1080) and info.duration == pytest.approx(5, abs=0.2)
    assert done["usage"] == {"video_count": 1, "video_duration": 5, "SR": 1080}  # SR: the resolution tier


# --- poll throttling ---------------------------------------------------------------------------


def test_dashscope_polls_are_throttled_with_retry_after(tmp_path):
    with running(tmp_path, poll_throttle_rps=1, task_seconds=30) as sim:
        task_id = create(sim, ds_t2i()).json()["output"]["task_id"]
        answers = [httpx.get(f"{sim.dashscope_url}/tasks/{task_id}", headers=AUTH) for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 429, 429]
        assert answers[1].headers["Retry-After"] == "1" and answers[1].json()["code"] == "Throttling.RateQuota"
        time.sleep(1.05)
        assert httpx.get(f"{sim.dashscope_url}/tasks/{task_id}", headers=AUTH).status_code == 200
        assert create(sim, ds_t2i(seed=3)).status_code == 200  # creates have their own knob
