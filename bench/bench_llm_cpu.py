"""CPU benchmark of the embedded model on the paper's protocol: sequential vs batched vs log-prob vs reuse.

The workload is the paper's chain with this project's prompt texts (scenarios/data/prompts/paper.yaml):
value induction (generated description), role prompt, goal prompt (generated sentence) or the fixed
no-goal sentence, then the six primary slider items in one conversation per trial, for 4 values x
goal on/off x --trials. Four modes run the same episodes, each in its own subprocess (so each peak
RSS is its own):

- sequential: the paper-style loop, one conversation at a time, every prompt recomputed, each
  item answered by generating --item-tokens tokens (LocalBackend, prefix reuse off, batch of 1);
- batched-generate: all episodes step together, generate, no prefix reuse;
- batched-logprob: all episodes together, one forward pass per decision (letters' log-probs);
- logprob+reuse: the same with the shared-prefix KV cache (the default backend settings).

Decisions/s counts item decisions over the item phase; "run s" is the whole run including the value
and goal generations. Ratios are against the sequential loop measured in the same invocation.

    python bench/bench_llm_cpu.py            # default: 4 values x goal on/off x 1 trial
    python bench/bench_llm_cpu.py --quick    # 2 values x goal on/off x 1 trial, short generations
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
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

from agents.llm.policy import GoalPromptedPolicy  # noqa: E402  (light: no torch import)

MODES = ("sequential", "batched-generate", "batched-logprob", "logprob+reuse")
VALUES = ("altruistic", "prosocial", "individualistic", "competitive")


def episodes(values: list[str], trials: int, goals: tuple[bool, ...] = (True, False)) -> list[dict[str, Any]]:
    return [
        {"value": v, "goal": g, "trial": t, "seed": 1000 * i + 10 * t + int(g)}
        for i, v in enumerate(values)
        for g in goals
        for t in range(trials)
    ]


def run_mode(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run the whole protocol in one mode; returns timings, token stats, peak RSS and the choices."""
    import numpy as np
    import torch
    from langchain_core.messages import AIMessage, HumanMessage

    from agents.llm.backend import Sampling
    from agents.llm.local import LocalBackend
    from scenarios import load_instrument
    from scenarios.prompts import render_context, render_options

    if args.threads:
        torch.set_num_threads(args.threads)
    t_load = time.perf_counter()
    backend = LocalBackend(
        "embedded",
        prefix_cache=(mode == "logprob+reuse"),
        dtype=args.dtype,
    )
    load_s = time.perf_counter() - t_load
    items = load_instrument("slider").subset("primary").items
    eps = episodes(args.values, args.trials, (True,) if args.smoke else (True, False))
    letters = "ABCDEFGHI"
    logprob = mode in ("batched-logprob", "logprob+reuse")

    def seed(ep: dict[str, Any], stage: int, step: int = 0) -> int:
        return int(np.random.SeedSequence([ep["seed"], stage, step]).generate_state(1)[0] >> 1)

    def call_generate(convs: list[list], samp: list[Sampling]) -> list[str]:
        if mode == "sequential":
            return [backend.generate([c], [s])[0].text for c, s in zip(convs, samp, strict=True)]
        return [g.text for g in backend.generate(convs, samp)]

    t0 = time.perf_counter()
    renders = [render_context("paper", value_name=e["value"], n_items=6, n_options=9) for e in eps]
    # In sequential mode each episode runs start to finish before the next (the paper's loop);
    # the batched modes step `group_size` episodes together, as runs.evaluate's batch_size does
    # (the default run: 4). The work per episode is the same.
    g = 1 if mode == "sequential" else max(1, args.group_size or len(eps))
    groups = [list(range(k, min(k + g, len(eps)))) for k in range(0, len(eps), g)]
    convs: list[list] = [[] for _ in eps]
    goals: list[str] = [""] * len(eps)
    choices: list[list[str]] = [[] for _ in eps]
    setup_s = item_s = 0.0

    def run_items(group: list[int]) -> None:
        for k, item in enumerate(items):
            for i in group:
                text = renders[i].fill(
                    "item",
                    ordinal=renders[i].prompt_set.ordinals[k],
                    item_number=str(k + 1),
                    options=render_options(renders[i], np.asarray(item.options)),
                    goal=goals[i],
                )
                if logprob:
                    text += "\n" + renders[i].fill("letter_only")
                convs[i].append(HumanMessage(text))
            if logprob:
                lps = backend.choice_logprobs([convs[i] for i in group], list(letters))
                for i, lp in zip(group, lps, strict=True):
                    letter = max(lp, key=lambda c: lp[c])
                    choices[i].append(letter)
                    convs[i].append(AIMessage(letter))
            else:
                texts = call_generate(
                    [convs[i] for i in group],
                    [Sampling(args.temperature, 1.0, args.item_tokens, seed(eps[i], 3, k)) for i in group],
                )
                for i, text in zip(group, texts, strict=True):
                    choices[i].append(text)
                    convs[i].append(AIMessage(text))

    ops: dict[str, float] = {}
    for group in groups:
        ts = time.perf_counter()
        for i in group:
            convs[i] = [HumanMessage(renders[i].fill("induction"))]
        texts = call_generate(
            [convs[i] for i in group],
            [Sampling(args.temperature, 1.0, args.induction_tokens, seed(eps[i], 1)) for i in group],
        )
        for i, text in zip(group, texts, strict=True):
            convs[i] += [AIMessage(text), HumanMessage(renders[i].fill("role"))]
        with_goal = [i for i in group if eps[i]["goal"]]
        for i in with_goal:
            convs[i].append(HumanMessage(renders[i].fill("goal")))
        if with_goal:
            texts = call_generate(
                [convs[i] for i in with_goal],
                [Sampling(args.temperature, 1.0, args.goal_tokens, seed(eps[i], 2)) for i in with_goal],
            )
            for i, text in zip(with_goal, texts, strict=True):
                convs[i].append(AIMessage(text))
                goals[i] = text.strip()
        for i in group:
            if not eps[i]["goal"]:
                goals[i] = renders[i].fill("no_goal")
        setup_s += time.perf_counter() - ts
        ts = time.perf_counter()
        prof = (
            torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
            if args.profile
            else contextlib.nullcontext()
        )
        with prof:
            run_items(group)
        if args.profile:
            for ev in prof.key_averages():
                ops[ev.key] = ops.get(ev.key, 0.0) + ev.self_cpu_time_total / 1e6
        item_s += time.perf_counter() - ts
    run_s = time.perf_counter() - t0
    n_dec = len(eps) * len(items)
    lengths = [len(backend.encode(c)[0]) for c in convs]
    return {
        "mode": mode,
        "episodes": len(eps),
        "decisions": n_dec,
        "load_s": load_s,
        "setup_s": setup_s,
        "item_s": item_s,
        "run_s": run_s,
        "decisions_per_s": n_dec / item_s,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "stats": backend.stats,
        "final_context_tokens": [min(lengths), int(np.mean(lengths)), max(lengths)],
        "threads": torch.get_num_threads(),
        "model_id": backend.model_id,
        "choices": choices,
        "profile": dict(sorted(ops.items(), key=lambda kv: -kv[1])[:12]) if args.profile else None,
    }


