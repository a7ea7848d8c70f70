"""Money in sight: ask before a costly paid run, and say what a paid run cost when it ends."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TextIO

from wanflow._exceptions import UsageError
from wanflow.records.results import RunResult

DEFAULT_CONFIRM_ABOVE_USD = 5.0
ENV_CONFIRM_ABOVE = "WANFLOW_CONFIRM_ABOVE"


def confirm_threshold(config: Mapping[str, Any]) -> float:
    """The estimate above which a paid run asks first: $WANFLOW_CONFIRM_ABOVE, else
    ``[run] confirm_above_usd`` in wanflow.toml, else $5."""
    raw: Any = os.environ.get(ENV_CONFIRM_ABOVE, "").strip() or (config.get("run") or {}).get("confirm_above_usd")
    if raw is None or raw == "":
        return DEFAULT_CONFIRM_ABOVE_USD
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise UsageError(f"confirm_above_usd / {ENV_CONFIRM_ABOVE}: {raw!r} is not a number of dollars") from None
    if not math.isfinite(value) or value < 0:  # nan would make every comparison false: never asking
        raise UsageError(f"confirm_above_usd / {ENV_CONFIRM_ABOVE}: {value} must be a finite number, not negative")
    return value


def confirm_spend(estimate: float, threshold: float, *, yes: bool, budget: float | None,
                  stdin: TextIO | None = None, stderr: TextIO | None = None) -> None:
    """Go on, or raise UsageError (nothing has run yet).

    Under the threshold, with ``--yes``, or with a ``--budget`` the estimate fits in (the budget
    check runs first), a paid run starts at once. Otherwise a terminal is asked; without one the
    run is refused, so a script never spends more than it said it would."""
    stdin, stderr = stdin or sys.stdin, stderr or sys.stderr
    if estimate <= threshold or yes or budget is not None:
        return
    question = (f"This paid run is estimated at ${estimate:.2f} (list prices), over the ${threshold:.2f} "
                "confirmation threshold. Start it? [y/N] ")
    if not (stdin.isatty() and stderr.isatty()):
        raise UsageError(f"the estimated cost ${estimate:.2f} is over the ${threshold:.2f} confirmation threshold and "
                         "there is no terminal to ask; pass --yes, or --budget USD, to run it unattended. Nothing was run")
    print(question, end="", file=stderr, flush=True)
    answer = stdin.readline().strip().lower()
    if answer not in ("y", "yes"):
        raise UsageError("not confirmed; nothing was run")


def confirm_for(yes: bool, config: Mapping[str, Any]) -> Callable[[Any], None]:
    """The run's confirmation hook: before a paid run no budget bounds, ask (or refuse) above the threshold."""
    threshold = confirm_threshold(config)

    def confirm(the_plan: Any) -> None:
        confirm_spend(float(the_plan.upper_usd), threshold, yes=yes, budget=None)

    return confirm


def _paid_steps(results: Iterable[RunResult], paid: set[str]) -> list[Any]:
    steps = []
    for result in results:
        for step in result.steps.values():
            for part in step.items if step.items is not None else [step]:
                if part.status == "ran" and part.provider in paid:
                    steps.append(part)
    return steps


def cost_lines(results: Iterable[RunResult], paid: set[str]) -> list[str]:
    """The cost summary of a run's paid steps (nothing for a free run)."""
    steps = _paid_steps(results, paid)
    if not steps:
        return []
    estimated = sum(step.estimated_usd for step in steps)
    reported = [step for step in steps if str(step.provider_info.get("cost_source", "")).startswith("reported")]
    unreported = [step for step in steps if step not in reported]
    line = f"cost: estimated ${estimated:.2f} before the run (list prices) for {len(steps)} paid task(s)"
    detail = f"reported by the service: ${sum(step.cost_usd for step in reported):.2f} for {len(reported)} task(s)"
    if unreported:
        detail += (f"; {len(unreported)} task(s) reported no cost (recorded at ${sum(step.cost_usd for step in unreported):.2f} "
                   "from list prices; the provider's console has the bill)")
    return [line, "      " + detail]


def print_cost(results: Iterable[RunResult], stream: TextIO) -> None:
    """Print the cost summary after a paid run."""
    from wanflow.providers.registry import PAID_PROVIDERS

    for line in cost_lines(results, set(PAID_PROVIDERS)):
        print(line, file=stream)
