"""The console script's first instruction: handle SIGTERM and Ctrl-C before anything is imported.

Imports take a noticeable moment; a SIGTERM (a CI timeout, ``kill``) or a Ctrl-C in it must end
with a clear message and exit 130, not a traceback or a silent kill. Once a run starts, the
runner replaces these handlers with its own, which stop submitting and flush the records, and
gives these back when it ends (``execute/signals.py``). Once the command's work is done, a
signal during the interpreter's shutdown ends the process at once with 130.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
from types import FrameType
from typing import NoReturn, TextIO

EXIT_INTERRUPTED = 130
_REDELIVER_SECONDS = 0.005
_LATE_MESSAGE = b"wanflow: interrupted as it was exiting; the command's work was already done and saved\n"


def _swallows_exceptions(frame: FrameType | None) -> bool:
    """Whether ``frame`` runs where Python prints an exception and drops it: a ``__del__`` or a
    weakref callback (importlib's module-lock ``cb`` runs in every import). A KeyboardInterrupt
    raised there would be lost, and with it the signal."""
    while frame is not None:
        code = frame.f_code
        if code.co_name == "__del__" or (code.co_name == "cb" and code.co_filename.startswith("<frozen importlib")):
            return True
        frame = frame.f_back
    return False


def _terminate(signum: int, frame: FrameType | None) -> None:
    if _swallows_exceptions(frame):
        # Deliver the signal again in a moment, from a thread: raised here it would come straight
        # back into this handler, still inside the finaliser.
        main_thread = threading.main_thread().ident
        redeliver = threading.Timer(_REDELIVER_SECONDS, signal.pthread_kill, (main_thread, signum))
        redeliver.daemon = True
        redeliver.start()
        return
    raise KeyboardInterrupt


def _exit_now(signum: int, frame: FrameType | None) -> None:
    # The work is over and the process is on its way out (interpreter shutdown joins threads):
    # an exception raised now could escape every handler and end the process by SIGINT (-2).
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, RuntimeError):
            pass
    os.write(2, _LATE_MESSAGE)  # unbuffered: safe inside a handler
    os._exit(EXIT_INTERRUPTED)


def _finishing() -> None:
    """From here on a Ctrl-C or SIGTERM ends the process at once with 130, quietly."""
    signal.signal(signal.SIGTERM, _exit_now)
    signal.signal(signal.SIGINT, _exit_now)


class _PipeSafe:
    """A standard stream whose reader may go away (``wanflow runs | head``, a closed terminal):
    the first broken write sends the rest to /dev/null, so the command finishes its work (a paid
    run included) and exits with its own code, never with a traceback."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def _silence(self) -> None:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self._stream.fileno())
        finally:
            os.close(devnull)

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except (BrokenPipeError, ConnectionResetError):
            self._silence()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except (BrokenPipeError, ConnectionResetError):
            self._silence()
            self._stream.flush()

    def __getattr__(self, name: str) -> object:
        return getattr(self._stream, name)


def _guard_streams() -> None:
    """Give closed standard streams (``wanflow run >&-``) /dev/null, so nothing wanflow opens
    later takes their file descriptors and every print has somewhere to go; make stdout and
    stderr survive a reader that goes away."""
    for fd, name, mode in ((0, "stdin", os.O_RDONLY), (1, "stdout", os.O_WRONLY), (2, "stderr", os.O_WRONLY)):
        try:
            os.fstat(fd)
        except OSError:
            opened = os.open(os.devnull, mode)  # the lowest free descriptor: this very one
            if opened != fd:
                os.dup2(opened, fd)
                os.close(opened)
        if getattr(sys, name) is None:
            setattr(sys, name, open(fd, "r" if fd == 0 else "w", closefd=False, encoding="utf-8", errors="replace"))
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if not isinstance(stream, _PipeSafe) and hasattr(stream, "fileno"):
            setattr(sys, name, _PipeSafe(stream))


def main() -> int:
    """Run the command line with SIGTERM handled from the first instruction; the exit code."""
    signal.signal(signal.SIGTERM, _terminate)
    _guard_streams()
    try:
        from wanflow.cli.main import main as run_cli

        return run_cli()
    except KeyboardInterrupt:
        print("wanflow: interrupted while starting; nothing was run", file=sys.stderr)
        return EXIT_INTERRUPTED


def console() -> NoReturn:
    """The ``wanflow`` console script: :func:`main`, then a quick, signal-safe exit.

    Python's own shutdown resets the signal handlers to their defaults before it is done (a
    SIGTERM then ends the process with -15) and spends tens of milliseconds tearing modules down.
    Everything wanflow writes is closed and synced by now, so the exit handlers run, the standard
    streams are flushed, and the process ends with the command's code.
    """
    try:
        code = main()
        _finishing()  # here, not in main(): an in-process caller of main() keeps its own handlers
    except KeyboardInterrupt:  # a signal in the instant between main()'s end and the line above
        _finishing()
        os.write(2, _LATE_MESSAGE)
        code = EXIT_INTERRUPTED
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or 1  # like Python's own exit when stdout cannot be flushed
    os._exit(code)


if __name__ == "__main__":
    console()
