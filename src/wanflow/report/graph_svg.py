"""The step graph as inline SVG: columns by dependency depth, nodes coloured by status.

The edges come from the pipeline when it is at hand (template references, ``needs``, fan-out),
else from the record itself: a step whose request took another step's output by hash depends on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from typing import Any

NODE_W, NODE_H, GAP_X, GAP_Y, PAD = 210, 50, 60, 18, 12
LANE_GAP = 8  # between the lanes of edges that skip a column
STATUS_COLOURS = {"ran": "#1f8f4e", "cached": "#2f6fb3", "failed": "#c0392b", "skipped": "#8a8f98",
                  "running": "#a05ec2", "pending": "#8a8f98"}


@dataclass
class Graph:
    """Steps (id -> model), edges (from, to, is the fan-out source) and named outputs (name -> steps)."""

    steps: dict[str, str] = field(default_factory=dict)
    edges: list[tuple[str, str, bool]] = field(default_factory=list)
    outputs: dict[str, list[str]] = field(default_factory=dict)
    fan_out: dict[str, str] = field(default_factory=dict)  # step -> "for each × 4"


def graph_from_pipeline(pipeline: Any) -> Graph:
    """The graph of a loaded pipeline."""
    from wanflow.pipelines.fanout import fan_out_label
    from wanflow.pipelines.templating import referenced_steps

    graph = Graph()
    for step in pipeline.steps.values():
        graph.steps[step.id] = step.model.name
        label = fan_out_label(pipeline, step)
        if label:
            graph.fan_out[step.id] = label
        sources = referenced_steps(step.for_each).steps if isinstance(step.for_each, str) else ()
        graph.edges += [(dep, step.id, dep in sources) for dep in step.depends_on]
    for name, text in pipeline.outputs.items():
        graph.outputs[name] = list(referenced_steps(text).steps)
    return graph


def _hashes(step: dict[str, Any]) -> set[str]:
    found = {str(output.get("sha256")) for output in step.get("outputs") or []}
    for item in step.get("items") or []:
        found |= _hashes(item)
    return found


def _inputs(step: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    for part in [step, *(step.get("items") or [])]:
        for values in ((part.get("request") or {}).get("inputs") or {}).values():
            for value in values if isinstance(values, list) else [values]:
                if isinstance(value, str) and value.startswith("sha256:"):
                    found.add(value.removeprefix("sha256:"))
    return found


def graph_from_record(record: dict[str, Any]) -> Graph:
    """The graph as far as a run record shows it (edges through output hashes)."""
    graph = Graph()
    steps = record.get("steps") or {}
    produced = {step_id: _hashes(step) for step_id, step in steps.items()}
    for step_id, step in steps.items():
        graph.steps[step_id] = str(step.get("model", ""))
        if step.get("items") is not None:
            graph.fan_out[step_id] = f"for each × {len(step['items'])}"
        wanted = _inputs(step)
        graph.edges += [(other, step_id, False) for other, hashes in produced.items() if other != step_id and hashes & wanted]
    for name, files in (record.get("outputs") or {}).items():
        hashes = {str(file.get("sha256")) for file in files}
        graph.outputs[name] = [step_id for step_id, made in produced.items() if made & hashes][:1]
    return graph


def graph_depths(graph: Graph) -> dict[str, int]:
    """Each step's column: 0 for steps needing nothing, else one more than its deepest dependency."""
    depth: dict[str, int] = {}
    parents: dict[str, list[str]] = {step: [] for step in graph.steps}
    for source, target, _ in graph.edges:
        if source in parents and target in parents:
            parents[target].append(source)

    def visit(step: str, trail: frozenset[str]) -> int:
        if step not in depth:
            depth[step] = 1 + max((visit(p, trail | {step}) for p in parents[step] if p not in trail), default=-1)
        return depth[step]

    for step in graph.steps:
        visit(step, frozenset())
    return depth


