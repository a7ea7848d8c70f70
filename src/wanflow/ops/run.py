"""Run one op on stored inputs (blocking: the ``op`` provider calls it in a bounded worker thread)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from wanflow.ops.concat import concat
from wanflow.ops.cuts import take_frame, trim
from wanflow.ops.fit import fit

Produced = tuple[Path, str]  # a file and the output field it fills (video | images)
Adaptations = list[dict[str, Any]]
Inputs = Mapping[str, list[Path]]


def _frame(inputs: Inputs, params: Mapping[str, Any], out: Path) -> tuple[list[Produced], Adaptations]:
    return [(take_frame(inputs["video"][0], params, out), "images")], []


def _trim(inputs: Inputs, params: Mapping[str, Any], out: Path) -> tuple[list[Produced], Adaptations]:
    return [(trim(inputs["video"][0], params, out), "video")], []


def _fit(inputs: Inputs, params: Mapping[str, Any], out: Path) -> tuple[list[Produced], Adaptations]:
    return [(fit(inputs["video"][0], params, out), "video")], []


def _concat(inputs: Inputs, params: Mapping[str, Any], out: Path) -> tuple[list[Produced], Adaptations]:
    path, adaptations = concat(list(inputs["videos"]), params, out)
    return [(path, "video")], adaptations


RUNNERS: dict[str, Callable[[Inputs, Mapping[str, Any], Path], tuple[list[Produced], Adaptations]]] = {
    "frame": _frame, "trim": _trim, "fit": _fit, "concat": _concat,
}


def run_op(name: str, inputs: Inputs, params: Mapping[str, Any], workdir: Path) -> tuple[list[Produced], Adaptations]:
    """Make the op's output in ``workdir``; return the files and any adaptations (conformed inputs).

    Raises ValueError with a message for the user when the inputs do not allow the op.
    """
    return RUNNERS[name](inputs, params, workdir)
