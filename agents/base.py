"""The one small interface every acting thing implements: scripted, LLM and RL agents alike.

State is explicit: `start` returns the agent's per-episode state (an LLM's conversation, an RNG),
and `act` takes it and returns the next one. Nothing about an episode hides in attributes, so one
agent object can run many episodes side by side, and the batch methods can step them together.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Agent", "Decision", "EpisodeContext"]


@dataclass(frozen=True)
class EpisodeContext:
    """What an agent is told before an episode.

    instrument: id of the instrument (e.g. "slider"); n_items: items to come; n_options: choices
    per item. value: the value orientation to pursue (None: no induction). goal_prompt: whether the
    LLM writes its own goal first. seed: the episode seed; an agent derives any randomness
    (sampling seeds included) from it. extra: scenario-specific context (persona, language,
    framing, partner).
    """

    instrument: str
    n_items: int
    n_options: int
    seed: int
    value: str | None = None
    goal_prompt: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """An agent's answer to one observation, with its evidence.

    action: the index of the displayed option chosen, or None when the agent gave no valid answer
    (it is then recorded as invalid and counted, never replaced). record: JSON-serialisable
    evidence: prompt messages, raw reply, how it was parsed, probabilities where known.
    """

    action: int | None
    record: Mapping[str, Any] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return self.action is not None


class Agent(ABC):
    """Base class: override `start` and `act`; override the batch methods to step many together."""

    name: str = "agent"
    #: "structured" agents read the env's arrays; "text" agents need the text wrapper's "text" key.
    observation_kind: str = "structured"

    def start(self, context: EpisodeContext) -> Any:
        """Begin an episode and return the initial state."""
        return None

    @abstractmethod
    def act(self, observation: Mapping[str, Any], state: Any) -> tuple[Decision, Any]:
        """Choose for one observation; return the decision and the next state."""

    def start_batch(self, contexts: Sequence[EpisodeContext]) -> list[Any]:
        """Begin many episodes at once (an LLM agent batches its value induction here)."""
        return [self.start(c) for c in contexts]

    def act_batch(
        self, observations: Sequence[Mapping[str, Any]], states: Sequence[Any]
    ) -> list[tuple[Decision, Any]]:
        """Decide for many episodes at once; the default steps them one by one."""
        return [self.act(o, s) for o, s in zip(observations, states, strict=True)]

    def describe(self) -> dict[str, Any]:
        """Identity for the run record (model, sampling settings, parameters)."""
        return {"name": self.name, "class": type(self).__name__}
