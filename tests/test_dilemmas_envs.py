"""Every registered dilemma env passes PettingZoo's own checkers, renders as text, is seeded and
deterministic over 100 steps, and treats invalid answers as invalid."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
from pettingzoo.test import api_test, parallel_api_test, parallel_seed_test, seed_test

from envs.dilemmas import (
    DILEMMA_ENV_IDS,
    NO_ANSWER,
    MatrixGameEnv,
    is_parallel,
    make_aec,
    make_env,
    make_parallel,
)

IDS = sorted(DILEMMA_ENV_IDS)
PARALLEL_IDS = [i for i in IDS if is_parallel(i)]


@pytest.mark.parametrize("eid", IDS)
def test_aec_api_and_seed(eid: str) -> None:
    api_test(make_aec(eid), num_cycles=60)
    seed_test(lambda: make_aec(eid), num_cycles=60)


@pytest.mark.parametrize("eid", PARALLEL_IDS)
def test_parallel_api_and_seed(eid: str) -> None:
    parallel_api_test(make_parallel(eid), num_cycles=60)
    parallel_seed_test(lambda: make_parallel(eid))


@pytest.mark.parametrize("eid", IDS)
def test_ansi_render(eid: str) -> None:
    env = make_aec(eid, render_mode="ansi")
    env.reset(seed=0)
    assert isinstance(env.render(), str)
    for agent in env.agent_iter(max_iter=6):
        _, _, term, trunc, _ = env.last()
        mask = env.observe(agent).get("action_mask")
        env.step(None if term or trunc else (0 if mask is None else int(np.argmax(mask))))
    text = env.render()
    assert isinstance(text, str) and text.strip()


def _trajectory(eid: str, seed: int) -> list:
    """At least 100 steps of seeded random play (actions from a generator separate from the env)."""
    per = make_parallel(eid).rounds_  # the slider's rounds are passes over its items
    per = per // make_parallel(eid).scenario.rounds
    env = make_parallel(eid, rounds=-(-100 // per))
    rng = np.random.default_rng(123)
    out = []
    obs, _ = env.reset(seed=seed)
    while env.agents:
        acts = {a: int(rng.integers(env.action_space(a).n)) for a in env.agents}
        obs, rew, term, trunc, info = env.step(acts)
        out.append(
            (
                sorted(acts.items()),
                sorted(rew.items()),
                [(a, o["payoffs"].tobytes(), o["history"].tobytes()) for a, o in sorted(obs.items())],
                sorted((a, i["self"], i["other"]) for a, i in info.items()),
            )
        )
    assert len(out) == env.rounds_ >= 100
    return out


@pytest.mark.parametrize(
    "eid",
    [
        "Dilemma/PrisonersDilemmaRepeated-v1",
        "Dilemma/PublicGoods-v1",
        "Dilemma/PopulationCultures-v1",
        "Dilemma/PairedSlider-v1",
    ],
)
def test_same_seed_same_100_step_trajectory(eid: str) -> None:
    a, b = _trajectory(eid, seed=7), _trajectory(eid, seed=7)
    assert a == b


def test_sequential_100_step_determinism() -> None:
    def run() -> list:
        env = make_aec("ultimatum", rounds=50)
        env.reset(seed=3)
        rng = np.random.default_rng(5)
        out = []
        for agent in env.agent_iter():
            obs, rew, term, trunc, _ = env.last()
            if term or trunc:
                env.step(None)
                continue
            k = int(rng.integers(int(obs["action_mask"].sum())))
            out.append((agent, k, float(rew), obs["payoffs"].tobytes()))
            env.step(k)
        return out

    a, b = run(), run()
    assert a == b and len(a) == 100


def test_pd_payoffs_and_history() -> None:
    env = make_parallel("prisoners_dilemma_repeated")
    obs, _ = env.reset(seed=0)
    # uniform belief before play: C -> (1.5, 4), D -> (3, 0.5)
    np.testing.assert_allclose(obs["player_0"]["payoffs"], [[1.5, 4.0], [3.0, 0.5]])
    obs, rew, *_, info = env.step({"player_0": 0, "player_1": 1})
    assert rew == {"player_0": 0.0, "player_1": 5.0}
    assert info["player_0"]["other"] == 5.0 and info["player_0"]["cooperation"] == 1.0
    h = obs["player_0"]["history"][-1]
    np.testing.assert_array_equal(h, [[1, 0], [0, 1]])
    # empirical belief after one defection: P(C) = 1/3
    p = 1 / 3
    np.testing.assert_allclose(
        obs["player_0"]["payoffs"], [[3 * p, 5 - 2 * p], [1 + 4 * p, 1 - p]], rtol=1e-6
    )


def test_no_answer_voids_interactions_and_is_recorded() -> None:
    env = make_parallel("prisoners_dilemma")
    env.reset(seed=0)
    _, rew, _, _, info = env.step({"player_0": NO_ANSWER, "player_1": 1})
    assert rew == {"player_0": 0.0, "player_1": 0.0}
    assert info["player_0"]["valid"] is False and info["player_0"]["action"] is None
    assert np.isnan(info["player_1"]["self"]) and info["player_1"]["partners"] == 0
    with pytest.raises(ValueError, match="outside"):
        env.reset(seed=0)
        env.step({"player_0": 5, "player_1": 0})


def test_public_goods_no_answer_sits_out() -> None:
    env = make_parallel("public_goods")
    env.reset(seed=0)
    _, rew, *_ = env.step({"player_0": 4, "player_1": 0, "player_2": 2, "player_3": NO_ANSWER})
    # pot 30, shared by the 3 who answered: 1.6 * 30 / 3 = 16
    assert rew == {"player_0": 16.0, "player_1": 36.0, "player_2": 26.0, "player_3": 0.0}


def test_sequential_trust_payoffs() -> None:
    env = make_env("trust")
    env.reset(seed=0)
    env.step(5)  # send 10
    assert env.observe("trustee")["action_mask"].tolist()[:5] == [1] * 5
    env.step(2)  # return 50% of 30
    assert env.rewards == {"investor": 15.0, "trustee": 15.0}
    assert all(env.terminations.values())


def test_user_graph_and_isolated_nodes() -> None:
    g = nx.Graph([("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")])
    env = MatrixGameEnv("prisoners_dilemma", graph=g)
    assert len(env.possible_agents) == 4 and env.node_of["player_0"] == "a"
    obs, _ = env.reset(seed=0)
    _, rew, *_ = env.step({a: 0 for a in env.agents})
    assert set(rew.values()) == {3.0}
    g.add_node("lonely")
    with pytest.raises(ValueError, match="no neighbour"):
        MatrixGameEnv("prisoners_dilemma", graph=g)


def test_population_mean_aggregation() -> None:
    env = make_parallel("population_ring_pd")
    env.reset(seed=0)
    acts = {a: (0 if i % 2 else 1) for i, a in enumerate(env.agents)}  # alternate D, C around the ring
    _, rew, *_ = env.step(acts)
    assert rew["player_0"] == 5.0 and rew["player_1"] == 0.0
