"""``wanflow pick PIPELINE STEP INDEX [--instance NAME]``: choose a candidate of an ``op: pick`` step."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from wanflow.cli.exit_codes import EXIT_OK
from wanflow.cli.values import say


def add_parser(commands: Any) -> None:
    """Register ``pick``."""
    pick = commands.add_parser(
        "pick", help="choose the candidate of an `op: pick` step (kept in the lockfile; the next run re-runs only what follows)",
        description="Record INDEX (0 = the first candidate) as the choice of the op: pick step STEP in the pipeline's "
                    "lockfile, beside its seeds, so the choice is versioned. The next run re-runs only the steps after "
                    "the pick. A matrix or batch instance is picked on its own with --instance; an item of a pick step "
                    "that fans out (for_each) by its name, e.g. 'best[1]'.")
    pick.add_argument("pipeline", type=Path, help="the pipeline file")
    pick.add_argument("step", help="the op: pick step (an item of one with for_each: 'best[1]')")
    pick.add_argument("index", type=int, help="the candidate to keep, from 0")
    pick.add_argument("--instance", default="default", metavar="NAME",
                      help="the matrix combination or batch row (as in the report; a batch row once it has run); "
                           "default: the pipeline itself")


def dispatch(args: argparse.Namespace) -> int:
    """Record the pick and say what it changes."""
    from wanflow._api import pick

    message = pick(args.pipeline, args.step, args.index, instance=args.instance)
    say(message)
    return EXIT_OK
