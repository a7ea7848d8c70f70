"""op: steps that finish a piece: overlay, caption, soundtrack, encode, contact_sheet (checked by decoding)."""

from __future__ import annotations

import re
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

import wanflow
from ops_helpers import bs1770_loudness, decoded, make_clip, write_font, write_tone


def _frame_at(path: Path, index: int) -> np.ndarray:
    with av.open(str(path)) as container:
        for number, frame in enumerate(container.decode(video=0)):
            if number == index:
                return frame.to_ndarray(format="rgb24")
    raise AssertionError("no such frame")


def _run(path: Path) -> wanflow.RunResult:
    result = wanflow.run(path, report=False)
    assert isinstance(result, wanflow.RunResult)
    return result


def _audio_level(path: Path, start: float, end: float) -> float:
    with av.open(str(path)) as container:
        chunks = [frame.to_ndarray() for frame in container.decode(audio=0) if start <= float(frame.time or 0) < end]
    samples = np.concatenate(chunks, axis=1)
    return float(np.sqrt(np.mean(np.square(samples))))


def test_overlay_keeps_transparency_and_its_time_range(project: Path, write_pipeline) -> None:
    make_clip(project / "clip.mp4", seconds=2.0, size=(320, 180))
    logo = Image.new("RGBA", (100, 50), (0, 0, 0, 0))
    logo.paste((255, 255, 255, 255), (0, 0, 50, 50))  # left half opaque white, right half fully transparent
    logo.save(project / "logo.png")
    path = write_pipeline("""
        wanflow: 1
        name: logo
        steps:
          branded:
            op: overlay
            video: clip.mp4
            image: logo.png
            params: {position: top-left, margin: 10, scale: 0.5, start: 1.0}
    """)
    out = _run(path).steps["branded"].outputs.video.path
    source = _frame_at(project / "clip.mp4", 20)
    after = _frame_at(out, 20)  # 1.25 s: the logo shows (scaled to 160x80 at 10,10)
    assert after[40, 40].min() > 235  # the opaque half is white
    assert np.abs(after[40, 130].astype(int) - source[40, 130].astype(int)).max() < 16  # the transparent half shows the clip
    before = _frame_at(out, 8)  # 0.5 s: before start
    assert np.abs(before[40, 40].astype(int) - _frame_at(project / "clip.mp4", 8)[40, 40].astype(int)).max() < 16
    assert decoded(out)["frames"] == 32


def test_caption_draws_text_in_a_box(project: Path, write_pipeline) -> None:
    make_clip(project / "clip.mp4", seconds=1.0, size=(320, 180))
    path = write_pipeline("""
        wanflow: 1
        name: words
        steps:
          said:
            op: caption
            video: clip.mp4
            params: {text: "Run further", position: bottom, size: 24, color: yellow, box: black, box_opacity: 1}
    """)
    out = _run(path).steps["said"].outputs.video.path
    bottom = _frame_at(out, 3)[120:180]
    yellow = (bottom[..., 0] > 180) & (bottom[..., 1] > 180) & (bottom[..., 2] < 90)
    black = bottom.max(axis=2) < 30
    assert yellow.sum() > 50 and black.sum() > 500
    assert _frame_at(out, 3)[:60].max(axis=2).min() > 150  # the top of the frame is untouched


