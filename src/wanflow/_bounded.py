"""Bounded reads: every input file is opened, checked to be a regular file, and read with its
size limit applied while reading.

A pipeline, a vars file, a batch file, a config or a state file that is really ``/dev/zero``,
``/dev/urandom``, a FIFO or a socket would otherwise fill memory or wait forever. The file is
opened without blocking (a FIFO with no writer opens at once), then ``fstat`` tells what it is;
anything but a regular file is refused by name. A regular file that grows while being read is
still cut at its limit.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class NotARegularFile(OSError):
    """The path is a folder, a device, a FIFO or a socket; ``str()`` says which."""


class TooLarge(OSError):
    """The file holds more than the limit; ``size`` is at least the limit plus one."""

    def __init__(self, path: Path, limit: int) -> None:
        super().__init__(errno.EFBIG, f"{path} is larger than {limit:,} bytes")
        self.path, self.limit = path, limit


def kind_of(mode: int) -> str | None:
    """What a non-regular file is (``a FIFO (named pipe)``, ...), or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def read_bounded(path: Path, limit: int) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them.

    Raises FileNotFoundError, NotARegularFile (a folder, device, FIFO or socket; its message
    names the kind), TooLarge, or the OSError of the open or read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except IsADirectoryError:
        raise NotARegularFile(errno.EISDIR, f"{path} is a folder, not a file") from None
    except OSError as error:  # a socket cannot be opened at all (ENXIO): say what it is
        try:
            kind = kind_of(os.stat(path).st_mode)
        except OSError:
            kind = None
        if kind is None:
            raise
        raise NotARegularFile(errno.EINVAL, f"{path} is {kind}, not a regular file") from error
    try:
        kind = kind_of(os.fstat(fd).st_mode)
        if kind is not None:
            raise NotARegularFile(errno.EINVAL, f"{path} is {kind}, not a regular file")
        os.set_blocking(fd, True)
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise TooLarge(path, limit)
        return b"".join(chunks)
    finally:
        os.close(fd)
