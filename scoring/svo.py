"""Pure, vectorised SVO measures: arrays in, arrays out, one trajectory or a million.

Conventions (tested at the boundaries):
- Angles are in degrees, atan2(mean other - c, mean self - c) with c the instrument's centre (50 on
  the slider; scale it with the payoffs). A missing answer (NaN) makes the angle NaN: the published
  rule needs all primary items.
- Every angle function is periodic in 360 degrees: angles are wrapped to (-180, 180] (`wrap_angle`)
  before categories and rationality, and `svo_angle` returns wrapped angles.
- Categories close the lower bound (Ackermann's script): altruistic [57.15, 180],
  prosocial [22.45, 57.15), individualistic [-12.04, 22.45), competitive (-180, -12.04); on the
  circle altruistic and competitive meet at 180 (which is altruistic, like -180).
- Value rationality is a distance in degrees to a target; "interval" (default) is 0 inside the
  target's category and otherwise the angular distance to its nearer bound, "ideal" is the angular
  distance to the ideal-type angle. `paper_scale` maps a distance to the study's 0-60 scale.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from scenarios import VALUE_NAMES, Instrument, load_values
from scenarios.instruments import SECONDARY_TYPES

__all__ = [
    "CATEGORIES",
    "UNDEFINED",
    "angular_distance",
    "categorise",
    "ideal_choices",
    "ideal_type_angle",
    "inequality_aversion_index",
    "paper_scale",
    "preference_wins",
    "svo_angle",
    "transitive",
    "triple_dominance_type",
    "utility_choices",
    "value_rationality",
    "vector_length",
    "wrap_angle",
]

CATEGORIES = VALUE_NAMES
UNDEFINED = "undefined"
Convention = Literal["interval", "ideal"]


def wrap_angle(angle: np.ndarray | float) -> np.ndarray:
    """Angles in degrees wrapped to (-180, 180] (NaN stays NaN); angles already inside are returned
    unchanged (bit for bit: no rounding from the modulo)."""
    a = np.asarray(angle, dtype=np.float64)
    w = np.mod(a + 180.0, 360.0) - 180.0
    w = np.where(w <= -180.0, w + 360.0, w)
    with np.errstate(invalid="ignore"):
        return np.where((a > -180.0) & (a <= 180.0), a, w)


def svo_angle(self_pay: np.ndarray, other_pay: np.ndarray, centre: float = 50.0) -> np.ndarray:
    """SVO angle in degrees, in (-180, 180], from per-item allocations, means over the last axis."""
    s = np.asarray(self_pay, dtype=np.float64).mean(axis=-1) - centre
    o = np.asarray(other_pay, dtype=np.float64).mean(axis=-1) - centre
    return wrap_angle(np.degrees(np.arctan2(o, s)))


def vector_length(self_pay: np.ndarray, other_pay: np.ndarray, centre: float = 50.0) -> np.ndarray:
    """Length of the mean allocation vector from the centre (consistency; humans keep > 35)."""
    s = np.asarray(self_pay, dtype=np.float64).mean(axis=-1) - centre
    o = np.asarray(other_pay, dtype=np.float64).mean(axis=-1) - centre
    return np.hypot(s, o)


def _lower_bounds() -> np.ndarray:
    vals = load_values()
    # Ordered from the highest category down: altruistic, prosocial, individualistic.
    return np.array([vals[name].bounds()[0] for name in CATEGORIES[:-1]])


def categorise(angle: np.ndarray | float) -> np.ndarray:
    """Category names for angles (lower bound closed, angles wrapped); NaN gives "undefined"."""
    a = wrap_angle(angle)
    lows = _lower_bounds()  # descending: 57.15, 22.45, -12.04
    idx = np.searchsorted(-lows, -a, side="left")  # number of lower bounds above a
    names = np.array(list(CATEGORIES) + [UNDEFINED], dtype=object)
    idx = np.where(np.isnan(a), len(CATEGORIES), idx)
    return names[idx]


def angular_distance(a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    """Smallest absolute difference between two angles in degrees, in [0, 180]."""
    d = (np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64) + 180.0) % 360.0 - 180.0
    return np.abs(d)


def value_rationality(
    angle: np.ndarray | float,
    target: str,
    convention: Convention = "interval",
    instrument: Instrument | None = None,
) -> np.ndarray:
    """Distance in degrees between measured angles and a target value (0 = on target)."""
    if target not in VALUE_NAMES:
        raise ValueError(f"unknown target value {target!r}; allowed: {list(VALUE_NAMES)}")
    a = wrap_angle(angle)
    if convention == "interval":
        lo, hi = load_values()[target].bounds()
        lo, hi = max(lo, -180.0), min(hi, 180.0)  # the category as an arc of the circle
        inside = categorise(a) == target
        d = np.minimum(angular_distance(a, lo), angular_distance(a, hi))
        return np.where(np.isnan(a), np.nan, np.where(inside, 0.0, d))
    if convention == "ideal":
        if instrument is None:
            from scenarios import load_instrument

            instrument = load_instrument("slider").subset("primary")
        return angular_distance(a, ideal_type_angle(instrument, target))
    raise ValueError(f"unknown convention {convention!r}; allowed: ['interval', 'ideal']")


def paper_scale(distance: np.ndarray | float) -> np.ndarray:
    """The study's 0-60 radial scale: max(0, 60 - distance in degrees)."""
    d = np.asarray(distance, dtype=np.float64)
    return np.where(np.isnan(d), np.nan, np.maximum(0.0, 60.0 - d))


