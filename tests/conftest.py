"""Shared fixtures: isolated project folders, pipeline writers and an instrumented provider."""

from __future__ import annotations

import os
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import pytest

import wanflow
from sim_helpers import SimStarter
from wanflow.pipelines.request import StepRequest
from wanflow.providers.base import GenerationContext, GenerationResult
from wanflow.providers.local import LocalPreviewProvider

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"


@pytest.fixture(autouse=True, scope="session")
def _private_user_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Learned task durations go to a folder of this test session, never the user's real cache
    (subprocesses inherit it; their environments drop WANFLOW_* variables, not XDG_*)."""
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("user-cache"))
    os.environ.pop("WANFLOW_CACHE_DIR", None)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project folder used as the working directory."""
    monkeypatch.chdir(tmp_path)
    for name in ("WANFLOW_STATE_DIR", "WANFLOW_OUT_DIR"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimStarter]:
    """``sim(**knobs)`` starts a simulator that takes ``sim_helpers.SECRET``; all stop after the test."""
    starter = SimStarter(tmp_path)
    yield starter
    starter.close()


@pytest.fixture
def s3_server() -> Iterator[dict[str, str]]:
    """A moto S3 server on loopback with the bucket ``team``; yields the environment that reaches it."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as error:
        pytest.skip(f"moto[server] is not installed ({error}); pip install -e '.[test,store]'")
    pytest.importorskip("s3fs", reason="s3fs is not installed; pip install -e '.[store]'")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    try:
        server.start()
    except Exception as error:  # pragma: no cover - depends on the machine
        pytest.skip(f"the moto S3 server could not start on 127.0.0.1: {error}")
    host, port = server.get_host_and_port()
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "FSSPEC_S3_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ENDPOINT_URL": f"http://{host}:{port}"}
    import boto3

    boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], aws_access_key_id="testing", aws_secret_access_key="testing",
                 region_name="us-east-1").create_bucket(Bucket="team")
    yield env
    server.stop()


@pytest.fixture
def workspace(project: Path) -> wanflow.Workspace:
    return wanflow.Workspace.discover(project)


@pytest.fixture
def write_pipeline(project: Path) -> Callable[..., Path]:
    """Write YAML text (dedented) to a pipeline file in the project and return its path."""

    def write(text: str, name: str = "pipe.yaml") -> Path:
        path = project / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), "utf-8")
        return path

    return write


@dataclass
class Call:
    step_id: str
    prompt: str | None
    started: float
    finished: float


@dataclass
class Recorder:
    """Every generate() call the instrumented provider received."""

    calls: list[Call] = field(default_factory=list)
    delay: float = 0.0
    fail_steps: set[str] = field(default_factory=set)

    def steps(self) -> list[str]:
        return [call.step_id for call in self.calls]


class InstrumentedProvider(LocalPreviewProvider):
    """The real local provider, plus call recording, an optional delay and injected failures."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    async def generate(self, request: StepRequest, context: GenerationContext) -> GenerationResult:
        started = time.monotonic()
        if self.recorder.delay:
            await anyio.sleep(self.recorder.delay)
        if request.step_id in self.recorder.fail_steps:
            self.recorder.calls.append(Call(request.step_id, request.prompt, started, time.monotonic()))
            raise wanflow.ProviderError(f"injected failure for {request.step_id}")
        result = await super().generate(request, context)
        self.recorder.calls.append(Call(request.step_id, request.prompt, started, time.monotonic()))
        return result


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def run_with(recorder: Recorder, workspace: wanflow.Workspace) -> Callable[..., wanflow.RunResult]:
    """Run a pipeline file with the instrumented provider standing in for ``local``."""

    def run(path: Path, **options: object) -> wanflow.RunResult:
        overrides = options.pop("overrides", None)
        result = wanflow.run(path, vars=overrides, workspace=workspace, report=False,
                             providers={"local": lambda project: InstrumentedProvider(recorder)}, **options)
        assert isinstance(result, wanflow.RunResult)
        return result

    return run


@pytest.fixture
def use_instrumented_local(recorder: Recorder, monkeypatch: pytest.MonkeyPatch) -> Recorder:
    """Make the CLI's ``local`` provider the instrumented one."""
    from wanflow.providers import registry as providers

    monkeypatch.setitem(providers.BUILTIN_PROVIDERS, "local", lambda project: InstrumentedProvider(recorder))  # type: ignore[index]
    return recorder


