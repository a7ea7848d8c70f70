"""Pipeline vars: declared defaults, overridden by a vars file and then by ``--var key=value``."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from wanflow._diagnostics import Diagnostic, Location
from wanflow.pipelines.source_file import load_yaml_file

TRUE_WORDS = ("true", "yes", "on", "1")
FALSE_WORDS = ("false", "no", "off", "0")
BOOLEAN_WORDS = f"{', '.join(TRUE_WORDS)} or {', '.join(FALSE_WORDS)} (any case)"


def parse_boolean_word(text: str) -> bool | None:
    """True or False for one of the documented words (``yes``, ``off``, ``0``...), else None."""
    lowered = text.strip().lower()
    if lowered in TRUE_WORDS:
        return True
    if lowered in FALSE_WORDS:
        return False
    return None


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
        decided = parse_boolean_word(raw)
        if decided is not None:
            return decided
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
        import yaml  # PyYAML costs ~30 ms to import: only for a list or mapping var given as text

        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise ValueError(f"var '{name}' is a {type(default).__name__}; '{raw}' is not valid YAML") from None
        if not isinstance(value, type(default)):
            raise ValueError(f"var '{name}' is a {type(default).__name__}; got '{raw}'")
        return value
    return raw


_KINDS = ((bool, "a boolean"), (int, "an integer"), (float, "a number"), (str, "text"), (list, "a list"),
          (dict, "a mapping"), (type(None), "null"))


def kind_of(value: Any) -> str:
    """How messages name the type of ``value``: "a boolean", "an integer", "text"..."""
    return next((name for kind, name in _KINDS if isinstance(value, kind)), type(value).__name__)


def check_typed_value(name: str, value: Any, default: Any) -> Any:
    """A value that arrived with a type of its own (a JSON Lines row) for the var ``name``.

    Text goes through coerce_override, as a CSV value would; anything else must have the type of
    the var's default (an integer is fine for a number). ValueError says what was expected.
    """
    if isinstance(value, str):
        return coerce_override(name, value, default)
    if default is None:
        return value
    expected = kind_of(default)
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind_of(value) != expected:
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise ValueError(f"var '{name}' is {expected}; got {kind_of(value)}" + ("" if value is None else f" ({shown})"))
    return value


def resolve_vars(
    declared: Mapping[str, Any],
    *,
    vars_file: Path | None = None,
    overrides: Mapping[str, str] | None = None,
    chosen: set[str] | None = None,
) -> tuple[dict[str, Any], list[Diagnostic]]:
    """Apply a vars file then command-line overrides to the declared defaults.

    Unknown names are errors: a misspelt ``--var`` must not silently do nothing. The names the
    file or the command line set are added to ``chosen`` when given.
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
                    try:  # typed as a JSON Lines row is: a list for a text var is an error at its line
                        values[name] = check_typed_value(name, value, declared[name])
                    except ValueError as error:
                        diagnostics.append(Diagnostic(str(error), document.locate((name,))))
                        continue
                    if chosen is not None:
                        chosen.add(name)
    for name, raw in (overrides or {}).items():
        if name not in declared:
            diagnostics.append(unknown(name, None).at(None, path=f"--var {name}"))
            continue
        try:
            values[name] = coerce_override(name, raw, declared[name])
            if chosen is not None:
                chosen.add(name)
        except ValueError as error:
            diagnostics.append(Diagnostic(str(error), path=f"--var {name}"))
    return values, diagnostics
