"""Every scripted agent on every game kind, under every action order: each agent's defining
behaviour (not just that it runs), checked from the recorded decisions.

Game kinds: a matrix game (one-shot PD), a repeated one (repeated PD), public goods, sequential
games (ultimatum, trust) and a population on a graph (ring PD). Orders: fixed, reversed, permuted.
"""

from __future__ import annotations

import numpy as np
import pytest

from agents.registry import build_agent, check_spec
from runs.config import RunConfig
from runs.episodes import build_game, records
from runs.plan import plan
from runs.rollout import play

GAMES = (
    "prisoners_dilemma",
    "prisoners_dilemma_repeated",
    "public_goods",
    "ultimatum",
    "trust",
    "population_ring_pd",
)
ORDERS = ("fixed", "reversed", "permuted")


def _decisions(scenario: str, spec: str, order: str, trials: int = 3) -> list[dict]:
    """Every decision of `trials` episodes where every player is `spec`."""
    config = RunConfig(scenario=scenario, agents=[f"*={spec}"], orders=[order], trials=trials, goal="off")
    agent = build_agent(spec)
    out = []
    for ep in plan(config):
        game, seats = build_game(ep, config, {spec: agent})
        (played,) = play([game])
        out += records(ep, played, seats)[1]
    assert out and all(d["valid"] for d in out)
    return out


def _coop(d: dict) -> float:
    return d["cooperation"]


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("scenario", GAMES)
def test_cooperate_and_defect_take_the_extremes(scenario: str, order: str) -> None:
    assert {_coop(d) for d in _decisions(scenario, "scripted:cooperate", order)} == {1.0}
    assert {_coop(d) for d in _decisions(scenario, "scripted:defect", order)} == {0.0}


@pytest.mark.parametrize("order", ORDERS)
def test_cooperate_contributes_everything_in_public_goods(order: str) -> None:
    ds = _decisions("public_goods", "scripted:cooperate", order)
    assert {d["option"] for d in ds} == {4}  # contribution level 20 of [0, 5, 10, 15, 20]
    assert {d["record"]["method"] for d in ds} == {"cooperate"}


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("scenario", ["prisoners_dilemma_repeated", "public_goods", "population_ring_pd"])
def test_tit_for_tat_cooperates_first_then_mirrors(scenario: str, order: str) -> None:
    # among reciprocators everyone keeps cooperating
    assert {_coop(d) for d in _decisions(scenario, "scripted:tit_for_tat", order)} == {1.0}
    # against defectors it defects from the second round on
    config = RunConfig(
        scenario=scenario,
        agents=["player_0=scripted:tit_for_tat", "*=scripted:defect"],
        orders=[order],
        goal="off",
    )
    agents = {s: build_agent(s) for s in ("scripted:tit_for_tat", "scripted:defect")}
    (ep,) = plan(config)
    game, seats = build_game(ep, config, agents)
    ds = [d for d in records(ep, play([game])[0], seats)[1] if d["player"] == "player_0"]
    assert [_coop(d) for d in ds] == [1.0] + [0.0] * (len(ds) - 1)


@pytest.mark.parametrize("order", ORDERS)
def test_tit_for_tat_answers_the_previous_stage_in_sequential_games(order: str) -> None:
    config = RunConfig(
        scenario="ultimatum",
        agents=["proposer=scripted:defect", "responder=scripted:tit_for_tat"],
        orders=[order],
        goal="off",
    )
    agents = {s: build_agent(s) for s in ("scripted:defect", "scripted:tit_for_tat")}
    (ep,) = plan(config)
    game, seats = build_game(ep, config, agents)
    ds = records(ep, play([game])[0], seats)[1]
    assert [(d["player"], d["option"]) for d in ds] == [
        ("proposer", 0),
        ("responder", 0),
    ]  # offer 0 -> reject


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("scenario", GAMES)
def test_utility_agents_choose_the_best_option_shown(scenario: str, order: str) -> None:
    for t in (90.0, 45.0, 0.0, -45.0):
        for d in _decisions(scenario, f"scripted:angle:{t:g}", order):
            u = [np.cos(np.radians(t)) * s + np.sin(np.radians(t)) * o for s, o in d["options"]]
            assert u[d["option"]] == pytest.approx(max(u), abs=1e-6), (t, d["options"])
    for d in _decisions(scenario, "scripted:ideal:prosocial", order):
        gap = [abs(s - o) for s, o in d["options"]]
        assert gap[d["option"]] == pytest.approx(min(gap), abs=1e-6)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("scenario", GAMES)
def test_position_probe_always_takes_the_first_shown_option(scenario: str, order: str) -> None:
    ds = _decisions(scenario, "scripted:always:0", order)
    assert {d["shown_option"] for d in ds} == {0}
    assert all(d["option"] == d["shown_order"][0] for d in ds)
    if order == "reversed":  # the first shown is the last canonical option
        assert all(d["option"] == len(d["shown_order"]) - 1 for d in ds)


@pytest.mark.parametrize("scenario", GAMES)
def test_random_agent_is_uniform_over_legal_shown_options(scenario: str) -> None:
    ds = _decisions(scenario, "scripted:random", "permuted", trials=40)
    by_n: dict[int, list[int]] = {}
    for d in ds:
        by_n.setdefault(len(d["shown_order"]), []).append(d["shown_option"])
    for n, picks in by_n.items():
        counts = np.bincount(picks, minlength=n)
        assert counts.size == n  # never an illegal position
        if len(picks) >= 20 * n:  # chi-square against uniform, df = n - 1, far tail (seeded)
            e = len(picks) / n
            assert ((counts - e) ** 2 / e).sum() < 3 * n + 10


def test_dilemma_only_agents_are_refused_on_instruments() -> None:
    from agents.registry import AgentSpecError

    for spec in ("scripted:cooperate", "scripted:defect", "scripted:tit_for_tat"):
        with pytest.raises(AgentSpecError, match="acts in"):
            check_spec(spec, {"instrument"})
        check_spec(spec, {"matrix", "public_goods", "sequential", "slider"})


def test_seats_started_apart_play_as_seats_started_by_play() -> None:
    """`start` over more games than are stepped together (the executors' units), then `play` in
    parts with those states, gives the records of `play` starting them itself; a game without a
    seat for one of its players is refused by name, and so are states for the wrong games."""
    from runs.rollout import start

    config = RunConfig(
        scenario="prisoners_dilemma_repeated",
        agents=["player_0=scripted:tit_for_tat", "*=scripted:random"],
        orders=["permuted"],
        trials=4,
        goal="off",
    )
    agents = {s: build_agent(s) for s in ("scripted:tit_for_tat", "scripted:random")}
    eps = plan(config)

    def games():
        return [build_game(ep, config, agents) for ep in eps]

    whole = [
        records(ep, p, s) for ep, (_, s), p in zip(eps, games(), play([g for g, _ in games()]), strict=True)
    ]
    built = games()
    started = start([g for g, _ in built])
    parts = []
    for i in range(0, len(built), 3):
        part = built[i : i + 3]
        parts += play([g for g, _ in part], started=started[i : i + 3])
    assert [records(ep, p, s) for ep, (_, s), p in zip(eps, built, parts, strict=True)] == whole
    assert len({str(r[1]) for r in whole}) > 1  # the trials differ: the comparison can fail
    with pytest.raises(ValueError, match="started seat sets"):
        play([g for g, _ in games()[:2]], started=started[:1])
    game, _ = games()[0]
    game.seats = {"player_0": game.seats["player_0"]}
    with pytest.raises(ValueError, match=r"no seat for player\(s\) \['player_1'\]"):
        start([game])
