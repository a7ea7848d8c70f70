"""Pipeline vars: declared defaults, overridden by a vars file and then by ``--var key=value``."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Mapping

import yaml

from wanflow._diagnostics import Diagnostic, Location
from wanflow.pipelines.yaml_source import load_yaml_file

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def parse_var_assignment(text: str) -> tuple[str, str]:
    """Split ``key=value`` from the command line; raises ValueError with a usage message."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"--var expects key=value, got '{text}'")
    return key.strip(), value


def coerce_override(name: str, raw: str, default: Any) -> Any:
    """Convert a command-line string to the type of the var's declared default.

    A var declared as text stays text (``--var product=yes`` is the word "yes"); numbers, booleans
    and lists are parsed so templates see the same types as the defaults.
    """
    if isinstance(default, bool):
        lowered = raw.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ValueError(f"var '{name}' is a boolean; got '{raw}' (allowed: true or false)")
    if isinstance(default, int):
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"var '{name}' is an integer; got '{raw}'") from None
    if isinstance(default, float):
        try:
            return float(raw)
        except ValueError:
            raise ValueError(f"var '{name}' is a number; got '{raw}'") from None
    if isinstance(default, (list, dict)):
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise ValueError(f"var '{name}' is a {type(default).__name__}; '{raw}' is not valid YAML") from None
        if not isinstance(value, type(default)):
            raise ValueError(f"var '{name}' is a {type(default).__name__}; got '{raw}'")
        return value
    return raw


def resolve_vars(
    declared: Mapping[str, Any],
    *,
    vars_file: Path | None = None,
    overrides: Mapping[str, str] | None = None,
) -> tuple[dict[str, Any], list[Diagnostic]]:
    """Apply a vars file then command-line overrides to the declared defaults.

    Unknown names are errors: a misspelt ``--var`` must not silently do nothing.
    """
    values = dict(declared)
    diagnostics: list[Diagnostic] = []
    known = sorted(declared)

    def unknown(name: str, location: Location | None) -> Diagnostic:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return Diagnostic(f"unknown var '{name}'{hint}", location, allowed=", ".join(known) or "no vars are declared")

    if vars_file is not None:
        document = load_yaml_file(vars_file)
        if not isinstance(document.data, dict):
            diagnostics.append(Diagnostic("a vars file must be a mapping of var names to values", document.locate(())))
        else:
            for name, value in document.data.items():
                if name not in declared:
                    diagnostics.append(unknown(name, document.locate_key((name,))))
                else:
                    values[name] = value
    for name, raw in (overrides or {}).items():
        if name not in declared:
            diagnostics.append(unknown(name, None).at(None, path=f"--var {name}"))
            continue
        try:
            values[name] = coerce_override(name, raw, declared[name])
        except ValueError as error:
            diagnostics.append(Diagnostic(str(error), path=f"--var {name}"))
    return values, diagnostics
