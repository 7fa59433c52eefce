"""Executors: who plays a run's pending episodes. The runner plans the missing episodes, hands them
out in groups (a trial's episodes together: its values, goal conditions and option orders share
the episode seed, so the paired design holds and the response cache serves the repeated setup
calls), and writes every finished episode through the run store itself: the store stays the single
writer, whichever executor played it.

- `LocalExecutor` (executor: local): this process, `batch_size` episodes stepped together.
- `executor: ray` (runs/ray_executor.py): Ray actors, each building its own agents once.

An executor yields `Finished` results as episodes end; it never writes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from runs.config import RunConfig
from runs.plan import EpisodeSpec

__all__ = ["Executor", "Finished", "LocalExecutor", "episode_groups"]


@dataclass(frozen=True)
class Finished:
    """One played episode: its spec and its records (runs/episodes.py), ready for the store."""

    spec: EpisodeSpec
    episode: dict[str, Any]
    decisions: list[dict[str, Any]]


def episode_groups(pending: Sequence[EpisodeSpec]) -> list[list[EpisodeSpec]]:
    """The pending episodes in groups of one (agent, instrument or scenario, trial), plan order kept."""
    groups: dict[tuple[str, str, int], list[EpisodeSpec]] = {}
    for e in pending:
        groups.setdefault((e.agent, e.instrument, e.trial), []).append(e)
    return list(groups.values())


class Executor(ABC):
    """Plays groups of episodes and yields each finished one (in any order)."""

    name: str = "executor"

    @abstractmethod
    def results(
        self, groups: Sequence[Sequence[EpisodeSpec]], on_steps: Callable[[int], None] | None = None
    ) -> Iterator[Finished]:
        """Play every group; yield each episode as it finishes. on_steps(n): progress (seat setups
        and decisions)."""

    def describe(self) -> dict[str, Any]:
        """What the manifest records about how the run was executed."""
        return {"executor": self.name}

    def close(self) -> None:  # noqa: B027 - a documented default: most executors hold nothing
        """Release workers (nothing for the local executor)."""


class LocalExecutor(Executor):
    """This process: the groups' episodes in plan order, `config.batch_size` stepped together."""

    name = "local"

    def __init__(self, config: RunConfig, agents: Mapping[str, Any]) -> None:
        self.config, self.agents = config, dict(agents)

    def results(
        self, groups: Sequence[Sequence[EpisodeSpec]], on_steps: Callable[[int], None] | None = None
    ) -> Iterator[Finished]:
        from runs.episodes import build_game, records
        from runs.rollout import play

        pending = [e for g in groups for e in g]
        size = self.config.batch_size
        for i in range(0, len(pending), size):
            batch = pending[i : i + size]
            built = [build_game(e, self.config, self.agents) for e in batch]
            played = play([g for g, _ in built], on_decisions=on_steps)
            for e, (_, seats), p in zip(batch, built, played, strict=True):
                ep, decs = records(e, p, seats)
                yield Finished(e, ep, decs)

    def describe(self) -> dict[str, Any]:
        return {"executor": self.name, "batch_size": self.config.batch_size}
