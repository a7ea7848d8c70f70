"""Checking the project's ``wanflow.toml`` before anything uses it.

A misspelt section or key used to be ignored (``[limit.dashscope]`` limited nothing), a negative
price made the budget meaningless, and ``concurrent = 0`` failed mid-run. Every problem is now a
located error before anything runs: unknown sections and keys (with "did you mean"), prices that
are not numbers of at least 0 or that name an unknown model, limits of 0 or below. The
``[providers.<name>]`` settings are checked by the providers' own ``project_settings``, which also
refuses an ``api_key`` (a file kept in git must not hold one).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from wanflow._diagnostics import Diagnostic, Location
from wanflow._exceptions import PipelineError, UsageError
from wanflow.catalog.loader import load_catalog
from wanflow.catalog.spec import ModelSpec
from wanflow.project.config_files import read_config_text

CONFIG_NAME = "wanflow.toml"
KeyPath = tuple[str, ...]


def check_project(root: Path) -> None:
    """Check ``root``/wanflow.toml (when there is one); PipelineError lists every problem."""
    path = root / CONFIG_NAME
    parsed = _parse(path)
    if parsed is None:
        return
    problems = check_config(parsed[0], parsed[1], str(path))
    if problems:
        raise PipelineError(problems)


def _parse(path: Path) -> tuple[dict[str, Any], str] | None:
    """A TOML file's data and text (None when absent); PipelineError at the line of a syntax
    error, or for a file that is not a readable regular UTF-8 file."""
    try:
        text = read_config_text(path)
    except UsageError as error:
        raise PipelineError([Diagnostic(str(error), Location(str(path), 1, 1))]) from None
    if text is None:
        return None
    import tomllib  # about 3 ms to import: only for a config file that exists

    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as error:
        where = _TOML_POSITION.search(str(error))
        line, column = (int(where.group(1)), int(where.group(2))) if where else (1, 1)
        message = _TOML_POSITION.sub("", str(error)).strip()
        raise PipelineError([Diagnostic(f"invalid TOML: {message}", Location(str(path), line, column))]) from None


_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)")


def check_config(config: Mapping[str, Any], text: str, file: str) -> list[Diagnostic]:
    """Every problem in a parsed wanflow.toml; ``text`` is its source, for line numbers."""
    report = _Report(file, _key_lines(text))
    for section, value in config.items():
        checker = _SECTIONS.get(section)
        if checker is None:
            report.unknown((section,), list(_SECTIONS), "section")
        elif report.table((section,), value):
            checker(report, value)
    return report.problems


class _Report:
    """Collects diagnostics placed at the line of the key they are about."""

    def __init__(self, file: str, lines: Mapping[KeyPath, int]) -> None:
        self.file = file
        self.lines = lines
        self.problems: list[Diagnostic] = []

    def add(self, path: KeyPath, message: str, allowed: str | None = None) -> None:
        line = next((self.lines[path[:n]] for n in range(len(path), 0, -1) if path[:n] in self.lines), 1)
        self.problems.append(Diagnostic(message, Location(self.file, line, 1), path=_show(path), allowed=allowed))

    def unknown(self, path: KeyPath, known: list[str], noun: str = "key") -> None:
        close = difflib.get_close_matches(path[-1], known, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        self.add(path, f"unknown {noun} '{path[-1]}'{hint}", allowed=", ".join(known) or None)

    def table(self, path: KeyPath, value: Any) -> bool:
        if isinstance(value, Mapping):
            return True
        self.add(path, f"must be a table ([{_show(path)}]), not {_kind(value)}")
        return False

    def number(self, path: KeyPath, value: Any, *, minimum: float, exclusive: bool = False, whole: bool = False) -> None:
        kinds = (int,) if whole else (int, float)
        noun = "a whole number" if whole else "a number"
        bound = f"more than {minimum:g}" if exclusive else f"at least {minimum:g}"
        if isinstance(value, bool) or not isinstance(value, kinds):
            self.add(path, f"must be {noun}, not {_kind(value)}", allowed=f"{noun} {bound}")
        elif value < minimum or (exclusive and value == minimum) or value != value:  # value != value: NaN
            self.add(path, f"{value!r} is out of range", allowed=f"{noun} {bound}")

    def model(self, path: KeyPath) -> ModelSpec | None:
        """The catalog model a key names by its canonical name; an alias or a typo is reported."""
        catalog = load_catalog()
        name = path[-1]
        if name in catalog.models:
            return catalog.models[name]
        model = catalog.get(name)
        if model is not None:
            self.add(path, f"'{name}' is an alias; write the model's name '{model.name}'")
        else:
            self.unknown(path, catalog.names(), "model")
        return None


def _kind(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "text", list: "a list"}.get(type(value), "a table")


def _show(path: KeyPath) -> str:
    return ".".join(part if re.fullmatch(r"[A-Za-z0-9_-]+", part) else f'"{part}"' for part in path)


# --- sections ---------------------------------------------------------------------------------

def _check_paths(report: _Report, section: Mapping[str, Any]) -> None:
    for key, value in section.items():
        if key not in ("state_dir", "out_dir", "store"):
            report.unknown(("paths", key), ["out_dir", "state_dir", "store"])
        elif not isinstance(value, str) or not value.strip():
            report.add(("paths", key), f"must be a {'store URL' if key == 'store' else 'folder path'} as text, not {_kind(value)}")


def _check_cluster(report: _Report, section: Mapping[str, Any]) -> None:
    for key, value in section.items():
        if key != "address":
            report.unknown(("cluster", key), ["address"])
        elif not isinstance(value, str) or not (value.startswith("local:") or "://" in value):
            report.add(("cluster", key), "must be local:N or a Dask scheduler address such as tcp://HOST:8786")


def _check_run(report: _Report, section: Mapping[str, Any]) -> None:
    for key, value in section.items():
        if key == "jobs":
            report.number(("run", key), value, minimum=1, whole=True)
        elif key == "confirm_above_usd":  # a paid run estimated above this asks first (cli/spend.py)
            report.number(("run", key), value, minimum=0)
        elif key == "report":  # write out/<pipeline>/index.html after every run (cli/see_commands.py)
            if not isinstance(value, bool):
                report.add(("run", key), f"must be true or false, not {_kind(value)}")
        else:
            report.unknown(("run", key), ["confirm_above_usd", "jobs", "report"])


_LIMIT_KEYS = ["concurrent", "submits_per_second"]


def _check_limit_values(report: _Report, path: KeyPath, key: str, value: Any) -> None:
    if key == "concurrent":
        report.number(path + (key,), value, minimum=1, whole=True)
    else:
        report.number(path + (key,), value, minimum=0, exclusive=True)


def _check_limits(report: _Report, section: Mapping[str, Any]) -> None:
    services = list(load_catalog().services)
    for provider, table in section.items():
        path: KeyPath = ("limits", provider)
        if provider not in services:
            report.unknown(path, services, "provider")
            continue
        if not report.table(path, table):
            continue
        for key, value in table.items():
            if key in _LIMIT_KEYS:
                _check_limit_values(report, path, key, value)
            elif isinstance(value, Mapping):
                model = report.model(path + (key,))
                if model is not None and provider not in model.providers:
                    report.add(path + (key,), f"{provider} does not offer {model.name}")
                for inner, number in value.items():
                    if inner in _LIMIT_KEYS:
                        _check_limit_values(report, path + (key,), inner, number)
                    else:
                        report.unknown(path + (key, inner), _LIMIT_KEYS)
            else:
                report.unknown(path + (key,), _LIMIT_KEYS + ["<model> (a table)"])


def _check_prices(report: _Report, section: Mapping[str, Any]) -> None:
    for name, table in section.items():
        path: KeyPath = ("prices", name)
        model = report.model(path)
        if model is None or not report.table(path, table):
            continue
        for key, value in table.items():
            if key == "usd":
                report.number(path + (key,), value, minimum=0)
            elif key == "usd_by":
                _check_usd_by(report, path + (key,), model, value)
            else:
                report.unknown(path + (key,), ["usd", "usd_by"])


def _check_usd_by(report: _Report, path: KeyPath, model: ModelSpec, value: Any) -> None:
    if not report.table(path, value):
        return
    for param, prices in value.items():
        spec = model.params.get(param)
        if spec is None:
            report.unknown(path + (param,), list(model.params), f"parameter of {model.name}")
            continue
        if not report.table(path + (param,), prices):
            continue
        choices = [str(choice) for choice in spec.enum or ()]
        for choice, price in prices.items():
            if choices and str(choice) not in choices:
                report.unknown(path + (param, str(choice)), choices, f"{param} value")
            report.number(path + (param, str(choice)), price, minimum=0)


def _check_providers(report: _Report, section: Mapping[str, Any], user: bool = False) -> None:
    """``[providers.<name>]``: known services, known settings with their types, an envelope the
    service has; in the project file no api_key (``user``: the user config, where keys belong)."""
    from wanflow.project.settings import PROJECT_SETTINGS, project_settings  # the providers own their settings

    services = list(load_catalog().services)
    for name, table in section.items():
        path: KeyPath = ("providers", name)
        if name not in services:
            report.unknown(path, services, "provider")
            continue
        if not report.table(path, table):
            continue
        known = sorted(PROJECT_SETTINGS | ({"api_key"} if user else set()))
        for key in sorted(set(table) - PROJECT_SETTINGS - {"api_key"}):
            report.unknown(path + (key,), known, "setting")  # with a "did you mean"
        rest = {key: value for key, value in table.items() if key in PROJECT_SETTINGS or key == "api_key"}
        _check_setting_values(report, path, name, rest)
        if user:
            continue
        try:
            project_settings({"providers": {name: rest}}, name)  # refuses an api_key, with where keys belong
        except UsageError as error:
            where = path + ("api_key",) if "api_key" in rest else path
            report.add(where, str(error).removeprefix(f"wanflow.toml [providers.{name}]").lstrip(": "))


def _check_setting_values(report: _Report, path: KeyPath, service: str, table: Mapping[str, Any]) -> None:
    """Each provider setting's type, and an envelope the service really has."""
    for key, value in table.items():
        if key == "url_reuse_hours":
            report.number(path + (key,), value, minimum=0)
        elif not isinstance(value, str):
            report.add(path + (key,), f"must be text, not {_kind(value)}")
    envelopes = list(load_catalog().services[service].envelopes)
    envelope = table.get("envelope")
    if isinstance(envelope, str) and envelope not in envelopes:
        if len(envelopes) == 1:
            report.add(path + ("envelope",), f"{service} has no envelope setting: its one request envelope is "
                                             f"'{envelopes[0]}'; remove this line")
        else:
            close = difflib.get_close_matches(envelope, envelopes, n=1)
            report.add(path + ("envelope",), f"unknown envelope '{envelope}'" + (f"; did you mean '{close[0]}'?" if close else ""),
                       allowed=", ".join(envelopes))


