"""scoring.fit: a fitted angle that knows when it does not know.

Checked against simulated agents whose true angle is known (scoring.simulate):
- acceptance (issue 12): one 20-round repeated prisoner's dilemma or one stag-hunt episode per
  softmax-utility agent (the shipped scenarios through envs.dilemmas.make_parallel; the options are
  the observation's "payoffs" rows): reported intervals cover the truth at least 90% of the time;
  the consistent-angle set of a maximising agent always contains the truth; uniform random
  choosers are reported at most 5% of the time;
- ideal types and maximisers on the slider: the consistent set holds the utility angle and the
  slider range holds the classic angle;
- softmax agents on the slider: recovery within 7 degrees, the interval covers;
- refusals: equal self payoffs, one direction (linear public goods, a one-shot battle of the
  sexes), random choice; ties never become a point.
"""

from __future__ import annotations

import numpy as np
import pytest

from scenarios import load_instrument, load_values
from scoring.fit import consistent_arcs, fit_svo, slider_equivalent
from scoring.simulate import dilemma_trajectories, sample_choices, softmax_probs
from scoring.svo import ideal_choices, svo_angle, utility_choices

PRIMARY = load_instrument("slider").subset("primary").payoffs()
FULL = load_instrument("slider").payoffs()


def _covers(arc, t: float) -> bool:
    lo, hi = arc
    return ((t - lo) % 360.0) <= (hi - lo) + 1e-9


def _dilemma_fits(scenario: str, agents, per_agent: int, seed: int):
    out = []
    for j, (angle, temp) in enumerate(agents):
        for i, d in enumerate(dilemma_trajectories(scenario, angle, temp, per_agent, seed + j)):
            out.append((angle, temp, fit_svo(d["options"], d["choices"], seed=1000 * j + i)))
    return out


# softmax agents around the circle, at the temperatures that make the choices informative or not
SOFTMAX = [(a, t) for a in (-135.0, -60.0, 0.0, 30.0, 60.0, 120.0, 180.0) for t in (0.25, 0.5, 1.0)]


@pytest.mark.parametrize(("scenario", "per_agent"), [("prisoners_dilemma_repeated", 3), ("stag_hunt", 4)])
def test_reported_intervals_cover_the_truth(scenario: str, per_agent: int) -> None:
    fits = _dilemma_fits(scenario, SOFTMAX, per_agent, seed=11)
    reported = [(a, f) for a, _, f in fits if f.interval is not None]
    assert len(reported) >= 25, len(reported)  # enough for the check to mean something
    cover = np.mean([_covers(f.interval, a) for a, f in reported])
    assert cover >= 0.90, (cover, len(reported))
    for _, f in reported:
        assert f.status in ("identified", "separated") and f.interval[1] > f.interval[0]
        assert -180.0 < f.interval[0] <= 180.0
        assert (f.angle is None) == (f.status == "separated")
        assert f.angle is not None or f.reason


@pytest.mark.parametrize("scenario", ["prisoners_dilemma_repeated", "stag_hunt"])
def test_consistent_set_of_a_maximiser_always_holds_the_truth(scenario: str) -> None:
    agents = [(a, 0.0) for a in np.arange(-180.0, 180.0, 22.5)]
    for angle, _, f in _dilemma_fits(scenario, agents, 2, seed=5):
        assert f.consistent is not None and any(_covers(arc, angle) for arc in f.consistent), (angle, f)
        if f.interval is not None:
            assert _covers(f.interval, angle)


def test_random_choosers_are_rarely_reported() -> None:
    fits = _dilemma_fits("prisoners_dilemma_repeated", [(0.0, np.inf)], 60, seed=21)
    fits += _dilemma_fits("stag_hunt", [(0.0, np.inf)], 60, seed=22)
    reported = sum(f.interval is not None for _, _, f in fits)
    assert reported / len(fits) <= 0.05, reported
    assert all(f.angle is None or f.random_test["p_value"] <= 0.01 for _, _, f in fits)


