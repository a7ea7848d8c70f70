"""Previews worth looking at: no ghost captions, the i2v prompt on screen, instances that differ."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
from PIL import Image

from wanflow.cli.main import main
from wanflow.preview.chrome import banner_height, caption_band_height, is_preview, strip_chrome
from wanflow.preview.images import render_edit, render_text_to_image, save_png
from wanflow.preview.mood import mood_of
from wanflow.preview.video import render_image_to_video
from wanflow.providers.local import LocalPreviewProvider


def _saved_preview(tmp_path: Path, prompt: str = "a lighthouse with a long caption to wrap " * 3) -> Image.Image:
    path = tmp_path / "t2i.png"
    save_png(render_text_to_image(prompt, 7, (1280, 1280), 0, "wan2.6-t2i"), path, "test")
    with Image.open(path) as image:
        image.load()
        return image.convert("RGB")


def test_an_input_preview_loses_its_banner_and_caption(tmp_path):
    preview = _saved_preview(tmp_path)
    assert is_preview(preview)
    stripped = strip_chrome(preview)
    assert stripped.size == (1280, 1280 - banner_height(1280) - caption_band_height(1280, 1280))
    assert not is_preview(stripped) and strip_chrome(stripped) is stripped, "stripping twice cuts nothing more"
    # After a re-encode that dropped the text chunk, the banner itself still tells.
    plain = Image.frombytes("RGB", preview.size, preview.tobytes())
    assert not plain.info and is_preview(plain)
    assert not is_preview(Image.new("RGB", (800, 600), (20, 20, 20)).crop((0, 0, 800, 10)))
    # The edit never sees the input's chrome: same output with or without it.
    with_chrome = render_edit("make it blue", 3, (1280, 1280), [preview], 0, "wan2.6-image")
    without = render_edit("make it blue", 3, (1280, 1280), [stripped], 0, "wan2.6-image")
    assert with_chrome.tobytes() == without.tobytes()


def test_edit_inputs_are_never_mirrored():
    source = Image.new("RGB", (800, 800), (255, 255, 255))
    source.paste((0, 0, 0), (0, 0, 400, 800))  # dark left half
    for seed in range(8):
        out = np.asarray(render_edit("x", seed, (800, 800), [source], 0, "m").convert("L"), dtype=float)
        middle = out[200:600]
        assert middle[:, :300].mean() < middle[:, 500:].mean(), f"seed {seed}: the dark half moved to the right"


def _frame(path: Path, index: int = 8) -> np.ndarray:
    with av.open(str(path)) as container:
        for number, frame in enumerate(container.decode(video=0)):
            if number == index:
                return frame.to_ndarray(format="rgb24").astype(int)
    raise AssertionError("too few frames")


def test_the_i2v_preview_shows_its_own_prompt(tmp_path):
    first = Image.new("RGB", (832, 480), (90, 140, 200))
    render_image_to_video(first, tmp_path / "plain.mp4", seed=1, resolution="480P", seconds=1, with_audio=False,
                          audio_path=None, model="wan2.6-i2v")
    render_image_to_video(first, tmp_path / "captioned.mp4", seed=1, resolution="480P", seconds=1, with_audio=False,
                          audio_path=None, model="wan2.6-i2v", prompt="slow orbit around the kite")
    plain, captioned = _frame(tmp_path / "plain.mp4"), _frame(tmp_path / "captioned.mp4")
    band = caption_band_height(*plain.shape[1::-1], lines=1)
    height = plain.shape[0]
    bottom = slice(height - band + 4, height - 8)
    assert np.abs(plain[bottom] - captioned[bottom]).mean() > 20, "the caption band is drawn"
    assert np.abs(plain[60:height - band - 10] - captioned[60:height - band - 10]).mean() < 2, "the picture is untouched"


def test_prompt_words_steer_the_palette():
    assert mood_of("a red kite").hue == 0.0 and mood_of("a kite, then make it blue").hue == 0.6
    noir, watercolor = mood_of("in neon noir style"), mood_of("in watercolor style")
    assert noir.value < watercolor.value
    red = np.asarray(render_text_to_image("a red kite", 5, (640, 640), 0, "m"), dtype=float)[40:500].mean(axis=(0, 1))
    blue = np.asarray(render_text_to_image("a blue kite", 5, (640, 640), 0, "m"), dtype=float)[40:500].mean(axis=(0, 1))
    assert red[0] > red[2] and blue[2] > blue[0]


def test_matrix_instances_look_different_while_seeds_stay_as_locked(tmp_path, monkeypatch, capsys):
    from conftest import EXAMPLES

    monkeypatch.chdir(tmp_path)
    pipeline = tmp_path / "style-matrix.yaml"
    pipeline.write_text((EXAMPLES / "style-matrix/style-matrix.yaml").read_text("utf-8"), "utf-8")
    assert main(["run", str(pipeline), "--no-report"]) == 0
    lock = json.loads((tmp_path / "style-matrix.lock").read_text("utf-8"))
    seeds = {entry["steps"]["styled"]["seed"] for entry in lock["instances"].values()}
    assert len(seeds) == 1, "every instance keeps the seed derived from the pipeline seed and step id"
    posters = sorted((tmp_path / "out/style-matrix").glob("*/poster.png"))
    assert len(posters) == 6
    means = [np.asarray(Image.open(path).convert("RGB"), dtype=float)[60:1000].mean(axis=(0, 1)) for path in posters]
    for index, one in enumerate(means):
        for other in means[index + 1:]:
            assert np.abs(one - other).sum() > 6, "each instance's vars reach its colours"


def test_preview_changes_moved_the_cache_salt():
    assert LocalPreviewProvider.cache_salt == "local:preview-2"
