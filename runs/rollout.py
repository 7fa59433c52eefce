"""Play many episodes of any environment together: Gymnasium envs (the SVO instruments) and
PettingZoo envs (parallel and AEC dilemmas), batching every agent's decisions in each step.

One `Game` is one episode: an env, and for each seat (player) an agent and its EpisodeContext.
`play` resets every env with its seed, starts every seat (one `start_batch` per agent object;
`start` does this apart, so that seats of more games than are stepped together can start in one
call), then repeatedly collects every observation waiting for a decision across all games, asks each
agent object for all of its decisions at once (`act_batch`), and steps the envs. An invalid
decision (action None) is passed on as the env's NO_ANSWER and stays invalid in the record; it is
never replaced by an action.

The result of each game is a `Played`: its decisions in the order they were taken, each with the
shown order, the canonical options, the env's info (canonical action, payoffs) and the reward, and
for instruments the episode's score (scoring.wrappers.SVOScoring).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from pettingzoo import AECEnv, ParallelEnv

from agents.base import Agent, Decision, EpisodeContext
from scoring.wrappers import SVOScoring

__all__ = ["Game", "Played", "Seat", "Step", "play", "single", "start"]

NO_ANSWER = -1  # the value every env of this project takes for "no valid answer"
SOLO = "agent"  # the seat name of a single-agent (Gymnasium) game


@dataclass(frozen=True)
class Seat:
    """Who sits at one player's place: the agent and what it is told."""

    agent: Agent
    context: EpisodeContext


@dataclass
class Game:
    """One episode to play: an env (Gymnasium, or a PettingZoo Parallel or AEC env), its seats by
    player name (`SOLO` for a Gymnasium env) and the env's reset seed."""

    env: Any
    seats: Mapping[str, Seat]
    seed: int


@dataclass
class Step:
    """One decision and what the env made of it.

    player: the seat; index: position among the episode's decisions; shown_order: the canonical
    option of each shown position; options: canonical [self, other] per option at decision time;
    info: the env's info for this decision (canonical "action"/"option", payoffs...); reward: the
    player's reward for it (sequential games: set when the round ends)."""

    player: str
    index: int
    decision: Decision
    shown_order: list[int]
    options: list[list[float]]
    info: dict[str, Any] = field(default_factory=dict)
    reward: float = 0.0


@dataclass
class Played:
    """A finished game: its decisions in order, reset info, total rewards and (instruments) score."""

    game: Game
    steps: list[Step] = field(default_factory=list)
    reset_info: dict[str, Any] = field(default_factory=dict)
    rewards: dict[str, float] = field(default_factory=dict)
    score: dict[str, Any] | None = None

    @property
    def decisions(self) -> list[Decision]:
        return [s.decision for s in self.steps]

    @property
    def infos(self) -> list[dict[str, Any]]:
        return [s.info for s in self.steps]

    @property
    def order(self) -> list:
        """The shown order of an instrument episode (per item: canonical option per shown position)."""
        return self.reset_info.get("order", [])


def _kind(env: Any) -> str:
    if isinstance(env, AECEnv):
        return "aec"
    if isinstance(env, ParallelEnv):
        return "parallel"
    if isinstance(env, gym.Env):
        return "gym"
    raise TypeError(f"{type(env).__name__} is neither a Gymnasium env nor a PettingZoo Parallel/AEC env")


def _canonical(obs: Mapping[str, Any]) -> tuple[list[int], list[list[float]]]:
    """Shown order and the options' payoffs in canonical order (legal options only)."""
    pay = np.asarray(obs["payoffs"], dtype=np.float64)
    n = int(np.asarray(obs["action_mask"]).sum()) if "action_mask" in obs else len(pay)
    order = np.asarray(obs.get("order", np.arange(len(pay))))[:n].astype(int)
    canon = np.zeros((n, 2))
    canon[order] = pay[:n]
    return order.tolist(), np.round(canon, 6).tolist()


