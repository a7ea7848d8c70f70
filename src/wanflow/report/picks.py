"""The report's pick section: the candidates of every ``op: pick`` step side by side, the choice
marked, and the exact ``wanflow pick`` command to copy for each candidate."""

from __future__ import annotations

import shlex
from html import escape

from wanflow.report.html import Page, thumb_html
from wanflow.report.media import Media
from wanflow.report.view import InstanceView, StepView

PICK_MODEL = "op:pick"
CSS = """
.picks { display:flex; gap:12px; flex-wrap:wrap; }
.pick { border:2px solid var(--line); border-radius:8px; padding:6px; max-width:240px; }
.pick.chosen { border-color:var(--ok, #2e7d32); }
.pick code { display:block; font-size:11px; margin-top:4px; user-select:all; word-break:break-all; }
"""


def pick_commands(pipeline_file: str, step: str, count: int, instance: str) -> list[str]:
    """The ``wanflow pick`` command for each candidate (with ``--instance`` for a matrix or batch instance)."""
    scope = "" if instance == "default" else f" --instance {shlex.quote(instance)}"
    return [f"wanflow pick {shlex.quote(pipeline_file)} {shlex.quote(step)} {index}{scope}" for index in range(count)]


def _unit_html(page: Page, unit: StepView, known: dict[str, Media], pipeline_file: str, instance: str) -> str:
    request = unit.request
    inputs = request.get("inputs") or {}
    candidates = [str(ref).removeprefix("sha256:") for ref in inputs.get("images") or inputs.get("videos") or []]
    choice = (request.get("params") or {}).get("choice")
    commands = pick_commands(pipeline_file, unit.id, len(candidates), instance)
    cells = []
    for index, sha in enumerate(candidates):
        chosen = index == choice
        mark = " ✓ chosen" if chosen else ""
        cells.append(f'<div class="pick{" chosen" if chosen else ""}"><b>{index}{mark}</b>'
                     f'{thumb_html(page, known.get(sha))}<code>{escape(commands[index])}</code></div>')
    source = escape(str(unit.get("seed_source", "")))
    return (f'<h3>{escape(unit.id)}</h3><p class="reason">choice {escape(str(choice))}: {source}</p>'
            f'<div class="picks">{"".join(cells)}</div>')


def picks_html(page: Page, instance: InstanceView) -> str:
    """A section per pick step of ``instance`` (per item of one that fans out); "" when it has none."""
    known: dict[str, Media] = {media.sha256: media for step in instance.steps for media in step.all_media()}
    pipeline_file = str((instance.record.get("pipeline") or {}).get("file") or "PIPELINE")
    sections = []
    for step in instance.steps:
        if step.get("model") != PICK_MODEL:
            continue
        for unit in step.items or [step]:  # each item of a pick that fans out is picked on its own
            sections.append(_unit_html(page, unit, known, pipeline_file, instance.name))
    if not sections:
        return ""
    return f'<section id="picks"><style>{CSS}</style><h2>Picks</h2>{"".join(sections)}</section>'
