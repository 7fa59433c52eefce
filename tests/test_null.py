"""scoring.null: exact null bands against the published figures and independent computations,
and the per-cell tests against random and letter-following answering."""

import itertools
import math

import numpy as np
import pytest

from scenarios import load_instrument
from scoring import svo
from scoring.null import (
    ShownDecision,
    angle_distribution,
    letter_vs_option_test,
    mean_distribution,
    null_band,
    null_bands,
    null_responders,
    random_answering_test,
    shown_decisions,
)

PRIMARY = load_instrument("slider").subset("primary")
PAY = PRIMARY.payoffs()
IDENT, REV = tuple(range(9)), tuple(range(8, -1, -1))


def test_uniform_responder_matches_published_figures():
    (b,) = [x for x in null_bands("slider", "fixed") if x["responder"] == "uniform"]
    assert b["mean"] == pytest.approx(22.70, abs=0.005)
    assert b["sd"] == pytest.approx(12.9, abs=0.05)
    assert b["categories"]["prosocial"] == pytest.approx(0.507, abs=0.0005)
    assert b["categories"]["individualistic"] == pytest.approx(0.492, abs=0.0005)
    assert b["categories"]["altruistic"] + b["categories"]["competitive"] < 0.001


def test_uniform_band_agrees_with_brute_force_enumeration():
    # an independent computation: all 9^6 vectors through svo_angle, no shortcut
    ks = np.array(list(itertools.product(range(9), repeat=6)), dtype=np.int8)
    chosen = PAY[np.arange(6), ks]
    a = svo.svo_angle(chosen[..., 0], chosen[..., 1])
    b = null_band("slider", null_responders("slider", "fixed")[0])
    assert b["mean"] == pytest.approx(a.mean(), abs=1e-6)
    assert b["sd"] == pytest.approx(a.std(), abs=1e-6)
    srt = np.sort(a)
    assert b["band"] == pytest.approx(
        [srt[math.ceil(0.025 * len(a)) - 1], srt[math.ceil(0.975 * len(a)) - 1]], abs=1e-6
    )
    cats = svo.categorise(a)
    for c in svo.CATEGORIES:
        assert b["categories"][c] == pytest.approx((cats == c).mean(), abs=1e-6)


@pytest.mark.parametrize(
    ("order", "letter", "angle"),
    [("fixed", "A", 30.47), ("fixed", "I", 14.74), ("reversed", "A", 14.74), ("reversed", "I", 30.47)],
)
def test_always_one_letter(order, letter, angle):
    (b,) = [x for x in null_bands("slider", order) if x["responder"] == f"letter {letter}"]
    assert b["mean"] == pytest.approx(angle, abs=0.005) and b["sd"] == 0.0
    assert b["band"][0] == b["band"][1] == b["mean"]


def test_all_items_instrument_uses_the_primary_angle():
    full = null_bands("slider", "fixed", items="all")
    prim = null_bands("slider", "fixed")
    for f, p in zip(full, prim, strict=True):
        assert (f["mean"], f["sd"], f["band"]) == (p["mean"], p["sd"], p["band"])


def test_under_permuted_orders_a_letter_follower_is_a_uniform_chooser():
    # enumerate all 9! shown orders: letter k shows each canonical option in exactly 8! of them
    perms = np.array(list(itertools.permutations(range(9))), dtype=np.int8)
    counts = np.stack([np.bincount(perms[:, k], minlength=9) for k in range(9)])
    assert len(perms) == math.factorial(9) and (counts == math.factorial(8)).all()
    uniform = null_responders("slider", "permuted")[0].probs
    for r in null_responders("slider", "permuted")[1:]:
        assert np.array_equal(r.probs, uniform)
    bands = null_bands("slider", "permuted")
    assert all(b["mean"] == bands[0]["mean"] and b["band"] == bands[0]["band"] for b in bands)


def test_mean_of_n_convolution_is_exact_on_small_cases_and_agrees_with_sampling():
    v, w = np.array([-1.0, 0.5, 2.0]), np.array([0.2, 0.5, 0.3])
    g, p = mean_distribution(v, w, 3, step=0.5)
    exact: dict[float, float] = {}
    for trip in itertools.product(range(3), repeat=3):
        m = round(float(v[list(trip)].mean()), 9)
        exact[m] = exact.get(m, 0.0) + float(np.prod(w[list(trip)]))
    got = {round(float(x), 9): float(q) for x, q in zip(g, p, strict=True)}
    assert got.keys() == exact.keys()
    assert all(got[k] == pytest.approx(exact[k], abs=1e-12) for k in exact)
    # n = 10 episodes of the uniform responder: exact band vs 200,000 sampled cells
    b = null_band("slider", null_responders("slider", "fixed")[0], n=10)
    v, w = angle_distribution(PRIMARY, np.full((6, 9), 1 / 9))
    rng = np.random.default_rng(0)
    means = rng.choice(v, size=(200_000, 10), p=w).mean(axis=1)
    assert b["mean"] == pytest.approx(means.mean(), abs=0.03)
    assert b["sd"] == pytest.approx(12.865543 / math.sqrt(10), abs=1e-5)
    assert b["band"] == pytest.approx(np.quantile(means, [0.025, 0.975]), abs=0.1)
    assert b["categories"]["prosocial"] == pytest.approx(
        (svo.categorise(means) == "prosocial").mean(), abs=0.005
    )


