"""Statistics over many scored episodes: pure functions, seeded, no global random state.

Conventions:
- Every rate is a `Rate` with its numerator and denominator; an empty denominator gives None.
- Angles come from `scoring.episode.score_episode`; an episode with an unanswered primary item has
  no angle (None/NaN) and is left out of angle statistics but counted in the rates (a category
  "hit" needs a defined category, so such an episode counts as a miss).
- The paper averages the per-trial angles and scores the mean: `rationality_*` below are the
  value rationality of the mean angle (distance in degrees, and the 0-60 score); the mean of the
  per-episode 0-60 scores is reported beside it. Slider angles lie in [-16.26, 61.39] and never
  wrap, so their mean is arithmetic; angles that can wrap (fitted angles, populations) use
  `circular_summary`.
- Intervals (`Interval`): the mean angle gets a Student-t interval (its coverage at n = 2..20 is
  measured in bench/validity.py and tested in tests/test_stats.py; the percentile bootstrap it
  replaces covered 0.83-0.91 at n = 10). A function of the mean (the rationality) gets the range of
  that function over the mean's interval, which covers whenever the mean's interval does. No
  interval is ever zero-width: with fewer than two observations, or with no variation, the
  interval is None and `reason` says why ("no variation in n=K").
- Paired design: the orders and goal conditions of one trial share seeds, so differences between
  them are analysed as paired differences per trial (paired t); only when fewer than two complete
  pairs exist does a difference fall back to Welch's unpaired t, and the output says which.
- Deterministic agents (temperature 0, scripted) give identical trials on identical inputs. With
  `dedupe=True`, trials with the same observation key (shown order + choices) count once.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from scoring import svo

__all__ = [
    "Interval",
    "Rate",
    "cell_summary",
    "circular_summary",
    "distinct_indices",
    "goal_effect",
    "mean_interval",
    "paired_difference",
    "position_bias",
    "rate",
    "rationality_interval",
    "stable_seed",
    "t_quantile",
]

DEFAULT_LEVEL = 0.95
#: Largest number of within-trial relabellings enumerated exactly by `position_bias`.
MAX_EXACT_PERMUTATIONS = 100_000


@dataclass(frozen=True)
class Rate:
    """k of n, with the proportion (None when n == 0)."""

    numerator: int
    denominator: int

    @property
    def value(self) -> float | None:
        return None if self.denominator == 0 else self.numerator / self.denominator

    def as_dict(self) -> dict[str, Any]:
        v = self.value
        return {"k": self.numerator, "n": self.denominator, "rate": None if v is None else round(v, 6)}

    def __str__(self) -> str:
        v = self.value
        return f"{self.numerator}/{self.denominator}" + ("" if v is None else f" ({v:.0%})")


def rate(flags: Sequence[bool] | np.ndarray) -> Rate:
    """Rate of True among `flags`."""
    a = np.asarray(flags, dtype=bool)
    return Rate(int(a.sum()), int(a.size))


def stable_seed(*parts: Any) -> int:
    """A 63-bit seed from any JSON-like parts, stable across processes (no hash randomisation)."""
    import hashlib

    h = hashlib.sha256(repr(parts).encode("utf-8")).digest()
    return int.from_bytes(h[:8], "little") >> 1


def _f(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else round(x, 6) + 0.0  # + 0.0 turns -0.0 into 0.0


# -- Student t quantiles (numpy/stdlib only: scipy is not a dependency) ---------------------------


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularised incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    lbt = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(lbt) * _betacf(a, b, x) / a
    return 1.0 - math.exp(lbt) * _betacf(b, a, 1.0 - x) / b


def _t_sf(t: float, df: float) -> float:
    """P(T > t) for t >= 0, Student t with df degrees of freedom."""
    return 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))


@lru_cache(maxsize=4096)
def t_quantile(p: float, df: float) -> float:
    """Quantile of Student's t distribution (p in (0, 1), df > 0; df may be fractional)."""
    if not 0.0 < p < 1.0 or not df > 0:
        raise ValueError(f"t_quantile needs 0 < p < 1 and df > 0, got p={p}, df={df}")
    if p == 0.5:
        return 0.0
    q = 1.0 - p if p > 0.5 else p  # lower tail mass
    lo, hi = 0.0, 1.0
    while _t_sf(hi, df) > q:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if _t_sf(mid, df) > q:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-13 * max(1.0, hi):
            break
    t = 0.5 * (lo + hi)
    return t if p > 0.5 else -t


