"""Scale benchmark: the default run on 1 core vs every core of this machine, threads vs processes,
and executor: ray with 2 local actors vs the local executor, each with its peak memory.

Every configuration is the real command line (`python -m runs.evaluate`, the default preset: the
paper's protocol on the embedded SmolLM2-135M, logprob answers) in its own subprocess, with its
own cold response cache (`--cache run`), so each one computes everything. Measured per run:

- decisions/s over the whole command (start-up and model loads included) and over the episode
  loop alone (the run's session record: `seconds`, after the agents are built);
- peak memory: the largest sum of resident memory over the command's whole process tree (driver,
  worker processes, a local Ray's processes and actors), polled from /proc every 0.1 s.

Ratios are against the 1-core run measured in the same invocation. The records of every run are
compared with the 1-core run's: with one thread per worker (processes, Ray actors) they must be
byte-identical, and any difference exits 1. With several intra-op threads a matrix product sums
in another order, so the threads row is only reported: "same within 1e-4", "same choices", or how
many choices differ (at temperature 1 a rounding change can flip a sampled token of a setup reply,
and that episode's later log-probs follow it).

    python bench/bench_scale.py            # the default run: 16 episodes, 96 decisions
    python bench/bench_scale.py --quick    # 2 values x goal on: 4 episodes, 24 decisions
    python bench/bench_scale.py --skip-ray # without the Ray rows (Ray not installed)
    python bench/bench_scale.py --smoke    # a check that it runs: --quick with short replies

A timing on a machine that other work shares is contaminated: the load average before and after
each run is printed beside it; rerun on an idle machine for numbers to quote.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from runs.cores import usable_cores  # noqa: E402  (light: no torch import)

QUICK = ["--values", "prosocial", "competitive", "--goal", "on"]
#: --smoke: the quick grid with short value-induction and goal replies (a check that it runs)
SMOKE = [*QUICK, "--set", "llm.options={induction_tokens: 16, goal_tokens: 8}"]


def _tree_rss(root: int) -> int:
    """Resident bytes of `root` and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", encoding="ascii", errors="replace") as f:
                stat = f.read()
            with open(f"/proc/{name}/statm", encoding="ascii") as f:
                pages = int(f.read().split()[1])
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(name))
        rss[int(name)] = pages * page
    total, todo = 0, [root]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        todo.extend(children.get(p, []))
    return total


def _run(name: str, args: list[str], work: Path) -> dict[str, Any]:
    run_dir = work / name
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "runs.evaluate",
            "--run-dir",
            str(run_dir),
            "--no-progress",
            "--cache",
            "run",
            *args,
        ],
        cwd=work,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    peak = [0]
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _tree_rss(proc.pid))
            done.wait(0.1)

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    _, err = proc.communicate(timeout=7200)
    wall = time.perf_counter() - t0
    done.set()
    watcher.join()
    if proc.returncode != 0:
        raise SystemExit(f"{name}: exit {proc.returncode}\n{err[-3000:]}")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    loop_s = manifest["sessions"][-1]["outcome"]["seconds"]
    n = sum(1 for _ in (run_dir / "decisions.jsonl").open())
    return {
        "name": name,
        "args": " ".join(args),
        "decisions": n,
        "wall_s": round(wall, 1),
        "loop_s": round(loop_s, 1),
        "decisions_per_s": round(n / wall, 3),
        "loop_decisions_per_s": round(n / loop_s, 3),
        "peak_mb": round(peak[0] / 1e6),
        "load_before": round(load0, 2),
        "load_after": round(os.getloadavg()[0], 2),
        "execution": {
            k: v
            for k, v in manifest.get("execution", {}).items()
            if k in ("mode", "workers", "threads", "cpu_actors", "why")
        },
        "records": (run_dir / "decisions.jsonl").read_bytes(),
    }


def _close(a: Any, b: Any, tol: float) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and abs(a - b) <= tol
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k], tol) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y, tol) for x, y in zip(a, b, strict=True))
    return a == b


