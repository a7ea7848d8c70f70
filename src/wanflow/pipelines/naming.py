"""How outputs are named on disk: one rule for the out/ folder and the collision check."""

from __future__ import annotations

import re

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(name: str) -> str:
    """A file-name-safe form of ``name`` that cannot climb out of its folder."""
    cleaned = _UNSAFE.sub("_", name).strip("._") or "output"
    return cleaned[:80]