# -- intervals ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    """An estimate with its interval; lo/hi are None when there is no interval, and `reason` says why.

    method: how the interval was made ("student-t", "paired-t", "welch-t", "range over ...").
    """

    estimate: float | None
    lo: float | None
    hi: float | None
    level: float
    method: str
    n: int
    reason: str | None = None

    @property
    def ci(self) -> tuple[float, float] | None:
        return None if self.lo is None or self.hi is None else (self.lo, self.hi)

    def as_dict(self) -> dict[str, Any]:
        ci = self.ci
        return {
            "estimate": _f(self.estimate),
            "ci": None if ci is None else [_f(ci[0]), _f(ci[1])],
            "level": self.level,
            "method": self.method,
            "n": self.n,
            "reason": self.reason,
        }


def _clean(x: Sequence[float | None] | np.ndarray) -> np.ndarray:
    a = np.asarray(
        [np.nan if v is None else v for v in np.asarray(x, dtype=object).ravel()], dtype=np.float64
    )
    return a[~np.isnan(a)]


def _no_interval(a: np.ndarray, what: str = "") -> str | None:
    n = a.size
    if n < 2:
        return f"n={n}{what}: an interval needs at least 2 observations"
    if np.ptp(a) == 0.0:
        return f"no variation in n={n}{what}"
    return None


def mean_interval(x: Sequence[float | None] | np.ndarray, level: float = DEFAULT_LEVEL) -> Interval:
    """Student-t interval of the mean of x (None/NaN dropped): mean +- t(level, n-1) * sd / sqrt(n).

    No interval (lo = hi = None, with `reason`) with fewer than two values or when all are equal:
    a zero-width interval would claim certainty that n equal values do not give.
    """
    a = _clean(x)
    est = float(a.mean()) if a.size else None
    why = _no_interval(a)
    if why is not None:
        return Interval(est, None, None, level, "student-t", int(a.size), why)
    half = t_quantile(0.5 + level / 2.0, a.size - 1) * _sd(a) / math.sqrt(a.size)
    if not half > 0.0 or not math.isfinite(half):  # differences below floating-point resolution
        return Interval(est, None, None, level, "student-t", int(a.size), f"no variation in n={a.size}")
    return Interval(est, est - half, est + half, level, "student-t", int(a.size))


def _sd(a: np.ndarray) -> float:
    """Sample SD, computed on scaled values so that tiny spreads do not underflow."""
    scale = float(np.abs(a).max())
    return float((a / scale).std(ddof=1) * scale) if scale > 0 else 0.0


def _rationality_breaks(target: str, convention: str) -> list[float]:
    if convention == "interval":
        lo, hi = svo.load_values()[target].bounds()
        lo, hi = max(lo, -180.0), min(hi, 180.0)
        # the distance to the nearer bound switches bound half way round the outside of the arc
        b = [lo, hi, 0.5 * (lo + hi) + 180.0]
    else:
        from scenarios import load_instrument

        b = [svo.ideal_type_angle(load_instrument("slider").subset("primary"), target)]
    return b + [x + 180.0 for x in b]


def _range_over(f, lo: float, hi: float, breaks: Sequence[float]) -> tuple[float, float]:
    """Min and max of a continuous piecewise-linear angle function over [lo, hi]."""
    pts = [lo, hi]
    for b in breaks:
        k = math.ceil((lo - b) / 360.0)
        while b + 360.0 * k <= hi:
            pts.append(b + 360.0 * k)
            k += 1
    vals = np.asarray(f(np.asarray(pts)), dtype=np.float64)
    return float(vals.min()), float(vals.max())


def rationality_interval(angle: Interval, target: str, convention: str = "interval") -> Interval:
    """Value rationality (0-60) of the mean angle, with the range of the rationality over the
    angle's interval as its interval: it contains the true rationality whenever the angle interval
    contains the true mean, so its coverage is at least the angle interval's."""

    def f(a):
        return svo.paper_scale(svo.value_rationality(a, target, convention))

    method = "range over the mean angle's interval"
    est = None if angle.estimate is None else float(f(angle.estimate))
    if angle.ci is None:
        return Interval(est, None, None, angle.level, method, angle.n, angle.reason)
    lo, hi = _range_over(f, *angle.ci, _rationality_breaks(target, convention))
    return Interval(est, lo, hi, angle.level, method, angle.n)


