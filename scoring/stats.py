"""Statistics over many scored episodes: pure functions, seeded, no global random state.

Conventions:
- Every rate is a `Rate` with its numerator and denominator; an empty denominator gives None.
- Angles come from `scoring.episode.score_episode`; an episode with an unanswered primary item has
  no angle (None/NaN) and is left out of angle statistics but counted in the rates (a category
  "hit" needs a defined category, so such an episode counts as a miss).
- The paper averages the per-trial angles and scores the mean: `rationality_*` below are the
  value rationality of the mean angle (distance in degrees, and the 0-60 score); the mean of the
  per-episode 0-60 scores is reported beside it.
- Intervals are percentile bootstrap intervals (resampling episodes), seeded by the caller. An
  interval needs at least two observations; otherwise it is None.
- Deterministic agents (temperature 0, scripted) give identical trials on identical inputs. With
  `dedupe=True`, trials with the same observation key (shown order + choices) count once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from scoring import svo

__all__ = [
    "Rate",
    "bootstrap_ci",
    "cell_summary",
    "distinct_indices",
    "goal_effect",
    "position_bias",
    "rate",
    "stable_seed",
]

DEFAULT_N_BOOT = 2000
DEFAULT_LEVEL = 0.95


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


Statistic = Callable[[np.ndarray], np.ndarray]


def bootstrap_ci(
    samples: Sequence[float] | np.ndarray,
    statistic: Statistic = lambda x: x.mean(axis=-1),
    n_boot: int = DEFAULT_N_BOOT,
    level: float = DEFAULT_LEVEL,
    seed: int = 0,
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of `statistic` (vectorised over the last axis).

    Returns None with fewer than two samples (no spread to resample).
    """
    x = np.asarray(samples, dtype=np.float64)
    if x.size < 2:
        return None
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_boot, x.size))
    stats = statistic(x[idx])
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(stats, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def _diff_ci(
    a: np.ndarray, b: np.ndarray, statistic: Statistic, n_boot: int, level: float, seed: int
) -> tuple[float, float] | None:
    """Interval of statistic(a) - statistic(b), resampling each group independently."""
    if a.size < 1 or b.size < 1 or a.size + b.size < 3:
        return None
    rng = np.random.default_rng(seed)
    sa = statistic(a[rng.integers(0, a.size, size=(n_boot, a.size))])
    sb = statistic(b[rng.integers(0, b.size, size=(n_boot, b.size))])
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(sa - sb, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def distinct_indices(keys: Sequence[Hashable]) -> list[int]:
    """Indices of the first occurrence of each distinct key, in order."""
    seen: set = set()
    out = []
    for i, k in enumerate(keys):
        if k not in seen:
            seen.add(k)
            out.append(i)
    return out


def _rationality_stat(target: str, convention: str) -> Statistic:
    def stat(angles: np.ndarray) -> np.ndarray:
        return svo.paper_scale(svo.value_rationality(angles.mean(axis=-1), target, convention))

    return stat


def _angles(scores: Sequence[Mapping[str, Any]]) -> np.ndarray:
    a = np.array([np.nan if s.get("angle") is None else s["angle"] for s in scores], dtype=np.float64)
    return a[~np.isnan(a)]


def cell_summary(
    scores: Sequence[Mapping[str, Any]],
    target: str | None,
    *,
    observation_keys: Sequence[Hashable] | None = None,
    dedupe: bool = False,
    n_boot: int = DEFAULT_N_BOOT,
    level: float = DEFAULT_LEVEL,
    seed: int = 0,
) -> dict[str, Any]:
    """Statistics of one condition cell from its episodes' scores (`score_episode` dicts).

    observation_keys: one hashable per episode identifying its observation (for n_distinct and
    dedupe); by default every episode is distinct. Returns JSON-ready values: counts, the mean
    angle with its interval, category of the mean, rates (k/n) for category hits, invalid answers
    and transitivity, mean vector length, and value rationality of the mean angle under both
    conventions (distance in degrees and 0-60 score, the default-convention score with interval).
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
    mean = float(angles.mean()) if angles.size else float("nan")
    ci = bootstrap_ci(angles, n_boot=n_boot, level=level, seed=seed)
    out["angle_mean"] = _f(mean)
    out["angle_sd"] = _f(angles.std(ddof=1)) if angles.size > 1 else None
    out["angle_ci"] = None if ci is None else [_f(ci[0]), _f(ci[1])]
    out["category_of_mean"] = str(svo.categorise(mean)) if angles.size else svo.UNDEFINED
    asked = sum(int(s.get("asked", 0)) for s in used)
    answered = sum(int(s.get("answered", 0)) for s in used)
    out["invalid"] = Rate(asked - answered, asked).as_dict()
    has_trans = [s for s in used if "transitive" in s]
    out["transitive"] = rate([bool(s["transitive"]) for s in has_trans]).as_dict() if has_trans else None
    vl = np.array([s["vector_length"] for s in used if s.get("vector_length") is not None], dtype=np.float64)
    out["vector_length_mean"] = _f(vl.mean()) if vl.size else None
    if target is not None:
        out["target"] = target
        out["hit"] = rate([bool(s.get("hit")) for s in used]).as_dict()
        for conv in ("interval", "ideal"):
            if angles.size:
                d = float(svo.value_rationality(mean, target, conv))
                out[f"distance_{conv}"] = _f(d)
                out[f"rationality_{conv}"] = _f(svo.paper_scale(d))
                per = svo.paper_scale(svo.value_rationality(angles, target, conv))
                out[f"episode_rationality_{conv}_mean"] = _f(per.mean())
                rci = bootstrap_ci(angles, _rationality_stat(target, conv), n_boot, level, seed + 1)
                out[f"rationality_{conv}_ci"] = None if rci is None else [_f(rci[0]), _f(rci[1])]
            else:
                for k in ("distance", "rationality", "episode_rationality"):
                    out[f"{k}_{conv}" + ("_mean" if k == "episode_rationality" else "")] = None
                out[f"rationality_{conv}_ci"] = None
    return out


def position_bias(
    angles_by_order: Mapping[str, Sequence[float]],
    *,
    n_boot: int = DEFAULT_N_BOOT,
    level: float = DEFAULT_LEVEL,
    seed: int = 0,
) -> dict[str, Any] | None:
    """How far the mean angle moves when only the option order changes.

    index: the range (max - min, degrees) of the mean angles over the order conditions; pairs:
    each difference of means (second minus first, in the given order) with a bootstrap interval.
    None with fewer than two order conditions that have angles. A pure first-letter chooser gives
    30.47 (fixed) vs 14.74 (reversed): index 15.73.
    """
    arrays = {
        k: np.asarray([a for a in v if a is not None], dtype=np.float64) for k, v in angles_by_order.items()
    }
    arrays = {k: a[~np.isnan(a)] for k, a in arrays.items()}
    arrays = {k: a for k, a in arrays.items() if a.size}
    if len(arrays) < 2:
        return None
    means = {k: float(a.mean()) for k, a in arrays.items()}
    names = list(arrays)
    pairs = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            ci = _diff_ci(arrays[b], arrays[a], lambda x: x.mean(axis=-1), n_boot, level, seed + len(pairs))
            pairs.append(
                {
                    "from": a,
                    "to": b,
                    "diff": _f(means[b] - means[a]),
                    "ci": None if ci is None else [_f(c) for c in ci],
                }
            )
    return {
        "index": _f(max(means.values()) - min(means.values())),
        "means": {k: _f(v) for k, v in means.items()},
        "n": {k: int(a.size) for k, a in arrays.items()},
        "pairs": pairs,
    }


def goal_effect(
    angles_on: Sequence[float],
    angles_off: Sequence[float],
    target: str,
    convention: str = "interval",
    *,
    n_boot: int = DEFAULT_N_BOOT,
    level: float = DEFAULT_LEVEL,
    seed: int = 0,
) -> dict[str, Any] | None:
    """Effect of the goal prompt: value rationality (0-60, of the mean angle) with the goal minus
    without, and the same for the mean angle, each with a bootstrap interval (groups resampled
    independently). None when either side has no angle."""
    on = np.asarray([a for a in angles_on if a is not None], dtype=np.float64)
    off = np.asarray([a for a in angles_off if a is not None], dtype=np.float64)
    on, off = on[~np.isnan(on)], off[~np.isnan(off)]
    if not on.size or not off.size:
        return None
    rat = _rationality_stat(target, convention)
    r_ci = _diff_ci(on, off, rat, n_boot, level, seed)
    a_ci = _diff_ci(on, off, lambda x: x.mean(axis=-1), n_boot, level, seed + 1)
    return {
        "target": target,
        "convention": convention,
        "n_on": int(on.size),
        "n_off": int(off.size),
        "rationality_on": _f(rat(on)),
        "rationality_off": _f(rat(off)),
        "rationality_diff": _f(rat(on) - rat(off)),
        "rationality_diff_ci": None if r_ci is None else [_f(c) for c in r_ci],
        "angle_diff": _f(on.mean() - off.mean()),
        "angle_diff_ci": None if a_ci is None else [_f(c) for c in a_ci],
    }
