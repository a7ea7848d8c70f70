"""HTML pieces of the report: the page shell, step cards, media, the matrix grid and the batch table.

Every value from a record is escaped; every link is relative to the page, so the folder works
from ``file://`` and can be zipped or moved.
"""

from __future__ import annotations

import json
import math
import os
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

from wanflow.report.assets import CSS, SCRIPT
from wanflow.report.grid import Grid
from wanflow.report.media import Media
from wanflow.report.view import InstanceView, StepView, problems

PAGE_SIZE = 50  # batch table rows per page


class Page:
    """One HTML file being built; knows how to link to files from where it lives."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.folder = path.parent.resolve()

    def href(self, target: Path) -> str:
        """``target`` as a relative, URL-quoted link from this page."""
        # A file named below this page's (resolved) folder is linked as named: the browser follows
        # the same components the file system does. Anything else is resolved first.
        below = target.is_absolute() and ".." not in target.parts and target.is_relative_to(self.folder)
        return quote(Path(os.path.relpath(target if below else target.resolve(), self.folder)).as_posix())


def document(title: str, header: str, body: str) -> str:
    """A complete page: inline style and script, no external resource of any kind."""
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{escape(title)}</title><link rel=\"icon\" href=\"data:,\"><style>{CSS}</style></head>"
        f"<body>{header}<main>{body}</main><script>{SCRIPT}</script></body></html>\n"
    )


def numeric(value: Any) -> float:
    """A number from a record, or 0.0 for anything else (a page never prints a record's raw text
    where a number belongs)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return 0.0


def money(value: Any) -> str:
    """``$0.42``."""
    return f"${numeric(value):.2f}"


def badge(status: str) -> str:
    """A coloured status label."""
    return f'<span class="badge {escape(status)}">{escape(status)}</span>'


def media_html(page: Page, media: Media, lazy: bool = False) -> str:
    """An output: a thumbnail opening full size, a video player with its poster, audio, or text."""
    label = escape(media.field)
    if media.file is None:
        return f'<div class="missing">{label}: no longer stored (sha256 {escape(media.sha256[:12])})</div>'
    full = page.href(media.file)
    size = escape(f" · {media.width}×{media.height}") if media.width and media.height else ""
    if media.kind == "image":
        thumb = page.href(media.thumb) if media.thumb else full
        loading = ' loading="lazy"' if lazy else ""
        return (f'<figure><a class="zoom" href="{full}" title="open full size"><img src="{thumb}" alt="{label}"{loading}>'
                f'</a><figcaption>{label}{size}</figcaption></figure>')
    if media.kind == "video":
        poster = f' poster="{page.href(media.poster)}"' if media.poster else ""
        seconds = escape(f" · {numeric(media.duration):g}s") if media.duration else ""
        return (f'<figure><video controls preload="metadata" playsinline src="{full}"{poster}></video>'
                f'<figcaption>{label}{size}{seconds} · <a href="{full}">open</a></figcaption></figure>')
    if media.kind == "audio":
        return f'<figure><audio controls preload="metadata" src="{full}"></audio><figcaption>{label}</figcaption></figure>'
    return f'<pre class="text">{escape(media.text or "")}</pre>'


def thumb_html(page: Page, media: Media | None, link: str | None = None) -> str:
    """A small still for a grid cell or table row (a video shows its poster frame), lazily loaded."""
    if media is None or media.file is None:
        return '<span class="missing">no image</span>'
    still = media.thumb or (media.file if media.kind == "image" else None)
    if still is None:
        return f'<a href="{page.href(media.file)}">{escape(media.field)}</a>'
    target = link or page.href(media.file)
    zoom = ' class="zoom"' if link is None and media.kind == "image" else ""
    play = " ▶" if media.kind == "video" else ""
    caption = f"<small>{escape(media.field)}{play}</small>" if play else ""
    return (f'<span class="still"><a{zoom} href="{target}"><img src="{page.href(still)}" alt="{escape(media.field)}" '
            f'loading="lazy"></a>{caption}</span>')


def _params(params: dict[str, Any]) -> str:
    return " ".join(f"<code>{escape(str(key))}={escape(json.dumps(value))}</code>" for key, value in params.items() if key != "seed")


