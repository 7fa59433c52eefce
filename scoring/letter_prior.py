"""Letter-prior correction: an extra, debiased estimate beside the raw one (never replacing it).

In logprob mode each decision records the probability of each shown letter. Language models
carry a prior over answer labels ("A" over "I") that is not about the options (Zheng et al.,
"Large Language Models Are Not Robust Multiple Choice Selectors", ICLR 2024, arXiv 2309.03882).
Their PriDe method models an observed answer distribution as

    p_obs(letter j | decision d)  proportional to  prior(j) * p(option shown at j | context of d)

estimates log prior(j) as the mean over option permutations of log p_obs(j), and debiases each
decision as p(option) proportional to p_obs(letter) / prior(letter).

`estimate_letter_prior` fits exactly that model to the counterbalanced orders of a run by least
squares on the log-probabilities: log p_obs(d, j) = a_j + b[c(d), order_d(j)] + g_d, with a letter
effect a, an option effect b per context c (whatever the model's preferences may depend on: the
value, goal prompt and item), and a per-decision constant g (the normalisation). When every
option of a context appears equally often at every letter (a balanced design, such as PriDe's
cyclic permutations), the least-squares a equals PriDe's mean of log p_obs; with unbalanced
orders (random permutations) it is the exact generalisation. The letter effect is identified
only when the orders break the link between letters and options: fixed plus reversed orders
identify only its antisymmetric part (a_j - a_{K-1-j}), so the estimate is refused with that
reason; permuted orders identify it.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scenarios import Instrument
from scoring import svo

__all__ = ["LetterPrior", "ProbDecision", "debias", "episode_angles", "estimate_letter_prior"]


@dataclass(frozen=True)
class ProbDecision:
    """One logprob-mode decision: `order[j]` is the canonical option shown at letter j, `probs[j]`
    the probability of letter j (None = not scored), `context` what the preferences depend on."""

    context: Hashable
    order: tuple[int, ...]
    probs: tuple[float | None, ...]

    @classmethod
    def from_letters(
        cls, context: Hashable, order: Sequence[int], probabilities: Mapping[str, float | None]
    ) -> ProbDecision:
        """From a logprob-mode record's letter -> probability mapping (letters A, B, ... in shown
        order; a letter missing from the mapping counts as not scored)."""
        letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[: len(order)]
        return cls(context, tuple(int(x) for x in order), tuple(probabilities.get(c) for c in letters))


@dataclass
class LetterPrior:
    """The estimated letter prior and debiased option preferences (see `estimate_letter_prior`).

    prior: probability per letter position (None when not identified); preferences: per context,
    the debiased distribution over canonical options implied by the fit; residual_sd: the SD of
    the log-probability residuals (0 when the multiplicative model holds exactly).
    """

    identified: bool
    reason: str | None = None
    prior: np.ndarray | None = None
    preferences: dict[Hashable, np.ndarray] = field(default_factory=dict)
    n_used: int = 0
    n_excluded: int = 0
    residual_sd: float | None = None

    def debias(self, order: Sequence[int], probs: Sequence[float | None]) -> np.ndarray | None:
        """Debiased canonical-option distribution of one decision (None when not identified or a
        letter's probability is missing)."""
        if self.prior is None:
            return None
        return debias(self.prior, order, probs)

    def as_dict(self) -> dict[str, Any]:
        def r(x: float) -> float:
            return round(float(x), 6) + 0.0

        return {
            "identified": self.identified,
            "reason": self.reason,
            "prior": None if self.prior is None else [r(p) for p in self.prior],
            "preferences": {str(k): [r(p) for p in v] for k, v in self.preferences.items()},
            "n_used": self.n_used,
            "n_excluded": self.n_excluded,
            "residual_sd": None if self.residual_sd is None else r(self.residual_sd),
            "method": "PriDe letter prior (Zheng et al. 2024) by least squares on log-probabilities",
        }


def _as_decision(d: ProbDecision | Mapping[str, Any], i: int) -> ProbDecision:
    if isinstance(d, ProbDecision):
        return d
    try:
        return ProbDecision(d["context"], tuple(int(x) for x in d["order"]), tuple(d["probs"]))
    except KeyError as e:
        raise ValueError(f"decision {i}: missing field {e}; needs context, order, probs") from None


def debias(prior: np.ndarray, order: Sequence[int], probs: Sequence[float | None]) -> np.ndarray | None:
    """PriDe's debiasing of one decision: p(canonical option order[j]) proportional to
    probs[j] / prior[j]. None when a letter's probability is missing."""
    p = np.array([np.nan if x is None else x for x in probs], dtype=np.float64)
    if np.isnan(p).any():
        return None
    w = p / np.asarray(prior, dtype=np.float64)
    out = np.zeros(len(p))
    out[np.asarray(order)] = w / w.sum()
    return out


def estimate_letter_prior(decisions: Sequence[ProbDecision | Mapping[str, Any]]) -> LetterPrior:
    """Fit log p_obs(d, j) = a_j + b[context(d), order_d(j)] + g_d by least squares.

    Decisions with a missing or zero letter probability are left out (n_excluded). All decisions
    need the same number of options. Not identified (prior None, with the reason) when the orders
    shown do not separate letters from options (one order per context, or only fixed and
    reversed), or when no decision is usable.
    """
    ds = [_as_decision(d, i) for i, d in enumerate(decisions)]
    used, excluded = [], 0
    for i, d in enumerate(ds):
        k = len(d.order)
        if sorted(d.order) != list(range(k)) or len(d.probs) != k:
            raise ValueError(f"decision {i}: order {d.order} and probs of length {len(d.probs)} must match")
        if any(p is None or not p > 0 or not math.isfinite(p) for p in d.probs):
            excluded += 1
            continue
        used.append(d)
    if not used:
        return LetterPrior(False, "no decision with every letter's probability", n_excluded=excluded)
    ks = {len(d.order) for d in used}
    if len(ks) > 1:
        raise ValueError(f"decisions mix {sorted(ks)} options; estimate one instrument at a time")
    k = ks.pop()
    contexts = sorted({d.context for d in used}, key=repr)
    cpos = {c: i for i, c in enumerate(contexts)}
    n_c = len(contexts)
    y = np.log(np.array([d.probs for d in used], dtype=np.float64))
    y -= y.mean(axis=1, keepdims=True)  # removes g_d
    order = np.array([d.order for d in used], dtype=np.int64)
    ctx = np.array([cpos[d.context] for d in used], dtype=np.int64)
    n, m = len(used), k + n_c * k
    # normal equations of the design whose row (d, j) has a 1 at letter j and at option
    # (context(d), order_d(j)), centred within each decision like y (which removes g_d):
    # X'X = sum_dj u u' - sum_c (n_c / k) w_c w_c' with w_c the letters plus context c's options
    col_b = k + ctx[:, None] * k + order  # (n, k)
    col_a = np.broadcast_to(np.arange(k), (n, k))
    xtx = np.zeros((m, m))
    np.add.at(xtx, (col_a, col_a), 1.0)
    np.add.at(xtx, (col_b, col_b), 1.0)
    np.add.at(xtx, (col_a, col_b), 1.0)
    np.add.at(xtx, (col_b, col_a), 1.0)
    for c, cnt in zip(*np.unique(ctx, return_counts=True), strict=True):
        w = np.zeros(m)
        w[:k] = 1.0
        w[k + c * k : k + (c + 1) * k] = 1.0
        xtx -= (cnt / k) * np.outer(w, w)
    xty = np.zeros(m)
    np.add.at(xty, col_a, y)
    np.add.at(xty, col_b, y)
    evals, evecs = np.linalg.eigh(xtx)
    tol = 1e-9 * max(float(evals.max()), 1.0)
    null = int((evals <= tol).sum())
    # always unidentified: a common shift of a against b, and one constant of b per context
    expected_null = 1 + n_c
    if null > expected_null:
        one = all(len({d.order for d in used if cpos[d.context] == c}) == 1 for c in range(n_c))
        if one:
            why = "each context was shown in one order only: letters and options are confounded"
        elif _only_symmetric(order):
            why = (
                "fixed and reversed orders identify only the antisymmetric part of the letter prior "
                "(a_j - a_{K-1-j}); show permuted orders to estimate it"
            )
        else:
            why = "the orders shown do not separate the letter prior from the option preferences"
        return LetterPrior(False, why, n_used=n, n_excluded=excluded)
    keep = evals > tol
    theta = evecs[:, keep] @ ((evecs[:, keep].T @ xty) / evals[keep])
    fit = theta[col_a] + theta[col_b]
    resid = (y - (fit - fit.mean(axis=1, keepdims=True))).reshape(-1)
    a = theta[:k]
    prior = np.exp(a - a.max())
    prior /= prior.sum()
    prefs = {}
    for c, name in enumerate(contexts):
        b = theta[k + c * k : k + (c + 1) * k]
        q = np.exp(b - b.max())
        prefs[name] = q / q.sum()
    dof = max(n * (k - 1) - (m - expected_null), 1)
    return LetterPrior(
        True,
        prior=prior,
        preferences=prefs,
        n_used=n,
        n_excluded=excluded,
        residual_sd=float(math.sqrt(float(resid @ resid) / dof)),
    )


def _only_symmetric(order: np.ndarray) -> bool:
    """True when every order shown is the identity or its reverse."""
    k = order.shape[1]
    ident, rev = np.arange(k), np.arange(k)[::-1]
    return bool(((order == ident).all(axis=1) | (order == rev).all(axis=1)).all())


def episode_angles(
    instrument: Instrument, canonical_probs: Mapping[int, Sequence[float] | None]
) -> dict[str, Any]:
    """The SVO angle of one episode from per-item canonical-option distributions (item id ->
    probabilities over canonical options): angle_argmax (each item's most probable option;
    ties to the lowest) and angle_expected (the expected allocation per item). None when a
    primary item has no distribution. Use it on raw and on debiased distributions alike."""
    prim = [it for it in instrument.items if it.primary and it.ends]
    if any(canonical_probs.get(it.id) is None for it in prim):
        return {"angle_argmax": None, "angle_expected": None}
    pay = np.array([it.options for it in prim], dtype=np.float64)
    p = np.array([canonical_probs[it.id] for it in prim], dtype=np.float64)
    arg = pay[np.arange(len(prim)), np.argmax(p, axis=1)]
    exp = np.einsum("ik,ikd->id", p / p.sum(axis=1, keepdims=True), pay)

    def ang(alloc: np.ndarray) -> float:
        return round(float(svo.svo_angle(alloc[:, 0], alloc[:, 1], instrument.centre)), 6) + 0.0

    return {"angle_argmax": ang(arg), "angle_expected": ang(exp)}
