"""Ctrl-C and SIGTERM during a run: one receiver that hands the previous handlers back.

asyncio's ``remove_signal_handler`` (which anyio's receiver calls on exit) resets SIGTERM to the
default action, not to what was there before. After a run's receiver closed, a SIGTERM while the
records, the lockfile or the summary are written would then kill the process outright (exit -15)
instead of the clean "interrupted" ending that ``cli/entry.py`` installs from the first line.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager

import anyio

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def stop_signals() -> Iterator[AsyncIterator[int]]:
    """anyio's receiver of Ctrl-C and SIGTERM; on exit the handlers from before are restored."""
    previous = {number: signal.getsignal(number) for number in STOP_SIGNALS}
    try:
        with anyio.open_signal_receiver(*STOP_SIGNALS) as signals:
            yield signals
    finally:
        if threading.current_thread() is threading.main_thread():  # the only thread that may set handlers
            for number, handler in previous.items():
                if handler is not None:
                    signal.signal(number, handler)


async def stop_on_signal(stop: Callable[[str], Awaitable[None] | None]) -> None:
    """Wait for Ctrl-C or SIGTERM, then call ``stop`` with the signal's name, once. The one watcher
    of a run, local or on a cluster: start it in the run's task group and cancel it when done."""
    with stop_signals() as signals:
        async for number in signals:
            done = stop(signal.Signals(number).name)
            if done is not None:
                await done
            return
