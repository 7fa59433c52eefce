"""Pieces shared by the dilemma envs: the no-answer convention, beliefs, spaces, records."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding

__all__ = [
    "ACTION_ORDERS",
    "NO_ANSWER",
    "SimultaneousRounds",
    "belief",
    "check_action_order",
    "cooperation_space",
    "draw_order",
    "history_space",
    "order_space",
    "payoff_box",
    "seed_rng",
]

#: Pass as an agent's action when it gave no valid answer. Its interactions that round are void
#: (no payoff to either side), it is recorded as invalid and counted, never replaced by an action.
NO_ANSWER = -1

#: How the actions are listed to an agent: in the scenario's order, reversed, or permuted per
#: episode (one seeded permutation per player, kept for the whole episode). Observations are in
#: the shown order; actions are shown positions; infos report the canonical action.
ACTION_ORDERS = ("fixed", "reversed", "permuted")


def check_action_order(action_order: str) -> str:
    if action_order not in ACTION_ORDERS:
        raise ValueError(f"action_order={action_order!r}; allowed: {list(ACTION_ORDERS)}")
    return action_order


def draw_order(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Canonical action index of each shown position (n actions) under an order condition."""
    if kind == "fixed":
        return np.arange(n)
    if kind == "reversed":
        return np.arange(n)[::-1].copy()
    return rng.permutation(n)


def seed_rng(seed: int | None) -> tuple[np.random.Generator, int]:
    """The env's one generator (Gymnasium's seeding), as reset(seed=...) creates it."""
    return seeding.np_random(seed)


def belief(counts: np.ndarray, kind: str) -> np.ndarray:
    """Belief about a partner's next action from its past action counts (..., n_actions).

    "uniform": every action equally likely (a level-0 belief, used for one-shot games);
    "empirical": past frequencies with one pseudo-count per action (Laplace), so uniform before
    any play and approaching the observed frequencies.
    """
    c = np.asarray(counts, dtype=np.float64)
    n = c.shape[-1]
    if kind == "uniform":
        return np.full(c.shape, 1.0 / n)
    return (c + 1.0) / (c.sum(axis=-1, keepdims=True) + n)


def payoff_box(low: float, high: float, n_actions: int) -> spaces.Box:
    """Box for the per-action expected [self, other] payoffs, with a margin for float32."""
    lo, hi = float(np.floor(low)) - 1.0, float(np.ceil(high)) + 1.0
    return spaces.Box(lo, hi, shape=(n_actions, 2), dtype=np.float32)


def history_space(memory: int, n_actions: int) -> spaces.Box:
    """Last `memory` rounds (oldest first): row 0 my action one-hot, row 1 partners' action shares."""
    return spaces.Box(0.0, 1.0, shape=(memory, 2, n_actions), dtype=np.float32)


def order_space(n_actions: int) -> spaces.Box:
    """Canonical action index of each shown position."""
    return spaces.Box(0, n_actions - 1, shape=(n_actions,), dtype=np.int64)


def cooperation_space(n_actions: int) -> spaces.Box:
    """How cooperative each shown action is, 0..1 (the scenario's cooperation scores)."""
    return spaces.Box(0.0, 1.0, shape=(n_actions,), dtype=np.float32)


def jsonable(x: Any) -> Any:
    """Numbers and arrays as plain JSON values (NaN -> None)."""
    if isinstance(x, np.ndarray):
        return [jsonable(v) for v in x.tolist()]
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, (float, np.floating)):
        return None if np.isnan(x) else round(float(x), 6)
    if isinstance(x, np.integer):
        return int(x)
    return x


class SimultaneousRounds:
    """Reset, observations and action checking shared by the simultaneous-move dilemma envs.

    The env provides `possible_agents`, `n_actions`, `rounds_`, `scenario` (with `memory`),
    `action_order`, `_option_payoffs()` -> (n_agents, n_actions, 2) and `_cooperation(r)` ->
    (n_actions,); this mixin keeps the round counter, the partners' action counts (for beliefs),
    the history window and each player's shown order (canonical in the state, shown in the
    observations).
    """

    def _observation_spaces(self, payoffs: spaces.Box) -> spaces.Dict:
        return spaces.Dict(
            {
                "round": spaces.Discrete(self.rounds_),
                "payoffs": payoffs,
                "history": history_space(self.scenario.memory, self.n_actions),
                "order": order_space(self.n_actions),
                "cooperation": cooperation_space(self.n_actions),
            }
        )

    def _observe_all(self) -> dict[str, dict[str, np.ndarray]]:
        pay = self._option_payoffs().astype(np.float32)
        r = min(self._r, self.rounds_ - 1)
        coop = np.asarray(self._cooperation(r), dtype=np.float32)
        out = {}
        for i, a in enumerate(self.possible_agents):
            if a not in self.agents:
                continue
            o = self._orders[i]
            out[a] = {
                "round": r,
                "payoffs": pay[i][o].copy(),
                "history": self._history[i][..., o].copy(),
                "order": o.astype(np.int64),
                "cooperation": coop[o].copy(),
            }
        return out

    def reset(self, seed: int | None = None, options: dict | None = None):
        if seed is not None or not hasattr(self, "_counts"):
            self.np_random, self.np_random_seed = seed_rng(seed)
        n = len(self.possible_agents)
        self.agents = list(self.possible_agents)
        self._r = 0
        self._counts = np.zeros((n, self.n_actions))
        self._history = np.zeros((n, self.scenario.memory, 2, self.n_actions), dtype=np.float32)
        self._orders = np.stack(
            [draw_order(self.action_order, self.n_actions, self.np_random) for _ in range(n)]
        )
        self._last: dict[str, Any] = {}
        infos = {
            a: {"round": 0, "order": self._orders[i].tolist()} for i, a in enumerate(self.possible_agents)
        }
        return self._observe_all(), infos

    def _actions_array(self, actions: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
        """Every agent's canonical action and shown position as arrays (NO_ANSWER allowed), or a
        clear error."""
        if not self.agents:
            raise RuntimeError("step() called after the episode ended; call reset()")
        missing = [a for a in self.agents if a not in actions]
        if missing:
            raise ValueError(
                f"actions missing for agents {missing[:5]}; pass NO_ANSWER={NO_ANSWER} for no answer"
            )
        act = np.array([int(actions[a]) for a in self.possible_agents])
        bad = [
            (a, int(k))
            for a, k in zip(self.possible_agents, act, strict=True)
            if k != NO_ANSWER and not 0 <= k < self.n_actions
        ]
        if bad:
            raise ValueError(f"actions {bad[:3]} outside 0..{self.n_actions - 1} (or NO_ANSWER={NO_ANSWER})")
        canon = np.where(act == NO_ANSWER, NO_ANSWER, self._orders[np.arange(len(act)), np.maximum(act, 0)])
        return canon, act

    def _end_round(self, rewards: np.ndarray, infos: dict[str, dict[str, Any]]):
        """Advance the round and return step()'s 5-tuple; the episode ends after the last round."""
        self._r += 1
        done = self._r >= self.rounds_
        obs = self._observe_all()
        rew = {a: float(rewards[i]) for i, a in enumerate(self.possible_agents)}
        terms = {a: done for a in self.agents}
        truncs = {a: False for a in self.agents}
        if done:
            self.agents = []
        return obs, rew, terms, truncs, infos
