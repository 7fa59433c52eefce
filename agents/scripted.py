"""Scripted agents: references for every game kind, and probes of the measures' biases.

They read only the observation (every env reports per shown option its [self, other] payoffs;
dilemma envs also report how cooperative each shown option is, and the history), so the same agent
acts on the SVO instruments and on every dilemma. Specs (agents/registry.py):

- scripted:random: uniform among the legal shown options, seeded by the episode seed;
- scripted:ideal:<value>: the value's ideal type (utility and tie-break in
  scenarios/data/values.yaml) over the shown options' payoffs;
- scripted:angle:<degrees>[:temperature=<T>]: maximises cos(t) * self + sin(t) * other (ties:
  first shown); T > 0 chooses with a softmax at temperature T (payoff units), seeded;
- scripted:always:<k>: always the k-th shown option (0-based), a probe of position bias;
- scripted:cooperate / scripted:defect: the most / least cooperative option (dilemmas);
- scripted:tit_for_tat: most cooperative first, then the option whose cooperation is closest to
  what the partners did last (sequential games: to the previous stage's move) (dilemmas).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from agents.base import DILEMMA_GAMES, Agent, Decision, EpisodeContext
from scenarios import VALUE_NAMES
from scenarios import value as load_value
from scoring.svo import ideal_choices

__all__ = [
    "CooperationAgent",
    "FixedPositionAgent",
    "RandomAgent",
    "TitForTatAgent",
    "UtilityAgent",
    "legal_options",
]


def legal_options(observation: Mapping[str, Any]) -> np.ndarray:
    """The legal shown options' [self, other] payoffs, in the shown order (an action mask, where
    the env has one, marks the legal positions; they come first)."""
    pay = np.asarray(observation["payoffs"], dtype=np.float64)
    if "action_mask" in observation:
        n = int(np.asarray(observation["action_mask"]).sum())
        if n == 0:
            raise ValueError("asked to act with no legal action (action_mask all zero)")
        pay = pay[:n]
    return pay


def _cooperation(observation: Mapping[str, Any], n: int) -> np.ndarray:
    if "cooperation" not in observation:
        raise ValueError("this agent needs the observation's per-option 'cooperation' (dilemma envs)")
    return np.asarray(observation["cooperation"], dtype=np.float64)[:n]


class RandomAgent(Agent):
    """Chooses uniformly among the legal shown options, seeded by the episode seed."""

    name = "random"

    def start(self, context: EpisodeContext) -> np.random.Generator:
        self.check_game(context)
        return np.random.default_rng([context.seed, 0x5A0])

    def act(self, observation: Mapping[str, Any], state: np.random.Generator) -> tuple[Decision, Any]:
        k = int(state.integers(len(legal_options(observation))))
        return Decision(k, {"method": "random"}), state


class UtilityAgent(Agent):
    """Maximises a value's ideal-type utility (`value=`), or, given an angle t (`angle=`, degrees),
    cos(t) * self + sin(t) * other; temperature > 0 draws from a softmax over that utility."""

    def __init__(
        self, value: str | None = None, angle: float | None = None, temperature: float = 0.0
    ) -> None:
        if (value is None) == (angle is None):
            raise ValueError("UtilityAgent needs exactly one of value= or angle=")
        if value is not None and value not in VALUE_NAMES:
            raise ValueError(f"unknown value {value!r}; allowed: {list(VALUE_NAMES)}")
        if angle is not None and not np.isfinite(angle):
            raise ValueError(f"angle={angle} must be finite")
        if not (np.isfinite(temperature) and temperature >= 0):
            raise ValueError(f"temperature={temperature} must be finite and >= 0")
        if value is not None and temperature:
            raise ValueError(
                "an ideal type (value=) chooses deterministically; use angle= with a temperature"
            )
        self.value, self.angle, self.temperature = value, angle, float(temperature)
        if value is not None:
            self.name = f"ideal-{value}"
        else:
            self.name = f"angle-{angle:g}" + (f"-T{temperature:g}" if temperature else "")

    def start(self, context: EpisodeContext) -> np.random.Generator | None:
        self.check_game(context)
        return np.random.default_rng([context.seed, 0xD11E]) if self.temperature else None

    def act(self, observation: Mapping[str, Any], state: Any) -> tuple[Decision, Any]:
        pay = legal_options(observation)
        if self.value is not None:
            v = load_value(self.value)
            return Decision(int(ideal_choices(pay, v.utility, v.tie_break)), {"method": "ideal"}), state
        t = np.radians(self.angle)
        u = np.cos(t) * pay[:, 0] + np.sin(t) * pay[:, 1]
        if not self.temperature:
            k = int(np.argmax(np.round(u, 9)))
            return Decision(k, {"method": "utility", "utilities": np.round(u, 6).tolist()}), state
        z = np.exp((u - u.max()) / self.temperature)
        p = z / z.sum()
        k = int(state.choice(len(p), p=p))
        return Decision(k, {"method": "softmax", "probs": np.round(p, 6).tolist()}), state

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "value": self.value,
            "angle": self.angle,
            "temperature": self.temperature,
        }


class FixedPositionAgent(Agent):
    """Always picks the k-th shown option (0-based): a probe of position bias."""

    def __init__(self, k: int) -> None:
        if k < 0:
            raise ValueError(f"option position k={k} must be >= 0")
        self.k = k
        self.name = f"always-{k}"

    def start(self, context: EpisodeContext) -> None:
        self.check_game(context)
        if self.k >= context.n_options:
            raise ValueError(
                f"{self.name}: position {self.k} but {context.instrument} offers {context.n_options} options"
            )

    def act(self, observation: Mapping[str, Any], state: Any) -> tuple[Decision, Any]:
        n = len(legal_options(observation))
        if self.k >= n:
            raise ValueError(f"{self.name}: position {self.k} but this decision has {n} options")
        return Decision(self.k, {"method": "fixed"}), state

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "k": self.k}


class CooperationAgent(Agent):
    """Always the most (cooperate=True) or the least cooperative legal option (dilemmas)."""

    supports = DILEMMA_GAMES

    def __init__(self, cooperate: bool) -> None:
        self.cooperate = cooperate
        self.name = "cooperate" if cooperate else "defect"

    def act(self, observation: Mapping[str, Any], state: Any) -> tuple[Decision, Any]:
        c = _cooperation(observation, len(legal_options(observation)))
        k = int(np.argmax(c) if self.cooperate else np.argmin(c))
        return Decision(k, {"method": self.name}), state


class TitForTatAgent(Agent):
    """Starts with the most cooperative option, then picks the option whose cooperation is closest
    to the partners' last cooperation level (ties: the more cooperative). In sequential games it
    answers the previous stage's move (scored by the scenario's cooperation of that stage)."""

    name = "tit_for_tat"
    supports = DILEMMA_GAMES

    def start(self, context: EpisodeContext) -> Mapping[str, Any]:
        self.check_game(context)
        return context.extra

    def act(self, observation: Mapping[str, Any], state: Any) -> tuple[Decision, Any]:
        c = _cooperation(observation, len(legal_options(observation)))
        target = float(c.max())
        if "history" in observation:
            last = np.asarray(observation["history"], dtype=np.float64)[
                -1, 1
            ]  # partners' shares, shown order
            if last.sum() > 0:
                coop_all = np.asarray(observation["cooperation"], dtype=np.float64)
                target = float(last @ coop_all)
        else:
            prev = np.asarray(observation["previous"])
            st = int(observation["stage"])
            if st > 0 and prev[st - 1] >= 0:
                target = float(state["stage_cooperation"][st - 1][int(prev[st - 1])])
        k = int(np.argmin(np.abs(c - target) - 1e-9 * c))
        return Decision(k, {"method": "tit_for_tat", "target": round(target, 6)}), state
