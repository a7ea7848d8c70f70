"""provider: diffusers, end to end on the CPU with tiny random-weight Wan pipelines loaded by path.

The pipelines are built in code and saved with save_pretrained (tests/diffusers_helpers.py);
nothing reaches the Hugging Face hub (HF_HUB_OFFLINE=1). Skipped, with the reason, without the
``diffusers`` extra; CI installs it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import anyio
import numpy as np
import pytest

pytest.importorskip("diffusers", reason="the diffusers extra is not installed: pip install -e '.[diffusers]'")
os.environ["HF_HUB_OFFLINE"] = "1"  # never the hub, also in subprocesses

import wanflow
from diffusers_helpers import FRAMES, SIDE, TINY, read_frames, run_project, save_tiny_wan, write_pipeline, write_png
from wanflow._exceptions import PipelineError, UsageError


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny saved pipelines, built once for this module: text-to-video and image-to-video."""
    root = tmp_path_factory.mktemp("weights")
    return {kind: save_tiny_wan(root / kind, kind) for kind in ("t2v", "i2v")}


T2V_AND_I2V = f"""
steps:
  clip:
    model: ./t2v
    prompt: a red fox in fresh snow
    params: {TINY}
  moving:
    model: ./i2v
    image: fox.png
    prompt: the fox starts to run
    params: {TINY}
outputs: {{clip: "{{{{ steps.clip.video }}}}", moving: "{{{{ steps.moving.video }}}}"}}
"""


def test_text_and_image_to_video_make_mp4s_of_the_asked_frames_and_size_with_progress(project: Path, weights: dict[str, Path]) -> None:
    write_png(project / "fox.png")
    result = run_project(write_pipeline(project, weights, T2V_AND_I2V), project)
    assert result.ok, {step: s.error for step, s in result.steps.items()}
    for step in ("clip", "moving"):
        frames = read_frames(project / "out" / "gpu" / f"{step}.mp4")
        assert frames.shape == (FRAMES, SIDE, 2 * SIDE, 3)
        assert frames.std() > 0  # a model's output, not a blank
        events = [event["message"] for event in result.steps[step].events]
        assert events[-1] == "denoising step 2/2" and "denoising step 1/2" in events
        info = result.steps[step].provider_info
        assert info["device"] == "cpu" and info["dtype"] == "float32" and info["weights"].startswith("sha256:")
    engine = json.loads((project / "p.lock").read_text("utf-8"))["instances"]["default"]["steps"]["moving"]["engine"]
    assert set(engine) == {"weights", "diffusers", "torch", "device", "dtype"} and engine["weights"].startswith("sha256:")


def test_rerun_is_cached_a_clean_cache_gives_the_same_frames_and_new_weights_run_again(project: Path, weights: dict[str, Path]) -> None:
    path = write_pipeline(project, weights, """
        steps:
          clip:
            model: ./t2v
            prompt: a lighthouse at dusk
            params: {TINY}
        outputs: {clip: "{{ steps.clip.video }}"}
        """.replace("{TINY}", str(TINY)))
    first = run_project(path, project)
    before = read_frames(project / "out" / "gpu" / "clip.mp4")
    assert run_project(path, project).steps["clip"].status == "cached"

    shutil.rmtree(project / ".wanflow")
    shutil.rmtree(project / "out")
    clean = run_project(path, project)
    assert clean.steps["clip"].status == "ran"
    assert np.array_equal(read_frames(project / "out" / "gpu" / "clip.mp4"), before)
    assert clean.steps["clip"].cache_key == first.steps["clip"].cache_key

    shutil.rmtree(project / "t2v")
    save_tiny_wan(project / "t2v", "t2v", seed=5)  # other weights, same path
    changed = run_project(path, project)
    assert changed.steps["clip"].status == "ran"
    assert changed.steps["clip"].cache_key != first.steps["clip"].cache_key
    assert not np.array_equal(read_frames(project / "out" / "gpu" / "clip.mp4"), before)