def _players(env: Any, kind: str | None = None) -> list[str]:
    """The seats an env needs: SOLO for a Gymnasium env, else its possible agents (kind: the env's
    `_kind`, when already known)."""
    return [SOLO] if (kind or _kind(env)) == "gym" else list(env.possible_agents)


def _check_seats(i: int, game: Game, players: Sequence[str]) -> None:
    missing = sorted(set(players) - set(game.seats))
    if missing:
        raise ValueError(f"game {i}: no seat for player(s) {missing}")


class _Table:
    """The live state of all games: observations waiting for a decision and agent states."""

    def __init__(self, games: Sequence[Game]) -> None:
        self.games = list(games)
        self.kinds = [_kind(g.env) for g in self.games]
        self.envs: list[Any] = [
            SVOScoring(g.env, target_value=g.seats[SOLO].context.value) if k == "gym" else g.env
            for g, k in zip(self.games, self.kinds, strict=True)
        ]
        self.played = [Played(g) for g in self.games]
        self.obs: list[Any] = [None] * len(self.games)
        self.done = [False] * len(self.games)
        self.states: dict[tuple[int, str], Any] = {}
        self.actions: dict[int, dict[str, int]] = {}
        self.pending_pay: dict[tuple[int, str], list[Step]] = {}

    def reset(self) -> None:
        for i, (g, kind, env) in enumerate(zip(self.games, self.kinds, self.envs, strict=True)):
            if kind == "aec":
                env.reset(seed=g.seed)
                self.played[i].reset_info = {p: dict(env.infos.get(p, {})) for p in env.possible_agents}
                self.done[i] = not env.agents
            else:
                self.obs[i], info = env.reset(seed=g.seed)
                self.played[i].reset_info = dict(info)
                self.done[i] = kind == "parallel" and not env.agents
            _check_seats(i, g, self._players(i))

    def _players(self, i: int) -> list[str]:
        return _players(self.envs[i], self.kinds[i])

    def waiting(self) -> list[tuple[int, str, Any]]:
        """Every (game, player, observation) that needs a decision now."""
        out = []
        for i, kind in enumerate(self.kinds):
            if self.done[i]:
                continue
            env = self.envs[i]
            if kind == "gym":
                out.append((i, SOLO, self.obs[i]))
            elif kind == "parallel":
                out += [(i, p, self.obs[i][p]) for p in env.agents]
            else:
                while env.agents:
                    p = env.agent_selection
                    if env.terminations[p] or env.truncations[p]:
                        env.step(None)
                        continue
                    out.append((i, p, env.observe(p)))
                    break
                self.done[i] = not env.agents
        return out

    def record(self, i: int, player: str, obs: Any, decision: Decision) -> Step:
        order, options = _canonical(obs)
        steps = self.played[i].steps
        step = Step(player, len(steps), decision, order, options)
        steps.append(step)
        return step

    def apply(self, i: int, player: str, step: Step) -> None:
        """Hand one decision to its env (parallel envs step once every player has decided)."""
        action = NO_ANSWER if step.decision.action is None else int(step.decision.action)
        env, kind = self.envs[i], self.kinds[i]
        if kind == "gym":
            self.obs[i], r, term, trunc, info = env.step(action)
            step.reward = float(r)
            if term or trunc:
                self.played[i].score = info.pop("svo", None)
                self.done[i] = True
            step.info = dict(info)
            self.played[i].rewards[SOLO] = self.played[i].rewards.get(SOLO, 0.0) + float(r)
        elif kind == "parallel":
            self.actions.setdefault(i, {})[player] = action
            self.pending_pay.setdefault((i, player), []).append(step)
        else:
            env.step(action)
            step.info = dict(env.infos.get(player, {}))
            self.pending_pay.setdefault((i, player), []).append(step)
            self._settle_aec(i)
            self.done[i] = not env.agents

    def _settle_aec(self, i: int) -> None:
        """After a sequential game's round ends, its payoffs reach every role's steps of the round."""
        env = self.envs[i]
        for p in env.possible_agents:
            info = env.infos.get(p, {})
            if "self" not in info and not info.get("void"):
                continue
            for st in self.pending_pay.pop((i, p), []):
                st.info.update({k: info[k] for k in ("self", "other", "void") if k in info})
                st.reward = float(env.rewards.get(p, 0.0))
                self.played[i].rewards[p] = self.played[i].rewards.get(p, 0.0) + st.reward

    def step_parallel(self) -> None:
        for i, acts in self.actions.items():
            env = self.envs[i]
            self.obs[i], rew, _, _, infos = env.step(acts)
            for p in acts:
                for st in self.pending_pay.pop((i, p), []):
                    st.info = dict(infos.get(p, {}))
                    st.reward = float(rew.get(p, 0.0))
                    self.played[i].rewards[p] = self.played[i].rewards.get(p, 0.0) + st.reward
            self.done[i] = not env.agents
        self.actions = {}


