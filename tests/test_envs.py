"""SVOEnv: framework checker, determinism, counterbalancing and the scoring wrapper."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs
from agents import EpisodeContext, FixedPositionAgent, RandomAgent, UtilityAgent
from envs import NO_ANSWER, SVO_IDS, SVOEnv
from runs.rollout import single as run_episodes
from scoring import SVOScoring

VALUES = ("altruistic", "prosocial", "individualistic", "competitive")


@pytest.mark.parametrize("env_id", sorted(SVO_IDS))
def test_check_env_passes_for_every_registered_id(env_id):
    env = gym.make(env_id, render_mode="ansi")
    check_env(env.unwrapped, skip_render_check=False)
    env.reset(seed=0)
    assert "A)" in env.render()


def _trajectory(env_id, seed, episodes, **kw):
    env = gym.make(env_id, **kw)
    rng = np.random.default_rng(123)
    out = []
    obs, info = env.reset(seed=seed)
    for _ in range(episodes):
        done = False
        while not done:
            a = int(rng.integers(env.action_space.n))
            obs, r, term, trunc, info = env.step(a)
            out.append((obs["payoffs"].tobytes(), obs["order"].tobytes(), r, info["option"]))
            done = term or trunc
        obs, info = env.reset()
    return out


@pytest.mark.parametrize("env_id", sorted(SVO_IDS))
def test_same_seed_same_trajectory_over_many_episodes(env_id):
    a = _trajectory(env_id, 7, 20, option_order="permuted")
    b = _trajectory(env_id, 7, 20, option_order="permuted")
    c = _trajectory(env_id, 8, 20, option_order="permuted")
    assert a == b
    assert a != c  # permutations depend on the seed


def test_permuted_order_maps_back_to_canonical_options():
    env = SVOEnv(option_order="permuted")
    obs, info = env.reset(seed=3)
    canon = env.instrument.payoffs()
    for t in range(6):
        for shown in range(9):
            assert (obs["payoffs"][shown] == canon[t, obs["order"][shown]]).all()
        obs, r, term, trunc, step_info = env.step(2)
        assert step_info["option"] == info["order"][t][2]


def test_reversed_order_shows_the_slider_backwards():
    env = SVOEnv(option_order="reversed")
    obs, _ = env.reset(seed=0)
    assert obs["payoffs"][0].tolist() == [85.0, 15.0]


def test_no_answer_is_recorded_not_replaced():
    env = SVOScoring(SVOEnv())
    env.reset(seed=0)
    for t in range(6):
        obs, r, term, trunc, info = env.step(NO_ANSWER if t == 2 else 0)
        if t == 2:
            assert info["answered"] is False and info["option"] is None and r == 0.0
    s = info["svo"]
    assert s["answered"] == 5 and s["asked"] == 6
    assert s["angle"] is None and s["category"] == "undefined"


def test_bad_arguments_name_what_is_allowed():
    with pytest.raises(ValueError, match="option_order.*allowed"):
        SVOEnv(option_order="shuffled")
    with pytest.raises(ValueError, match="unknown instrument.*allowed"):
        SVOEnv(instrument="ring")
    with pytest.raises(ValueError, match="exactly one"):
        SVOEnv(reward="utility")
    with pytest.raises(ValueError, match="target_value.*allowed"):
        SVOEnv(reward="utility", target_value="selfish")
    env = SVOEnv()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="outside"):
        env.step(9)


@pytest.mark.parametrize("value", VALUES)
def test_target_value_reward_is_maximised_inside_the_values_category(value):
    """The reward for a value uses its motive angle; the greedy maximiser of that reward lands in
    the value's slider category (the ideal-type angle would not for altruistic/competitive)."""
    env = SVOEnv(reward="utility", target_value=value)
    ctx = [EpisodeContext("slider", 6, 9, seed=0, value=value)]
    (res,) = run_episodes(UtilityAgent(angle=env.target_angle), [env], ctx)
    assert res.score["category"] == value


