"""``wanflow`` command line: parse the arguments, hand them to their command, turn errors into exit codes.

The parser is cli/parser.py; the commands are cli/pipeline_commands.py (run, plan, explain,
validate, graph), cli/cache_commands.py, cli/sim_commands.py, cli/models_commands.py and
cli/see_commands.py (runs, report, init). They call the application (wanflow._api) and print.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from wanflow._diagnostics import Diagnostic
from wanflow._exceptions import PipelineError, UsageError, WanflowError
from wanflow.cli.exit_codes import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_INVALID, EXIT_OK, EXIT_STEP_FAILED
from wanflow.cli.parser import NO_PIPELINE_COMMANDS, build_parser, fix_fresh_swallowing_pipeline
from wanflow.cli.values import print_errors_json, say, wants_json

__all__ = ["EXIT_INTERNAL", "EXIT_INTERRUPTED", "EXIT_INVALID", "EXIT_OK", "EXIT_STEP_FAILED", "build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``wanflow`` console script; returns the exit code."""
    args: argparse.Namespace | None = None  # known once parsed: --json turns errors into JSON on stdout
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not args.command:
            parser.print_help()
            return EXIT_INVALID
        if args.command not in NO_PIPELINE_COMMANDS:
            fix_fresh_swallowing_pipeline(args, parser)
        return _dispatch(args)
    except SystemExit as exit_request:  # --help, --version and usage errors
        return int(exit_request.code or 0)
    except PipelineError as error:
        if wants_json(args):
            print_errors_json(error.diagnostics, "invalid pipeline")
        for diagnostic in error.diagnostics:
            say(f"error: {diagnostic.format()}" if diagnostic.severity == "error" else diagnostic.format(), file=sys.stderr)
        count = len(error.diagnostics)
        print(f"wanflow: {count} problem{'s' if count != 1 else ''} found; nothing was run", file=sys.stderr)
        return EXIT_INVALID
    except UsageError as error:
        if wants_json(args):
            print_errors_json([Diagnostic(str(error))], "usage")
        say(f"wanflow: error: {error}", file=sys.stderr)
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
        say(f"wanflow: error: {error}", file=sys.stderr)
        return EXIT_STEP_FAILED
    except Exception as error:  # never a bare traceback for the user; WANFLOW_DEBUG=1 shows it
        from wanflow import _fs_errors as fs_errors

        if isinstance(error, OSError) and fs_errors.is_file_system_error(error):  # a full disk mid-run: fixable
            print(f"wanflow: error: {fs_errors.describe(error)}", file=sys.stderr)
            return EXIT_STEP_FAILED
        if os.environ.get("WANFLOW_DEBUG"):
            raise
        print(f"wanflow: internal error: {type(error).__name__}: {error}\n"
              "  this is a bug in wanflow; rerun with WANFLOW_DEBUG=1 for details", file=sys.stderr)
        return EXIT_INTERNAL


def _dispatch(args: argparse.Namespace) -> int:
    from wanflow._settings import check_environment

    for warning in check_environment():  # every WANFLOW_* setting, before anything is read or sent
        print(f"wanflow: warning: {warning}", file=sys.stderr)
    if args.command == "models":
        from wanflow.cli import models_commands

        return models_commands.dispatch(args)
    if args.command == "sim":
        from wanflow.cli import sim_commands

        return sim_commands.dispatch(args)
    if args.command == "cache":
        from wanflow.cli import cache_commands

        return cache_commands.dispatch(args)
    if args.command == "pick":
        from wanflow.cli import pick_command

        return pick_command.dispatch(args)
    if args.command in ("runs", "report", "init"):
        from wanflow.cli import see_commands

        return see_commands.dispatch(args)
    from wanflow.cli import pipeline_commands

    return pipeline_commands.dispatch(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
