"""The exit codes of the ``wanflow`` command (the parser's --help epilog lists them)."""

from __future__ import annotations

EXIT_OK, EXIT_STEP_FAILED, EXIT_INVALID, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
