"""The simulator's vtrix voices, over real HTTP on loopback: dialects, status words, error shapes."""

from __future__ import annotations

import httpx
import pytest

from sim_helpers import AUTH, TIMEOUT, VTRIX_CREATE, data_uri, messages, poll, running, t2i
from wanflow.sim.words import MIXED_RUNNING, MIXED_SUCCESS

GATEWAY_CREATE = "/gateway" + VTRIX_CREATE


def gateway_envelope(model: str, body_input: dict, parameters: dict) -> dict:
    """The vendor CLI's Request: {"model", "input": [{"params": {...}}]}."""
    return {"model": model, "input": [{"params": {"input": body_input, "parameters": parameters}}]}


# --- dialects ---------------------------------------------------------------------------------


def test_gateway_dialect_answers_like_the_vendor_cli(tmp_path):
    with running(tmp_path, vtrix_dialect="gateway", task_seconds=0.3) as sim:
        body = gateway_envelope("wan26_t2i", messages("two foxes"), {"n": 2, "size": "1280*1280"})
        created = httpx.post(sim.url + GATEWAY_CREATE, json=body, headers=AUTH)
        assert created.status_code == 200, created.text
        task = created.json()
        assert task["status"] == "pending" and task["model"] == "wan26_t2i"
        assert isinstance(task["created_at"], int) and task["progress"] == 0
        seen = poll(f"{sim.gateway_url}/model/v1/generation/task/{task['id']}", lambda b: b["status"] == "completed")
        assert all(0 <= b["progress"] <= 1 for b in seen) and seen[-1]["progress"] == 1
        done = seen[-1]
        assert done["id"] == task["id"] and done["created_at"] == task["created_at"]
        content = done["output"][0]["content"]
        assert [c["type"] for c in content] == ["image", "image"] and [c["img_id"] for c in content] == [1, 2]
        assert all(c["id"] and httpx.get(c["url"]).status_code == 200 for c in content)
        usage = done["usage"]
        assert usage["quantity"] == 2 and usage["unit_price"] == "0.0300" and usage["cost"] == "0.0600"
        assert usage["extra_info"]["size"] == "1280*1280"
        # Strict: only the selected dialect answers, and only in its own envelope.
        assert httpx.post(sim.url + VTRIX_CREATE, json=t2i(), headers=AUTH).status_code == 404
        assert httpx.get(f"{sim.url}/model/v1/generation/task/{task['id']}", headers=AUTH).status_code == 404
        refused = httpx.post(sim.url + GATEWAY_CREATE, json=t2i(), headers=AUTH)
        assert refused.status_code == 400 and "params" in refused.json()["error"]["message"]


def test_gateway_video_reports_duration_as_text_and_bills_seconds(tmp_path):
    with running(tmp_path, vtrix_dialect="gateway") as sim:
        body = gateway_envelope("wan26_i2v", {"prompt": "a kite", "img_url": data_uri()},
                                {"resolution": "720P", "duration": 2, "audio": False})
        task_id = httpx.post(sim.url + GATEWAY_CREATE, json=body, headers=AUTH).json()["id"]
        done = poll(f"{sim.gateway_url}/model/v1/generation/task/{task_id}", lambda b: b["status"] == "done")[-1]
        video = done["output"][0]["content"][0]
        assert video["type"] == "video" and video["duration"] == "2"  # a string in the CLI's OutputContent
        assert done["usage"]["quantity"] == 2 and done["usage"]["unit_price"] == "0.1000"
        assert done["usage"]["extra_info"] == {"resolution": "720P", "duration": 2}


def test_documented_dialect_refuses_the_gateway(tmp_path):
    with running(tmp_path) as sim:
        body = gateway_envelope("wan26_t2i", messages("a fox"), {"n": 1})
        assert httpx.post(sim.url + GATEWAY_CREATE, json=body, headers=AUTH).status_code == 404
        refused = httpx.post(sim.url + VTRIX_CREATE, json=body, headers=AUTH)
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "001015001"
        created = httpx.post(sim.url + VTRIX_CREATE, json=t2i(), headers=AUTH)
        assert created.status_code == 200 and set(created.json()) == {"id", "status", "request_id"}
        assert httpx.get(f"{sim.gateway_url}/model/v1/generation/task/{created.json()['id']}", headers=AUTH).status_code == 404


# --- status words -----------------------------------------------------------------------------


def _words(sim, body: dict, final: set[str], gateway: bool = False) -> list[str]:
    root = sim.gateway_url if gateway else sim.url
    task_id = httpx.post(root + VTRIX_CREATE, json=body, headers=AUTH).json()["id"]
    seen = poll(f"{root}/model/v1/generation/task/{task_id}", lambda b: b["status"] in final | {"failed"})
    return [b["status"] for b in seen]


def test_documented_words_for_images(tmp_path):
    with running(tmp_path, task_seconds=2.0) as sim:  # queued for 0.5 s: seen even on a busy machine
        words = _words(sim, t2i(), {"completed"})
    assert set(words) == {"pending", "processing", "completed"}


def test_vendor_words_are_in_progress_and_completed(tmp_path):
    with running(tmp_path, task_seconds=0.8, status_words="vendor", vtrix_dialect="gateway") as sim:
        words = _words(sim, gateway_envelope("wan26_t2i", messages("a fox"), {"n": 1}), {"completed"}, gateway=True)
    assert set(words[:-1]) == {"in_progress"} and words[-1] == "completed"