def render_svg(graph: Graph, statuses: dict[str, str], link_prefix: str = "#step-", labels: dict[str, str] | None = None) -> str:
    """The graph as an ``<svg>`` element; each step links to its card. ``statuses`` colour the
    nodes; ``labels`` (default: the status) say what happened, e.g. ``1 ran · 5 cached``."""
    labels = labels or statuses
    depth = graph_depths(graph)
    columns: dict[int, list[str]] = {}
    for step in graph.steps:
        columns.setdefault(depth[step], []).append(step)
    last = max(columns, default=-1) + 1
    if graph.outputs:
        columns[last] = [f"out:{name}" for name in graph.outputs]
    position: dict[str, tuple[float, float]] = {}
    for column, members in columns.items():
        for row, node in enumerate(members):
            position[node] = (PAD + column * (NODE_W + GAP_X), PAD + row * (NODE_H + GAP_Y))
    width = PAD * 2 + max(len(columns), 1) * (NODE_W + GAP_X) - GAP_X
    height = PAD * 2 + max((len(members) for members in columns.values()), default=1) * (NODE_H + GAP_Y) - GAP_Y
    links = [(source, target, fan) for source, target, fan in graph.edges]
    links += [(step, f"out:{name}", False) for name, steps in graph.outputs.items() for step in steps]
    long_links = [link for link in links if link[0] in position and link[1] in position
                  and position[link[1]][0] - position[link[0]][0] > NODE_W + GAP_X]
    lanes_top = height - PAD + GAP_Y / 2  # below every box: where an edge that skips a column runs
    if long_links:
        height += int(GAP_Y / 2 + LANE_GAP * len(long_links))
    parts = [f'<svg class="graph" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" role="img" aria-label="step graph">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
             'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#7b8494"/></marker></defs>']
    for source, target, fan in links:
        if source not in position or target not in position:
            continue
        (x1, y1), (x2, y2) = position[source], position[target]
        x1, y1, y2 = x1 + NODE_W, y1 + NODE_H / 2, y2 + NODE_H / 2
        middle = (x1 + x2) / 2
        dashed = ' stroke-dasharray="4 3"' if target.startswith("out:") else ""
        if (source, target, fan) in long_links:
            # Skipping a column: down in the gap after the source, along a lane below every box,
            # up in the gap before the target; never through another step's box.
            lane = lanes_top + LANE_GAP * long_links.index((source, target, fan))
            bend_out, bend_in = x1 + GAP_X / 2, x2 - GAP_X / 2
            route = (f"M{x1},{y1} C{bend_out},{y1} {bend_out},{lane} {x1 + GAP_X - 4},{lane} L{x2 - GAP_X + 4},{lane} "
                     f"C{bend_in},{lane} {bend_in},{y2} {x2 - 2},{y2}")
        else:
            route = f"M{x1},{y1} C{middle},{y1} {middle},{y2} {x2 - 2},{y2}"
        parts.append(f'<path d="{route}" fill="none" stroke="#7b8494" '
                     f'stroke-width="{2.5 if fan else 1.5}"{dashed} marker-end="url(#arrow)"/>')
        if fan:
            parts.append(f'<text x="{middle}" y="{(y1 + y2) / 2 - 6}" class="edge-label" text-anchor="middle">for each</text>')
    for node, (x, y) in position.items():
        if node.startswith("out:"):
            name = node[4:]
            parts.append(f'<g class="out-node"><rect x="{x}" y="{y + 8}" width="{NODE_W}" height="{NODE_H - 16}" rx="17" '
                         f'fill="#fff" stroke="#7b8494"/><text x="{x + NODE_W / 2}" y="{y + NODE_H / 2 + 4}" '
                         f'text-anchor="middle">{escape(name)}</text></g>')
            continue
        colour = STATUS_COLOURS.get(statuses.get(node, ""), "#8a8f98")
        stack = ""
        if node in graph.fan_out:  # a fan-out step is a stack of cards
            stack = "".join(f'<rect x="{x + d}" y="{y - d}" width="{NODE_W}" height="{NODE_H}" rx="8" fill="#fff" '
                            f'stroke="{colour}" stroke-width="1.5"/>' for d in (6, 3))
        detail = graph.fan_out.get(node, graph.steps[node])
        parts.append(
            f'<a href="{escape(link_prefix + node)}"><g class="step-node" data-step="{escape(node)}">{stack}'
            f'<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="8" fill="#fff" stroke="{colour}" stroke-width="2"/>'
            f'<rect x="{x}" y="{y}" width="6" height="{NODE_H}" rx="3" fill="{colour}"/>'
            f'<text x="{x + 14}" y="{y + 20}" class="node-title">{escape(node)}</text>'
            f'<text x="{x + 14}" y="{y + 38}" class="node-detail">{escape(detail)} · {escape(labels.get(node, "-"))}</text>'
            f'<title>{escape(node)}: {escape(graph.steps[node])}, {escape(labels.get(node, "-"))}</title></g></a>')
    parts.append("</svg>")
    return "".join(parts)