def table(rows: list[dict[str, Any]]) -> str:
    base = next((r for r in rows if r["mode"] == "sequential"), rows[0])
    head = "| mode | decisions/s | x sequential | item phase s | run s | x sequential (run) | peak RSS MB | prompt tokens | computed | saved |"
    lines = [head, "|---" * (head.count("|") - 1) + "|"]
    for r in rows:
        s = r["stats"]
        lines.append(
            f"| {r['mode']} | {r['decisions_per_s']:.3f} | {r['decisions_per_s'] / base['decisions_per_s']:.1f} | "
            f"{r['item_s']:.1f} | {r['run_s']:.1f} | {base['run_s'] / r['run_s']:.1f} | {r['peak_rss_mb']:.0f} | "
            f"{s['prompt_tokens']} | {s['computed_tokens']} | {100 * s['savings']:.0f}% |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="2 values, 1 trial, short generations")
    p.add_argument(
        "--smoke",
        action="store_true",
        help="a check that the script runs, no benchmark: 1 episode (prosocial, goal on), replies of 8/8/4 tokens",
    )
    p.add_argument("--values", nargs="+", choices=VALUES, default=list(VALUES))
    p.add_argument("--trials", type=int, default=1, help="trials per value x goal condition (default 1)")
    policy = inspect.signature(GoalPromptedPolicy).parameters
    p.add_argument(
        "--induction-tokens",
        type=int,
        default=policy["induction_tokens"].default,
        help="value-induction reply length (default: GoalPromptedPolicy's, as in the default run)",
    )
    p.add_argument(
        "--goal-tokens",
        type=int,
        default=policy["goal_tokens"].default,
        help="goal reply length (default: GoalPromptedPolicy's)",
    )
    p.add_argument("--item-tokens", type=int, default=16, help="tokens generated per item in generate modes")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument(
        "--group-size",
        type=int,
        default=4,
        help="episodes stepped together in the batched modes (default 4, the default run's batch_size; 0: all)",
    )
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument(
        "--dtype",
        choices=("auto", "float32", "bfloat16"),
        default="auto",
        help="model dtype for every mode (auto: float32 on CPU, the default backend)",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="torch.profiler over each mode's item phase: the top operators' self time (slower)",
    )
    p.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    p.add_argument("--out", type=Path, default=ROOT / "results" / "bench" / "llm_cpu.json")
    p.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.trials < 1:
        p.error("--trials must be >= 1")
    if args.quick:
        args.values, args.trials = ["altruistic", "competitive"], 1
        args.induction_tokens, args.goal_tokens = 48, 24
    if args.smoke:
        args.values, args.trials = ["prosocial"], 1
        if "--modes" not in (argv if argv is not None else sys.argv[1:]):
            args.modes = ["sequential", "logprob+reuse"]  # the headline comparison only
        args.induction_tokens, args.goal_tokens, args.item_tokens = 8, 8, 4
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
    same = {}
    for r in rows:
        same[r["mode"]] = r["choices"]
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
    if "sequential" in same and "batched-generate" in same:
        agree = same["sequential"] == same["batched-generate"]
        print(f"sequential and batched generate gave identical replies: {agree}")
    for r in rows if args.profile else []:
        total = sum(r["profile"].values())
        print(f"\nprofile of {r['mode']}'s item phase (self time of the top operators, profiler on):")
        for op, sec in r["profile"].items():
            print(f"  {sec:7.2f} s {100 * sec / total:5.1f}%  {op}")
    if "batched-logprob" in same and "logprob+reuse" in same:
        agree = same["batched-logprob"] == same["logprob+reuse"]
        print(f"batched log-prob and log-prob + reuse chose identically: {agree}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"info": info, "rows": rows}, indent=1))
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