def test_novel_words_are_unknown_while_running(tmp_path):
    # Queued for the first quarter: 1 s, so that the first poll sees it even when the create (an
    # inline image to decode) answers late on a busy machine (1.2 s tasks missed it at a load of 9).
    with running(tmp_path, task_seconds=4.0, status_words="novel") as sim:
        words = _words(sim, {"model": "wan26_i2v", "input": {"img_url": data_uri()},
                             "parameters": {"resolution": "720P", "duration": 2}}, {"done"})
    assert set(words[:-1]) == {"warming_up", "rendering"} and words[-1] == "done"


def test_mixed_words_pick_a_synonym_per_poll(tmp_path):
    with running(tmp_path, task_seconds=2.0, status_words="mixed") as sim:  # enough polls on a busy machine
        words = _words(sim, t2i(), set(MIXED_SUCCESS))
    running_words = words[:-1]
    assert set(running_words) <= set(MIXED_RUNNING) and len(set(running_words)) >= 3
    assert words[-1] in MIXED_SUCCESS


def test_status_can_live_only_in_the_output(tmp_path):
    with running(tmp_path, task_seconds=0.4, status_in_output=True) as sim:
        created = httpx.post(sim.url + VTRIX_CREATE, json=t2i(), headers=AUTH).json()
        assert "status" not in created and created["output"][0]["status"] == "pending"
        seen = poll(f"{sim.url}/model/v1/generation/task/{created['id']}",
                    lambda b: b["output"][0]["status"] == "completed")
    assert all("status" not in body for body in seen)
    assert {body["output"][0]["status"] for body in seen} >= {"processing", "completed"}
    assert seen[-1]["output"][0]["content"][0]["type"] == "image"


# --- error shapes -----------------------------------------------------------------------------

SHAPES = {
    "object": ({"error": {"code": "001015008", "message": "n: 9 is out of range"}},
               {"code": "001015095", "message": "Internal generation error (injected)"}),
    "string": ({"error": "n: 9 is out of range"}, "Internal generation error (injected)"),
    "numeric": ({"error": {"code": 1015008, "error_message": "n: 9 is out of range"}},
                {"code": 1015095, "error_message": "Internal generation error (injected)"}),
    "message-only": ({"message": "n: 9 is out of range"}, {"message": "Internal generation error (injected)"}),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_error_shapes_for_http_errors_and_failed_tasks(tmp_path, shape):
    http_body, task_error = SHAPES[shape]
    with running(tmp_path, error_shape=shape, fail_rate=1.0) as sim:
        refused = httpx.post(sim.url + VTRIX_CREATE, json=t2i(n=9), headers=AUTH)
        assert refused.status_code == 400
        body = refused.json()
        assert set(body) == set(http_body)
        if shape == "string":
            assert "n: 9 is out of range" in body["error"]
        elif shape == "message-only":
            assert "n: 9 is out of range" in body["message"]
        else:
            assert body["error"]["code"] == http_body["error"]["code"]
            assert set(body["error"]) == set(http_body["error"])
        task_id = httpx.post(sim.url + VTRIX_CREATE, json=t2i(), headers=AUTH).json()["id"]
        failed = poll(f"{sim.url}/model/v1/generation/task/{task_id}", lambda b: b["status"] == "failed")[-1]
        assert failed["error"] == task_error
        unauthorized = httpx.post(sim.url + VTRIX_CREATE, json=t2i(), headers={"Authorization": "Bearer nope"})
        assert unauthorized.status_code == 401
        if shape == "numeric":
            assert unauthorized.json()["error"]["code"] == 401  # a word code (InvalidApiKey) becomes the HTTP status


def test_failed_video_tasks_use_the_i2v_code_family(tmp_path):
    with running(tmp_path, fail_rate=1.0) as sim:
        body = {"model": "wan26_i2v", "input": {"img_url": data_uri()}, "parameters": {"resolution": "720P", "duration": 2}}
        task_id = httpx.post(sim.url + VTRIX_CREATE, json=body, headers=AUTH).json()["id"]
        failed = poll(f"{sim.url}/model/v1/generation/task/{task_id}", lambda b: b["status"] == "failed")[-1]
    assert failed["error"]["code"] == "001027095"


# --- poll throttling --------------------------------------------------------------------------


def test_polls_are_throttled_per_key(tmp_path):
    with running(tmp_path, poll_throttle_rps=2, keys=("sim-key", "other-key"), task_seconds=30) as sim:
        task_id = httpx.post(sim.url + VTRIX_CREATE, json=t2i(), headers=AUTH).json()["id"]
        url = f"{sim.url}/model/v1/generation/task/{task_id}"
        answers = [httpx.get(url, headers=AUTH, timeout=TIMEOUT) for _ in range(6)]
        throttled = [a for a in answers if a.status_code == 429]
        assert throttled and answers[0].status_code == 200
        assert throttled[0].headers["Retry-After"] == "1" and throttled[0].json()["error"]["code"] == "Throttling.RateQuota"
        # Another key has its own bucket (and cannot see this key's task).
        other = httpx.get(url, headers={"Authorization": "Bearer other-key"})
        assert other.status_code == 404
        # Creates are not polls: they are not throttled by this knob.
        assert httpx.post(sim.url + VTRIX_CREATE, json=t2i(seed=5), headers=AUTH).status_code == 200
        assert sim.stats()["poll_throttles"] == len(throttled)
