"""Write the HTML report of a run: ``out/<pipeline>/index.html`` and its ``index_files/`` folder.

A single run is one page. A matrix or batch run gets a top page (the grid or the paged table,
the summary, failures) and one page per instance in the instance's own output folder.
"""

from __future__ import annotations

import datetime as dt
from html import escape
from pathlib import Path
from typing import Any

from wanflow._confine import is_inside, is_safe_name, named
from wanflow._exceptions import UsageError
from wanflow._fs import atomic_write_bytes, sha256_file
from wanflow.preview.notice import PREVIEW_NOTICE
from wanflow.records.runs import Run, run_records
from wanflow.report import html
from wanflow.report.graph_svg import Graph, graph_depths, graph_from_pipeline, graph_from_record, render_svg
from wanflow.report.grid import axes_of, build_grids
from wanflow.report.media import MediaPlacer
from wanflow.report.picks import picks_html
from wanflow.report.thumbs import ThumbCache
from wanflow.report.view import InstanceView, instance_view
from wanflow.state.workspace import Workspace

MAX_PROBLEM_LINES = 300


def default_report_path(workspace: Workspace, pipeline_name: str) -> Path:
    """``out/<pipeline>/index.html``; UsageError for a name that is not a safe name (a record
    read back never places the report outside out/)."""
    folder = named(workspace.out_dir, pipeline_name)
    if folder is None:
        raise UsageError(f"the run's pipeline name {pipeline_name[:80]!r} is not a safe folder name; "
                         "its record was changed by hand. Give the report a place with --output FILE")
    return folder / "index.html"


def write_report(workspace: Workspace, run: Run, output: Path | None = None, pipeline: Any = None) -> Path:
    """Write the report of ``run`` (to ``output`` or out/<pipeline>/index.html) and return its path.

    ``pipeline`` (the loaded Pipeline, when the caller has it) draws the graph with its fan-outs
    and adds the Mermaid text; without it the graph comes from the records."""
    target = (output or default_report_path(workspace, run.pipeline)).resolve()
    assets = target.parent / f"{target.stem}_files"
    placer = MediaPlacer(target.parent, assets, workspace.store, ThumbCache(workspace.state_dir / "thumbs"))
    pipeline_out = named(workspace.out_dir, run.pipeline) or assets / "no-folder"
    records = run_records(run)
    if not records:
        raise UsageError(f"run {run.id}: none of its records can be read (" + "; ".join(run.problems[:3]) + ")")
    grouped = run.kind != "single"
    instances = []
    for number, (name, record) in enumerate(records.items(), start=1):
        # An instance name comes from a record: a name that is not safe gets a folder-free page.
        out_root = (named(pipeline_out, name) or assets / "no-folder") if grouped or name != "default" else pipeline_out
        view = instance_view(name, record, out_root, placer)
        if grouped:
            own = out_root / "index.html"
            fallback = assets / "instances" / (f"{name}.html" if is_safe_name(name) else f"instance-{number}.html")
            view.page = own if is_inside(own, target.parent) and is_safe_name(name) else fallback
        instances.append(view)
    placer.finish()
    graph, mermaid = _graph(pipeline, next(iter(records.values()), {}), workspace.root)
    rank = _step_rank(graph)
    for view in instances:  # records keep steps sorted by id; cards follow the graph instead
        view.steps.sort(key=lambda step: rank.get(step.id, (len(rank), step.id)))
    if grouped:
        for view in instances:
            assert view.page is not None
            page = html.Page(view.page)
            back = f'<a href="{page.href(target)}">← all instances of this run</a>'
            _write(view.page, _single_page(page, run, view, graph, mermaid, back))
        _write(target, _group_page(html.Page(target), run, instances, graph, mermaid))
    else:
        _write(target, _single_page(html.Page(target), run, instances[0], graph, mermaid, ""))
    return target


def _write(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), durable=False)  # rebuilt from the records at will


def _graph(pipeline: Any, record: dict[str, Any], project: Path) -> tuple[Graph, str]:
    """The graph from the pipeline (given, or reloaded when its file is unchanged), else from a record."""
    if pipeline is None:
        pipeline = _reload(record, project)
    if pipeline is not None:
        try:
            from wanflow.pipelines import to_mermaid

            return graph_from_pipeline(pipeline), to_mermaid(pipeline)
        except Exception:  # an odd pipeline must not cost the report
            pass
    return graph_from_record(record), ""


def _step_rank(graph: Graph) -> dict[str, tuple[int, str]]:
    """Each step's place: its column in the graph, then the pipeline's own order."""
    depth = graph_depths(graph)
    return {step: (depth.get(step, 0), f"{index:06d}") for index, step in enumerate(graph.steps)}


def _reload(record: dict[str, Any], project: Path) -> Any:
    """The record's pipeline file, loaded again when it lies in the project and is unchanged."""
    info = record.get("pipeline") or {}
    path = Path(str(info.get("file", "")))
    if not path.is_absolute():
        path = project / path
    try:
        if not is_inside(path, project) or not path.is_file() or sha256_file(path) != info.get("sha256"):
            return None
        from wanflow.pipelines import load_pipeline

        return load_pipeline(path)
    except Exception:  # changed, moved or now invalid: the record still draws the graph
        return None