def _cost(step: StepView) -> str:
    estimated, reported = step.get("estimated_cost_usd", 0.0), step.get("cost_usd", 0.0)
    info = step.get("provider_info")
    source = info.get("cost_source") if isinstance(info, dict) else None
    text = f"estimated {money(estimated)}, reported {money(reported)}"
    return text + (f" ({escape(str(source))})" if source else "")


def step_card(page: Page, step: StepView) -> str:
    """One step as a card: its media, then what it asked for and what happened."""
    request = step.request
    facts: list[tuple[str, str]] = []
    if request.get("prompt") is not None:
        facts.append(("prompt", escape(str(request["prompt"]))))
    if request.get("negative_prompt"):
        facts.append(("negative prompt", escape(str(request["negative_prompt"]))))
    facts.append(("model", f"<code>{escape(str(step.get('model', '-')))}</code> via {escape(str(step.get('provider', '-')))}"))
    source = escape(str(step.get("seed_source", "")))
    if step.get("seed") is None and step.get("seed_source"):  # an op step: deterministic, it draws no seed
        facts.append(("seed", source))
    else:
        facts.append(("seed", f"{escape(str(step.get('seed', '-')))} <small>({source})</small>"))
    if request.get("params"):
        facts.append(("params", _params(request["params"])))
    if step.get("seconds") is not None:
        facts.append(("duration", escape(f"{numeric(step.get('seconds')):.1f}s")))
    facts.append(("cost", _cost(step)))
    if step.task_ids:
        facts.append(("task id", " ".join(f"<code>{escape(task)}</code>" for task in step.task_ids)))
    if step.get("cache_key"):
        facts.append(("cache key", f"<code>{escape(str(step.get('cache_key'))[:16])}</code>"))
    for adaptation in step.get("adaptations", []):
        facts.append(("adapted", escape(json.dumps(adaptation)[:300])))
    media = "".join(media_html(page, item) for item in step.outputs)
    for item in step.items or []:
        media += "".join(media_html(page, output) for output in item.outputs) or \
            f'<div class="missing">{escape(item.id)}: {escape(item.status)}</div>'
    notes = ""
    if step.status == "failed":
        notes += f'<p class="error">error: {escape(str(step.get("error", "")))}</p>'
    for item in step.items or []:
        if item.status == "failed":
            notes += f'<p class="error">{escape(item.id)}: {escape(str(item.get("error", "")))}</p>'
    for warning in step.get("warnings", []):
        notes += f'<p class="warning">warning: {escape(str(warning))}</p>'
    count = f" · {len(step.items)} items" if step.items is not None else ""
    return (
        f'<article class="card {escape(step.status)}" id="step-{escape(step.id)}" data-step="{escape(step.id)}">'
        f'<h3>{escape(step.id)} {badge(step.status)}<span class="model">{escape(str(step.get("model", "")))}{count}</span></h3>'
        f'<p class="reason">{escape(str(step.get("reason", "")))}</p>'
        + (f'<div class="media">{media}</div>' if media else "") + notes
        + "<dl class=\"facts\">" + "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in facts) + "</dl></article>"
    )


def problems_html(instances: list[InstanceView], rejected: list[dict[str, Any]], limit: int | None = None) -> str:
    """Failures and warnings, with the error text (the first ``limit``); empty when there are none."""
    lines = []
    for instance in instances:
        where = f"{instance.name}/" if len(instances) > 1 else ""
        for severity, place, text in problems(instance):
            lines.append(f'<li class="{severity}"><b>{severity}</b> {escape(where + place)}: {escape(text)}</li>')
    for row in rejected:
        lines.append(f'<li class="error"><b>rejected row</b> {escape(str(row.get("row")))}: '
                     f'{escape("; ".join(row.get("problems") or []))}</li>')
    if not lines:
        return ""
    total = len(lines)
    if limit is not None and total > limit:
        lines = lines[:limit] + [f"<li>… {total - limit} more on the instances' own pages</li>"]
    return f'<section id="problems"><h2>Failures and warnings ({total})</h2><ul class="problems">{"".join(lines)}</ul></section>'


def outputs_html(page: Page, instance: InstanceView) -> str:
    """The named outputs, side by side."""
    pieces = "".join(media_html(page, media) for files in instance.outputs.values() for media in files)
    if not pieces:
        return ""
    return f'<section id="outputs"><h2>Outputs</h2><div class="media">{pieces}</div></section>'


