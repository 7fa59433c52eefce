"""Null models: where responders without a social value land, and per-cell tests against them.

A result only means something when it is distinguishable from random answering and from
answering by letter position. This module computes, exactly from the item data (enumeration of
every choice vector, never sampling), where two kinds of null responder land on each instrument
under each option-order condition, and tests a cell's decisions against them.

Null responders (`null_responders`):
- "uniform": picks each option of each item with probability 1/K, whatever the order shown.
- "letter X" (X = A, B, ...: every letter position): always answers the X-th shown option.
  Under "fixed" order that is canonical option k on every item; under "reversed" the canonical
  option K-1-k; under "permuted" (a fresh uniformly random permutation per item and episode) the
  canonical option is uniformly random and independent across items, so an always-X responder
  is exactly a uniform responder (`tests/test_null.py` checks this by enumerating permutations).

Bands (`null_band`): the distribution of the SVO angle of one episode (slider: the 6 primary
items give the angle, also when all 15 items are asked) by exact enumeration of the K^6 choice
vectors, its mean and SD, a central band and the category shares; and the same for the MEAN angle
of a cell of n episodes (cells average n trials), by numerical convolution of the exact
one-episode distribution on a grid of `step` degrees (each angle moved to the nearest grid point,
so every quantile of the mean is exact to within step / 2; the mean and SD are exact). The
Triple-Dominance Measure has no angle: its bands are the type shares (exact, 3^9 vectors).
Reference values (uniform responder, 6 primary items): mean 22.70, SD 12.9, 50.7% prosocial,
49.2% individualistic; always option 1: 30.47; always option 9: 14.74.

Per-cell tests, on decisions (`ShownDecision`: item, the shown order as the canonical option at
each shown position, the shown position chosen or None):
- `random_answering_test`: are the choices distinguishable from uniform random answering? G
  statistics of the canonical-option counts per item and of the letter-position counts, with
  Monte Carlo p-values under uniform answering (exact in the limit of simulations).
- `letter_vs_option_test`: are they explained better by the letter shown than by the canonical
  option? Two exact randomisation tests (re-assigning the shown orders among an item's
  decisions): is there a letter effect beyond the options, and an option effect beyond the
  letters? With one shown order per item the two are confounded and the answer is "not
  distinguishable: only one order condition".
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from scenarios import Instrument, load_instrument
from scoring import svo

__all__ = [
    "ORDERS",
    "NullResponder",
    "ShownDecision",
    "angle_distribution",
    "letter_vs_option_test",
    "mean_distribution",
    "null_band",
    "null_bands",
    "null_responders",
    "random_answering_test",
    "shown_decisions",
]

ORDERS = ("fixed", "reversed", "permuted")
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _r(x: float | None, nd: int = 6) -> float | None:
    return None if x is None or math.isnan(x) else round(float(x), nd) + 0.0


@dataclass(frozen=True)
class NullResponder:
    """A responder without a social value: per item, the probability of each canonical option."""

    name: str
    description: str
    probs: np.ndarray  # (n_items, K)


def _instrument(instrument: Instrument | str, items: str = "primary") -> Instrument:
    if isinstance(instrument, Instrument):
        return instrument
    inst = load_instrument(instrument)
    return inst.subset(items) if inst.scoring == "slider" else inst


def null_responders(instrument: Instrument | str, order: str, items: str = "primary") -> list[NullResponder]:
    """The uniform responder and one always-same-letter responder per letter position, as
    canonical-option probabilities under the order condition ("fixed", "reversed", "permuted")."""
    if order not in ORDERS:
        raise ValueError(f"order={order!r}; allowed: {list(ORDERS)}")
    inst = _instrument(instrument, items)
    n, k = len(inst.items), inst.n_options
    out = [NullResponder("uniform", "each option with probability 1/K", np.full((n, k), 1.0 / k))]
    for j in range(k):
        letter = LETTERS[j]
        if order == "permuted":
            p = np.full((n, k), 1.0 / k)
            desc = f"always the {j + 1}th shown option; under permuted orders a uniform choice per item"
        else:
            canon = j if order == "fixed" else k - 1 - j
            p = np.zeros((n, k))
            p[:, canon] = 1.0
            desc = f"always the {j + 1}th shown option = canonical option {canon + 1} ({order} order)"
        out.append(NullResponder(f"letter {letter}", desc, p))
    return out


def _primary(inst: Instrument) -> np.ndarray:
    """Row indices of the primary (angle) items."""
    return np.array([i for i, it in enumerate(inst.items) if it.primary and it.ends], dtype=np.int64)


def angle_distribution(instrument: Instrument | str, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact distribution of one episode's SVO angle when the items are answered independently
    with probs (n_items, K) over canonical options: distinct angles (sorted) and their
    probabilities, by enumerating every choice vector of the primary items."""
    inst = _instrument(instrument)
    if inst.scoring != "slider":
        raise ValueError(f"instrument {inst.id!r} has no SVO angle (scoring {inst.scoring!r})")
    rows = _primary(inst)
    pay = inst.payoffs()[rows]
    p = np.asarray(probs, dtype=np.float64)[rows]
    m, k = p.shape
    s_tot = np.zeros((1,) * 0)
    o_tot = np.zeros((1,) * 0)
    w = np.ones((1,) * 0)
    for i in range(m):
        s_tot = np.add.outer(s_tot, pay[i, :, 0])
        o_tot = np.add.outer(o_tot, pay[i, :, 1])
        w = np.multiply.outer(w, p[i])
    s_tot, o_tot, w = s_tot.ravel(), o_tot.ravel(), w.ravel()
    keep = w > 0
    ang = np.degrees(np.arctan2(o_tot[keep] / m - inst.centre, s_tot[keep] / m - inst.centre))
    ang = svo.wrap_angle(ang)
    vals, inv = np.unique(np.round(ang, 10), return_inverse=True)
    return vals, np.bincount(inv, weights=w[keep])


