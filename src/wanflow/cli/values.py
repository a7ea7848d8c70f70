"""Command-line values checked as they are parsed, and errors printed as JSON for ``--json``.

``--jobs 0`` used to mean the default and ``--budget -1`` refused every run with a confusing
message; each is now a usage error (exit 2) that says what is allowed.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from typing import Any

from wanflow._diagnostics import Diagnostic
from wanflow.pipelines.batch_file import parse_delimiter


def positive_int(text: str) -> int:
    """``--jobs``: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """A count: a whole number of at least 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


def port_number(text: str) -> int:
    """``sim --port``: a TCP port, 0-65535 (0: any free port)."""
    value = non_negative_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"a port is 0-65535, got {value}")
    return value


def non_negative_float(text: str) -> float:
    """``--budget``, ``--keep-days``: a finite number of at least 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a number of at least 0, got '{text}'")
    return value


def batch_delimiter(text: str) -> str:
    """``--batch-delimiter``: one character, or comma / semicolon / tab / pipe."""
    try:
        return parse_delimiter(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_batch_delimiter(parser: argparse.ArgumentParser) -> None:
    """The ``--batch-delimiter`` option of run, plan and explain."""
    parser.add_argument("--batch-delimiter", type=batch_delimiter, metavar="D",
                        help="the CSV delimiter: one character, or comma, semicolon, tab, pipe "
                             "(default: sniffed from the header row)")


def wants_json(args: argparse.Namespace | None) -> bool:
    """Whether the command asked for machine-readable output."""
    return bool(args is not None and getattr(args, "json", False))


def errors_json(diagnostics: list[Diagnostic], kind: str) -> dict[str, Any]:
    """The JSON object printed on stdout for an invalid pipeline or a usage error under ``--json``."""
    return {"ok": False, "error": kind, "diagnostics": [diagnostic.to_json() for diagnostic in diagnostics]}


def print_errors_json(diagnostics: list[Diagnostic], kind: str) -> None:
    """Print errors_json() as one line on stdout."""
    print(json.dumps(errors_json(diagnostics, kind), ensure_ascii=False, separators=(",", ":")))


def print_json(value: object) -> None:
    """``--json`` output: indented on a terminal, one line when piped (a thousand-instance batch
    summary takes seconds to indent in pure Python, and programs do not need it)."""
    if sys.stdout.isatty():
        print(json.dumps(value, indent=2))
    else:
        print(json.dumps(value, separators=(",", ":")))


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # all but tab and newline


def terminal_safe(text: str) -> str:
    """``text`` with control characters (an escape sequence in a var, a bell) shown as ``\\x1b``:
    user text never drives the terminal."""
    return _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", text)


def say(*parts: object, file: Any = None, flush: bool = False, end: str = "\n") -> None:
    """``print`` for lines that carry user text (vars, prompts, errors), control characters escaped."""
    print(*(terminal_safe(str(part)) for part in parts), file=file if file is not None else sys.stdout, flush=flush, end=end)
