"""``wanflow`` command line: run, plan, validate and graph pipelines."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from wanflow import __version__
from wanflow._diagnostics import Diagnostic
from wanflow._exceptions import PipelineError, UsageError, WanflowError
from wanflow.cli.values import add_batch_delimiter, non_negative_float, positive_int, print_errors_json, wants_json
from wanflow.pipelines.variables import parse_var_assignment

EXIT_OK, EXIT_STEP_FAILED, EXIT_INVALID, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
_ALL = "\x00all"

DESCRIPTION = """\
Declarative, cached, concurrent pipelines for Alibaba's Wan 2.6 image and video models.

Steps run as soon as their inputs are ready; every step is cached by the content hash of its
resolved request, so a rerun only pays for what changed. Without a paid provider chosen
explicitly, everything runs on the free offline `local` preview provider.
"""

EPILOG = """\
exit codes: 0 ok · 1 a step failed · 2 invalid pipeline or usage · 3 internal error · 130 interrupted

examples:
  wanflow run examples/product-ad/product-ad.yaml
  wanflow run examples/product-ad/product-ad.yaml --var product="blue hiking boot"
  wanflow plan examples/product-ad/product-ad.yaml --json
  wanflow run examples/product-ad/product-ad.yaml --fresh beach
  wanflow run examples/product-ad/product-ad.yaml --frozen
  wanflow explain examples/product-ad/product-ad.yaml --var product="blue boot"
  wanflow plan examples/batch-products/batch-products.yaml --batch examples/batch-products/products.csv
  wanflow run examples/style-matrix/style-matrix.yaml
  wanflow graph examples/product-ad/product-ad.yaml > graph.mmd
  wanflow runs
  wanflow runs diff latest             # the latest run against the one before it
  wanflow report                       # rewrite out/<pipeline>/index.html of the latest run
  wanflow init my-project
  wanflow models wan2.6-i2v
  wanflow cache verify
  wanflow cache gc --dry-run
  wanflow sim --port 8765 --task-seconds 1 --error-rate 0.1 --throttle-rps 2
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"wanflow: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_INVALID)


def _pipeline_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pipeline", nargs="?", type=Path, help="the pipeline YAML file")
    parser.add_argument("--var", action="append", default=[], metavar="KEY=VALUE",
                        help="override a declared var (repeatable); the value takes the type of the var's default")
    parser.add_argument("--vars-file", type=Path, metavar="FILE", help="YAML mapping of var overrides (applied before --var)")
    parser.add_argument("--provider", choices=["local", "dashscope", "vtrix"],
                        help="use this provider for every step (beats the pipeline's own choice)")
    parser.add_argument("--state-dir", type=Path, metavar="DIR",
                        help="cache and store folder (default: .wanflow/ in the project; env WANFLOW_STATE_DIR)")
    parser.add_argument("--out-dir", type=Path, metavar="DIR",
                        help="outputs folder (default: out/ in the project; env WANFLOW_OUT_DIR)")
    parser.add_argument("--allow-path", action="append", default=[], type=Path, metavar="DIR",
                        help="let local inputs come from DIR too (default: only the pipeline's own folder)")
    parser.add_argument("--strict", action="store_true",
                        help="treat warnings (truncated prompts, disputed values, costly defaults) as errors")


def _fresh_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fresh", action="append", nargs="?", const=_ALL, metavar="STEP",
                        help="ignore the cache: for every step, or (repeatable) only for STEP")


