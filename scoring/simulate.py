"""Simulated responders whose true values are known, to check the statistics against.

Used by tests/ and bench/validity.py: a number is right when a simulation with a known answer
agrees with it. Softmax-utility agents value an option at u = cos(t) * self + sin(t) * other and
choose with probability proportional to exp(u / temperature); temperature 0 maximises (ties to
the lowest index, as agents/dilemma.py's UtilityAgent), temperature inf chooses uniformly.
Everything is vectorised and seeded by the caller's generator.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from scenarios import Instrument
from scoring import svo

__all__ = ["dilemma_trajectories", "sample_choices", "slider_episode_angles", "softmax_probs"]


def softmax_probs(options: np.ndarray, angle: float, temperature: float) -> np.ndarray:
    """Choice probabilities (..., K) of a softmax-utility agent over options (..., K, 2)."""
    p = np.asarray(options, dtype=np.float64)
    t = math.radians(angle)
    u = np.round(math.cos(t) * p[..., 0] + math.sin(t) * p[..., 1], 9)
    if temperature == 0:
        out = np.zeros(u.shape)
        np.put_along_axis(out, np.argmax(u, axis=-1)[..., None], 1.0, axis=-1)
        return out
    if math.isinf(temperature):
        return np.full(u.shape, 1.0 / u.shape[-1])
    z = np.exp((u - u.max(axis=-1, keepdims=True)) / temperature)
    return z / z.sum(axis=-1, keepdims=True)


def sample_choices(probs: np.ndarray, size: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Independent draws from per-item distributions probs (n_items, K): shape size + (n_items,)."""
    cdf = np.cumsum(np.asarray(probs, dtype=np.float64), axis=-1)
    r = rng.random(size + (cdf.shape[0], 1))
    return np.minimum((r > cdf).sum(axis=-1), cdf.shape[-1] - 1)


def slider_episode_angles(
    instrument: Instrument, probs: np.ndarray, size: tuple[int, ...], rng: np.random.Generator
) -> np.ndarray:
    """SVO angles of simulated episodes on the primary items, each item answered from probs."""
    rows = [i for i, it in enumerate(instrument.items) if it.primary and it.ends]
    pay = instrument.payoffs()[rows]
    k = sample_choices(np.asarray(probs)[rows], size, rng)
    chosen = pay[np.arange(len(rows)), k]
    return svo.svo_angle(chosen[..., 0], chosen[..., 1], instrument.centre)


def dilemma_trajectories(
    scenario: str,
    angle: float,
    temperature: float,
    n_agents: int,
    seed: int,
    partner: tuple[float, float] = (45.0, 1.0),
) -> list[dict[str, Any]]:
    """One episode of a shipped two-player simultaneous scenario per simulated agent.

    The agent under test is player_0 (softmax-utility at angle / temperature); player_1 is a
    softmax-utility partner (angle, temperature). The options are the observation's "payoffs"
    rows, exactly what `scoring.fit.fit_svo` gets in a run. Returns per agent {"options": list of
    (K, 2) arrays, "choices": list of ints}.
    """
    from envs.dilemmas import make_parallel  # the envs layer, only for this simulation

    env = make_parallel(scenario)
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_agents):
        obs, _ = env.reset(seed=seed * 100_003 + i)
        opts, chs = [], []
        while env.agents:
            acts = {}
            for a in env.agents:
                pay = np.asarray(obs[a]["payoffs"], dtype=np.float64)
                ang, temp = (angle, temperature) if a == env.possible_agents[0] else partner
                p = softmax_probs(pay, ang, temp)
                acts[a] = int(min(np.searchsorted(np.cumsum(p), rng.random(), side="right"), len(p) - 1))
                if a == env.possible_agents[0]:
                    opts.append(pay)
                    chs.append(acts[a])
            obs, _, _, _, _ = env.step(acts)
        out.append({"options": opts, "choices": chs})
    return out
