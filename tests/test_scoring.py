"""The SVO maths against the published figures (shared/reference/svo-measures.md)."""

import math

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scenarios import load_instrument
from scoring import svo

SLIDER = load_instrument("slider")
PRIMARY = SLIDER.subset("primary")
PAY = PRIMARY.payoffs()  # (6, 9, 2)


def angle_of(options):
    chosen = PAY[np.arange(6), np.asarray(options)]
    return float(svo.svo_angle(chosen[:, 0], chosen[:, 1]))


@pytest.mark.parametrize(
    "value,expected",
    [("altruistic", 61.39), ("prosocial", 37.48), ("individualistic", -7.82), ("competitive", -16.26)],
)
def test_ideal_type_angles_match_published(value, expected):
    assert svo.ideal_type_angle(PRIMARY, value) == pytest.approx(expected, abs=0.005)


def test_other_published_ideal_figures_follow_from_the_data():
    # individualist with the opposite tie-break on item 1: +7.82
    k = svo.ideal_choices(PAY, "maximise_self", "maximise_other")
    assert angle_of(k) == pytest.approx(7.82, abs=0.005)
    # joint-gain maximiser: 41.04 when item 5's rounding (151 vs 150) counts, 45 when sums tie
    k = svo.ideal_choices(PAY, "maximise_joint", "minimise_inequality")
    assert angle_of(k) == pytest.approx(41.04, abs=0.005)
    k5 = k.copy()
    k5[4] = 4  # (75, 75): sum 150
    assert angle_of(k5) == pytest.approx(45.0, abs=0.005)


def test_position_bias_figures():
    assert angle_of([0] * 6) == pytest.approx(30.47, abs=0.005)
    assert angle_of([8] * 6) == pytest.approx(14.74, abs=0.005)


def test_categories_at_exact_boundaries_lower_bound_closed():
    a = np.array(
        [
            57.15,
            np.nextafter(57.15, 0),
            22.45,
            np.nextafter(22.45, 0),
            -12.04,
            np.nextafter(-12.04, -100),
            90.0,
            -90.0,
            np.nan,
        ]
    )
    assert list(svo.categorise(a)) == [
        "altruistic",
        "prosocial",
        "prosocial",
        "individualistic",
        "individualistic",
        "competitive",
        "altruistic",
        "competitive",
        "undefined",
    ]


def test_angle_is_scale_aware_and_atan2_safe():
    s, o = np.array([50.0, 50.0]), np.array([60.0, 80.0])
    assert float(svo.svo_angle(s, o)) == pytest.approx(90.0)
    assert float(svo.svo_angle(s * 10, o * 10, centre=500.0)) == pytest.approx(90.0)
    assert float(svo.svo_angle(np.array([50.0]), np.array([50.0]))) == 0.0  # no division error


def test_missing_answer_makes_angle_undefined():
    s = np.array([85.0, np.nan, 85, 85, 85, 85])
    assert math.isnan(float(svo.svo_angle(s, s)))


def test_vector_length_of_ideal_types_in_published_range():
    for v in ("altruistic", "prosocial", "individualistic", "competitive"):
        val = __import__("scenarios").value(v)
        k = svo.ideal_choices(PAY, val.utility, val.tie_break)
        c = PAY[np.arange(6), k]
        assert 40.5 <= float(svo.vector_length(c[:, 0], c[:, 1])) <= 42.9


def test_value_rationality_conventions():
    assert float(svo.value_rationality(40.0, "prosocial")) == 0.0
    assert float(svo.value_rationality(20.45, "prosocial")) == pytest.approx(2.0)
    assert float(svo.value_rationality(57.15, "prosocial")) == pytest.approx(0.0)  # upper bound open
    assert float(svo.value_rationality(60.0, "altruistic")) == 0.0
    assert float(svo.value_rationality(-20.0, "competitive")) == 0.0
    assert float(svo.value_rationality(40.0, "prosocial", "ideal")) == pytest.approx(2.52, abs=0.01)
    assert float(svo.value_rationality(30.47, "competitive", "ideal")) == pytest.approx(46.73, abs=0.01)
    assert float(svo.paper_scale(70.0)) == 0.0
    assert float(svo.paper_scale(2.0)) == 58.0
    assert math.isnan(float(svo.value_rationality(np.nan, "prosocial")))
    with pytest.raises(ValueError, match="allowed"):
        svo.value_rationality(1.0, "selfish")
    with pytest.raises(ValueError, match="convention"):
        svo.value_rationality(1.0, "prosocial", "nearest")


