"""Money on the wire (issue 21): no second charge after a 5xx, a fresh UNKNOWN or a missing id; the
task list as the documents define it; proof of absence.

Every case is a run and a plain rerun of a one-image pipeline against the simulator, with the
knob that makes the service answer in that shape, for both clients where the shape applies,
alone and mixed. The paid-task count comes from the simulator's stats (``creates``).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

import wanflow
from sim_helpers import point_providers_at
from wanflow.providers import polling, remote
from wanflow.sim.server import SimServer
from wanflow.sim.state import Knobs
from wanflow.state.journal import Journal

ONE_IMAGE = """
name: one
vars: {trial: 0}
defaults: {seed: 2}
steps:
  hero: {model: wan2.6-t2i, prompt: "a lamp {{ vars.trial }}", params: {n: 1}}
"""

TWO_IMAGES = """
name: two
defaults: {seed: 2}
steps:
  hero: {model: wan2.6-t2i, prompt: "two lamps", params: {n: 2}}
"""

OTHER_KEY = "someone-elses-key"


@pytest.fixture
def service(monkeypatch: pytest.MonkeyPatch, project: Path):
    """``service(**knobs)``: a simulator both providers point at (key ``sim-key``)."""
    servers: list[SimServer] = []
    monkeypatch.setenv("WANFLOW_POLL_INTERVAL", "0.05")

    def start(**knobs: Any) -> SimServer:
        knobs.setdefault("task_seconds", 0.3)
        knobs.setdefault("seed", 3)
        knobs.setdefault("tiny_results", True)
        server = SimServer(Knobs(keys=("sim-key", OTHER_KEY), **knobs), workdir=project / "sim")
        servers.append(server.__enter__())
        point_providers_at(monkeypatch, server)
        return server

    yield start
    for server in servers:
        server.__exit__(None, None, None)


def _run(path: Path, provider: str, **options: Any) -> wanflow.RunResult:
    result = wanflow.run(path, provider=provider, **options)  # a paid provider named explicitly may spend
    assert isinstance(result, wanflow.RunResult)
    return result


def _error(result: wanflow.RunResult) -> str:
    return result.steps["hero"].error or ""


def _events(result: wanflow.RunResult) -> list[str]:
    return [event["message"] for event in result.steps["hero"].events]


def _journal(project: Path) -> list[Any]:
    return Journal(project / ".wanflow" / "journal").entries()


def _run_and_rerun(server: SimServer, path: Path, provider: str, calm: dict[str, Any] | None = None,
                   **options: Any) -> tuple[wanflow.RunResult, wanflow.RunResult | None]:
    """A run, and a plain rerun (after setting the ``calm`` knobs) when the first did not complete."""
    first = _run(path, provider, **options)
    if first.ok:
        return first, None
    for name, value in (calm or {}).items():
        setattr(server.state.knobs, name, value)
    return first, _run(path, provider, **options)


def _recorded_task(result: wanflow.RunResult) -> str | None:
    record = json.loads(Path(result.record_path or "").read_text())
    return (record["steps"]["hero"].get("provider_info") or {}).get("task_id")


def _lose_one(server: SimServer) -> threading.Thread:
    """Lose creates on the way in until one was lost (a background thread turns the knob off)."""
    server.state.knobs.lose_rate = 1.0

    def calm() -> None:
        deadline = time.monotonic() + 60
        while server.state.stats["lost_before_create"] == 0 and time.monotonic() < deadline:
            time.sleep(0.005)
        server.state.knobs.lose_rate = 0.0

    thread = threading.Thread(target=calm, daemon=True)
    thread.start()
    return thread


def _task_of(server: SimServer, result: wanflow.RunResult) -> Any:
    record = json.loads(Path(result.record_path or "").read_text())
    return server.state.tasks.get(record["steps"]["hero"]["provider_info"]["task_id"])


# --- the create answers after the task exists -----------------------------------------------------

AFTER_CREATE = [
    pytest.param({"after_create_rate": 1.0, "after_create_answer": "500"}, id="500-InternalError"),
    pytest.param({"after_create_rate": 1.0, "after_create_answer": "504-html"}, id="504-html"),
    pytest.param({"after_create_rate": 1.0, "after_create_answer": "empty"}, id="200-empty"),
    pytest.param({"drop_rate": 1.0}, id="dropped"),
]


@pytest.mark.parametrize("knobs", AFTER_CREATE)
@pytest.mark.parametrize("list_format", ["strings", "documented"])
def test_dashscope_never_pays_twice_when_the_answer_after_the_task_is_lost(service, write_pipeline, knobs, list_format):
    server = service(list_format=list_format, list_account_wide=True, **knobs)
    first, rerun = _run_and_rerun(server, write_pipeline(ONE_IMAGE), "dashscope")
    assert first.ok and rerun is None, _error(first)
    assert server.stats()["creates"] == 1 and server.stats()["duplicate_creates"] == 0
    assert any("adopting it" in message for message in _events(first))
    assert _task_of(server, first).request.prompt == "a lamp 0"
    assert server.stats()["lists_refused"] == 0, "every task-list query spans at most 24 h"


@pytest.mark.parametrize("knobs", AFTER_CREATE)
def test_vtrix_stops_and_asks_and_a_rerun_never_pays_again(service, write_pipeline, knobs):
    """vtrix has no task list: a create whose answer is a 5xx, HTML, empty or lost cannot be settled
    by wanflow, so it stops and asks, every time, and never sends the create again on its own."""
    server = service(**knobs)
    first, rerun = _run_and_rerun(server, write_pipeline(ONE_IMAGE), "vtrix", calm={"after_create_rate": 0.0,
                                                                                   "drop_rate": 0.0})
    assert not first.ok and rerun is not None and not rerun.ok
    for result in (first, rerun):
        assert "outcome is unknown" in _error(result) and "--resubmit-unknown" in _error(result)
    assert server.stats()["creates"] == 1


@pytest.mark.parametrize("provider", ["dashscope", "vtrix"])
def test_a_503_not_accepted_and_a_coded_4xx_are_the_only_answers_sent_again(service, write_pipeline, provider):
    server = service(error_rate=0.5, seed=11)
    result = _run(write_pipeline(ONE_IMAGE), provider)
    assert result.ok, _error(result)
    assert server.stats()["errors_injected"] > 0
    assert server.stats()["creates"] == 1 and server.stats()["duplicate_creates"] == 0


# --- a fresh task that is not visible yet ---------------------------------------------------------

@pytest.mark.parametrize(("provider", "error_shape"), [("dashscope", "object"), ("vtrix", "object"),
                                                      ("vtrix", "string"), ("vtrix", "message-only")])
def test_unknown_or_404_on_the_first_polls_of_a_fresh_task_is_not_gone(service, write_pipeline, provider, error_shape):
    server = service(fresh_unknown_polls=3, error_shape=error_shape)
    first, rerun = _run_and_rerun(server, write_pipeline(ONE_IMAGE), provider)
    assert first.ok and rerun is None, _error(first)
    assert server.stats()["hidden_polls"] == 3
    assert server.stats()["creates"] == 1
    assert any("not visible yet" in message for message in _events(first))


@pytest.mark.parametrize("provider", ["dashscope", "vtrix"])
def test_a_task_that_stays_unknown_stops_and_asks_and_a_rerun_resumes_it(service, write_pipeline, project,
                                                                         monkeypatch, provider):
    monkeypatch.setattr(remote, "NOT_VISIBLE_PATIENCE", 1.0)
    server = service(fresh_unknown_polls=10**6)
    path = write_pipeline(ONE_IMAGE)
    first = _run(path, provider)
    assert not first.ok and "still unknown to the service" in _error(first) and "rerun" in _error(first)
    (entry,) = _journal(project)
    assert entry.task_id, "the journal keeps the task, so a rerun polls it instead of paying"
    server.state.knobs.fresh_unknown_polls = 0
    rerun = _run(path, provider)
    assert rerun.ok, _error(rerun)
    assert any("resuming task" in message for message in _events(rerun))
    assert server.stats()["creates"] == 1 and _journal(project) == []


# --- create answer shapes -------------------------------------------------------------------------

def test_a_top_level_task_id_is_read(service, write_pipeline):
    server = service(create_answer="top-level")
    first, rerun = _run_and_rerun(server, write_pipeline(ONE_IMAGE), "dashscope")
    assert first.ok and rerun is None, _error(first)
    assert server.stats()["creates"] == 1 and server.stats()["lists"] == 0


@pytest.mark.parametrize("provider", ["dashscope", "vtrix"])
def test_a_2xx_without_a_task_id_is_outcome_unknown_never_a_refusal(service, write_pipeline, project, provider):
    server = service(after_create_rate=1.0, after_create_answer="empty")
    first = _run(write_pipeline(ONE_IMAGE), provider)
    if provider == "dashscope":
        assert first.ok and any("adopting it" in message for message in _events(first))
    else:
        assert "HTTP 200 with an empty body" in _error(first) and "outcome is unknown" in _error(first)
        assert len(_journal(project)) == 1, "the journal keeps the intent: a rerun asks, it never pays again"
    assert server.stats()["creates"] == 1


# --- partial and empty successes ------------------------------------------------------------------

EDIT_TWO = """
name: edit
defaults: {seed: 2}
steps:
  hero: {model: wan2.5-i2i-preview, images: [photo.png], prompt: "make it blue", params: {n: 2}}
