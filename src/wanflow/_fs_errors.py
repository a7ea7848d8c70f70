"""File-system failures in plain words: which path, what is wrong, what to do about it.

A full disk, a read-only mount, a folder that is really a file: each becomes a FileSystemError
whose message a user can act on, never an "internal error" with a raw errno.
"""

from __future__ import annotations

import errno
from pathlib import Path

from wanflow._exceptions import FileSystemError

_FREE_SPACE = "free some space (`wanflow cache gc` removes results nothing refers to any more) and run again"
_OTHER_FOLDER = "choose another folder"

# errno -> (what is wrong, what to do)
_PLAIN: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("the disk is full", _FREE_SPACE),
    errno.EDQUOT: ("the disk quota is used up", _FREE_SPACE),
    errno.EROFS: ("the file system is read-only", f"{_OTHER_FOLDER} on a writable disk"),
    errno.EACCES: ("permission denied", f"make it writable for you, or {_OTHER_FOLDER}"),
    errno.EPERM: ("the operation is not permitted", f"make it writable for you, or {_OTHER_FOLDER}"),
    errno.ENOTDIR: ("a part of the path is a file, not a folder", f"move that file away, or {_OTHER_FOLDER}"),
    errno.EEXIST: ("a file is in the way of a folder", f"move that file away, or {_OTHER_FOLDER}"),
    errno.EISDIR: ("it is a folder, not a file", f"move that folder away, or {_OTHER_FOLDER}"),
    errno.ENAMETOOLONG: ("the path is too long", f"{_OTHER_FOLDER} with a shorter path"),
    errno.EMFILE: ("too many files are open", "raise the limit (ulimit -n) or lower --jobs"),
    errno.EIO: ("the disk reported an input/output error", "check the disk, or choose another folder"),
}


def is_file_system_error(error: BaseException) -> bool:
    """Whether ``error`` is about a file or folder (and not, say, a network connection)."""
    return isinstance(error, OSError) and (isinstance(error, FileSystemError) or error.errno in _PLAIN)


def describe(error: OSError, path: Path | str | None = None, how: str = "") -> str:
    """``cannot write <path>: <what is wrong>; <what to do>`` (``how`` adds the option that moves it)."""
    if isinstance(error, FileSystemError):
        return str(error)
    where = path if path is not None else error.filename
    problem, advice = _PLAIN.get(error.errno or 0, (error.strerror or str(error), "check the folder and run again"))
    if how and advice.endswith(_OTHER_FOLDER):
        advice += f" with {how}"
    return f"cannot write {where}: {problem}; {advice}"


def file_system_error(error: OSError, path: Path | str | None = None, how: str = "") -> FileSystemError:
    """``error`` as a FileSystemError with a plain message (the original errno and path kept)."""
    if isinstance(error, FileSystemError):
        return error
    return FileSystemError(describe(error, path, how), error.errno, path if path is not None else error.filename)