def check_user_config(path: Path) -> None:
    """Check the user's config file (``$WANFLOW_CONFIG`` or ``~/.config/wanflow/config.toml``):
    only ``[providers.<name>]`` tables with known settings of the right types. PipelineError
    names the file, line and key (exit 2); an absent file is fine."""
    parsed = _parse(path)
    if parsed is None:
        return
    config, text = parsed
    report = _Report(str(path), _key_lines(text))
    for section, value in config.items():
        if section != "providers":
            report.unknown((section,), ["providers"], "section")
        elif report.table((section,), value):
            _check_providers(report, value, user=True)
    if report.problems:
        raise PipelineError(report.problems)


_SECTIONS: dict[str, Callable[[_Report, Mapping[str, Any]], None]] = {
    "paths": _check_paths,
    "cluster": _check_cluster,
    "run": _check_run,
    "limits": _check_limits,
    "prices": _check_prices,
    "providers": _check_providers,
}


# --- where keys are -------------------------------------------------------------------------------

_HEADER = re.compile(r"^\s*\[\[?([^\]]+)\]\]?\s*(?:#.*)?$")
_KEY = re.compile(r"""^\s*((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*=""")
_PART = re.compile(r""""([^"]*)"|'([^']*)'|([A-Za-z0-9_-]+)""")


def _split(dotted: str) -> KeyPath:
    return tuple(next(group for group in match.groups() if group is not None) for match in _PART.finditer(dotted))


def _key_lines(text: str) -> dict[KeyPath, int]:
    """Where each table and key of a TOML text is (1-based lines); good enough for messages."""
    lines: dict[KeyPath, int] = {}
    table: KeyPath = ()
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            table = _split(header.group(1))
            for depth in range(1, len(table) + 1):
                lines.setdefault(table[:depth], number)
            continue
        key = _KEY.match(line)
        if key:
            path = table + _split(key.group(1))
            for depth in range(len(table) + 1, len(path) + 1):
                lines.setdefault(path[:depth], number)
    return lines