_CACHE: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}


def _cached_distribution(inst: Instrument, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """angle_distribution, memoised on the primary items' payoffs and the probabilities."""
    key = (inst.payoffs()[_primary(inst)].tobytes(), inst.centre, probs[_primary(inst)].tobytes())
    if key not in _CACHE:
        if len(_CACHE) > 64:
            _CACHE.clear()
        _CACHE[key] = angle_distribution(inst, probs)
    return _CACHE[key]


def mean_distribution(
    values: np.ndarray, weights: np.ndarray, n: int, step: float = 0.005
) -> tuple[np.ndarray, np.ndarray]:
    """Distribution of the mean of n independent draws from a discrete distribution, on a grid.

    Each value moves to the nearest grid point (spacing `step`), then the n-fold convolution is
    exact on the grid (FFT): every quantile of the result is within step / 2 of the true one.
    n = 1 returns the distribution unchanged. Returns (grid values of the mean, probabilities).
    """
    if n < 1:
        raise ValueError(f"n={n} must be >= 1")
    v, w = np.asarray(values, dtype=np.float64), np.asarray(weights, dtype=np.float64)
    if n == 1:
        return v, w
    lo = v.min()
    idx = np.rint((v - lo) / step).astype(np.int64)
    pmf = np.bincount(idx, weights=w)
    size = n * (len(pmf) - 1) + 1
    nfft = 1 << (size - 1).bit_length()
    out = np.fft.irfft(np.fft.rfft(pmf, nfft) ** n, nfft)[:size]
    out = np.clip(out, 0.0, None)
    out /= out.sum()
    grid = lo + np.arange(size) * step / n
    keep = out > 1e-15
    return grid[keep], out[keep]


def _quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    cdf = np.cumsum(weights)
    return float(values[min(int(np.searchsorted(cdf, q * cdf[-1] - 1e-12)), len(values) - 1)])


@lru_cache(maxsize=64)
def _episode_types(instrument_id: str) -> tuple[np.ndarray, np.ndarray]:
    inst = load_instrument(instrument_id)
    k, m = inst.n_options, len(inst.items)
    grid = np.indices((k,) * m).reshape(m, -1).T
    return grid, np.asarray(svo.triple_dominance_type(grid, inst))


def _type_shares(inst: Instrument, probs: np.ndarray) -> dict[str, float]:
    grid, types = _episode_types(inst.id)
    p = np.asarray(probs, dtype=np.float64)
    w = np.prod(p[np.arange(p.shape[0]), grid], axis=1)
    names = list(svo.CATEGORIES) + [svo.UNDEFINED]
    return {t: _r(w[types == t].sum()) for t in names}


def null_band(
    instrument: Instrument | str,
    responder: NullResponder,
    n: int = 1,
    level: float = 0.95,
    *,
    items: str = "primary",
    step: float = 0.005,
) -> dict[str, Any]:
    """Where a null responder lands on an instrument, exactly (JSON-ready).

    Slider: for the mean angle of n episodes, mean, sd, band ([lo, hi], central `level`),
    categories (share of each category of the mean) and quantile_error (bound on the band's
    grid error: 0 for n = 1, step / 2 otherwise). Triple-Dominance: the type shares of one
    episode (an n-episode cell has n independent such draws).
    """
    inst = _instrument(instrument, items)
    out: dict[str, Any] = {
        "instrument": inst.id,
        "responder": responder.name,
        "description": responder.description,
        "n": n,
        "level": level,
    }
    if inst.scoring != "slider":
        out["types"] = _type_shares(inst, responder.probs)
        return out
    v, w = _cached_distribution(inst, np.ascontiguousarray(responder.probs, dtype=np.float64))
    mean = float((v * w).sum())
    sd = math.sqrt(max(float((w * (v - mean) ** 2).sum()), 0.0) / n)
    g, p = mean_distribution(v, w, n, step)
    a = (1.0 - level) / 2.0
    cats = svo.categorise(g)
    out.update(
        mean=_r(mean),
        sd=_r(sd),
        band=[_r(_quantile(g, p, a)), _r(_quantile(g, p, 1.0 - a))],
        categories={c: _r(p[cats == c].sum()) for c in svo.CATEGORIES},
        quantile_error=0.0 if n == 1 else step / 2.0,
    )
    return out


def null_bands(
    instrument: Instrument | str, order: str, n: int = 1, level: float = 0.95, *, items: str = "primary"
) -> list[dict[str, Any]]:
    """`null_band` of every null responder (uniform, then each letter) under an order condition;
    each dict also carries "order"."""
    return [
        {"order": order, **null_band(instrument, r, n, level, items=items)}
        for r in null_responders(instrument, order, items)
    ]


# -- per-cell tests -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShownDecision:
    """One answered item as shown: `order[j]` is the canonical option at shown position j;
    `choice` the shown position chosen (None = no valid answer)."""

    item: Hashable
    order: tuple[int, ...]
    choice: int | None


def shown_decisions(
    item_ids: Sequence[Hashable],
    shown_orders: Sequence[Sequence[int]],
    choices: Mapping[Hashable, int | None],
) -> list[ShownDecision]:
    """One episode's decisions as shown, from its stored form: the item ids in asked order, the
    shown order of each item (canonical option per shown position) and the canonical choice per
    item id (None = no valid answer)."""
    if len(item_ids) != len(shown_orders):
        raise ValueError(f"{len(item_ids)} item ids for {len(shown_orders)} shown orders")
    out = []
    for item, order in zip(item_ids, shown_orders, strict=True):
        c = choices.get(item)
        order = tuple(int(x) for x in order)
        out.append(ShownDecision(item, order, None if c is None else order.index(int(c))))
    return out


def _decisions(decisions: Sequence[ShownDecision | Mapping[str, Any]]) -> tuple[list, int]:
    out, invalid = [], 0
    for i, d in enumerate(decisions):
        if isinstance(d, Mapping):
            try:
                d = ShownDecision(d["item"], tuple(int(x) for x in d["order"]), d["choice"])
            except KeyError as e:
                raise ValueError(f"decision {i}: missing field {e}; needs item, order, choice") from None
        if d.choice is None:
            invalid += 1
            continue
        k = len(d.order)
        if sorted(d.order) != list(range(k)):
            raise ValueError(f"decision {i}: order {d.order} is not a permutation of 0..{k - 1}")
        if not 0 <= int(d.choice) < k:
            raise ValueError(f"decision {i}: choice {d.choice} outside 0..{k - 1}")
        out.append(d)
    ks = {len(d.order) for d in out}
    if len(ks) > 1:
        raise ValueError(f"decisions mix {sorted(ks)} options per item; test one instrument at a time")
    return out, invalid


def _encode(ds: list[ShownDecision]) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    items = sorted({d.item for d in ds}, key=repr)
    pos = {it: i for i, it in enumerate(items)}
    item = np.array([pos[d.item] for d in ds], dtype=np.int64)
    order = np.array([d.order for d in ds], dtype=np.int64)
    choice = np.array([d.choice for d in ds], dtype=np.int64)
    return item, order, choice, len(items), order.shape[1]


def _xlogx_ratio(counts: np.ndarray, expected: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(counts > 0, counts * np.log(counts / expected), 0.0)
    return t


def _g_stats(item: np.ndarray, canon: np.ndarray, letter: np.ndarray, n_items: int, k: int):
    """G statistics against uniform choice for batches: canon/letter (B, N). Returns (G_opt, G_let)."""
    b = canon.shape[0]
    rows = np.arange(b)[:, None]
    c_opt = np.zeros((b, n_items, k))
    np.add.at(c_opt, (rows, item[None, :], canon), 1.0)
    c_let = np.zeros((b, k))
    np.add.at(c_let, (rows, letter), 1.0)
    n_item = c_opt.sum(axis=-1, keepdims=True)
    g_opt = 2.0 * _xlogx_ratio(c_opt, np.maximum(n_item, 1.0) / k).sum(axis=(1, 2))
    g_let = 2.0 * _xlogx_ratio(c_let, c_let.sum(axis=-1, keepdims=True) / k).sum(axis=1)
    return g_opt, g_let


def random_answering_test(
    decisions: Sequence[ShownDecision | Mapping[str, Any]],
    *,
    n_sim: int = 9999,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """Are the choices distinguishable from uniform random answering?

    Statistics: G of the canonical-option counts per item against 1/K (df = items x (K-1)), G of
    the shown-position counts pooled over items against 1/K (df = K-1), and their combination
    max((G - df) / sqrt(2 df)) so that either kind of structure counts. p-values are Monte Carlo
    under uniform answering on the same shown orders, (1 + #simulated >= observed) / (1 + n_sim).
    Returns JSON-ready: n, n_invalid, g_option, df_option, p_option, g_letter, df_letter, p_letter,
    p_value (combined), distinguishable (p_value <= alpha), method.
    """
    ds, invalid = _decisions(decisions)
    out: dict[str, Any] = {"n": len(ds), "n_invalid": invalid, "alpha": alpha, "n_sim": n_sim}
    if not ds:
        return {**out, "p_value": None, "distinguishable": None, "reason": "no valid decision"}
    item, order, choice, n_items, k = _encode(ds)
    canon = order[np.arange(len(ds)), choice]
    g_opt, g_let = (x[0] for x in _g_stats(item, canon[None], choice[None], n_items, k))
    df_opt = len(np.unique(item)) * (k - 1)
    df_let = k - 1

    def comb(go, gl):
        return np.maximum((go - df_opt) / math.sqrt(2 * df_opt), (gl - df_let) / math.sqrt(2 * df_let))

    rng = np.random.default_rng(seed)
    e_opt = e_let = e_comb = 0
    obs_c = float(comb(g_opt, g_let))
    done = 0
    while done < n_sim:
        b = min(2000, n_sim - done)
        let = rng.integers(0, k, size=(b, len(ds)))
        can = np.take_along_axis(np.broadcast_to(order, (b,) + order.shape), let[..., None], axis=-1)[..., 0]
        so, sl = _g_stats(item, can, let, n_items, k)
        e_opt += int((so >= g_opt - 1e-9).sum())
        e_let += int((sl >= g_let - 1e-9).sum())
        e_comb += int((comb(so, sl) >= obs_c - 1e-9).sum())
        done += b
    p = (1 + e_comb) / (1 + n_sim)
    return {
        **out,
        "method": "G tests against uniform answering, Monte Carlo p-values",
        "g_option": _r(g_opt),
        "df_option": df_opt,
        "p_option": _r((1 + e_opt) / (1 + n_sim)),
        "g_letter": _r(g_let),
        "df_letter": df_let,
        "p_letter": _r((1 + e_let) / (1 + n_sim)),
        "p_value": _r(p),
        "distinguishable": bool(p <= alpha),
    }


def _loglik_models(item: np.ndarray, canon: np.ndarray, letter: np.ndarray, n_items: int, k: int):
    """Maximised log-likelihoods of the letter model and the option model, for batches (B, N)."""
    b = canon.shape[0]
    rows = np.arange(b)[:, None]
    c_opt = np.zeros((b, n_items, k))
    np.add.at(c_opt, (rows, item[None, :], canon), 1.0)
    c_let = np.zeros((b, k))
    np.add.at(c_let, (rows, letter), 1.0)
    n_item = c_opt.sum(axis=-1, keepdims=True)
    ll_o = _xlogx_ratio(c_opt, np.maximum(n_item, 1.0)).sum(axis=(1, 2))
    ll_l = _xlogx_ratio(c_let, c_let.sum(axis=-1, keepdims=True)).sum(axis=1)
    return ll_l, ll_o


def _shuffle_within(groups: np.ndarray, n_sim: int, rng: np.random.Generator) -> np.ndarray:
    """(n_sim, N) index arrays, each a random permutation of positions within every group."""
    n = len(groups)
    keys = rng.random((n_sim, n)) + groups[None, :] * 2.0  # sort by group, randomly inside it
    perm = np.argsort(keys, axis=1)
    base = np.argsort(groups, kind="stable")
    out = np.empty_like(perm)
    out[:, base] = perm
    return out


def letter_vs_option_test(
    decisions: Sequence[ShownDecision | Mapping[str, Any]],
    *,
    n_sim: int = 1999,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """Are the choices explained better by the letter shown than by the canonical option?

    Two randomisation tests, both exact (Monte Carlo over re-assignments of the shown orders
    among the decisions of each item, which is how the orders were assigned):
    - "no letter effect" (choices depend on the canonical option only): keep each decision's
      canonical choice, re-assign the orders, and compare the letter model's maximised
      log-likelihood (one distribution over shown positions for all items) with the observed one;
    - "no option effect" (choices depend on the shown position only): keep each decision's shown
      position, re-assign the orders, and compare the option model's (one distribution over
      canonical options per item).
    Verdict: "letter-following" (letter effect, no option effect), "option-following" (the
    reverse), "letter and option effects mixed" (both), "not distinguishable" (neither), or "not
    distinguishable: only one order condition" when every item was shown in one order only
    (letter and option are then confounded). Pass the decisions of all order conditions of a
    cell group: one order alone is confounded. Returns JSON-ready: n, n_invalid, loglik_letter,
    loglik_option, p_letter_effect, p_option_effect, verdict, method.
    """
    ds, invalid = _decisions(decisions)
    out: dict[str, Any] = {"n": len(ds), "n_invalid": invalid, "alpha": alpha, "n_sim": n_sim}
    if not ds:
        return {**out, "verdict": "not distinguishable: no valid decision"}
    item, order, choice, n_items, k = _encode(ds)
    orders_per_item: dict[int, set] = {}
    for i, o in zip(item.tolist(), map(tuple, order.tolist()), strict=True):
        orders_per_item.setdefault(i, set()).add(o)
    if all(len(v) == 1 for v in orders_per_item.values()):
        return {**out, "verdict": "not distinguishable: only one order condition"}
    n = len(ds)
    canon = order[np.arange(n), choice]
    ll_l, ll_o = (x[0] for x in _loglik_models(item, canon[None], choice[None], n_items, k))
    rng = np.random.default_rng(seed)
    idx = _shuffle_within(item, n_sim, rng)
    new_order = order[idx]  # (n_sim, N, K): orders re-assigned within items
    inv = np.argsort(new_order, axis=-1)  # shown position of each canonical option
    # no letter effect: canonical choices fixed, letters follow the re-assigned orders
    let = np.take_along_axis(inv, canon[None, :, None].repeat(n_sim, 0), axis=-1)[..., 0]
    a, _ = _loglik_models(item, np.broadcast_to(canon, (n_sim, n)), let, n_items, k)
    p_let = (1 + int((a >= ll_l - 1e-9).sum())) / (1 + n_sim)
    # no option effect: shown positions fixed, canonical options follow the re-assigned orders
    can = np.take_along_axis(new_order, choice[None, :, None].repeat(n_sim, 0), axis=-1)[..., 0]
    _, b = _loglik_models(item, can, np.broadcast_to(choice, (n_sim, n)), n_items, k)
    p_opt = (1 + int((b >= ll_o - 1e-9).sum())) / (1 + n_sim)
    verdict = {
        (True, False): "letter-following",
        (False, True): "option-following",
        (True, True): "letter and option effects mixed",
        (False, False): "not distinguishable",
    }[(p_let <= alpha, p_opt <= alpha)]
    return {
        **out,
        "method": "randomisation tests re-assigning the shown orders within items",
        "loglik_letter": _r(ll_l),
        "loglik_option": _r(ll_o),
        "p_letter_effect": _r(p_let),
        "p_option_effect": _r(p_opt),
        "verdict": verdict,
    }