"""


@pytest.mark.parametrize(("provider", "text", "says"), [
    ("dashscope", TWO_IMAGES, "image failed (1 of 2)"),
    ("dashscope", EDIT_TWO, "InternalError.Algo"),  # wan2.5 names each failed sub-result's code
    ("vtrix", TWO_IMAGES, "1 of 2 images were not returned"),
])
def test_a_partial_success_keeps_what_came_and_warns(service, write_pipeline, project, provider, text, says):
    Image.new("RGB", (640, 480), (20, 160, 90)).save(project / "photo.png")
    server = service(partial_failures=1)
    result = _run(write_pipeline(text), provider)
    step = result.steps["hero"]
    assert result.ok and step.status == "ran", step.error
    assert len(step.outputs.images) == 1
    assert any("1 of the requested images failed" in warning and says in warning for warning in step.warnings)
    assert server.stats()["creates"] == 1
    assert _run(write_pipeline(text), provider).steps["hero"].status == "cached"
    assert server.stats()["creates"] == 1


@pytest.mark.parametrize("provider", ["dashscope", "vtrix"])
def test_an_empty_success_fails_the_step_and_a_rerun_does_not_pay_again(service, write_pipeline, project, provider):
    server = service(empty_success_rate=1.0)
    first, rerun = _run_and_rerun(server, write_pipeline(ONE_IMAGE), provider)
    assert not first.ok and rerun is not None and not rerun.ok
    assert "succeeded with no result at all" in _error(first)
    assert any("resuming task" in message for message in _events(rerun))
    assert server.stats()["creates"] == 1 and len(_journal(project)) == 1


# --- the documented task list and proof of absence ------------------------------------------------

def _stranger(server: SimServer, hours_ago: float) -> str:
    """A task of the same model made under another key of the account, ``hours_ago`` hours back."""
    body = {"model": "wan2.6-t2i", "input": {"messages": [{"role": "user", "content": [{"text": "not yours"}]}]},
            "parameters": {"n": 1}}
    answer = httpx.post(server.dashscope_url + "/services/aigc/image-generation/generation", json=body,
                        headers={"Authorization": f"Bearer {OTHER_KEY}", "X-DashScope-Async": "enable"}).json()
    task = server.state.tasks[answer.get("output", answer)["task_id"]]
    task.created_at -= hours_ago * 3600
    return task.task_id


@pytest.mark.parametrize("hours_ago", [5.0, 0.0])
def test_a_lost_create_never_adopts_a_strangers_task_from_the_account_wide_list(service, write_pipeline, monkeypatch,
                                                                               hours_ago):
    """The issue's row 4: the create never arrived; the documented list (epoch ms, status, every key,
    no prompt) shows another key's task of the same model. Without proof that the list works,
    wanflow stops and asks, on the run and on a plain rerun; it never completes on that task."""
    monkeypatch.setattr(polling, "VISIBILITY_POLLS", 2)  # the stranger's task never becomes visible to this key
    server = service(list_format="documented", list_account_wide=True)
    stranger = _stranger(server, hours_ago)
    server.state.knobs.lose_rate = 1.0
    first, rerun = _run_and_rerun(server, write_pipeline(ONE_IMAGE), "dashscope", calm={"lose_rate": 0.0})
    assert rerun is not None
    for result in (first, rerun):
        assert not result.ok and "outcome is unknown" in _error(result)
        assert _recorded_task(result) != stranger
    if hours_ago:
        assert "no recent tasks the list could show" in _error(first)
    else:  # made a second before the send: the list alone cannot tell, the task's visibility can
        assert "not visible to this API key" in _error(first)
    assert server.stats()["creates"] == 1, "only the stranger's task was ever made"
    assert server.stats()["lists_refused"] == 0


@pytest.mark.parametrize("list_format", ["strings", "documented"])
def test_proof_of_absence_creates_once_without_the_flag(service, write_pipeline, project, list_format):
    """The list shows this workspace's own earlier task at the time the record holds for it, and,
    asked again once the lost create is older than that task, no candidate: the create never
    arrived, so wanflow creates the task once, journaled as such."""
    server = service(list_format=list_format, list_account_wide=True)
    _stranger(server, 5.0)
    path = write_pipeline(ONE_IMAGE)
    assert _run(path, "dashscope").ok
    path.write_text(ONE_IMAGE.replace("trial: 0", "trial: 1"))
    _lose_one(server).join(0)
    result = _run(path, "dashscope")
    assert result.ok, _error(result)
    assert any("never reached dashscope" in message for message in _events(result))
    assert _task_of(server, result).request.prompt == "a lamp 1"
    stats = server.stats()
    assert stats["lost_before_create"] == 1 and stats["duplicate_creates"] == 0
    assert stats["creates"] == 3, "the stranger's, the earlier run's and this one: one paid task per run"
    record = json.loads(Path(result.record_path or "").read_text())
    assert "never arrived" in json.dumps(record["steps"]["hero"]["provider_info"])


def test_a_list_that_lags_behind_creates_stops_and_asks(service, write_pipeline):
    server = service(list_format="documented", list_lag_seconds=3600.0)
    path = write_pipeline(ONE_IMAGE)
    assert _run(path, "dashscope").ok
    server.state.knobs.lose_rate = 1.0
    path.write_text(ONE_IMAGE.replace("trial: 0", "trial: 1"))
    first, rerun = _run_and_rerun(server, path, "dashscope", calm={"lose_rate": 0.0})
    assert rerun is not None
    for result in (first, rerun):
        assert not result.ok and "does not show 1 of this workspace's own recent tasks" in _error(result)
    assert server.stats()["creates"] == 1


def test_an_unreadable_list_page_is_unknown_never_empty(service, write_pipeline):
    server = service(drop_rate=1.0, list_max_span_hours=1.0)  # every query of the (widened) span is refused
    first, rerun = _run_and_rerun(server, write_pipeline(ONE_IMAGE), "dashscope", calm={"drop_rate": 0.0})
    assert rerun is not None
    for result in (first, rerun):
        assert not result.ok and "task list answered HTTP 400" in _error(result)
    assert server.stats()["creates"] == 1


# --- mixed ----------------------------------------------------------------------------------------

def test_dashscope_with_every_shape_at_once(service, write_pipeline):
    server = service(fresh_unknown_polls=2, create_answer="top-level", list_format="documented", list_account_wide=True,
                     seed=21)
    _stranger(server, 5.0)
    server.state.knobs.after_create_rate, server.state.knobs.after_create_answer = 0.5, "504-html"
    server.state.knobs.drop_rate = 0.2
    text = "name: mix\ndefaults: {seed: 1}\nsteps:\n" + "".join(
        f"  s{i}: {{model: wan2.6-t2i, prompt: picture {i}, params: {{n: 1}}}}\n" for i in range(4))
    result = _run(write_pipeline(text), "dashscope", jobs=1)
    assert result.ok, {name: step.error for name, step in result.steps.items()}
    stats = server.stats()
    assert stats["answers_after_create"] + stats["dropped"] > 0 and stats["hidden_polls"] > 0
    assert stats["creates"] == 1 + 4 and stats["duplicate_creates"] == 0


def test_vtrix_with_every_shape_it_speaks_at_once(service, write_pipeline):
    server = service(fresh_unknown_polls=2, partial_failures=1, status_words="vendor", vtrix_dialect="gateway")
    text = "name: mix\ndefaults: {seed: 1}\nsteps:\n" + "".join(
        f"  s{i}: {{model: wan2.6-t2i, prompt: picture {i}, params: {{n: 1}}}}\n" for i in range(3))
    import os

    os.environ["VTRIX_GENERATION_URL"] = server.gateway_url
    os.environ["VTRIX_ENVELOPE"] = "gateway"
    try:
        result = _run(write_pipeline(text), "vtrix", jobs=1)
    finally:
        del os.environ["VTRIX_GENERATION_URL"], os.environ["VTRIX_ENVELOPE"]
    assert result.ok, {name: step.error for name, step in result.steps.items()}
    assert server.stats()["hidden_polls"] == 6 and server.stats()["creates"] == 3


def test_the_simulator_refuses_list_spans_over_24_hours(service):
    server = service()
    now = time.strftime("%Y%m%d%H%M%S", time.gmtime())
    earlier = time.strftime("%Y%m%d%H%M%S", time.gmtime(time.time() - 36 * 3600))
    answer = httpx.get(server.dashscope_url + "/tasks", params={"start_time": earlier, "end_time": now},
                       headers={"Authorization": "Bearer sim-key"})
    assert answer.status_code == 400 and answer.json()["code"] == "InvalidParameter"


# --- regions and headers --------------------------------------------------------------------------

@pytest.mark.parametrize(("region", "host"), [
    ("singapore", "dashscope-intl.aliyuncs.com"), ("intl", "dashscope-intl.aliyuncs.com"),
    ("ap-southeast-1", "dashscope-intl.aliyuncs.com"), ("beijing", "dashscope.aliyuncs.com"),
    ("cn-beijing", "dashscope.aliyuncs.com"), ("virginia", "dashscope-us.aliyuncs.com"),
    ("us-east-1", "dashscope-us.aliyuncs.com"), ("hongkong", "cn-hongkong.dashscope.aliyuncs.com"),
])
def test_every_region_the_sdks_know(region, host):
    from wanflow.project.settings import service_config

    config = service_config("dashscope", {"DASHSCOPE_REGION": region, "WANFLOW_CONFIG": "/nonexistent"}, project={})
    assert config.base_url == f"https://{host}/api/v1"


def test_an_unknown_region_names_the_known_ones():
    from wanflow._exceptions import UsageError
    from wanflow.project.settings import service_config

    with pytest.raises(UsageError, match=r"unknown DashScope region 'mars'.*virginia"):
        service_config("dashscope", {"DASHSCOPE_REGION": "mars", "WANFLOW_CONFIG": "/nonexistent"}, project={})


def test_calls_carry_the_workspace_and_a_wanflow_user_agent(service, write_pipeline, monkeypatch):
    server = service()
    monkeypatch.setenv("DASHSCOPE_WORKSPACE", "ws-sim-1234")
    assert _run(write_pipeline(ONE_IMAGE), "dashscope").ok
    assert server.state.workspaces == {"ws-sim-1234"}
    assert server.state.user_agents == {f"wanflow/{wanflow.__version__}"}
