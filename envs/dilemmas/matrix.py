"""Two-person symmetric games (matrix dilemmas and the paired SVO slider) on a graph."""

from __future__ import annotations

import functools

import networkx as nx
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

__all__ = ["MatrixGameEnv"]


class MatrixGameEnv(SimultaneousRounds, ParallelEnv):
    """A symmetric two-person game played simultaneously by every pair of neighbours on a graph.

    ## Description
    One class for every scenario of kind "matrix" (prisoner's dilemma, stag hunt, chicken, or any
    symmetric table written in YAML) and "slider" (the paired SVO slider). By default the graph is
    one pair; a scenario's `graph` (ring, small-world, scale-free, complete, an edge list) makes it
    a population: each round every player picks one action, which it plays against each of its
    neighbours. Repeated games (`rounds` > 1) keep the same partners.
    Paired slider: each round is one slider item; both players allocate on it, and each receives
    what it kept plus what its partner gave (payoffs add up).

    ## Agents
    "player_0" .. "player_{n-1}" (graph nodes in sorted order; `node_of` maps names to nodes).

    ## Observation space (per agent)
    Dict:
    - "round": Discrete(rounds), the current round;
    - "payoffs": Box((n_actions, 2), float32): for each own action, the [self, other] payoff it is
      expected to yield this round: self = my payoff, other = my partners' mean payoff from
      playing me. Matrix games take the expectation under the scenario's `belief` about each
      partner's action ("uniform", or "empirical": partner's past frequencies, Laplace-smoothed);
      the slider needs none (a partner's allocation adds the same amount whatever I choose), so
      its payoffs are the item's (kept, given) options. These are the options the SVO fit uses;
      `aggregate: sum` multiplies them by the number of partners;
    - "history": Box((memory, 2, n_actions), float32): the last `memory` rounds, oldest first;
      row 0 is my action (one-hot), row 1 the share of partners choosing each action (zeros
      before round 1 and for void rounds);
    - "order": Box((n_actions,), int64): the canonical action of each shown position;
    - "cooperation": Box((n_actions,), float32): how cooperative each shown action is (0..1:
      the scenario's `cooperative_action` or `cooperation` scores; slider: what the option gives
      the partner, rescaled within the item).
    Every per-action array is in the SHOWN order (`action_order`): fixed (the scenario's), reversed,
    or permuted (one seeded permutation per player for the whole episode).

    ## Action space
    Discrete(n_actions): a shown position (slider: the item's options, left to right when fixed).
    `NO_ANSWER` (-1) marks an invalid answer: the player's interactions that round are void (no
    payoff to either side).

    ## Rewards
    Own payoff per round: the mean (or sum, `aggregate`) over partners of the game's payoff;
    slider: kept + mean given by partners. Void interactions are skipped.

    ## Episode end
    All agents terminate after `rounds` rounds (slider: `rounds` passes over the items). No
    truncation.

    ## Info (per agent, per step)
    "round", "action" (canonical; None if invalid), "shown_action" (the position chosen),
    "valid", "self" (realised own payoff), "other" (realised mean payoff of partners from
    interactions with me), "options" (canonical [self, other] per action at decision time),
    "cooperation" (0..1 score of the action), "partners" (valid interactions). At reset: "order".

    ## Arguments
    scenario: a scenario id or a validated `Dilemma` (kind "matrix" or "slider").
    rounds: override the scenario's rounds. graph: override the scenario's graph (nx.Graph).
    action_order: "fixed" | "reversed" | "permuted". render_mode: None | "ansi".

    ## Version history
    v1: observations gain "order" and "cooperation", in the shown order (`action_order`).
    v0: initial release.
    """

    metadata = {"name": "dilemma_matrix_v1", "render_modes": ["ansi"], "is_parallelizable": True}

    def __init__(
        self,
        scenario: str | Dilemma = "prisoners_dilemma",
        rounds: int | None = None,
        graph: nx.Graph | None = None,
        action_order: str = "fixed",
        render_mode: str | None = None,
    ) -> None:
        d = load_dilemma(scenario) if isinstance(scenario, str) else scenario
        self.action_order = check_action_order(action_order)
        if d.game not in ("matrix", "slider"):
            raise ValueError(
                f"scenario {d.id!r} is a {d.game!r} game; MatrixGameEnv plays 'matrix' and 'slider'"
            )
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode={render_mode!r}; allowed: {self.metadata['render_modes']}")
        if rounds is not None and rounds < 1:
            raise ValueError(f"rounds={rounds}; must be >= 1")
        self.scenario = d
        self.render_mode = render_mode
        self.graph = self._graph(d, graph)
        self.possible_agents = sorted(self.graph.nodes, key=lambda a: int(a.split("_")[1]))
        self.node_of = {a: self.graph.nodes[a].get("node", a) for a in self.possible_agents}
        idx = {a: i for i, a in enumerate(self.possible_agents)}
        self._nbrs = [
            np.array([idx[b] for b in sorted(self.graph[a], key=idx.get)]) for a in self.possible_agents
        ]
        n = len(self.possible_agents)
        self._adj = np.zeros((n, n))
        for i, nb in enumerate(self._nbrs):
            self._adj[i, nb] = 1.0
        self._deg = self._adj.sum(axis=1)
        self._scale = np.ones(n) if d.aggregate == "mean" else self._deg

        if d.game == "slider":
            from scenarios.instruments import load_instrument

            inst = load_instrument(d.instrument or "slider").subset(d.items)
            opts = inst.payoffs()  # (items, n_opt, 2)
            self.action_labels = [f"option {k + 1}" for k in range(opts.shape[1])]
            self._options = np.tile(opts, (d.rounds if rounds is None else rounds, 1, 1))
            s, o = self._options[..., 0], self._options[..., 1]
            self._tables = np.stack([s[:, :, None] + o[:, None, :], o[:, :, None] + s[:, None, :]], axis=-1)
            span = o.max(axis=1, keepdims=True) - o.min(axis=1, keepdims=True)
            self._coop = np.where(
                span > 0, (o - o.min(axis=1, keepdims=True)) / np.where(span > 0, span, 1), 0.0
            )
            lo, hi = float(opts.min()), float(opts.max())
        else:
            tab = d.matrix_table()
            self.rounds_ = d.rounds if rounds is None else rounds
            self.action_labels = [a.label or a.name for a in d.actions]
            self._tables = np.broadcast_to(tab, (self.rounds_,) + tab.shape)
            self._options = None
            self._coop = np.broadcast_to(d.cooperation_scores(), (self.rounds_, len(d.actions)))
            lo, hi = float(tab.min()), float(tab.max())
        self.rounds_ = self._tables.shape[0]
        self.n_actions = self._tables.shape[1]
        self.action_names = (
            d.action_names() if d.game == "matrix" else [str(k + 1) for k in range(self.n_actions)]
        )
        if d.aggregate == "sum":
            lo, hi = lo * self._deg.max() if lo < 0 else lo, hi * self._deg.max()
        self._obs_space = self._observation_spaces(payoff_box(min(lo, 0.0), hi, self.n_actions))
        self._act_space = spaces.Discrete(self.n_actions)
        self.np_random, self.np_random_seed = seed_rng(None)
        self.agents: list[str] = []
        self._r = 0

    @staticmethod
    def _graph(d: Dilemma, graph: nx.Graph | None) -> nx.Graph:
        if graph is None:
            g = d.graph_nodes()
            for a in g.nodes:
                g.nodes[a]["node"] = a
            return g
        iso = list(nx.isolates(graph))
        if iso:
            raise ValueError(f"graph: node(s) {iso[:10]} have no neighbour; the game needs partners")
        if graph.number_of_nodes() < 2:
            raise ValueError("graph: needs at least 2 nodes")
        nodes = sorted(graph.nodes, key=lambda x: (str(type(x)), x))
        mapping = {v: f"player_{i}" for i, v in enumerate(nodes)}
        g = nx.relabel_nodes(graph, mapping)
        for v, a in mapping.items():
            g.nodes[a]["node"] = v
        return g

    @functools.cache  # noqa: B019 - spaces must be the same object per agent
    def observation_space(self, agent: str) -> spaces.Space:
        return self._obs_space

    @functools.cache  # noqa: B019
    def action_space(self, agent: str) -> spaces.Space:
        return self._act_space

    # -- game logic ---------------------------------------------------------------------------
    def _cooperation(self, r: int) -> np.ndarray:
        return self._coop[r]

    def _option_payoffs(self) -> np.ndarray:
        """(n_agents, n_actions, 2) expected [self, other] per own action this round."""
        r = min(self._r, self.rounds_ - 1)
        if self._options is not None:
            out = np.broadcast_to(self._options[r], (len(self.possible_agents),) + self._options[r].shape)
            return out * self._scale[:, None, None]
        p = belief(self._counts, self.scenario.belief)  # (n, n_actions) per partner
        tab = self._tables[r]  # (a, b, 2)
        exp = np.einsum("jb,abk->jak", p, tab)  # expected per partner j and own action a
        mean = (self._adj @ exp.reshape(len(p), -1)).reshape(exp.shape) / self._deg[:, None, None]
        return mean * self._scale[:, None, None]

    def step(self, actions: dict[str, int]):
        act, shown = self._actions_array(actions)
        n = len(self.possible_agents)
        options = self._option_payoffs()
        r = self._r
        tab = self._tables[r]
        valid = act != NO_ANSWER
        safe = np.where(valid, act, 0)
        pair = self._adj * valid[:, None] * valid[None, :]  # valid interactions
        own = tab[safe[:, None], safe[None, :], 0] * pair  # my payoff vs each partner
        given = tab[safe[:, None], safe[None, :], 1] * pair  # the partner's payoff from me
        k = pair.sum(axis=1)
        denom = np.where(k > 0, k, 1.0) if self.scenario.aggregate == "mean" else np.ones(n)
        self_pay = np.where(k > 0, own.sum(axis=1) / denom, np.nan)
        other_pay = np.where(k > 0, given.sum(axis=1) / np.where(k > 0, k, 1.0), np.nan)
        if self._options is not None:
            # slider: payoffs are own allocation + what partners gave; record the allocation itself
            opts = self._options[r]
            self_pay = np.where(valid & (k > 0), self_pay, np.nan)
        rewards = np.nan_to_num(self_pay, nan=0.0)
        # history and beliefs
        onehot = np.zeros((n, self.n_actions), dtype=np.float32)
        onehot[np.arange(n)[valid], act[valid]] = 1.0
        share = (self._adj * valid[None, :]) @ onehot
        nvalid = (self._adj * valid[None, :]).sum(axis=1, keepdims=True)
        share = np.where(nvalid > 0, share / np.where(nvalid > 0, nvalid, 1), 0.0)
        self._history = np.roll(self._history, -1, axis=1)
        self._history[:, -1, 0] = onehot
        self._history[:, -1, 1] = share
        self._counts += onehot
        infos = {}
        for i, a in enumerate(self.possible_agents):
            ok = bool(valid[i])
            info = {
                "round": r,
                "action": int(act[i]) if ok else None,
                "shown_action": int(shown[i]) if ok else None,
                "valid": ok,
                "self": float(self_pay[i]),
                "other": float(other_pay[i]),
                "options": options[i].tolist(),
                "cooperation": float(self._coop[r, act[i]]) if ok else None,
                "partners": int(k[i]),
            }
            if self._options is not None:
                info["kept"] = float(opts[act[i], 0]) if ok else float("nan")
                info["given"] = float(opts[act[i], 1]) if ok else float("nan")
            infos[a] = info
        self._last = {"round": r, "actions": act.copy(), "rewards": rewards.copy()}
        return self._end_round(rewards, infos)

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        d = self.scenario
        head = f"{d.name}: round {min(self._r, self.rounds_)} of {self.rounds_}, {len(self.possible_agents)} players"
        if not self._last:
            return head + " (not started)\n"
        lines = [head]
        acts, rew = self._last["actions"], self._last["rewards"]
        for i, a in enumerate(self.possible_agents[:50]):
            name = "no answer" if acts[i] == NO_ANSWER else self.action_names[acts[i]]
            lines.append(f"  {a}: {name:>10}  payoff {rew[i]:g}")
        if len(self.possible_agents) > 50:
            lines.append(f"  ... {len(self.possible_agents) - 50} more")
        return "\n".join(lines) + "\n"

    def close(self) -> None:
        pass
