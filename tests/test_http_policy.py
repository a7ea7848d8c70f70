"""The retry and poll policy with a fake clock, and the client's create/poll/download rules
with a scripted transport (no network at all)."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import anyio
import httpx
import pytest
from PIL import Image

import wanflow
from wanflow.catalog import load_catalog
from wanflow.pipelines.resolve import StepRequest
from wanflow.providers.base import GenerationContext
from wanflow.providers.config import DASHSCOPE_REGIONS, ServiceConfig, service_config
from wanflow.providers.dashscope import DashScopeProtocol
from wanflow.providers.failures import classify
from wanflow.providers.policies import POLL_POLICIES, RetryPolicy, parse_retry_after, poll_policy
from wanflow.providers.remote import RemoteProvider
from wanflow.providers.vtrix import VtrixProtocol

# --- policies ------------------------------------------------------------------------------------

def test_poll_pace_suits_each_kind_and_has_jitter():
    rng = random.Random(1)
    image, video = POLL_POLICIES["t2i"], POLL_POLICIES["i2v"]
    assert video.first_delay > image.first_delay and video.interval > image.interval
    delays = [image.delay(attempt, rng) for attempt in range(1, 50)]
    assert all(image.interval * 0.8 <= d <= image.interval * 1.2 for d in delays)
    assert len(set(delays)) > 40, "jittered"
    assert image.deadline >= 10 * 60 and video.deadline > image.deadline


def test_poll_interval_override_and_bad_values():
    assert poll_policy("i2v", {"WANFLOW_POLL_INTERVAL": "0.25"}).interval == 0.25
    assert poll_policy("i2v", {"WANFLOW_POLL_INTERVAL": "0"}).delay(3, random.Random()) == 0
    with pytest.raises(wanflow.UsageError, match="must be a number"):
        poll_policy("t2i", {"WANFLOW_POLL_INTERVAL": "fast"})


def test_backoff_is_capped_exponential_with_full_jitter():
    policy = RetryPolicy(attempts=10, base=1.0, cap=8.0)
    rng = random.Random(5)
    for attempt in range(1, 10):
        ceiling = min(8.0, 2 ** (attempt - 1))
        samples = [policy.delay(attempt, rng) for _ in range(200)]
        assert max(samples) <= ceiling and min(samples) >= 0
        assert max(samples) > ceiling * 0.8
    assert policy.delay(3, rng, retry_after=17) == 17
    assert policy.delay(3, rng, retry_after=10_000) == policy.retry_after_cap


def test_retry_after_parsing():
    assert parse_retry_after("3", now=0) == 3
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10
    assert parse_retry_after("soon", now=0) is None and parse_retry_after(None, now=0) is None


# --- configuration -------------------------------------------------------------------------------

def test_service_config_from_env_regions_and_user_file(tmp_path):
    env = {"DASHSCOPE_API_KEY": "sk-1", "WANFLOW_CONFIG": str(tmp_path / "none.toml")}
    assert service_config("dashscope", env).base_url == DASHSCOPE_REGIONS["singapore"]
    assert service_config("dashscope", {**env, "DASHSCOPE_REGION": "beijing"}).base_url == DASHSCOPE_REGIONS["beijing"]
    assert service_config("dashscope", {**env, "DASHSCOPE_HTTP_BASE_URL": "http://127.0.0.1:1/api/v1/"}).base_url == "http://127.0.0.1:1/api/v1"
    config_file = tmp_path / "config.toml"
    config_file.write_text('[providers.vtrix]\napi_key = "vt-secret"\nbase_url = "http://127.0.0.1:2"\n')
    vtrix = service_config("vtrix", {"WANFLOW_CONFIG": str(config_file)})
    assert vtrix.api_key == "vt-secret" and vtrix.base_url == "http://127.0.0.1:2"
    assert "vt-secret" not in repr(vtrix)
    keyless = service_config("vtrix", {"WANFLOW_CONFIG": str(tmp_path / "none.toml")})  # fine for planning
    with pytest.raises(wanflow.UsageError, match="needs an API key: set VTRIX_API_KEY"):
        keyless.require_key()


# --- the client with a scripted transport --------------------------------------------------------

def _request(model: str = "wan2.6-t2i", **params) -> StepRequest:
    spec = load_catalog().get(model)
    return StepRequest("s", spec, "dashscope", "a cat", None, {}, spec.with_defaults({"n": 1, "seed": 1, **params}),
                       frozenset(), "step")


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buffer, format="PNG")
    return buffer.getvalue()


class Script:
    """Answers requests from a list of callables and records what was asked."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        answer = self.answers.pop(0)
        return answer(request)


def _provider(script: Script, sleeps: list[float]) -> RemoteProvider:
    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    return RemoteProvider(DashScopeProtocol(), ServiceConfig("dashscope", "http://sim.invalid/api/v1", "sk-secret"),
                          sleep=fake_sleep, rng=random.Random(0), transport=httpx.MockTransport(script))


def _created(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"request_id": "r1", "output": {"task_id": "t1", "task_status": "PENDING"}})


def _succeeded(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"request_id": "r2", "output": {"task_id": "t1", "task_status": "SUCCEEDED", "choices": [
        {"message": {"content": [{"type": "image", "image": "http://files.invalid/1.png"}]}}]}})


def _png_file(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, content=_png())