TWO_BRANCHES = """
name: branches
defaults: {seed: 1}
steps:
  left:
    model: wan2.6-t2i
    prompt: a left thing
    params: {size: 1280*1280, n: 1}
  right:
    model: wan2.6-t2i
    prompt: a right thing
    params: {size: 1280*1280, n: 1}
"""

CHAIN = """
name: chain
vars: {subject: a teapot}
defaults: {seed: 42}
steps:
  hero:
    model: wan2.6-t2i
    prompt: "{{ vars.subject }} on a table"
    params: {size: 1280*1280, n: 2}
  edit:
    model: wan2.6-image
    images: ["{{ steps.hero.images[0] }}"]
    prompt: make it blue
    params: {n: 1}
  other:
    model: wan2.6-t2i
    prompt: an unrelated landscape
    params: {size: 1280*1280, n: 1}
outputs:
  final: "{{ steps.edit.images[0] }}"
"""


# The slow tier: whole runs against the simulator, real clusters and browsers that each take seconds
# (measured with `pytest --durations`). They would push the README's test command past its
# 4-minute budget on 2 cores, so `-m "not slow"` (pyproject addopts) leaves them out and CI runs them
# right after it: `pytest -m slow`. A test marked @pytest.mark.slow in its file joins them too.
SLOW_TIER = {
    "test_diffusers_provider.py::test_out_of_memory_names_offload_dtype_or_size_and_the_other_steps_go_on",
    "test_diffusers_provider.py::test_on_a_cluster_open_weights_need_a_worker_that_declares_a_gpu",
    "test_diffusers_provider.py::test_on_a_cluster_gpu_units_go_only_to_the_worker_that_declares_a_gpu",
    "test_diffusers_inputs.py::test_one_frame_is_a_picture_offered_as_image_and_images",
    "test_diffusers_machine.py::test_the_cache_key_holds_the_resolved_device_and_dtype_not_auto_and_not_offload",
    "test_diffusers_machine.py::test_provider_moves_the_service_steps_and_leaves_open_weights_on_diffusers_in_plan_explain_and_run",
    "test_api_workflow.py::test_the_cli_from_another_folder_uses_the_pipelines_project_settings_and_state",
    "test_bad_settings.py::test_a_damaged_durations_file_is_ignored_and_the_paid_run_finishes",
    "test_bad_setup.py::test_an_unreachable_cluster_is_exit_2_within_seconds",
    "test_cluster.py::test_a_worker_killed_with_sigkill_mid_run_is_replaced_and_nothing_is_created_twice",
    "test_cluster.py::test_ctrl_c_on_the_driver_cancels_cleanly_and_a_rerun_resumes_the_paid_tasks",
    "test_cluster.py::test_shared_requests_run_once_and_limits_hold_cluster_wide",
    "test_cluster.py::test_the_example_batch_on_a_cluster_with_an_s3_store_matches_a_local_run",
    "test_dialects_end_to_end.py::test_a_local_audio_file_reaches_dashscope_i2v_as_an_upload",
    "test_dialects_end_to_end.py::test_a_video_rendered_at_another_tier_is_a_mismatch",
    "test_dialects_end_to_end.py::test_kill_9_at_random_moments_on_the_gateway_never_creates_twice",
    "test_dialects_end_to_end.py::test_the_readme_example_on_the_vtrix_gateway_with_vendor_words",
    "test_fanout_matrix_lock.py::test_lockfile_is_sorted_and_frozen_after_a_clean_cache_reproduces_identical_bytes",
    "test_local_provider.py::test_product_ad_example_runs_offline_end_to_end",
    "test_media_and_cost.py::test_budget_refuses_to_start_when_the_estimate_is_over",
    "test_media_and_cost.py::test_plan_shows_costs_cached_steps_cost_nothing",
    "test_money_on_the_wire.py::test_dashscope_with_every_shape_at_once",
    "test_money_on_the_wire.py::test_proof_of_absence_creates_once_without_the_flag",
    "test_one_plan.py::test_every_example_runs_exactly_what_its_plan_says",
    "test_ops_finish.py::test_soundtrack_normalises_the_music_to_minus_16_lufs_measured_independently",
    "test_ops_memory.py::test_a_three_minute_1080p_concat_stays_under_a_fixed_memory_cap",
    "test_one_plan.py::test_templated_params_vars_conditions_and_changed_fan_out_items",
    "test_providers_sim.py::test_example_pipeline_completes_under_errors_and_throttling",
    "test_providers_sim.py::test_rate_limits_at_the_services_rate_never_get_a_429",
    "test_recovery.py::test_a_fifty_row_batch_with_lost_answers_completes_within_three_reruns",
    "test_recovery.py::test_a_result_url_gone_before_download_is_reported_once_and_paid_again_only_on_purpose",
    "test_recovery.py::test_an_emptied_journal_log_stops_and_asks_instead_of_paying_again",
    "test_recovery.py::test_cache_gc_during_a_run_is_refused_and_the_run_finishes",
    "test_recovery.py::test_damaged_short_and_reset_downloads_are_fetched_again_never_kept",
    "test_recovery.py::test_throttling_below_the_submit_rate_slows_down_and_nothing_fails",
    "test_reliability.py::test_a_dropped_create_on_vtrix_stops_and_resubmits_only_when_allowed",
    "test_reliability.py::test_interrupt_keeps_remote_tasks_flushes_records_and_exits_130",
    "test_reliability.py::test_kill_9_after_submit_resumes_the_same_task",
    "test_reliability.py::test_the_api_key_never_appears_in_anything_a_run_writes_or_prints",
    "test_reliability.py::test_thirty_random_kill_9_trials_each_resume_to_completion_without_duplicates",
    "test_reliability.py::test_two_concurrent_local_runs_share_one_cache_safely",
    "test_reliability.py::test_two_concurrent_runs_create_each_task_once",
    "test_report_browser.py::test_single_run_report_loads_every_image_and_video",
    "test_shared_store.py::test_two_project_folders_sharing_a_file_store_create_each_task_once",
    "test_shared_store.py::test_two_project_folders_sharing_an_s3_store_create_each_task_once",
    "test_sim_dashscope.py::test_ignored_parameters_give_a_1080p_video",
    "test_sim_dashscope.py::test_ignored_parameters_give_four_images",
    "test_sim_dialects.py::test_novel_words_are_unknown_while_running",
    "test_official_sdk.py::test_wan27_i2v_with_a_media_list_of_local_files",
    "test_official_sdk.py::test_vace_image_reference_through_the_sdk_with_function_in_input",
    "test_wan_editing.py::test_the_vace_functions_run_on_the_dashscope_simulator",
    "test_wan_editing.py::test_each_vace_function_previews_offline_at_720p_for_5_s_silent_then_all_cached",
    "test_wan_editing.py::test_wan27_i2v_previews_offline_and_runs_on_the_dashscope_simulator",
    "test_wan_editing.py::test_animate_previews_last_as_long_as_the_driving_clip_offline_then_run_on_the_simulator",
    "test_wan_editing.py::test_video_and_image_edits_preview_offline_and_run_on_the_dashscope_simulator",
    "test_wan_editing.py::test_the_face_check_runs_before_each_paid_s2v_create_with_its_cost_in_the_plan",
    "test_wan_editing.py::test_s2v_previews_as_long_as_its_speech_with_the_speech_as_sound",
    "test_wan_editing.py::test_a_large_portrait_is_checked_through_an_upload_made_for_the_check_model",
    "test_cluster.py::test_the_schedulers_key_locks_do_not_grow_with_the_rows",
    "test_api_workflow.py::test_the_api_with_provider_dashscope_from_another_folder_uses_the_same_project",
    "test_report_browser.py::test_matrix_report_is_a_three_by_two_grid",
    "test_wan_family.py::test_the_example_runs_on_dashscope_with_the_documented_routes_and_fields",
    "test_wan_family.py::test_the_example_chain_runs_offline_with_the_asked_shapes_then_all_cached",
    "test_fanout_matrix_lock.py::test_explain_names_exactly_the_affected_steps_and_fields",
    "test_fanout_matrix_lock.py::test_frozen_refuses_with_a_diff_when_a_var_would_change_a_request",
    "test_one_plan.py::test_budget_counts_only_what_can_run",
    "test_one_plan.py::test_reseeded_steps_run_with_the_seeds_the_plan_drew",
    "test_bad_setup.py::test_an_unreachable_s3_store_is_exit_2_within_seconds",
    "test_wan_family.py::test_vtrix_ids_run_on_the_vtrix_simulator",
    "test_official_sdk.py::test_r2v_with_local_reference_clips_under_either_documented_field",
    "test_media_and_cost.py::test_image_over_10_mb_is_re_encoded_under_the_limit",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the slow tier (every parametrized variant of a listed test)."""
    for item in items:
        name = f"{item.path.name}::{item.originalname}" if isinstance(item, pytest.Function) else item.nodeid
        if name in SLOW_TIER:
            item.add_marker(pytest.mark.slow)
