"""A matrix run laid out like an XY plot: the first axis across, the second down, the rest as sections."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from wanflow.report.view import InstanceView


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


@dataclass
class Grid:
    """One grid: column values of ``across``, row values of ``down``, and the instance in each cell."""

    section: dict[str, Any]  # the values of the remaining axes this grid shows ({} when there are none)
    across: str
    down: str | None
    columns: list[Any]
    rows: list[Any]
    cells: dict[tuple[int, int], InstanceView] = field(default_factory=dict)

    def cell(self, row: int, column: int) -> InstanceView | None:
        """The instance at (row, column), or None for a combination left out (``exclude``)."""
        return self.cells.get((row, column))


def axes_of(declared: dict[str, list[Any]], instances: list[InstanceView]) -> dict[str, list[Any]]:
    """The axes and their values: as declared (plus values only ``include`` adds), or, without a
    declaration, the vars whose values differ between instances."""
    axes = {axis: list(values) for axis, values in declared.items()}
    if not axes:
        names = [name for name in (instances[0].vars if instances else {})
                 if len({_key(instance.vars.get(name)) for instance in instances}) > 1]
        axes = {name: [] for name in names}
    seen = {axis: {_key(value) for value in values} for axis, values in axes.items()}
    for instance in instances:
        for axis, values in axes.items():
            value = instance.vars.get(axis)
            if _key(value) not in seen[axis]:
                seen[axis].add(_key(value))
                values.append(value)
    return axes


def build_grids(declared: dict[str, list[Any]], instances: list[InstanceView]) -> list[Grid]:
    """The grids of a matrix run (one per combination of the axes beyond the first two)."""
    axes = axes_of(declared, instances)
    if not axes:
        return []
    names = list(axes)
    across, down, rest = names[0], names[1] if len(names) > 1 else None, names[2:]
    grids: dict[str, Grid] = {}
    columns = {_key(value): index for index, value in enumerate(axes[across])}
    rows = {_key(value): index for index, value in enumerate(axes[down])} if down else {}
    for instance in instances:
        section = {axis: instance.vars.get(axis) for axis in rest}
        grid = grids.get(_key(section))
        if grid is None:
            grid = grids[_key(section)] = Grid(section, across, down, axes[across], axes[down] if down else [None])
        column = columns[_key(instance.vars.get(across))]
        row = rows[_key(instance.vars.get(down))] if down else 0
        grid.cells.setdefault((row, column), instance)
    return list(grids.values())
