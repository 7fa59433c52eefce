"""Turn-based games (dictator, ultimatum, trust) as one AEC environment driven by stages."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import AECEnv

from envs.dilemmas.common import NO_ANSWER, check_action_order, draw_order, payoff_box, seed_rng
from scenarios.dilemmas import Dilemma, load_dilemma

__all__ = ["SequentialGameEnv"]


class SequentialGameEnv(AECEnv):
    """A game of stages played in turn: each stage one role picks an action; payoffs at the end.

    ## Description
    The scenario lists roles (`players`), `stages` (who moves, the variable the move sets, the
    actions with their values) and one payoff expression per role over the stage variables and
    the scenario's variables. Dictator: one stage. Ultimatum: offer, then accept/reject. Trust:
    invest, then return a share of the multiplied amount. `rounds` repeats the whole game.

    ## Agents
    The role names, e.g. "proposer", "responder".

    ## Observation space (per agent)
    Dict (n = the most actions any stage has):
    - "round": Discrete(rounds);
    - "stage": Discrete(n_stages), the stage now to move;
    - "previous": Box(-1, n - 1, (n_stages,), int64): action index chosen at each stage this round
      (-1 = not yet);
    - "payoffs": Box((n, 2), float32): for each action of the stage now to move, the expected
      [self, other] payoff of the observing agent if that action is taken, other = the other
      roles' mean. Later stages are averaged under a uniform belief (a level-0 belief: each later
      action equally likely); rows past the stage's actions are zero;
    - "action_mask": Box(0, 1, (n,), int8): 1 for the actions of the stage now to move if the
      observing agent is the one to move, else all 0;
    - "order": Box(0, n - 1, (n,), int64): the canonical action of each shown position of the
      stage now to move (positions past its actions map to themselves);
    - "cooperation": Box(0, 1, (n,), float32): each shown action's value rescaled to 0..1 within
      the stage (zeros past its actions).
    "payoffs", "action_mask", "order" and "cooperation" are in the SHOWN order (`action_order`:
    the stage's actions as listed, reversed, or permuted once per episode per stage); "previous"
    holds canonical indices.

    ## Action space
    Discrete(n): a shown position; only masked positions are legal. `NO_ANSWER` (-1) marks an
    invalid answer: the round is void (every role gets 0) and it is recorded as invalid.

    ## Rewards
    At the end of each round, each role's payoff expression. Zero elsewhere.

    ## Episode end
    All roles terminate after `rounds` rounds. No truncation.

    ## Info (per agent, set when it moves)
    "round", "stage", "action" (canonical), "shown_action", "valid", "options" (canonical
    [self, other] per action of the stage at the move), "cooperation" (the action's value
    rescaled to 0..1 within the stage); at round end "self", "other" and "void".

    ## Arguments
    scenario: id or `Dilemma` of kind "sequential". rounds: override.
    action_order: "fixed" | "reversed" | "permuted". render_mode: None | "ansi".

    ## Version history
    v1: observations gain "order" and "cooperation", in the shown order (`action_order`).
    v0: initial release.
    """

    metadata = {"name": "dilemma_sequential_v1", "render_modes": ["ansi"], "is_parallelizable": False}

    def __init__(
        self,
        scenario: str | Dilemma = "dictator",
        rounds: int | None = None,
        action_order: str = "fixed",
        render_mode: str | None = None,
    ):
        super().__init__()
        d = load_dilemma(scenario) if isinstance(scenario, str) else scenario
        self.action_order = check_action_order(action_order)
        if d.game != "sequential":
            raise ValueError(f"scenario {d.id!r} is a {d.game!r} game; SequentialGameEnv plays 'sequential'")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode={render_mode!r}; allowed: {self.metadata['render_modes']}")
        if rounds is not None and rounds < 1:
            raise ValueError(f"rounds={rounds}; must be >= 1")
        self.scenario = d
        self.render_mode = render_mode
        self.rounds_ = d.rounds if rounds is None else rounds
        self.possible_agents = list(d.players)
        self.stages = d.stages
        self.n_max = max(len(s.actions) for s in self.stages)
        self._vals = [np.array([a.value for a in s.actions], dtype=np.float64) for s in self.stages]
        self._table = self._outcomes()  # (n_1, ..., n_S, roles)
        self._coop = []
        for v in self._vals:
            span = v.max() - v.min()
            self._coop.append((v - v.min()) / span if span > 0 else np.zeros_like(v))
        lo, hi = float(self._table.min()), float(self._table.max())
        n_st = len(self.stages)
        self._obs_space = spaces.Dict(
            {
                "round": spaces.Discrete(self.rounds_),
                "stage": spaces.Discrete(n_st),
                "previous": spaces.Box(-1, self.n_max - 1, shape=(n_st,), dtype=np.int64),
                "payoffs": payoff_box(min(lo, 0.0), max(hi, 0.0), self.n_max),
                "action_mask": spaces.Box(0, 1, shape=(self.n_max,), dtype=np.int8),
                "order": spaces.Box(0, self.n_max - 1, shape=(self.n_max,), dtype=np.int64),
                "cooperation": spaces.Box(0.0, 1.0, shape=(self.n_max,), dtype=np.float32),
            }
        )
        self._act_space = spaces.Discrete(self.n_max)
        self.np_random, self.np_random_seed = seed_rng(None)
        self.agents: list[str] = []

    def _outcomes(self) -> np.ndarray:
        """Payoff of every role for every complete play: shape (n_1, ..., n_S, n_roles)."""
        return self.scenario.sequential_table()

    @functools.cache  # noqa: B019 - spaces must be the same object per agent
    def observation_space(self, agent: str) -> spaces.Space:
        return self._obs_space

    @functools.cache  # noqa: B019
    def action_space(self, agent: str) -> spaces.Space:
        return self._act_space

    def option_payoffs(self, agent: str) -> np.ndarray:
        """(n_actions of the current stage, 2): expected [self, others' mean] per action."""
        st = self._stage
        sub = self._table[tuple(self._prev[:st])]  # fix earlier stages
        later = tuple(range(1, sub.ndim - 1))
        exp = sub.mean(axis=later) if later else sub  # (n_st_actions, roles)
        i = self.possible_agents.index(agent)
        others = [j for j in range(len(self.possible_agents)) if j != i]
        return np.stack([exp[:, i], exp[:, others].mean(axis=1)], axis=-1)

    def observe(self, agent: str) -> dict[str, Any]:
        st = min(self._stage, len(self.stages) - 1)
        pay = np.zeros((self.n_max, 2), dtype=np.float32)
        mask = np.zeros(self.n_max, dtype=np.int8)
        order = np.arange(self.n_max, dtype=np.int64)
        coop = np.zeros(self.n_max, dtype=np.float32)
        shown = self._orders[st]
        order[: len(shown)] = shown
        coop[: len(shown)] = self._coop[st][shown]
        if self._stage < len(self.stages) and self._r < self.rounds_:
            opts = self.option_payoffs(agent)
            pay[: len(opts)] = opts[shown]
            if agent == self.stages[st].player:
                mask[: len(opts)] = 1
        prev = np.full(len(self.stages), -1, dtype=np.int64)
        prev[: len(self._prev)] = self._prev
        return {
            "round": min(self._r, self.rounds_ - 1),
            "stage": st,
            "previous": prev,
            "payoffs": pay,
            "action_mask": mask,
            "order": order,
            "cooperation": coop,
        }

    def reset(self, seed: int | None = None, options: dict | None = None) -> None:
        if seed is not None or not hasattr(self, "_r"):
            self.np_random, self.np_random_seed = seed_rng(seed)
        self.agents = list(self.possible_agents)
        self.rewards = {a: 0.0 for a in self.agents}
        self._cumulative_rewards = {a: 0.0 for a in self.agents}
        self.terminations = {a: False for a in self.agents}
        self.truncations = {a: False for a in self.agents}
        self.infos = {a: {} for a in self.agents}
        self._r, self._stage, self._prev = 0, 0, []
        self._orders = [draw_order(self.action_order, len(s.actions), self.np_random) for s in self.stages]
        for a in self.agents:
            self.infos[a] = {"order": [o.tolist() for o in self._orders]}
        self._last: dict[str, Any] = {}
        self.agent_selection = self.stages[0].player

    def _end_round(self, void: bool) -> None:
        n_roles = len(self.possible_agents)
        pay = np.zeros(n_roles) if void else self._table[tuple(self._prev)]
        for i, a in enumerate(self.possible_agents):
            others = [pay[j] for j in range(n_roles) if j != i]
            self.rewards[a] = float(pay[i])
            self.infos[a] = {
                **self.infos[a],
                "round": self._r,
                "void": void,
                "self": float("nan") if void else float(pay[i]),
                "other": float("nan") if void else float(np.mean(others)),
            }
        self._last = {"round": self._r, "prev": list(self._prev), "void": void, "pay": pay.tolist()}
        self._r += 1
        self._stage, self._prev = 0, []
        if self._r >= self.rounds_:
            self.terminations = {a: True for a in self.agents}

    def step(self, action: int | None) -> None:
        agent = self.agent_selection
        if self.terminations[agent] or self.truncations[agent]:
            self._was_dead_step(action)
            return
        self._cumulative_rewards[agent] = 0.0
        self.rewards = {a: 0.0 for a in self.agents}
        stage = self.stages[self._stage]
        pos = NO_ANSWER if action is None else int(action)
        n = len(stage.actions)
        if pos != NO_ANSWER and not 0 <= pos < n:
            raise ValueError(
                f"action {pos} of {agent} at stage {stage.name!r} outside 0..{n - 1} (or NO_ANSWER=-1)"
            )
        k = NO_ANSWER if pos == NO_ANSWER else int(self._orders[self._stage][pos])
        options = self.option_payoffs(agent)
        ok = k != NO_ANSWER
        self.infos = {a: {} for a in self.agents}
        self.infos[agent] = {
            "round": self._r,
            "stage": stage.name,
            "action": k if ok else None,
            "shown_action": pos if ok else None,
            "valid": ok,
            "options": options.tolist(),
            "cooperation": float(self._coop[self._stage][k]) if ok else None,
        }
        if ok:
            self._prev.append(k)
            self._stage += 1
            if self._stage >= len(self.stages):
                self._end_round(void=False)
        else:
            self._end_round(void=True)
        if any(self.terminations.values()):
            self.agent_selection = self.agents[0]
        else:
            self.agent_selection = self.stages[self._stage].player
        self._accumulate_rewards()

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        d = self.scenario
        lines = [f"{d.name}: round {min(self._r + 1, self.rounds_)} of {self.rounds_}"]
        for i, k in enumerate(self._prev):
            s = self.stages[i]
            lines.append(f"  {s.player} chose {s.name} = {s.actions[k].name}")
        if self._last:
            if self._last["void"]:
                lines.append("  last round void (no valid answer)")
            else:
                pays = ", ".join(
                    f"{a} {p:g}" for a, p in zip(self.possible_agents, self._last["pay"], strict=True)
                )
                lines.append(f"  last round payoffs: {pays}")
        return "\n".join(lines) + "\n"

    def close(self) -> None:
        pass
