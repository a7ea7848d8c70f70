"""Input media checks, conforming between steps, and cost estimates, budgets and reported costs."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import wanflow
from conftest import InstrumentedProvider, Recorder
from wanflow.catalog.loader import load_catalog
from wanflow.catalog.pricing import estimate, list_price
from wanflow.cli.main import main
from wanflow.pipelines.static_checks import static_requests


def _wav(path: Path, seconds: float, rate: int = 8000) -> Path:
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(b"\x01\x00" * int(rate * seconds))
    return path


def _load_errors(path: Path) -> list[str]:
    with pytest.raises(wanflow.PipelineError) as caught:
        wanflow.load_pipeline(path)
    return [d.format() for d in caught.value.diagnostics]


# --- input media ---------------------------------------------------------------------------------

def test_unsupported_image_format_is_an_error(write_pipeline, project):
    Image.new("RGB", (500, 500)).save(project / "anim.gif")
    path = write_pipeline("name: m\nsteps:\n  a: {model: wan2.6-image, prompt: x, images: [anim.gif]}\n")
    (error,) = _load_errors(path)
    assert "pipe.yaml:3:" in error and "steps.a.images[0]" in error and "not a supported image" in error


@pytest.mark.parametrize("damage", ["truncated", "cut before IEND", "bit flipped"])
def test_a_damaged_png_is_rejected_without_decoding_it(tmp_path, damage):
    from wanflow._exceptions import MediaError
    from wanflow.media.probe import probe

    Image.effect_noise((300, 200), 60).convert("RGB").save(tmp_path / "ok.png")
    data = bytearray((tmp_path / "ok.png").read_bytes())
    assert probe(tmp_path / "ok.png").width == 300
    if damage == "truncated":
        data = data[: len(data) // 3]
    elif damage == "cut before IEND":
        data = data[:-12]
    else:
        data[len(data) // 2] ^= 0xFF
    (tmp_path / "bad.png").write_bytes(bytes(data))
    with pytest.raises(MediaError, match="not a readable image"):
        probe(tmp_path / "bad.png")


def test_mislabeled_file_is_judged_by_content(write_pipeline, project):
    Image.new("RGB", (500, 500)).save(project / "photo.png", format="JPEG")  # a JPEG named .png
    path = write_pipeline("name: m\nsteps:\n  a: {model: wan2.6-image, prompt: x, images: [photo.png]}\n")
    request = static_requests(wanflow.load_pipeline(path))["a"]
    assert request.inputs["images"][0].media_type == "image/jpeg"


@pytest.mark.parametrize("seconds, ok", [(2.5, False), (3, True), (30, True), (31, False)])
def test_audio_duration_bounds(write_pipeline, project, seconds, ok):
    Image.new("RGB", (800, 800)).save(project / "frame.png")
    _wav(project / "voice.wav", seconds)
    path = write_pipeline("name: m\nsteps:\n  a: {model: wan2.6-i2v, image: frame.png, audio: voice.wav, params: {resolution: 720P}}\n")
    if ok:
        wanflow.load_pipeline(path)
    else:
        (error,) = _load_errors(path)
        assert "steps.a.audio" in error and "3 to 30 s" in error


def test_audio_over_15_mb_is_an_error(write_pipeline, project):
    Image.new("RGB", (800, 800)).save(project / "frame.png")
    with wave.open(str(project / "huge.wav"), "wb") as handle:
        handle.setnchannels(2), handle.setsampwidth(4), handle.setframerate(96000)
        handle.writeframes(b"\x01\x00\x00\x00" * 2 * 96000 * 25)  # 19.2 MB
    path = write_pipeline("name: m\nsteps:\n  a: {model: wan2.6-i2v, image: frame.png, audio: huge.wav, params: {resolution: 720P}}\n")
    (error,) = _load_errors(path)
    assert "steps.a.audio" in error and "at most 15 MB" in error


def test_out_of_bounds_image_is_an_error_with_conform_false(write_pipeline, project):
    Image.new("RGB", (2400, 1200)).save(project / "wide.png")
    path = write_pipeline("name: m\nsteps:\n  a: {model: wan2.6-i2v, image: wide.png, conform: false, params: {resolution: 720P}}\n")
    (error,) = _load_errors(path)
    assert "steps.a.image" in error and "2400x1200 is outside 360-2000 pixels per side" in error and "conform: false" in error


def test_image_that_cannot_fit_without_distortion_is_an_error(write_pipeline, project):
    Image.new("RGB", (300, 5000)).save(project / "sliver.png")
    path = write_pipeline("name: m\nsteps:\n  a: {model: wan2.6-i2v, image: sliver.png, params: {resolution: 720P}}\n")
    (error,) = _load_errors(path)
    assert "cannot be resized to 360-2000 pixels per side" in error


# --- conforming ----------------------------------------------------------------------------------

def _run(path: Path, workspace) -> wanflow.RunResult:
    result = wanflow.run(wanflow.load_pipeline(path), workspace=workspace)
    assert result.ok, {k: s.error for k, s in result.steps.items()}
    return result


def test_a_2048px_edit_output_flows_into_i2v_conformed_and_recorded(write_pipeline, workspace, project):
    Image.new("RGB", (1000, 1000), (200, 100, 20)).save(project / "square.png")
    path = write_pipeline("""
        name: big
        steps:
          edit: {model: wan2.6-image, prompt: x, images: [square.png], params: {size: 2K}}
          clip:
            model: wan2.6-i2v
            image: "{{ steps.edit.images[0] }}"
            params: {resolution: 720P, duration: 2}
        """)
    result = _run(path, workspace)
    edited = result.steps["edit"].outputs.images[0]
    assert (edited.width, edited.height) == (2048, 2048)
    (adaptation,) = result.steps["clip"].adaptations
    assert adaptation["input"] == "image" and adaptation["from"] == f"sha256:{edited.sha256}"
    assert adaptation["actions"] == ["resized 2048x2048 to 2000x2000"]
    record = json.loads(result.record_path.read_text())
    assert record["steps"]["clip"]["adaptations"] == [adaptation]
    assert record["steps"]["clip"]["request"]["adaptations"] == [adaptation]
    assert record["steps"]["clip"]["request"]["inputs"]["image"] == [adaptation["to"]]
    again = _run(path, workspace)
    assert {s.status for s in again.steps.values()} == {"cached"}


def test_conform_false_makes_an_oversized_upstream_output_fail_the_step(write_pipeline, workspace, project):
    Image.new("RGB", (1000, 1000)).save(project / "square.png")
    path = write_pipeline("""
        name: strict
        steps:
          edit: {model: wan2.6-image, prompt: x, images: [square.png], params: {size: 2K}}
          clip: {model: wan2.6-i2v, image: "{{ steps.edit.images[0] }}", conform: false, params: {resolution: 720P, duration: 2}}
        """)
    result = wanflow.run(wanflow.load_pipeline(path), workspace=workspace)
    assert result.steps["clip"].status == "failed"
    assert "2048x2048 is outside 360-2000" in result.steps["clip"].error


def test_transparent_png_is_flattened(write_pipeline, workspace, project):
    image = Image.new("RGBA", (600, 600), (255, 0, 0, 0))
    image.paste((0, 0, 255, 255), (100, 100, 500, 500))
    image.save(project / "cutout.png")
    path = write_pipeline("name: alpha\nsteps:\n  a: {model: wan2.6-image, prompt: x, images: [cutout.png]}\n")
    result = _run(path, workspace)
    (adaptation,) = result.steps["a"].adaptations
    assert adaptation["actions"] == ["flattened transparency onto white"]
    stored = workspace.store.path_for(adaptation["to"].removeprefix("sha256:"))
    with Image.open(stored) as flat:
        assert flat.mode == "RGB" and flat.getpixel((10, 10)) == (255, 255, 255) and flat.getpixel((300, 300)) == (0, 0, 255)


def test_image_over_10_mb_is_re_encoded_under_the_limit(write_pipeline, workspace, project):
    noise = np.random.default_rng(1).integers(0, 256, (2000, 2000, 3), dtype=np.uint8)
    Image.fromarray(noise).save(project / "noise.png", compress_level=0)
    assert (project / "noise.png").stat().st_size > 10 * 1048576
    path = write_pipeline("name: heavy\nsteps:\n  a: {model: wan2.6-image, prompt: x, images: [noise.png]}\n")
    result = _run(path, workspace)
    (adaptation,) = result.steps["a"].adaptations
    assert adaptation["actions"][0].startswith("re-encoded as JPEG quality")
    assert workspace.store.path_for(adaptation["to"].removeprefix("sha256:")).stat().st_size <= 10 * 1048576


def test_small_image_is_upscaled_to_the_minimum_side(write_pipeline, workspace, project):
    Image.new("RGB", (200, 300)).save(project / "tiny.png")
    path = write_pipeline("name: tiny\nsteps:\n  a: {model: wan2.6-image, prompt: x, images: [tiny.png]}\n")
    result = _run(path, workspace)
    assert result.steps["a"].adaptations[0]["actions"] == ["resized 200x300 to 240x360"]


def test_conforming_is_deterministic_so_reruns_hit_the_cache(write_pipeline, workspace, project, recorder):
    Image.new("RGBA", (3000, 1500), (0, 200, 0, 128)).save(project / "big.png")
    path = write_pipeline("name: det\nsteps:\n  a: {model: wan2.6-i2v, image: big.png, params: {resolution: 720P, duration: 2}}\n")
    first = _run(path, workspace)
    second = _run(path, workspace)
    assert second.steps["a"].status == "cached"
    assert second.steps["a"].cache_key == first.steps["a"].cache_key


# --- cost ----------------------------------------------------------------------------------------

class FakePaidProvider(InstrumentedProvider):
    """The local renderer dressed as a paid provider that reports the list price as its cost."""

    name = "dashscope"
    paid = True
    cache_salt = "test-paid"

    async def generate(self, request, context):
        result = await super().generate(request, context)
        result.info = {"cost_usd": list_price(request.model, request.params).usd, "task_id": f"task-{request.step_id}"}
        return result


@pytest.fixture
def paid(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    from wanflow.providers import registry as providers

    recorder = Recorder()
    monkeypatch.setitem(providers.BUILTIN_PROVIDERS, "dashscope", lambda project: FakePaidProvider(recorder))  # type: ignore[index]
    return recorder


AD = """
name: ad
steps:
  hero: {model: wan2.6-t2i, prompt: a shoe, params: {n: 2}}
  clip: {model: wan2.6-i2v, image: "{{ steps.hero.images[0] }}", params: {resolution: 720P, duration: 3}}
  long: {model: wan2.6-i2v, image: "{{ steps.hero.images[1] }}", params: {resolution: 1080P, duration: 2}}
