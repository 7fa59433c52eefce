"""bench/validity.py, the script behind docs/validity.md, runs end to end (tiny sizes)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_validity_script_runs_every_section():
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run(
        [sys.executable, "bench/validity.py", "--smoke"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    for header in (
        "## 1. Mean angle",
        "## 2. Paired goal effect",
        "## 3. Position bias",
        "## 4. Fitted angle",
        "## 4b.",
        "## 5. Null bands",
    ):
        assert header in out.stdout
    assert "| slider | fixed | uniform, mean of 1 | 22.70 | 12.87 |" in out.stdout
