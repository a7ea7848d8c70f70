"""The pipeline commands: ``run``, ``plan``, ``explain``, ``validate`` and ``graph``.

They turn the parsed arguments into a loaded pipeline and run options, ask the application
(wanflow._api) for the plan or the run, and print the result.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from wanflow._exceptions import UsageError
from wanflow.cli.exit_codes import EXIT_INTERRUPTED, EXIT_OK, EXIT_STEP_FAILED
from wanflow.cli.parser import ALL_STEPS
from wanflow.cli.values import print_json, say
from wanflow.pipelines.variables import parse_var_assignment


def dispatch(args: argparse.Namespace) -> int:
    """``run``, ``plan``, ``explain``, ``validate`` or ``graph``: load the pipeline, build the one plan, print or run it."""
    from wanflow.cli import reporting
    from wanflow.project.config_check import check_project, check_user_config
    from wanflow.project.settings import user_config_path
    from wanflow.state.workspace import find_project_root

    check_project(find_project_root(Path.cwd().resolve()))  # wanflow.toml: every command that reads it checks it
    check_user_config(user_config_path())  # and the user's config: a misspelt key is never silently ignored
    pipeline = _load(args)
    if args.command == "validate":
        if args.json:
            print_json({"ok": True, "file": str(args.pipeline), "steps": pipeline.order(),
                        "warnings": [warning.to_json() for warning in pipeline.warnings]})
        else:
            print(f"{args.pipeline}: ok ({len(pipeline.steps)} steps: {', '.join(pipeline.order())})")
        return EXIT_OK
    if args.command == "graph":
        from wanflow.pipelines import to_mermaid

        sys.stdout.write(to_mermaid(pipeline))
        return EXIT_OK

    from wanflow._api import build_plan, execute, instances_for, providers_for
    from wanflow.execute.batch import BatchResult

    workspace = _workspace(args)
    options = _options(args, pipeline, workspace.config().get("run", {}).get("jobs"))
    providers = providers_for(pipeline, options, check_ready=args.command == "run")  # planning needs no API key
    instances, rejected = instances_for(pipeline, getattr(args, "batch", None), strict=args.strict,
                                        delimiter=getattr(args, "batch_delimiter", None))
    # One plan: what plan and explain print, what --budget and the confirmation weigh, what run executes.
    the_plan = build_plan(pipeline, workspace, providers, options, instances, rejected)
    if args.command == "explain":
        return _explain(args, the_plan, workspace)
    if args.command == "plan":
        if args.json:
            print_json(reporting.plan_document(the_plan))
        else:
            reporting.print_whole_plan(the_plan)
        return EXIT_STEP_FAILED if rejected else EXIT_OK  # as run would: rejected rows fail the batch

    the_plan.check_budget(args.budget)
    from wanflow.execute.preflight import prepare_run

    prepare_run(workspace, pipeline, [instance.name for instance in instances or []], options.write_lock)  # exit 2 now, not mid-run
    from wanflow.cli import run_hooks

    run_hooks.confirm_paid_start(args, workspace, providers, lambda: the_plan.upper_usd)

    import anyio

    if the_plan.batch:
        return _run_batch(args, the_plan, workspace, providers)
    display = reporting.make_progress(pipeline, sys.stderr)
    with display:
        result = anyio.run(execute, the_plan, workspace, providers, display)
    assert not isinstance(result, BatchResult)
    if args.json:
        print_json(reporting.run_json(result))
    else:
        reporting.print_summary(result)
    run_hooks.after_run(args, pipeline, workspace, result)  # cost of paid steps, out/<pipeline>/index.html
    if result.interrupted:
        print("wanflow: interrupted; finished results are kept, remote tasks in flight are journaled, "
              "and the next run resumes them", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK if result.ok else EXIT_STEP_FAILED


def _load(args: argparse.Namespace):
    from wanflow.pipelines import load_pipeline

    overrides: dict[str, str] = {}
    for assignment in args.var:
        try:
            key, value = parse_var_assignment(assignment)
        except ValueError as error:
            raise UsageError(str(error)) from None
        overrides[key] = value
    pipeline = load_pipeline(
        args.pipeline, overrides=overrides, vars_file=args.vars_file, provider_override=args.provider, strict=args.strict,
        allowed_paths=tuple(args.allow_path),
    )
    for warning in pipeline.warnings:
        print(warning.format(), file=sys.stderr)
    return pipeline


def _options(args: argparse.Namespace, pipeline, config_jobs: int | None = None):
    from wanflow.execute.instance import RunOptions
    from wanflow.providers import PAID_PROVIDERS

    fresh_all, steps = _step_selection(args, "fresh", pipeline)
    reseed_all, reseed_steps = _step_selection(args, "reseed", pipeline)
    jobs = getattr(args, "jobs", None) or config_jobs or 4
    if jobs < 1:
        raise UsageError("--jobs must be at least 1")
    allow_paid = bool(getattr(args, "allow_paid", False)) or args.provider in PAID_PROVIDERS \
        or os.environ.get("WANFLOW_ALLOW_PAID", "") == "1"
    return RunOptions(
        jobs=jobs,
        fresh_all=fresh_all,
        fresh_steps=steps,
        provider_override=args.provider,
        allow_paid=allow_paid,
        resubmit_unknown=bool(getattr(args, "resubmit_unknown", False)),
        cancel_on_interrupt=bool(getattr(args, "cancel_on_interrupt", False)),
        handle_signals=args.command == "run",
        frozen=bool(getattr(args, "frozen", False)),
        reseed_all=reseed_all,
        reseed_steps=reseed_steps,
        write_lock=args.command == "run" and not getattr(args, "no_lock", False),
        cluster=getattr(args, "cluster", None),
        force_out=bool(getattr(args, "force_out", False)),
    )


def _step_selection(args: argparse.Namespace, option: str, pipeline) -> tuple[bool, frozenset[str]]:
    """``--fresh`` / ``--reseed``: (every step?, the named steps)."""
    given = list(getattr(args, option, None) or [])
    steps = frozenset(name for name in given if name != ALL_STEPS)
    unknown = sorted(steps - set(pipeline.steps))
    if unknown:
        raise UsageError(f"--{option}: unknown step {', '.join(unknown)} (steps: {', '.join(pipeline.steps)})")
    return ALL_STEPS in given, steps


def _workspace(args: argparse.Namespace):
    from wanflow.state.workspace import Workspace

    return Workspace.discover(state_dir=args.state_dir, out_dir=args.out_dir, store=getattr(args, "store", None))


def _explain(args: argparse.Namespace, the_plan, workspace) -> int:
    from dataclasses import replace

    from wanflow.planning.explain import explain_plan

    explained = explain_plan(the_plan, workspace, only=args.step)
    lines = [line if not the_plan.batch else replace(line, unit=f"{instance}/{line.unit}")
             for instance, found in explained.items() for line in found]
    if args.json:
        print_json([line.to_json() for line in lines])
    else:
        for line in lines:
            say(line.format())
    return EXIT_STEP_FAILED if the_plan.rejected else EXIT_OK  # rejected batch rows: as run exits


def _run_batch(args: argparse.Namespace, the_plan, workspace, providers) -> int:
    import anyio

    from wanflow._api import execute
    from wanflow.cli import reporting
    from wanflow.execute.batch import batch_state

    pipeline, instances, rejected = the_plan.pipeline, the_plan.instances, the_plan.rejected
    for row in rejected:
        for problem in row.problems:
            print(f"error: {row.label}: {problem}", file=sys.stderr)
    print(f"{pipeline.name}: {len(instances)} instance(s)" + (f", {len(rejected)} row(s) rejected" if rejected else ""),
          file=sys.stderr)
    shared = batch_state(instances, workspace, the_plan.options)
    with reporting.make_batch_progress(pipeline.name, len(instances), shared.limits.queues, sys.stderr) as display:
        batch = anyio.run(execute, the_plan, workspace, providers, display, shared, display.instance_finished)
    if args.json:
        print_json(reporting.batch_json(batch))
    else:
        reporting.print_batch(pipeline.name, batch)
    from wanflow.cli import run_hooks

    run_hooks.after_batch(args, pipeline, workspace, instances, rejected, batch)  # batch record, cost, report
    if batch.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if batch.ok else EXIT_STEP_FAILED