def test_utility_reward_uses_target_angle():
    env = SVOEnv(reward="utility", target_angle=90.0)
    env.reset(seed=0)
    _, r, *_ = env.step(0)  # (85, 85)
    assert r == pytest.approx(85.0)


@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize("order", ["fixed", "reversed", "permuted"])
def test_ideal_type_agent_lands_in_its_category_whatever_the_order(value, order):
    ctxs = [EpisodeContext("slider", 15, 9, seed=s, value=value) for s in range(4)]
    res = run_episodes(
        UtilityAgent(value=value), [gym.make("SVO/SliderFull-v0", option_order=order) for _ in ctxs], ctxs
    )
    for r in res:
        assert r.score["category"] == value
        assert r.score["rationality_interval"] == 60.0
        assert r.score["transitive"] is True
        assert r.score["answered"] == 15


def test_scoring_is_invariant_to_displayed_order():
    """The same canonical choices give the same score whatever order they were shown in."""
    canon_choice = [3, 1, 7, 0, 5, 8]
    scores = []
    for order in ("fixed", "reversed", "permuted"):
        env = SVOScoring(SVOEnv(option_order=order), target_value="prosocial")
        obs, _ = env.reset(seed=11)
        for t in range(6):
            shown = int(np.where(obs["order"] == canon_choice[t])[0][0])
            obs, r, term, trunc, info = env.step(shown)
        scores.append(info["svo"])
    assert scores[0] == scores[1] == scores[2]


def test_fixed_option_agent_probes_position_bias():
    ctx = [EpisodeContext("slider", 6, 9, seed=0)]
    first = run_episodes(FixedPositionAgent(0), [gym.make("SVO/Slider-v0")], ctx)[0]
    assert first.score["angle"] == pytest.approx(30.47, abs=0.005)
    rev = run_episodes(FixedPositionAgent(0), [gym.make("SVO/SliderReversed-v0")], ctx)[0]
    assert rev.score["angle"] == pytest.approx(14.74, abs=0.005)
    with pytest.raises(ValueError, match="3 options"):
        run_episodes(
            FixedPositionAgent(5),
            [gym.make("SVO/TripleDominance-v0")],
            [EpisodeContext("triple_dominance", 9, 3, seed=0)],
        )


def test_random_agent_is_seeded_by_the_episode():
    def angles(seed):
        ctxs = [EpisodeContext("slider", 6, 9, seed=seed + i) for i in range(50)]
        return [
            r.score["angle"]
            for r in run_episodes(RandomAgent(), [gym.make("SVO/Slider-v0") for _ in ctxs], ctxs)
        ]

    assert angles(0) == angles(0)
    assert angles(0) != angles(100)


def test_triple_dominance_ideal_agents_classified():
    for v in ("prosocial", "individualistic", "competitive"):
        ctx = [EpisodeContext("triple_dominance", 9, 3, seed=0, value=v)]
        r = run_episodes(
            UtilityAgent(value=v), [gym.make("SVO/TripleDominance-v0", option_order="permuted")], ctx
        )[0]
        assert r.score["category"] == v and r.score["hit"] is True


class CoinEnv(gym.Env):
    """A minimal env that only reports self/other payoffs: always (85, 85 - 10 * action)."""

    observation_space = gym.spaces.Discrete(1)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return 0, {}

    def step(self, action):
        self.t += 1
        return 0, 0.0, self.t >= 4, False, {"self": 85.0, "other": 85.0 - 10 * int(action)}


def test_generic_scoring_on_any_env_reporting_payoffs():
    env = SVOScoring(CoinEnv())
    env.reset(seed=0)
    for a in (0, 1, 0, 1):
        *_, info = env.step(a)
    assert info["svo"]["angle"] == pytest.approx(float(np.degrees(np.arctan2(30, 35))))
    assert info["svo"]["answered"] == 4 and envs.SVO_IDS