def _generate(provider: RemoteProvider, tmp_path: Path, request: StepRequest | None = None):
    return anyio.run(provider.generate, request or _request(), GenerationContext(workdir=tmp_path))


def _raise(error: type[Exception]):
    def answer(request: httpx.Request) -> httpx.Response:
        raise error("scripted", request=request)  # type: ignore[call-arg]

    return answer


def test_a_lost_create_response_is_never_resent(tmp_path):
    script = Script(_raise(httpx.ReadTimeout))
    with pytest.raises(wanflow.ProviderError) as caught:
        _generate(_provider(script, []), tmp_path)
    assert caught.value.code == "create-outcome-unknown"
    assert "a billed task may exist, so it was not resent" in str(caught.value)
    assert len(script.seen) == 1


def test_a_create_that_never_reached_the_service_is_retried(tmp_path):
    sleeps: list[float] = []
    script = Script(_raise(httpx.ConnectError), _created, _succeeded, _png_file)
    result = _generate(_provider(script, sleeps), tmp_path)
    assert [r.method for r in script.seen] == ["POST", "POST", "GET", "GET"]
    assert result.info["task_id"] == "t1" and len(result.files) == 1


def test_429_on_create_honours_retry_after(tmp_path):
    sleeps: list[float] = []
    throttled = lambda request: httpx.Response(429, headers={"Retry-After": "7"},  # noqa: E731
                                               json={"code": "Throttling.RateQuota", "message": "slow down"})
    script = Script(throttled, _created, _succeeded, _png_file)
    _generate(_provider(script, sleeps), tmp_path)
    assert 7 in sleeps
    assert sum(1 for r in script.seen if r.method == "POST") == 2


def test_invalid_parameter_is_final_and_names_the_code(tmp_path):
    bad = lambda request: httpx.Response(400, json={"request_id": "r9", "code": "InvalidParameter", "message": "size is bad"})  # noqa: E731
    script = Script(bad)
    with pytest.raises(wanflow.ProviderError) as caught:
        _generate(_provider(script, []), tmp_path)
    assert caught.value.code == "InvalidParameter" and "request_id r9" in str(caught.value)
    assert len(script.seen) == 1


def test_polls_and_downloads_survive_errors_and_downloads_carry_no_key(tmp_path):
    sleeps: list[float] = []
    flaky = lambda request: httpx.Response(503, json={"code": "InternalError"})  # noqa: E731
    script = Script(_created, flaky, _raise(httpx.ReadTimeout), _succeeded, _raise(httpx.ConnectError), flaky, _png_file)
    result = _generate(_provider(script, sleeps), tmp_path)
    assert result.files[0].path.read_bytes() == _png()
    api_calls = [r for r in script.seen if r.url.host == "sim.invalid"]
    downloads = [r for r in script.seen if r.url.host == "files.invalid"]
    assert all(r.headers["Authorization"] == "Bearer sk-secret" for r in api_calls)
    assert all("Authorization" not in r.headers for r in downloads)
    assert api_calls[0].headers["X-DashScope-Async"] == "enable"


def test_a_truncated_download_is_retried(tmp_path):
    short = lambda request: httpx.Response(200, headers={"Content-Length": str(len(_png()) + 10)}, content=_png())  # noqa: E731
    script = Script(_created, _succeeded, short, _png_file)
    result = _generate(_provider(script, []), tmp_path)
    assert result.files[0].path.read_bytes() == _png()
    assert sum(1 for r in script.seen if r.url.host == "files.invalid") == 2


def test_non_http_result_urls_are_refused(tmp_path):
    sneaky = lambda request: httpx.Response(200, json={"output": {"task_status": "SUCCEEDED", "choices": [  # noqa: E731
        {"message": {"content": [{"type": "image", "image": "file:///etc/passwd"}]}}]}})
    with pytest.raises(wanflow.ProviderError, match="non-http"):
        _generate(_provider(Script(_created, sneaky), []), tmp_path)


def test_task_failures_are_classified():
    request = _request()
    for code, expected in [("DataInspectionFailed", "moderation"), ("IPInfringementSuspect", "moderation"),
                           ("Arrearage", "account cannot be billed"), ("InvalidParameter.Size", "rejected the request")]:
        state = DashScopeProtocol().task_state({"output": {"task_status": "FAILED", "code": code, "message": "m"}}, request)
        failure = classify(state.error_code, state.error_message)
        assert not failure.retryable and expected in failure.describe()
    assert classify("InternalError", "x").retryable and classify("001027095", "x").retryable
    assert not classify("001015008", "x").retryable


def test_vtrix_status_vocabularies_and_reported_cost():
    protocol = VtrixProtocol()
    words = ("pending", "in_queue", "processing", "in_progress", "completed", "done", "failed")
    assert [protocol.state_for(w).status for w in words] == [
        "queued", "queued", "running", "running", "succeeded", "succeeded", "failed"]
    state = protocol.task_state({"status": "done", "output": [{"content": [{"type": "video", "url": "http://x.invalid/v.mp4"}]}],
                                 "usage": {"cost": "0.5000"}}, _request("wan2.6-i2v", resolution="720P"))
    assert state.status == "succeeded" and state.cost_usd == 0.5 and state.outputs[0].field == "video"
    body = json.dumps(protocol.create_call(_request(), {}).body)
    assert '"model": "wan26_t2i"' in body and '"messages"' in body
