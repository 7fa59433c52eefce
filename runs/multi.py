"""python -m runs.multi: an alias of `python -m runs.evaluate --scenario ...` (one runner for every
environment; see runs/evaluate.py). `python -m runs.multi SCENARIO [runs.evaluate flags...]` runs
the scenario; every runs.evaluate flag works the same."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from runs.evaluate import main as evaluate_main

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and not argv[0].startswith("-"):
        argv = ["--scenario", argv[0], *argv[1:]]
    return evaluate_main(argv)


if __name__ == "__main__":
    from runs.evaluate import cli, exit_process

    exit_process(cli(main))  # the same interrupt handling and exit statuses as runs.evaluate
