"""Read-only probes of a run that another process is writing, shared by the fault-injection tests
(tests/test_store_faults.py, tests/test_signals.py, tests/test_executors.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from runs.store import DB


def stored_episodes(run_dir: Path) -> int:
    """Finished episodes, read beside a live writer (0 if the run does not exist yet)."""
    db = run_dir / DB
    if not db.is_file():
        return 0
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return conn.execute("SELECT COUNT(*) FROM episodes").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        return 0
