"""The local preview provider renders real, deterministic PNG and MP4 files shaped like the request."""

from __future__ import annotations

import math
import wave
from pathlib import Path

import av
import numpy as np
from PIL import Image

import wanflow
from conftest import EXAMPLES


def _run(write_pipeline, text: str, workspace) -> wanflow.RunResult:
    result = wanflow.run(wanflow.load_pipeline(write_pipeline(text)), workspace=workspace)
    assert result.ok, {k: s.error for k, s in result.steps.items()}
    return result


def test_text_to_image_size_count_and_preview_marking(write_pipeline, workspace):
    result = _run(write_pipeline, """
        name: t2i
        steps:
          hero: {model: wan2.6-t2i, prompt: a red kite, params: {size: 1104*1472, n: 3}}
        """, workspace)
    files = result.steps["hero"].files
    assert len(files) == 3
    for file in files:
        with Image.open(file.path) as image:
            assert image.format == "PNG" and image.size == (1104, 1472)
            assert "not a Wan model output" in image.text["Comment"]
    hashes = {file.artifact.sha256 for file in files}
    assert len(hashes) == 3, "each image of n differs"


def test_text_to_image_is_deterministic_and_follows_seed_and_prompt(project):
    from wanflow.preview.images import render_text_to_image

    first = render_text_to_image("a kite", 5, (1280, 1280), 0, "m").tobytes()
    assert first == render_text_to_image("a kite", 5, (1280, 1280), 0, "m").tobytes()
    assert first != render_text_to_image("a kite", 6, (1280, 1280), 0, "m").tobytes()
    assert first != render_text_to_image("a boat", 5, (1280, 1280), 0, "m").tobytes()


def test_edit_composites_its_inputs_and_follows_the_size_tier(write_pipeline, workspace, project):
    Image.new("RGB", (900, 1200), (200, 30, 30)).save(project / "tall.png")
    Image.new("RGB", (1600, 900), (30, 30, 200)).save(project / "wide.jpg")
    result = _run(write_pipeline, """
        name: edit
        steps:
          tiered: {model: wan2.6-image, prompt: fuse them, images: [tall.png, wide.jpg], params: {size: 1K}}
          explicit: {model: wan2.6-image, prompt: fuse them, images: [wide.jpg], params: {size: 1024*1536, n: 2}}
        """, workspace)
    with Image.open(result.steps["tiered"].files[0].path) as image:
        # 1K keeps the last input's 16:9 aspect at about 1280x1280 pixels, in multiples of 16.
        assert image.width % 16 == 0 and image.height % 16 == 0
        assert abs(image.width / image.height - 16 / 9) < 0.02
        assert abs(image.width * image.height - 1280 * 1280) / (1280 * 1280) < 0.03
        # The red input shows up in the composite.
        pixels = np.asarray(image.convert("RGB"))
        assert (pixels[..., 0].astype(int) - pixels[..., 2]).max() > 80
    assert [Image.open(f.path).size for f in result.steps["explicit"].files] == [(1024, 1536), (1024, 1536)]


def test_interleaved_mode_produces_text_and_images(write_pipeline, workspace):
    result = _run(write_pipeline, """
        name: story
        steps:
          story: {model: wan2.6-image, prompt: a three-panel story of a kite, params: {enable_interleave: true, n: 1, max_images: 3}}
        """, workspace)
    step = result.steps["story"]
    assert [file.label for file in step.files] == ["images[0]", "images[1]", "images[2]", "text"]
    text = step.files[-1].path.read_text()
    assert "a three-panel story of a kite" in text and "not a Wan model output" in text


def _video_facts(path: Path) -> dict:
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        facts = {
            "codec": video.codec_context.name,
            "size": (video.width, video.height),
            "duration": container.duration / 1e6,
            "audio": [s.codec_context.name for s in container.streams.audio],
            "comment": container.metadata.get("comment", ""),
            "frames": sum(1 for _ in container.decode(video=0)),
        }
    return facts


