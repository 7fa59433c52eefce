"""SVO from any trajectory: a maximum-likelihood angle that says when the choices cannot give one.

Model. Each decision i offers options k with known payoffs (self_ik, other_ik). An agent with angle
t values an option at u_ik = cos(t) * self_ik + sin(t) * other_ik and chooses with a softmax (logit)
rule, P(k) proportional to exp(beta * u_ik), beta = 1 / temperature >= 0. With w = beta * (cos t,
sin t) this is a conditional logit with two coefficients: the log-likelihood is concave in w, the
uniform random chooser is w = 0, and the angle is the direction of w. The angle is the same
quantity on the slider and on every dilemma, so one agent gets one comparable angle across games.

`fit_svo` checks, in this order (`SVOFit.status`):

1. "unidentified" (angle None, `reason`) when the data cannot carry an angle at all: no
   informative decision (every option of every decision has the same payoffs); options that
   differ along one direction only (linear public goods, a one-shot battle of the sexes: only
   which side of that direction is preferred can be learnt).
2. The test against uniform random choice (`random_test`): the likelihood-ratio statistic
   2 x (max log-likelihood - log-likelihood of uniform choice), the maximum taken with a
   vanishing ridge (1e-12 on payoff-normalised coefficients) so that it stays finite under
   separation, with a Monte Carlo p-value from `n_sim` data sets of uniform choices on the same
   options (exact at any sample size). p > `alpha_random` (default 0.01): "unidentified", "not
   distinguishable from uniform random choice".
3. Fewer than `min_informative` informative decisions: "unidentified" (MIN_INFORMATIVE, set by
   the simulation in bench/validity.py).
4. The confidence interval at `level`. Large-sample part: the angles whose profile
   log-likelihood (maximised over beta in [0, infinity], the deterministic limit included) lies
   within chi2_1(level) / 2 of the maximum; the log-likelihood is concave in w, so this is one
   arc, finite and honest under separation, where a Wald interval does not exist. Small-sample
   calibration: a parametric bootstrap test of each angle t (`n_boot` data sets from the model
   at t and its best beta, on the observed options; Monte Carlo p-value of the observed
   likelihood ratio) widens the arc to every angle it accepts, walking outward on a
   `calibration_step` grid and bisecting the ends. The chi-square cut alone undercovers badly
   where the options point in nearly one direction (a repeated prisoner's dilemma: a sharp
   "threshold" fit to noise), which this calibration repairs (docs/validity.md). An interval
   that contains every angle: "unidentified". `max_interval` (default None) refuses wider
   intervals too, but note that refusing by width keeps exactly the intervals that are narrow
   by luck: in the repeated prisoner's dilemma every interval narrower than 90 degrees missed
   the truth (bench/validity.py), so no width is refused by default and a wide interval is the
   honest answer.
5. "identified": the choices are not separable; `angle` is the maximum-likelihood angle,
   `interval` its calibrated confidence interval, `temperature` 1 / beta in payoff units.
   "separated": some angles make every choice a best option (the likelihood grows without bound
   as the temperature goes to 0), so there is no point estimate (`angle` None, and `reason` says
   so): `interval` is the calibrated confidence interval, `temperature` 0. Every result without
   an angle has a `reason`.

`consistent` (any status, when not empty): the exact set of angles at which every choice is a
best option, ties included (an angle at which the chosen option ties another is consistent with
either choice). It is not a confidence interval: it contains the truth whenever the agent
maximised its utility (a softmax agent can leave it), and it can be a single tie angle, which is
then a statement about maximisers, not evidence of a point. Arcs are (lo, hi) with lo in
(-180, 180] and hi >= lo (hi may exceed 180 when the arc wraps); `interval` likewise.

`slider_angle` / `category`: the classic SVO Slider angle (Murphy et al. 2011, 6 primary items)
that a utility maximiser with the fitted angle would produce; `slider_range`: the range of that
slider angle over the interval (it contains the truth's slider angle whenever the interval
contains the truth); without a point estimate, `slider_angle` and `category` are given only when
the whole range agrees. The utility angle t and the slider angle differ by design at the
extremes: the slider's allocations are bounded, so t = 90 gives 61.39, t = 0 gives +-7.82,
t = -45 gives -16.26; t = 45 gives 45.

Numerics: vectorised numpy, no scipy. The profile is evaluated on a `grid_step` grid (beta by a
safeguarded Newton iteration per angle), its maximum refined on finer grids and by Newton's
method in w, the large-sample ends on finer grids to 1e-4 degrees. Everything random is
seeded by `seed`. Angles are degrees in (-180, 180].
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from scoring.svo import wrap_angle as _wrap

__all__ = [
    "MIN_INFORMATIVE",
    "SVOFit",
    "consistent_arcs",
    "fit_svo",
    "slider_equivalent",
    "slider_range",
]

#: chi-square(1) quantiles for the profile-likelihood interval.
_CHI2_1 = {0.8: 1.6423744151498623, 0.9: 2.705543454095404, 0.95: 3.841458820694124, 0.99: 6.634896601021214}

#: Default minimum number of informative decisions before an interval is reported. Set by the
#: simulation in bench/validity.py ("minimum informative decisions", fits without a minimum):
#: below 3 slider decisions or 8 binary ones the random-choice test never rejects; at 6 slider
#: decisions only 16 of 19 reported intervals of softmax agents covered (0.84); from 8 on, every
#: decision count measured covered at least 0.92 (8 to 100 decisions, slider and dilemmas).
MIN_INFORMATIVE = 8

_RIDGE = 1e-12  # on payoff-normalised coefficients: keeps the maximum finite under separation
_TIE = 1e-9  # relative tolerance (of the payoff scale) under which utilities tie


@dataclass
class SVOFit:
    """A fitted SVO angle and its evidence (JSON-ready via as_dict); see the module docstring."""

    status: str
    angle: float | None = None
    interval: tuple[float, float] | None = None
    temperature: float | None = None
    level: float = 0.95
    consistent: list[tuple[float, float]] | None = None
    reason: str | None = None
    loglik: float | None = None
    loglik_uniform: float | None = None
    random_test: dict[str, Any] | None = None
    n_decisions: int = 0
    n_used: int = 0
    n_invalid: int = 0
    n_uninformative: int = 0
    slider_angle: float | None = None
    slider_range: tuple[float, float] | None = None
    category: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def identified(self) -> bool:
        """True when an interval is reported (status "identified" or "separated")."""
        return self.interval is not None

    def as_dict(self) -> dict[str, Any]:
        def clean(v: Any) -> Any:
            if isinstance(v, (float, np.floating)):
                v = float(v)
                return None if math.isnan(v) else round(v, 6) + 0.0
            if isinstance(v, (np.integer,)):
                return int(v)
            if isinstance(v, (list, tuple)):
                return [clean(x) for x in v]
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items()}
            return v

        return {k: clean(v) for k, v in asdict(self).items()}


def _pad(options: Sequence[Any]) -> np.ndarray:
    """Ragged per-decision option lists -> (n, K, 2) with NaN padding."""
    arrs = [np.asarray(o, dtype=np.float64).reshape(-1, 2) for o in options]
    k = max((len(a) for a in arrs), default=0)
    out = np.full((len(arrs), max(k, 1), 2), np.nan)
    for i, a in enumerate(arrs):
        out[i, : len(a)] = a
    return out


# -- the consistent set ------------------------------------------------------------------------


def _intersect(arcs: list[tuple[float, float]], s: float, length: float) -> list[tuple[float, float]]:
    """Intersect arcs (start in [0, 360), length) with the arc (s, length)."""
    out = []
    s = s % 360.0
    for a, ln in arcs:
        for k in (-1.0, 0.0, 1.0):
            lo = max(a, s + 360.0 * k)
            hi = min(a + ln, s + 360.0 * k + length)
            if hi >= lo:
                out.append((lo % 360.0, hi - lo))
    out = sorted(set(out))
    return out


def consistent_arcs(
    options: Sequence[Any] | np.ndarray, choices: Sequence[int | None] | np.ndarray
) -> list[tuple[float, float]]:
    """The angles at which every valid choice is a best option (ties count as best), as arcs.

    Exact (no grid): each (decision, other option) pair allows a closed half-circle of angles,
    widened by a tie tolerance of 1e-9 of the payoff scale; the set is their intersection.
    Returns [] when no angle is consistent and [(-180, 180)] when every angle is.
    """
    pay = _as_array(options)
    ch = _choices(choices, pay)
    ok = ch >= 0
    pay, ch = pay[ok], ch[ok]
    if not len(pay):
        return [(-180.0, 180.0)]
    chosen = pay[np.arange(len(pay)), ch]
    d = (pay - chosen[:, None, :]).reshape(-1, 2)
    d = d[~np.isnan(d).any(axis=1)]
    scale = max(float(np.abs(pay[~np.isnan(pay)]).max()), 1.0)
    norm = np.hypot(d[:, 0], d[:, 1])
    keep = norm > _TIE * scale
    d, norm = d[keep], norm[keep]
    if not len(d):
        return [(-180.0, 180.0)]
    # d . e_t <= tol  <=>  t in [phi + 90 - delta, phi + 270 + delta]
    phi = np.degrees(np.arctan2(d[:, 1], d[:, 0]))
    delta = np.degrees(np.arcsin(np.minimum(_TIE * scale / norm, 1.0)))
    cons = np.unique(np.round(np.stack([np.mod(phi + 90.0 - delta, 360.0), 180.0 + 2 * delta], 1), 9), axis=0)
    arcs = [(float(cons[0, 0]), float(cons[0, 1]))]
    for s, ln in cons[1:]:
        arcs = _intersect(arcs, float(s), float(ln))
        if not arcs:
            return []
    out = []
    for a, ln in arcs:
        lo = float(_wrap(a))
        out.append((lo, lo + ln))
    return _merge(out)


def _merge(arcs: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Merge overlapping or touching arcs (lo in (-180, 180], hi >= lo)."""
    if not arcs:
        return []
    a = sorted(arcs)
    out = [list(a[0])]
    for lo, hi in a[1:]:
        if lo <= out[-1][1] + 1e-12:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    # an arc reaching past 180 may join the first arc
    if len(out) > 1 and out[-1][1] - 360.0 >= out[0][0] - 1e-12:
        first = out.pop(0)
        out[-1][1] = max(out[-1][1], first[1] + 360.0)
    if out[-1][1] - out[-1][0] >= 360.0 - 1e-9:
        return [(-180.0, 180.0)]
    return [(float(lo), float(hi)) for lo, hi in out]