_UTILITIES = {
    "maximise_self": lambda s, o: s,
    "maximise_other": lambda s, o: o,
    "maximise_joint": lambda s, o: s + o,
    "maximise_difference": lambda s, o: s - o,
    "minimise_inequality": lambda s, o: -np.abs(s - o),
    "minimise_other": lambda s, o: -o,
}


def ideal_choices(payoffs: np.ndarray, utility: str, tie_break: str | None = None) -> np.ndarray:
    """Option index (0-based) per item that maximises `utility`, ties settled by `tie_break`.

    payoffs: (..., n_options, 2). A remaining tie goes to the lowest index.
    """
    p = np.asarray(payoffs, dtype=np.float64)
    s, o = p[..., 0], p[..., 1]
    u = _UTILITIES[utility](s, o)
    best = np.isclose(u, u.max(axis=-1, keepdims=True))
    if tie_break is not None:
        t = np.where(best, _UTILITIES[tie_break](s, o), -np.inf)
        best = best & np.isclose(t, t.max(axis=-1, keepdims=True))
    return np.argmax(best, axis=-1)


def utility_choices(payoffs: np.ndarray, angle_deg: float | np.ndarray) -> np.ndarray:
    """Option index per item maximising cos(t) * self + sin(t) * other (ties: lowest index)."""
    p = np.asarray(payoffs, dtype=np.float64)
    t = np.radians(wrap_angle(angle_deg))[..., None, None]
    u = np.cos(t)[..., 0] * p[..., 0] + np.sin(t)[..., 0] * p[..., 1]
    return np.argmax(np.round(u, 9), axis=-1)


def _primary(instrument: Instrument) -> tuple[np.ndarray, list]:
    items = [it for it in instrument.items if it.primary and it.ends]
    return np.array([it.options for it in items], dtype=np.float64), items


def ideal_type_angle(instrument: Instrument, value_name: str) -> float:
    """Angle of the value's ideal type on the instrument's primary items, derived from the data."""
    v = load_values()[value_name]
    pay, _ = _primary(instrument)
    k = ideal_choices(pay, v.utility, v.tie_break)
    chosen = pay[np.arange(len(pay)), k]
    return float(svo_angle(chosen[:, 0], chosen[:, 1], instrument.centre))


def preference_wins(chosen: np.ndarray, instrument: Instrument) -> np.ndarray:
    """Pairwise wins per type from primary-item choices (Ackermann's transitivity check).

    chosen: (..., n_primary, 2) allocations. On each item the end closer (Euclidean) to the choice
    wins; an exact tie gives half a win to each. Returns (..., 4) wins in CATEGORIES order.
    """
    pay, items = _primary(instrument)
    c = np.asarray(chosen, dtype=np.float64)
    d_left = np.linalg.norm(c - pay[:, 0], axis=-1)
    d_right = np.linalg.norm(c - pay[:, -1], axis=-1)
    left_w = np.where(d_left < d_right, 1.0, np.where(d_left == d_right, 0.5, 0.0))
    left_w = np.where(np.isnan(d_left) | np.isnan(d_right), np.nan, left_w)
    wins = np.zeros(c.shape[:-2] + (len(CATEGORIES),))
    for j, it in enumerate(items):
        a, b = CATEGORIES.index(it.ends[0]), CATEGORIES.index(it.ends[1])
        wins[..., a] += left_w[..., j]
        wins[..., b] += 1.0 - left_w[..., j]
    return wins


