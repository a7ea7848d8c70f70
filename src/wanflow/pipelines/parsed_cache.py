"""Parsed YAML documents kept by content, so an unchanged pipeline is not parsed (nor PyYAML
imported) again: about 35 ms of every no-op rerun.

A document is kept in the user's cache folder (``$WANFLOW_CACHE_DIR``, else
``$XDG_CACHE_HOME/wanflow``, else ``~/.cache/wanflow``) under ``parsed/<sha256 of the file's
bytes>.json``, with its data and the position of every value and key. The key is the content, so
no stat stamp can hide an edit; the parser's own version (wanflow's, and the stamps of the parser
modules) is inside, so a changed parser parses again. Only documents that parsed cleanly are
kept: every error is found and worded by the parser itself. The folder is the user's own, never
the project's (a project folder is shared and zipped; a document recalled from it would be
believed). Each file is still read as untrusted: anything unexpected means "parse it again".
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import time
from pathlib import Path
from typing import Any

from wanflow._bounded import read_bounded
from wanflow._diagnostics import Location
from wanflow._fs import atomic_write_bytes
from wanflow._version import __version__
from wanflow.pipelines.source_document import DataPath, SourceDocument
from wanflow.project.locate import cache_dir

FORMAT = 1
MAX_KEPT = 256  # documents kept; the oldest go first (every edit of a pipeline makes a new one)
MAX_KEPT_BYTES = 32_000_000  # a 1 MB document with 100,000 located values stays well below this
_PARSER_FILES = ("yaml_source.py", "source_document.py")


def recall(digest: str, file: str) -> SourceDocument | None:
    """The document whose bytes hash to ``digest``, named ``file`` in its positions; None when it
    was never kept, was kept by another parser, or its copy is unreadable or malformed."""
    folder = _folder()
    if folder is None:
        return None
    try:
        kept = json.loads(read_bounded(folder / f"{digest}.json", MAX_KEPT_BYTES))
        if not isinstance(kept, dict) or kept.get("parser") != _parser():
            return None
        document = SourceDocument(file=file, data=kept["data"], digest=digest)
        document.value_marks = {_path(path): Location(file, *_position(line, column))
                                for path, line, column in kept["values"]}
        document.key_marks = {_path(path): Location(file, *_position(line, column))
                              for path, line, column in kept["keys"]}
        document.containers = {_path(path) for path in kept["containers"]}
        return document
    except (OSError, ValueError, KeyError, TypeError, RecursionError):  # absent, damaged or of another shape
        return None


def keep(document: SourceDocument) -> None:
    """Keep a cleanly parsed ``document`` for the next process; any failure only costs that one a parse."""
    folder = _folder()
    if folder is None or len(document.digest) != 64:
        return
    with contextlib.suppress(OSError, ValueError, TypeError, RecursionError):
        kept = {"parser": _parser(), "data": document.data,
                "values": [[list(path), at.line, at.column] for path, at in document.value_marks.items()],
                "keys": [[list(path), at.line, at.column] for path, at in document.key_marks.items()],
                "containers": [list(path) for path in document.containers]}
        text = json.dumps(kept, separators=(",", ":"))
        if len(text) > MAX_KEPT_BYTES:
            return
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(folder / f"{document.digest}.json", text.encode("utf-8"), durable=False)
        _prune(folder)


def _folder() -> Path | None:
    try:
        return cache_dir() / "parsed"
    except RuntimeError:  # no home folder to put a cache in
        return None


def _parser() -> list[Any]:
    """What a kept document was parsed by: the format, wanflow's version, the parser modules' stamps
    and PyYAML's (its package folder and ``__init__.py``, found without importing it: an upgrade,
    or libyaml's extension added or removed, rewrites them)."""
    here = Path(__file__).parent
    stamps: list[Any] = [FORMAT, __version__]
    spec = importlib.util.find_spec("yaml")
    pyyaml = Path(spec.origin) if spec is not None and spec.origin else None
    files = [here / name for name in _PARSER_FILES] + ([pyyaml, pyyaml.parent] if pyyaml else [])
    for path in files:
        stat = path.stat()
        stamps += [stat.st_size, stat.st_mtime_ns]
    return stamps


def _path(raw: Any) -> DataPath:
    if not isinstance(raw, list) or not all(isinstance(part, str) or type(part) is int for part in raw):
        raise TypeError("not a data path")
    return tuple(raw)


def _position(line: Any, column: Any) -> tuple[int, int]:
    if type(line) is not int or type(column) is not int:
        raise TypeError("not a position")
    return line, column


def _prune(folder: Path) -> None:
    """Keep at most MAX_KEPT documents, dropping the least recently written (and any partial write
    an hour old: a process killed between writing and renaming)."""
    for partial in folder.glob(".*.tmp-*"):  # _fs's temporary names
        if partial.stat().st_mtime < time.time() - 3600:
            partial.unlink(missing_ok=True)
    kept = list(folder.glob("*.json"))
    if len(kept) <= MAX_KEPT:
        return
    for old in sorted(kept, key=lambda path: path.stat().st_mtime_ns)[:len(kept) - MAX_KEPT]:
        old.unlink(missing_ok=True)
