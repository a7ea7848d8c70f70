"""The paid-run safety net: does what a service returned match what was asked?

A service that silently drops ``parameters`` (a wrong request envelope, a gateway that reads
another shape) still bills each task, at its own defaults: four images for ``n: 1``, 1080P
for 720P. Comparing each result with its request catches that after one task instead of a whole
pipeline. Tolerances (also in the README):

- images: no more than asked (``n``, or at most ``max_images``). Fewer is a partial failure,
  reported as a warning, as before.
- an explicit image size ``W*H``: each side within 16 px or 2 % (the documented rounding to
  multiples of 16) is a match; within 10 % a warning; further off a mismatch. A tier (``1K``,
  ``2K``) matches when the pixel count is within 25 % of the tier's, since the aspect follows
  the input.
- video: an explicit ``W*H`` size as for images; else the pixel count within 20 % of the
  resolution tier's (``resolution``, or the tier of the size); the duration within 0.5 s of
  the request (a warning up to 1 s, a mismatch beyond); an audio track exactly when
  ``audio`` is true.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from wanflow._exceptions import MediaError
from wanflow.artifacts import Artifact
from wanflow.media.probe import has_audio_stream
from wanflow.pipelines.request import StepRequest
from wanflow.state.cache import StepOutputsData

SIDE_PIXELS, SIDE_SHARE, SIDE_WARN_SHARE = 16, 0.02, 0.10
IMAGE_TIER_SHARE, VIDEO_TIER_SHARE = 0.25, 0.20
DURATION_OK, DURATION_WARN = 0.5, 1.0
# The documented tier areas (the preview renderers use the same; importing them would load
# Pillow, PyAV and numpy into every run): tests/test_package_layout.py keeps them equal.
IMAGE_TIERS = {"1K": 1280 * 1280, "2K": 2048 * 2048, "4K": 4096 * 4096}
VIDEO_TIERS = {"480P": 832 * 480, "720P": 1280 * 720, "1080P": 1920 * 1080}


@dataclass
class ResultCheck:
    """What did not match (mismatches) and what nearly did (warnings)."""

    mismatches: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def check_result(request: StepRequest, outputs: StepOutputsData) -> ResultCheck:
    """Compare a step's stored outputs with its request."""
    check = ResultCheck()
    params = request.model.with_defaults(request.params)
    expected = request.model.outputs_for(params)
    if "images" in expected:
        asked = request.model.image_count(params)
        if len(outputs.images) > asked:
            limit = "at most " if expected["images"].up_to else ""
            check.mismatches.append(f"{len(outputs.images)} images came back for {limit}{asked} asked")
        size = params.get("size")
        for index, image in enumerate(outputs.images):
            if isinstance(size, str):
                _check_image_size(check, f"images[{index}]", image, size)
    if "video" in expected and outputs.video is not None:
        _check_video(check, outputs.video, params, request.model.resolution_tier(params))
    return check


def _check_image_size(check: ResultCheck, label: str, image: Artifact, size: str) -> None:
    if not image.width or not image.height:
        return
    got = f"{image.width}*{image.height}"
    if size in IMAGE_TIERS:
        area = IMAGE_TIERS[size]
        if abs(image.width * image.height - area) > IMAGE_TIER_SHARE * area:
            check.mismatches.append(f"{label} is {got}, not the {size} tier (about {area:,} pixels)")
        return
    width, _, height = size.partition("*")
    if not (width.isdigit() and height.isdigit()):
        return
    off = max(abs(image.width - int(width)) / int(width), abs(image.height - int(height)) / int(height))
    sides_ok = abs(image.width - int(width)) <= SIDE_PIXELS and abs(image.height - int(height)) <= SIDE_PIXELS
    if sides_ok or off <= SIDE_SHARE:
        return
    message = f"{label} is {got}, asked {size}"
    (check.warnings if off <= SIDE_WARN_SHARE else check.mismatches).append(message)


def _check_video(check: ResultCheck, video: Artifact, params: dict, tier: str | None) -> None:
    size = params.get("size")
    if isinstance(size, str) and video.width and video.height:
        _check_image_size(check, "the video", video, size)  # text-to-video and r2v ask for W*H
    elif isinstance(tier, str) and tier in VIDEO_TIERS and video.width and video.height:
        area = VIDEO_TIERS[tier]
        if abs(video.width * video.height - area) > VIDEO_TIER_SHARE * area:
            check.mismatches.append(f"the video is {video.width}*{video.height}, not {tier}")
    seconds = params.get("duration")  # 0 (wan2.7-videoedit): as long as the input, nothing to compare
    if isinstance(seconds, (int, float)) and seconds > 0 and video.duration is not None:
        off = abs(video.duration - seconds)
        if off > DURATION_WARN:
            check.mismatches.append(f"the video lasts {video.duration:.1f} s, asked {seconds} s")
        elif off > DURATION_OK:
            check.warnings.append(f"the video lasts {video.duration:.1f} s, asked {seconds} s")
    wants_audio = params.get("audio")
    if isinstance(wants_audio, bool) and video.path is not None:
        try:
            present = has_audio_stream(video.path)
        except MediaError:
            return  # unreadable media is the media check's business
        if present != wants_audio:
            check.mismatches.append("the video has an audio track although audio: false was asked" if present
                                    else "the video has no audio track although audio: true was asked")
