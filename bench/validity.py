"""Validity of the numbers: coverage of every interval against simulated agents with known truth,
and the null-model bands of each instrument.

Produces the tables of docs/validity.md (run it and paste the output there):

1. Mean angle: coverage of the Student-t 95% interval (and, for comparison, of the percentile
   bootstrap it replaced) at n = 2, 5, 10, 20 episodes, softmax-utility agents on the 6 primary
   slider items; the truth is the exact mean by enumeration of 9^6 choice vectors.
2. Paired goal effect: coverage of the paired-t interval (and of Welch's unpaired one) with the
   goal on and off of a trial sharing random numbers; and of the Bonferroni rationality difference.
3. Position bias: under no order effect (index mean and 95th percentile, test rejection rate,
   noise floor) and with a letter effect (power, coverage of the index interval).
4. Fitted angle (scoring.fit): share reported, coverage of the reported intervals, consistent sets
   of maximisers, random choosers reported, on the slider and on dilemmas at the sample sizes a
   user runs, per agent temperature; and the minimum number of informative decisions (the
   coverage by decision count, fitted without a minimum).
5. Null bands: uniform and always-one-letter responders per instrument and order condition,
   for one episode and for the mean of 10.

Uses only numpy and the project. Usage: python bench/validity.py [--quick | --smoke] [--seed 0]
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable, Sequence

import numpy as np

from scenarios import load_instrument
from scoring.fit import fit_svo
from scoring.null import angle_distribution, null_bands
from scoring.simulate import dilemma_trajectories, sample_choices, slider_episode_angles, softmax_probs
from scoring.stats import goal_effect, position_bias, t_quantile

SLIDER = load_instrument("slider").subset("primary")
FULL = load_instrument("slider")
PAY = SLIDER.payoffs()
AGENTS = [
    (0.0, 3.0),
    (20.0, 10.0),
    (45.0, 3.0),
    (60.0, 10.0),
    (-45.0, 3.0),
    (90.0, 3.0),
    (90.0, 1.0),
    (45.0, 30.0),
]


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A markdown table."""
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def shared_uniforms(
    rng: np.random.Generator, shape: tuple[int, ...], share: float = 0.7
) -> tuple[np.ndarray, np.ndarray]:
    """Uniform draws for the two conditions of a trial (goal on/off, fixed/reversed order): they
    share the trial's seed, modelled as the same draw on a share of the items and fresh draws on
    the rest (the prompts differ, so the answers are correlated, not identical)."""
    common = rng.random(shape)
    a = np.where(rng.random(shape) < share, common, rng.random(shape))
    b = np.where(rng.random(shape) < share, common, rng.random(shape))
    return a, b