def start(games: Sequence[Game], on_decisions: Callable[[int], None] | None = None) -> list[dict[str, Any]]:
    """Start every seat of every game: one `start_batch` per agent object, over all of that agent's
    seats in these games (value induction and goal prompts for all of them together). Returns each
    game's seat states by player, for `play(..., started=...)`."""
    agents: dict[int, Agent] = {}
    seats_of: dict[int, list[tuple[int, str]]] = {}
    for i, g in enumerate(games):
        players = _players(g.env)
        _check_seats(i, g, players)
        for p in players:
            a = g.seats[p].agent
            agents.setdefault(id(a), a)
            seats_of.setdefault(id(a), []).append((i, p))
    out: list[dict[str, Any]] = [{} for _ in games]
    for aid, keys in seats_of.items():
        states = agents[aid].start_batch([games[i].seats[p].context for i, p in keys])
        for (i, p), st in zip(keys, states, strict=True):
            out[i][p] = st
        if on_decisions is not None:
            on_decisions(len(keys))
    return out


def play(
    games: Sequence[Game],
    on_decisions: Callable[[int], None] | None = None,
    started: Sequence[Mapping[str, Any]] | None = None,
) -> list[Played]:
    """Play every game to its end, all together (see the module docstring).

    on_decisions(n): called after each batch of n decisions, and with the number of seats once the
    seats are started (value induction and goal prompts count as one step each), for progress bars.
    started: the games' seat states from `start` (seats started earlier, e.g. together with other
    games); None starts them here.
    """
    table = _Table(games)
    table.reset()
    if started is None:
        started = start(table.games, on_decisions)
    if len(started) != len(table.games):
        raise ValueError(f"{len(started)} started seat sets for {len(table.games)} games")
    agents: dict[int, Agent] = {}
    for i, g in enumerate(table.games):
        for p in table._players(i):
            agents.setdefault(id(g.seats[p].agent), g.seats[p].agent)
            table.states[(i, p)] = started[i][p]
    while True:
        waiting = table.waiting()
        if not waiting:
            break
        by_agent: dict[int, list[tuple[int, str, Any]]] = {}
        for i, p, o in waiting:
            by_agent.setdefault(id(table.games[i].seats[p].agent), []).append((i, p, o))
        for aid, batch in by_agent.items():
            out = agents[aid].act_batch([o for _, _, o in batch], [table.states[(i, p)] for i, p, _ in batch])
            if len(out) != len(batch):
                raise RuntimeError(
                    f"agent {agents[aid].name!r} returned {len(out)} decisions for {len(batch)}"
                )
            for (i, p, o), (decision, state) in zip(batch, out, strict=True):
                table.states[(i, p)] = state
                table.apply(i, p, table.record(i, p, o, decision))
            if on_decisions is not None:
                on_decisions(len(batch))
        table.step_parallel()
    return table.played


def single(agent: Agent, envs: Sequence[gym.Env], contexts: Sequence[EpisodeContext]) -> list[Played]:
    """Play one agent through Gymnasium envs (one episode per env/context), all together."""
    if len(envs) != len(contexts):
        raise ValueError(f"{len(envs)} envs for {len(contexts)} contexts")
    return play([Game(e, {SOLO: Seat(agent, c)}, c.seed) for e, c in zip(envs, contexts, strict=True)])