"""


def test_list_prices_per_model():
    catalog = load_catalog()
    assert list_price(catalog.get("wan2.6-t2i"), {"n": 2}).usd == pytest.approx(0.06)
    assert list_price(catalog.get("wan2.6-i2v"), {"resolution": "720P", "duration": 5}).usd == pytest.approx(0.50)
    assert list_price(catalog.get("wan2.6-i2v"), {"resolution": "1080P", "duration": 10}).usd == pytest.approx(1.50)
    interleaved = {"enable_interleave": True, "max_images": 3, "n": 1}
    assert list_price(catalog.get("wan2.6-image"), interleaved).usd == pytest.approx(0.09)
    assert estimate(catalog.get("wan2.6-t2i"), {"n": 2}, "local").usd == 0.0


def test_plan_shows_costs_cached_steps_cost_nothing(write_pipeline, capsys, paid):
    path = write_pipeline(AD)
    assert main(["plan", str(path), "--provider", "dashscope", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    costs = {step: data["estimated_cost_usd"] for step, data in plan["steps"].items()}
    assert costs == pytest.approx({"hero": 0.06, "clip": 0.30, "long": 0.30})
    assert plan["estimated_cost_usd"] == pytest.approx(0.66)
    assert main(["run", str(path), "--provider", "dashscope", "--json"]) == 0
    capsys.readouterr()
    assert main(["plan", str(path), "--provider", "dashscope", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["estimated_cost_usd"] == 0
    assert {data["status"] for data in again["steps"].values()} == {"cached"}


def test_budget_refuses_to_start_when_the_estimate_is_over(write_pipeline, capsys, paid):
    path = write_pipeline(AD)
    assert main(["run", str(path), "--provider", "dashscope", "--budget", "0.65"]) == 2
    err = capsys.readouterr().err
    assert "estimated cost $0.66 exceeds --budget $0.65" in err and "nothing was run" in err
    assert paid.calls == []
    assert main(["run", str(path), "--provider", "dashscope", "--budget", "0.70"]) == 0
    assert len(paid.calls) == 3


def test_price_overrides_from_wanflow_toml(write_pipeline, capsys, paid, project):
    (project / "wanflow.toml").write_text('[prices."wan2.6-t2i"]\nusd = 0.05\n[prices."wan2.6-i2v".usd_by.resolution]\n"720P" = 0.2\n"1080P" = 0.3\n')
    assert main(["plan", str(write_pipeline(AD)), "--provider", "dashscope", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["estimated_cost_usd"] == pytest.approx(0.10 + 3 * 0.2 + 2 * 0.3)


def test_run_record_holds_reported_cost_per_step_and_total(write_pipeline, capsys, paid):
    assert main(["run", str(write_pipeline(AD)), "--provider", "dashscope", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    record = json.loads(Path(summary["record"]).read_text())
    assert record["steps"]["hero"]["cost_usd"] == pytest.approx(0.06)
    assert record["steps"]["long"]["cost_usd"] == pytest.approx(0.30)
    assert record["steps"]["clip"]["estimated_cost_usd"] == pytest.approx(0.30)
    assert record["totals"]["cost_usd"] == pytest.approx(0.66)
    assert record["steps"]["hero"]["provider_info"]["task_id"] == "task-hero"
    assert "preview" not in record
