"""The console script's first instruction: handle SIGTERM and Ctrl-C before anything is imported.

Imports take a noticeable moment; a SIGTERM (a CI timeout, ``kill``) or a Ctrl-C in it must end
with a clear message and exit 130, not a traceback or a silent kill. Once a run starts, the
runner replaces these handlers with its own, which stop submitting and flush the records.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main() -> int:
    """Entry point of the ``wanflow`` console script."""
    signal.signal(signal.SIGTERM, _terminate)
    try:
        from wanflow.cli.main import main as run_cli

        return run_cli()
    except KeyboardInterrupt:
        print("wanflow: interrupted while starting; nothing was run", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
