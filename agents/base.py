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

__all__ = [
    "ALL_GAMES",
    "DILEMMA_GAMES",
    "GAME_KINDS",
    "Agent",
    "Decision",
    "EpisodeContext",
    "UnsupportedGame",
]

#: What an agent can be asked to act in: "instrument" (an SVO instrument, envs.svo.SVOEnv) and the
#: dilemma game kinds of scenarios/dilemmas.py (PettingZoo envs in envs/dilemmas).
GAME_KINDS = ("instrument", "matrix", "slider", "public_goods", "sequential")
ALL_GAMES = frozenset(GAME_KINDS)
DILEMMA_GAMES = frozenset(GAME_KINDS) - {"instrument"}


class UnsupportedGame(ValueError):
    """An agent was asked to act in a game kind it does not declare in `Agent.supports`."""


@dataclass(frozen=True)
class EpisodeContext:
    """What an agent is told before an episode (one agent's seat in one episode).

    instrument: id of the instrument (e.g. "slider") or of the dilemma scenario; game: its kind
    (GAME_KINDS); player: the seat in a multi-player game (None for instruments). n_items: items
    (instrument) or decisions (rounds of a dilemma) to come; n_options: choices per decision (the
    most any decision has). value: the value orientation to pursue (None: no induction).
    goal_prompt: whether the LLM writes its own goal first. seed: this seat's episode seed; an
    agent derives any randomness (sampling seeds included) from it. extra: scenario context
    (prompt set, framings, the game's text and action labels, cooperation scores per stage).
    """

    instrument: str
    n_items: int
    n_options: int
    seed: int
    value: str | None = None
    goal_prompt: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)
    game: str = "instrument"
    player: str | None = None


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
    """Base class: override `start` and `act`; override the batch methods to step many together.

    `supports` declares the game kinds (GAME_KINDS) the agent can act in; the registry refuses a
    mismatch before anything runs, and `check_game` refuses it at the start of an episode.
    """

    name: str = "agent"
    supports: frozenset[str] = ALL_GAMES

    def check_game(self, context: EpisodeContext) -> None:
        """Raise UnsupportedGame unless this agent acts in the context's game kind."""
        if context.game not in self.supports:
            raise UnsupportedGame(
                f"agent {self.name!r} acts in {sorted(self.supports)}, not in {context.game!r} "
                f"({context.instrument})"
            )

    def start(self, context: EpisodeContext) -> Any:
        """Begin an episode and return the initial state."""
        self.check_game(context)
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
