"""scoring.letter_prior: a simulated "model" with a known letter prior and known option
preferences; the estimate must recover both, equal PriDe's mean-log formula on a balanced design,
and refuse where the orders cannot separate letters from options."""

import numpy as np
import pytest

from scenarios import load_instrument
from scoring import svo
from scoring.letter_prior import ProbDecision, debias, episode_angles, estimate_letter_prior

K = 9
PRIMARY = load_instrument("slider").subset("primary")


def _model(seed: int):
    rng = np.random.default_rng(seed)
    prior = rng.dirichlet(np.full(K, 0.7))
    prefs = {
        (v, item): rng.dirichlet(np.full(K, 0.5))
        for v in ("prosocial", "competitive")
        for item in range(1, 7)
    }
    return rng, prior, prefs


def _decisions(rng, prior, prefs, orders, reps, noise=0.0):
    out = []
    for r in range(reps):
        for ctx, q in prefs.items():
            o = orders(r, rng)
            p = prior * q[o] * np.exp(noise * rng.normal(size=K))
            out.append(ProbDecision(ctx, tuple(int(x) for x in o), tuple(float(x) for x in p / p.sum())))
    return out


def _permuted(r, rng):
    return rng.permutation(K)


def test_recovers_a_known_prior_and_known_preferences():
    rng, prior, prefs = _model(0)
    est = estimate_letter_prior(_decisions(rng, prior, prefs, _permuted, 6))
    assert est.identified and est.residual_sd < 1e-9
    assert np.abs(est.prior - prior).max() < 1e-9
    assert max(np.abs(est.preferences[c] - q).max() for c, q in prefs.items()) < 1e-9
    # with noise on every log-probability (SD 0.3), still close
    noisy = estimate_letter_prior(_decisions(rng, prior, prefs, _permuted, 20, noise=0.3))
    assert np.abs(noisy.prior - prior).max() < 0.02
    assert noisy.residual_sd == pytest.approx(0.3, rel=0.15)


def test_debiased_distribution_is_the_true_preference():
    rng, prior, prefs = _model(1)
    ds = _decisions(rng, prior, prefs, _permuted, 5)
    est = estimate_letter_prior(ds)
    for d in ds[:20]:
        assert np.abs(est.debias(d.order, d.probs) - prefs[d.context]).max() < 1e-9
        raw = np.zeros(K)
        raw[list(d.order)] = d.probs
        assert np.abs(raw - prefs[d.context]).max() > 1e-3  # the raw one is biased


def test_equals_pride_mean_log_on_a_balanced_design():
    # cyclic shifts: every option at every letter exactly once per context (PriDe's design)
    rng, prior, prefs = _model(2)
    ds = _decisions(rng, prior, prefs, lambda r, g: np.roll(np.arange(K), r), K, noise=0.2)
    est = estimate_letter_prior(ds)
    logp = np.log(np.array([d.probs for d in ds]))
    pride = (logp - logp.mean(axis=1, keepdims=True)).mean(axis=0)
    pride = np.exp(pride) / np.exp(pride).sum()
    assert np.abs(est.prior - pride).max() < 1e-9


def test_refuses_when_orders_cannot_separate_letters_from_options():
    rng, prior, prefs = _model(3)
    fixed = estimate_letter_prior(_decisions(rng, prior, prefs, lambda r, g: np.arange(K), 4))
    assert not fixed.identified and "one order only" in fixed.reason and fixed.prior is None
    both = estimate_letter_prior(_decisions(rng, prior, prefs, lambda r, g: np.arange(K)[:: (-1) ** r], 4))
    assert not both.identified and "antisymmetric" in both.reason
    assert both.debias(tuple(range(K)), (1 / K,) * K) is None


def test_incomplete_decisions_are_left_out_and_counted():
    rng, prior, prefs = _model(4)
    ds = _decisions(rng, prior, prefs, _permuted, 4)
    ds.append(ProbDecision(("prosocial", 1), tuple(range(K)), (None,) + (0.125,) * 8))
    est = estimate_letter_prior(ds)
    assert est.identified and est.n_excluded == 1 and est.n_used == len(ds) - 1
    assert debias(est.prior, tuple(range(K)), (None,) + (0.125,) * 8) is None
    with pytest.raises(ValueError, match="decision 0"):
        estimate_letter_prior([ProbDecision("c", (0, 1), (0.5,))])


def test_from_letters_maps_shown_letters_to_positions():
    d = ProbDecision.from_letters("c", (2, 0, 1), {"A": 0.5, "B": 0.3})
    assert d.order == (2, 0, 1) and d.probs == (0.5, 0.3, None)


def test_episode_angles_raw_and_debiased():
    first = {it.id: np.eye(K)[0] for it in PRIMARY.items}
    a = episode_angles(PRIMARY, first)
    assert a["angle_argmax"] == pytest.approx(30.47, abs=0.005) == a["angle_expected"]
    half = {it.id: 0.5 * np.eye(K)[0] + 0.5 * np.eye(K)[8] for it in PRIMARY.items}
    pay = PRIMARY.payoffs()
    alloc = 0.5 * pay[:, 0] + 0.5 * pay[:, 8]
    assert episode_angles(PRIMARY, half)["angle_expected"] == pytest.approx(
        float(svo.svo_angle(alloc[:, 0], alloc[:, 1])), abs=1e-6
    )
    assert episode_angles(PRIMARY, {1: first[1]}) == {"angle_argmax": None, "angle_expected": None}
