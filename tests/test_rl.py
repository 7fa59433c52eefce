"""RL adapter (agents.rl): space checks before any step, callable policies, invalid actions,
per-value policies, the motive-angle reward, SB3's env checker, and the training CLI's input checks."""

import numpy as np
import pytest
from gymnasium import spaces

from agents.base import EpisodeContext
from agents.rl import (
    MOTIVE_ANGLES,
    DilemmaView,
    PolicyAgent,
    SpaceMismatchError,
    env_spaces,
    reward_angle,
    utility,
)
from agents.scripted import UtilityAgent
from envs.svo import SVOEnv
from runs.rollout import single as run_episodes
from scenarios import VALUE_NAMES
from scoring.svo import categorise

SLIDER = SVOEnv()
OBS, ACT = SLIDER.observation_space, SLIDER.action_space


def _ctx(env: SVOEnv, seed: int = 0, value: str | None = "individualistic") -> EpisodeContext:
    return EpisodeContext("slider", env.n_items, env.n_options, seed=seed, value=value)


def _max_self(obs) -> int:
    return int(np.argmax(np.asarray(obs["payoffs"])[:, 0]))


def test_callable_policy_is_scored_like_any_agent():
    agent = PolicyAgent(_max_self, OBS, ACT, name="max-self")
    envs = [SVOEnv(option_order="permuted") for _ in range(4)]
    res = run_episodes(agent, envs, [_ctx(e, seed=s) for s, e in enumerate(envs)])
    for r in res:
        assert r.score["answered"] == 6 and r.score["category"] == "individualistic" and r.score["hit"]
        assert all(d.record["method"] == "policy" for d in r.decisions)


@pytest.mark.parametrize("bad", [None, 9, -3, "B"])
def test_invalid_action_is_recorded_never_replaced(bad):
    agent = PolicyAgent(lambda obs: bad, OBS, ACT)
    env = SVOEnv()
    (res,) = run_episodes(agent, [env], [_ctx(env)])
    assert res.score["answered"] == 0 and res.score["angle"] is None
    assert all(d.action is None and "invalid" in d.record for d in res.decisions)


def test_action_space_mismatch_rejected_before_any_step():
    calls = []

    def policy(obs):
        calls.append(obs)
        return 0

    agent = PolicyAgent(policy, OBS, spaces.Discrete(3), name="three-way")
    with pytest.raises(SpaceMismatchError) as err:
        agent.check_env(SVOEnv())
    msg = str(err.value)
    assert "Discrete(3)" in msg and "Discrete(9)" in msg and "three-way" in msg
    with pytest.raises(SpaceMismatchError, match="Discrete\\(9\\)"):
        agent.check_env("SVO/Slider-v0")
    env = SVOEnv()
    with pytest.raises(SpaceMismatchError, match="offers 9 options"):
        run_episodes(agent, [env], [_ctx(env)])
    assert calls == []  # rejected in start(), before the policy saw anything


def test_observation_space_mismatch_names_both_spaces():
    full = SVOEnv(items="all")
    agent = PolicyAgent(_max_self, OBS, ACT)
    with pytest.raises(SpaceMismatchError, match="observation space") as err:
        agent.check_env(full)
    assert "Discrete(6)" in str(err.value) and "Discrete(15)" in str(err.value)
    with pytest.raises(SpaceMismatchError, match="15 items"):
        run_episodes(agent, [full], [_ctx(full)])
    with pytest.raises(SpaceMismatchError):
        agent.check_env("SVO/TripleDominance-v0")
    agent.check_env("SVO/SliderPermuted-v0")  # same spaces: accepted


def test_policy_checked_against_dilemma_env_per_agent():
    pd = env_spaces("prisoners_dilemma_repeated")
    assert set(pd) == {"player_0", "player_1"}
    obs, act = pd["player_0"]
    agent = PolicyAgent(lambda o: 0, obs, act)
    agent.check_env("prisoners_dilemma_repeated")
    with pytest.raises(SpaceMismatchError, match="public_goods agent player_0"):
        agent.check_env("public_goods")
    with pytest.raises(SpaceMismatchError):
        PolicyAgent(_max_self, OBS, ACT).check_env("prisoners_dilemma_repeated", agent="player_1")


