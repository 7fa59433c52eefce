"""From planned episodes to games (env + seats), and from played games to typed records.

The records are what the run store keeps and exports (episodes.jsonl, decisions.jsonl): one
`EpisodeRecord` per episode and one `DecisionRecord` per decision, the same schema for instruments
and scenarios. They hold no timestamps and no session numbers, so a resumed run writes exactly what
an uninterrupted one does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from agents.base import Agent, EpisodeContext
from runs.config import RunConfig
from runs.plan import EpisodeSpec, SeatPlan, scenario_seats
from runs.rollout import SOLO, Game, Played, Seat
from scoring.stats import stable_seed

__all__ = ["DecisionRecord", "EpisodeRecord", "build_game", "records", "seat_specs"]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PlayerSummary(_Record):
    """One player of a scenario episode: who played it and what it got."""

    group: str
    agent: str
    value: str | None
    framing: str
    n_decisions: int
    n_invalid: int
    total_reward: float


class EpisodeRecord(_Record):
    """One finished episode (kind "instrument": one agent through an instrument; kind "scenario":
    every player of a dilemma, in `players`)."""

    key: str
    kind: str
    agent: str
    instrument: str
    items: str
    order: str
    value: str | None
    goal: bool
    trial: int
    seed: int
    prompt_set: str
    framing: str
    n_decisions: int
    n_invalid: int
    total_reward: float
    shown_orders: list[list[int]] | None = None
    choices: dict[str, int | None] | None = None
    score: dict[str, Any] | None = None
    game: str | None = None
    rounds: int | None = None
    players: dict[str, PlayerSummary] | None = None


class DecisionRecord(_Record):
    """One decision: where it was taken, what was shown, what the agent chose and its evidence.

    shown_option: the shown position chosen; option: the canonical option (None: invalid);
    shown_order: the canonical option of each shown position; options: canonical [self, other] per
    option at decision time; self/other: the realised payoffs (dilemmas: own and partners' mean);
    cooperation: the chosen action's cooperation score (dilemmas); record: the agent's evidence
    (prompts, reply, parse method, probabilities...)."""

    episode: str
    step: int
    player: str | None
    group: str | None
    agent: str
    value: str | None
    goal: bool
    order: str
    instrument: str
    trial: int
    round: int | None
    item_id: int | None
    stage: str | None
    shown_option: int | None
    option: int | None
    shown_order: list[int]
    options: list[list[float]]
    valid: bool
    self: float | None
    other: float | None
    reward: float
    cooperation: float | None
    record: dict[str, Any]


# -- building games -----------------------------------------------------------------------------------


def _framings(framing: str) -> list[str]:
    return [] if framing == "none" else framing.split("+")


def seat_specs(config: RunConfig) -> dict[str, SeatPlan]:
    """The seats of a scenario run's first episode (every episode has the same players and specs;
    values and framings may vary): for building the agents and checking them up front."""
    from runs.plan import plan
    from scenarios.dilemmas import load_dilemma

    return scenario_seats(load_dilemma(config.scenario), config, plan(config)[0])


def _instrument_game(spec: EpisodeSpec, agent: Agent) -> Game:
    from envs.svo import SVOEnv

    env = SVOEnv(instrument=spec.instrument, items=spec.items, option_order=spec.order)
    ctx = EpisodeContext(
        instrument=spec.instrument,
        n_items=env.n_items,
        n_options=env.n_options,
        seed=spec.seed,
        value=spec.value,
        goal_prompt=spec.goal,
        extra={
            "trial": spec.trial,
            "order": spec.order,
            "prompt_set": spec.prompt_set,
            "framings": spec.framings(),
        },
    )
    return Game(env, {SOLO: Seat(agent, ctx)}, spec.seed)


def _stage_cooperation(d: Any) -> list[list[float]]:
    out = []
    for st in d.stages or ():
        v = np.array([a.value for a in st.actions], dtype=np.float64)
        span = v.max() - v.min()
        out.append(((v - v.min()) / span if span > 0 else np.zeros_like(v)).tolist())
    return out


def _scenario_game(
    spec: EpisodeSpec, config: RunConfig, agents: Mapping[str, Agent]
) -> tuple[Game, dict[str, SeatPlan]]:
    from envs.dilemmas import make_env
    from scenarios.dilemmas import game_text, load_dilemma

    d = load_dilemma(spec.instrument if config.scenario is None else config.scenario)
    kwargs: dict[str, Any] = {"action_order": spec.order}
    if config.rounds:
        kwargs["rounds"] = config.rounds
    env = make_env(d, **kwargs)  # ParallelEnv (simultaneous games) or AECEnv (sequential)
    rounds = int(env.rounds_)
    from envs.dilemmas import MatrixGameEnv

    graph = env.graph if isinstance(env, MatrixGameEnv) else None
    seats_plan = scenario_seats(d, config, spec)
    n_actions = [len(s.actions) for s in d.stages] if d.game == "sequential" else [int(env.n_actions)]
    seats = {}
    for p, sp in seats_plan.items():
        if graph is not None:
            n_nb = int(graph.degree(p))
        else:
            n_nb = len(d.player_names()) - 1
        moves = rounds * (sum(1 for s in d.stages if s.player == p) if d.game == "sequential" else 1)
        ctx = EpisodeContext(
            instrument=d.id,
            n_items=moves,
            n_options=max(n_actions),
            seed=stable_seed(spec.seed, "seat", p) % (2**31),
            value=sp.value,
            goal_prompt=spec.goal,
            game=d.game,
            player=p,
            extra={
                "trial": spec.trial,
                "order": spec.order,
                "prompt_set": spec.prompt_set,
                "framings": _framings(sp.framing),
                "game_text": game_text(d, rounds, n_nb),
                "stage_cooperation": _stage_cooperation(d),
            },
        )
        seats[p] = Seat(agents[sp.spec], ctx)
    return Game(env, seats, spec.seed), seats_plan


def build_game(
    spec: EpisodeSpec, config: RunConfig, agents: Mapping[str, Agent]
) -> tuple[Game, dict[str, SeatPlan] | None]:
    """The game that plays `spec`, with the built agents by spec string."""
    if spec.kind == "instrument":
        return _instrument_game(spec, agents[spec.agent]), None
    return _scenario_game(spec, config, agents)


# -- records -------------------------------------------------------------------------------------------


def _num(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else round(x, 6)


def records(
    spec: EpisodeSpec, played: Played, seats: Mapping[str, SeatPlan] | None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The episode record and its decision records (JSON-ready) of a played game."""
    decisions = []
    for st in played.steps:
        info = st.info
        seat = None if seats is None else seats[st.player]
        option = info.get("option", info.get("action"))
        decisions.append(
            DecisionRecord(
                episode=spec.key,
                step=st.index,
                player=None if seats is None else st.player,
                group=None if seat is None else seat.group,
                agent=spec.agent if seat is None else seat.spec,
                value=spec.value if seat is None else seat.value,
                goal=spec.goal,
                order=spec.order,
                instrument=spec.instrument,
                trial=spec.trial,
                round=info.get("round"),
                item_id=info.get("item_id"),
                stage=info.get("stage"),
                shown_option=info.get("shown_option", info.get("shown_action")),
                option=option,
                shown_order=st.shown_order,
                options=st.options,
                valid=st.decision.action is not None,
                self=_num(info.get("self")),
                other=_num(info.get("other")),
                reward=round(float(st.reward), 6),
                cooperation=_num(info.get("cooperation")),
                record=dict(st.decision.record),
            ).model_dump(mode="json")
        )
    n_invalid = sum(not d["valid"] for d in decisions)
    common = dict(
        key=spec.key,
        kind=spec.kind,
        agent=spec.agent,
        instrument=spec.instrument,
        items=spec.items,
        order=spec.order,
        value=spec.value,
        goal=spec.goal,
        trial=spec.trial,
        seed=spec.seed,
        prompt_set=spec.prompt_set,
        framing=spec.framing,
        n_decisions=len(decisions),
        n_invalid=n_invalid,
        total_reward=round(float(sum(played.rewards.values())), 6),
    )
    if seats is None:
        ep = EpisodeRecord(
            **common,
            shown_orders=played.reset_info.get("order", []),
            choices={str(d["item_id"]): d["option"] for d in decisions},
            score=played.score,
        )
    else:
        game = played.game.env
        players = {}
        for p, sp in seats.items():
            mine = [d for d in decisions if d["player"] == p]
            players[p] = PlayerSummary(
                group=sp.group,
                agent=sp.spec,
                value=sp.value,
                framing=sp.framing,
                n_decisions=len(mine),
                n_invalid=sum(not d["valid"] for d in mine),
                total_reward=round(float(played.rewards.get(p, 0.0)), 6),
            )
        ep = EpisodeRecord(
            **common,
            game=game.scenario.game,
            rounds=int(game.rounds_),
            players=players,
        )
    return ep.model_dump(mode="json"), decisions
