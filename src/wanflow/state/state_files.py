"""Typed readers of wanflow's own state files: run records, batch records, journal lines.

State files are untrusted input: a user can edit them, a disk can damage them, a shared folder
can bring them from elsewhere. Each is read with a size limit (``_bounded``), parsed, and its
types checked against ``schemas/state.schema.json`` before any field is used; a file that fails
raises DamagedState, whose message names the file and the field. Callers skip or quarantine a
damaged file with a warning; none of them lets it end a command with an internal error.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
from pathlib import Path
from typing import Any

from wanflow._bounded import read_bounded
from wanflow._exceptions import WanflowError

_SCHEMA_FILE = Path(__file__).resolve().parent.parent / "schemas" / "state.schema.json"
MAX_STATE_BYTES = 64_000_000  # a 10,000-item fan-out record is a few MB


class DamagedState(WanflowError):
    """A state file that cannot be read or does not have the types wanflow wrote."""

    def __init__(self, path: Path | str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path, self.problem = Path(path), problem


@functools.cache
def _schema() -> dict[str, Any]:
    return dict(json.loads(_SCHEMA_FILE.read_text("utf-8")))


_TYPES: dict[str, Any] = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def _is(value: Any, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, _TYPES[kind])


def _first_error(value: Any, schema: dict[str, Any], path: tuple[Any, ...]) -> tuple[tuple[Any, ...], str] | None:
    """The first place ``value`` breaks ``schema`` (the subset state.schema.json uses: $ref, type,
    pattern, required, properties, additionalProperties, items, anyOf), as (path, message).

    A small walker rather than jsonschema: reading a record must not cost that import on every
    cached run, nor its speed on a history of thousands of records."""
    if "$ref" in schema:
        return _first_error(value, _schema()["$defs"][schema["$ref"].rsplit("/", 1)[1]], path)
    if "anyOf" in schema:
        if any(_first_error(value, option, path) is None for option in schema["anyOf"]):
            return None
        return path, f"{_short(value)} is not valid here"
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not any(_is(value, kind) for kind in kinds):
            return path, f"{_short(value)} is not of type {', '.join(repr(kind) for kind in kinds)}"
    if isinstance(value, str) and "pattern" in schema and not re.search(schema["pattern"], value):
        return path, f"{_short(value)} does not match {schema['pattern']!r}"
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                return path, f"{key!r} is a required property"
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            inner = properties.get(key, extra if isinstance(extra, dict) else None)
            found = _first_error(item, inner, (*path, key)) if inner is not None else None
            if found is not None:
                return found
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            found = _first_error(item, schema["items"], (*path, index))
            if found is not None:
                return found
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number JSON allows")


def parse_json(raw: bytes | str, where: Path | str) -> Any:
    """JSON text as data; DamagedState for bytes that are not UTF-8 JSON (NaN and Infinity included)."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        return json.loads(text, parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise DamagedState(where, f"not valid JSON ({str(error)[:120]})") from None


def check_state(data: Any, kind: str, where: Path | str) -> dict[str, Any]:
    """``data`` when it has the types of a ``kind`` state file (record, batch, journal); else
    DamagedState naming the first wrong field."""
    error = _first_error(data, {"$ref": f"#/$defs/{kind}"}, ())
    if error is not None:
        field = ".".join(str(part) for part in error[0]) or "the document"
        raise DamagedState(where, f"{field}: {error[1]}")
    if _has_non_finite(data):
        raise DamagedState(where, "a number is not finite")
    return dict(data)


def _has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_non_finite(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_non_finite(item) for item in value)
    return False


# State files this process wrote itself, by path -> their stat stamp just after the write: read
# back unchanged (the run's summary and report read the record it just wrote), they are well
# formed by construction, and the type check (a walk of the whole document) is skipped.
_WRITTEN: dict[str, tuple[int, int, int, int]] = {}


def _stat_stamp(path: Path) -> tuple[int, int, int, int] | None:
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_size, found.st_mtime_ns, found.st_ino, found.st_ctime_ns


def wrote_state(path: Path) -> None:
    """Note that this process just wrote the state file ``path`` (see ``read_state``)."""
    stamp = _stat_stamp(path)
    if stamp is not None:
        if len(_WRITTEN) > 10_000:  # a long-lived process (a Dask worker) forgets
            _WRITTEN.clear()
        _WRITTEN[str(path)] = stamp


def read_state(path: Path, kind: str, limit: int = MAX_STATE_BYTES) -> dict[str, Any]:
    """Read, parse and type-check one state file. FileNotFoundError when it is gone; DamagedState
    for anything else that is wrong with it (unreadable, too large, not JSON, wrong types)."""
    stamp = _WRITTEN.get(str(path))
    try:
        raw = read_bounded(path, limit)
    except FileNotFoundError:
        raise
    except OSError as error:
        raise DamagedState(path, f"cannot read it ({error.strerror or error})") from None
    data = parse_json(raw, path)
    if stamp is not None and stamp == _stat_stamp(path) and isinstance(data, dict) and len(raw) == stamp[0]:
        return data  # the bytes this process wrote, untouched since
    return check_state(data, kind, path)