# -- paired differences ---------------------------------------------------------------------------


Aligned = Mapping[Hashable, float | None] | Sequence[float | None]


def _as_map(x: Aligned) -> dict[Hashable, float]:
    items = x.items() if isinstance(x, Mapping) else enumerate(x)
    out = {}
    for k, v in items:
        if v is not None and not math.isnan(float(v)):
            out[k] = float(v)
    return out


def _welch(a: np.ndarray, b: np.ndarray, level: float) -> Interval:
    est = float(b.mean() - a.mean()) if a.size and b.size else None
    n = int(a.size + b.size)
    if a.size < 2 or b.size < 2:
        return Interval(
            est, None, None, level, "welch-t", n, f"unpaired groups of {a.size} and {b.size}: each needs 2"
        )
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    if va + vb == 0.0:
        return Interval(est, None, None, level, "welch-t", n, f"no variation in n={a.size} and n={b.size}")
    df = (va + vb) ** 2 / ((va**2 / (a.size - 1) if va else 0.0) + (vb**2 / (b.size - 1) if vb else 0.0))
    half = t_quantile(0.5 + level / 2.0, df) * math.sqrt(va + vb)
    if not half > 0.0 or not math.isfinite(half):
        return Interval(est, None, None, level, "welch-t", n, f"no variation in n={a.size} and n={b.size}")
    return Interval(est, est - half, est + half, level, "welch-t", n)


def paired_difference(a: Aligned, b: Aligned, level: float = DEFAULT_LEVEL) -> dict[str, Any]:
    """Mean of b - a over trials, with a paired-t interval.

    a, b: one value per trial, as mappings trial -> value or as sequences aligned by trial (index =
    trial); None/NaN = missing. Trials with both values form pairs. With at least two pairs the
    interval is the paired t on their differences (trials with one value are left out and
    counted); otherwise Welch's unpaired t on all values. Returns JSON-ready: diff, ci, level,
    method ("paired-t" | "welch-t"), n_pairs, n_a, n_b, n_unpaired (values left out), reason.
    """
    ma, mb = _as_map(a), _as_map(b)
    keys = [k for k in ma if k in mb]
    if len(keys) >= 2:
        d = np.array([mb[k] - ma[k] for k in keys])
        iv = mean_interval(d, level)
        iv = Interval(
            iv.estimate, iv.lo, iv.hi, level, "paired-t", len(keys), _no_interval(d, " paired differences")
        )
    else:
        iv = _welch(np.array(list(ma.values())), np.array(list(mb.values())), level)
    out = iv.as_dict()
    return {
        "diff": out["estimate"],
        "ci": out["ci"],
        "level": level,
        "method": iv.method,
        "n_pairs": len(keys),
        "n_a": len(ma),
        "n_b": len(mb),
        "n_unpaired": (len(ma) + len(mb) - 2 * len(keys)) if iv.method == "paired-t" else 0,
        "reason": iv.reason,
    }


# -- circular statistics ------------------------------------------------------------------------


