"""Scripted agents: references for the instruments and probes of their biases."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from agents.base import Agent, Decision, EpisodeContext
from scenarios import VALUE_NAMES
from scenarios import value as load_value
from scoring.svo import ideal_choices, utility_choices

__all__ = ["FixedOptionAgent", "IdealTypeAgent", "RandomAgent"]


class RandomAgent(Agent):
    """Chooses uniformly among the shown options, seeded by the episode seed."""

    name = "random"

    def start(self, context: EpisodeContext) -> np.random.Generator:
        return np.random.default_rng([context.seed, 0x5A0])

    def act(self, observation: Mapping[str, Any], state: np.random.Generator) -> tuple[Decision, Any]:
        n = len(observation["payoffs"])
        k = int(state.integers(n))
        return Decision(k, {"method": "random"}), state


class IdealTypeAgent(Agent):
    """Maximises a value's ideal-type utility (scenarios/data/values.yaml), or, given an angle t,
    cos(t) * self + sin(t) * other."""

    def __init__(self, value: str | None = None, angle: float | None = None) -> None:
        if (value is None) == (angle is None):
            raise ValueError("IdealTypeAgent needs exactly one of value= or angle=")
        if value is not None and value not in VALUE_NAMES:
            raise ValueError(f"unknown value {value!r}; allowed: {list(VALUE_NAMES)}")
        self.value, self.angle = value, angle
        self.name = f"ideal-{value}" if value else f"ideal-angle-{angle:g}"

    def act(self, observation: Mapping[str, Any], state: Any) -> tuple[Decision, Any]:
        pay = np.asarray(observation["payoffs"], dtype=np.float64)
        if self.value is not None:
            v = load_value(self.value)
            k = int(ideal_choices(pay, v.utility, v.tie_break))
        else:
            k = int(utility_choices(pay, self.angle))
        return Decision(k, {"method": "utility"}), state

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "value": self.value, "angle": self.angle}


class FixedOptionAgent(Agent):
    """Always picks the k-th shown option (0-based): a probe of position bias."""

    def __init__(self, k: int) -> None:
        if k < 0:
            raise ValueError(f"option position k={k} must be >= 0")
        self.k = k
        self.name = f"always-{k}"

    def start(self, context: EpisodeContext) -> None:
        if self.k >= context.n_options:
            raise ValueError(
                f"{self.name}: position {self.k} but the instrument has {context.n_options} options"
            )

    def act(self, observation: Mapping[str, Any], state: Any) -> tuple[Decision, Any]:
        return Decision(self.k, {"method": "fixed"}), state

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "k": self.k}