def _statuses(instance: InstanceView) -> dict[str, str]:
    return {step.id: step.status for step in instance.steps}


def _header(title: str, sub: str, pills: list[str], extra: str = "") -> str:
    return (f'<header class="top"><h1>{escape(title)}</h1><div class="sub">{sub}</div>'
            f'<div class="summary">{"".join(f"<span class=pill>{pill}</span>" for pill in pills)}</div>{extra}</header>')


def _when(value: str | None) -> str:
    if not value:
        return "-"
    try:
        return dt.datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M:%S UTC")
    except ValueError:
        return escape(value)


def _group_statuses(instances: list[InstanceView]) -> tuple[dict[str, str], dict[str, str]]:
    """Per step over every instance: the colour's status (failed > ran > cached > skipped) and a
    label such as ``1 ran · 5 cached``."""
    counts: dict[str, dict[str, int]] = {}
    for instance in instances:
        for step in instance.steps:
            per = counts.setdefault(step.id, {})
            per[step.status] = per.get(step.status, 0) + 1
    colours = {step: next((s for s in ("failed", "ran", "cached", "skipped") if s in per), "pending") for step, per in counts.items()}
    labels = {step: " · ".join(f"{count} {status}" for status, count in sorted(per.items())) for step, per in counts.items()}
    return colours, labels


def _graph_section(graph: Graph, statuses: dict[str, str], mermaid: str, labels: dict[str, str] | None = None) -> str:
    source = (f'<details class="mermaid"><summary>Mermaid source (<code>wanflow graph</code>)</summary>'
              f"<pre>{escape(mermaid)}</pre></details>") if mermaid else ""
    svg = render_svg(graph, statuses, labels=labels)
    return f'<section id="graph"><h2>Step graph</h2><div class="graph-box">{svg}</div>{source}</section>'


def _single_page(page: html.Page, run: Run, instance: InstanceView, graph: Graph, mermaid: str, back: str) -> str:
    record = instance.record
    totals = instance.totals
    counts = ", ".join(f"{count} {status}" for status, count in totals.items() if status not in ("cost_usd", "estimated_cost_usd"))
    pills = [html.badge(instance.status), escape(counts or "no steps"),
             f"estimated {html.money(totals.get('estimated_cost_usd'))}", f"reported {html.money(totals.get('cost_usd'))}"]
    if instance.vars:
        pills.append(escape(", ".join(f"{key}={value}" for key, value in instance.vars.items())))
    title = str((record.get("pipeline") or {}).get("name", run.pipeline)) + ("" if instance.name == "default" else f" · {instance.name}")
    sub = (f"run <code>{escape(str(record.get('run_id', run.id)))}</code> · started {_when(record.get('started_at'))}"
           f" · finished {_when(record.get('finished_at'))}" + (f" · {back}" if back else ""))
    body = f'<p class="notice">{escape(str(record.get("notice") or PREVIEW_NOTICE))}.</p>' if record.get("preview") else ""
    body += html.problems_html([instance], [])
    body += _graph_section(graph, _statuses(instance), mermaid)
    body += html.outputs_html(page, instance)
    body += picks_html(page, instance)
    body += '<section id="steps"><h2>Steps</h2><div class="cards">' + "".join(
        html.step_card(page, step) for step in instance.steps) + "</div></section>"
    return html.document(f"{title} · wanflow report", _header(title, sub, pills), body)


def _group_page(page: html.Page, run: Run, instances: list[InstanceView], graph: Graph, mermaid: str) -> str:
    batch = run.batch or {}
    ok = sum(1 for instance in instances if instance.ok)
    rejected = run.rejected
    pills = [html.badge(run.status), f"{len(instances)} instances: {ok} ok, {len(instances) - ok} failed"
             + (f", {len(rejected)} rows rejected" if rejected else ""),
             f"estimated {html.money(run.estimated_usd)}", f"reported {html.money(run.cost_usd)}"]
    kind = run.kind if run.kind != "instances" else "matrix or batch"
    source = f" · rows from <code>{escape(str(batch['batch_file']))}</code>" if batch.get("batch_file") else ""
    sub = f"{escape(kind)} run <code>{escape(run.id)}</code> · started {_when(run.started_at)}{source}"
    body = ""
    if any(instance.record.get("preview") for instance in instances):
        body += f'<p class="notice">{escape(PREVIEW_NOTICE)}.</p>'
    declared = dict(batch.get("axes") or {})
    if run.kind == "matrix" or (run.kind == "instances" and len(axes_of({}, instances)) in (1, 2, 3)):
        body += html.grid_html(page, build_grids(declared, instances))
    else:
        # The vars that tell instances apart get a column each.
        names = list(axes_of({}, instances)) or list(instances[0].vars if instances else {})
        body += html.batch_table_html(page, instances, names)
    body += html.problems_html(instances, rejected, limit=MAX_PROBLEM_LINES)  # a thousand failures: the table filters them
    colours, labels = _group_statuses(instances)
    body += _graph_section(graph, colours, mermaid, labels)
    title = f"{run.pipeline} · {len(instances)} instances"
    return html.document(f"{title} · wanflow report", _header(title, sub, pills), body)