def circular_summary(angles: Sequence[float | None] | np.ndarray) -> dict[str, Any]:
    """Circular mean (degrees, in (-180, 180]), mean resultant length R (0 = spread evenly, 1 =
    all equal) and circular standard deviation sqrt(-2 ln R) in degrees, of angles in degrees.

    Use wherever angles can wrap (fitted angles, population summaries). The arithmetic mean of
    {23.15, -157.7} is -67.3, a direction neither points to; the two are nearly opposite, and the
    circular summary says so: mean 112.7 with R = 0.0074 (no meaningful common direction).
    mean is None when R is 0.
    """
    a = np.radians(_clean(angles))
    n = int(a.size)
    if n == 0:
        return {"n": 0, "mean": None, "resultant_length": None, "circular_sd": None}
    c, s = float(np.cos(a).mean()), float(np.sin(a).mean())
    r = math.hypot(c, s)
    r = min(r, 1.0)
    mean = None if r < 1e-12 else float(svo.wrap_angle(math.degrees(math.atan2(s, c))))
    sd = float(math.degrees(math.sqrt(-2.0 * math.log(r)))) if r > 0 else float("inf")
    return {
        "n": n,
        "mean": _f(mean),
        "resultant_length": _f(r),
        "circular_sd": _f(sd) if math.isfinite(sd) else None,
    }


def distinct_indices(keys: Sequence[Hashable]) -> list[int]:
    """Indices of the first occurrence of each distinct key, in order."""
    seen: set = set()
    out = []
    for i, k in enumerate(keys):
        if k not in seen:
            seen.add(k)
            out.append(i)
    return out


def _angles(scores: Sequence[Mapping[str, Any]]) -> np.ndarray:
    return _clean([s.get("angle") for s in scores])


def cell_summary(
    scores: Sequence[Mapping[str, Any]],
    target: str | None,
    *,
    observation_keys: Sequence[Hashable] | None = None,
    dedupe: bool = False,
    level: float = DEFAULT_LEVEL,
) -> dict[str, Any]:
    """Statistics of one condition cell from its episodes' scores (`score_episode` dicts).

    observation_keys: one hashable per episode identifying its observation (for n_distinct and
    dedupe); by default every episode is distinct. Returns JSON-ready values:
    - n_episodes, n_distinct, n_used, deduplicated, n_angle (episodes with an angle);
    - angle_mean, angle_sd, angle_ci ([lo, hi] Student t at `level`, or None), angle_ci_method,
      angle_ci_reason (why there is no interval: "no variation in n=K", too few);
    - category_of_mean; invalid, transitive, hit (k/n rates); vector_length_mean;
    - with a target, per convention c in ("interval", "ideal"): distance_c and rationality_c of the
      mean angle, episode_rationality_c_mean, rationality_c_ci (the range of the rationality over
      the angle interval, so at least as likely to cover) and rationality_c_ci_reason.
    """
    keys = list(observation_keys) if observation_keys is not None else list(range(len(scores)))
    if len(keys) != len(scores):
        raise ValueError(f"{len(keys)} observation keys for {len(scores)} scores")
    distinct = distinct_indices(keys)
    used = [scores[i] for i in distinct] if dedupe else list(scores)
    angles = _angles(used)
    out: dict[str, Any] = {
        "n_episodes": len(scores),
        "n_distinct": len(distinct),
        "n_used": len(used),
        "deduplicated": bool(dedupe),
        "n_angle": int(angles.size),
    }
    iv = mean_interval(angles, level)
    out["angle_mean"] = _f(iv.estimate)
    out["angle_sd"] = _f(angles.std(ddof=1)) if angles.size > 1 else None
    out["angle_ci"] = iv.as_dict()["ci"]
    out["angle_ci_method"] = iv.method
    out["angle_ci_reason"] = iv.reason
    out["category_of_mean"] = str(svo.categorise(iv.estimate)) if angles.size else svo.UNDEFINED
    asked = sum(int(s.get("asked", 0)) for s in used)
    answered = sum(int(s.get("answered", 0)) for s in used)
    out["invalid"] = Rate(asked - answered, asked).as_dict()
    has_trans = [s for s in used if "transitive" in s]
    out["transitive"] = rate([bool(s["transitive"]) for s in has_trans]).as_dict() if has_trans else None
    vl = _clean([s.get("vector_length") for s in used])
    out["vector_length_mean"] = _f(vl.mean()) if vl.size else None
    if target is not None:
        out["target"] = target
        out["hit"] = rate([bool(s.get("hit")) for s in used]).as_dict()
        for conv in ("interval", "ideal"):
            if angles.size:
                d = float(svo.value_rationality(iv.estimate, target, conv))
                out[f"distance_{conv}"] = _f(d)
                per = svo.paper_scale(svo.value_rationality(angles, target, conv))
                out[f"episode_rationality_{conv}_mean"] = _f(per.mean())
            else:
                out[f"distance_{conv}"] = out[f"episode_rationality_{conv}_mean"] = None
            r = rationality_interval(iv, target, conv)
            out[f"rationality_{conv}"] = _f(r.estimate)
            out[f"rationality_{conv}_ci"] = r.as_dict()["ci"]
            out[f"rationality_{conv}_ci_reason"] = r.reason
    return out


