"""python -m runs.evaluate: run the study's grid or a dilemma scenario, record everything durably,
resume after any crash (`python -m runs.evaluate --help`).

This module is the command line's entry: it imports nothing heavy until the interrupt handlers are
in place, so Ctrl-C or SIGTERM at any moment (start-up, model load, the episode loop, report
writing, a second Ctrl-C) ends with exit status 130, no traceback, and a run that resumes. The
runner itself is runs/runner.py; its public names (main, run, resolve, build_parser...) are
reachable from here too.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["cli", "main"]

EXIT_INTERRUPTED = 130


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line (see runs/runner.py); returns the exit status."""
    from runs.runner import main as runner_main

    return runner_main(argv)


def cli(entry: Any = None) -> int:
    """Call `entry` (default: `main`) with SIGTERM turned into KeyboardInterrupt; an interrupt
    anywhere gives exit status 130 and one line on stderr."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        code = (entry or main)()
    except KeyboardInterrupt:
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


if __name__ == "__main__":
    sys.exit(cli())
