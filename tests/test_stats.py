"""scoring.stats: rates with their counts, Student-t and paired intervals whose coverage is
measured against simulated agents with known true means, position bias with its null, circular
statistics.

Coverage checks: softmax-utility agents answer the 6 primary slider items; the true mean of their
episode angle is computed exactly by enumerating all 9^6 choice vectors (scoring.null), so the
check does not depend on the code under test. 4,000 replications per case: a coverage of 0.95 is
estimated within +-0.007 (2 SE), so [0.92, 0.98] fails only on a real miscalibration.
"""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scenarios import load_instrument
from scoring.episode import score_episode
from scoring.null import angle_distribution
from scoring.simulate import slider_episode_angles, softmax_probs
from scoring.stats import (
    Rate,
    cell_summary,
    circular_summary,
    goal_effect,
    mean_interval,
    paired_difference,
    position_bias,
    rate,
    rationality_interval,
    t_quantile,
)

SLIDER = load_instrument("slider").subset("primary")
PAY = SLIDER.payoffs()


def _score(option: int, target: str = "prosocial", missing: int = 0) -> dict:
    choices = {it.id: option for it in SLIDER.items}
    for it in SLIDER.items[:missing]:
        choices[it.id] = None
    return score_episode(SLIDER, choices, target)


def _true_mean(probs: np.ndarray) -> float:
    v, w = angle_distribution(SLIDER, probs)
    return float(v @ w)


def _t_cover(a: np.ndarray, mu: float, level: float = 0.95) -> np.ndarray:
    """Vectorised Student-t coverage over the last axis (no interval counts as a miss)."""
    n = a.shape[-1]
    m, s = a.mean(axis=-1), a.std(axis=-1, ddof=1)
    half = t_quantile(0.5 + level / 2, n - 1) * s / math.sqrt(n)
    return (s > 0) & (np.abs(m - mu) <= half)


def test_rate_keeps_numerator_and_denominator():
    r = rate([True, False, True, True])
    assert (r.numerator, r.denominator, r.value) == (3, 4, 0.75)
    assert r.as_dict() == {"k": 3, "n": 4, "rate": 0.75}
    assert Rate(0, 0).value is None and str(Rate(0, 0)) == "0/0"


@pytest.mark.parametrize(
    ("df", "q975"),
    # printed tables of Student's t (two-sided 95%)
    [(1, 12.706), (2, 4.303), (4, 2.776), (9, 2.262), (19, 2.093), (30, 2.042), (1e7, 1.960)],
)
def test_t_quantile_matches_printed_tables(df, q975):
    assert t_quantile(0.975, df) == pytest.approx(q975, abs=6e-4)
    assert t_quantile(0.025, df) == pytest.approx(-q975, abs=6e-4)


def test_t_quantile_matches_scipy_where_installed():
    scipy_stats = pytest.importorskip("scipy.stats")
    for df in (1, 1.5, 7.3, 120):
        for p in (0.6, 0.975, 0.001):
            assert t_quantile(p, df) == pytest.approx(scipy_stats.t.ppf(p, df), rel=1e-9)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-100, 100, allow_nan=False), min_size=0, max_size=12))
def test_never_a_zero_width_interval(xs):
    iv = mean_interval(xs)
    if iv.ci is None:
        assert iv.reason
    else:
        assert iv.hi > iv.lo and iv.lo <= iv.estimate <= iv.hi


def test_no_variation_and_too_few_are_reasons_not_intervals():
    iv = mean_interval([30.47, 30.47, 30.47])
    assert iv.ci is None and iv.reason == "no variation in n=3" and iv.estimate == 30.47
    assert mean_interval([1.0]).reason == "n=1: an interval needs at least 2 observations"
    assert mean_interval([None, float("nan")]).estimate is None


@pytest.mark.parametrize("n", [5, 10, 20])
@pytest.mark.parametrize(("angle", "temperature"), [(0.0, 3.0), (20.0, 10.0), (45.0, 3.0), (60.0, 10.0)])
def test_mean_angle_interval_covers_at_nominal_rate(n, angle, temperature):
    probs = softmax_probs(PAY, angle, temperature)
    a = slider_episode_angles(SLIDER, probs, (4000, n), np.random.default_rng(n))
    cover = _t_cover(a, _true_mean(probs)).mean()
    assert 0.92 <= cover <= 0.98, cover


