"""A YAML document as plain data with the position of every value and key in it (no YAML library
needed to hold or read one: a document recalled from the parsed cache never imports PyYAML)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from wanflow._diagnostics import Location

DataPath = tuple[str | int, ...]


def text_position(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of character ``offset`` in ``text``."""
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


@dataclass
class SourceDocument:
    """Plain data loaded from a YAML file plus the position of every value and key in it."""

    file: str
    data: Any
    value_marks: dict[DataPath, Location] = field(default_factory=dict)
    key_marks: dict[DataPath, Location] = field(default_factory=dict)
    containers: set[DataPath] = field(default_factory=set)
    digest: str = ""  # sha256 of the file's bytes (load_yaml_file): what a remembered verdict on it is keyed by

    def locate(self, path: DataPath) -> Location:
        """Position of the value at ``path`` (of its key, for a mapping or list), or of the nearest ancestor.

        A message about a whole step points at ``hero:``, not at the first field under it.
        """
        for length in range(len(path), -1, -1):
            prefix = path[:length]
            if prefix in self.containers and prefix in self.key_marks:
                return self.key_marks[prefix]
            location = self.value_marks.get(prefix)
            if location is not None:
                return location
        return Location(self.file, 1, 1)

    def locate_key(self, path: DataPath) -> Location:
        """Position of the mapping key that introduces ``path`` (falls back to the value)."""
        return self.key_marks.get(path) or self.locate(path)
