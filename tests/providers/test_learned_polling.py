"""Polling that learns: the schedule on a fake clock, the estimates, and a run that uses them."""

from __future__ import annotations

import itertools
import json
import random
import statistics

import anyio
import pytest

from wanflow.catalog.loader import load_catalog
from wanflow.pipelines.request import StepRequest
from wanflow.project.settings import ServiceConfig
from wanflow.providers.base import GenerationContext
from wanflow.providers.dashscope import DashScopeProtocol
from wanflow.providers.durations import DurationBook, Estimate, duration_key
from wanflow.providers.policies import POLL_POLICIES, LearnedSchedule, sdk_wait_polls
from wanflow.providers.remote import RemoteProvider
from wanflow.sim.server import SimServer
from wanflow.sim.state import Knobs


def sdk_waits():
    """The official SDK's ``wait`` pace, transcribed from dashscope 2.x ``BaseAsyncApi.wait``: it
    polls at once, sleeps ``wait_seconds`` (starting at 1) after each unfinished answer, and before
    every third poll doubles it, up to 5. (Checked against the installed SDK below.)"""
    wait_seconds, step = 1, 0
    while True:
        step += 1
        if wait_seconds < 5 and step % 3 == 0:
            wait_seconds = min(wait_seconds * 2, 5)
        yield wait_seconds


def sdk_polls(task_seconds: float) -> int:
    """Polls the SDK's ``wait`` makes until one sees a task of ``task_seconds`` done."""
    clock, polls = 0.0, 1
    for wait in sdk_waits():
        if clock >= task_seconds:
            return polls
        clock += wait
        polls += 1
    raise AssertionError("unreachable")


def _polls(delays, task_seconds: float) -> tuple[int, float]:
    """(polls until one sees the task done, seconds between its end and that poll)."""
    clock, polls = 0.0, 0
    for attempt in range(10_000):
        clock += delays(attempt, clock)
        polls += 1
        if clock >= task_seconds:
            return polls, clock - task_seconds
    raise AssertionError("never finished")


def test_the_transcribed_sdk_pace_is_the_installed_sdks(monkeypatch):
    """Drive the real ``dashscope`` ``wait`` on a fake clock: same polls as the transcription, and
    as the budget the learned schedule keeps to (``sdk_wait_polls``)."""
    from types import SimpleNamespace

    from dashscope.api_entities.dashscope_response import DashScopeAPIResponse
    from dashscope.client import base_api

    clock = SimpleNamespace(now=0.0)
    monkeypatch.setattr(base_api, "time", SimpleNamespace(time=lambda: clock.now,
                                                          sleep=lambda s: setattr(clock, "now", clock.now + s)))
    for task_seconds in (0.5, 2, 7, 30, 61, 120, 300):
        clock.now, asked = 0.0, []

        def get(cls, task_id, api_key=None, workspace=None, asked=asked, ends=task_seconds, **kwargs):
            asked.append(clock.now)
            status = "SUCCEEDED" if clock.now >= ends else "RUNNING"
            return DashScopeAPIResponse(status_code=200, request_id="r", code="", message="",
                                        output={"task_id": task_id, "task_status": status})

        monkeypatch.setattr(base_api.BaseAsyncApi, "_get", classmethod(get))
        base_api.BaseAsyncApi.wait("t1", api_key="k")
        assert len(asked) == sdk_polls(task_seconds) == sdk_wait_polls(task_seconds), task_seconds
    assert (sdk_polls(2), sdk_polls(30), sdk_polls(120)) == (3, 11, 29)  # the benchmark's SDK figures


def _learn(book: DurationBook, key: str, seconds: list[float]) -> None:
    for value in seconds:
        book.record(key, value)


def _run_tasks(book: DurationBook, key: str, durations: list[float], interval: float, rng: random.Random):
    """Each task polled by the schedule its estimate gives, then learned from (as ``_wait`` does with
    the service's own times): (polls, detection delay) per task."""
    seen = []
    for actual in durations:
        estimate = book.get(key)
        schedule = LearnedSchedule(estimate.mean, estimate.deviation, interval)
        seen.append(_polls(lambda attempt, clock: schedule.delay(attempt, clock, rng), actual))  # noqa: B023
        book.record(key, actual)
    return seen


