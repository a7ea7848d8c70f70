"""provider: diffusers inputs and outputs beyond one clip: VACE's video, mask and reference images,
and ``num_frames: 1`` as a picture. Tiny random-weight pipelines on the CPU, loaded by path."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("diffusers", reason="the diffusers extra is not installed: pip install -e '.[diffusers]'")
os.environ["HF_HUB_OFFLINE"] = "1"  # never the hub

import wanflow
from diffusers_helpers import FRAMES, SIDE, TINY, read_frames, run_project, save_tiny_wan, write_pipeline, write_png
from wanflow._exceptions import PipelineError


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny saved pipelines: text-to-video, image-to-video and VACE."""
    root = tmp_path_factory.mktemp("weights")
    return {kind: save_tiny_wan(root / kind, kind) for kind in ("t2v", "i2v", "vace")}


def _mask(path: Path) -> Path:
    """White (generate) on the right half, black (keep) on the left."""
    from PIL import Image

    mask = Image.new("RGB", (2 * SIDE, SIDE), (0, 0, 0))
    mask.paste((255, 255, 255), (SIDE, 0, 2 * SIDE, SIDE))
    mask.save(path)
    return path


def _video(result: wanflow.RunResult, step: str) -> Path:
    outputs = result.steps[step].outputs
    assert outputs is not None and outputs.video is not None and outputs.video.path is not None
    return outputs.video.path


VACE = f"""
steps:
  source:
    model: ./t2v
    prompt: a fox walks through snow
    params: {dict(TINY, num_frames=FRAMES + 4)}
  edit:
    model: ./vace
    video: "{{{{ steps.source.video }}}}"
    mask: mask.png
    references: [ref.png]
    prompt: the fox becomes a wolf
    params: {TINY}
  free:
    model: ./vace
    prompt: the fox becomes a wolf
    params: {TINY}
  short:
    model: ./vace
    video: "{{{{ steps.source.video }}}}"
    prompt: too few frames
    params: {dict(TINY, num_frames=4 * FRAMES + 1)}
"""


def test_vace_takes_a_video_a_mask_and_reference_images_and_a_short_clip_is_a_clear_failure(
        project: Path, weights: dict[str, Path]) -> None:
    _mask(project / "mask.png")
    write_png(project / "ref.png", (20, 200, 20))
    result = run_project(write_pipeline(project, weights, VACE), project)

    edit = result.steps["edit"]
    assert edit.status == "ran", edit.error
    assert set(edit.request["inputs"]) == {"video", "mask", "references"}
    assert "video: using the first 5 of 9 frames" in [event["message"] for event in edit.events]
    edited = read_frames(_video(result, "edit"))
    assert edited.shape == (FRAMES, SIDE, 2 * SIDE, 3)  # the reference frames are not in the clip
    # The conditioning reached the model: the same prompt, seed and weights without it differ.
    assert result.steps["free"].status == "ran"
    assert not np.array_equal(edited, read_frames(_video(result, "free")))

    short = result.steps["short"]
    assert short.status == "failed" and not result.ok
    assert "has 9 frames and num_frames is 21" in str(short.error) and "at least 21 frames" in str(short.error)


def test_vace_inputs_are_checked_before_anything_runs(project: Path, weights: dict[str, Path]) -> None:
    write_png(project / "still.png")
    path = write_pipeline(project, weights, f"""
        steps:
          edit:
            model: ./vace
            video: still.png
            mask: https://example.com/mask.png
            references: [still.png, still.png, still.png, still.png, still.png]
            prompt: a wolf
            params: {TINY}
        """)
    with pytest.raises(PipelineError) as caught:
        wanflow.load_pipeline(path)
    text = "\n".join(problem.format() for problem in caught.value.diagnostics)
    assert "video: needs video" in text and "got 5 references" in text, text
    assert "the diffusers provider works offline and cannot fetch https://example.com/mask.png" in text, text


def test_one_frame_is_a_picture_offered_as_image_and_images(project: Path, weights: dict[str, Path]) -> None:
    from PIL import Image

    path = write_pipeline(project, weights, f"""
        steps:
          still:
            model: ./t2v
            prompt: a fox portrait
            params: {dict(TINY, num_frames=1)}
          moving:
            model: ./i2v
            image: "{{{{ steps.still.image }}}}"
            prompt: the fox turns its head
            params: {TINY}
        outputs:
          portrait: "{{{{ steps.still.image }}}}"
          first: "{{{{ steps.still.images[0] }}}}"
          clip: "{{{{ steps.moving.video }}}}"
        """)
    result = run_project(path, project)
    assert result.ok, {step: outcome.error for step, outcome in result.steps.items()}
    out = project / "out" / "gpu"
    with Image.open(out / "portrait.png") as picture:
        assert picture.format == "PNG" and picture.size == (2 * SIDE, SIDE)
        pixels = np.asarray(picture.convert("RGB"))
    assert pixels.std() > 0
    assert (out / "first.png").read_bytes() == (out / "portrait.png").read_bytes()
    assert read_frames(out / "clip.mp4").shape == (FRAMES, SIDE, 2 * SIDE, 3)
    assert not list(out.glob("portrait*.mp4"))