def test_consistent_arcs_are_exact_and_ties_count_for_either_choice() -> None:
    opts = [np.array([[1.0, 0.0], [0.0, 1.0]])] * 2  # (1, 0) vs (0, 1): tie at 45 degrees
    assert consistent_arcs(opts, [0, 0]) == [pytest.approx((-135.0, 45.0), abs=1e-6)]
    # the same options, once each choice: only the tie angles are consistent, 45 and -135 (where
    # both options are worth the same), each a single point
    arcs = consistent_arcs(opts, [0, 1])
    assert [lo for lo, _ in arcs] == pytest.approx([-135.0, 45.0], abs=1e-6)
    assert all(hi - lo < 1e-6 for lo, hi in arcs)
    joint = np.array([[1.0, 1.0], [0.0, 0.0]])  # choosing (1, 1) rules out -135, not 45
    ((lo, hi),) = consistent_arcs(opts + [joint], [0, 1, 0])
    assert lo == pytest.approx(45.0, abs=1e-6) and hi - lo < 1e-6
    assert consistent_arcs(opts + [joint, joint], [0, 1, 0, 1]) == []


@pytest.mark.parametrize("agent_angle", [0.0, 60.0])
def test_battle_of_the_sexes_ties_are_not_a_point(agent_angle: float) -> None:
    # one-shot battle of the sexes, uniform belief: (self, other) = (1, 0.5) or (0.5, 1), 5 episodes
    opts = [np.array([[1.0, 0.5], [0.5, 1.0]])] * 5
    rng = np.random.default_rng(int(agent_angle))
    for temp in (0.0, 0.5):
        ch = list(sample_choices(softmax_probs(opts[0][None], agent_angle, temp), (5,), rng)[:, 0])
        for choices in (ch, [0, 1, 0, 0, 1]):
            f = fit_svo(opts, choices)
            assert f.status == "unidentified" and f.angle is None and f.interval is None
            assert "one direction" in f.reason
            if len(set(choices)) == 2:  # both choices: consistent only at the ties, which are no point
                assert [lo for lo, _ in f.consistent] == pytest.approx([-135.0, 45.0], abs=1e-6)
            else:
                assert any(_covers(a, agent_angle) for a in f.consistent)


@pytest.mark.parametrize("value", ["altruistic", "individualistic", "competitive"])
def test_linear_ideal_types_on_the_slider(value: str) -> None:
    v = load_values()[value]
    k = ideal_choices(FULL, v.utility, v.tie_break)  # all 15 items; the first 6 are the primary ones
    chosen = PRIMARY[np.arange(6), k[:6]]
    classic = float(svo_angle(chosen[:, 0], chosen[:, 1]))
    f = fit_svo(list(FULL), list(k))
    assert f.status == "separated" and f.angle is None and f.temperature == 0.0
    assert any(_covers(a, v.motive_angle) for a in f.consistent)  # the utility the type maximises
    assert _covers(f.interval, v.motive_angle)
    lo, hi = f.slider_range
    assert lo - 1e-9 <= classic <= hi + 1e-9
    # its 6 primary choices alone are too few for an interval (MIN_INFORMATIVE = 8)
    six = fit_svo(list(PRIMARY), list(k[:6]))
    assert six.interval is None and "min_informative" in six.reason
    assert any(_covers(a, v.motive_angle) for a in six.consistent)


def test_inequality_averse_ideal_type_is_identified_near_the_classic_angle() -> None:
    # the prosocial ideal type minimises |self - other|, not a linear utility. Its 6 primary
    # choices alone are weak evidence (random-choice test p = 0.012 > 0.01: refused); two trials
    # of the same choices give the ML angle 37.55 next to the classic 37.48
    v = load_values()["prosocial"]
    k = list(ideal_choices(PRIMARY, v.utility, v.tie_break))
    one = fit_svo(list(PRIMARY), k)
    assert one.status == "unidentified" and "uniform random" in one.reason
    f = fit_svo(list(PRIMARY) * 2, k * 2)
    assert f.status == "identified" and abs(f.angle - 37.48) < 0.5
    assert _covers(f.interval, 37.48) and f.category == "prosocial"


@pytest.mark.parametrize("angle", [5.0, 10.0, 30.0, 60.0])
def test_maximiser_on_all_15_slider_items(angle: float) -> None:
    f = fit_svo(list(FULL), list(utility_choices(FULL, angle)))
    assert f.status == "separated" and f.temperature == 0.0 and f.angle is None
    assert any(_covers(a, angle) for a in f.consistent) and _covers(f.interval, angle)
    ((lo, hi),) = f.consistent
    assert hi - lo <= 10.0  # the 15 items pin a maximiser down to a few degrees
    assert f.interval[1] - f.interval[0] <= hi - lo + 5.0  # calibration adds little here
    s_lo, s_hi = f.slider_range
    assert s_lo - 1e-9 <= slider_equivalent(angle) <= s_hi + 1e-9


