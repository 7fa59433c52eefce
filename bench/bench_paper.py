"""CPU benchmark of the paper's own mode (`--paper`: free-text answers) on the embedded model.

The workload is the `--paper` preset's protocol through the real policy (GoalPromptedPolicy in
generate mode with its default reply lengths: value induction 256 tokens, goal 64, items and
re-asks 64, the extractor 8 at temperature 0, at most 3 re-asks) and rollout (runs.rollout), for
4 values x goal on/off x --trials, temperature 1.0, seeded per episode. Two modes run the same
episodes, each in its own subprocess (so each peak RSS is its own):

- sequential: the paper-style loop as the engine ran it before prefix reuse reached generate mode:
  one episode at a time, prefix reuse off (every prompt recomputed);
- batched+reuse: --batch-size episodes stepped together (runs.evaluate's `batch_size`) with the
  backend's defaults: prefix reuse, every pending conversation of a call decoding together.

Decisions/s counts item decisions over the whole run (setup included: in generate mode the value
induction is a large share of the work). Both modes must give the same records (same seeds, float32):
the script compares every reply, extractor answer and choice and says whether they are identical.

    python bench/bench_paper.py                       # 4 values x goal on/off x 1 trial (8 episodes)
    python bench/bench_paper.py --values altruistic competitive   # 4 episodes
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODES = ("sequential", "batched+reuse")
VALUES = ("altruistic", "prosocial", "individualistic", "competitive")


def run_mode(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run the protocol in one mode; returns timings, token counts, peak RSS and the records."""
    import gymnasium as gym
    import torch

    import envs  # noqa: F401  (registers the Gymnasium ids)
    from agents.base import EpisodeContext
    from agents.llm import GoalPromptedPolicy
    from agents.llm.local import LocalBackend
    from runs.rollout import single as run_episodes

    if args.threads:
        torch.set_num_threads(args.threads)
    t_load = time.perf_counter()
    backend = LocalBackend("embedded", prefix_cache=(mode != "sequential"), dtype=args.dtype)
    if args.max_decode_mib and mode != "sequential":
        backend.engine.max_decode_tokens = (args.max_decode_mib << 20) // backend.engine.kv_bytes_per_token
    load_s = time.perf_counter() - t_load
    policy = GoalPromptedPolicy(
        backend=backend,
        mode="generate",
        sampling={"temperature": 1.0, "max_new_tokens": args.item_tokens},
        induction_tokens=args.induction_tokens,
        goal_tokens=args.goal_tokens,
        max_reasks=0 if args.smoke else 3,
    )
    contexts = [
        EpisodeContext("slider", 6, 9, seed=1000 * i + 10 * t + int(g), value=v, goal_prompt=g)
        for t in range(args.trials)
        for i, v in enumerate(args.values)
        for g in ((True,) if args.smoke else (True, False))
    ]
    size = 1 if mode == "sequential" else args.batch_size
    records: list[list[dict[str, Any]]] = []
    t0 = time.perf_counter()
    for k in range(0, len(contexts), size):
        batch = contexts[k : k + size]
        envs_ = [gym.make("SVO/Slider-v0").unwrapped for _ in batch]
        for res in run_episodes(policy, envs_, batch):
            records.append([_essential(d.record) for d in res.decisions])
    run_s = time.perf_counter() - t0
    n_dec = sum(len(r) for r in records)
    return {
        "mode": mode,
        "episodes": len(contexts),
        "decisions": n_dec,
        "batch_size": size,
        "max_decode_tokens": backend.engine.decode_tokens,
        "load_s": load_s,
        "run_s": run_s,
        "decisions_per_s": n_dec / run_s,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "stats": backend.stats,
        "threads": torch.get_num_threads(),
        "model_id": backend.model_id,
        "records": records,
    }


def _essential(rec: dict[str, Any]) -> dict[str, Any]:
    """What the model said and what was concluded (the fields both modes must agree on)."""
    keep = ("reply", "extractor_reply", "reask", "strict_choice", "extractor_choice")
    return {
        "choice": rec["choice"],
        "method": rec["method"],
        "setup": {k: v["reply"] for k, v in rec.get("setup", {}).items() if isinstance(v, dict)},
        "attempts": [{k: a[k] for k in keep if k in a} for a in rec["attempts"]],
    }


