"""Validate a loaded pipeline against pipeline.schema.json and explain every violation in place.

A file that passed once is not validated again: its verdict is remembered in the user's cache
folder (``valid-pipelines/``, one empty file per valid file), keyed by the sha256 of the file's
bytes, the schema and wanflow's version. Any edit of either changes the key, so only identical bytes checked by
the identical schema skip jsonschema (whose import alone costs 30 ms of every start).
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wanflow._diagnostics import Diagnostic, format_path
from wanflow.pipelines.source_document import DataPath, SourceDocument

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import ValidationError

_SCHEMA_FILE = Path(__file__).resolve().parent.parent / "schemas" / "pipeline.schema.json"
VERDICTS = "valid-pipelines"  # the folder of remembered verdicts in the user's cache folder

_JSON_TYPE_NAMES = {
    dict: "a mapping",
    list: "a list",
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    type(None): "empty (null)",
}


@functools.cache
def _schema_bytes() -> bytes:
    return _SCHEMA_FILE.read_bytes()


@functools.cache
def pipeline_schema() -> dict[str, Any]:
    """The pipeline JSON Schema shipped with wanflow."""
    return json.loads(_schema_bytes())


@functools.cache
def _validator() -> Draft202012Validator:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(pipeline_schema())


def check_schema(document: SourceDocument) -> list[Diagnostic]:
    """Every schema violation in ``document``, sorted by position."""
    if not isinstance(document.data, dict):
        return [Diagnostic("a pipeline must be a YAML mapping with at least 'name' and 'steps'", document.locate(()))]
    marker = _verdict_path(document.digest)
    if marker is not None and marker.exists():
        return []  # these very bytes passed this very schema before
    diagnostics: list[Diagnostic] = []
    for error in _validator().iter_errors(document.data):
        diagnostics.extend(_explain(error, document))
    unique = {(d.location.line if d.location else 0, d.location.column if d.location else 0, d.message): d for d in diagnostics}
    if not unique and marker is not None:
        _remember(marker)
    return [unique[key] for key in sorted(unique)]


def _verdict_path(digest: str) -> Path | None:
    """Where the verdict "valid" on a file with this sha256 is remembered (None: not from a file)."""
    if not digest:
        return None
    from wanflow._version import __version__  # how bytes become data may change with wanflow
    from wanflow.project.locate import cache_dir

    key = hashlib.sha256(b"\0".join([__version__.encode(), _schema_bytes(), digest.encode("ascii")])).hexdigest()
    try:
        return cache_dir() / VERDICTS / key
    except (RuntimeError, KeyError, OSError):  # no home folder to be found: validate every time
        return None


def _remember(marker: Path) -> None:
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    except OSError:
        pass  # an unwritable cache folder only means validating again next time


def _type_name(value: Any) -> str:
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def _allowed_hint(schema: dict[str, Any]) -> str | None:
    return schema.get("x-allowed")


def _explain(error: ValidationError, document: SourceDocument) -> Iterable[Diagnostic]:
    path: DataPath = tuple(error.absolute_path)
    shown = format_path(path) or None
    validator = error.validator
    schema = error.schema if isinstance(error.schema, dict) else {}
    # iter_errors always sets the instance; the stubs also allow jsonschema's private Unset marker.
    instance: Any = error.instance

    if validator == "additionalProperties":
        known = sorted(schema.get("properties", {}))
        for key in _extra_keys(schema, instance):
            child = path + (key,)
            suggestion = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean '{suggestion[0]}'?" if suggestion else ""
            yield Diagnostic(
                f"unknown field '{key}'{hint}",
                document.locate_key(child),
                path=format_path(child),
                allowed=", ".join(known) if known else None,
            )
        return
    if validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        yield Diagnostic(f"missing required field '{missing}'", document.locate(path), path=shown)
        return
    if "propertyNames" in error.schema_path:
        # jsonschema reports a bad key at its parent's path, with the key as the instance.
        child = path + (instance,)
        yield Diagnostic(
            f"invalid name '{instance}'", document.locate_key(child), path=format_path(child), allowed=_allowed_hint(schema)
        )
        return
    if validator in ("oneOf", "anyOf"):
        yield Diagnostic(
            f"invalid value {_show(instance)}",
            document.locate(path),
            path=shown,
            allowed=_allowed_hint(schema) or error.message,
        )
        return

    location = document.locate(path)
    if validator == "type":
        expected = schema.get("type")
        expected_text = " or ".join(expected) if isinstance(expected, list) else str(expected)
        message = f"expected {expected_text}, got {_type_name(instance)}"
    elif validator == "enum":
        message = f"{_show(instance)} is not allowed"
        yield Diagnostic(message, location, path=shown, allowed=", ".join(map(str, schema["enum"])))
        return
    elif validator == "const":
        message = f"{_show(instance)} is not supported"
        yield Diagnostic(message, location, path=shown, allowed=str(schema["const"]))
        return
    elif validator == "pattern":
        message = f"invalid value {_show(instance)}"
    elif validator in ("minimum", "maximum"):
        message = f"{instance} is out of range"
        bounds = f"{schema.get('minimum', '...')} to {schema.get('maximum', '...')}"
        yield Diagnostic(message, location, path=shown, allowed=bounds)
        return
    elif validator == "minProperties":
        message = "must not be empty"
    elif validator == "maxProperties":
        noun = path[-1] if path else "entries"
        yield Diagnostic(f"too many {noun}: {len(instance)}", location, path=shown, allowed=f"at most {schema['maxProperties']}")
        return
    elif validator == "minLength":
        message = "must not be empty"
    elif validator == "uniqueItems":
        message = "lists the same item twice"
    else:
        message = error.message
    yield Diagnostic(message, location, path=shown, allowed=_allowed_hint(schema))


def _extra_keys(schema: dict[str, Any], instance: Any) -> list[str]:
    allowed = set(schema.get("properties", {}))
    patterns = schema.get("patternProperties", {})
    if patterns:
        return []
    return [key for key in instance if key not in allowed]


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."
