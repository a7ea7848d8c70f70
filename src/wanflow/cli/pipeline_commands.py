"""The pipeline commands: ``run``, ``plan``, ``explain``, ``validate`` and ``graph``.

Each turns its flags into the keywords of the application (``wanflow._api``), makes one call, and
prints what comes back: the CLI does none of the run's work itself.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from wanflow._exceptions import UsageError
from wanflow.cli.exit_codes import EXIT_INTERRUPTED, EXIT_OK, EXIT_STEP_FAILED
from wanflow.cli.parser import ALL_STEPS
from wanflow.cli.values import print_json, say
from wanflow.pipelines.variables import parse_var_assignment


def dispatch(args: argparse.Namespace) -> int:
    """``run``, ``plan``, ``explain``, ``validate`` or ``graph``: the one plan, printed or run."""
    from wanflow import _api

    choices = api_choices(args)
    if args.command in ("validate", "graph"):
        pipeline = _api.load(args.pipeline, **choices)
        _print_warnings(pipeline)
        return _validate(args, pipeline) if args.command == "validate" else _graph(pipeline)
    if args.command == "run":
        return _run(args, choices)
    prepared = _api.prepare(args.pipeline, **choices)
    _print_warnings(prepared.pipeline)
    if args.command == "explain":
        return _explain(args, prepared)
    from wanflow.cli import reporting

    if args.json:
        print_json(reporting.plan_document(prepared.plan))
    else:
        reporting.print_whole_plan(prepared.plan)
    return EXIT_STEP_FAILED if prepared.plan.rejected else EXIT_OK  # as run would: rejected rows fail the batch


def api_choices(args: argparse.Namespace) -> dict[str, Any]:
    """The flags as the keywords of ``wanflow.run`` / ``plan`` / ``explain`` (prepare's keywords)."""
    overrides: dict[str, str] = {}
    for assignment in args.var:
        try:
            key, value = parse_var_assignment(assignment)
        except ValueError as error:
            raise UsageError(str(error)) from None
        overrides[key] = value
    choices: dict[str, Any] = {"vars": overrides, "vars_file": args.vars_file, "provider": args.provider,
                               "allow_paths": tuple(args.allow_path), "strict": args.strict}
    if args.command in ("validate", "graph"):
        return choices  # wanflow._api.load's keywords
    choices.update(
        state_dir=args.state_dir, out_dir=args.out_dir, store=getattr(args, "store", None), batch=getattr(args, "batch", None), batch_delimiter=getattr(args, "batch_delimiter", None),
        fresh=_steps(getattr(args, "fresh", None)), reseed=_steps(getattr(args, "reseed", None)),
        frozen=bool(getattr(args, "frozen", False)), jobs=getattr(args, "jobs", None),
        allow_paid=bool(getattr(args, "allow_paid", False)),
    )
    if args.command == "run":
        choices.update(
            cluster=args.cluster, resubmit_unknown=args.resubmit_unknown, cancel_on_interrupt=args.cancel_on_interrupt,
            lock=not args.no_lock, force_out=args.force_out, handle_signals=True,
        )
    return choices


def _steps(given: list[str] | None) -> bool | list[str]:
    """A bare ``--fresh`` means every step; ``--fresh A --fresh B`` the steps named."""
    given = list(given or [])
    return True if ALL_STEPS in given else given


def _run(args: argparse.Namespace, choices: dict[str, Any]) -> int:
    from wanflow import _api
    from wanflow.cli import reporting
    from wanflow.cli.spend import confirm_for, print_cost
    from wanflow.execute.batch import BatchResult

    prepared = _api.prepare(args.pipeline, **choices)
    _print_warnings(prepared.pipeline)
    the_plan, name = prepared.plan, prepared.pipeline.name
    stream = sys.stderr if args.json else sys.stdout  # --json keeps stdout pure JSON
    if the_plan.batch:
        for row in the_plan.rejected:
            for problem in row.problems:
                print(f"error: {row.label}: {problem}", file=sys.stderr)
        print(f"{name}: {len(the_plan.instances)} instance(s)"
              + (f", {len(the_plan.rejected)} row(s) rejected" if the_plan.rejected else ""), file=sys.stderr)
    confirm = confirm_for(args.yes, prepared.workspace.config())
    with reporting.make_display(the_plan, sys.stderr) as display:
        result = _api.run(prepared, budget=args.budget, confirm=confirm, report=not args.no_report, reporter=display)
    if isinstance(result, BatchResult):
        print_json(reporting.batch_json(result)) if args.json else reporting.print_batch(name, result)
        print_cost(list(result.instances.values()), stream)
    else:
        print_json(reporting.run_json(result)) if args.json else reporting.print_summary(result)
        print_cost([result], stream)
    if result.report_error:
        print(f"wanflow: warning: the HTML report was not written ({result.report_error}); `wanflow report` can try again",
              file=sys.stderr)
    elif result.report_path is not None:
        print(f"report: {reporting.shown(result.report_path)}", file=stream)
    if result.interrupted:
        if not isinstance(result, BatchResult):
            print("wanflow: interrupted; finished results are kept, remote tasks in flight are journaled, "
                  "and the next run resumes them", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK if result.ok else EXIT_STEP_FAILED


def _print_warnings(pipeline: Any) -> None:
    for warning in pipeline.warnings:
        print(warning.format(), file=sys.stderr)


def _validate(args: argparse.Namespace, pipeline: Any) -> int:
    if args.json:
        print_json({"ok": True, "file": str(args.pipeline), "steps": pipeline.order(),
                    "warnings": [warning.to_json() for warning in pipeline.warnings]})
    else:
        print(f"{args.pipeline}: ok ({len(pipeline.steps)} steps: {', '.join(pipeline.order())})")
    return EXIT_OK


def _graph(pipeline: Any) -> int:
    from wanflow.pipelines.graph import to_mermaid

    sys.stdout.write(to_mermaid(pipeline))
    return EXIT_OK


def _explain(args: argparse.Namespace, prepared: Any) -> int:
    from dataclasses import replace

    from wanflow.planning.explain import explain_plan

    the_plan = prepared.plan
    explained = explain_plan(the_plan, prepared.workspace, only=args.step)
    lines = [line if not the_plan.batch else replace(line, unit=f"{instance}/{line.unit}")
             for instance, found in explained.items() for line in found]
    if args.json:
        print_json([line.to_json() for line in lines])
    else:
        for line in lines:
            say(line.format())
    return EXIT_STEP_FAILED if the_plan.rejected else EXIT_OK  # rejected batch rows: as run exits
