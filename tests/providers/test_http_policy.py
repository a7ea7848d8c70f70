"""The retry and poll policy with a fake clock, and the client's create/poll/download rules
with a scripted transport (no network at all)."""

from __future__ import annotations

import io
import json
import math
import random
from pathlib import Path

import anyio
import httpx
import pytest
from PIL import Image

import wanflow
from wanflow.catalog.loader import load_catalog
from wanflow.execute.limits import ProviderLimits
from wanflow.execute.pacing import TokenBucket, submit_burst
from wanflow.pipelines.request import StepRequest
from wanflow.project.settings import ServiceConfig, service_config
from wanflow.providers.base import GenerationContext
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
    with pytest.raises(wanflow.UsageError, match="not a number"):
        poll_policy("t2i", {"WANFLOW_POLL_INTERVAL": "fast"})


def test_backoff_is_capped_exponential_with_full_jitter():
    policy = RetryPolicy(attempts=10, base=1.0, cap=8.0)
    rng = random.Random(5)
    for attempt in range(1, 10):
        ceiling = min(8.0, 2 ** (attempt - 1))
        samples = [policy.delay(attempt, rng) for _ in range(200)]
        assert max(samples) <= ceiling and min(samples) >= 0
        assert max(samples) > ceiling * 0.8
    told = [policy.delay(3, rng, retry_after=17) for _ in range(50)]
    assert all(17 <= d <= 17 * (1 + policy.retry_after_jitter) for d in told), "never sooner than asked"
    assert len(set(told)) > 40, "jittered, so tasks told the same do not come back in lockstep"
    assert policy.delay(3, rng, retry_after=10_000) == policy.retry_after_cap


def test_retry_after_parsing():
    assert parse_retry_after("3", now=0) == 3
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10
    assert parse_retry_after("soon", now=0) is None and parse_retry_after(None, now=0) is None


# --- the submit pace, on a fake clock -------------------------------------------------------------

