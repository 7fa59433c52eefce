"""SVO from any trajectory: maximum-likelihood fit of a social value angle to choices.

Model. Each decision i offers options k with known payoffs (self_ik, other_ik). An agent with angle
t values an option at u_ik = cos(t) * self_ik + sin(t) * other_ik and chooses with a softmax (logit)
rule, P(k) proportional to exp(u_ik / temperature). `fit_svo` maximises the likelihood over t
(the whole circle) and the inverse temperature beta = 1 / temperature >= 0. The angle is the same
quantity on the slider and on every dilemma, so one agent gets one comparable angle across games.

What is reported (`SVOFit`):
- status "identified": t at the maximum, a profile-likelihood interval at `level` (the angles
  whose profile log-likelihood is within chi2_1(level) / 2 of the maximum, 1.92 for 95%), and the
  temperature in payoff units;
- status "deterministic": some angles make every choice a best option (perfect separation: the
  likelihood grows without bound as the temperature goes to 0). Those angles form the feasible
  interval; if it is at most `max_width` degrees wide, its midpoint is reported, the interval is
  the feasible interval and the temperature 0;
- status "unidentified" (angle None, with `reason`): no informative decision; options that differ
  along one direction only (e.g. all options have equal self payoffs: only the sign of sin t can
  be learnt); a deterministic agent whose feasible interval is wider than `max_width` (reported
  in `feasible`); a likelihood so flat that the interval covers every angle or is wider than
  `max_interval` degrees (the maximum and its interval are kept in `extra`).

Also reported: `slider_angle`, the classic SVO Slider angle (Murphy et al. 2011, 6 primary items)
that a utility maximiser with the fitted t would produce, and its category; it puts a fitted
angle on the slider's scale. The utility angle t and the slider angle differ by design at the
extremes: the slider's allocations are bounded, so t = 90 (maximise other) gives 61.39, t = 0
gives +-7.82, t = -45 (maximise self - other) gives -16.26; t = 45 gives 45.

Numerics: vectorised numpy; the profile over t is a 1-degree grid (Newton on beta at every grid
angle at once), refined on a 0.05-degree grid around the best point and around each interval end.
No scipy.
Angles are degrees in (-180, 180]; an interval is (lo, hi) with lo <= angle <= hi, where hi may
exceed 180 (or lo fall below -180) when it wraps around.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from pettingzoo.utils.wrappers import BaseParallelWrapper, BaseWrapper

__all__ = [
    "AECSVOFit",
    "ParallelSVOFit",
    "SVOFit",
    "fit_svo",
    "slider_equivalent",
]

#: chi-square(1) quantiles for the profile-likelihood interval.
_CHI2_1 = {0.9: 2.705543454095404, 0.95: 3.841458820694124, 0.99: 6.634896601021214}


@dataclass
class SVOFit:
    """A fitted SVO angle and its evidence (JSON-ready via as_dict)."""

    status: str
    angle: float | None = None
    interval: tuple[float, float] | None = None
    temperature: float | None = None
    level: float = 0.95
    feasible: list[tuple[float, float]] | None = None
    reason: str | None = None
    loglik: float | None = None
    n_decisions: int = 0
    n_used: int = 0
    n_invalid: int = 0
    n_uninformative: int = 0
    slider_angle: float | None = None
    category: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def identified(self) -> bool:
        return self.angle is not None

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k, v in list(d.items()):
            if isinstance(v, float):
                d[k] = None if math.isnan(v) else round(v, 6)
        if d["interval"] is not None:
            d["interval"] = [round(float(x), 6) for x in d["interval"]]
        if d["feasible"] is not None:
            d["feasible"] = [[round(float(a), 6), round(float(b), 6)] for a, b in d["feasible"]]
        return d


def _wrap(a: float) -> float:
    """Angle in (-180, 180]."""
    w = (a + 180.0) % 360.0 - 180.0
    return 180.0 if w == -180.0 else w


def _pad(options: Sequence[Any]) -> np.ndarray:
    """Ragged per-decision option lists -> (n, K, 2) with NaN padding."""
    arrs = [np.asarray(o, dtype=np.float64).reshape(-1, 2) for o in options]
    k = max((len(a) for a in arrs), default=0)
    out = np.full((len(arrs), max(k, 1), 2), np.nan)
    for i, a in enumerate(arrs):
        out[i, : len(a)] = a
    return out


def _arcs(mask: np.ndarray, grid: np.ndarray, step: float) -> list[tuple[float, float]]:
    """Contiguous runs of True on a circular grid, as (lo, hi) with hi >= lo (may exceed 180)."""
    if mask.all():
        return [(-180.0, 180.0)]
    if not mask.any():
        return []
    n = len(mask)
    start = int(np.argmin(mask))  # a False position: runs do not wrap past it
    idx = (np.arange(n) + start) % n
    m = mask[idx]
    arcs, i = [], 0
    while i < n:
        if m[i]:
            j = i
            while j + 1 < n and m[j + 1]:
                j += 1
            lo = grid[idx[i]]
            hi = lo + (j - i) * step
            arcs.append((float(lo), float(hi)))
            i = j + 1
        else:
            i += 1
    return arcs


def _loglik(diff: np.ndarray, valid: np.ndarray, t_deg: np.ndarray, beta: np.ndarray):
    """Log-likelihood, gradient and Hessian in beta, for angles t (vectorised over t).

    diff: (n, K, 2) option minus chosen payoffs; valid: (n, K). Returns arrays shaped like t.
    """
    t = np.radians(t_deg)[:, None, None]
    u = np.cos(t) * diff[None, ..., 0] + np.sin(t) * diff[None, ..., 1]  # (T, n, K), chosen = 0
    u = np.where(valid[None], u, -np.inf)
    b = beta[:, None, None]
    z = np.where(valid[None], b * u, -np.inf)
    zmax = z.max(axis=-1, keepdims=True)
    w = np.exp(z - zmax)
    s = w.sum(axis=-1, keepdims=True)
    p = w / s
    lse = (zmax + np.log(s))[..., 0]
    uu = np.where(valid[None], u, 0.0)
    mean = (p * uu).sum(axis=-1)
    var = (p * uu**2).sum(axis=-1) - mean**2
    return -lse.sum(axis=-1), -mean.sum(axis=-1), -var.sum(axis=-1)


def _profile(
    diff: np.ndarray,
    valid: np.ndarray,
    t_deg: np.ndarray,
    beta_max: float,
    beta0: float | None = None,
    iters: int = 60,
):
    """Max over beta in [0, beta_max] of the log-likelihood at each angle (concave in beta)."""
    t_deg = np.atleast_1d(np.asarray(t_deg, dtype=np.float64))
    # start: a known nearby optimum, else temperature = the largest payoff difference
    beta = np.full(t_deg.shape, beta_max * 1e-4 if beta0 is None else beta0)
    ll, g, h = _loglik(diff, valid, t_deg, beta)
    for _ in range(iters):
        step = np.where(h < -1e-300, -g / np.where(h < -1e-300, h, -1.0), np.sign(g) * beta)
        new = np.clip(beta + step, 0.0, beta_max)
        for _ in range(30):  # backtrack where the step lowered the likelihood
            ll_new, g_new, h_new = _loglik(diff, valid, t_deg, new)
            worse = ll_new < ll - 1e-12
            if not worse.any():
                break
            new = np.where(worse, 0.5 * (beta + new), new)
        moved = np.abs(new - beta) > 1e-10 * (1.0 + beta)
        beta, ll, g, h = new, ll_new, g_new, h_new
        if not moved.any():
            break
    return ll, beta


def slider_equivalent(angle: float) -> float:
    """Classic slider angle (6 primary items) of a maximiser of cos t * self + sin t * other."""
    from scenarios import load_instrument
    from scoring.svo import svo_angle, utility_choices

    inst = load_instrument("slider").subset("primary")
    pay = inst.payoffs()
    k = utility_choices(pay, angle)
    chosen = pay[np.arange(len(pay)), k]
    return float(svo_angle(chosen[:, 0], chosen[:, 1], inst.centre))


def _with_slider(res: SVOFit) -> SVOFit:
    if res.angle is not None:
        from scoring.svo import categorise

        res.slider_angle = slider_equivalent(res.angle)
        res.category = str(categorise(res.slider_angle))
    return res


def fit_svo(
    options: Sequence[Any] | np.ndarray,
    choices: Sequence[int | None] | np.ndarray,
    level: float = 0.95,
    max_width: float = 10.0,
    grid_step: float = 1.0,
    max_interval: float = 90.0,
) -> SVOFit:
    """Fit the SVO angle to decisions: options[i] is a (k_i, 2) array of [self, other] payoffs,
    choices[i] the chosen index (None or a negative number = no valid answer, counted, skipped).
    See the module docstring for the statuses and what each field means."""
    if level not in _CHI2_1:
        raise ValueError(f"level={level}; allowed: {sorted(_CHI2_1)}")
    if grid_step <= 0 or 360.0 % grid_step > 1e-9:
        raise ValueError(f"grid_step={grid_step} must divide 360")
    n_dec = len(choices)
    if len(options) != n_dec:
        raise ValueError(f"{len(options)} option sets for {n_dec} choices")
    pay = (
        _pad(options)
        if not isinstance(options, np.ndarray) or options.ndim != 3
        else options.astype(np.float64)
    )
    ch = np.array([-1 if c is None else int(c) for c in choices], dtype=np.int64)
    valid_opt = ~np.isnan(pay).any(axis=-1)
    n_opts = valid_opt.sum(axis=1)
    bad = (ch >= n_opts) & (ch >= 0)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"choice {ch[i]} of decision {i} outside its {n_opts[i]} options")
    ok = ch >= 0
    res = SVOFit(status="unidentified", level=level, n_decisions=n_dec, n_invalid=int((~ok).sum()))
    pay, ch, valid_opt = pay[ok], ch[ok], valid_opt[ok]
    chosen = pay[np.arange(len(pay)), ch]
    diff = np.where(valid_opt[..., None], pay - chosen[:, None, :], 0.0)
    scale = float(np.nanmax(np.abs(pay))) if pay.size and np.isfinite(pay).any() else 1.0
    tol = 1e-9 * max(scale, 1.0)
    informative = (np.abs(diff) > tol).any(axis=(1, 2))
    res.n_uninformative = int((~informative).sum())
    diff, valid_opt = diff[informative], valid_opt[informative]
    res.n_used = len(diff)
    if res.n_used == 0:
        res.reason = (
            "no informative decision (every decision's options have identical payoffs, or none answered)"
        )
        return res

    vecs = diff[valid_opt & (np.abs(diff) > tol).any(axis=-1)]
    sv = np.linalg.svd(vecs / np.linalg.norm(vecs, axis=1, keepdims=True), compute_uv=False)
    if len(sv) < 2 or sv[1] < 1e-6 * sv[0]:
        if np.all(np.abs(vecs[:, 0]) <= tol):
            why = "all options have equal self payoffs"
        elif np.all(np.abs(vecs[:, 1]) <= tol):
            why = "all options have equal other payoffs"
        else:
            d = vecs[0] / np.linalg.norm(vecs[0])
            why = f"all options differ along one direction (self, other) = ({d[0]:.3g}, {d[1]:.3g})"
        res.reason = f"{why}: choices identify only which side of that direction is preferred, not an angle"
        return res

    grid = np.arange(-180.0, 180.0, grid_step)
    t = np.radians(grid)[:, None, None]
    u = np.cos(t) * diff[None, ..., 0] + np.sin(t) * diff[None, ..., 1]
    best = np.where(valid_opt[None], u <= tol, True).all(axis=(1, 2))
    if best.any():
        arcs = _arcs(best, grid, grid_step)
        res.feasible = arcs
        res.temperature = 0.0
        width = sum(hi - lo for lo, hi in arcs)
        if len(arcs) == 1 and width <= max_width:
            lo, hi = arcs[0]
            # refine the edges to 0.01 degree
            fine = np.arange(lo - grid_step, hi + grid_step + 1e-9, 0.01)
            tf = np.radians(fine)[:, None, None]
            uf = np.cos(tf) * diff[None, ..., 0] + np.sin(tf) * diff[None, ..., 1]
            okf = np.where(valid_opt[None], uf <= tol, True).all(axis=(1, 2))
            lo, hi = float(fine[okf].min()), float(fine[okf].max())
            res.feasible = [(lo, hi)]
            mid = 0.5 * (lo + hi)
            res.status, res.angle = "deterministic", _wrap(mid)
            shift = res.angle - mid
            res.interval = (lo + shift, hi + shift)
            res.loglik = 0.0
            return _with_slider(res)
        if len(arcs) == 1:
            # every angle in the arc gives the same choices here; its slider angles may still agree
            lo, hi = arcs[0]
            eq = [slider_equivalent(x) for x in np.linspace(lo + 1e-6, hi - 1e-6, 25)]
            res.extra["slider_range"] = [round(min(eq), 6), round(max(eq), 6)]
            if max(eq) - min(eq) < 1e-9:
                from scoring.svo import categorise

                res.slider_angle = eq[0]
                res.category = str(categorise(eq[0]))
        where = ", ".join(f"[{_wrap(lo):.1f}, {_wrap(lo) + hi - lo:.1f}]" for lo, hi in arcs)
        res.reason = (
            f"deterministic choices: every angle in {where} (total {width:.1f} degrees > max_width "
            f"{max_width:g}) makes each choice a best option; no single angle is identified"
        )
        return res

    # Maximum likelihood: profile over the grid, golden-section refinement, profile interval.
    spread = float(np.abs(diff[valid_opt]).max())
    beta_max = 1e4 / max(spread, 1e-12)
    ll, beta = _profile(diff, valid_opt, grid, beta_max)
    j = int(np.argmax(ll))
    fine = grid[j] + np.linspace(-grid_step, grid_step, 41)  # 0.05 degree at the default step
    ll_f, beta_f = _profile(diff, valid_opt, fine, beta_max, beta0=float(beta[j]))
    jf = int(np.argmax(ll_f))
    t_hat, ll_hat, beta_hat = float(fine[jf]), float(ll_f[jf]), float(beta_f[jf])
    res.loglik = float(ll_hat)
    cut = ll_hat - _CHI2_1[level] / 2.0
    inside = ll >= cut
    if inside.all():
        res.reason = f"the likelihood is flat: every angle is inside the {level:.0%} interval"
        res.temperature = float("inf") if beta_hat <= 0 else 1.0 / beta_hat
        return res
    if beta_hat <= 0:
        res.reason = "choices are indistinguishable from random (best temperature is infinite)"
        return res

    def edge(direction: int) -> float:
        """Where the profile first drops below the cut, walking from t_hat (0.05 degree steps)."""
        n = len(grid)
        k0 = int(np.round((t_hat - grid[0]) / grid_step))
        for k in range(1, n + 1):
            if ll[(k0 + direction * k) % n] < cut:
                break
        far = grid[0] + (k0 + direction * k) * grid_step  # unwrapped, on t_hat's side of the circle
        near = far - direction * grid_step * 2
        if direction * (near - t_hat) < 0:
            near = t_hat
        pts = np.linspace(near, far, 41)
        lp = _profile(diff, valid_opt, pts, beta_max, beta0=beta_hat)[0]
        below = np.nonzero(lp < cut)[0]
        first = int(below[0]) if len(below) else len(pts) - 1
        return float(pts[max(first - 1, 0)])

    lo, hi = edge(-1), edge(+1)
    if hi - lo > max_interval:
        res.temperature = float(1.0 / beta_hat)
        res.extra["mle"] = round(float(_wrap(t_hat)), 6)
        res.extra["interval"] = [round(float(lo), 6), round(float(hi), 6)]
        res.reason = (
            f"the {level:.0%} interval is {hi - lo:.1f} degrees wide (> max_interval {max_interval:g}): "
            "the choices do not pin down an angle"
        )
        return res
    ang = _wrap(t_hat)
    shift = ang - t_hat
    res.status, res.angle = "identified", float(ang)
    res.interval = (float(lo + shift), float(hi + shift))
    res.temperature = float(1.0 / beta_hat)
    res.extra["disjoint"] = len(_arcs(inside, grid, grid_step)) > 1
    if beta_hat >= beta_max * 0.999:
        res.extra["note"] = "temperature at the lower bound of the search (nearly deterministic)"
    return _with_slider(res)


class _Recorder:
    """Per-agent (options, choice) lists from "payoffs" observations (masked by "action_mask")."""

    def __init__(self) -> None:
        self.options: dict[str, list[np.ndarray]] = {}
        self.choices: dict[str, list[int | None]] = {}

    def add(self, agent: str, obs: Any, action: Any) -> None:
        if not isinstance(obs, dict) or "payoffs" not in obs:
            raise KeyError(
                f"observation of {agent} has no 'payoffs' key; the SVO fit needs [self, other] options"
            )
        pay = np.asarray(obs["payoffs"], dtype=np.float64)
        if "action_mask" in obs:
            mask = np.asarray(obs["action_mask"]).astype(bool)
            pay = pay[: int(mask.sum())] if mask.any() else pay[:0]
        a = None if action is None or int(action) < 0 else int(action)
        self.options.setdefault(agent, []).append(pay)
        self.choices.setdefault(agent, []).append(a)

    def fits(self, **kwargs: Any) -> dict[str, dict[str, Any]]:
        return {a: fit_svo(self.options[a], self.choices[a], **kwargs).as_dict() for a in self.options}


class ParallelSVOFit(BaseParallelWrapper):
    """Writes infos[agent]["svo_fit"] (fit_svo's result) for every agent when the episode ends.

    Works on any ParallelEnv whose observations carry "payoffs" ((n_actions, 2) [self, other] per
    own action); NO_ANSWER (-1) actions count as invalid. Like RecordEpisodeStatistics.
    """

    def __init__(self, env, **fit_kwargs: Any) -> None:
        super().__init__(env)
        self.fit_kwargs = fit_kwargs
        self._rec = _Recorder()
        self._obs: dict[str, Any] = {}

    def reset(self, seed: int | None = None, options: dict | None = None):
        self._rec = _Recorder()
        obs, infos = self.env.reset(seed=seed, options=options)
        self._obs = obs
        return obs, infos

    def step(self, actions):
        for a, act in actions.items():
            if a in self._obs:
                self._rec.add(a, self._obs[a], act)
        obs, rew, terms, truncs, infos = self.env.step(actions)
        self._obs = obs
        if terms and all(terms[a] or truncs[a] for a in terms):
            fits = self._rec.fits(**self.fit_kwargs)
            infos = {a: {**infos.get(a, {}), "svo_fit": fits.get(a)} for a in terms}
        return obs, rew, terms, truncs, infos


class AECSVOFit(BaseWrapper):
    """AEC version of ParallelSVOFit: fits land in `fits` and in infos[agent]["svo_fit"] when every
    agent has terminated (the "payoffs" rows are masked by "action_mask" where present)."""

    def __init__(self, env, **fit_kwargs: Any) -> None:
        super().__init__(env)
        self.fit_kwargs = fit_kwargs
        self._rec = _Recorder()
        self.fits: dict[str, dict[str, Any]] = {}

    def reset(self, seed: int | None = None, options: dict | None = None) -> None:
        self._rec, self.fits = _Recorder(), {}
        self.env.reset(seed=seed, options=options)

    def step(self, action) -> None:
        agent = self.env.agent_selection
        live = not (self.env.terminations[agent] or self.env.truncations[agent])
        if live:
            self._rec.add(agent, self.env.observe(agent), action)
        self.env.step(action)
        if (
            live
            and self.env.agents
            and all(self.env.terminations[a] or self.env.truncations[a] for a in self.env.agents)
        ):
            self.fits = self._rec.fits(**self.fit_kwargs)
            for a in self.env.agents:
                if a in self.fits:
                    self.env.infos[a]["svo_fit"] = self.fits[a]