def table(rows: list[dict[str, Any]]) -> str:
    base = next((r for r in rows if r["mode"] == "sequential"), rows[0])
    head = (
        "| mode | episodes at once | decisions/s | x sequential | run s | peak RSS MB | prompt tokens "
        "| computed | reused | saved | generated | forward calls |"
    )
    lines = [head, "|---" * (head.count("|") - 1) + "|"]
    for r in rows:
        s = r["stats"]
        lines.append(
            f"| {r['mode']} | {r['batch_size']} | {r['decisions_per_s']:.3f} | "
            f"{r['decisions_per_s'] / base['decisions_per_s']:.1f} | {r['run_s']:.1f} | {r['peak_rss_mb']:.0f} | "
            f"{s['prompt_tokens']} | {s['computed_tokens']} | {s['reused_tokens']} | {100 * s['savings']:.0f}% | "
            f"{s['generated_tokens']} | {s['forward_calls']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--values", nargs="+", choices=VALUES, default=list(VALUES))
    p.add_argument("--trials", type=int, default=1, help="trials per value x goal condition (default 1)")
    p.add_argument(
        "--induction-tokens", type=int, default=256, help="value-induction reply length (256, the policy's)"
    )
    p.add_argument("--goal-tokens", type=int, default=64, help="goal reply length (64, the policy's)")
    p.add_argument("--item-tokens", type=int, default=64, help="item reply length (64, the --paper preset's)")
    p.add_argument(
        "--smoke",
        action="store_true",
        help="a check that the script runs, no benchmark: 1 episode (prosocial, goal on), replies of 16/8/16 tokens, no re-asks",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=8,
        help="episodes stepped together in batched+reuse (default 8, runs.evaluate's batch_size for --paper)",
    )
    p.add_argument(
        "--threads", type=int, default=1, help="torch threads (default 1, as the presets; 0: torch's)"
    )
    p.add_argument("--dtype", choices=("auto", "float32", "bfloat16"), default="auto")
    p.add_argument(
        "--max-decode-mib",
        type=int,
        default=0,
        help="KV of the rows decoding together in batched+reuse, MiB (0: the backend's default, 1024 on CPU); "
        "the spec option llm:embedded?max_decode_tokens=N sets it for a run",
    )
    p.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    p.add_argument("--out", type=Path, default=ROOT / "results" / "bench" / "paper.json")
    p.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.trials < 1 or args.batch_size < 1:
        p.error("--trials and --batch-size must be >= 1")
    if args.smoke:
        args.values, args.trials = ["prosocial"], 1
        args.induction_tokens, args.goal_tokens, args.item_tokens = 16, 8, 16
    if args.child:
        print(json.dumps(run_mode(args.child, args)))
        return 0
    rows = []
    forward = list(argv if argv is not None else sys.argv[1:])
    for mode in args.modes:
        t = time.perf_counter()
        out = subprocess.run(
            [sys.executable, __file__, *forward, "--child", mode],
            capture_output=True,
            text=True,
            env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
        )
        if out.returncode != 0:
            print(out.stderr[-4000:], file=sys.stderr)
            raise SystemExit(f"mode {mode} failed (exit {out.returncode})")
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(
            f"{mode}: {rows[-1]['decisions_per_s']:.3f} decisions/s ({time.perf_counter() - t:.0f} s)",
            flush=True,
        )
    info = {
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, {platform.processor() or platform.platform()}",
        "load_avg_end": os.getloadavg(),
        "threads": rows[0]["threads"],
        "episodes": rows[0]["episodes"],
        "decisions": rows[0]["decisions"],
        "settings": {
            k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "child"
        },
    }
    print()
    print(table(rows))
    print()
    print(json.dumps({k: v for k, v in info.items() if k != "settings"}))
    if len(rows) == 2:
        same = rows[0]["records"] == rows[1]["records"]
        print(f"identical records (every reply, extractor answer and choice) in both modes: {same}")
        if not same:
            diff = sum(a != b for a, b in zip(rows[0]["records"], rows[1]["records"], strict=True))
            print(f"  {diff} of {len(rows[0]['records'])} episodes differ")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"info": info, "rows": rows}, indent=1))
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
