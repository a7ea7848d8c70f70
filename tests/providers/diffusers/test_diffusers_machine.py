"""provider: diffusers and the machine: the cache key holds the resolved device and dtype (never
``auto``), and ``--provider`` leaves an open-weights step on diffusers, alike in plan, explain and run.
Tiny random-weight pipelines on the CPU, loaded by path (docs/decisions.md, "Open weights")."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytest.importorskip("diffusers", reason="the diffusers extra is not installed: pip install -e '.[diffusers]'")
os.environ["HF_HUB_OFFLINE"] = "1"  # never the hub

import wanflow
from diffusers_helpers import TINY, run_project, save_tiny_wan, write_pipeline
from wanflow._exceptions import PipelineError


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny saved text-to-video pipeline."""
    return {"t2v": save_tiny_wan(tmp_path_factory.mktemp("weights") / "t2v", "t2v")}


def _clip(params: dict[str, object]) -> str:
    return f"""
        steps:
          clip:
            model: ./t2v
            prompt: a fox on some machine
            params: {dict(TINY, **params)}
        """


def _changed(path: Path, project: Path) -> list[str]:
    (explained,) = wanflow.explain(path, workspace=wanflow.Workspace.discover(project)).values()
    return explained[0].changed


def test_the_cache_key_holds_the_resolved_device_and_dtype_not_auto_and_not_offload(
        project: Path, weights: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_pipeline(project, weights, _clip({"device": "auto"}))
    first = run_project(path, project).steps["clip"]
    assert first.status == "ran", first.error
    assert first.request is not None and first.request["machine"] == {"device": "cpu", "dtype": "float32"}
    assert "device" not in first.request["params"]
    lock = json.loads((project / "p.lock").read_text("utf-8"))["instances"]["default"]["steps"]["clip"]
    assert lock["engine"]["device"] == "cpu" and lock["engine"]["dtype"] == "float32"

    # What auto resolves to on this machine, written out, and an offload: the same frames, cached.
    write_pipeline(project, weights, _clip({"device": "cpu", "dtype": "float32", "offload": "model"}))
    same = run_project(path, project).steps["clip"]
    assert same.status == "cached" and same.cache_key == first.cache_key

    # Another precision makes other frames: it runs again, and explain names the change.
    write_pipeline(project, weights, _clip({"dtype": "bfloat16"}))
    assert _changed(path, project) == ["machine.dtype: float32 -> bfloat16"]
    bf16 = run_project(path, project).steps["clip"]
    assert bf16.status == "ran" and bf16.cache_key != first.cache_key
    assert bf16.provider_info["dtype"] == "bfloat16"

    # On a host with a CUDA GPU, auto is cuda in bfloat16: not the CPU's cached frames. (No GPU
    # here: torch is told it has one; nothing runs, the plan decides from the resolved key.)
    import torch

    write_pipeline(project, weights, _clip({"device": "auto"}))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    unit = wanflow.plan(path, workspace=wanflow.Workspace.discover(project)).units["default"][0]
    assert unit.status == "run" and unit.cache_key not in (first.cache_key, bf16.cache_key)
    assert "machine.device: cpu -> cuda" in _changed(path, project)


MIXED = """
steps:
  clip:
    model: ./t2v
    prompt: a fox drafted on your GPU
    params: {TINY}
  still:
    model: wan2.6-t2i
    provider: local
    prompt: a fox portrait
    params: {size: 1280*1280, n: 1}
"""


def test_provider_moves_the_service_steps_and_leaves_open_weights_on_diffusers_in_plan_explain_and_run(
        project: Path, weights: dict[str, Path]) -> None:
    path = write_pipeline(project, weights, MIXED.replace("{TINY}", str(TINY)))
    plan = wanflow.plan(path, provider="dashscope", workspace=wanflow.Workspace.discover(project))
    assert {unit.step_id: unit.provider for unit in plan.units["default"]} == {"clip": "diffusers", "still": "dashscope"}
    notes = [warning.format() for warning in plan.pipeline.warnings]
    assert any("steps.clip.model: stays on provider diffusers: ./t2v is open weights, which --provider dashscope "
               "cannot run" in note for note in notes), notes
    with pytest.raises(PipelineError, match="stays on provider diffusers"):
        wanflow.load_pipeline(path, provider_override="dashscope", strict=True)

    result = wanflow.run(path, provider="local", workspace=wanflow.Workspace.discover(project), report=False)
    assert isinstance(result, wanflow.RunResult) and result.ok
    assert (result.steps["clip"].provider, result.steps["still"].provider) == ("diffusers", "local")
    (explained,) = wanflow.explain(path, provider="local", workspace=wanflow.Workspace.discover(project)).values()
    assert [unit.status for unit in explained] == ["cached", "cached"]


def test_an_open_weights_step_the_file_puts_on_a_service_is_refused_naming_the_step(
        project: Path, weights: dict[str, Path]) -> None:
    path = write_pipeline(project, weights, MIXED.replace("{TINY}", str(TINY)).replace(
        "    prompt: a fox drafted", "    provider: dashscope\n    prompt: a fox drafted"))
    with pytest.raises(PipelineError) as caught:
        wanflow.load_pipeline(path)
    text = "\n".join(problem.format() for problem in caught.value.diagnostics)
    assert "steps.clip.model: ./t2v is open weights: it runs on your own GPU with provider diffusers, not dashscope" in text