def _text_width(frame: np.ndarray) -> int:
    """How many columns of the frame's lower half hold the yellow caption."""
    lower = frame[frame.shape[0] // 2:]
    yellow = (lower[..., 0] > 180) & (lower[..., 1] > 180) & (lower[..., 2] < 90)
    columns = np.flatnonzero(yellow.any(axis=0))
    return int(columns[-1] - columns[0]) if columns.size else 0


def test_caption_in_a_font_named_by_path_is_cached_by_the_fonts_content(project: Path, write_pipeline) -> None:
    make_clip(project / "clip.mp4", seconds=0.5, size=(480, 180))
    write_font(project / "fonts" / "big.ttf", scale=2)
    path = write_pipeline("""
        wanflow: 1
        name: fonts
        steps:
          plain: {op: caption, video: clip.mp4, params: {text: Run, size: 24, color: yellow}}
          styled: {op: caption, video: clip.mp4, params: {text: Run, size: 24, color: yellow, font: fonts/big.ttf}}
    """)
    first = _run(path)
    plain, styled = (_text_width(_frame_at(first.steps[name].outputs.video.path, 2)) for name in ("plain", "styled"))
    assert plain > 10 and 1.6 < styled / plain < 2.4  # the named font's glyphs are twice as large
    font_hash = first.steps["styled"].request["inputs"]["font"][0]
    assert font_hash.startswith("sha256:") and "font" not in first.steps["styled"].request["params"]
    assert {step.status for step in _run(path).steps.values()} == {"cached"}
    write_font(project / "fonts" / "big.ttf", scale=3)  # the same path, another font: only its caption re-runs
    third = _run(path)
    assert {name: step.status for name, step in third.steps.items()} == {"plain": "cached", "styled": "ran"}
    assert _text_width(_frame_at(third.steps["styled"].outputs.video.path, 2)) > styled * 1.3


@pytest.mark.parametrize(("font", "expected"), [
    ("fonts/none.ttf", "params.font: input file not found: fonts/none.ttf"),
    ("notes.ttf", "params.font: notes.ttf is not a font FreeType can read"),
    ("../outside.ttf", "params.font: input file ../outside.ttf is outside the pipeline's folder"),
    ("clip.mp4", "params.font: clip.mp4 is not a font FreeType can read"),
])
def test_a_missing_or_foreign_font_is_refused_at_its_line(project: Path, write_pipeline, font: str, expected: str) -> None:
    make_clip(project / "clip.mp4", seconds=0.25)
    (project / "notes.ttf").write_text("not a font")
    write_font(project.parent / "outside.ttf")
    path = write_pipeline(f"""
        wanflow: 1
        name: fonts
        steps:
          said: {{op: caption, video: clip.mp4, params: {{text: hi, font: "{font}"}}}}
    """)
    with pytest.raises(wanflow.PipelineError) as caught:
        wanflow.plan(path)
    message = str(caught.value)
    assert "pipe.yaml:4:" in message and expected in message
    assert "allowed: a TrueType or OpenType font file (.ttf, .otf, .ttc) inside the pipeline's folder" in message


def test_soundtrack_loops_fades_and_replaces_to_the_videos_length(project: Path, write_pipeline) -> None:
    make_clip(project / "clip.mp4", seconds=3.0, tone=None)
    write_tone(project / "music.wav", seconds=1.0, frequency=330, level=0.5)
    path = write_pipeline("""
        wanflow: 1
        name: music
        steps:
          scored:
            op: soundtrack
            video: clip.mp4
            audio: music.wav
            params: {fade_in: 0.5, fade_out: 0.5, mix: replace, volume: 1.0}
    """)
    out = _run(path).steps["scored"].outputs.video.path
    facts = decoded(out)
    assert facts["audio_codec"] == "aac" and facts["video_codec"] == "h264" and facts["frames"] == 48
    assert abs(facts["audio_seconds"] - 3.0) < 0.05
    middle = _audio_level(out, 1.2, 1.8)  # the looped music, after the fade in
    assert 0.08 < middle < 0.17  # a 330 Hz tone at -16 LUFS has an RMS of about 0.12
    assert _audio_level(out, 0.0, 0.1) < middle / 3 and _audio_level(out, 2.9, 3.0) < middle / 3


def test_soundtrack_normalises_the_music_to_minus_16_lufs_measured_independently(project: Path, write_pipeline) -> None:
    make_clip(project / "clip.mp4", seconds=1.5, tone=None, size=(64, 48))
    write_tone(project / "low.wav", seconds=1.0, frequency=200, level=0.5)  # the same RMS, 200 Hz and 6 kHz:
    write_tone(project / "high.wav", seconds=1.0, frequency=6000, level=0.5)  # K-weighting hears 6 kHz ~4 dB louder
    write_tone(project / "quiet.wav", seconds=1.0, frequency=1000, level=0.01)
    spiky = write_tone(project / "spiky.wav", seconds=1.0, frequency=1000, level=0.01)
    import wave
    with wave.open(str(spiky), "rb") as handle:
        samples = np.frombuffer(handle.readframes(handle.getnframes()), "<i2").copy()
    samples[1000:1100] = 30000  # one loud click over a quiet tone: normalising must not clip it
    with wave.open(str(spiky), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(48_000)
        handle.writeframes(samples.tobytes())
    path = write_pipeline("""
        wanflow: 1
        name: loud
        steps:
          low: {op: soundtrack, video: clip.mp4, audio: low.wav, params: {mix: replace}}
          high: {op: soundtrack, video: clip.mp4, audio: high.wav, params: {mix: replace}}
          quiet: {op: soundtrack, video: clip.mp4, audio: quiet.wav, params: {mix: replace}}
          spiky: {op: soundtrack, video: clip.mp4, audio: spiky.wav, params: {mix: replace}}
    """)
    result = _run(path)
    outputs = {name: result.steps[name].outputs.video.path for name in ("low", "high", "quiet", "spiky")}
    for name in ("low", "high", "quiet"):
        assert abs(bs1770_loudness(outputs[name]) + 16.0) < 0.5, name
    rms = {name: _audio_level(outputs[name], 0.0, 1.5) for name in ("low", "high")}
    assert 20 * np.log10(rms["low"] / rms["high"]) > 3.0  # loudness, not RMS: the 6 kHz tone is turned down more
    note = result.steps["quiet"].provider_info["adaptations"][0]["actions"][0]  # the record says what was done
    level, gain = (float(x) for x in re.fullmatch(r"loudness (\S+) LUFS -> -16 LUFS \((\S+) dB\)", note).groups())
    assert level < -35 and abs(level + gain + 16) < 0.06
    with av.open(str(outputs["spiky"])) as container:
        peak = max(float(np.abs(frame.to_ndarray()).max()) for frame in container.decode(audio=0))
    assert peak < 1.0 and bs1770_loudness(outputs["spiky"]) < -17  # the peak stops the gain short of the target
    assert "short of -16: its peak stops at -1 dBFS" in result.steps["spiky"].provider_info["adaptations"][0]["actions"][0]


def test_encode_preset_and_contact_sheet(project: Path, write_pipeline) -> None:
    make_clip(project / "clip.mp4", seconds=1.0, size=(320, 180))
    Image.new("RGB", (200, 100), "red").save(project / "a.png")
    path = write_pipeline("""
        wanflow: 1
        name: export
        steps:
          small: {op: encode, video: clip.mp4, params: {preset: social, max_width: 160, quality: 30}}
          sheet: {op: contact_sheet, images: [a.png, a.png], videos: [clip.mp4], params: {columns: 2, cell_width: 100}}
    """)
    result = _run(path)
    facts = decoded(result.steps["small"].outputs.video.path)
    assert facts["size"] == (160, 90) and facts["pix_fmt"] == "yuv420p" and facts["frames"] == 16
    with open(result.steps["small"].outputs.video.path, "rb") as handle:
        head = handle.read(64)
    assert head.find(b"moov") < head.find(b"mdat") or b"mdat" not in head  # faststart: the index comes first
    sheet = result.steps["sheet"].outputs.images[0]
    assert (sheet.width, sheet.height) == (2 * 108 + 8, 2 * (56 + 10 + 8) + 8)
