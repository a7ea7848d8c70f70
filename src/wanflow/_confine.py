"""The confinement rule: a path wanflow derives from data it reads back stays inside its folder.

Manifests, run records, batch records, journals, leases and cache entries are files a user can
edit, share or receive damaged. Every hash, name or relative path taken from them is checked as
data first (a hash is 64 lower-case hex characters, a name is a safe name) and the path built from
it is resolved and checked to lie inside the folder it belongs to before anything is read,
written or removed. A symlink that leads out of the folder is never followed for a write or a
delete: the resolved path would lie outside, so the path is refused.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any

_SHA256 = re.compile(r"[0-9a-f]{64}")
# Pipeline names, instance names, run ids, history names (pipeline@instance): no separator, no
# leading dot (so never "." or ".."), nothing a shell or a URL treats specially.
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,199}")


def is_sha256(value: Any) -> bool:
    """Whether ``value`` is a sha256 as wanflow writes it (64 lower-case hex characters)."""
    return isinstance(value, str) and _SHA256.fullmatch(value) is not None


def is_safe_name(value: Any) -> bool:
    """Whether ``value`` can be one path component: letters, digits, ``._@+-``, no leading dot."""
    return isinstance(value, str) and _SAFE_NAME.fullmatch(value) is not None


def is_inside(path: Path, folder: Path) -> bool:
    """Whether ``path``, with every symlink resolved, lies inside ``folder`` (resolved too)."""
    try:
        return path.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError, ValueError):  # a symlink loop, a NUL byte
        return False


def confined(folder: Path, relative: Any) -> Path | None:
    """``folder / relative`` when ``relative`` is a relative POSIX path (no ``..``, no absolute
    path, no NUL) whose resolved form lies inside ``folder``; None otherwise.

    The path returned is not resolved: unlinking it removes a link, never what it points to.
    """
    if not isinstance(relative, str) or not relative or "\x00" in relative or "\\" in relative:
        return None
    parts = PurePosixPath(relative).parts
    if PurePosixPath(relative).is_absolute() or any(part in ("..", ".") for part in parts) or not parts:
        return None
    candidate = folder.joinpath(*parts)
    return candidate if is_inside(candidate, folder) and candidate != folder else None


def named(folder: Path, name: Any, suffix: str = "") -> Path | None:
    """``folder / (name + suffix)`` when ``name`` is a safe name; None otherwise."""
    if not is_safe_name(name):
        return None
    return confined(folder, f"{name}{suffix}")
