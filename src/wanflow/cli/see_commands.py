"""The commands for looking at work: ``runs``, ``report`` and ``init`` (and ``run``'s ``--yes`` and
``--no-report``). Kept apart from cli/parser.py and cli/main.py, which only register these parsers and dispatch.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from wanflow._exceptions import UsageError
from wanflow.cli.exit_codes import EXIT_OK
from wanflow.cli.values import print_json


def add_parsers(commands: Any) -> None:
    """Register ``runs``, ``report`` and ``init``, and add ``--yes`` / ``--no-report`` to ``run``."""
    run = commands.choices.get("run")
    if run is not None:
        run.add_argument("--yes", "-y", action="store_true",
                         help="start a paid run estimated above the confirmation threshold (default $5) without asking")
        run.add_argument("--no-report", action="store_true", help="do not write out/<pipeline>/index.html after the run")

    runs = commands.add_parser(
        "runs", help="list past runs (newest first); `runs show RUN`, `runs diff A B`",
        description="Run history from the records under .wanflow/runs/: id, pipeline, instances, status, steps "
                    "ran/cached/failed, estimated and reported cost, duration and age. RUN is an id, a unique "
                    "prefix of one, `latest` or `latest~N`.")
    _state_argument(runs)
    runs.add_argument("--pipeline", metavar="NAME", help="only runs of this pipeline")
    runs.add_argument("--status", choices=["succeeded", "failed", "interrupted", "abandoned", "running"],
                      help="only runs with this status (abandoned: its process died)")
    runs.add_argument("--limit", type=int, default=20, metavar="N", help="show the newest N runs (default 20; 0 = all)")
    runs.add_argument("--json", action="store_true", help="print the runs as JSON")
    # The same parser class as the other commands (usage errors exit 2).
    actions = runs.add_subparsers(dest="runs_action", metavar="ACTION",
                                  parser_class=getattr(commands, "_parser_class", argparse.ArgumentParser))
    show = actions.add_parser("show", help="print one run in full: every step's status, reason, prompt, seed, cost, outputs")
    show.add_argument("run", metavar="RUN")
    _pipeline_scope(show)
    show.add_argument("--json", action="store_true", dest="show_json", help="print the run's record(s) as JSON")
    diff = actions.add_parser("diff", help="what differs between two runs, per step: vars, prompt (word diff), "
                                           "params, seed, model, provider, output hashes",
                              description="Compare RUN_A with RUN_B; with RUN_A alone, compare the run of the same "
                                          "pipeline before it with RUN_A (`wanflow runs diff latest`).")
    diff.add_argument("run_a", metavar="RUN_A")
    diff.add_argument("run_b", metavar="RUN_B", nargs="?")
    _pipeline_scope(diff)
    diff.add_argument("--json", action="store_true", dest="diff_json", help="print the differences as JSON")

    report = commands.add_parser(
        "report", help="write the HTML report of a run (default: the latest)",
        description="Write a self-contained HTML report (works from file://, offline): step cards with thumbnails, "
                    "videos, prompts, params, seeds, costs and reasons; the step graph; a matrix as a grid; a batch "
                    "as a paged table. `wanflow run` writes out/<pipeline>/index.html by itself.")
    report.add_argument("run", nargs="?", default="latest", metavar="RUN", help="run id, unique prefix, latest or latest~N")
    report.add_argument("--pipeline", metavar="NAME", help="count latest / latest~N among this pipeline's runs")
    report.add_argument("-o", "--output", type=Path, metavar="FILE",
                        help="the HTML file (default out/<pipeline>/index.html); its assets go to FILE's folder")
    _state_argument(report)
    report.add_argument("--out-dir", type=Path, metavar="DIR", help="outputs folder (default: out/ in the project)")

    init = commands.add_parser(
        "init", help="create a project: wanflow.toml, a starter pipeline, .gitignore entries, the editor schema",
        description="Create a wanflow project in DIR (default: here). The starter pipeline validates and runs offline "
                    "at once. Nothing is overwritten: if a file exists, nothing is written.")
    init.add_argument("dir", nargs="?", type=Path, default=Path("."), metavar="DIR")
    init.add_argument("--name", help="the starter pipeline's name (default: the folder's name)")


def _pipeline_scope(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: given after the action it counts, and its absence does not undo `runs --pipeline P show ...`.
    parser.add_argument("--pipeline", metavar="NAME", default=argparse.SUPPRESS,
                        help="count latest / latest~N among this pipeline's runs")


def _state_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-dir", type=Path, metavar="DIR", help="the state folder (default: .wanflow/ in the project)")


def dispatch(args: argparse.Namespace) -> int:
    """Run ``runs``, ``report`` or ``init``."""
    if args.command == "init":
        return _init(args)
    from wanflow.records.runs import load_history
    from wanflow.state.workspace import Workspace

    workspace = Workspace.discover(state_dir=args.state_dir, out_dir=getattr(args, "out_dir", None))
    history = load_history(workspace)
    _warn(history.damaged)
    if args.command == "report":
        from wanflow.report.writer import write_report

        run = history.find(args.run, args.pipeline)
        path = write_report(workspace, run, args.output)
        _warn(run.problems)
        print(_shown(path))
        return EXIT_OK
    return _runs(args, history)


def _warn(problems: list[str]) -> None:
    """Damaged state files, named on stderr: they are skipped, never fatal."""
    for problem in problems:
        print(f"wanflow: warning: {problem}", file=sys.stderr)


def _runs(args: argparse.Namespace, history: Any) -> int:
    from wanflow.cli import runs_view
    from wanflow.records.diffs import diff_runs
    from wanflow.records.runs import filter_runs, run_records

    if args.runs_action == "show":
        run = history.find(args.run, args.pipeline)
        if args.show_json:
            print_json({"run": run.summary_json(), "records": run_records(run)})
        else:
            runs_view.print_run(run)
        _warn(run.problems)
        return EXIT_OK
    if args.runs_action == "diff":
        first = history.find(args.run_a, args.pipeline)
        if args.run_b is None:
            first, second = history.previous(first), first
        else:
            second = history.find(args.run_b, args.pipeline or first.pipeline)
        diff = diff_runs(first, second)
        _warn(first.problems + second.problems)
        if args.diff_json:
            print_json(diff.to_json())
        else:
            runs_view.print_diff(diff)
        return EXIT_OK
    if args.limit < 0:
        raise UsageError("--limit must be 0 (all) or more")
    runs = filter_runs(history.runs, args.pipeline, args.status)
    shown = runs[:args.limit] if args.limit else runs
    if args.json:
        print_json([run.summary_json() for run in shown])
    else:
        runs_view.print_runs(shown, hidden=len(runs) - len(shown))
    return EXIT_OK


def _init(args: argparse.Namespace) -> int:
    from wanflow.project.init import init_project

    result = init_project(args.dir, args.name)
    for path in result.written:
        print(f"created {_shown(path)}")
    if result.gitignore_added:
        print(f"added {', '.join(result.gitignore_added)} to {_shown(result.root / '.gitignore')}")
    where = "" if result.root == Path.cwd().resolve() else f"cd {_shown(result.root)} && "
    print(f"next: {where}wanflow run {result.pipeline.name}   (free offline previews; "
          f"then open out/{result.pipeline.stem}/index.html)")
    return EXIT_OK


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
