"""The clients read every answer shape public material shows: status words, errors, envelopes.

Pure protocol parsing and configuration here; the same shapes over real HTTP, from the
simulator's knobs, are in test_dialects_end_to_end.py.
"""

from __future__ import annotations

import pytest

import wanflow
from wanflow.catalog.loader import load_catalog
from wanflow.pipelines.request import StepRequest
from wanflow.project.settings import parse_clock_offset, service_config
from wanflow.providers.dashscope import DashScopeProtocol
from wanflow.providers.failures import classify
from wanflow.providers.protocol import read_error
from wanflow.providers.vtrix import VtrixProtocol


def _request(model: str = "wan2.6-t2i", **params) -> StepRequest:
    spec = load_catalog().get(model)
    assert spec is not None
    return StepRequest("s", spec, "vtrix", "a cat", None, {}, spec.with_defaults({"n": 1, "seed": 1, **params}),
                       frozenset(), "step")


# --- status words ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("word", "status"), [
    ("in_progress", "running"), ("IN_PROGRESS", "running"), ("pending", "queued"), ("in_queue", "queued"),
    ("processing", "running"), ("done", "succeeded"), ("completed", "succeeded"), ("failed", "failed"),
    ("cancelled", "canceled"),
])
def test_vtrix_knows_the_words_of_documents_and_vendor_client(word, status):
    state = VtrixProtocol().state_for(word)
    assert state.status == status and state.recognized


@pytest.mark.parametrize(("word", "status"), [
    ("PENDING", "queued"), ("SUSPENDED", "queued"), ("RUNNING", "running"), ("SUCCEEDED", "succeeded"),
    ("FAILED", "failed"), ("CANCELED", "canceled"), ("UNKNOWN", "gone"),
])
def test_dashscope_words_including_suspended(word, status):
    assert DashScopeProtocol().state_for(word).status == status


@pytest.mark.parametrize("word", ["warming_up", "", None, "UNKNOWN_STATE", "rendering"])
def test_an_unknown_word_means_still_running_never_an_ending(word):
    for protocol in (VtrixProtocol(), DashScopeProtocol()):
        state = protocol.state_for(word)
        assert state.status == "running" and not state.recognized and not state.terminal


def test_vtrix_reads_a_status_found_only_inside_output0():
    body = {"id": "t", "output": [{"status": "done", "content": [{"type": "video", "url": "http://x.invalid/v.mp4"}]}]}
    state = VtrixProtocol().task_state(body, _request("wan2.6-i2v", resolution="720P"))
    assert state.status == "succeeded" and state.outputs[0].field == "video"
    running = VtrixProtocol().task_state({"id": "t", "output": [{"status": "in_queue"}]}, _request())
    assert running.status == "queued"


def test_vtrix_gateway_task_body_with_audio_and_unit_prices():
    body = {"id": "t", "status": "completed", "progress": 1, "created_at": 1764000000,
            "output": [{"content": [{"type": "video", "url": "http://x.invalid/v.mp4", "duration": "5"},
                                    {"type": "audio", "url": "http://x.invalid/a.mp3"}]}],
            "usage": {"quantity": 5, "unit_price": "0.1"}}
    state = VtrixProtocol().task_state(body, _request("wan2.6-i2v", resolution="720P"))
    assert [o.field for o in state.outputs] == ["video"]
    assert state.extra_outputs == [{"type": "audio", "url": "http://x.invalid/a.mp3"}]
    assert state.cost_usd == pytest.approx(0.5)


# --- error shapes ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("payload", "code", "message"), [
    ({"error": {"code": "001015008", "message": "n out of range"}}, "001015008", "n out of range"),
    ({"error": {"code": 1015008, "error_message": "n out of range"}}, "001015008", "n out of range"),
    ({"error": "quota exhausted"}, None, "quota exhausted"),
    ({"message": "model not found"}, None, "model not found"),
    ({"request_id": "r", "code": "InvalidParameter", "message": "bad"}, "InvalidParameter", "bad"),
    ({"error": {"message": "boom"}, "code": 500}, "500", "boom"),
    ("plain text body", None, "plain text body"),
    ([1, 2], None, "[1, 2]"),
])
def test_every_error_shape_gives_a_code_and_message(payload, code, message):
    assert read_error(payload) == (code, message)


