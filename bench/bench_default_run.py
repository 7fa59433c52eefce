"""The default run (`python -m runs.evaluate`, the embedded model) timed back to back against another
revision of this repository: wall time and peak memory of each, and the ratio.

    python bench/bench_default_run.py                  # this checkout vs the revision before the one-runner change
    python bench/bench_default_run.py --baseline REV --repeats 2 --current-args "--workers 1"
    python bench/bench_default_run.py --run-args=--paper --baseline 254a07b   # the paper's own mode (write --run-args=...: a value starting with - needs the =)

The baseline revision is checked out into a temporary git worktree and run with its own code, in
the same Python environment, alternating with this checkout (A B A B...), each with a cold
response cache and its own results folder. Peak memory is the largest single process's maximum
resident set size (getrusage): with worker processes (the default, one per usable core) the
whole run holds about that much per worker; bench/bench_scale.py measures the sum. Run it on an idle machine: the ratio is only meaningful when nothing else competes.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: The last commit before the one-runner change (issue 11): the default run it replaced.
BEFORE = "57ce080"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--baseline", default=BEFORE, help=f"git revision to compare with [{BEFORE}]")
    p.add_argument("--repeats", type=int, default=1, help="runs of each, alternating [1]")
    p.add_argument(
        "--current-args",
        action="append",
        default=[],
        metavar="ARGS",
        help="also time this checkout with these extra flags (repeatable), e.g. '--workers 1'",
    )
    p.add_argument(
        "--run-args",
        default="",
        metavar="ARGS",
        help="flags for every run, baseline and current, written --run-args=ARGS (e.g. --run-args=--paper: the paper preset instead of the default run)",
    )
    args = p.parse_args(argv)
    common = args.run_args.split()
    with tempfile.TemporaryDirectory(prefix="svo-bench-") as tmp:
        tmp_path = Path(tmp)
        base = tmp_path / "baseline"
        subprocess.run(["git", "worktree", "add", "--detach", str(base), args.baseline], cwd=ROOT, check=True,
                       capture_output=True)  # fmt: skip
        try:
            variants = [("baseline", base, common), ("current", ROOT, common)]
            variants += [(f"current {a}", ROOT, [*common, *a.split()]) for a in args.current_args]
            times: dict[str, list[float]] = {v[0]: [] for v in variants}
            peaks: dict[str, list[float]] = {v[0]: [] for v in variants}
            for k in range(args.repeats):
                for label, code, extra in variants:
                    wall, peak = _timed(
                        code, tmp_path, f"r{len(times[label])}{label.replace(' ', '')}", extra
                    )
                    times[label].append(wall)
                    peaks[label].append(peak)
                    print(f"{label:22s} run {k + 1}: {wall:7.1f} s wall, peak {peak:.2f} GB", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, capture_output=True)
            subprocess.run(["git", "worktree", "prune"], cwd=ROOT, capture_output=True)  # no stale entry left
    b, c = statistics.median(times["baseline"]), statistics.median(times["current"])
    print(f"\nbaseline {args.baseline}: {b:.1f} s ({b / 60:.1f} min), peak {max(peaks['baseline']):.2f} GB")
    print(f"current:  {c:.1f} s ({c / 60:.1f} min), peak {max(peaks['current']):.2f} GB")
    if common:
        print(f"wall time ratio current/baseline: {c / b:.3f}; runs: {' '.join(common)}")
    else:
        print(
            f"wall time ratio current/baseline: {c / b:.3f} (target <= 1.10); largest process under 2 GB: "
            f"{max(peaks['current']) < 2.0}"
        )
    return 0


def _timed(code_dir: Path, work: Path, label: str, extra: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (GB, its largest process) of one default run with the code in
    code_dir and `extra` flags: under /usr/bin/time -v where there is one, else from getrusage."""
    results, cache = work / f"results-{label}", work / f"cache-{label}"
    env = {**os.environ, "PYTHONPATH": str(code_dir), "SVO_CACHE_DIR": str(cache)}
    command = [sys.executable, "-m", "runs.evaluate", "--results-dir", str(results), "--name", "bench",
               "--no-progress", *extra]  # fmt: skip
    timer = ["/usr/bin/time", "-v"] if Path("/usr/bin/time").exists() else []
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    r = subprocess.run([*timer, *command], cwd=work, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{label}: exit {r.returncode}\n{r.stderr[-3000:]}")
    if timer:
        kb = next(int(x.split(":")[1]) for x in r.stderr.splitlines() if "Maximum resident set size" in x)
        return wall, kb / 1e6
    # ru_maxrss of children is the largest child so far: this run's only if it set a new peak
    return wall, max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, before) / 1e6


if __name__ == "__main__":
    sys.exit(main())