def goal_effect(
    angles_on: Aligned,
    angles_off: Aligned,
    target: str,
    convention: str = "interval",
    *,
    level: float = DEFAULT_LEVEL,
) -> dict[str, Any] | None:
    """Effect of the goal prompt, paired by trial (goal on and off of one trial share a seed).

    angles_on / angles_off: per trial (mapping trial -> angle, or sequences aligned by trial).
    Returns None when either side has no angle; otherwise JSON-ready:
    - angle_diff (mean on - off), angle_diff_ci, angle_diff_method ("paired-t", or "welch-t" when
      fewer than two trials have both), angle_diff_reason, n_pairs, n_on, n_off;
    - rationality_on / rationality_off (0-60, of each mean angle), rationality_diff and
      rationality_diff_ci: the range of f(on) - f(off) over the two means' Student-t intervals at
      level 1 - (1 - level) / 2 each (Bonferroni, so coverage >= level), rationality_diff_method,
      rationality_diff_reason.
    """
    on, off = _as_map(angles_on), _as_map(angles_off)
    if not on or not off:
        return None
    pd_ = paired_difference(off, on, level)
    bonf = 1.0 - (1.0 - level) / 2.0
    a_on, a_off = mean_interval(list(on.values()), bonf), mean_interval(list(off.values()), bonf)

    def f(a):
        return svo.paper_scale(svo.value_rationality(a, target, convention))

    r_on, r_off = float(f(a_on.estimate)), float(f(a_off.estimate))
    ci, why = None, a_on.reason or a_off.reason
    if a_on.ci is not None and a_off.ci is not None:
        brk = _rationality_breaks(target, convention)
        lo_on, hi_on = _range_over(f, *a_on.ci, brk)
        lo_off, hi_off = _range_over(f, *a_off.ci, brk)
        ci = [_f(lo_on - hi_off), _f(hi_on - lo_off)]
    return {
        "target": target,
        "convention": convention,
        "level": level,
        "n_on": len(on),
        "n_off": len(off),
        "n_pairs": pd_["n_pairs"],
        "angle_diff": pd_["diff"],
        "angle_diff_ci": pd_["ci"],
        "angle_diff_method": pd_["method"],
        "angle_diff_reason": pd_["reason"],
        "rationality_on": _f(r_on),
        "rationality_off": _f(r_off),
        "rationality_diff": _f(r_on - r_off),
        "rationality_diff_ci": ci,
        "rationality_diff_method": "range over both means' Student-t intervals (Bonferroni)",
        "rationality_diff_reason": None if ci is not None else why,
    }


def _relabel_index(means: np.ndarray) -> np.ndarray:
    return means.max(axis=-1) - means.min(axis=-1)