def slider_angles(probs: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Episode angles on the 6 primary items from uniform draws u (..., 6, 1) (inverse CDF)."""
    c = PAY[np.arange(6), np.minimum((u > np.cumsum(probs, 1)).sum(-1), 8)]
    return np.degrees(np.arctan2(c[..., 1].mean(-1) - 50, c[..., 0].mean(-1) - 50))


def true_mean(probs: np.ndarray) -> float:
    v, w = angle_distribution(SLIDER, probs)
    return float(v @ w)


def t_cover(a: np.ndarray, mu: float) -> tuple[float, float]:
    """Coverage of the Student-t 95% interval over the last axis, and the share with no interval."""
    n = a.shape[-1]
    m, s = a.mean(-1), a.std(-1, ddof=1)
    half = t_quantile(0.975, n - 1) * s / math.sqrt(n)
    return float(((s > 0) & (np.abs(m - mu) <= half)).mean()), float((s == 0).mean())


def boot_cover(a: np.ndarray, mu: float, rng: np.random.Generator, n_boot: int = 500) -> float:
    """Coverage of the percentile bootstrap 95% interval (the method these intervals replaced)."""
    r, n = a.shape
    idx = rng.integers(0, n, size=(n_boot, n))
    stats = a[:, idx].mean(-1)  # (r, n_boot)
    lo, hi = np.quantile(stats, [0.025, 0.975], axis=1)
    return float(((lo <= mu) & (mu <= hi) & (hi > lo)).mean())


def mean_angle_section(reps: int, rng: np.random.Generator) -> str:
    rows = []
    for angle, temp in AGENTS:
        p = softmax_probs(PAY, angle, temp)
        mu = true_mean(p)
        cells = []
        for n in (2, 5, 10, 20):
            a = slider_episode_angles(SLIDER, p, (reps, n), rng)
            cov, none = t_cover(a, mu)
            boot = boot_cover(a[: min(reps, 1000)], mu, rng)
            cells.append(f"{cov:.3f} ({none:.0%} none) / {boot:.2f}")
        rows.append([f"{angle:g} / T {temp:g}", f"{mu:.2f}", *cells])
    return table(["agent angle / temperature", "true mean", "n=2", "n=5", "n=10", "n=20"], rows)


def paired_section(reps: int, rng: np.random.Generator) -> str:
    rows = []
    for (a_on, t_on), (a_off, t_off) in [
        ((45.0, 5.0), (10.0, 5.0)),
        ((60.0, 10.0), (60.0, 10.0)),
        ((0.0, 3.0), (-45.0, 3.0)),
    ]:
        p_on, p_off = softmax_probs(PAY, a_on, t_on), softmax_probs(PAY, a_off, t_off)
        truth = true_mean(p_on) - true_mean(p_off)
        for n in (5, 10, 20):
            r_on, r_off = shared_uniforms(rng, (reps, n, 6, 1))
            ang = [slider_angles(p_on, r_on), slider_angles(p_off, r_off)]
            d = ang[0] - ang[1]
            paired, _ = t_cover(d, truth)
            va, vb = ang[0].var(-1, ddof=1) / n, ang[1].var(-1, ddof=1) / n
            df = (va + vb) ** 2 / np.maximum(va**2 / (n - 1) + vb**2 / (n - 1), 1e-300)
            q = np.array([t_quantile(0.975, float(x)) if x > 0 else np.inf for x in df])
            welch = float((np.abs(d.mean(-1) - truth) <= q * np.sqrt(va + vb)).mean())
            sub = min(reps, 400)
            rat = 0
            true_rat = None
            for i in range(sub):
                e = goal_effect(list(ang[0][i]), list(ang[1][i]), "prosocial", "interval")
                if true_rat is None:
                    from scoring import svo

                    f = svo.paper_scale(
                        svo.value_rationality(np.array([true_mean(p_on), true_mean(p_off)]), "prosocial")
                    )
                    true_rat = float(f[0] - f[1])
                ci = e["rationality_diff_ci"]
                rat += ci is not None and ci[0] - 1e-9 <= true_rat <= ci[1] + 1e-9
            corr = float(
                np.mean([np.corrcoef(x, y)[0, 1] for x, y in zip(ang[0][:200], ang[1][:200], strict=True)])
            )
            rows.append(
                [
                    f"{a_on:g}/T{t_on:g} vs {a_off:g}/T{t_off:g}",
                    n,
                    f"{truth:.2f}",
                    f"{corr:.2f}",
                    f"{paired:.3f}",
                    f"{welch:.3f}",
                    f"{rat / sub:.3f}",
                ]
            )
    return table(
        ["on vs off", "n", "true diff", "corr", "paired t", "Welch", "rationality diff (Bonferroni)"], rows
    )


def position_section(reps: int, rng: np.random.Generator) -> str:
    rows = []
    p = softmax_probs(PAY, 30.0, 8.0)
    for label, bias in [("no order effect", 0.0), ("letter effect 0.3", 0.3), ("letter effect 0.8", 0.8)]:
        fixed, rev = (1 - bias) * p, (1 - bias) * p
        fixed[:, 0] += bias
        rev[:, -1] += bias
        truth = abs(true_mean(fixed) - true_mean(rev))
        for n in (5, 10, 20):
            us = shared_uniforms(rng, (reps, n, 6, 1))  # fixed and reversed of a trial share the seed
            ang = [slider_angles(q, u) for q, u in zip((fixed, rev), us, strict=True)]
            res = [
                position_bias({"fixed": list(x), "reversed": list(y)}, n_perm=999, seed=i)
                for i, (x, y) in enumerate(zip(ang[0], ang[1], strict=True))
            ]
            idx = np.array([b["index"] for b in res])
            rej = np.mean([b["test"]["p_value"] <= 0.05 for b in res])
            floor = np.mean([b["test"]["noise_floor"] for b in res])
            cis = [b["index_ci"] for b in res]
            cov = np.mean([ci is not None and ci[0] - 1e-9 <= truth <= ci[1] + 1e-9 for ci in cis])
            rows.append(
                [
                    label,
                    n,
                    f"{truth:.2f}",
                    f"{idx.mean():.2f}",
                    f"{np.quantile(idx, 0.95):.2f}",
                    f"{floor:.2f}",
                    f"{rej:.3f}",
                    f"{cov:.3f}",
                ]
            )
    return table(
        [
            "agent",
            "trials per order",
            "true index",
            "index mean",
            "index 95th pct",
            "noise floor (mean)",
            "test rejects",
            "index CI covers",
        ],
        rows,
    )


def _covers(iv: Sequence[float], t: float) -> bool:
    lo, hi = iv
    return ((t - lo) % 360.0) <= (hi - lo) + 1e-9


def fit_rows(
    name: str,
    make: Callable[[float, float, int, int], list[dict]],
    agents: Sequence[tuple[float, float]],
    per_agent: int,
    seed: int,
    **fit_kwargs: object,
) -> list[list[object]]:
    """Fit every simulated data set; one row per agent temperature (0 = maximiser, inf = random)."""
    out: dict[float, dict[str, float]] = {}
    reasons: dict[str, int] = {}
    t0 = time.perf_counter()
    n_fits = 0
    for angle, temp in agents:
        s = out.setdefault(
            temp,
            {"n": 0, "rep": 0, "cov": 0, "width": 0.0, "cons": 0, "dec": 0, "narrow": 0, "narrow_cov": 0},
        )
        for i, d in enumerate(make(angle, temp, per_agent, seed)):
            f = fit_svo(d["options"], d["choices"], seed=i, **fit_kwargs)
            n_fits += 1
            s["n"] += 1
            s["dec"] += f.n_used
            if f.interval is not None:
                s["rep"] += 1
                s["cov"] += _covers(f.interval, angle)
                s["width"] += f.interval[1] - f.interval[0]
                if f.interval[1] - f.interval[0] <= 90.0:  # what a 90-degree width limit would keep
                    s["narrow"] += 1
                    s["narrow_cov"] += _covers(f.interval, angle)
            else:
                key = (f.reason or "").split(":")[0].split(" (")[0]
                reasons[key] = reasons.get(key, 0) + 1
            s["cons"] += f.consistent is not None and any(_covers(a, angle) for a in f.consistent)
    sec = (time.perf_counter() - t0) / max(n_fits, 1)
    rows = []
    for temp, s in sorted(out.items()):
        rep = s["rep"]
        kind = "random" if math.isinf(temp) else "maximiser" if temp == 0 else f"softmax T={temp:g}"
        rows.append(
            [
                name,
                kind,
                s["n"],
                f"{s['dec'] / s['n']:.0f}",
                f"{rep}/{s['n']}",
                f"{s['cov'] / rep:.3f}" if rep and kind != "random" else "-",
                f"{s['width'] / rep:.0f}" if rep else "-",
                f"{s['narrow_cov']}/{s['narrow']}" if kind != "random" else "-",
                f"{s['cons']}/{s['n']}" if kind == "maximiser" else "-",
                f"{sec:.2f}",
            ]
        )
    if reasons:
        top = sorted(reasons.items(), key=lambda kv: -kv[1])[:2]
        rows.append(
            [
                name,
                "refusals",
                sum(reasons.values()),
                "",
                "; ".join(f"{k} ({v})" for k, v in top),
                *[""] * (len(FIT_HEADER) - 5),
            ]
        )
    return rows


def _seed(seed: int, angle: float, temp: float) -> int:
    """A distinct seed per (seed, agent angle, agent temperature)."""
    return (seed * 1_000_003 + int(angle * 10) * 7919 + int(min(temp, 1e3) * 1000)) % 2**31


def _slider_data(items: str, episodes: int) -> Callable[[float, float, int, int], list[dict]]:
    inst = FULL if items == "all" else SLIDER
    pay = inst.payoffs()

    def make(angle: float, temp: float, count: int, seed: int) -> list[dict]:
        rng = np.random.default_rng([seed, int(angle * 100) % 2**31, int(min(temp, 1e6) * 100)])
        k = sample_choices(softmax_probs(pay, angle, temp), (count, episodes), rng)
        return [
            {
                "options": [pay[i] for _ in range(episodes) for i in range(len(pay))],
                "choices": list(row.reshape(-1)),
            }
            for row in k
        ]

    return make


def _dilemma_data(scenario: str, episodes: int) -> Callable[[float, float, int, int], list[dict]]:
    def make(angle: float, temp: float, count: int, seed: int) -> list[dict]:
        trajs = dilemma_trajectories(scenario, angle, temp, count * episodes, _seed(seed, angle, temp))
        out = []
        for j in range(count):
            part = trajs[j * episodes : (j + 1) * episodes]
            out.append(
                {
                    "options": [o for t in part for o in t["options"]],
                    "choices": [c for t in part for c in t["choices"]],
                }
            )
        return out

    return make


FIT_AGENTS = [
    (a, t)
    for a in (-135.0, -90.0, -45.0, 0.0, 30.0, 60.0, 90.0, 135.0, 180.0)
    for t in (0.0, 0.25, 0.5, 1.0, 2.0)
]
SLIDER_AGENTS = [(a, t) for a in (-45.0, 0.0, 20.0, 45.0, 60.0, 90.0) for t in (0.0, 3.0, 10.0, 30.0)]
RANDOM = [(0.0, math.inf)] * 5
FIT_HEADER = [
    "data",
    "agents",
    "fits",
    "decisions",
    "reported",
    "reported cover",
    "mean width",
    "of those <= 90 wide: cover",
    "consistent set holds truth",
    "s per fit",
]


def fit_section(per_agent: int, seed: int) -> str:
    rows = []
    for name, make, agents in [
        ("slider, 6 items x 1 episode", _slider_data("primary", 1), SLIDER_AGENTS),
        ("slider, 6 items x 10 episodes", _slider_data("primary", 10), SLIDER_AGENTS),
        ("slider, 15 items x 1 episode", _slider_data("all", 1), SLIDER_AGENTS),
        ("prisoner's dilemma, 20 rounds x 1", _dilemma_data("prisoners_dilemma_repeated", 1), FIT_AGENTS),
        ("prisoner's dilemma, 20 rounds x 5", _dilemma_data("prisoners_dilemma_repeated", 5), FIT_AGENTS),
        ("stag hunt, 10 rounds x 1", _dilemma_data("stag_hunt", 1), FIT_AGENTS),
        ("stag hunt, 10 rounds x 5", _dilemma_data("stag_hunt", 5), FIT_AGENTS),
        ("chicken, one-shot x 10", _dilemma_data("chicken", 10), FIT_AGENTS[:10]),
        ("public goods, 10 rounds x 1", _dilemma_data("public_goods", 1), FIT_AGENTS[:10]),
    ]:
        rows += fit_rows(name, make, agents + RANDOM, per_agent, seed)
        print(f"  fitted: {name}", flush=True)
    return table(FIT_HEADER, rows)


def min_informative_section(per_agent: int, seed: int) -> str:
    """Coverage of the reported intervals by the number of informative decisions (no minimum)."""
    rows = []
    for n in (2, 3, 4, 6, 9, 12):

        def make(angle: float, temp: float, count: int, s: int, n: int = n) -> list[dict]:
            rng = np.random.default_rng([s, n, int(angle * 100) % 2**31, int(temp * 100)])
            out = []
            for _ in range(count):
                items = rng.permutation(len(FULL.items))[:n]
                k = sample_choices(softmax_probs(FULL.payoffs()[items], angle, temp), (1,), rng)[0]
                out.append({"options": list(FULL.payoffs()[items]), "choices": list(k)})
            return out

        rows += fit_rows(f"slider, {n} items", make, SLIDER_AGENTS, per_agent, seed, min_informative=1)
    for n in (4, 6, 8, 10):

        def make_sh(angle: float, temp: float, count: int, s: int, n: int = n) -> list[dict]:
            return [
                {"options": d["options"][:n], "choices": d["choices"][:n]}
                for d in dilemma_trajectories("stag_hunt", angle, temp, count, _seed(s, angle, temp))
            ]

        rows += fit_rows(
            f"stag hunt, first {n} rounds", make_sh, FIT_AGENTS, per_agent, seed, min_informative=1
        )
    rows = [r for r in rows if r[1] != "refusals"]
    return table(FIT_HEADER, rows)


def null_section() -> str:
    """Uniform responders (one episode and the mean of 10) and always-one-letter responders per
    instrument and order. The 15-item slider gives the same bands as the 6 primary items (the
    angle uses those), and under permuted orders every letter responder is a uniform one."""
    rows = []
    for order in ("fixed", "reversed", "permuted"):
        for n in (1, 10):
            b = null_bands("slider", order, n)[0]
            shares = ", ".join(f"{k} {v:.1%}" for k, v in b["categories"].items() if v)
            rows.append(
                [
                    "slider",
                    order,
                    f"uniform, mean of {n}",
                    f"{b['mean']:.2f}",
                    f"{b['sd']:.2f}",
                    f"[{b['band'][0]:.2f}, {b['band'][1]:.2f}]",
                    shares,
                ]
            )
        if order != "permuted":
            letters = null_bands("slider", order, 1)[1:]
            angles = ", ".join(f"{b['responder'][-1]} {b['mean']:.2f}" for b in letters)
            cats = ", ".join(
                f"{b['responder'][-1]} {next(k for k, v in b['categories'].items() if v)[:3]}"
                for b in letters
            )
            rows.append(["slider", order, "always one letter", angles, "0", "-", cats])
    for order in ("fixed", "reversed", "permuted"):
        for b in null_bands("triple_dominance", order):
            if order == "permuted" and b["responder"] != "uniform":
                continue
            shares = ", ".join(f"{k} {v:.1%}" for k, v in b["types"].items())
            rows.append(["triple dominance", order, b["responder"], "-", "-", "-", shares])
    return table(["instrument", "order", "responder", "mean angle", "SD", "95% band", "shares"], rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer replications (about a tenth of the time)")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, to check that the script runs (tests)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    reps = 60 if args.smoke else 500 if args.quick else 4000
    per_agent = 1 if args.quick or args.smoke else 6
    if args.smoke:
        global AGENTS, FIT_AGENTS, SLIDER_AGENTS, RANDOM
        AGENTS, FIT_AGENTS, SLIDER_AGENTS, RANDOM = AGENTS[:1], FIT_AGENTS[:2], SLIDER_AGENTS[:1], RANDOM[:1]
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    print("## 1. Mean angle: Student-t coverage (no-interval share) / percentile bootstrap coverage\n")
    print(mean_angle_section(reps, rng), "\n", flush=True)
    print("## 2. Paired goal effect: coverage of 95% intervals\n")
    print(paired_section(30 if args.smoke else max(reps // 4, 200), rng), "\n", flush=True)
    print("## 3. Position bias (fixed vs reversed, paired by trial)\n")
    print(position_section(10 if args.smoke else max(reps // 10, 100), rng), "\n", flush=True)
    print("## 4. Fitted angle (scoring.fit)\n")
    print(fit_section(per_agent, args.seed), "\n", flush=True)
    print("## 4b. Minimum informative decisions (fits without a minimum)\n")
    print(min_informative_section(max(per_agent // 2, 1), args.seed), "\n", flush=True)
    print("## 5. Null bands\n")
    print(null_section(), "\n")
    mode = "--smoke" if args.smoke else "--quick" if args.quick else "full"
    print(f"total {time.perf_counter() - t0:.0f} s ({mode}, seed {args.seed})")


if __name__ == "__main__":
    main()
