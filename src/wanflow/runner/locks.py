"""Cross-process locks, so concurrent wanflow runs sharing a cache generate each request once."""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator, Callable

import anyio
from filelock import FileLock, Timeout

POLL_SECONDS = 0.1


@asynccontextmanager
async def process_lock(path: Path, on_wait: Callable[[], None] | None = None) -> AsyncIterator[None]:
    """Hold an OS file lock on ``path`` without blocking the event loop.

    The operating system releases the lock if the holder dies (even ``kill -9``), so a crashed
    run never blocks the next one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path))
    told = False
    while True:
        try:
            lock.acquire(timeout=0)
            break
        except Timeout:
            if not told and on_wait is not None:
                on_wait()
                told = True
            await anyio.sleep(POLL_SECONDS)
    try:
        yield
    finally:
        lock.release()