def _compare(records: bytes, base: bytes, tol: float = 1e-4) -> str:
    """'identical'; 'same within 1e-4' (every field equal, floats within tol); 'same choices' (every
    decision's option and validity equal, other fields not); else 'NO (k of n choices differ)'."""
    if records == base:
        return "identical"
    a, b = records.decode().splitlines(), base.decode().splitlines()
    if len(a) != len(b):
        return f"NO ({len(a)} decisions vs {len(b)})"
    da, db = [json.loads(x) for x in a], [json.loads(y) for y in b]
    if all(_close(x, y, tol) for x, y in zip(da, db, strict=True)):
        return f"same within {tol:g}"
    differ = sum((x["option"], x["valid"]) != (y["option"], y["valid"]) for x, y in zip(da, db, strict=True))
    return "same choices" if differ == 0 else f"NO ({differ} of {len(da)} choices differ)"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="2 values x goal on (4 episodes) instead of 16")
    p.add_argument(
        "--smoke",
        action="store_true",
        help="a check that the script runs, no benchmark: --quick with 16/8-token induction and goal replies",
    )
    p.add_argument("--skip-ray", action="store_true", help="leave out the executor: ray row")
    p.add_argument("--out", type=Path, help="write the results as JSON here")
    args = p.parse_args(argv)
    cores = usable_cores()
    grid = SMOKE if args.smoke else QUICK if args.quick else []
    configs = [
        ("1 core (1 process, 1 thread)", [*grid, "--workers", "1", "--threads", "1"]),
        (
            f"{cores} cores: processes (workers auto = {cores} x 1 thread)",
            [*grid, "--workers", "auto", "--threads", "1"],
        ),
        (
            f"{cores} cores: threads (1 process x {cores} threads)",
            [*grid, "--workers", "1", "--threads", str(cores)],
        ),
    ]
    if not args.skip_ray:
        configs.append(("executor: ray, 2 local actors", [*grid, "--executor", "ray", "--ray-actors", "2"]))
    print(f"usable cores: {cores}; load average now {os.getloadavg()}", file=sys.stderr)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        for i, (name, cli) in enumerate(configs):
            print(f"running: {name}", file=sys.stderr)
            rows.append(_run(f"run{i}", cli, Path(tmp)))
            rows[-1]["name"] = name
    base = rows[0]
    print(
        "\n| configuration | decisions | wall s | decisions/s | x 1 core | loop decisions/s | x 1 core (loop) "
        "| peak MB | same records | load before/after |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        r["ratio"] = round(r["decisions_per_s"] / base["decisions_per_s"], 2)
        r["loop_ratio"] = round(r["loop_decisions_per_s"] / base["loop_decisions_per_s"], 2)
        r["same_records"] = _compare(r["records"], base["records"])
        print(
            f"| {r['name']} | {r['decisions']} | {r['wall_s']} | {r['decisions_per_s']} | {r['ratio']} | "
            f"{r['loop_decisions_per_s']} | {r['loop_ratio']} | {r['peak_mb']} | {r['same_records']} "
            f"| {r['load_before']} / {r['load_after']} |"
        )
    local = next((r for r in rows if "processes" in r["name"]), None)
    ray_row = next((r for r in rows if "ray" in r["name"]), None)
    if local and ray_row:
        print(
            f"\nexecutor: ray (2 actors) vs local executor (workers auto): "
            f"{ray_row['decisions_per_s'] / local['decisions_per_s']:.2f}x whole command, "
            f"{ray_row['loop_decisions_per_s'] / local['loop_decisions_per_s']:.2f}x episode loop; "
            f"peak memory {ray_row['peak_mb']} vs {local['peak_mb']} MB"
        )
    loads = [r["load_before"] for r in rows] + [r["load_after"] for r in rows]
    if max(loads) > 0.5 * cores:
        print(
            f"\nWARNING: load average up to {max(loads):.1f} on {cores} cores: other work shared the CPU; "
            "these timings are contaminated (rerun on an idle machine)."
        )
    if args.out:
        args.out.write_text(
            json.dumps([{k: v for k, v in r.items() if k != "records"} for r in rows], indent=2)
        )
    bad = [r["name"] for r in rows if "threads" not in r["name"] and r["same_records"] != "identical"]
    for name in bad:
        print(f"\nRECORDS DIFFER: {name} (identical records expected: one thread per worker)")
    for r in rows:
        if "threads" in r["name"] and r["same_records"] != "identical":
            print(
                f"\nthreads row: {r['same_records']}. Expected to differ: another thread count sums in another "
                "order, and at temperature 1 a rounding change can flip a sampled token of a value-induction or "
                "goal reply, which changes that episode's later log-probs (and can change its choices)."
            )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