def test_triple_dominance_type_shares_match_the_binomial():
    # each item offers one option per type, so a uniform chooser's count of one type is Bin(9, 1/3)
    b = null_bands("triple_dominance", "fixed")[0]
    p6 = sum(math.comb(9, k) * (1 / 3) ** k * (2 / 3) ** (9 - k) for k in range(6, 10))
    for t in ("prosocial", "individualistic", "competitive"):
        assert b["types"][t] == pytest.approx(p6, abs=1e-6)
    assert b["types"]["undefined"] == pytest.approx(1 - 3 * p6, abs=1e-6)
    assert "angle" not in b and "band" not in b
    # always "A" (fixed order): 3 of each type, unclassified
    assert null_bands("triple_dominance", "fixed")[1]["types"]["undefined"] == 1.0


def _decisions(chooser, n_episodes, orders, rng):
    out = []
    for _ in range(n_episodes):
        for o in orders:
            for item in range(6):
                order = o if o != "perm" else tuple(int(x) for x in rng.permutation(9))
                out.append(ShownDecision(item, order, chooser(item, order, rng)))
    return out


def test_random_answering_test_keeps_its_level_and_finds_structure():
    rng = np.random.default_rng(5)
    rej = 0
    for rep in range(100):
        ds = _decisions(lambda i, o, r: int(r.integers(9)), 5, [IDENT, REV], rng)
        rej += random_answering_test(ds, n_sim=199, seed=rep)["distinguishable"]
    assert rej <= 10  # 5% level, 100 replications: 10 is beyond 2 SE
    always_a = _decisions(lambda i, o, r: 0, 2, [IDENT], rng)
    assert random_answering_test(always_a, n_sim=199)["distinguishable"]
    # a letter follower under permuted orders: canonical choices look uniform, the letters do not
    perm_a = _decisions(lambda i, o, r: 0, 10, ["perm"], rng)
    t = random_answering_test(perm_a, n_sim=199)
    assert t["distinguishable"] and t["p_letter"] <= 0.01 and t["p_option"] > 0.01


def test_letter_vs_option_verdicts():
    rng = np.random.default_rng(6)
    letter = _decisions(lambda i, o, r: 0, 5, [IDENT, REV], rng)
    assert letter_vs_option_test(letter)["verdict"] == "letter-following"
    option = _decisions(lambda i, o, r: o.index(2), 5, [IDENT, REV], rng)
    assert letter_vs_option_test(option)["verdict"] == "option-following"
    one = _decisions(lambda i, o, r: 0, 5, [IDENT], rng)
    assert letter_vs_option_test(one)["verdict"] == "not distinguishable: only one order condition"
    mixed = _decisions(lambda i, o, r: 0 if r.random() < 0.5 else o.index(2), 5, [IDENT, REV], rng)
    assert letter_vs_option_test(mixed)["verdict"] == "letter and option effects mixed"
    # the default run's shape: one trial, fixed and reversed, always "A"
    one_trial = _decisions(lambda i, o, r: 0, 1, [IDENT, REV], rng)
    assert letter_vs_option_test(one_trial)["verdict"] == "letter-following"


def test_letter_vs_option_keeps_its_level_for_random_answering():
    rng = np.random.default_rng(8)
    rej = np.zeros(2)
    for rep in range(100):
        ds = _decisions(lambda i, o, r: int(r.integers(9)), 5, [IDENT, REV], rng)
        t = letter_vs_option_test(ds, n_sim=199, seed=rep)
        rej += [t["p_letter_effect"] <= 0.05, t["p_option_effect"] <= 0.05]
    assert (rej <= 10).all(), rej


def test_bad_decisions_are_named():
    with pytest.raises(ValueError, match="decision 0: order"):
        random_answering_test([ShownDecision(1, (0, 0, 1), 0)])
    with pytest.raises(ValueError, match="missing field"):
        random_answering_test([{"item": 1, "order": [0, 1]}])
    t = random_answering_test([ShownDecision(1, (0, 1, 2), None)])
    assert t["n_invalid"] == 1 and t["distinguishable"] is None


def test_shown_decisions_from_a_stored_episode():
    ds = shown_decisions([1, 2], [list(REV), list(IDENT)], {1: 8, 2: None})
    assert ds == [ShownDecision(1, REV, 0), ShownDecision(2, IDENT, None)]
    with pytest.raises(ValueError, match="2 item ids for 1"):
        shown_decisions([1, 2], [list(REV)], {})