def _order_permutation_test(a: np.ndarray, level: float, n_perm: int, seed: int) -> dict[str, Any]:
    """Within-trial relabelling test of "no order effect" for the index (range of order means).

    a: (n_trials, m_orders) complete rows. Under the null the order labels of one trial are
    exchangeable; every relabelling is enumerated when there are at most MAX_EXACT_PERMUTATIONS,
    else n_perm random ones are drawn (plus the observed one).
    """
    n, m = a.shape
    perms = np.array(list(itertools.permutations(range(m))))
    total = len(perms) ** n
    observed = float(_relabel_index(a.mean(axis=0)))
    if total <= MAX_EXACT_PERMUTATIONS:
        k = len(perms)
        sel = (np.arange(total, dtype=np.int64)[:, None] // k ** np.arange(n, dtype=np.int64)) % k
        method, count = "exact within-trial relabelling", total
    else:
        rng = np.random.default_rng(seed)
        sel = rng.integers(0, len(perms), size=(n_perm, n))
        sel = np.vstack([np.zeros((1, n), dtype=np.int64), sel])  # the identity: the observed labels
        method, count = "Monte Carlo within-trial relabelling", n_perm
    cols = perms[sel]  # (P, n, m)
    relabelled = np.take_along_axis(np.broadcast_to(a, cols.shape), cols, axis=-1)
    dist = _relabel_index(relabelled.mean(axis=1))
    tol = 1e-9 * max(1.0, abs(observed))
    p = float((dist >= observed - tol).mean())
    return {
        "method": method,
        "n_relabellings": int(count),
        "p_value": _f(p),
        "noise_floor": _f(np.quantile(dist, level, method="higher")),
        "noise_mean": _f(dist.mean()),
    }


def position_bias(
    angles_by_order: Mapping[str, Aligned],
    *,
    level: float = DEFAULT_LEVEL,
    n_perm: int = 9999,
    seed: int = 0,
) -> dict[str, Any] | None:
    """How far the mean angle moves when only the option order changes, paired by trial.

    angles_by_order: order condition -> per-trial angles (mapping trial -> angle, or sequences
    aligned by trial). Trials with an angle under every order are complete; with at least two,
    everything below uses them only (paired), otherwise all angles (unpaired, no test).
    Returns None with fewer than two order conditions that have angles; otherwise JSON-ready:
    - index: range (max - min) of the order means, degrees; means, n (per order); paired (bool),
      n_trials (complete trials used);
    - index_ci: an interval for the index: for two orders the range of |x| over the paired-t
      interval of their difference; for more, from Bonferroni-adjusted pairwise intervals (each
      at 1 - (1 - level) / n_pairs), so coverage >= level; index_ci_reason when None;
    - test: the within-trial relabelling test of "no order effect" (p_value; method, exact when
      the relabellings are few), with noise_floor: the `level` quantile of the index under that
      null (what order noise alone produces; the index of a mean difference is biased upward) and
      noise_mean;
    - pairs: per pair of orders, `paired_difference` of the second minus the first.
    A pure first-letter chooser gives 30.47 (fixed) vs 14.74 (reversed): index 15.73.
    """
    maps = {k: _as_map(v) for k, v in angles_by_order.items()}
    maps = {k: v for k, v in maps.items() if v}
    if len(maps) < 2:
        return None
    names = list(maps)
    complete = [t for t in maps[names[0]] if all(t in maps[o] for o in names)]
    paired = len(complete) >= 2
    if paired:
        a = np.array([[maps[o][t] for o in names] for t in complete])
        means = dict(zip(names, a.mean(axis=0), strict=True))
    else:
        means = {o: float(np.mean(list(maps[o].values()))) for o in names}
    n_pairs_orders = len(names) * (len(names) - 1) // 2
    pair_level = 1.0 - (1.0 - level) / n_pairs_orders
    pairs, lows, highs, why = [], [], [], None
    for i, x in enumerate(names):
        for y in names[i + 1 :]:
            src = (
                ({t: maps[x][t] for t in complete}, {t: maps[y][t] for t in complete})
                if paired
                else (maps[x], maps[y])
            )
            pairs.append({"from": x, "to": y, **paired_difference(*src, level)})
            adj = paired_difference(*src, pair_level) if n_pairs_orders > 1 else pairs[-1]
            if adj["ci"] is None:
                why = adj["reason"]
                continue
            lo, hi = adj["ci"]
            lows.append(0.0 if lo <= 0.0 <= hi else min(abs(lo), abs(hi)))
            highs.append(max(abs(lo), abs(hi)))
    index = max(means.values()) - min(means.values())
    full = len(lows) == n_pairs_orders
    out: dict[str, Any] = {
        "index": _f(index),
        "index_ci": [_f(max(lows)), _f(max(highs))] if full else None,
        "index_ci_reason": None if full else why,
        "level": level,
        "means": {k: _f(v) for k, v in means.items()},
        "n": {k: len(v) for k, v in maps.items()},
        "paired": paired,
        "n_trials": len(complete),
        "test": _order_permutation_test(a, level, n_perm, seed) if paired else None,
        "pairs": pairs,
    }
    return out