def _lock_arguments(parser: argparse.ArgumentParser) -> None:
    """--frozen and --reseed: plan takes them too, so it plans what run will do."""
    parser.add_argument("--frozen", action="store_true",
                        help="reproduce <pipeline>.lock exactly; refuse with a diff if any resolved request would change")
    parser.add_argument("--reseed", action="append", nargs="?", const=_ALL, metavar="STEP",
                        help="draw new seeds on purpose (all steps, or only STEP; repeatable); the lockfile keeps them")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used to render --help in the docs)."""
    parser = _Parser(prog="wanflow", description=DESCRIPTION, epilog=EPILOG,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"wanflow {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = commands.add_parser("run", help="run a pipeline (cached steps are reused)",
                              description="Run a pipeline. Steps run concurrently as soon as their inputs exist; "
                                          "cached steps make no provider call.")
    _pipeline_arguments(run)
    _fresh_argument(run)
    run.add_argument("--jobs", "-j", type=positive_int, default=None, metavar="N",
                     help="steps generating at once, at least 1 (default 4)")
    run.add_argument("--json", action="store_true", help="print a machine-readable summary on stdout")
    run.add_argument("--allow-paid", action="store_true",
                     help="let steps whose pipeline names a paid provider spend money (--provider dashscope|vtrix implies it)")
    run.add_argument("--batch", type=Path, metavar="ROWS",
                     help="run one instance per row of a .csv (header = var names) or .jsonl file; bad rows are reported by line")
    add_batch_delimiter(run)
    _lock_arguments(run)
    run.add_argument("--no-lock", action="store_true", help="do not write <pipeline>.lock")
    run.add_argument("--resubmit-unknown", action="store_true",
                     help="when an earlier create call's outcome is unknown and cannot be reconciled, submit again "
                          "(this may pay twice)")
    run.add_argument("--cancel-on-interrupt", action="store_true",
                     help="on Ctrl-C / SIGTERM cancel still-queued remote tasks (default: keep them; the next run resumes them)")
    run.add_argument("--budget", type=non_negative_float, metavar="USD",
                     help="refuse to start when the estimated cost of the steps that would run exceeds USD")

    plan = commands.add_parser("plan", help="show which steps would run and which are cached",
                               description="Resolve the pipeline against the cache without generating anything.")
    _pipeline_arguments(plan)
    _fresh_argument(plan)
    _lock_arguments(plan)
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    plan.add_argument("--batch", type=Path, metavar="ROWS", help="plan one instance per row of a .csv or .jsonl file")
    add_batch_delimiter(plan)

    validate = commands.add_parser("validate", help="check a pipeline without running it",
                                   description="Check schema, models, params, vars, references, templates, input files "
                                               "and the project's wanflow.toml.")
    _pipeline_arguments(validate)
    validate.add_argument("--json", action="store_true",
                          help="print the result as JSON: the steps, or every problem with file, line, column, path and code")

    explain = commands.add_parser("explain", help="say why each step would run or hit the cache",
                                  description="For each step (and item), whether it would run or be cached, and which "
                                              "field of its resolved request changed since the lockfile or the last run.")
    _pipeline_arguments(explain)
    explain.add_argument("step", nargs="?", help="only this step (and its items)")
    explain.add_argument("--json", action="store_true", help="print the explanation as JSON")
    explain.add_argument("--batch", type=Path, metavar="ROWS", help="explain one instance per row of a .csv or .jsonl file")
    add_batch_delimiter(explain)

    graph = commands.add_parser("graph", help="print the step graph as a Mermaid flowchart (fan-out steps as stacks)")
    _pipeline_arguments(graph)

    models = commands.add_parser("models", help="list the models with their parameters, ranges and defaults",
                                 description="The model catalog: parameters, ranges, defaults, media rules and prices.")
    models.add_argument("model", nargs="?", help="show one model in full")
    models.add_argument("--markdown", action="store_true", help="print the docs/models.md page")
    models.add_argument("--json", action="store_true", help="print the catalog as JSON")

    cache = commands.add_parser("cache", help="check or clean the artifact store and step cache",
                                description="verify: rehash every stored object (corrupt ones are quarantined, never served). "
                                            "gc: remove what no recent run record, lockfile or in-flight task refers to.")
    cache.add_argument("action", choices=["verify", "gc"])
    cache.add_argument("--dry-run", action="store_true", help="gc: show what would be removed, remove nothing")
    cache.add_argument("--keep-days", type=non_negative_float, default=30.0, metavar="N",
                       help="gc: keep what any run of the last N days refers to (default 30)")
    cache.add_argument("--state-dir", type=Path, metavar="DIR", help="the state folder (default: .wanflow/ in the project)")
    cache.add_argument("--json", action="store_true", help="print the report as JSON")

    sim = commands.add_parser("sim", help="serve a local simulator of the vtrix and DashScope APIs (loopback only)",
                              description="A faithful local stand-in for both Wan HTTP protocols, for tests and demos. "
                                          "Results are rendered by the local preview renderer.")
    sim.add_argument("--port", type=int, default=8765, help="port to listen on (default 8765)")
    sim.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    sim.add_argument("--key", action="append", default=None, metavar="KEY",
                     help="accepted API key (repeatable; default sim-key); others get 401")
    sim.add_argument("--task-seconds", type=float, default=2.0, metavar="S", help="how long each task takes (default 2)")
    sim.add_argument("--error-rate", type=float, default=0.0, metavar="F",
                     help="fraction of requests answered with a transient 5xx before any task is created")
    sim.add_argument("--throttle-rps", type=float, default=0.0, metavar="R",
                     help="per-key create rate; faster creates get 429 Throttling.RateQuota with Retry-After")
    sim.add_argument("--fail-rate", type=float, default=0.0, metavar="F",
                     help="fraction of tasks that end FAILED with an internal error")
    sim.add_argument("--drop-rate", type=float, default=0.0, metavar="F",
                     help="fraction of creates that make the task, then drop the connection before answering")
    sim.add_argument("--url-ttl", type=float, default=86400.0, metavar="S", help="seconds result URLs stay valid (default 24 h)")
    sim.add_argument("--corrupt-rate", type=float, default=0.0, metavar="F",
                     help="fraction of result downloads with 256 flipped bytes and the right length")
    sim.add_argument("--short-rate", type=float, default=0.0, metavar="F",
                     help="fraction of result downloads cut off after half the announced length")
    sim.add_argument("--reset-rate", type=float, default=0.0, metavar="F",
                     help="fraction of result downloads whose connection resets before any body")
    sim.add_argument("--seed", type=int, default=None, help="seed for the simulator's dice (repeatable fault patterns)")
    sim.add_argument("--tiny-results", action="store_true",
                     help="return plain 512x512 images instead of rendered previews (for benchmarks of the client)")
    sim.add_argument("--moderate", metavar="WORD", default=None,
                     help="refuse prompts containing WORD with DataInspectionFailed (to exercise moderation handling)")
    # The many voices of public material; docs/simulator.md says where each shape comes from.
    sim.add_argument("--vtrix-dialect", choices=["documented", "gateway"], default="documented",
                     help="vtrix envelope: documented (default) or the vendor CLI's gateway envelope under /gateway")
    sim.add_argument("--status-words", choices=["documented", "vendor", "novel", "mixed"], default="documented",
                     help="vtrix status words: documented (default), vendor (in_progress), novel (unknown running "
                          "words) or mixed (a random synonym per poll)")
    sim.add_argument("--status-in-output", action="store_true",
                     help="vtrix status only inside output[0].status, as the i2v page shows")
    sim.add_argument("--error-shape", choices=["object", "string", "numeric", "message-only"], default="object",
                     help="vtrix error bodies and failed-task errors: object (default), string, numeric or message-only")
    sim.add_argument("--suspend-rate", type=float, default=0.0, metavar="F",
                     help="fraction of DashScope tasks that spend part of their run SUSPENDED")
    sim.add_argument("--list-clock-offset", default="+00:00", metavar="+HH:MM",
                     help="DashScope's service clock zone for the task list and timestamps (default +00:00)")
    sim.add_argument("--upload-ttl", type=float, default=172800.0, metavar="S",
                     help="seconds DashScope's temporary oss:// uploads live (default 48 h)")
    sim.add_argument("--ignore-params", action="store_true",
                     help="the service drops `parameters` and renders its defaults (t2i: 4 images, i2v: 1080P)")
    sim.add_argument("--poll-throttle-rps", type=float, default=0.0, metavar="R",
                     help="per-key task-poll rate; faster polls get 429 with Retry-After")
    from wanflow.cli import see_commands

    see_commands.add_parsers(commands)  # runs, report, init; --yes and --no-report on run
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``wanflow`` console script; returns the exit code."""
    args: argparse.Namespace | None = None  # known once parsed: --json turns errors into JSON on stdout
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not args.command:
            parser.print_help()
            return EXIT_INVALID
        if args.command not in ("models", "sim", "cache", "runs", "report", "init"):
            _fix_fresh_swallowing_pipeline(args, parser)
        return _dispatch(args)
    except SystemExit as exit_request:  # --help, --version and usage errors
        return int(exit_request.code or 0)
    except PipelineError as error:
        if wants_json(args):
            print_errors_json(error.diagnostics, "invalid pipeline")
        for diagnostic in error.diagnostics:
            print(f"error: {diagnostic.format()}" if diagnostic.severity == "error" else diagnostic.format(), file=sys.stderr)
        count = len(error.diagnostics)
        print(f"wanflow: {count} problem{'s' if count != 1 else ''} found; nothing was run", file=sys.stderr)
        return EXIT_INVALID
    except UsageError as error:
        if wants_json(args):
            print_errors_json([Diagnostic(str(error))], "usage")
        print(f"wanflow: error: {error}", file=sys.stderr)
        return EXIT_INVALID
    except BrokenPipeError:
        # The reader went away (`wanflow plan p.yaml | head`): not an error of ours.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:
        print("wanflow: interrupted; finished results are kept and the next run resumes from the cache", file=sys.stderr)
        return EXIT_INTERRUPTED
    except WanflowError as error:
        print(f"wanflow: error: {error}", file=sys.stderr)
        return EXIT_STEP_FAILED
    except Exception as error:  # never a bare traceback for the user; WANFLOW_DEBUG=1 shows it
        from wanflow.runner import fs_errors

        if isinstance(error, OSError) and fs_errors.is_file_system_error(error):  # a full disk mid-run: fixable
            print(f"wanflow: error: {fs_errors.describe(error)}", file=sys.stderr)
            return EXIT_STEP_FAILED
        if os.environ.get("WANFLOW_DEBUG"):
            raise
        print(f"wanflow: internal error: {type(error).__name__}: {error}\n"
              "  this is a bug in wanflow; rerun with WANFLOW_DEBUG=1 for details", file=sys.stderr)
        return EXIT_INTERNAL


