"""The confinement rule: a path wanflow derives from data it reads back stays inside its folder.

Manifests, run records, batch records, journals, leases and cache entries are files a user can
edit, share or receive damaged. Every hash, name or relative path taken from them is checked as
data first (a hash is 64 lower-case hex characters, a name is a safe name) and the path built from
it is resolved and checked to lie inside the folder it belongs to before anything is read,
written or removed. A symlink that leads out of the folder is never followed for a write or a
delete: the resolved path would lie outside, so the path is refused.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
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
    return resolved_inside(path, folder) is not None


def resolved_inside(path: Path, folder: Path) -> Path | None:
    """``path`` with every symlink resolved when that lies inside ``folder`` (resolved too); None
    when it lies outside or cannot be resolved (a symlink loop, a NUL byte)."""
    return _resolved_inside(path, folder, _parts_below(os.fspath(path), os.fspath(folder)))


def confined(folder: Path, relative: Any) -> Path | None:
    """``folder / relative`` when ``relative`` is a relative POSIX path (no ``..``, no absolute
    path, no NUL) whose resolved form lies inside ``folder``; None otherwise.

    The path returned is not resolved: unlinking it removes a link, never what it points to.
    """
    found = _confined(folder, relative)
    return found[0] if found is not None else None


def resolved_confined(folder: Path, relative: Any) -> Path | None:
    """What ``confined(folder, relative)`` names, with every symlink resolved (None where it gives None)."""
    found = _confined(folder, relative)
    return found[1] if found is not None else None


def _confined(folder: Path, relative: Any) -> tuple[Path, Path] | None:
    """``folder / relative`` as written and resolved, when ``relative`` passes and stays inside."""
    if not isinstance(relative, str) or not relative or "\x00" in relative or "\\" in relative or relative[0] == "/":
        return None
    parts = [part for part in relative.split("/") if part not in ("", ".")]  # as PurePosixPath reads it
    if not parts or ".." in parts:
        return None
    candidate = folder.joinpath(*parts)
    resolved = _resolved_inside(candidate, folder, parts)
    return (candidate, resolved) if resolved is not None else None


def named(folder: Path, name: Any, suffix: str = "") -> Path | None:
    """``folder / (name + suffix)`` when ``name`` is a safe name; None otherwise."""
    if not is_safe_name(name):
        return None
    return confined(folder, f"{name}{suffix}")


def _resolved_inside(path: Path, folder: Path, parts: list[str] | None) -> Path | None:
    try:
        if "\x00" in os.fspath(path):
            return None  # no file system path holds a NUL
        root, checked = _resolved_folder(folder)
        quick = _walk(root, parts) if parts is not None and checked else None
        resolved = quick if quick is not None else path.resolve()
        return resolved if resolved.is_relative_to(root) else None
    except (OSError, RuntimeError, ValueError):
        return None


_FOLDERS: dict[tuple[str, int, int], Path] = {}  # (absolute folder, st_dev, st_ino) -> the folder resolved


def _resolved_folder(folder: Path) -> tuple[Path, bool]:
    """``folder`` resolved, and whether it may be walked below without resolving each path again.

    The resolution is remembered for the folder's absolute name and the file it is now (device and
    inode, one ``stat``): a folder re-pointed, deleted or made again is resolved again. A relative
    name (it depends on the current folder), a missing folder and Windows (junctions are not
    symlinks to ``lstat``) always take the full resolve.
    """
    text = os.fspath(folder)
    if os.name == "nt" or not os.path.isabs(text):
        return folder.resolve(), False
    try:
        now = os.stat(text)
    except OSError:
        return folder.resolve(), False
    key = (text, now.st_dev, now.st_ino)
    root = _FOLDERS.get(key)
    if root is None:
        if len(_FOLDERS) >= 256:
            _FOLDERS.clear()
        root = _FOLDERS[key] = folder.resolve()
    return root, True


def _parts_below(path: str, folder: str) -> list[str] | None:
    """The components of ``path`` below ``folder``, as written (None when it is not written below it)."""
    if path == folder:
        return []
    prefix = folder if folder.endswith(os.sep) else folder + os.sep
    if not path.startswith(prefix):
        return None
    return [part for part in path[len(prefix):].split(os.sep) if part not in ("", ".")]


def _walk(root: Path, parts: list[str]) -> Path | None:
    """``root`` plus ``parts`` when none of them is ``..`` or a symlink: then that is what
    resolving the path gives, without resolving every ancestor again (the quick answer for the
    common case). None means "resolve it in full", never "outside"."""
    if ".." in parts:
        return None
    current = os.fspath(root)
    for index, part in enumerate(parts):
        current = os.path.join(current, part)
        try:
            if stat.S_ISLNK(os.lstat(current).st_mode):
                return None
        except FileNotFoundError:  # the rest does not exist yet: resolved as written
            return Path(current, *parts[index + 1:])
        except OSError:  # a component that is a file, or unreadable: as resolving the whole path says
            return None
    return Path(current)