def test_callable_needs_declared_spaces_and_known_values():
    with pytest.raises(ValueError, match="observation_space"):
        PolicyAgent(_max_self)
    with pytest.raises(ValueError, match="unknown value"):
        PolicyAgent({"saintly": _max_self}, OBS, ACT)
    with pytest.raises(TypeError, match="callable"):
        PolicyAgent(42, OBS, ACT)


def test_one_policy_per_value_picks_by_episode_value():
    def max_other(obs):
        return int(np.argmax(np.asarray(obs["payoffs"])[:, 1]))

    agent = PolicyAgent({"individualistic": _max_self, "altruistic": max_other}, OBS, ACT)
    envs = [SVOEnv(), SVOEnv()]
    ctx = [_ctx(envs[0], value="individualistic"), _ctx(envs[1], value="altruistic")]
    res = run_episodes(agent, envs, ctx)
    assert [r.score["category"] for r in res] == ["individualistic", "altruistic"]
    with pytest.raises(ValueError, match="no policy for value 'prosocial'"):
        agent.start(_ctx(envs[0], value="prosocial"))


def test_motive_angles_land_in_their_category_ideal_angles_do_not():
    """A perfect maximiser of the motive utility hits every category; maximising the utility at the
    ideal-type slider angle misses altruistic and competitive (why training uses motive angles)."""
    env = SVOEnv()
    for v in VALUE_NAMES:
        (m,) = run_episodes(UtilityAgent(angle=reward_angle(v)), [SVOEnv()], [_ctx(env, value=v)])
        (i,) = run_episodes(UtilityAgent(angle=reward_angle(v, "ideal")), [SVOEnv()], [_ctx(env, value=v)])
        assert m.score["hit"], (v, m.score["angle"])
        assert i.score["hit"] == (v in ("prosocial", "individualistic")), (v, i.score["angle"])
    assert MOTIVE_ANGLES == {
        "altruistic": 90.0,
        "prosocial": 45.0,
        "individualistic": 0.0,
        "competitive": -45.0,
    }
    assert str(categorise(reward_angle("altruistic", "ideal"))) == "altruistic"
    assert np.allclose(utility([85, 100], [15, 50], 0.0), [85, 100])
    with pytest.raises(ValueError, match="allowed"):
        reward_angle("saintly")


def test_sb3_env_checker_passes_on_training_envs():
    pytest.importorskip("stable_baselines3")
    from stable_baselines3.common.env_checker import check_env

    from envs.dilemmas import make_parallel

    for order in ("fixed", "permuted"):
        check_env(SVOEnv(reward="utility", target_angle=45.0, option_order=order), warn=False)
    for game in ("prisoners_dilemma_repeated", "public_goods"):
        env = make_parallel(game)
        others = {p: (lambda o, g: 0) for p in env.possible_agents[1:]}
        check_env(DilemmaView(env, env.possible_agents[0], 45.0, others), warn=False)


def test_dilemma_view_reward_is_utility_of_own_vs_mean_of_others():
    from envs.dilemmas import make_parallel

    env = make_parallel("public_goods")
    p0, *rest = env.possible_agents
    view = DilemmaView(env, p0, 90.0, {p: (lambda o, g: 4) for p in rest})  # others give 20
    view.reset(seed=3)
    _, r, term, trunc, info = view.step(0)  # I keep my endowment
    assert info["own"] == pytest.approx(20 + 1.6 * 60 / 4)
    assert info["others_mean"] == pytest.approx(1.6 * 60 / 4)
    assert r == pytest.approx(info["others_mean"]) and not term and not trunc
    with pytest.raises(ValueError, match="no policy"):
        DilemmaView(env, p0, 0.0, {})


def test_train_cli_rejects_bad_flags(capsys):
    from runs.train import main

    assert main(["dilemma", "--game", "nope"]) == 2
    assert "--game 'nope': unknown dilemma scenario 'nope'" in capsys.readouterr().err
    assert main(["dilemma", "--game", "ultimatum"]) == 2
    assert main(["slider", "--algo", "dqn", "--network", "option"]) == 2
    assert main(["slider", "--steps", "0"]) == 2
    with pytest.raises(SystemExit):
        main(["slider", "--value", "saintly"])