def test_angular_distance_wraps():
    assert float(svo.angular_distance(170.0, -170.0)) == pytest.approx(20.0)


def _nx_transitive(chosen):
    g = nx.DiGraph()
    g.add_nodes_from(svo.CATEGORIES)
    for j, it in enumerate(PRIMARY.items):
        dl = np.linalg.norm(chosen[j] - PAY[j, 0])
        dr = np.linalg.norm(chosen[j] - PAY[j, -1])
        if dl < dr:
            g.add_edge(it.ends[0], it.ends[1])
        elif dr < dl:
            g.add_edge(it.ends[1], it.ends[0])
    return nx.is_directed_acyclic_graph(g)


def test_transitivity_agrees_with_networkx_and_ideal_types_are_transitive():
    rng = np.random.default_rng(0)
    ks = rng.integers(0, 9, size=(2000, 6))
    chosen = PAY[np.arange(6), ks]
    fast = svo.transitive(chosen, PRIMARY)
    slow = np.array([_nx_transitive(c) for c in chosen])
    assert (fast == slow).all()
    assert 0 < fast.mean() < 1  # both outcomes occur
    for v in svo.CATEGORIES:
        val = __import__("scenarios").value(v)
        c = PAY[np.arange(6), svo.ideal_choices(PAY, val.utility, val.tie_break)]
        assert bool(svo.transitive(c, PRIMARY))
        wins = svo.preference_wins(c, PRIMARY)
        assert wins.argmax() == svo.CATEGORIES.index(v) and wins.sum() == 6


def test_middle_choice_gives_half_wins():
    chosen = PAY[np.arange(6), [4] * 6]
    # item 5's middle option (75,75) is equidistant from both ends
    assert svo.preference_wins(chosen, PRIMARY).sum() == 6


def _secondary_choices(kind):
    items = [it for it in SLIDER.items if not it.primary]
    return np.array([np.nan if it.ideal[kind] is None else it.ideal[kind] - 1 for it in items])


def test_inequality_aversion_index():
    ia = _secondary_choices("inequality_aversion")
    assert float(svo.inequality_aversion_index(ia, SLIDER)) == 0.0
    jm = _secondary_choices("joint_gain")
    jm = np.where(np.isnan(jm), _secondary_choices("inequality_aversion"), jm)
    assert float(svo.inequality_aversion_index(jm, SLIDER)) == pytest.approx(1.0)
    ind = _secondary_choices("individualistic")
    assert math.isnan(float(svo.inequality_aversion_index(ind, SLIDER)))  # IA/JM not top two
    assert math.isnan(float(svo.inequality_aversion_index(np.full(9, np.nan), SLIDER)))


def test_triple_dominance_classification():
    tdm = load_instrument("triple_dominance")
    pro = np.array([it.types.index("prosocial") for it in tdm.items])
    assert svo.triple_dominance_type(pro, tdm) == "prosocial"
    mixed = pro.copy()
    mixed[:4] = [it.types.index("competitive") for it in tdm.items[:4]]
    assert svo.triple_dominance_type(mixed, tdm) == "undefined"  # 5 of 9 prosocial
    mixed[3] = pro[3]
    assert svo.triple_dominance_type(mixed, tdm) == "prosocial"  # exactly 6


choices6 = st.lists(st.integers(0, 8), min_size=6, max_size=6)


@settings(max_examples=300, deadline=None)
@given(st.lists(choices6, min_size=1, max_size=20))
def test_angles_stay_in_achievable_range_and_vectorised_equals_scalar(batch):
    ks = np.array(batch)
    chosen = PAY[np.arange(6), ks]  # (n, 6, 2)
    vec = svo.svo_angle(chosen[..., 0], chosen[..., 1])
    assert ((vec >= -16.27) & (vec <= 61.40)).all()
    for row, a in zip(ks, vec, strict=False):
        assert angle_of(row) == pytest.approx(float(a), abs=1e-9)
    tv = svo.transitive(chosen, PRIMARY)
    ts = np.array([svo.transitive(c, PRIMARY) for c in chosen])
    assert (tv == ts).all()
    assert (svo.categorise(vec) == np.array([svo.categorise(a) for a in vec])).all()


