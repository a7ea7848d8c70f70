"""The ``wanflow`` argument parser: every command's options, and the checks made while parsing.

Only parsing lives here; cli/main.py dispatches the parsed arguments to the command modules
(cli/pipeline_commands.py, cli/cache_commands.py, cli/sim_commands.py, cli/models_commands.py,
cli/see_commands.py), which call the application (wanflow._api) and print.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from wanflow._version import __version__
from wanflow.cli.exit_codes import EXIT_INVALID
from wanflow.cli.values import add_batch_delimiter, non_negative_float, non_negative_int, port_number, positive_int

ALL_STEPS = "\x00all"  # the value of a bare --fresh / --reseed: every step
# Commands that take no pipeline file.
NO_PIPELINE_COMMANDS = ("models", "sim", "cache", "runs", "report", "init")

DESCRIPTION = """\
Declarative, cached, concurrent pipelines for Alibaba's Wan image and video models.

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


class WanflowParser(argparse.ArgumentParser):
    """argparse whose usage errors print ``wanflow: error: ...`` and exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"wanflow: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_INVALID)


def pipeline_arguments(parser: argparse.ArgumentParser) -> None:
    """The pipeline file and the options of every command that reads one."""
    parser.add_argument("pipeline", nargs="?", type=Path, help="the pipeline YAML file")
    parser.add_argument("--var", action="append", default=[], metavar="KEY=VALUE",
                        help="override a declared var (repeatable); the value takes the type of the var's default")
    parser.add_argument("--vars-file", type=Path, metavar="FILE", help="YAML mapping of var overrides (applied before --var)")
    parser.add_argument("--provider", choices=["local", "dashscope", "vtrix", "diffusers"],
                        help="use this provider for every step (beats the pipeline's own choice; a step the pipeline puts on diffusers stays there)")
    parser.add_argument("--state-dir", type=Path, metavar="DIR",
                        help="cache and store folder (default: .wanflow/ in the project; env WANFLOW_STATE_DIR)")
    parser.add_argument("--out-dir", type=Path, metavar="DIR",
                        help="outputs folder (default: out/ in the project; env WANFLOW_OUT_DIR)")
    parser.add_argument("--store", metavar="URL",
                        help="a shared store behind the state folder: file:///mount/path or s3://bucket/prefix "
                             "(env WANFLOW_STORE; [paths] store); needs wanflow[store]")
    parser.add_argument("--allow-path", action="append", default=[], type=Path, metavar="DIR",
                        help="let local inputs come from DIR too (default: only the pipeline's own folder)")
    parser.add_argument("--strict", action="store_true",
                        help="treat warnings (truncated prompts, disputed values, costly defaults) as errors")


def fresh_argument(parser: argparse.ArgumentParser) -> None:
    """--fresh, bare or with a step name."""
    parser.add_argument("--fresh", action="append", nargs="?", const=ALL_STEPS, metavar="STEP",
                        help="ignore the cache: for every step, or (repeatable) only for STEP")


def lock_arguments(parser: argparse.ArgumentParser) -> None:
    """--frozen and --reseed: plan takes them too, so it plans what run will do."""
    parser.add_argument("--frozen", action="store_true",
                        help="reproduce <pipeline>.lock exactly; refuse with a diff if any resolved request would change")
    parser.add_argument("--reseed", action="append", nargs="?", const=ALL_STEPS, metavar="STEP",
                        help="draw new seeds on purpose (all steps, or only STEP; repeatable); the lockfile keeps them")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used to render --help in the docs)."""
    parser = WanflowParser(prog="wanflow", description=DESCRIPTION, epilog=EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"wanflow {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=WanflowParser)

    add_pipeline_parsers(commands)  # run, plan, validate, explain, graph
    add_models_parser(commands)
    add_cache_parser(commands)
    add_sim_parser(commands)
    from wanflow.cli import see_commands

    see_commands.add_parsers(commands)  # runs, report, init; --yes and --no-report on run
    from wanflow.cli import pick_command

    pick_command.add_parser(commands)
    return parser


def add_pipeline_parsers(commands: Any) -> None:
    """``run``, ``plan``, ``validate``, ``explain`` and ``graph``: the commands that read a pipeline."""
    run = commands.add_parser("run", help="run a pipeline (cached steps are reused)",
                              description="Run a pipeline. Steps run concurrently as soon as their inputs exist; "
                                          "cached steps make no provider call.")
    pipeline_arguments(run)
    fresh_argument(run)
    run.add_argument("--jobs", "-j", type=positive_int, default=None, metavar="N",
                     help="steps generating at once, at least 1 (default 4)")
    run.add_argument("--json", action="store_true", help="print a machine-readable summary on stdout")
    run.add_argument("--allow-paid", action="store_true",
                     help="let steps whose pipeline names a paid provider spend money (--provider dashscope|vtrix implies it)")
    run.add_argument("--batch", type=Path, metavar="ROWS",
                     help="run one instance per row of a .csv (header = var names) or .jsonl file; bad rows are reported by line")
    add_batch_delimiter(run)
    lock_arguments(run)
    run.add_argument("--no-lock", action="store_true", help="do not write <pipeline>.lock")
    run.add_argument("--force-out", action="store_true",
                     help="let the run replace or remove files in out/ that were edited by hand or not written by wanflow "
                          "(default: keep them and warn)")
    run.add_argument("--cluster", metavar="ADDRESS",
                     help="run on Dask: local:N (N worker processes here) or tcp://HOST:8786 (env WANFLOW_CLUSTER; "
                          "[cluster] address); needs wanflow[cluster]")
    run.add_argument("--resubmit-unknown", action="store_true",
                     help="when an earlier create call's outcome is unknown and cannot be reconciled, submit again "
                          "(this may pay twice)")
    run.add_argument("--cancel-on-interrupt", action="store_true",
                     help="on Ctrl-C / SIGTERM cancel still-queued remote tasks (default: keep them; the next run resumes them)")
    run.add_argument("--budget", type=non_negative_float, metavar="USD",
                     help="refuse to start when the estimated cost of the steps that would run exceeds USD")

    plan = commands.add_parser("plan", help="show which steps would run and which are cached",
                               description="Resolve the pipeline against the cache without generating anything.")
    pipeline_arguments(plan)
    fresh_argument(plan)
    lock_arguments(plan)
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    plan.add_argument("--batch", type=Path, metavar="ROWS", help="plan one instance per row of a .csv or .jsonl file")
    add_batch_delimiter(plan)

    validate = commands.add_parser("validate", help="check a pipeline without running it",
                                   description="Check schema, models, params, vars, references, templates, input files "
                                               "and the project's wanflow.toml.")
    pipeline_arguments(validate)
    validate.add_argument("--json", action="store_true",
                          help="print the result as JSON: the steps, or every problem with file, line, column, path and code")

    explain = commands.add_parser("explain", help="say why each step would run or hit the cache",
                                  description="For each step (and item), whether it would run or be cached, and which "
                                              "field of its resolved request changed since the lockfile or the last run.")
    pipeline_arguments(explain)
    explain.add_argument("step", nargs="?", help="only this step (and its items)")
    explain.add_argument("--json", action="store_true", help="print the explanation as JSON")
    explain.add_argument("--batch", type=Path, metavar="ROWS", help="explain one instance per row of a .csv or .jsonl file")
    add_batch_delimiter(explain)

    graph = commands.add_parser("graph", help="print the step graph as a Mermaid flowchart (fan-out steps as stacks)")
    pipeline_arguments(graph)


def add_models_parser(commands: Any) -> None:
    """``models``: the model catalog."""
    models = commands.add_parser("models", help="list the models with their parameters, ranges and defaults",
                                 description="The model catalog: parameters, ranges, defaults, media rules and prices.")
    models.add_argument("model", nargs="?", help="show one model in full")
    models.add_argument("--markdown", action="store_true", help="print the docs/models.md page")
    models.add_argument("--json", action="store_true", help="print the catalog as JSON")


def add_cache_parser(commands: Any) -> None:
    """``cache verify`` and ``cache gc``."""
    cache = commands.add_parser("cache", help="check or clean the artifact store and step cache",
                                description="verify: rehash every stored object (corrupt ones are quarantined, never served). "
                                            "gc: remove what no recent run record, lockfile or in-flight task refers to. "
                                            "With a shared store (--store), both cover the store too; gc removes "
                                            "nothing there while a run on any machine uses it.")
    cache.add_argument("action", choices=["verify", "gc"])
    cache.add_argument("--dry-run", action="store_true", help="gc: show what would be removed, remove nothing")
    cache.add_argument("--keep-days", type=non_negative_float, default=30.0, metavar="N",
                       help="gc: keep what any run of the last N days refers to (default 30)")
    cache.add_argument("--state-dir", type=Path, metavar="DIR", help="the state folder (default: .wanflow/ in the project)")
    cache.add_argument("--json", action="store_true", help="print the report as JSON")


def add_sim_parser(commands: Any) -> None:
    """``sim``: the local simulator of both Wan HTTP protocols."""
    sim = commands.add_parser("sim", help="serve a local simulator of the vtrix and DashScope APIs (loopback only)",
                              description="A faithful local stand-in for both Wan HTTP protocols, for tests and demos. "
                                          "Results are rendered by the local preview renderer.")
    sim.add_argument("--port", type=port_number, default=8765, help="port to listen on, 0-65535 (default 8765; 0: any free port)")
    sim.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    sim.add_argument("--key", action="append", default=None, metavar="KEY",
                     help="accepted API key (repeatable; default sim-key); others get 401")
    sim.add_argument("--task-seconds", type=non_negative_float, default=2.0, metavar="S", help="how long each task takes (default 2)")
    sim.add_argument("--error-rate", type=non_negative_float, default=0.0, metavar="F",
                     help="fraction of requests answered with a transient 5xx before any task is created")
    sim.add_argument("--throttle-rps", type=non_negative_float, default=0.0, metavar="R",
                     help="per-key create rate; faster creates get 429 Throttling.RateQuota with Retry-After")
    sim.add_argument("--fail-rate", type=non_negative_float, default=0.0, metavar="F",
                     help="fraction of tasks that end FAILED with an internal error")
    sim.add_argument("--drop-rate", type=non_negative_float, default=0.0, metavar="F",
                     help="fraction of creates that make the task, then drop the connection before answering")
    sim.add_argument("--url-ttl", type=non_negative_float, default=86400.0, metavar="S", help="seconds result URLs stay valid (default 24 h)")
    sim.add_argument("--corrupt-rate", type=non_negative_float, default=0.0, metavar="F",
                     help="fraction of result downloads with 256 flipped bytes and the right length")
    sim.add_argument("--short-rate", type=non_negative_float, default=0.0, metavar="F",
                     help="fraction of result downloads cut off after half the announced length")
    sim.add_argument("--reset-rate", type=non_negative_float, default=0.0, metavar="F",
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
    sim.add_argument("--suspend-rate", type=non_negative_float, default=0.0, metavar="F",
                     help="fraction of DashScope tasks that spend part of their run SUSPENDED")
    sim.add_argument("--list-clock-offset", default="+00:00", metavar="+HH:MM",
                     help="DashScope's service clock zone for the task list and timestamps (default +00:00)")
    sim.add_argument("--upload-ttl", type=non_negative_float, default=172800.0, metavar="S",
                     help="seconds DashScope's temporary oss:// uploads live (default 48 h)")
    sim.add_argument("--input-fields", choices=["any", "catalog", "aliases"], default="any",
                     help="input field names where public clients disagree (r2v reference_video_urls or "
                          "reference_urls): any (default), catalog (only wanflow's choice) or aliases (only the others)")
    sim.add_argument("--face-check-fails", action="store_true",
                     help="the wan2.2-s2v-detect face check finds no usable face in any image (check_pass: false)")
    sim.add_argument("--ignore-params", action="store_true",
                     help="the service drops `parameters` and renders its defaults (t2i: 4 images, i2v: 1080P)")
    sim.add_argument("--poll-throttle-rps", type=non_negative_float, default=0.0, metavar="R",
                     help="per-key task-poll rate; faster polls get 429 with Retry-After")
    # Money on the wire (docs/simulator.md, "Answers after the task exists"): shapes public clients read.
    sim.add_argument("--lose-rate", type=non_negative_float, default=0.0, metavar="F",
                     help="fraction of creates lost on the way in: the connection drops and no task is made")
    sim.add_argument("--after-create-rate", type=non_negative_float, default=0.0, metavar="F",
                     help="fraction of creates that make the task, then answer as --after-create-answer says")
    sim.add_argument("--after-create-answer", choices=["500", "504-html", "empty"], default="500",
                     help="that answer: 500 InternalError (default), a 504 HTML page, or a 200 with an empty body")
    sim.add_argument("--fresh-unknown-polls", type=non_negative_int, default=0, metavar="N",
                     help="the first N polls of every task answer UNKNOWN (DashScope) or 404 TaskNotFound (vtrix)")
    sim.add_argument("--create-answer", choices=["documented", "top-level"], default="documented",
                     help="DashScope create answer: output.task_id (default) or task_id at the top level (1.x SDK)")
    sim.add_argument("--list-format", choices=["strings", "documented"], default="strings",
                     help="DashScope task list items: task_status + date strings (default), or the documented "
                          "status + epoch-millisecond times")
    sim.add_argument("--list-account-wide", action="store_true",
                     help="the DashScope task list shows the tasks of every accepted key (the whole account)")
    sim.add_argument("--list-max-span-hours", type=non_negative_float, default=24.0, metavar="H",
                     help="task-list queries spanning more than H hours get 400 (default 24, as documented)")
    sim.add_argument("--list-lag", type=non_negative_float, default=0.0, metavar="S",
                     help="a task appears in the DashScope task list S seconds after its create")
    sim.add_argument("--partial-failures", type=non_negative_int, default=0, metavar="N",
                     help="N images of every task with n>1 fail while the task succeeds")
    sim.add_argument("--empty-success-rate", type=non_negative_float, default=0.0, metavar="F",
                     help="fraction of tasks that succeed with no result at all")


def fix_fresh_swallowing_pipeline(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """``wanflow run --fresh p.yaml``: argparse hands p.yaml to --fresh (or --reseed); give it back."""
    for option in ("fresh", "reseed"):
        given = getattr(args, option, None)
        if args.pipeline is None and given and given[-1] not in (None, ALL_STEPS) and given[-1].endswith((".yaml", ".yml")):
            args.pipeline = Path(given.pop())
            given.append(ALL_STEPS)
    if args.command != "models" and args.pipeline is None:
        parser.error(f"{args.command}: the pipeline file is required")
