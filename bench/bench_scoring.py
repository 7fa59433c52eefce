"""Scoring and environment throughput.

1. SVO angle + category for N six-item slider trajectories: one vectorised call (scoring.svo)
   against a per-trajectory Python loop like the paper's script (statistics.mean + math.atan per
   trajectory), measured in the same run. Target: >= 50x.
2. Environment steps/s with a scripted agent (raw SVOEnv, and with the scoring wrapper).

Usage: python bench/bench_scoring.py [--n 1000000] [--loop-n 100000]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np

from agents import EpisodeContext, UtilityAgent
from envs import SVOEnv
from scenarios import load_instrument
from scoring import SVOScoring, categorise, svo_angle


def paper_loop(chosen: np.ndarray) -> list[tuple[float, str]]:
    """The reference style: one trajectory at a time, statistics.mean and math.atan."""
    out = []
    for traj in chosen.tolist():
        ms = statistics.mean(a[0] for a in traj)
        mo = statistics.mean(a[1] for a in traj)
        angle = math.degrees(math.atan((mo - 50) / (ms - 50)))
        if angle >= 57.15:
            cat = "altruistic"
        elif angle >= 22.45:
            cat = "prosocial"
        elif angle >= -12.04:
            cat = "individualistic"
        else:
            cat = "competitive"
        out.append((angle, cat))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000, help="trajectories for the vectorised call")
    ap.add_argument("--loop-n", type=int, default=100_000, help="trajectories timed in the Python loop")
    ap.add_argument("--episodes", type=int, default=2000, help="episodes for the env steps/s figure")
    args = ap.parse_args()

    pay = load_instrument("slider").subset("primary").payoffs()
    rng = np.random.default_rng(0)
    ks = rng.integers(0, 9, size=(args.n, 6))
    chosen = pay[np.arange(6), ks]  # (n, 6, 2)

    t0 = time.perf_counter()
    angles = svo_angle(chosen[..., 0], chosen[..., 1])
    cats = categorise(angles)
    t_vec = time.perf_counter() - t0

    m = min(args.loop_n, args.n)
    t0 = time.perf_counter()
    ref = paper_loop(chosen[:m])
    t_loop = (time.perf_counter() - t0) * args.n / m  # per-trajectory cost is constant
    assert np.allclose([a for a, _ in ref], angles[:m]) and [c for _, c in ref] == list(cats[:m])

    print(f"Scoring {args.n:,} six-item trajectories (angle + category)")
    print(f"{'method':<38}{'seconds':>10}{'traj/s':>14}{'ratio':>8}")
    print(
        f"{'paper-style loop (timed on ' + format(m, ',') + ', scaled)':<38}{t_loop:>10.2f}{args.n / t_loop:>14,.0f}{1:>8.1f}"
    )
    print(
        f"{'vectorised scoring.svo (one call)':<38}{t_vec:>10.2f}{args.n / t_vec:>14,.0f}{t_loop / t_vec:>8.1f}"
    )
    print(f"speed-up: {t_loop / t_vec:.0f}x (target >= 50x)")

    agent = UtilityAgent(value="prosocial")
    for label, wrap in (("SVOEnv", False), ("SVOEnv + SVOScoring", True)):
        env = SVOEnv(option_order="permuted")
        env = SVOScoring(env, target_value="prosocial") if wrap else env
        ctx = EpisodeContext("slider", 6, 9, seed=0)
        state = agent.start(ctx)
        steps = 0
        t0 = time.perf_counter()
        for ep in range(args.episodes):
            obs, _ = env.reset(seed=ep)
            done = False
            while not done:
                d, state = agent.act(obs, state)
                obs, _, term, trunc, _ = env.step(d.action)
                steps += 1
                done = term or trunc
        dt = time.perf_counter() - t0
        print(f"{label:<26} with ideal-type agent: {steps / dt:>10,.0f} steps/s ({args.episodes} episodes)")


if __name__ == "__main__":
    main()
