"""op: steps end to end: frame, trim, concat (cut and crossfade), fit; checked by decoding the outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import wanflow
from ops_helpers import decoded, last_frame, make_clip


def _run(path: Path) -> wanflow.RunResult:
    result = wanflow.run(path, report=False)
    assert isinstance(result, wanflow.RunResult)
    return result


def test_frame_at_last_is_the_clips_true_final_frame(project: Path, write_pipeline) -> None:
    make_clip(project / "clip.mp4", seconds=2.0)
    path = write_pipeline("""
        wanflow: 1
        name: frames
        steps:
          last: {op: frame, video: clip.mp4, params: {at: last}}
          first: {op: frame, video: clip.mp4, params: {at: first}}
          middle: {op: frame, video: clip.mp4, params: {at: 1.0}}
    """)
    result = _run(path)
    pictures = {name: np.asarray(Image.open(result.steps[name].outputs.images[0].path).convert("RGB"))
                for name in ("last", "first", "middle")}
    assert np.array_equal(pictures["last"], last_frame(project / "clip.mp4"))
    assert not np.array_equal(pictures["first"], pictures["last"])
    assert not np.array_equal(pictures["middle"], pictures["last"])


def test_crossfade_of_two_5s_clips_is_9_5s_with_h264_and_aac(project: Path, write_pipeline) -> None:
    make_clip(project / "a.mp4", seconds=5.0, hue=0)
    make_clip(project / "b.mp4", seconds=5.0, hue=1, tone=None)
    path = write_pipeline("""
        wanflow: 1
        name: join
        steps:
          faded: {op: concat, videos: [a.mp4, b.mp4], params: {transition: crossfade, transition_seconds: 0.5}}
          cut: {op: concat, videos: [a.mp4, b.mp4]}
        outputs:
          faded: "{{ steps.faded.video }}"
    """)
    result = _run(path)
    faded = decoded(result.steps["faded"].outputs.video.path)
    assert faded["video_codec"] == "h264" and faded["pix_fmt"] == "yuv420p" and faded["audio_codec"] == "aac"
    assert abs(faded["frames"] / faded["fps"] - 9.5) <= 1 / faded["fps"]
    assert abs(faded["audio_seconds"] - 9.5) < 0.1
    cut = decoded(result.steps["cut"].outputs.video.path)
    assert cut["frames"] == 160 and cut["size"] == (160, 96)


def test_concat_conforms_other_sizes_and_rates_and_records_it(project: Path, write_pipeline) -> None:
    make_clip(project / "a.mp4", seconds=2.0, size=(160, 96), fps=16)
    make_clip(project / "b.mp4", seconds=2.0, size=(96, 96), fps=24)
    path = write_pipeline("""
        wanflow: 1
        name: mixed
        steps:
          joined: {op: concat, videos: [a.mp4, b.mp4]}
    """)
    result = _run(path)
    facts = decoded(result.steps["joined"].outputs.video.path)
    assert facts["size"] == (160, 96) and facts["frames"] == 64  # 2 s + 2 s at the first clip's 16 fps
    record = json.loads(result.record_path.read_text())
    adaptations = json.dumps(record)
    assert "scaled 96x96 to fit 160x96" in adaptations and "frame rate 24 -> 16 fps" in adaptations


def test_trim_and_fit_give_the_asked_length_and_size(project: Path, write_pipeline) -> None:
    make_clip(project / "clip.mp4", seconds=3.0, size=(320, 180))
    path = write_pipeline("""
        wanflow: 1
        name: cuts
        steps:
          part: {op: trim, video: clip.mp4, params: {start: 0.5, duration: 1.5}}
          tall: {op: fit, video: "{{ steps.part.video }}", params: {aspect: "9:16", width: 180}}
          square: {op: fit, video: clip.mp4, params: {aspect: "1:1", width: 200, mode: pad, fill: "#102030"}}
    """)
    result = _run(path)
    part = decoded(result.steps["part"].outputs.video.path)
    assert part["frames"] == 24 and abs(part["audio_seconds"] - 1.5) < 0.05
    assert decoded(result.steps["tall"].outputs.video.path)["size"] == (180, 320)
    square = result.steps["square"].outputs.video.path
    assert decoded(square)["size"] == (200, 200)
    import av
    with av.open(str(square)) as container:
        top = next(container.decode(video=0)).to_ndarray(format="rgb24")[5, 100]
    assert np.allclose(top, (0x10, 0x20, 0x30), atol=12)  # the pad colour above the letterboxed clip


def test_fit_of_an_image_crops_or_pads_it_like_a_frame(project: Path, write_pipeline) -> None:
    picture = np.zeros((180, 320, 3), np.uint8)
    picture[:, :160] = (220, 30, 30)  # red left half, blue right half
    picture[:, 160:] = (30, 30, 220)
    Image.fromarray(picture).save(project / "wide.png")
    path = write_pipeline("""
        wanflow: 1
        name: stills
        steps:
          tall: {op: fit, image: wide.png, params: {aspect: "9:16", width: 90, anchor: left}}
          square: {op: fit, image: wide.png, params: {aspect: "1:1", width: 200, mode: pad, fill: "#102030"}}
          again: {op: fit, image: "{{ steps.square.image }}", params: {aspect: "16:9", width: 160}}
    """)
    result = _run(path)
    tall = np.asarray(Image.open(result.steps["tall"].outputs.images[0].path))
    assert tall.shape == (160, 90, 3) and np.allclose(tall.reshape(-1, 3).mean(axis=0), (220, 30, 30), atol=3)
    square = np.asarray(Image.open(result.steps["square"].outputs.images[0].path))
    assert square.shape == (200, 200, 3)
    assert np.array_equal(square[5, 100], (0x10, 0x20, 0x30)) and np.allclose(square[100, 20], (220, 30, 30), atol=3)
    assert np.allclose(square[100, 180], (30, 30, 220), atol=3)  # the whole picture, letterboxed
    assert Image.open(result.steps["again"].outputs.images[0].path).size == (160, 90)
    assert result.steps["tall"].model == "op:fit" and result.steps["tall"].outputs.video is None


def test_op_steps_are_free_in_plan_cached_on_rerun_and_locked(project: Path, write_pipeline, capsys) -> None:
    make_clip(project / "clip.mp4", seconds=1.0)
    path = write_pipeline("""
        wanflow: 1
        name: again
        steps:
          part: {op: trim, video: clip.mp4, params: {end: 0.5}}
          still: {op: frame, video: "{{ steps.part.video }}"}
        outputs:
          poster: "{{ steps.still.image }}"
    """)
    plan = wanflow.plan(path)
    units = plan.units["default"]
    assert [(u.step_id, u.model, u.provider, u.status, u.estimated_usd) for u in units] == [
        ("part", "op:trim", "op", "run", 0.0), ("still", "op:frame", "op", "run-if-inputs-change", 0.0)]
    first = _run(path)
    assert {s.status for s in first.steps.values()} == {"ran"}
    assert first.outputs["poster"][0].artifact.sha256 == first.steps["still"].outputs.images[0].sha256  # .image: the one image
    again = _run(path)
    assert {s.status for s in again.steps.values()} == {"cached"}
    lock = json.loads(path.with_suffix(".lock").read_text())
    locked = lock["instances"]["default"]["steps"]
    assert locked["part"]["model"] == "op:trim" and locked["part"]["request"]["params"]["end"] == 0.5
    # An op draws no seed, and none is shown: not in the plan, the lockfile, the record or the summary.
    assert [u.seed for u in units] == [None, None]
    assert all("seed" not in entry and "seed" not in entry["request"]["params"] for entry in locked.values())
    assert {locked[name]["seed_source"] for name in locked} == {"none (an op is deterministic)"}
    assert first.record_path is not None
    recorded = json.loads(first.record_path.read_text())["steps"]
    assert [recorded[name]["seed"] for name in ("part", "still")] == [None, None]
    from wanflow.cli.main import main
    assert main(["run", str(path), "--no-report"]) == 0
    summary = [line for line in capsys.readouterr().out.splitlines() if "part" in line or "still" in line]
    assert len(summary) == 2 and not any("seed" in line for line in summary), summary
    # A changed input re-runs the op and what follows it.
    make_clip(project / "clip.mp4", seconds=1.0, hue=2)
    third = _run(path)
    assert {s.status for s in third.steps.values()} == {"ran"}


@pytest.mark.parametrize(("step", "expected"), [
    ("{op: blur, video: clip.mp4}", "steps.x.op"),
    ("{op: trim, video: clip.mp4, params: {start: -1}}", "start: invalid value -1 (allowed: a number from 0, or a template)"),
    ("{op: fit, video: clip.mp4, params: {aspect: '3:2', width: 100}}", "allowed: one of 9:16, 1:1, 16:9, 4:5"),
    ("{op: fit, video: clip.mp4, params: {width: 100}}", "steps.x.params: missing required field 'aspect'"),
    ("{op: fit, video: clip.mp4}", "steps.x: missing required field 'params'"),
    ("{op: trim, video: clip.mp4, params: {begin: 1}}", "unknown field 'begin'"),
    ("{op: fit, video: clip.mp4, image: logo.png, params: {aspect: '1:1', width: 64}}", "op fit takes video: or image: (one of them)"),
    ("{op: fit, params: {aspect: '1:1', width: 64}}", "op fit takes video: or image: (one of them)"),
    ("{op: concat, videos: [clip.mp4]}", "op concat got 1 item(s) in videos: (allowed: 2 to 64)"),
    ("{op: frame, video: clip.mp4, image: clip.mp4}", "op frame does not take image: (allowed: video:)"),
    ("{op: frame, model: wan2.6-t2i, video: clip.mp4}", "has both model: and op:"),
    ("{op: frame, video: clip.mp4, params: {at: soon}}", "first, last, or a time in seconds"),
])
def test_bad_op_steps_are_refused_before_anything_runs(project: Path, write_pipeline, step: str, expected: str) -> None:
    make_clip(project / "clip.mp4", seconds=0.5)
    Image.new("RGB", (32, 32)).save(project / "logo.png")
    path = write_pipeline(f"""
        wanflow: 1
        name: bad
        steps:
          x: {step}
    """)
    with pytest.raises(wanflow.PipelineError) as caught:
        wanflow.plan(path)
    message = str(caught.value)
    assert expected in message and "pipe.yaml:4" in message


def test_a_long_op_reports_progress_to_the_run(project: Path, write_pipeline) -> None:
    make_clip(project / "a.mp4", seconds=8.0)
    make_clip(project / "b.mp4", seconds=8.0, hue=1)
    path = write_pipeline("""
        wanflow: 1
        name: long
        steps:
          joined: {op: concat, videos: [a.mp4, b.mp4]}
    """)
    events = [event["message"] for event in _run(path).steps["joined"].events]
    assert "concat: 120 frames written" in events and "concat: 240 frames written" in events


def test_the_schema_offers_every_op_and_no_other() -> None:
    from wanflow.ops.specs import OPS

    schema = json.loads((Path(wanflow.__file__).parent / "schemas" / "pipeline.schema.json").read_text("utf-8"))
    assert schema["$defs"]["step"]["properties"]["op"]["enum"] == sorted(OPS)
