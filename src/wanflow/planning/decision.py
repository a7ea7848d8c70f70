"""The one decision every unit (a step, or one item of a ``for_each`` step) gets.

``wanflow plan``, ``explain``, ``--budget``, the paid-run confirmation and ``run`` itself all ask
this function; only what they know differs. At run time every input exists, so the answer is
``cached``, ``shared`` or ``run``. Before the run, a unit whose inputs come from a step that will
run first is ``run`` when its own fields changed anyway (its key changes whatever the inputs),
else ``run-if-inputs-change``: cached only if those inputs come out byte-identical.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

Status = Literal["cached", "run", "run-if-inputs-change", "shared", "skip"]
SPENDS = ("run", "run-if-inputs-change")  # the statuses that may cost money


@dataclass(frozen=True)
class Decision:
    """A unit's fate and why; ``changed`` names the fields of its own request that changed."""

    status: Status
    reason: str
    changed: list[str] = field(default_factory=list)


def decide(*, cached: bool, forced: str | None, made_by: str | None, pending_inputs: list[str],
           own_changes: list[str], miss_reason: Callable[[], str]) -> Decision:
    """What happens to a unit.

    ``cached``: the cache holds its (intact) result. ``forced``: ``--fresh`` or ``cache: false``
    says why it runs anyway. ``made_by``: another unit of this run makes the identical request
    first. ``pending_inputs``: upstream steps that run first and feed it. ``own_changes``: fields
    of its own request that changed since the lock or the last run. ``miss_reason``: why it must
    run, asked only when it must.
    """
    if pending_inputs:
        after = f"after {', '.join(pending_inputs)} run{'s' if len(pending_inputs) == 1 else ''}"
        if forced:
            return Decision("run", f"{forced} ({after})")
        if own_changes:
            return Decision("run", f"its own request changed: {'; '.join(own_changes[:4])} ({after})", own_changes)
        return Decision("run-if-inputs-change", f"{after}; cached if their outputs are unchanged")
    if cached and not forced:
        return Decision("cached", "same request as a stored result")
    if made_by is not None:
        return Decision("shared", f"same request as {made_by}: generated once for the whole run")
    return Decision("run", forced or miss_reason(), own_changes)