def _fix_fresh_swallowing_pipeline(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """``wanflow run --fresh p.yaml``: argparse hands p.yaml to --fresh (or --reseed); give it back."""
    for option in ("fresh", "reseed"):
        given = getattr(args, option, None)
        if args.pipeline is None and given and given[-1] not in (None, _ALL) and given[-1].endswith((".yaml", ".yml")):
            args.pipeline = Path(given.pop())
            given.append(_ALL)
    if args.command != "models" and args.pipeline is None:
        parser.error(f"{args.command}: the pipeline file is required")


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
    from wanflow.providers import PAID_PROVIDERS
    from wanflow.runner import RunOptions

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
    )


def _print_json(value: object) -> None:
    """``--json`` output: indented on a terminal, one line when piped (a thousand-instance batch
    summary takes seconds to indent in pure Python, and programs do not need it)."""
    if sys.stdout.isatty():
        print(json.dumps(value, indent=2))
    else:
        print(json.dumps(value, separators=(",", ":")))


def _explain(args: argparse.Namespace, the_plan, workspace) -> int:
    from dataclasses import replace

    from wanflow.runner.explain import explain_plan

    explained = explain_plan(the_plan, workspace, only=args.step)
    lines = [line if not the_plan.batch else replace(line, unit=f"{instance}/{line.unit}")
             for instance, found in explained.items() for line in found]
    if args.json:
        _print_json([line.to_json() for line in lines])
    else:
        for line in lines:
            print(line.format())
    return EXIT_OK


