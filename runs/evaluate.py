"""python -m runs.evaluate: run the study's grid or a dilemma scenario, record everything durably,
resume after any crash (`python -m runs.evaluate --help`).

This module is the command line's entry: it imports nothing heavy until the interrupt handlers are
in place, so Ctrl-C or SIGTERM at any moment (start-up, model load, the episode loop, report
writing, a second Ctrl-C) ends with exit status 130, no traceback, and a run that resumes. The
runner itself is runs/runner.py; its public names (main, run, resolve, build_parser...) are
reachable from here too.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["cli", "exit_process", "interrupted", "main", "on_signal", "reset_interrupt"]

EXIT_INTERRUPTED = 130


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line (see runs/runner.py); returns the exit status."""
    from runs.runner import main as runner_main

    return runner_main(argv)


_signalled = False


def on_signal(signum: int, frame: Any) -> None:  # noqa: ARG001
    """The SIGINT/SIGTERM handler: note that an interrupt was asked for, and raise KeyboardInterrupt.
    The note matters where a library turns the KeyboardInterrupt into its own error (pydantic-core
    building a model's schema during start-up imports raised SchemaError: 1 in 240 SIGTERMs
    0.05-0.4 s after start): an error after an interrupt is the interrupt."""
    global _signalled
    _signalled = True
    raise KeyboardInterrupt


def interrupted(err: BaseException) -> bool:
    """Whether `err` is (or stands for) an asked-for interrupt."""
    return isinstance(err, KeyboardInterrupt) or _signalled


def reset_interrupt() -> None:
    """Forget an earlier interrupt (a new run in the same process)."""
    global _signalled
    _signalled = False


def cli(entry: Any = None) -> int:
    """Call `entry` (default: `main`) with SIGINT and SIGTERM turned into KeyboardInterrupt; an
    interrupt anywhere gives exit status 130 and one line on stderr."""
    reset_interrupt()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        code = (entry or main)()
    except BaseException as err:
        if isinstance(err, SystemExit) or not interrupted(err):
            raise
        _hold_interrupts()  # a further Ctrl-C cannot print a traceback now
        print(
            "interrupted: finished episodes are kept; resume with: python -m runs.evaluate --resume DIR",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    _hold_interrupts()  # the work is done or stopped: an impatient Ctrl-C at exit changes nothing
    return code


def _hold_interrupts() -> None:
    """Hold further SIGINT/SIGTERM until the process ends (blocked, not just ignored: Python's
    finalization puts the default handlers back, and a signal then would kill the exit)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})


def __getattr__(name: str) -> Any:  # PEP 562: the runner's names, imported on first use
    import runs.runner

    try:
        return getattr(runs.runner, name)
    except AttributeError:
        raise AttributeError(f"module 'runs.evaluate' has no attribute {name!r}") from None


def exit_process(code: int) -> None:
    """End the process with `code`. An interrupted run ends with os._exit after flushing: a
    KeyboardInterrupt raised while start-up imports run module code from C can leave CPython's
    unhandled-interrupt flag set although `cli` handled it, and CPython then ends the process by
    SIGINT at exit (status -2, not 130: observed 1 in 60 SIGTERMs 0.05-0.4 s after start). Every
    file the run writes is closed before `cli` returns."""
    if code == EXIT_INTERRUPTED:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    exit_process(cli())