@pytest.mark.parametrize("angle", [-30.0, 45.0, 75.0])
def test_softmax_recovery_on_the_slider(angle: float) -> None:
    # temperature 3 on all 15 items, 8 passes (120 decisions)
    rng = np.random.default_rng(2024)
    k = sample_choices(softmax_probs(FULL, angle, 3.0), (8,), rng)
    f = fit_svo([FULL[i] for _ in range(8) for i in range(15)], list(k.reshape(-1)))
    assert f.status == "identified"
    assert abs(f.angle - angle) <= 7.0 and _covers(f.interval, angle)
    assert 1.5 < f.temperature < 5.0  # true temperature 3


@pytest.mark.parametrize(
    ("scenario", "angle"), [("prisoners_dilemma_repeated", 30), ("stag_hunt", 30), ("stag_hunt", 60)]
)
def test_logit_recovery_on_matrix_games(tmp_path, scenario: str, angle: float) -> None:
    s = _scenario(
        tmp_path, scenario, "--trials", "40", "--seed", "1",
        "--agents", f"player_0=scripted:angle:{angle}:temperature=0.5", "player_1=scripted:angle:45:temperature=2",
    )  # fmt: skip
    fit = s["dilemma"]["players"]["player_0"]["fit"]
    assert fit["status"] == "identified", fit["reason"]
    assert abs(fit["angle"] - angle) <= 6.0
    assert fit["interval"][0] <= angle <= fit["interval"][1]


def test_refuses_equal_self_payoffs() -> None:
    item1 = PRIMARY[0]  # self is 85 in every option
    f = fit_svo([item1] * 5, [0, 0, 1, 0, 0])
    assert f.status == "unidentified" and f.angle is None and f.interval is None
    assert "equal self payoffs" in f.reason


def test_refuses_linear_public_goods() -> None:
    # linear payoffs: every option lies on one line, so only a threshold is identified
    (d,) = dilemma_trajectories("public_goods", 45.0, 1.0, 1, 0)
    f = fit_svo(d["options"], d["choices"])
    assert f.angle is None and f.interval is None and "one direction" in f.reason


def test_invalid_and_uninformative_counted() -> None:
    opts = list(FULL[:6]) + [np.array([[5.0, 5.0], [5.0, 5.0]])]
    chs = [None, 0, 8, -1, 4, 4, 1]
    f = fit_svo(opts, chs)
    assert f.n_decisions == 7 and f.n_invalid == 2 and f.n_uninformative == 1 and f.n_used == 4
    with pytest.raises(ValueError, match="outside"):
        fit_svo([FULL[0]], [9])


def test_random_chooser_on_the_slider_is_refused_with_the_test() -> None:
    rng = np.random.default_rng(0)
    f = fit_svo([FULL[i % 15] for i in range(45)], list(rng.integers(0, 9, size=45)))
    assert f.angle is None and f.interval is None
    assert "uniform random" in f.reason and f.random_test["p_value"] > 0.01


def test_result_is_json_ready_and_seeded() -> None:
    import json

    (d,) = dilemma_trajectories("stag_hunt", 30.0, 0.25, 1, 3)
    a = fit_svo(d["options"], d["choices"], seed=4).as_dict()
    assert a == fit_svo(d["options"], d["choices"], seed=4).as_dict()
    json.dumps(a)
    assert set(a) >= {"status", "angle", "interval", "consistent", "random_test", "slider_range", "reason"}


def _scenario(tmp_path, scenario: str, *argv: str) -> dict:
    """Summary of a scenario run through the runner (fixed action order)."""
    import json

    from runs.evaluate import main

    rc = main(
        [
            "--scenario",
            scenario,
            "--results-dir",
            str(tmp_path),
            "--name",
            "r",
            "--orders",
            "fixed",
            "--no-progress",
            *argv,
        ]
    )
    assert rc == 0
    return json.loads((tmp_path / "r" / "summary.json").read_text())