# -- likelihood ---------------------------------------------------------------------------------


def _lse(z: np.ndarray, valid: np.ndarray) -> np.ndarray:
    z = np.where(valid, z, -np.inf)
    m = z.max(axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    return (m + np.log(np.exp(z - m).sum(axis=-1, keepdims=True)))[..., 0]


def _ll_w(x: np.ndarray, valid: np.ndarray, ch: np.ndarray, w: np.ndarray, ridge: float = 0.0):
    """Log-likelihood, gradient and Hessian in w for B data sets at once.

    x: (n, K, 2) centred, scaled options (0 where invalid); ch: (B, n) chosen indices; w: (B, 2).
    """
    z = x[..., 0][None] * w[:, None, None, 0] + x[..., 1][None] * w[:, None, None, 1]  # (B, n, K)
    zv = np.where(valid[None], z, -np.inf)
    m = zv.max(axis=-1, keepdims=True)
    e = np.exp(zv - m)
    s = e.sum(axis=-1, keepdims=True)
    p = e / s
    lse = (m + np.log(s))[..., 0]
    zc = np.take_along_axis(z, ch[..., None], axis=-1)[..., 0]
    ll = (zc - lse).sum(axis=-1) - 0.5 * ridge * (w**2).sum(axis=-1)
    xc = x[np.arange(x.shape[0])[None, :], ch].sum(axis=1)  # (B, 2)
    m0, m1 = (p * x[..., 0]).sum(axis=-1), (p * x[..., 1]).sum(axis=-1)  # (B, n)
    grad = xc - np.stack([m0.sum(axis=1), m1.sum(axis=1)], axis=-1) - ridge * w
    s00 = (p * x[..., 0] ** 2).sum(axis=-1) - m0**2
    s11 = (p * x[..., 1] ** 2).sum(axis=-1) - m1**2
    s01 = (p * x[..., 0] * x[..., 1]).sum(axis=-1) - m0 * m1
    c00, c11, c01 = s00.sum(axis=1), s11.sum(axis=1), s01.sum(axis=1)
    hess = -np.stack([np.stack([c00, c01], -1), np.stack([c01, c11], -1)], -2) - ridge * np.eye(2)
    return ll, grad, hess


def _max_ll(
    x: np.ndarray,
    valid: np.ndarray,
    ch: np.ndarray,
    ridge: float,
    w0: np.ndarray | None = None,
    iters: int = 200,
):
    """Maximise the (ridge-penalised) log-likelihood over w for B data sets (Newton with
    backtracking, from w0 or 0)."""
    b = ch.shape[0]
    w = np.zeros((b, 2)) if w0 is None else np.array(w0, dtype=np.float64)
    ll, g, h = _ll_w(x, valid, ch, w, ridge)
    active = np.ones(b, dtype=bool)
    for _ in range(iters):
        if not active.any():
            break
        idx = np.nonzero(active)[0]
        hh = h[idx] - 1e-12 * np.eye(2)
        step = -np.linalg.solve(hh, g[idx][..., None])[..., 0]
        t = np.ones(len(idx))
        for _ in range(40):
            wn = w[idx] + t[:, None] * step
            lln, gn, hn = _ll_w(x, valid, ch[idx], wn, ridge)
            worse = lln < ll[idx] - 1e-12 * (1 + np.abs(ll[idx]))
            if not worse.any():
                break
            t = np.where(worse, 0.5 * t, t)
        gain = lln - ll[idx]
        w[idx], ll[idx], g[idx], h[idx] = wn, lln, gn, hn
        done = (np.abs(gain) < 1e-10 * (1 + np.abs(lln))) & (
            np.einsum("bd,bd->b", gn, gn) < 1e-14 * (1 + np.abs(lln))
        )
        done |= np.abs(gain) < 1e-13
        active[idx[done]] = False
    return ll, w


def _profile_u(
    u: np.ndarray, valid: np.ndarray, uc: np.ndarray, tol: float, start: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """sup over beta >= 0 (the limit beta -> infinity included) of sum_n [beta u_nc - lse_k beta u_nk].

    u: (..., n, K) option utilities at one angle (invalid options are masked by valid (n, K));
    uc: (..., n) the chosen options' utilities. Returns (value, beta) shaped like uc[..., 0]; beta
    is inf where every choice is a best option (the value is then the limit) and 0 where the
    likelihood falls from beta = 0 on. start: optional guesses of beta, shaped like the result.
    """
    u = np.where(valid, u, -np.inf)
    n_opt = valid.sum(axis=-1)
    umax = u.max(axis=-1)
    in_c = (umax - uc <= tol).all(axis=-1)
    limit = -np.log((u >= uc[..., None] - tol).sum(axis=-1)).sum(axis=-1)
    uu = np.where(valid, u, 0.0)
    slope0 = (uc - uu.sum(axis=-1) / n_opt).sum(axis=-1)
    shape = in_c.shape
    value = np.where(in_c, limit, -np.log(n_opt).sum())
    beta = np.where(in_c, np.inf, 0.0)
    todo = ~in_c & (slope0 > 0)
    if not todo.any():
        return value, beta
    ut, uct = np.broadcast_to(u, shape + u.shape[-2:])[todo], np.broadcast_to(uc, shape + uc.shape[-1:])[todo]
    vt = np.broadcast_to(valid, ut.shape)
    b = _beta_root(ut, uct, vt, None if start is None else np.broadcast_to(start, shape)[todo])
    value[todo] = _beta_terms(b, ut, uct, vt)[0]
    beta[todo] = b
    return value, beta


def _beta_terms(b: np.ndarray, u: np.ndarray, uc: np.ndarray, valid: np.ndarray):
    """Log-likelihood in beta and its first two derivatives, per row of u (m, n, K)."""
    z = b[:, None, None] * u
    lse = _lse(z, valid)
    p = np.exp(np.where(valid, z, -np.inf) - lse[..., None])
    uz = np.where(valid, u, 0.0)
    mean = (p * uz).sum(axis=-1)
    var = (p * uz**2).sum(axis=-1) - mean**2
    return (b[:, None] * uc - lse).sum(axis=-1), (uc - mean).sum(axis=-1), -var.sum(axis=-1)


def _beta_root(
    u: np.ndarray, uc: np.ndarray, valid: np.ndarray, start: np.ndarray | None = None
) -> np.ndarray:
    """The beta > 0 where the log-likelihood's slope is 0 (rows whose slope at 0 is positive and
    where some option beats the chosen one, so a root exists). Bracketing (from `start` when
    given), then Newton steps kept inside the bracket; rows leave the iteration as they converge."""
    m = len(u)
    lo = np.zeros(m)
    hi = np.ones(m) if start is None else np.clip(2.0 * np.where(np.isfinite(start), start, 1.0), 1e-3, 1e6)
    act = np.arange(m)
    for _ in range(200):
        g = _beta_terms(hi[act], u[act], uc[act], valid[act])[1]
        up = g > 0
        lo[act[up]] = hi[act[up]]
        hi[act[up]] *= 4.0
        act = act[up]
        if not len(act):
            break
    b = 0.5 * (lo + hi)
    if start is not None:
        b = np.where((start > lo) & (start < hi), start, b)
    act = np.arange(m)
    for _ in range(100):
        _, g, h = _beta_terms(b[act], u[act], uc[act], valid[act])
        bl, bh, ba = lo[act], hi[act], b[act]
        bl = np.where(g > 0, ba, bl)
        bh = np.where(g <= 0, ba, bh)
        newton = ba - g / np.where(h < 0, h, -1.0)
        ok = (h < 0) & (newton > bl) & (newton < bh)
        new = np.where(ok, newton, 0.5 * (bl + bh))
        lo[act], hi[act], b[act] = bl, bh, new
        act = act[np.abs(new - ba) > 1e-10 * (1.0 + ba)]
        if not len(act):
            break
    return b


def _utilities(x: np.ndarray, t_deg: np.ndarray) -> np.ndarray:
    """(T, n, K) utilities of options x (n, K, 2) at angles t (degrees)."""
    t = np.radians(np.atleast_1d(np.asarray(t_deg, dtype=np.float64)))
    return np.einsum("nkd,td->tnk", x, np.stack([np.cos(t), np.sin(t)], axis=-1))


def _profile(x: np.ndarray, valid: np.ndarray, ch: np.ndarray, t_deg, tol: float) -> np.ndarray:
    """Profile log-likelihood of one data set at angles t (see `_profile_u`)."""
    u = _utilities(np.where(valid[..., None], x, 0.0), t_deg)
    uc = u[:, np.arange(len(ch)), ch]
    return _profile_u(u, valid, uc, tol)[0]


def _simulate(u: np.ndarray, valid: np.ndarray, beta: np.ndarray, n_sim: int, rng, tol: float) -> np.ndarray:
    """Choices (T, n_sim, n) of softmax agents with utilities u (T, n, K) and inverse temperatures
    beta (T,) (inf: uniform among the best options)."""
    b = beta[:, None, None]
    best = u >= np.where(valid, u, -np.inf).max(axis=-1, keepdims=True) - tol
    with np.errstate(invalid="ignore", over="ignore"):
        z = np.where(np.isinf(b), np.where(best, 0.0, -np.inf), b * u)
    z = np.where(valid, z, -np.inf)
    p = np.exp(z - z.max(axis=-1, keepdims=True))
    cdf = np.cumsum(p / p.sum(axis=-1, keepdims=True), axis=-1)
    r = rng.random((u.shape[0], n_sim, u.shape[1], 1))
    k = (r > cdf[:, None]).sum(axis=-1)
    return np.minimum(k, valid.sum(axis=-1) - 1)


def _bootstrap_accept(
    x: np.ndarray,
    valid: np.ndarray,
    t_deg: np.ndarray,
    beta_t: np.ndarray,
    lr_obs: np.ndarray,
    level: float,
    n_boot: int,
    rng: np.random.Generator,
    tol: float,
) -> np.ndarray:
    """Parametric-bootstrap test of each angle t (vectorised over angles and data sets).

    For each t, n_boot data sets are drawn from the logit model at (t, beta_hat(t)) on the observed
    options; t is accepted when the Monte Carlo p-value of its observed likelihood-ratio statistic
    lr_obs(t) = 2 (max log-likelihood - profile(t)) exceeds 1 - level.
    """
    u = _utilities(x, t_deg)
    ch = _simulate(u, valid, beta_t, n_boot, rng, tol)  # (T, B, n)
    t_n, b_n, n = ch.shape
    uc = np.take_along_axis(u[:, None], ch[..., None], axis=-1)[..., 0]
    pl = _profile_u(u[:, None], valid, uc, tol, np.broadcast_to(beta_t[:, None], (t_n, b_n)))[0]  # (T, B)
    # the maximum log-likelihood is <= 0, so a data set can reach lr_obs only if pl <= -lr_obs / 2:
    # the (costlier) two-parameter maximum is needed for those only
    need = pl <= -0.5 * lr_obs[:, None] + 1e-9
    lr = np.zeros((t_n, b_n))
    if need.any():
        ti, bi = np.nonzero(need)
        t = np.radians(t_deg[ti])
        w0 = np.minimum(beta_t[ti], 100.0)[:, None] * np.stack([np.cos(t), np.sin(t)], axis=-1)
        sup = _max_ll(x, valid, ch[ti, bi], _RIDGE, w0)[0]
        lr[ti, bi] = 2.0 * np.maximum(sup - pl[ti, bi], 0.0)
    exceed = (lr >= lr_obs[:, None] - 1e-9 * (1.0 + np.abs(lr_obs[:, None]))).sum(axis=1)
    return (1 + exceed) / (1 + b_n) > 1.0 - level


# -- slider scale -------------------------------------------------------------------------------


def slider_equivalent(angle: float) -> float:
    """Classic slider angle (6 primary items) of a maximiser of cos t * self + sin t * other."""
    from scenarios import load_instrument
    from scoring.svo import svo_angle, utility_choices

    inst = load_instrument("slider").subset("primary")
    pay = inst.payoffs()
    k = utility_choices(pay, angle)
    chosen = pay[np.arange(len(pay)), k]
    return float(svo_angle(chosen[:, 0], chosen[:, 1], inst.centre))


def slider_range(lo: float, hi: float) -> tuple[float, float]:
    """Range of `slider_equivalent` over the arc [lo, hi] (exact: the maximiser's slider choices
    change only at the angles where two options of an item tie, so every piece is sampled)."""
    from scenarios import load_instrument
    from scoring.svo import svo_angle

    pay = load_instrument("slider").subset("primary").payoffs()
    d = (pay[:, :, None, :] - pay[:, None, :, :]).reshape(-1, 2)
    d = d[np.hypot(d[:, 0], d[:, 1]) > 0]
    phi = np.degrees(np.arctan2(d[:, 1], d[:, 0]))
    ties = np.unique(np.round(np.mod(np.concatenate([phi + 90.0, phi - 90.0]) - lo, 360.0), 9))
    cuts = np.concatenate([[0.0], ties[ties < hi - lo], [hi - lo]]) + lo
    pts = np.radians(np.concatenate([cuts, 0.5 * (cuts[1:] + cuts[:-1])]))
    u = np.cos(pts)[:, None, None] * pay[None, ..., 0] + np.sin(pts)[:, None, None] * pay[None, ..., 1]
    k = np.argmax(np.round(u, 9), axis=-1)  # as utility_choices: ties to the lowest index
    chosen = pay[np.arange(pay.shape[0])[None, :], k]
    vals = svo_angle(chosen[..., 0], chosen[..., 1], 50.0)
    return float(min(vals)), float(max(vals))


def _with_slider(res: SVOFit) -> SVOFit:
    from scoring.svo import categorise

    if res.angle is not None:
        res.slider_angle = slider_equivalent(res.angle)
        res.category = str(categorise(res.slider_angle))
    if res.interval is not None:
        res.slider_range = slider_range(*res.interval)
        lo, hi = res.slider_range
        if res.slider_angle is None:
            if hi - lo < 1e-9:
                res.slider_angle = lo
            if str(categorise(lo)) == str(categorise(hi)):  # categories are intervals of the slider angle
                res.category = str(categorise(lo))
    return res


# -- the fit ------------------------------------------------------------------------------------


def _as_array(options: Sequence[Any] | np.ndarray) -> np.ndarray:
    if isinstance(options, np.ndarray) and options.ndim == 3:
        return options.astype(np.float64)
    return _pad(options)


def _choices(choices: Sequence[int | None] | np.ndarray, pay: np.ndarray) -> np.ndarray:
    ch = np.array([-1 if c is None else int(c) for c in choices], dtype=np.int64)
    if len(ch) != len(pay):
        raise ValueError(f"{len(pay)} option sets for {len(ch)} choices")
    n_opts = (~np.isnan(pay).any(axis=-1)).sum(axis=1)
    bad = ch >= n_opts
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"choice {ch[i]} of decision {i} outside its {n_opts[i]} options")
    return ch


def _one_direction(d: np.ndarray, valid: np.ndarray, tol: float) -> str | None:
    vecs = d[valid & (np.abs(d) > tol).any(axis=-1)]
    sv = np.linalg.svd(vecs / np.linalg.norm(vecs, axis=1, keepdims=True), compute_uv=False)
    if len(sv) >= 2 and sv[1] >= 1e-6 * sv[0]:
        return None
    if np.all(np.abs(vecs[:, 0]) <= tol):
        why = "all options have equal self payoffs"
    elif np.all(np.abs(vecs[:, 1]) <= tol):
        why = "all options have equal other payoffs"
    else:
        v = vecs[0] / np.linalg.norm(vecs[0])
        why = f"all options differ along one direction (self, other) = ({v[0]:.3g}, {v[1]:.3g})"
    return f"{why}: choices identify only which side of that direction is preferred, not an angle"


def random_choice_test(
    x: np.ndarray, valid: np.ndarray, ch: np.ndarray, n_sim: int, rng: np.random.Generator
) -> dict[str, Any]:
    """Monte Carlo likelihood-ratio test of the logit model against uniform random choice.

    x: (n, K, 2) centred, scaled options of the informative decisions; ch: (n,) chosen indices.
    The p-value is (1 + #simulated >= observed) / (1 + n_sim), simulating uniform choices on the
    same options: exact at any sample size.
    """
    n_opt = valid.sum(axis=1)
    ll0 = -float(np.log(n_opt).sum())
    ll_obs, _ = _max_ll(x, valid, ch[None], _RIDGE)
    stat = 2.0 * (float(ll_obs[0]) - ll0)
    exceed, done, batch = 0, 0, 250
    while done < n_sim:
        b = min(batch, n_sim - done)
        sims = np.floor(rng.random((b, len(ch))) * n_opt[None]).astype(np.int64)
        ll_s, _ = _max_ll(x, valid, sims, _RIDGE)
        exceed += int((2.0 * (ll_s - ll0) >= stat - 1e-9 * (1 + abs(stat))).sum())
        done += b
    return {
        "method": "likelihood ratio vs uniform random choice, Monte Carlo p-value",
        "statistic": stat,
        "p_value": (1 + exceed) / (1 + n_sim),
        "n_sim": int(n_sim),
    }


def fit_svo(
    options: Sequence[Any] | np.ndarray,
    choices: Sequence[int | None] | np.ndarray,
    level: float = 0.95,
    *,
    max_interval: float | None = None,
    min_informative: int = MIN_INFORMATIVE,
    alpha_random: float = 0.01,
    n_sim: int = 499,
    n_boot: int = 99,
    seed: int = 0,
    grid_step: float = 1.0,
    calibration_step: float = 10.0,
) -> SVOFit:
    """Fit the SVO angle to decisions: options[i] is a (k_i, 2) array of [self, other] payoffs,
    choices[i] the chosen index (None or a negative number = no valid answer, counted, skipped).

    level: confidence level (0.8, 0.9, 0.95, 0.99); max_interval: widest interval (degrees)
    reported as a result (None: any but the whole circle); min_informative: fewest informative
    decisions for an interval;
    alpha_random / n_sim: the Monte Carlo test against uniform random choice; n_boot /
    calibration_step: the parametric bootstrap that calibrates the interval; seed: all simulation.
    See the module docstring for the statuses and the fields.
    """
    if level not in _CHI2_1:
        raise ValueError(f"level={level}; allowed: {sorted(_CHI2_1)}")
    for name, step in (("grid_step", grid_step), ("calibration_step", calibration_step)):
        if step <= 0 or 360.0 % step > 1e-9:
            raise ValueError(f"{name}={step} must divide 360")
    if n_sim < 19 or n_boot < 19:
        raise ValueError(f"n_sim={n_sim}, n_boot={n_boot}: at least 19 simulations each (p-values of 0.05)")
    pay = _as_array(options)
    ch = _choices(choices, pay)
    ok = ch >= 0
    res = SVOFit(status="unidentified", level=level, n_decisions=len(ch), n_invalid=int((~ok).sum()))
    pay, ch = pay[ok], ch[ok]
    valid = ~np.isnan(pay).any(axis=-1)
    scale = max(float(np.abs(pay[valid]).max()) if valid.any() else 1.0, 1e-300)
    tol = _TIE * scale
    chosen = pay[np.arange(len(pay)), ch]
    diff = np.where(valid[..., None], pay - chosen[:, None, :], 0.0)
    informative = (np.abs(diff) > tol).any(axis=(1, 2))
    res.n_uninformative = int((~informative).sum())
    res.n_used = int(informative.sum())
    if res.n_used == 0:
        res.reason = (
            "no informative decision (every decision's options have identical payoffs, or none answered)"
        )
        return res
    pay, ch, valid, diff = pay[informative], ch[informative], valid[informative], diff[informative]
    arcs = consistent_arcs(pay, ch)
    res.consistent = arcs or None
    why = _one_direction(diff, valid, tol)
    if why is not None:
        res.reason = why
        return res

    # normalised units: options centred per decision, divided by the largest payoff difference
    centre = np.nanmean(np.where(valid[..., None], pay, np.nan), axis=1, keepdims=True)
    spread = float(np.abs(diff[valid]).max())
    x = np.where(valid[..., None], (pay - centre) / spread, 0.0)
    ttol = tol / spread
    res.loglik_uniform = -float(np.log(valid.sum(axis=1)).sum())
    rng = np.random.default_rng(seed)
    res.random_test = random_choice_test(x, valid, ch, n_sim, rng)
    if res.random_test["p_value"] > alpha_random:
        res.reason = (
            f"not distinguishable from uniform random choice (likelihood-ratio test p = "
            f"{res.random_test['p_value']:.3g} > {alpha_random:g})"
        )
        return res

    # the profile over the circle; its superlevel sets are arcs (the log-likelihood is concave in w)
    grid = np.arange(-180.0, 180.0, grid_step)
    prof = _profile(x, valid, ch, grid, ttol)
    j = int(np.argmax(prof))
    t_hat, ll_hat = _refine_max(x, valid, ch, ttol, grid[j] - grid_step, grid[j] + grid_step)
    if prof[j] > ll_hat:
        t_hat, ll_hat = float(grid[j]), float(prof[j])
    separated = bool(arcs)
    if not separated:
        ll_w, w = _max_ll(x, valid, ch[None], 0.0)
        if ll_w[0] >= ll_hat - 1e-9:
            t_hat, ll_hat = float(np.degrees(np.arctan2(w[0, 1], w[0, 0]))), float(ll_w[0])
            res.temperature = spread / float(np.hypot(*w[0]))
    t_hat = float(_wrap(t_hat))
    res.loglik = ll_hat
    cut = ll_hat - _CHI2_1[level] / 2.0
    if (prof >= cut).all() or _profile(x, valid, ch, [t_hat + 180.0], ttol)[0] >= cut:
        res.reason = f"the {level:.0%} interval contains every angle: the choices do not pin down an angle"
        return res
    lo, hi = _arc(*_edges(x, valid, ch, ttol, grid, prof, cut, t_hat, grid_step))
    if max_interval is not None and hi - lo > max_interval:
        return _too_wide(res, lo, hi, max_interval, "")
    if res.n_used < min_informative:
        res.extra["interval"] = [lo, hi]
        res.reason = (
            f"{res.n_used} informative decisions < min_informative {min_informative}: "
            "intervals are not calibrated on so few"
        )
        return res
    lo, hi = _arc(
        *_calibrate(x, valid, ch, ttol, t_hat, ll_hat, lo, hi, level, n_boot, rng, calibration_step)
    )
    if hi - lo >= 360.0:
        res.extra["interval"] = [lo, hi]
        res.reason = (
            f"the calibrated {level:.0%} interval contains every angle: the choices do not pin down an angle"
        )
        return res
    if max_interval is not None and hi - lo > max_interval:
        return _too_wide(res, lo, hi, max_interval, " after calibration")
    res.interval = (lo, hi)
    if separated:
        res.status, res.temperature = "separated", 0.0
        res.reason = (
            "separated: every choice is a best option at the angles in `consistent`, so there is no "
            "point estimate; `interval` is the calibrated confidence interval"
        )
    else:
        res.status, res.angle = "identified", float(_wrap(t_hat))
    return _with_slider(res)


def _arc(lo: float, hi: float) -> tuple[float, float]:
    """An arc (lo, hi), hi >= lo, shifted by whole turns so that lo is in (-180, 180]."""
    shift = float(_wrap(lo)) - lo
    return lo + shift, hi + shift


def _too_wide(res: SVOFit, lo: float, hi: float, max_interval: float, note: str) -> SVOFit:
    res.extra["interval"] = [lo, hi]
    res.reason = (
        f"the {res.level:.0%} interval{note} is {hi - lo:.1f} degrees wide (> max_interval {max_interval:g}): "
        "the choices do not pin down an angle"
    )
    return res


def _calibrate(
    x: np.ndarray,
    valid: np.ndarray,
    ch: np.ndarray,
    tol: float,
    t_hat: float,
    ll_hat: float,
    lo: float,
    hi: float,
    level: float,
    n_boot: int,
    rng: np.random.Generator,
    step: float,
) -> tuple[float, float]:
    """Widen the large-sample interval [lo, hi] (around t_hat) to the angles the parametric
    bootstrap test accepts. Each side walks outward on a `step` grid (three angles per batch)
    until two tested angles in a row are rejected (the accepted set of a concave likelihood is an arc in practice), then
    bisects three times between the last accepted and the first rejected angle; each end is the
    nearest angle tested and rejected, so the interval errs wide by at most step / 8. Never
    narrower than the large-sample interval; returns (lo, hi) unwrapped around t_hat."""

    def test(offsets: list[float]) -> np.ndarray:
        t = t_hat + np.asarray(offsets, dtype=np.float64)
        u = _utilities(x, t)
        uc = u[:, np.arange(len(ch)), ch]
        pl, beta = _profile_u(u, valid, uc, tol)
        return _bootstrap_accept(x, valid, t, beta, 2.0 * (ll_hat - pl), level, n_boot, rng, tol)

    ends = {+1: hi - t_hat, -1: lo - t_hat}  # the accepted extent on each side (offsets)
    nxt = {+1: step * (math.floor(ends[+1] / step) + 1), -1: step * (math.ceil(ends[-1] / step) - 1)}
    rejected: dict[int, float | None] = {+1: None, -1: None}  # first rejected offset after the extent
    misses = {+1: 0, -1: 0}
    active = [+1, -1]
    ahead = 3  # candidates per side per batch: fewer, larger vectorised batches
    while active:
        if ends[+1] - ends[-1] >= 360.0:
            return t_hat - 180.0, t_hat + 180.0  # the whole circle
        cand = {d: [nxt[d] + d * step * i for i in range(ahead)] for d in active}
        ok = test([c for d in active for c in cand[d]])
        for j, d in enumerate(list(active)):
            for c, acc in zip(cand[d], ok[j * ahead : (j + 1) * ahead], strict=True):
                if misses[d] >= 2:
                    break
                if acc:
                    ends[d], rejected[d], misses[d] = c, None, 0
                else:
                    rejected[d] = c if rejected[d] is None else rejected[d]
                    misses[d] += 1
            nxt[d] += d * step * ahead
            if misses[d] >= 2 or abs(nxt[d]) > 360.0:
                active.remove(d)
    for _ in range(3):  # bisection between the extent and the first rejected angle
        sides = [d for d in (+1, -1) if rejected[d] is not None]
        if not sides:
            break
        mids = [0.5 * (ends[d] + rejected[d]) for d in sides]
        for d, m, acc in zip(sides, mids, test(mids), strict=True):
            if acc:
                ends[d] = m
            else:
                rejected[d] = m
    hi_off = rejected[+1] if rejected[+1] is not None else ends[+1]
    lo_off = rejected[-1] if rejected[-1] is not None else ends[-1]
    if hi_off - lo_off >= 360.0:
        return t_hat - 180.0, t_hat + 180.0
    return float(t_hat + lo_off), float(t_hat + hi_off)


def _refine_max(x, valid, ch, tol: float, a: float, b: float) -> tuple[float, float]:
    """Maximum of the profile on [a, b]: two vectorised grid passes (to 1e-4 degrees)."""
    for _ in range(2):
        pts = np.linspace(a, b, 201)
        vals = _profile(x, valid, ch, pts, tol)
        j = int(np.argmax(vals))
        h = (b - a) / 200.0
        a, b = pts[j] - h, pts[j] + h
    return float(pts[j]), float(vals[j])


def _edges(
    x, valid, ch, tol: float, grid, prof, cut: float, t_hat: float, step: float
) -> tuple[float, float]:
    """Ends of the arc {t: profile(t) >= cut} around t_hat, unwrapped (lo <= t_hat <= hi): walk
    the grid to the first point below the cut, then two vectorised passes (both ends at once) to
    locate the crossing to 1e-4 degrees; each end is the last angle found inside."""
    n = len(grid)
    k0 = int(np.round((t_hat - grid[0]) / step)) % n
    off = (t_hat - grid[k0] + 180.0) % 360.0 - 180.0
    brackets = []
    for direction in (-1, 1):
        k = 1
        while prof[(k0 + direction * k) % n] >= cut:
            k += 1
        out_pt = t_hat - off + direction * k * step
        in_pt = out_pt - direction * step if k > 1 else t_hat
        brackets.append([in_pt, out_pt])
    for _ in range(2):
        pts = np.concatenate([np.linspace(i, o, 101) for i, o in brackets])
        inside = (_profile(x, valid, ch, pts, tol) >= cut).reshape(2, 101)
        for b, row, seg in zip(brackets, inside, pts.reshape(2, 101), strict=True):
            j = int(np.argmin(row)) if not row.all() else 100  # first point outside
            j = max(j, 1)
            b[0], b[1] = seg[j - 1], seg[j]
    lo, hi = brackets[0][0], brackets[1][0]
    return float(lo), float(hi)