def transitive(chosen: np.ndarray, instrument: Instrument) -> np.ndarray:
    """True where the pairwise-preference graph over the four types has no cycle.

    Edges point from the winner to the loser of each primary item; an exact tie adds no edge.
    A cycle exists iff some type reaches itself within 4 steps (boolean matrix powers).
    Missing answers give False (not assessable counts as not shown transitive).
    """
    pay, items = _primary(instrument)
    c = np.asarray(chosen, dtype=np.float64)
    d_left = np.linalg.norm(c - pay[:, 0], axis=-1)
    d_right = np.linalg.norm(c - pay[:, -1], axis=-1)
    n = len(CATEGORIES)
    adj = np.zeros(c.shape[:-2] + (n, n), dtype=np.int64)
    for j, it in enumerate(items):
        a, b = CATEGORIES.index(it.ends[0]), CATEGORIES.index(it.ends[1])
        adj[..., a, b] += d_left[..., j] < d_right[..., j]
        adj[..., b, a] += d_right[..., j] < d_left[..., j]
    reach = adj.copy()
    power = adj.copy()
    for _ in range(n - 1):
        power = np.minimum(power @ adj, 1)
        reach = np.minimum(reach + power, 1)
    cyclic = np.trace(reach, axis1=-2, axis2=-1) > 0
    complete = ~np.isnan(c).any(axis=(-1, -2))
    return ~cyclic & complete


def inequality_aversion_index(choices: np.ndarray, instrument: Instrument) -> np.ndarray:
    """Inequality-aversion index from the 9 secondary slider items (0 = IA ideal, 1 = joint gain).

    choices: (..., n_secondary) 0-based option indices (NaN = missing). For each type,
    D = mean |chosen - ideal| / (n_options - 1) over items with an ideal. The index is
    D_IA / (D_IA + D_JM) only where inequality aversion and joint gain rank first and second;
    otherwise NaN (undefined, never a default).

    Tie rule (the published rule read strictly): "rank first and second" is established only when
    both D_IA and D_JM are strictly smaller than the D of each other type. A type that ties IA or
    JM for first or second rank leaves the ranking undetermined, so the index is NaN (list order
    never breaks a tie). IA and JM tied with each other still rank first and second together.
    Ties are exact: the D values are rationals with denominators of at most 72, so a tolerance
    of 1e-9 separates equal values from distinct ones. About 1.7% of uniformly random choice
    vectors have such a tie (tests/test_scoring.py); list order used to define them.
    """
    items = [it for it in instrument.items if not it.primary and it.ideal]
    if not items:
        raise ValueError(f"instrument {instrument.id!r} has no secondary items")
    c = np.asarray(choices, dtype=np.float64)
    span = instrument.n_options - 1
    dist = {}
    for t in SECONDARY_TYPES:
        ideal = np.array([np.nan if it.ideal.get(t) is None else it.ideal[t] - 1 for it in items])
        mask = ~np.isnan(ideal)
        dist[t] = np.mean(np.abs(c[..., mask] - ideal[mask]), axis=-1) / span
    pair = np.maximum(dist["inequality_aversion"], dist["joint_gain"])
    others = np.minimum.reduce(
        [dist[t] for t in SECONDARY_TYPES if t not in ("inequality_aversion", "joint_gain")]
    )
    with np.errstate(invalid="ignore"):
        ok = pair < others - 1e-9
    denom = dist["inequality_aversion"] + dist["joint_gain"]
    with np.errstate(invalid="ignore", divide="ignore"):
        idx = dist["inequality_aversion"] / denom
    return np.where(ok, idx, np.nan)


def triple_dominance_type(choices: np.ndarray, instrument: Instrument) -> np.ndarray:
    """Triple-Dominance classification from 0-based choices (..., 9): a type with at least
    `min_consistent` choices, else "undefined" (unclassified)."""
    c = np.asarray(choices, dtype=np.float64)
    types = np.array([[CATEGORIES.index(t) for t in it.types] for it in instrument.items])
    counts = np.zeros(c.shape[:-1] + (len(CATEGORIES),))
    for j in range(types.shape[0]):
        for k in range(types.shape[1]):
            counts[..., types[j, k]] += c[..., j] == k
    best = counts.argmax(axis=-1)
    ok = counts.max(axis=-1) >= instrument.min_consistent
    names = np.array(list(CATEGORIES), dtype=object)[best]
    return np.where(ok, names, UNDEFINED)