def _cell(page: Page, instance: InstanceView | None) -> str:
    if instance is None:
        return '<td class="empty">not in the matrix</td>'
    link = page.href(instance.page) if instance.page else None
    cost = float(instance.totals.get("cost_usd") or 0)
    return (f'<td data-instance="{escape(instance.name)}">{thumb_html(page, instance.primary(), link)}'
            f'<div>{badge(instance.status)} <a href="{link or "#"}" title="{escape(instance.name)}">details</a>'
            + (f" · {money(cost)}" if cost else "") + "</div></td>")


def grid_html(page: Page, grids: list[Grid]) -> str:
    """Each grid as a table: the first axis across, the second down; one section per combination of the rest."""
    parts = []
    for index, grid in enumerate(grids):
        title = ", ".join(f"{axis} = {value}" for axis, value in grid.section.items())
        heading = f'<h3 id="grid-{index}">{escape(title)}</h3>' if title else ""
        corner = escape(f"{grid.down} ↓ / {grid.across} →" if grid.down else f"{grid.across} →")
        head = f"<tr><th>{corner}</th>" + "".join(f"<th>{escape(str(value))}</th>" for value in grid.columns) + "</tr>"
        body = ""
        for row, value in enumerate(grid.rows):
            label = escape(str(value)) if grid.down else ""
            body += f"<tr><th>{label}</th>" + "".join(_cell(page, grid.cell(row, column))
                                                      for column in range(len(grid.columns))) + "</tr>"
        parts.append(f'{heading}<table class="grid" data-rows="{len(grid.rows)}" data-columns="{len(grid.columns)}">'
                     f"<thead>{head}</thead><tbody>{body}</tbody></table>")
    nav = ""
    if len(grids) > 1:
        nav = '<nav class="sections">' + "".join(
            f'<a href="#grid-{index}">{escape(", ".join(f"{k}={v}" for k, v in grid.section.items()))}</a>'
            for index, grid in enumerate(grids)) + "</nav>"
    return f'<section id="matrix"><h2>Matrix</h2>{nav}{"".join(parts)}</section>'


def batch_table_html(page: Page, instances: list[InstanceView], var_names: list[str]) -> str:
    """One row per instance with its vars, status, steps, cost and thumbnails; paged by the script."""
    head = "<tr><th>#</th><th>instance</th>" + "".join(f"<th>{escape(name)}</th>" for name in var_names) + \
        "<th>status</th><th>ran/cached/failed</th><th>cost</th><th>outputs</th></tr>"
    rows = []
    for number, instance in enumerate(instances, start=1):
        totals = instance.totals
        link = page.href(instance.page) if instance.page else "#"
        stills = "".join(thumb_html(page, media) for files in instance.outputs.values() for media in files
                         if media.kind in ("image", "video")) or thumb_html(page, instance.primary())
        values = "".join(f"<td>{escape(str(instance.vars.get(name, '')))}</td>" for name in var_names)
        rows.append(f'<tr data-status="{escape(instance.status)}" data-instance="{escape(instance.name)}"><td>{number}</td>'
                    f'<td><a href="{link}">{escape(instance.name)}</a></td>{values}<td>{badge(instance.status)}</td>'
                    f"<td>{escape('/'.join(str(int(numeric(totals.get(k)))) for k in ('ran', 'cached', 'failed')))}</td>"
                    f"<td>{money(totals.get('cost_usd'))}</td><td>{stills}</td></tr>")
    statuses = sorted({instance.status for instance in instances})
    options = '<option value="">all</option>' + "".join(f'<option value="{escape(s)}">{escape(s)}</option>' for s in statuses)
    pager = (f'<div class="pager" id="batch-pager"><button class="prev" type="button">← previous</button>'
             f'<span class="where"></span><button class="next" type="button">next →</button>'
             f'<label>status <select id="batch-filter">{options}</select></label></div>')
    return (f'<section id="instances"><h2>Instances</h2>{pager}<table class="batch" id="batch" data-page-size="{PAGE_SIZE}">'
            f"<thead>{head}</thead><tbody>{''.join(rows)}</tbody></table></section>")