class FakeClock:
    """A clock that moves only when someone sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def _grants(bucket: TokenBucket, clock: FakeClock, arrivals: list[float]) -> list[float]:
    """When each create, asking at its arrival time, is let through (bookings are made in order,
    so asking one after another is what asking together would give)."""
    granted = []

    async def main() -> None:
        for arrival in arrivals:
            clock.now = max(clock.now, arrival)
            await bucket.take()
            granted.append(clock.now)

    anyio.run(main)
    return granted


def _most_in_any_second(times: list[float]) -> int:
    return max(sum(1 for t in times if start <= t < start + 1 - 1e-9) for start in times)


def _server_refusals(arrivals: list[float], rate: float) -> int:
    """429s from a service's token bucket holding one second of creates (the simulator's)."""
    capacity, tokens, last, refused = max(1.0, rate), max(1.0, rate), 0.0, 0
    for at in sorted(arrivals):
        tokens, last = min(capacity, tokens + (at - last) * rate), at
        if tokens >= 1:
            tokens -= 1
        else:
            refused += 1
    return refused


def test_creates_go_in_bursts_within_the_rate_and_with_slack_for_latency():
    clock = FakeClock()
    bucket = TokenBucket(2.0, burst=2, clock=clock.time, sleep=clock.sleep)
    granted = _grants(bucket, clock, [0.0] * 8)
    assert granted[:2] == [0, 0], "the first two creates go together"
    assert granted == pytest.approx([0, 0, 1.5, 1.5, 3, 3, 4.5, 4.5])
    assert _most_in_any_second(granted) == 2  # "2 submits per second" holds in every window, not only on average
    # A service counting 2 per second refuses none even when each create's trip varies by up to
    # LATENCY_SLACK (the worst case: a burst that arrives late, the next that arrives early).
    rng = random.Random(7)
    for _ in range(200):
        trips = [rng.choice([0.0, bucket.LATENCY_SLACK * 0.99]) for _ in granted]
        assert _server_refusals([g + t for g, t in zip(granted, trips, strict=True)], 2.0) == 0
    assert _server_refusals([0.3, 0.3, 1.0, 1.0], 2.0) > 0  # pairs a bare second apart would not survive that
    clock = FakeClock()
    spaced = _grants(TokenBucket(2.0, clock=clock.time, sleep=clock.sleep), clock, [0.0] * 4)
    assert spaced == pytest.approx([0, 0.5, 1, 1.5])  # burst 1: the old pace


def test_an_idle_bucket_allows_a_burst_again_and_a_429_ends_bursts():
    clock = FakeClock()
    bucket = TokenBucket(2.0, burst=2, clock=clock.time, sleep=clock.sleep)
    assert _grants(bucket, clock, [0, 0, 10, 10, 10.2]) == pytest.approx([0, 0, 10, 10, 11.5])
    bucket.slow_down()
    assert bucket.rate == 1.0 and bucket.burst == 1
    assert _grants(bucket, clock, [20, 20, 20]) == pytest.approx([20, 21, 22])


def test_no_second_holds_more_creates_than_the_rate_whatever_the_concurrent_limit():
    """Bursts follow the concurrent limit; their spacing keeps every one-second window within the rate."""
    rng = random.Random(11)
    for rate in (1.0, 2.0, 2.5, 3.0, 5.0, 10.0, 17.0):
        for concurrent in (1, 2, 3, 4, 8, 64):
            clock = FakeClock()
            bucket = TokenBucket(rate, burst=submit_burst(rate, concurrent), clock=clock.time, sleep=clock.sleep)
            arrivals = sorted(rng.uniform(0, 3) for _ in range(40))
            granted = _grants(bucket, clock, [0.0] * 40) + _grants(bucket, clock, [clock.now + a for a in arrivals])
            limit = math.ceil(rate) if bucket.burst == 1 else math.floor(rate)  # burst 1: evenly 1 / rate apart
            assert _most_in_any_second(granted) <= limit, (rate, concurrent)


def test_the_burst_follows_the_concurrent_limit_within_the_rate():
    assert submit_burst(2.0, 2) == 2  # the documented defaults: both slots start together
    assert submit_burst(2.0, 8) == 2 and submit_burst(100.0, 8) == 8
    assert submit_burst(2.0, 1) == 1 and submit_burst(0.5, 4) == 1 and submit_burst(3.0, None) == 3
    default = ProviderLimits().gates("dashscope", "wan2.6-t2i")
    assert default is not None and default.submits is not None and default.submits.burst == 2
    single = ProviderLimits({"dashscope": {"wan2.6-i2v": {"concurrent": 1}}}).gates("dashscope", "wan2.6-i2v")
    assert single is not None and single.submits is not None and single.submits.burst == 1


# --- configuration -------------------------------------------------------------------------------

def test_service_config_from_env_regions_and_user_file(tmp_path):
    env = {"DASHSCOPE_API_KEY": "sk-1", "WANFLOW_CONFIG": str(tmp_path / "none.toml")}
    regions = load_catalog().services["dashscope"].regions
    assert service_config("dashscope", env).base_url == regions["singapore"]
    assert service_config("dashscope", {**env, "DASHSCOPE_REGION": "beijing"}).base_url == regions["beijing"]
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
    assert any(7 <= slept <= 7 * 1.1 for slept in sleeps), sleeps
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


def test_an_interrupt_while_waiting_for_a_submit_token_leaves_no_intent(tmp_path):
    """The intent is journaled after the submit token, right before the create: a Ctrl-C in the
    token wait sent nothing, so it must leave nothing that the next run would have to ask about."""
    from wanflow.state.journal import Journal, KeyJournal

    script = Script()  # nothing may be sent
    journal = Journal(tmp_path / "journal")
    waiting = anyio.Event()

    async def token() -> None:
        waiting.set()
        await anyio.sleep_forever()

    async def main() -> None:
        context = GenerationContext(workdir=tmp_path, journal=KeyJournal(journal, "e" * 64, "hero", "dashscope"),
                                    before_create=token)
        async with anyio.create_task_group() as group:
            group.start_soon(_provider(script, []).generate, _request(), context)
            await waiting.wait()
            group.cancel_scope.cancel()

    anyio.run(main)
    assert script.seen == []
    assert list(journal.entries()) == []