@pytest.mark.parametrize("seconds", [2.0, 30.0, 120.0])
@pytest.mark.parametrize("history", ["warm-up", "service"])
def test_with_history_the_end_is_seen_within_a_second_and_no_more_polls_than_the_sdk(tmp_path, seconds, history):
    """Durations learned as they are in use:

    - warm-up: the simulator's exact task times, after the 4 tasks an earlier run leaves (the
      benchmark's case; the estimate's deviation still holds most of its first guess, 25 %);
    - service: times that vary ±5 % around the mean, after 20 such tasks.

    Then 40 more tasks: median detection delay at most 1 s, and no more polls in all than the
    official SDK's ``wait`` makes for the same tasks."""
    rng = random.Random(int(seconds) * 7 + len(history))
    book = DurationBook(tmp_path / "durations.json")
    interval = POLL_POLICIES["t2i"].interval
    if history == "warm-up":
        _learn(book, "k", [seconds] * 4)
        durations = [seconds] * 40
    else:
        _learn(book, "k", [seconds * rng.uniform(0.95, 1.05) for _ in range(20)])
        durations = [seconds * rng.uniform(0.95, 1.05) for _ in range(40)]
    seen = _run_tasks(book, "k", durations, interval, rng)
    polls = [p for p, _ in seen]
    delays = sorted(d for _, d in seen)
    sdk = [sdk_polls(d) for d in durations]
    assert statistics.median(delays) <= 1.0, (seconds, history, delays)
    assert sum(polls) <= sum(sdk), (seconds, history, sum(polls) / len(polls), sum(sdk) / len(sdk))
    assert delays[-1] <= max(1.5, 0.05 * seconds), (seconds, history, delays[-1])  # no task is seen late


@pytest.mark.parametrize("seconds", [2.0, 30.0, 120.0])
def test_the_first_task_after_a_warm_up_is_found_within_a_second(tmp_path, seconds):
    """The benchmark's case exactly: one task per model after 4 of history (deviation 8.6 % of the
    mean); over many draws of the jitter, the median delay is under a second and the polls fit."""
    book = DurationBook(tmp_path / "durations.json")
    _learn(book, "k", [seconds] * 4)
    estimate = book.get("k")
    assert estimate is not None and estimate.deviation == pytest.approx(0.25 * 0.7 ** 3 * seconds)
    schedule = LearnedSchedule(estimate.mean, estimate.deviation, POLL_POLICIES["i2v"].interval)
    rng = random.Random(3)
    seen = [_polls(lambda attempt, clock: schedule.delay(attempt, clock, rng), seconds) for _ in range(200)]
    assert statistics.median(d for _, d in seen) <= 1.0
    assert max(p for p, _ in seen) <= sdk_polls(seconds)


@pytest.mark.parametrize("seconds", [2.0, 30.0, 62.0, 120.0, 300.0])
def test_a_learned_schedule_finds_the_end_quickly_with_no_more_polls_than_the_sdk(seconds):
    """Tasks spread ±3 % around what was learned: on average no more polls than the SDK's wait,
    and the median task is seen done within a second."""
    rng = random.Random(1)
    schedule = LearnedSchedule(mean=seconds, deviation=seconds * 0.02, interval=5.0)
    ours, sdk, late = [], [], []
    for index in range(41):
        actual = seconds * (0.97 + 0.06 * index / 40)
        polls, delay = _polls(lambda attempt, clock: schedule.delay(attempt, clock, rng), actual)
        ours.append(polls)
        late.append(delay)
        sdk.append(sdk_polls(actual))
    assert sum(ours) <= sum(sdk), (seconds, sum(ours) / 41, sum(sdk) / 41)
    assert sorted(late)[20] <= 1.0, (seconds, sorted(late)[20])


def test_a_loose_estimate_spreads_its_polls_within_the_sdks_budget():
    """A deviation of 30 % of the mean: the dense step widens rather than the polls multiplying,
    up to a task that ends a whole deviation late; the documents' interval still caps the step."""
    rng = random.Random(4)
    for seconds in (30.0, 120.0, 300.0):
        schedule = LearnedSchedule(mean=seconds, deviation=0.3 * seconds, interval=5.0)
        for actual in (seconds * 0.8, seconds, seconds * 1.3):
            polls, _ = _polls(lambda attempt, clock: schedule.delay(attempt, clock, rng), actual)  # noqa: B023
            assert polls <= sdk_wait_polls(seconds) + 1, (seconds, actual, polls)
    assert LearnedSchedule(mean=600.0, deviation=300.0, interval=5.0).step == 5.0


def test_before_the_window_polls_are_sparse_and_catch_an_early_end():
    rng = random.Random(5)
    schedule = LearnedSchedule(mean=120.0, deviation=3.0, interval=5.0)
    clock, looks = 0.0, []
    while clock < schedule.opens - schedule.spread:
        clock += schedule.delay(len(looks), clock, rng)
        looks.append(clock)
    assert 2 <= len(looks) <= 3, looks  # one or two looks before the window opens at 115 s
    assert all(b - a >= 40.0 for a, b in itertools.pairwise([0.0, *looks])), looks  # a third of the mean apart, at least
    polls, delay = _polls(lambda attempt, clock: schedule.delay(attempt, clock, rng), 50.0)
    assert polls <= 2 and delay < 45  # a task done at 50 s is seen at the second look, not at 115 s


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
    # Past the window the polls thin out: a 120 s task running to 360 s adds about one poll per
    # 5 s, not one per dense step.
    schedule = LearnedSchedule(mean=120.0, deviation=3.0, interval=5.0)
    in_window, _ = _polls(lambda attempt, clock: schedule.delay(attempt, clock, rng), schedule.closes)
    total, _ = _polls(lambda attempt, clock: schedule.delay(attempt, clock, rng), 360.0)
    assert total - in_window <= (360.0 - schedule.closes) / 5.0 / 0.9 + 5, (in_window, total)


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
