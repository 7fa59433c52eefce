"""scoring.stats: rates with their counts, seeded bootstrap, dedupe, position bias, goal effect."""

import numpy as np
import pytest

from scenarios import load_instrument
from scoring.episode import score_episode
from scoring.stats import Rate, bootstrap_ci, cell_summary, distinct_indices, goal_effect, position_bias, rate

SLIDER = load_instrument("slider").subset("primary")


def _score(option: int, target: str = "prosocial", missing: int = 0) -> dict:
    choices = {it.id: option for it in SLIDER.items}
    for it in SLIDER.items[:missing]:
        choices[it.id] = None
    return score_episode(SLIDER, choices, target)


def test_rate_keeps_numerator_and_denominator():
    r = rate([True, False, True, True])
    assert (r.numerator, r.denominator, r.value) == (3, 4, 0.75)
    assert r.as_dict() == {"k": 3, "n": 4, "rate": 0.75}
    assert Rate(0, 0).value is None and str(Rate(0, 0)) == "0/0"


def test_bootstrap_is_seeded_and_brackets_the_mean():
    x = np.random.default_rng(1).normal(10.0, 2.0, size=200)
    a = bootstrap_ci(x, seed=7)
    assert a == bootstrap_ci(x, seed=7)
    assert a != bootstrap_ci(x, seed=8)
    lo, hi = a
    assert lo < x.mean() < hi
    # the width of a 95% interval of a mean is about 2 * 1.96 * sd / sqrt(n)
    assert hi - lo == pytest.approx(2 * 1.96 * x.std(ddof=1) / np.sqrt(x.size), rel=0.2)
    assert bootstrap_ci([3.0]) is None


def test_cell_summary_of_a_first_letter_chooser():
    cell = cell_summary([_score(0), _score(0)], "prosocial", seed=0)
    assert cell["angle_mean"] == pytest.approx(30.47, abs=0.01)  # published: option 1 everywhere
    assert cell["category_of_mean"] == "prosocial"
    assert cell["hit"] == {"k": 2, "n": 2, "rate": 1.0}
    assert cell["rationality_interval"] == 60.0
    assert cell["rationality_ideal"] == pytest.approx(60 - (37.48 - 30.47), abs=0.02)
    assert cell["invalid"] == {"k": 0, "n": 12, "rate": 0.0}


def test_invalid_answers_are_counted_and_leave_the_angle_out():
    cell = cell_summary([_score(0), _score(4, missing=2)], "prosocial", seed=0)
    assert cell["invalid"] == {"k": 2, "n": 12, "rate": pytest.approx(2 / 12, abs=1e-6)}
    assert cell["n_angle"] == 1
    assert cell["hit"]["k"] == 1 and cell["hit"]["n"] == 2  # an undefined category is a miss
    assert cell["angle_ci"] is None  # one angle: no interval


def test_dedupe_counts_identical_observations_once():
    scores = [_score(0)] * 5 + [_score(8)]
    keys = ["a"] * 5 + ["b"]
    assert distinct_indices(keys) == [0, 5]
    plain = cell_summary(scores, "prosocial", observation_keys=keys, seed=0)
    once = cell_summary(scores, "prosocial", observation_keys=keys, dedupe=True, seed=0)
    assert plain["n_distinct"] == once["n_distinct"] == 2
    assert plain["n_used"] == 6 and once["n_used"] == 2
    assert once["angle_mean"] == pytest.approx((30.47 + 14.74) / 2, abs=0.01)
    assert once["invalid"]["n"] == 12


def test_position_bias_of_a_first_letter_chooser():
    b = position_bias({"fixed": [30.47, 30.47], "reversed": [14.74, 14.74]}, seed=0)
    assert b["index"] == pytest.approx(15.73, abs=1e-6)
    assert b["pairs"][0]["diff"] == pytest.approx(-15.73, abs=1e-6)
    assert position_bias({"fixed": [1.0, 2.0]}) is None


def test_goal_effect_sign_and_interval():
    rng = np.random.default_rng(0)
    on = rng.normal(37.0, 3.0, 30)  # on the prosocial ideal
    off = rng.normal(0.0, 3.0, 30)  # individualistic: far from prosocial
    e = goal_effect(on, off, "prosocial", "interval", seed=3)
    assert e["rationality_on"] == 60.0
    assert e["rationality_diff"] == pytest.approx(22.45 - off.mean(), abs=1e-3)  # 60 vs 60 - distance
    lo, hi = e["rationality_diff_ci"]
    assert 0 < lo <= e["rationality_diff"] <= hi
    assert e == goal_effect(on, off, "prosocial", "interval", seed=3)
    assert goal_effect([], off, "prosocial") is None