def test_image_to_video_is_real_h264_with_duration_resolution_and_audio(write_pipeline, workspace, project):
    Image.new("RGB", (1600, 900), (20, 120, 60)).save(project / "frame.png")
    result = _run(write_pipeline, """
        name: i2v
        steps:
          silent: {model: wan2.6-i2v, image: frame.png, prompt: pan, params: {resolution: 720P, duration: 2, audio: false}}
          loud: {model: wan2.6-i2v, image: frame.png, prompt: pan, params: {resolution: 1080P, duration: 3, audio: true}}
        """, workspace)
    silent = _video_facts(result.steps["silent"].files[0].path)
    assert silent["codec"] == "h264" and silent["audio"] == []
    assert silent["size"] == (1280, 720)
    assert math.isclose(silent["duration"], 2.0, abs_tol=0.1)
    assert silent["frames"] == 2 * 16
    assert "not a Wan model output" in silent["comment"]
    loud = _video_facts(result.steps["loud"].files[0].path)
    assert loud["size"] == (1920, 1080) and loud["audio"] == ["aac"]
    assert math.isclose(loud["duration"], 3.0, abs_tol=0.1)


def test_audio_input_is_used_and_audio_false_wins(write_pipeline, workspace, project):
    Image.new("RGB", (800, 800), (90, 20, 90)).save(project / "frame.png")
    samples = (np.sin(np.arange(44100 * 4) * 2 * np.pi * 440 / 44100) * 20000).astype("<i2")
    with wave.open(str(project / "voice.wav"), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(44100)
        handle.writeframes(samples.tobytes())
    result = _run(write_pipeline, """
        name: audio
        steps:
          with_track: {model: wan2.6-i2v, image: frame.png, audio: voice.wav, params: {resolution: 720P, duration: 2}}
          muted: {model: wan2.6-i2v, image: frame.png, audio: voice.wav, params: {resolution: 720P, duration: 2, audio: false}}
        """, workspace)
    assert _video_facts(result.steps["with_track"].files[0].path)["audio"] == ["aac"]
    assert _video_facts(result.steps["muted"].files[0].path)["audio"] == []
    # The audio file is part of the request, by content hash.
    assert result.steps["with_track"].request["inputs"]["audio"][0].startswith("sha256:")


def test_same_request_gives_byte_identical_video(project, tmp_path):
    from wanflow.preview.video import render_image_to_video

    frame = Image.new("RGB", (640, 640), (10, 200, 200))
    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    for path in (a, b):
        render_image_to_video(frame, path, seed=9, resolution="720P", seconds=2, with_audio=True, audio_path=None, model="m")
    assert a.read_bytes() == b.read_bytes()


def test_product_ad_example_runs_offline_end_to_end(workspace, project):
    import shutil

    shutil.copytree(EXAMPLES / "product-ad", project / "product-ad")  # a run writes its lockfile beside the pipeline
    result = wanflow.run(wanflow.load_pipeline(project / "product-ad/product-ad.yaml"), workspace=workspace)
    assert result.ok
    assert result.preview
    assert {name: len(files) for name, files in result.outputs.items()} == {"poster": 1, "beach_clip": 1, "city_clip": 1}
    for name in ("beach_clip", "city_clip"):
        facts = _video_facts(result.outputs[name][0].path)
        assert facts["codec"] == "h264" and math.isclose(facts["duration"], 5.0, abs_tol=0.1)
    assert _video_facts(result.outputs["city_clip"][0].path)["audio"] == ["aac"]
    assert _video_facts(result.outputs["beach_clip"][0].path)["audio"] == []
    # Two branches (beach and city) really ran at the same time.
    beach, city = result.steps["beach_clip"], result.steps["city_clip"]
    assert beach.started_at < city.finished_at and city.started_at < beach.finished_at
