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
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wanflow._bounded import read_bounded
from wanflow._exceptions import WanflowError

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator

_SCHEMA_FILE = Path(__file__).resolve().parent.parent / "schemas" / "state.schema.json"
MAX_STATE_BYTES = 64_000_000  # a 10,000-item fan-out record is a few MB


class DamagedState(WanflowError):
    """A state file that cannot be read or does not have the types wanflow wrote."""

    def __init__(self, path: Path | str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path, self.problem = Path(path), problem


@functools.cache
def _validator(kind: str) -> Draft202012Validator:
    from jsonschema import Draft202012Validator

    schema = json.loads(_SCHEMA_FILE.read_text("utf-8"))
    return Draft202012Validator({**schema, "$ref": f"#/$defs/{kind}"})


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
    error = next(iter(sorted(_validator(kind).iter_errors(data), key=lambda e: list(e.absolute_path))), None)
    if error is not None:
        field = ".".join(str(part) for part in error.absolute_path) or "the document"
        raise DamagedState(where, f"{field}: {_plain(error.message)}")
    if _has_non_finite(data):
        raise DamagedState(where, "a number is not finite")
    return dict(data)


def _plain(message: str) -> str:
    return message if len(message) <= 160 else message[:157] + "..."


def _has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_non_finite(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_non_finite(item) for item in value)
    return False


def read_state(path: Path, kind: str, limit: int = MAX_STATE_BYTES) -> dict[str, Any]:
    """Read, parse and type-check one state file. FileNotFoundError when it is gone; DamagedState
    for anything else that is wrong with it (unreadable, too large, not JSON, wrong types)."""
    try:
        raw = read_bounded(path, limit)
    except FileNotFoundError:
        raise
    except OSError as error:
        raise DamagedState(path, f"cannot read it ({error.strerror or error})") from None
    return check_state(parse_json(raw, path), kind, path)