def test_paired_goal_effect_covers_at_nominal_rate():
    # goal on and off of one trial share the seed: common random numbers make them correlated
    p_on, p_off = softmax_probs(PAY, 45.0, 5.0), softmax_probs(PAY, 10.0, 5.0)
    cdf_on, cdf_off = np.cumsum(p_on, 1), np.cumsum(p_off, 1)
    r = np.random.default_rng(7).random((4000, 10, 6, 1))
    pick = np.arange(6)

    def angles(cdf):
        c = PAY[pick, np.minimum((r > cdf).sum(-1), 8)]
        return np.degrees(np.arctan2(c[..., 1].mean(-1) - 50, c[..., 0].mean(-1) - 50))

    d = angles(cdf_on) - angles(cdf_off)
    truth = _true_mean(p_on) - _true_mean(p_off)
    assert np.corrcoef(angles(cdf_on)[:, 0], angles(cdf_off)[:, 0])[0, 1] > 0.3  # really paired
    cover = _t_cover(d, truth).mean()
    assert 0.92 <= cover <= 0.98, cover
    # and the function itself gives the same interval as the vectorised check on one replicate
    e = paired_difference(list(angles(cdf_off)[0]), list(angles(cdf_on)[0]))
    assert e["method"] == "paired-t" and e["n_pairs"] == 10
    assert e["diff"] == pytest.approx(d[0].mean(), abs=1e-6)
    half = t_quantile(0.975, 9) * d[0].std(ddof=1) / math.sqrt(10)
    assert e["ci"] == pytest.approx([d[0].mean() - half, d[0].mean() + half], abs=1e-5)


def test_paired_uses_pairs_and_says_when_it_falls_back_to_welch():
    a = {1: 10.0, 2: 12.0, 3: 11.0, 4: None}
    b = {1: 20.0, 2: 23.0, 3: 21.0, 5: 30.0}
    e = paired_difference(a, b)
    assert e["method"] == "paired-t" and e["n_pairs"] == 3 and e["n_unpaired"] == 1
    assert e["diff"] == pytest.approx(10.333333, abs=1e-6)
    w = paired_difference({1: 10.0, 2: 12.0}, {3: 20.0, 4: 23.0})
    assert w["method"] == "welch-t" and w["n_pairs"] == 0 and w["ci"] is not None
    assert paired_difference([1.0, 2.0], [2.0, 3.0])["reason"] == "no variation in n=2 paired differences"


def test_rationality_interval_is_the_range_over_the_angle_interval():
    iv = mean_interval([18.0, 20.0, 25.0, 27.0])  # straddles the prosocial bound 22.45
    r = rationality_interval(iv, "prosocial", "interval")
    grid = np.linspace(iv.lo, iv.hi, 20001)
    from scoring import svo

    f = svo.paper_scale(svo.value_rationality(grid, "prosocial", "interval"))
    assert (r.lo, r.hi) == pytest.approx((f.min(), f.max()), abs=1e-3)
    assert r.hi == 60.0
    ideal = rationality_interval(iv, "prosocial", "ideal")
    f = svo.paper_scale(svo.value_rationality(grid, "prosocial", "ideal"))
    assert (ideal.lo, ideal.hi) == pytest.approx((f.min(), f.max()), abs=1e-3)


def test_cell_summary_of_a_first_letter_chooser():
    cell = cell_summary([_score(0), _score(0)], "prosocial")
    assert cell["angle_mean"] == pytest.approx(30.47, abs=0.01)  # published: option 1 everywhere
    assert cell["angle_ci"] is None and cell["angle_ci_reason"] == "no variation in n=2"
    assert cell["category_of_mean"] == "prosocial"
    assert cell["hit"] == {"k": 2, "n": 2, "rate": 1.0}
    assert cell["rationality_interval"] == 60.0
    assert cell["rationality_interval_ci"] is None
    assert cell["rationality_ideal"] == pytest.approx(60 - (37.48 - 30.47), abs=0.02)
    assert cell["invalid"] == {"k": 0, "n": 12, "rate": 0.0}


def test_cell_summary_interval_is_student_t():
    scores = [_score(k) for k in (0, 2, 4, 8)]
    cell = cell_summary(scores, "prosocial")
    a = np.array([s["angle"] for s in scores])
    half = t_quantile(0.975, 3) * a.std(ddof=1) / 2
    assert cell["angle_ci"] == pytest.approx([a.mean() - half, a.mean() + half], abs=1e-5)
    assert cell["angle_ci_method"] == "student-t"
    lo, hi = cell["rationality_ideal_ci"]
    assert lo <= cell["rationality_ideal"] <= hi


def test_invalid_answers_are_counted_and_leave_the_angle_out():
    cell = cell_summary([_score(0), _score(4, missing=2)], "prosocial")
    assert cell["invalid"] == {"k": 2, "n": 12, "rate": pytest.approx(2 / 12, abs=1e-6)}
    assert cell["n_angle"] == 1
    assert cell["hit"]["k"] == 1 and cell["hit"]["n"] == 2  # an undefined category is a miss
    assert cell["angle_ci"] is None and cell["angle_ci_reason"].startswith("n=1")


def test_dedupe_counts_identical_observations_once():
    scores = [_score(0)] * 5 + [_score(8)]
    keys = ["a"] * 5 + ["b"]
    plain = cell_summary(scores, "prosocial", observation_keys=keys)
    once = cell_summary(scores, "prosocial", observation_keys=keys, dedupe=True)
    assert plain["n_distinct"] == once["n_distinct"] == 2
    assert plain["n_used"] == 6 and once["n_used"] == 2
    assert once["angle_mean"] == pytest.approx((30.47 + 14.74) / 2, abs=0.01)
    assert once["invalid"]["n"] == 12


