"""Run one op on stored inputs (blocking: the ``op`` provider calls it in a bounded worker thread)."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from wanflow.ops.compose import caption, overlay
from wanflow.ops.concat import concat
from wanflow.ops.cuts import take_frame, trim
from wanflow.ops.export import contact_sheet, encode
from wanflow.ops.fit import fit, fit_image
from wanflow.ops.sound import soundtrack
from wanflow.ops.video_io import PROGRESS

Produced = tuple[Path, str]  # a file and the output field it fills (video | images)
Adaptations = list[dict[str, Any]]
Inputs = Mapping[str, list[Path]]


def _frame(inputs: Inputs, params: Mapping[str, Any], out: Path) -> tuple[list[Produced], Adaptations]:
    return [(take_frame(inputs["video"][0], params, out), "images")], []


def _concat(inputs: Inputs, params: Mapping[str, Any], out: Path) -> tuple[list[Produced], Adaptations]:
    path, adaptations = concat(list(inputs["videos"]), params, out)
    return [(path, "video")], adaptations


def _video_op(make: Callable[..., Path], *slots: str) -> Callable[[Inputs, Mapping[str, Any], Path], tuple[list[Produced], Adaptations]]:
    """An op that makes one video from the first item of each of ``slots``, then params and the folder."""
    def run(inputs: Inputs, params: Mapping[str, Any], out: Path) -> tuple[list[Produced], Adaptations]:
        return [(make(*(inputs[slot][0] for slot in slots), params, out), "video")], []
    return run


def _fit(inputs: Inputs, params: Mapping[str, Any], out: Path) -> tuple[list[Produced], Adaptations]:
    if inputs.get("image"):
        return [(fit_image(inputs["image"][0], params, out), "images")], []
    return [(fit(inputs["video"][0], params, out), "video")], []


def _soundtrack(inputs: Inputs, params: Mapping[str, Any], out: Path) -> tuple[list[Produced], Adaptations]:
    path, note = soundtrack(inputs["video"][0], inputs["audio"][0], params, out)
    return [(path, "video")], [{"input": "audio", "actions": [note]}]


def _caption(inputs: Inputs, params: Mapping[str, Any], out: Path) -> tuple[list[Produced], Adaptations]:
    font = inputs["font"][0] if inputs.get("font") else None
    return [(caption(inputs["video"][0], params, out, font), "video")], []


def _contact_sheet(inputs: Inputs, params: Mapping[str, Any], out: Path) -> tuple[list[Produced], Adaptations]:
    return [(contact_sheet(list(inputs.get("images", [])), list(inputs.get("videos", [])), params, out), "images")], []


def _pick(inputs: Inputs, params: Mapping[str, Any], out: Path) -> tuple[list[Produced], Adaptations]:
    slot = "videos" if "videos" in inputs else "images"
    chosen = inputs[slot][int(params["choice"])]
    target = out / f"picked{chosen.suffix}"
    shutil.copyfile(chosen, target)
    return [(target, "video" if slot == "videos" else "images")], []


RUNNERS: dict[str, Callable[[Inputs, Mapping[str, Any], Path], tuple[list[Produced], Adaptations]]] = {
    "frame": _frame, "trim": _video_op(trim, "video"), "fit": _fit, "concat": _concat,
    "overlay": _video_op(overlay, "video", "image"), "caption": _caption,
    "soundtrack": _soundtrack, "encode": _video_op(encode, "video"),
    "contact_sheet": _contact_sheet, "pick": _pick,
}


def run_op(name: str, inputs: Inputs, params: Mapping[str, Any], workdir: Path,
           progress: Callable[[int], None] | None = None) -> tuple[list[Produced], Adaptations]:
    """Make the op's output in ``workdir``; return the files and any adaptations (conformed inputs).
    ``progress`` hears the number of frames written, now and then.

    Raises ValueError with a message for the user when the inputs do not allow the op.
    """
    token = PROGRESS.set(progress)
    try:
        return RUNNERS[name](inputs, params, workdir)
    finally:
        PROGRESS.reset(token)
