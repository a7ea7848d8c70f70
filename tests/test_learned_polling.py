"""Polling that learns: the schedule on a fake clock, the estimates, and a run that uses them."""

from __future__ import annotations

import json
import random

import anyio
import pytest

from wanflow.catalog import load_catalog
from wanflow.pipelines.resolve import StepRequest
from wanflow.providers.base import GenerationContext
from wanflow.providers.config import ServiceConfig
from wanflow.providers.dashscope import DashScopeProtocol
from wanflow.providers.durations import DurationBook, Estimate, duration_key
from wanflow.providers.policies import POLL_POLICIES, LearnedSchedule
from wanflow.providers.remote import RemoteProvider
from wanflow.sim.server import SimServer
from wanflow.sim.state import Knobs

SDK_WAIT = [1, 1, 2, 2, 2, 4, 4, 4] + [5] * 400  # the DashScope SDK's wait() pace


def _polls(delays, task_seconds: float) -> tuple[int, float]:
    """(polls until one sees the task done, seconds between its end and that poll)."""
    clock, polls = 0.0, 0
    for attempt in range(10_000):
        clock += delays(attempt, clock)
        polls += 1
        if clock >= task_seconds:
            return polls, clock - task_seconds
    raise AssertionError("never finished")


@pytest.mark.parametrize("seconds", [2.0, 30.0, 62.0, 120.0, 300.0])
def test_a_learned_schedule_finds_the_end_quickly_with_no_more_polls_than_the_sdk(seconds):
    """Tasks spread ±3 % around what was learned: on average no more polls than the SDK's wait,
    and the median task is seen done within a second (or 3 % of its length, for long ones)."""
    rng = random.Random(1)
    schedule = LearnedSchedule(mean=seconds, deviation=seconds * 0.02, interval=5.0)
    ours, sdk, late = [], [], []
    for index in range(41):
        actual = seconds * (0.97 + 0.06 * index / 40)
        polls, delay = _polls(lambda attempt, clock: schedule.delay(attempt, clock, rng), actual)
        ours.append(polls)
        late.append(delay)
        sdk.append(_polls(lambda attempt, clock: SDK_WAIT[attempt], actual)[0])
    assert sum(ours) <= sum(sdk), (seconds, sum(ours) / 41, sum(sdk) / 41)
    assert sorted(late)[20] <= max(1.0, seconds * 0.03), (seconds, sorted(late)[20])


def test_a_task_far_slower_than_learned_falls_back_to_the_documents_pace():
    rng = random.Random(2)
    schedule = LearnedSchedule(mean=10.0, deviation=0.5, interval=5.0)
    clock, waits = 0.0, []
    for attempt in range(60):
        wait = schedule.delay(attempt, clock, rng)
        waits.append(wait)
        clock += wait
    assert max(waits[-10:]) <= 5.0 * 1.1 and min(waits[-10:]) >= 5.0 * 0.9 * 0.9
    assert clock > 150


def test_estimates_follow_the_service_and_survive_in_the_user_cache(tmp_path):
    book = DurationBook(tmp_path / "durations.json")
    assert book.get("k") is None
    for seconds in (60, 62, 58, 61):
        book.record("k", seconds)
    estimate = book.get("k")
    assert estimate is not None and 58 < estimate.mean < 62 and estimate.count == 4
    for _ in range(10):  # the service got slower
        book.record("k", 120)
    assert book.get("k").mean > 110
    book.flush()
    again = DurationBook(tmp_path / "durations.json")
    assert again.get("k").count == 14
    (tmp_path / "durations.json").write_text("{not json")
    assert DurationBook(tmp_path / "durations.json").get("k") is None  # a broken file costs only the history


def test_the_key_separates_what_changes_a_duration():
    catalog = load_catalog()

    def request(model: str, **params) -> StepRequest:
        spec = catalog.get(model)
        return StepRequest("s", spec, "dashscope", "x", None, {}, spec.with_defaults(params), frozenset(), "step")

    assert duration_key("dashscope", request("wan2.6-i2v", resolution="720P", duration=5)) != \
        duration_key("dashscope", request("wan2.6-i2v", resolution="1080P", duration=5))
    assert duration_key("dashscope", request("wan2.6-t2i", n=1)) != duration_key("dashscope", request("wan2.6-t2i", n=4))
    assert duration_key("dashscope", request("wan2.6-t2i", n=1)) != duration_key("vtrix", request("wan2.6-t2i", n=1))


def test_a_run_polls_by_what_earlier_tasks_taught(tmp_path, monkeypatch):
    monkeypatch.delenv("WANFLOW_POLL_INTERVAL", raising=False)
    spec = load_catalog().get("wan2.6-t2i")
    request = StepRequest("s", spec, "dashscope", "a lamp", None, {}, spec.with_defaults({"n": 1, "seed": 1}),
                          frozenset(), "step")
    book = DurationBook(tmp_path / "durations.json")
    # Taught by earlier runs: these tasks take about 0.6 s.
    for _ in range(3):
        book.record(duration_key("dashscope", request), 0.6)
    with SimServer(Knobs(task_seconds=0.6, tiny_results=True), workdir=tmp_path / "sim") as sim:
        provider = RemoteProvider(DashScopeProtocol(), ServiceConfig("dashscope", sim.dashscope_url, "sim-key"),
                                  durations=book)
        logs: list[str] = []

        async def one(index: int) -> dict:
            work = tmp_path / f"w{index}"
            work.mkdir()
            try:
                result = await provider.generate(request, GenerationContext(workdir=work, log=logs.append))
            finally:
                await provider.aclose()
            return result.info

        infos = [anyio.run(one, index) for index in range(3)]
    assert all(info["polls"] <= 3 for info in infos), [info["polls"] for info in infos]
    assert any("expected to finish in about" in line for line in logs)
    learned = book.get(duration_key("dashscope", request))
    assert learned is not None and learned.count == 6 and abs(learned.mean - 0.6) < 0.2
    saved = json.loads((tmp_path / "durations.json").read_text())
    assert saved[duration_key("dashscope", request)]["count"] == 6


def test_without_history_the_documents_pace_is_kept():
    assert POLL_POLICIES["t2i"].first_delay >= 1 and POLL_POLICIES["i2v"].interval >= 5
    assert Estimate(1.0, 0.1, 1).count == 1