def test_a_numeric_vtrix_code_is_classified_like_its_text():
    code, _ = read_error({"error": {"code": 1027095, "error_message": "x"}})
    assert classify(code, "x").retryable and not classify(read_error({"error": {"code": 1015008}})[0]).retryable


def test_a_failed_vtrix_task_with_a_string_error():
    state = VtrixProtocol().task_state({"id": "t", "status": "failed", "error": "content moderation"}, _request())
    assert state.status == "failed" and state.error_message == "content moderation" and state.error_code is None
    numeric = VtrixProtocol().task_state({"status": "failed", "error": {"code": 1015099, "error_message": "x"}}, _request())
    assert numeric.error_code == "001015099"


# --- envelopes and configuration -----------------------------------------------------------------

def test_the_gateway_envelope_wraps_input_and_parameters_in_params():
    documented = VtrixProtocol().create_call(_request(), {})
    gateway = VtrixProtocol().create_call(_request(), {}, "gateway")
    assert set(documented.body) == {"model", "input", "parameters"}
    assert gateway.body["model"] == "wan26_t2i" and isinstance(gateway.body["input"], list)
    params = gateway.body["input"][0]["params"]
    assert params == {"input": documented.body["input"], "parameters": documented.body["parameters"]}
    assert documented.fingerprint != gateway.fingerprint


def test_envelope_and_gateway_url_from_env_project_and_user_file(tmp_path):
    env = {"WANFLOW_CONFIG": str(tmp_path / "none.toml"), "VTRIX_API_KEY": "k"}
    assert service_config("vtrix", env, project={}).envelope == "documented"
    chosen = service_config("vtrix", {**env, "VTRIX_ENVELOPE": "gateway", "VTRIX_GENERATION_URL": "http://127.0.0.1:9/gw/"},
                            project={})
    assert chosen.envelope == "gateway" and chosen.gateway_url == "http://127.0.0.1:9/gw"
    project = {"providers": {"vtrix": {"envelope": "gateway", "gateway_url": "http://127.0.0.1:8"}}}
    assert service_config("vtrix", env, project=project).url_for("gateway_url") == "http://127.0.0.1:8"
    with pytest.raises(wanflow.UsageError, match="unknown envelope 'gatway'"):
        service_config("vtrix", {**env, "VTRIX_ENVELOPE": "gatway"}, project={})
    with pytest.raises(wanflow.UsageError, match="needs gateway_url: set VTRIX_GENERATION_URL"):
        service_config("vtrix", {**env, "VTRIX_ENVELOPE": "gateway"}, project={}).url_for("gateway_url")


def test_a_key_in_the_project_file_is_refused_without_echoing_it(tmp_path):
    env = {"WANFLOW_CONFIG": str(tmp_path / "none.toml")}
    with pytest.raises(wanflow.UsageError) as caught:
        service_config("vtrix", env, project={"providers": {"vtrix": {"api_key": "vt-SECRET-1"}}})
    assert "kept in git" in str(caught.value) and "vt-SECRET-1" not in str(caught.value)
    with pytest.raises(wanflow.UsageError, match="unknown setting 'envelop'"):
        service_config("vtrix", env, project={"providers": {"vtrix": {"envelop": "gateway"}}})


def test_service_clock_offsets():
    assert parse_clock_offset("+08:00") == 8 * 3600 and parse_clock_offset("-05:30") == -(5 * 3600 + 1800)
    assert parse_clock_offset("UTC") == 0
    for bad in ("8", "+15:00", "+08:61", "Beijing"):
        with pytest.raises(wanflow.UsageError, match="service_clock"):
            parse_clock_offset(bad)
