"""Run agents through SVO episodes, many side by side, batching each step's decisions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

from agents.base import Agent, Decision, EpisodeContext
from envs.svo import NO_ANSWER
from scoring.wrappers import SVOScoring

__all__ = ["EpisodeResult", "run_episodes"]


@dataclass
class EpisodeResult:
    """One finished episode: its context, each step's decision and info, and the score."""

    context: EpisodeContext
    decisions: list[Decision] = field(default_factory=list)
    infos: list[dict[str, Any]] = field(default_factory=list)
    order: list[list[int]] = field(default_factory=list)
    score: dict[str, Any] = field(default_factory=dict)
    total_reward: float = 0.0


def run_episodes(
    agent: Agent,
    envs: Sequence[gym.Env],
    contexts: Sequence[EpisodeContext],
) -> list[EpisodeResult]:
    """Play one episode per (env, context) pair, stepping all of them together.

    Each env is wrapped in SVOScoring (target = the context's value) and reset with the context's
    seed. At every step the agent's act_batch sees all pending observations at once. An invalid
    decision is passed to the env as NO_ANSWER and stays invalid in the record.
    """
    if len(envs) != len(contexts):
        raise ValueError(f"{len(envs)} envs for {len(contexts)} contexts")
    wrapped = [SVOScoring(e, target_value=c.value) for e, c in zip(envs, contexts, strict=False)]
    results = [EpisodeResult(c) for c in contexts]
    obs = []
    for env, ctx, res in zip(wrapped, contexts, results, strict=False):
        o, info = env.reset(seed=ctx.seed)
        res.order = info.get("order", [])
        obs.append(o)
    states = agent.start_batch(contexts)
    active = list(range(len(wrapped)))
    while active:
        out = agent.act_batch([obs[i] for i in active], [states[i] for i in active])
        still = []
        for i, (decision, state) in zip(active, out, strict=False):
            states[i] = state
            action = NO_ANSWER if decision.action is None else decision.action
            o, r, term, trunc, info = wrapped[i].step(action)
            obs[i] = o
            res = results[i]
            res.decisions.append(decision)
            res.total_reward += float(r)
            if term or trunc:
                res.score = info.pop("svo")
            else:
                still.append(i)
            res.infos.append(info)
        active = still
    return results
