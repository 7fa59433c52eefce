"""The N-player public goods game."""

from __future__ import annotations

import functools

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from envs.dilemmas.common import (
    NO_ANSWER,
    SimultaneousRounds,
    belief,
    check_action_order,
    payoff_box,
    seed_rng,
)
from scenarios.dilemmas import Dilemma, load_dilemma
from scenarios.expr import compile_expr

__all__ = ["PublicGoodsEnv"]


class PublicGoodsEnv(SimultaneousRounds, ParallelEnv):
    """An N-player public goods game: everyone contributes at once; the payoff is an expression.

    ## Description
    Each round every player chooses a contribution level (the scenario's actions, whose values
    are amounts). Each player's payoff is the scenario's `payoffs.self` expression over its
    `contribution`, the `others`' sum, the `total` and `n`, plus the scenario's variables; the
    default linear game is `endowment - contribution + multiplier * total / n`.

    ## Agents
    "player_0" .. "player_{n-1}".

    ## Observation space (per agent)
    Dict:
    - "round": Discrete(rounds);
    - "payoffs": Box((n_actions, 2), float32): per own contribution level, the expected [self,
      other] payoff this round, other = the others' mean payoff. Expectation: every other player
      contributes its expected amount under the `belief` ("uniform" over levels, or "empirical":
      its past frequencies, Laplace-smoothed), plugged into the expression (exact for payoffs
      linear in the others' contributions, as the default game is);
    - "history": Box((memory, 2, n_actions), float32): last `memory` rounds, oldest first; row 0
      my level (one-hot), row 1 the share of the others choosing each level;
    - "order": Box((n_actions,), int64): the canonical level of each shown position;
    - "cooperation": Box((n_actions,), float32): each shown level rescaled to 0..1 (or the
      scenario's `cooperation` scores).
    Every per-action array is in the SHOWN order (`action_order`: fixed, reversed, permuted).

    ## Action space
    Discrete(n_actions): a shown position (levels in increasing order when fixed). `NO_ANSWER` (-1): the player sits the
    round out (contributes nothing, receives nothing, and `n` counts only the players who
    answered); it is recorded as invalid.

    ## Rewards
    Own payoff per round (0 for a player who gave no answer).

    ## Episode end
    All agents terminate after `rounds` rounds. No truncation.

    ## Info (per agent, per step)
    "round", "action" (canonical level index), "shown_action", "valid", "contribution", "self",
    "other" (others' mean payoff), "options" (canonical), "cooperation" (the level's score).
    At reset: "order".

    ## Arguments
    scenario: a scenario id or `Dilemma` of kind "public_goods"; n_players, rounds: overrides.
    action_order: "fixed" | "reversed" | "permuted". render_mode: None | "ansi".

    ## Version history
    v1: observations gain "order" and "cooperation", in the shown order (`action_order`).
    v0: initial release.
    """

    metadata = {"name": "dilemma_public_goods_v1", "render_modes": ["ansi"], "is_parallelizable": True}

    def __init__(
        self,
        scenario: str | Dilemma = "public_goods",
        n_players: int | None = None,
        rounds: int | None = None,
        action_order: str = "fixed",
        render_mode: str | None = None,
    ) -> None:
        d = load_dilemma(scenario) if isinstance(scenario, str) else scenario
        self.action_order = check_action_order(action_order)
        if d.game != "public_goods":
            raise ValueError(f"scenario {d.id!r} is a {d.game!r} game; PublicGoodsEnv plays 'public_goods'")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode={render_mode!r}; allowed: {self.metadata['render_modes']}")
        n = d.n_players() if n_players is None else n_players
        if n < 2:
            raise ValueError(f"n_players={n}; a public goods game needs at least 2")
        if rounds is not None and rounds < 1:
            raise ValueError(f"rounds={rounds}; must be >= 1")
        self.scenario = d
        self.render_mode = render_mode
        self.rounds_ = d.rounds if rounds is None else rounds
        self.possible_agents = [f"player_{i}" for i in range(n)]
        self.values = np.array([a.value for a in d.actions], dtype=np.float64)
        self.action_names = d.action_names()
        self.action_labels = [a.label or a.name for a in d.actions]
        self.n_actions = len(self.values)
        self._coop = d.cooperation_scores()
        self._f = compile_expr(d.payoffs.self_)
        self._vars = dict(d.variables)
        # payoff range over extreme profiles, for the observation box
        lo_hi = []
        for c in (self.values.min(), self.values.max()):
            for tot in (
                self.values.min() * n,
                self.values.max() * n,
                c + self.values.min() * (n - 1),
                c + self.values.max() * (n - 1),
            ):
                lo_hi.append(self._pay(np.array(c), np.array(tot), n))
        lo, hi = float(np.min(lo_hi)), float(np.max(lo_hi))
        self._obs_space = self._observation_spaces(payoff_box(min(lo, 0.0), hi, self.n_actions))
        self._act_space = spaces.Discrete(self.n_actions)
        self.np_random, self.np_random_seed = seed_rng(None)
        self.agents: list[str] = []
        self._r = 0

    def _pay(self, contribution: np.ndarray, total: np.ndarray, n: int | np.ndarray) -> np.ndarray:
        env = {
            **self._vars,
            "contribution": contribution,
            "total": total,
            "others": total - contribution,
            "n": n,
        }
        return np.asarray(self._f(env), dtype=np.float64) * np.ones(np.broadcast(contribution, total).shape)

    @functools.cache  # noqa: B019 - spaces must be the same object per agent
    def observation_space(self, agent: str) -> spaces.Space:
        return self._obs_space

    @functools.cache  # noqa: B019
    def action_space(self, agent: str) -> spaces.Space:
        return self._act_space

    def _cooperation(self, r: int) -> np.ndarray:
        return self._coop

    def _option_payoffs(self) -> np.ndarray:
        """(n, n_actions, 2): expected [self, others' mean] per own level (plug-in expectation)."""
        n = len(self.possible_agents)
        exp_c = belief(self._counts, self.scenario.belief) @ self.values  # (n,) expected contributions
        others_sum = exp_c.sum() - exp_c  # (n,)
        c = self.values[None, :]  # (1, a)
        total = c + others_sum[:, None]  # (n, a)
        own = self._pay(c, total, n)
        # each other j's payoff at its expected contribution, given my level a
        cj = np.broadcast_to(exp_c[None, :, None], (n, n, self.n_actions))
        tj = np.broadcast_to(total[:, None, :], (n, n, self.n_actions))
        pj = self._pay(cj, tj, n)
        mask = 1.0 - np.eye(n)
        other = np.einsum("ij,ija->ia", mask, pj) / (n - 1)
        return np.stack([own, other], axis=-1)

    def step(self, actions: dict[str, int]):
        act, shown = self._actions_array(actions)
        n = len(self.possible_agents)
        options = self._option_payoffs()
        valid = act != NO_ANSWER
        nv = int(valid.sum())
        contrib = np.where(valid, self.values[np.where(valid, act, 0)], 0.0)
        total = contrib[valid].sum()
        pay = np.where(valid, self._pay(contrib, np.full(n, total), max(nv, 1)), np.nan)
        other = np.array([np.nanmean(np.delete(pay, i)) if valid[i] and nv > 1 else np.nan for i in range(n)])
        rewards = np.nan_to_num(pay, nan=0.0)
        onehot = np.zeros((n, self.n_actions), dtype=np.float32)
        onehot[np.arange(n)[valid], act[valid]] = 1.0
        tot_hot = onehot.sum(axis=0)
        share = (tot_hot[None, :] - onehot) / np.maximum(nv - valid, 1)[:, None]
        self._history = np.roll(self._history, -1, axis=1)
        self._history[:, -1, 0] = onehot
        self._history[:, -1, 1] = share
        self._counts += onehot
        r = self._r
        infos = {
            a: {
                "round": r,
                "action": int(act[i]) if valid[i] else None,
                "shown_action": int(shown[i]) if valid[i] else None,
                "valid": bool(valid[i]),
                "contribution": float(contrib[i]) if valid[i] else None,
                "self": float(pay[i]),
                "other": float(other[i]),
                "options": options[i].tolist(),
                "cooperation": float(self._coop[act[i]]) if valid[i] else None,
            }
            for i, a in enumerate(self.possible_agents)
        }
        self._last = {"round": r, "actions": act, "rewards": rewards, "total": total}
        return self._end_round(rewards, infos)

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        d = self.scenario
        head = f"{d.name}: round {min(self._r, self.rounds_)} of {self.rounds_}"
        if not self._last:
            return head + " (not started)\n"
        lines = [head + f", pot {self._last['total']:g}"]
        for i, a in enumerate(self.possible_agents):
            k = self._last["actions"][i]
            what = "no answer" if k == NO_ANSWER else f"gave {self.values[k]:g}"
            lines.append(f"  {a}: {what:>10}  payoff {self._last['rewards'][i]:g}")
        return "\n".join(lines) + "\n"

    def close(self) -> None:
        pass