@settings(max_examples=200, deadline=None)
@given(st.floats(-89, 88, allow_nan=False), st.floats(0.01, 1.0))
def test_utility_maximiser_angle_is_monotone_in_target(t, step):
    lo = angle_of(svo.utility_choices(PAY, t))
    hi = angle_of(svo.utility_choices(PAY, t + step))
    assert -16.27 <= lo <= hi + 1e-9 <= 61.40


def test_inequality_aversion_tie_for_a_rank_is_undefined():
    # the published rule ("IA and JG rank first and second") with exact integer arithmetic: a
    # type tying IA or JG for first or second rank leaves it unestablished, so NaN, never list order
    c = np.random.default_rng(0).integers(0, 9, size=(200_000, 9))
    s, n = {}, {}
    for t in ("inequality_aversion", "joint_gain", "individualistic", "altruistic"):
        ideal = _secondary_choices(t)
        mask = ~np.isnan(ideal)
        s[t] = np.abs(c[:, mask] - ideal[mask].astype(int)).sum(axis=1)  # D_t = s_t / (8 n_t)
        n[t] = int(mask.sum())

    def cmp(a, b):  # sign of D_a - D_b, exactly
        return np.sign(s[a] * n[b] - s[b] * n[a])

    pair = ("inequality_aversion", "joint_gain")
    others = ("individualistic", "altruistic")
    strict = np.all([cmp(p, o) < 0 for p in pair for o in others], axis=0)
    tie = ~strict & np.all([cmp(p, o) <= 0 for p in pair for o in others], axis=0)
    idx = svo.inequality_aversion_index(c.astype(float), SLIDER)
    assert np.isnan(idx[~strict]).all() and not np.isnan(idx[strict]).any()
    d_ia = s["inequality_aversion"] / (8 * n["inequality_aversion"])
    d_jm = s["joint_gain"] / (8 * n["joint_gain"])
    assert np.allclose(idx[strict], (d_ia / (d_ia + d_jm))[strict])
    # the share of uniformly random vectors the rule changes: 1.67% (issue 12 estimated 1.4%; every
    # one of them was defined by list order before and is NaN now)
    assert tie.mean() == pytest.approx(0.0167, abs=0.001)
    assert float(svo.inequality_aversion_index(_secondary_choices("inequality_aversion"), SLIDER)) == 0.0


def test_categories_meet_on_the_circle():
    assert svo.categorise(180.0) == svo.categorise(-180.0) == "altruistic"
    assert svo.categorise(-179.0) == "competitive"
    assert float(svo.value_rationality(-170.0, "altruistic")) == pytest.approx(10.0)  # via 180
    assert float(svo.value_rationality(170.0, "competitive")) == pytest.approx(10.0)
    assert float(svo.svo_angle(np.array([40.0]), np.array([50.0]))) == 180.0


angles8 = st.integers(-2880, 2880).map(lambda k: k / 8.0)  # exact in binary: a + 360 k is exact
turns = st.integers(-3, 3)


@settings(max_examples=300, deadline=None)
@given(angles8, turns)
def test_every_angle_function_is_periodic(a, k):
    b = a + 360.0 * k
    assert float(svo.wrap_angle(a)) == float(svo.wrap_angle(b))
    assert -180.0 < float(svo.wrap_angle(a)) <= 180.0
    assert svo.categorise(a) == svo.categorise(b)
    for target in svo.CATEGORIES:
        for conv in ("interval", "ideal"):
            assert float(svo.value_rationality(a, target, conv)) == pytest.approx(
                float(svo.value_rationality(b, target, conv)), abs=1e-9
            )
    assert float(svo.angular_distance(a, 30.0)) == pytest.approx(
        float(svo.angular_distance(b, 30.0)), abs=1e-9
    )
    assert (svo.utility_choices(PAY, a) == svo.utility_choices(PAY, b)).all()
    from scoring.fit import slider_equivalent

    assert slider_equivalent(a) == slider_equivalent(b)


@settings(max_examples=200, deadline=None)
@given(st.floats(-1e4, 1e4, allow_nan=False))
def test_wrap_angle_lands_in_range_and_keeps_the_direction(a):
    w = float(svo.wrap_angle(a))
    assert -180.0 < w <= 180.0
    assert float(svo.angular_distance(w, a)) < 1e-9
