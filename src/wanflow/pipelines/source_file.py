"""Reading a YAML file safely: bounded, regular files only, UTF-8 checked, and parsed once per
content (a document already parsed is recalled from the user's cache by its bytes' sha256)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from wanflow._bounded import NotARegularFile, TooLarge, read_bounded
from wanflow._diagnostics import Diagnostic, Location
from wanflow._exceptions import PipelineError
from wanflow.pipelines.parsed_cache import keep, recall
from wanflow.pipelines.source_document import SourceDocument, text_position

MAX_DOCUMENT_BYTES = 1_000_000
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def load_yaml_file(path: Path, display_name: str | None = None) -> SourceDocument:
    """Load one YAML document from ``path``; every problem becomes a located PipelineError."""
    name = display_name or str(path)
    try:
        raw = read_bounded(path, MAX_DOCUMENT_BYTES)
    except FileNotFoundError:
        raise PipelineError([Diagnostic(f"file not found: {name}")]) from None
    except NotARegularFile as error:
        raise PipelineError([Diagnostic(f"cannot read {name}: {error.strerror}")]) from None
    except TooLarge:
        raise PipelineError([Diagnostic(f"file is larger than {MAX_DOCUMENT_BYTES:,} bytes", Location(name, 1, 1),
                                        allowed=f"at most {MAX_DOCUMENT_BYTES:,} bytes")]) from None
    except OSError as error:
        raise PipelineError([Diagnostic(f"cannot read {name}: {error.strerror}")]) from None
    if raw.startswith(_UTF16_BOMS):
        raise PipelineError([Diagnostic("the file is UTF-16 text; save it as UTF-8", Location(name, 1, 1))])
    try:
        text = raw.decode("utf-8-sig")  # a UTF-8 byte order mark (some Windows editors write one) is fine
    except UnicodeDecodeError as error:
        line, column = text_position(raw.decode("latin-1"), error.start)
        raise PipelineError([Diagnostic(f"not UTF-8 text (byte 0x{raw[error.start]:02x}); save the file as UTF-8",
                                        Location(name, line, column))]) from None
    digest = hashlib.sha256(raw).hexdigest()
    document = recall(digest, name)
    if document is None:
        from wanflow.pipelines.yaml_source import load_yaml_text  # PyYAML costs ~30 ms to import: only on a miss

        document = load_yaml_text(text, name)
        document.digest = digest
        keep(document)
    return document