def test_without_the_extra_a_clear_error_comes_before_anything_runs(project: Path, weights: dict[str, Path],
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_pipeline(project, weights, T2V_AND_I2V.replace("image: fox.png", "image: fox.png\n    needs: [clip]"))
    write_png(project / "fox.png")
    monkeypatch.setitem(sys.modules, "diffusers", None)  # what an environment without the package shows
    with pytest.raises(UsageError, match=r"pip install 'wanflow\[diffusers\]'"):
        run_project(path, project)
    assert not (project / "out").exists() and not (project / ".wanflow" / "runs").exists()


@pytest.mark.parametrize(("params", "problem"), [
    ({"height": 20}, "20 is not a multiple of 16"),
    ({"num_frames": 6}, "(num_frames - 1) must be a multiple of 4"),
    ({"offload": "cpu"}, "'cpu' is not allowed"),
    ({"guidance_scale": "high"}, "expected a number"),
])
def test_bad_params_are_located_errors_before_anything_runs(project: Path, weights: dict[str, Path],
                                                            params: dict[str, object], problem: str) -> None:
    path = write_pipeline(project, weights, f"""
        steps:
          clip:
            model: ./t2v
            prompt: a fox
            params: {dict(TINY, **params)}
        """)
    with pytest.raises(PipelineError) as caught:
        wanflow.load_pipeline(path)
    assert problem in str(caught.value) and "p.yaml:" in str(caught.value), str(caught.value)


def test_catalog_ids_check_native_sizes_and_need_the_diffusers_provider(project: Path) -> None:
    path = project / "p.yaml"
    path.write_text("name: ids\nsteps:\n  a:\n    model: wan2.1-t2v-1.3b\n    provider: diffusers\n    prompt: x\n"
                    "    params: {width: 1280, height: 720}\n  b:\n    model: wan2.2-ti2v-5b\n    prompt: y\n", "utf-8")
    with pytest.raises(PipelineError) as caught:
        wanflow.load_pipeline(path)
    text = "\n".join(d.format() for d in caught.value.diagnostics)
    assert "1280x720 is not a native size of wan2.1-t2v-1.3b" in text and "width 832 height 480" in text
    assert "wan2.2-ti2v-5b is open weights: it runs on your own GPU with provider diffusers, not local" in text


def test_a_folder_that_is_not_a_wan_pipeline_is_a_located_error(project: Path) -> None:
    (project / "sd").mkdir()
    (project / "sd" / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}', "utf-8")
    path = project / "p.yaml"
    path.write_text("name: sd\ndefaults: {provider: diffusers}\nsteps:\n  a:\n    model: ./sd\n    prompt: x\n", "utf-8")
    with pytest.raises(PipelineError, match="'StableDiffusionPipeline', which is not a Wan pipeline"):
        wanflow.load_pipeline(path)


def test_out_of_memory_names_offload_dtype_or_size_and_the_other_steps_go_on(project: Path, weights: dict[str, Path]) -> None:
    """A memory cap (RLIMIT_AS) set after the libraries load: the big step cannot allocate its frames."""
    big = dict(TINY, height=512, width=512, num_frames=81)
    path = write_pipeline(project, weights, f"""
        steps:
          small:
            model: ./t2v
            prompt: a small fox
            params: {TINY}
          huge:
            model: ./t2v
            prompt: a huge fox
            params: {big}
        """)
    script = textwrap.dedent(f"""
        import resource, sys, threading
        import diffusers, torch, transformers, wanflow
        torch.set_num_threads(1)
        threading.stack_size(1 << 20)  # worker threads must still start under the cap (8 MiB stacks each by default)
        with open("/proc/self/status") as status:
            vm = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
        resource.setrlimit(resource.RLIMIT_AS, (vm + 1024 * 2**20, resource.RLIM_INFINITY))
        result = wanflow.run({str(path)!r}, report=False)
        for step in ("small", "huge"):
            print(step, result.steps[step].status, result.steps[step].error)
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=project, capture_output=True, text=True, timeout=300)
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines() if line.startswith(("small ", "huge ")))
    assert lines["small"].startswith("ran"), done.stdout + done.stderr
    assert lines["huge"].startswith("failed"), done.stdout + done.stderr
    assert "ran out of memory" in lines["huge"] and "offload: model" in lines["huge"] and "smaller size" in lines["huge"]


def test_cancelling_stops_between_denoising_steps(project: Path, weights: dict[str, Path]) -> None:
    from wanflow.pipelines.load import load_pipeline
    from wanflow.pipelines.resolve import resolve_step
    from wanflow.providers.base import GenerationContext
    from wanflow.providers.diffusers.provider import DiffusersProvider

    path = write_pipeline(project, weights, f"""
        steps:
          long:
            model: ./t2v
            prompt: a long fox
            params: {dict(TINY, num_inference_steps=400)}
        """)
    pipeline = load_pipeline(path)
    request, problems = resolve_step(pipeline, pipeline.steps["long"], {}, media=None)  # type: ignore[arg-type]  # no media
    assert request is not None, problems
    seen: list[str] = []

    async def main() -> None:
        with anyio.CancelScope() as scope:
            def log(line: str) -> None:
                seen.append(line)
                if line == "denoising step 3/400":
                    scope.cancel()
            await DiffusersProvider().generate(request, GenerationContext(workdir=project, log=log))
        await anyio.sleep(0.5)  # a thread still denoising would log more now

    anyio.run(main)
    assert seen[-1] in ("denoising step 3/400", "denoising step 4/400"), seen[-3:]
    assert not (project / "video.mp4").exists()


def _cluster_run(project: Path, path: Path, gpu: bool) -> wanflow.RunResult:
    pytest.importorskip("distributed", reason="Dask's distributed is not installed: pip install -e '.[cluster]'")
    from distributed import LocalCluster

    resources = {"GPU": 1} if gpu else {}
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None,
                      resources=resources) as cluster:  # addressed as a remote scheduler: units are routed by resource
        result = wanflow.run(path, workspace=wanflow.Workspace.discover(project), report=False, cluster=cluster.scheduler_address)
    assert isinstance(result, wanflow.RunResult)
    return result


def test_on_a_cluster_open_weights_need_a_worker_that_declares_a_gpu(project: Path, weights: dict[str, Path]) -> None:
    path = write_pipeline(project, weights, f"""
        steps:
          clip:
            model: ./t2v
            prompt: a fox on a cluster
            params: {TINY}
        """)
    with pytest.raises(UsageError, match=r"no worker of the cluster declares a GPU: .*--resources GPU=1"):
        _cluster_run(project, path, gpu=False)
    assert not list(project.glob("out/**/*.mp4")) and not list(project.glob(".wanflow/runs/*.json"))
    result = _cluster_run(project, path, gpu=True)
    assert result.ok and result.steps["clip"].status == "ran", result.steps["clip"].error
    assert result.steps["clip"].provider_info["device"] == "cpu"


def test_first_and_last_frame_to_video_from_an_image_to_video_folder(project: Path, weights: dict[str, Path]) -> None:
    from PIL import Image

    Image.new("RGB", (64, 32), (250, 20, 20)).save(project / "first.png")
    Image.new("RGB", (64, 32), (20, 20, 250)).save(project / "last.png")
    path = write_pipeline(project, weights, f"""
        steps:
          flf:
            model: ./i2v
            first_frame: first.png
            last_frame: last.png
            prompt: red turns to blue
            params: {TINY}
          missing:
            model: ./i2v
            first_frame: first.png
            prompt: no last frame
            params: {TINY}
        """)
    with pytest.raises(PipelineError, match="last_frame"):
        wanflow.load_pipeline(path)
    path.write_text(path.read_text("utf-8").split("  missing:")[0], "utf-8")
    result = run_project(path, project)
    assert result.ok, result.steps["flf"].error
    assert set(result.steps["flf"].request["inputs"]) == {"first_frame", "last_frame"}
    frames = read_frames(next(project.glob("out/gpu/**/*.mp4")))
    assert frames.shape == (FRAMES, SIDE, 2 * SIDE, 3)


def _workers(project: Path, path: Path) -> dict[str, int]:
    """Run ``path`` on a cluster of two in-process workers, ``gpu`` (declares GPU=1) and ``cpu``
    (declares nothing), addressed as a remote scheduler; how many units each one executed."""
    pytest.importorskip("distributed", reason="Dask's distributed is not installed: pip install -e '.[cluster]'")
    from distributed import Scheduler, SpecCluster, Worker

    workers = {"gpu": {"cls": Worker, "options": {"nthreads": 2, "resources": {"GPU": 1}}},
               "cpu": {"cls": Worker, "options": {"nthreads": 2}}}
    with SpecCluster(scheduler={"cls": Scheduler, "options": {"dashboard_address": None}}, workers=workers) as cluster:
        result = wanflow.run(path, workspace=wanflow.Workspace.discover(project), report=False, cluster=cluster.scheduler_address)
        assert isinstance(result, wanflow.BatchResult) and result.ok, result
        return {name: worker.state.executed_count for name, worker in cluster.workers.items()}


def test_on_a_cluster_gpu_units_go_only_to_the_worker_that_declares_a_gpu(project: Path, weights: dict[str, Path]) -> None:
    styles = "[dawn, noon, dusk, night, fog, rain]"
    gpu = write_pipeline(project, weights, f"""
        vars: {{style: dawn}}
        matrix: {{style: {styles}}}
        steps:
          clip:
            model: ./t2v
            prompt: "a fox at {{{{ vars.style }}}}"
            params: {TINY}
        """)
    assert _workers(project, gpu) == {"gpu": 6, "cpu": 0}
    # The same cluster shares out units that need no GPU: the cpu worker is not merely idle.
    preview = project / "preview.yaml"
    preview.write_text(f"name: preview\nvars: {{style: dawn}}\nmatrix: {{style: {styles}}}\nsteps:\n"
                       "  still: {model: wan2.6-t2i, prompt: 'a fox at {{ vars.style }}', params: {n: 1}}\n", "utf-8")
    counts = _workers(project, preview)
    assert counts["cpu"] > 0 and sum(counts.values()) == 6, counts
