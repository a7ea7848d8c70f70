"""Reading a ``--batch`` file: CSV (a header row of var names) or JSON Lines, one instance per row.

Spreadsheets are the usual source, so what they write is accepted: a UTF-8 byte order mark
(Excel's "CSV UTF-8"), ``;`` or tab delimiters (sniffed from the header, or ``--batch-delimiter``),
quoted fields over several lines, and rows whose fields are all empty (skipped). What would lose
or mix up data is an error at its line: a quote that is never closed, a row with fewer or more
fields than the header (never filled from defaults, never cut), a header with an empty or repeated
column, an empty file.

Problems of the whole file raise PipelineError (nothing runs). Problems of one row are kept on
the row: it is reported and the other rows still run.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wanflow._bounded import NotARegularFile, TooLarge, read_bounded
from wanflow._diagnostics import Diagnostic, Location
from wanflow._exceptions import PipelineError

MAX_BATCH_BYTES = 32_000_000
MAX_ROWS = 100_000
DELIMITER_NAMES = {"comma": ",", "semicolon": ";", "tab": "\t", "pipe": "|"}
_SNIFFED = (",", ";", "\t")  # in this order when the header has as many of each
_CSV_SUFFIXES = {".csv": None, ".tsv": "\t"}
_JSONL_SUFFIXES = (".jsonl", ".ndjson")
_EXCEL_HINT = "in Excel, save as 'CSV UTF-8'"


@dataclass
class BatchRow:
    """One row: its line number, its values by var name, and what is wrong with it (if anything)."""

    line: int
    values: dict[str, Any]
    problems: list[str] = field(default_factory=list)


def parse_delimiter(text: str) -> str:
    """``--batch-delimiter``: one character, or comma / semicolon / tab / pipe; ValueError otherwise."""
    named = DELIMITER_NAMES.get(text.strip().lower())
    if named:
        return named
    if text == "\\t":
        return "\t"
    if len(text) != 1 or text in "\"\r\n":
        raise ValueError(f"'{text}' is not a delimiter (use one character, or {', '.join(DELIMITER_NAMES)})")
    return text


def read_batch(path: Path, delimiter: str | None = None) -> list[BatchRow]:
    """Every row of a .csv / .tsv or .jsonl file, with its line number; PipelineError for a broken file."""
    suffix = path.suffix.lower()
    if suffix not in _CSV_SUFFIXES and suffix not in _JSONL_SUFFIXES:
        raise PipelineError([Diagnostic(f"--batch {path}: use a .csv (with a header row), .tsv or .jsonl file")])
    text = _read_text(path)
    if suffix in _JSONL_SUFFIXES:
        rows = _jsonl_rows(text)
    else:
        rows = _csv_rows(text, str(path), delimiter or _CSV_SUFFIXES[suffix])
    if not rows:
        what = "has a header but no rows" if text.strip() and suffix not in _JSONL_SUFFIXES else "is empty"
        raise PipelineError([Diagnostic(f"the batch file {what}; add one row per instance", Location(str(path), 1, 1))])
    if len(rows) > MAX_ROWS:
        raise PipelineError([Diagnostic(f"{len(rows):,} rows", Location(str(path), rows[MAX_ROWS].line, 1),
                                        allowed=f"at most {MAX_ROWS:,} rows")])
    return rows


def _fail(path: Path | str, line: int, column: int, message: str) -> PipelineError:
    return PipelineError([Diagnostic(message, Location(str(path), line, column))])


def _position(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _read_text(path: Path) -> str:
    try:
        raw = read_bounded(path, MAX_BATCH_BYTES)
    except TooLarge:
        raise _fail(path, 1, 1, f"the batch file is larger than {MAX_BATCH_BYTES:,} bytes; split it") from None
    except NotARegularFile as error:
        raise PipelineError([Diagnostic(f"--batch {error.strerror}")]) from None
    except FileNotFoundError:
        raise PipelineError([Diagnostic(f"--batch {path}: file not found")]) from None
    except OSError as error:
        raise PipelineError([Diagnostic(f"--batch {path}: cannot read it ({error.strerror or error})")]) from None
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise _fail(path, 1, 1, f"the batch file is UTF-16 text; save it as UTF-8 ({_EXCEL_HINT})")
    try:
        text = raw.decode("utf-8-sig")  # Excel's "CSV UTF-8" starts with a byte order mark
    except UnicodeDecodeError as error:
        line, column = _position(raw.decode("latin-1"), error.start)
        raise _fail(path, line, column, f"not UTF-8 text (byte 0x{raw[error.start]:02x}); save the file as UTF-8 "
                                        f"({_EXCEL_HINT})") from None
    nul = text.find("\0")
    if nul >= 0:
        raise _fail(path, *_position(text, nul), "a NUL byte is not allowed in a batch file")
    return text


def _sniff(header: str) -> str:
    """The delimiter the header line uses most (var names hold none of them); ',' when it has none."""
    counts = {candidate: header.count(candidate) for candidate in _SNIFFED}
    best = max(_SNIFFED, key=lambda candidate: counts[candidate])
    return best if counts[best] else ","


def _csv_rows(text: str, file: str, delimiter: str | None) -> list[BatchRow]:
    first_line = next((line for line in text.splitlines() if line.strip()), "")
    delimiter = delimiter or _sniff(first_line)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    header: list[str] | None = None
    rows: list[BatchRow] = []
    start = 1
    try:
        for record in reader:
            line, start = start, reader.line_num + 1
            if not any(value.strip() for value in record):
                continue  # a blank line, or a spreadsheet's empty row (",,,")
            if header is None:
                header = _header(record, file, line)
                continue
            rows.append(_csv_row(header, record, line, delimiter))
    except csv.Error as error:
        if "unexpected end of data" in str(error):
            raise _fail(file, start, 1, "a quoted field that starts on this line is never closed (a missing '\"')") from None
        raise _fail(file, start, 1, f"not valid CSV: {error}") from None
    return rows


def _header(record: list[str], file: str, line: int) -> list[str]:
    names = [name.strip() for name in record]
    for index, name in enumerate(names, start=1):
        if not name:
            raise _fail(file, line, 1, f"column {index} of the header has no name (a trailing delimiter?)")
        first = names.index(name) + 1
        if first != index:
            raise _fail(file, line, 1, f"the header names '{name}' twice (columns {first} and {index})")
    return names


def _csv_row(header: list[str], record: list[str], line: int, delimiter: str) -> BatchRow:
    shown = "tab" if delimiter == "\t" else f"'{delimiter}'"
    fields = f"{len(record)} field{'s' if len(record) != 1 else ''}, but the header has {len(header)}"
    if len(record) < len(header):
        return BatchRow(line, {}, [f"{fields} (missing: {', '.join(header[len(record):])}); write an empty field "
                                   f"for an empty value"])
    if len(record) > len(header):
        return BatchRow(line, {}, [f"{fields}; quote a value that contains {shown}"])
    return BatchRow(line, dict(zip(header, record, strict=True)))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"the key '{key}' appears twice")
        result[key] = value
    return result


def _jsonl_rows(text: str) -> list[BatchRow]:
    rows: list[BatchRow] = []
    # Split on newlines only: str.splitlines would also split inside strings at U+2028 and friends.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line, object_pairs_hook=_unique_keys, parse_constant=_reject_constant)
        except json.JSONDecodeError as error:
            rows.append(BatchRow(number, {}, [f"not JSON ({error.msg} at column {error.colno})"]))
            continue
        except ValueError as error:  # a repeated key, NaN, or an integer past Python's digit limit
            rows.append(BatchRow(number, {}, [f"not usable JSON ({error})"]))
            continue
        if not isinstance(value, dict):
            rows.append(BatchRow(number, {}, ["a row must be a JSON object such as {\"product\": \"teapot\"}"]))
            continue
        rows.append(BatchRow(number, value))
    return rows