def test_position_bias_of_a_first_letter_chooser():
    b = position_bias({"fixed": [30.47, 30.47], "reversed": [14.74, 14.74]})
    assert b["index"] == pytest.approx(15.73, abs=1e-6)
    assert b["paired"] and b["pairs"][0]["diff"] == pytest.approx(-15.73, abs=1e-6)
    assert b["index_ci"] is None and "no variation" in b["index_ci_reason"]
    # exact sign-flip test: with 2 trials, the observed labelling and its mirror: p = 2/4
    assert b["test"]["method"] == "exact within-trial relabelling" and b["test"]["p_value"] == 0.5
    assert position_bias({"fixed": [1.0, 2.0]}) is None


def test_position_bias_test_and_noise_floor_under_the_null():
    # no order effect: both orders draw from the same softmax agent; 10 trials per order
    probs = softmax_probs(PAY, 30.0, 8.0)
    a = slider_episode_angles(SLIDER, probs, (300, 10, 2), np.random.default_rng(3))
    rejected, floors, index = 0, [], []
    for rep in a:
        b = position_bias({"fixed": list(rep[:, 0]), "reversed": list(rep[:, 1])}, seed=1)
        rejected += b["test"]["p_value"] <= 0.05
        floors.append(b["test"]["noise_floor"])
        index.append(b["index"])
    assert rejected / len(a) <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / len(a))
    # the index of a mean difference is biased upward without any effect; the floor shows by how much
    assert np.mean(index) > 1.0 and np.mean(np.array(index) <= np.array(floors)) >= 0.93


def test_position_bias_detects_a_letter_effect_and_its_interval_covers():
    # a letter-biased agent: answers the first shown option 80% of the time (index 12.1 degrees)
    p = softmax_probs(PAY, 30.0, 8.0)
    fixed, rev = 0.2 * p, 0.2 * p
    fixed[:, 0] += 0.8
    rev[:, -1] += 0.8
    truth = abs(_true_mean(fixed) - _true_mean(rev))
    rng = np.random.default_rng(4)
    af = slider_episode_angles(SLIDER, fixed, (200, 20), rng)
    ar = slider_episode_angles(SLIDER, rev, (200, 20), rng)
    res = [
        position_bias({"fixed": list(x), "reversed": list(y)}, n_perm=999)
        for x, y in zip(af, ar, strict=True)
    ]
    assert np.mean([b["test"]["p_value"] <= 0.05 for b in res]) > 0.8
    assert np.mean([b["index_ci"][0] <= truth <= b["index_ci"][1] for b in res]) >= 0.92


def test_position_bias_three_orders_is_exact_and_bonferroni():
    b = position_bias({"fixed": [30, 31, 29, 33], "reversed": [14, 16, 15, 15], "permuted": [22, 23, 20, 25]})
    assert b["test"]["n_relabellings"] == 6**4 and b["test"]["p_value"] < 0.01
    assert b["index"] == pytest.approx(15.75)
    lo, hi = b["index_ci"]
    assert lo < 15.75 < hi and len(b["pairs"]) == 3


def test_goal_effect_is_paired_by_trial():
    rng = np.random.default_rng(0)
    shared = rng.normal(0.0, 5.0, 30)  # the trial's seed moves both conditions
    on = 37.0 + shared + rng.normal(0.0, 1.0, 30)  # on the prosocial ideal
    off = 0.0 + shared + rng.normal(0.0, 1.0, 30)  # individualistic: far from prosocial
    e = goal_effect(list(on), list(off), "prosocial", "interval")
    assert e["angle_diff_method"] == "paired-t" and e["n_pairs"] == 30
    lo, hi = e["angle_diff_ci"]
    assert hi - lo < 1.5  # the shared part cancels; unpaired would be about 5 wide
    assert lo < 37.0 < hi
    assert e["rationality_diff"] == pytest.approx(
        60.0 - float(np.clip(60 - (22.45 - off.mean()), 0, 60)), abs=1e-3
    )
    rlo, rhi = e["rationality_diff_ci"]
    assert rlo <= e["rationality_diff"] <= rhi
    assert goal_effect([], list(off), "prosocial") is None


def test_circular_summary_does_not_average_across_the_cut():
    s = circular_summary([23.15, -157.7])
    assert s["mean"] == pytest.approx(112.725, abs=1e-3)  # never the arithmetic -67.3
    assert s["resultant_length"] == pytest.approx(0.00742, abs=1e-4)
    s = circular_summary([170.0, -170.0, 180.0])
    assert abs(s["mean"]) == pytest.approx(180.0) and s["resultant_length"] > 0.98
    assert circular_summary([]) == {"n": 0, "mean": None, "resultant_length": None, "circular_sd": None}


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(-1440, 1440), min_size=1, max_size=8), st.integers(-3, 3))
def test_circular_summary_is_periodic(eighths, turns):
    a = np.array(eighths) / 8.0
    s1, s2 = circular_summary(a), circular_summary(a + 360.0 * turns)
    assert s1["resultant_length"] == pytest.approx(s2["resultant_length"], abs=1e-9)
    if s1["resultant_length"] > 1e-6:
        d = (s1["mean"] - s2["mean"] + 180.0) % 360.0 - 180.0
        assert abs(d) < 1e-6