def _run_batch(args: argparse.Namespace, the_plan, workspace, providers) -> int:
    import anyio

    from wanflow._api import execute
    from wanflow.cli import reporting
    from wanflow.runner.batch import batch_state

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
        _print_json(reporting.batch_json(batch))
    else:
        reporting.print_batch(pipeline.name, batch)
    from wanflow.cli import run_hooks

    run_hooks.after_batch(args, pipeline, workspace, instances, rejected, batch)  # batch record, cost, report
    if batch.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if batch.ok else EXIT_STEP_FAILED


def _step_selection(args: argparse.Namespace, option: str, pipeline) -> tuple[bool, frozenset[str]]:
    """``--fresh`` / ``--reseed``: (every step?, the named steps)."""
    given = list(getattr(args, option, None) or [])
    steps = frozenset(name for name in given if name != _ALL)
    unknown = sorted(steps - set(pipeline.steps))
    if unknown:
        raise UsageError(f"--{option}: unknown step {', '.join(unknown)} (steps: {', '.join(pipeline.steps)})")
    return _ALL in given, steps


def _workspace(args: argparse.Namespace):
    from wanflow.runner import Workspace

    return Workspace.discover(state_dir=args.state_dir, out_dir=args.out_dir)


def _dispatch(args: argparse.Namespace) -> int:
    from wanflow.cli import reporting

    if args.command == "models":
        return _models(args)
    if args.command == "sim":
        return _sim(args)
    if args.command == "cache":
        return _cache(args)
    if args.command in ("runs", "report", "init"):
        from wanflow.cli import see_commands

        return see_commands.dispatch(args)
    from wanflow.runner.config_check import check_project
    from wanflow.runner.workspace import find_project_root

    check_project(find_project_root(Path.cwd().resolve()))  # wanflow.toml: every command that reads it checks it
    pipeline = _load(args)
    if args.command == "validate":
        if args.json:
            _print_json({"ok": True, "file": str(args.pipeline), "steps": pipeline.order(),
                         "warnings": [warning.to_json() for warning in pipeline.warnings]})
        else:
            print(f"{args.pipeline}: ok ({len(pipeline.steps)} steps: {', '.join(pipeline.order())})")
        return EXIT_OK
    if args.command == "graph":
        from wanflow.pipelines import to_mermaid

        sys.stdout.write(to_mermaid(pipeline))
        return EXIT_OK

    from wanflow._api import execute, instances_for, providers_for
    from wanflow.runner.batch import BatchResult
    from wanflow.runner.plan import build_plan

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
            _print_json(reporting.plan_document(the_plan))
        else:
            reporting.print_whole_plan(the_plan)
        return EXIT_OK

    the_plan.check_budget(args.budget)
    from wanflow.runner.preflight import prepare_run

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
        _print_json(reporting.run_json(result))
    else:
        reporting.print_summary(result)
    run_hooks.after_run(args, pipeline, workspace, result)  # cost of paid steps, out/<pipeline>/index.html
    if result.interrupted:
        print("wanflow: interrupted; finished results are kept, remote tasks in flight are journaled, "
              "and the next run resumes them", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK if result.ok else EXIT_STEP_FAILED


def _cache(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from wanflow.runner import maintenance
    from wanflow.runner.workspace import Workspace

    workspace = Workspace.discover(state_dir=args.state_dir)
    if workspace.state_dir.exists() and not workspace.state_dir.is_dir():
        raise UsageError(f"the state folder {workspace.state_dir} is a file, not a folder; choose another with --state-dir")
    if args.action == "verify":
        report = maintenance.verify(workspace)
        if args.json:
            _print_json({**asdict(report), "ok": report.ok})
        else:
            print(f"checked {report.objects_checked} objects and {report.entries_checked} cache entries in {workspace.state_dir}")
            for name in report.corrupt:
                print(f"  corrupt object {name}: moved to quarantine; the steps needing it will run again")
            for key in report.entries_missing_objects:
                print(f"  cache entry {key[:16]} lost an object: its step will run again")
            for run_id in report.abandoned:
                print(f"  run {run_id} was left running by a process that died: marked abandoned")
            print("ok" if report.ok else "problems found (nothing corrupt will be served)")
        return EXIT_OK if report.ok else EXIT_STEP_FAILED
    gc = maintenance.collect_garbage(workspace, keep_days=args.keep_days, dry_run=args.dry_run)
    if args.json:
        _print_json(asdict(gc))
        return EXIT_OK
    verb = "would remove" if gc.dry_run else "removed"
    print(f"policy: {gc.policy}")
    print(f"{verb} {len(gc.removed_entries)} cache entries and {len(gc.removed_objects)} objects "
          f"({gc.freed_bytes / 1048576:.1f} MB); kept {gc.kept_entries} entries and {gc.kept_objects} objects")
    if gc.dry_run:
        for key in gc.removed_entries:
            print(f"  entry  {key}")
        for name in gc.removed_objects:
            print(f"  object {name}")
    return EXIT_OK


def _sim(args: argparse.Namespace) -> int:
    from wanflow.sim.server import serve
    from wanflow.sim.state import Knobs

    for name in ("error_rate", "fail_rate", "drop_rate", "suspend_rate", "corrupt_rate", "short_rate", "reset_rate"):
        if not 0 <= getattr(args, name) <= 1:
            raise UsageError(f"--{name.replace('_', '-')} must be between 0 and 1")
    try:
        knobs = Knobs(
            task_seconds=args.task_seconds,
            error_rate=args.error_rate,
            throttle_rps=args.throttle_rps,
            fail_rate=args.fail_rate,
            drop_rate=args.drop_rate,
            corrupt_rate=args.corrupt_rate,
            short_rate=args.short_rate,
            reset_rate=args.reset_rate,
            url_ttl=args.url_ttl,
            keys=tuple(args.key or ["sim-key"]),
            seed=args.seed,
            moderate=args.moderate,
            tiny_results=args.tiny_results,
            vtrix_dialect=args.vtrix_dialect,
            status_words=args.status_words,
            status_in_output=args.status_in_output,
            error_shape=args.error_shape,
            suspend_rate=args.suspend_rate,
            list_clock_offset=args.list_clock_offset,
            upload_ttl=args.upload_ttl,
            ignore_params=args.ignore_params,
            poll_throttle_rps=args.poll_throttle_rps,
        )
    except ValueError as error:
        raise UsageError(str(error)) from None
    serve(args.host, args.port, knobs)
    return EXIT_OK


def _models(args: argparse.Namespace) -> int:
    from wanflow.catalog import docs, load_catalog

    catalog = load_catalog()
    if args.model:
        model = catalog.get(args.model)
        if model is None:
            raise UsageError(f"unknown model '{args.model}' (known: {', '.join(catalog.names())})")
        sys.stdout.write(docs.model_markdown(model, catalog))
    elif args.markdown:
        sys.stdout.write(docs.models_markdown())
    elif args.json:
        _print_json(docs.models_json())
    else:
        sys.stdout.write(docs.models_summary())
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
