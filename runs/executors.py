"""Executors: who plays a run's pending episodes. The runner plans the missing episodes, hands them
out in groups (an agent's episodes of one instrument or scenario, a trial's cells together: a
value's goal conditions and option orders share the episode seed, so the paired design holds and
the response cache serves the repeated setup calls), and writes every finished episode through the
run store itself: the store stays the single writer, whichever executor played it.

- `LocalExecutor` (executor: local, one worker): this process.
- `PoolExecutor` (executor: local, workers > 1; runs/pool.py): worker processes of this machine.
- `RayExecutor` (executor: ray; runs/ray_executor.py): Ray actors, on one machine or a cluster.

Every executor plays the same *units* the same way, so the records do not depend on which one ran
them, or on how many workers it had. A unit is whole cells of one group, up to
`unit_cap` episodes (`work_units`); a cell is a value's goal conditions and option orders (one
agent, instrument, trial, prompt set and framing), which share the episode seed and hence the
value-induction and goal calls (one induction serves them all). A unit is played alone: after
`reset_prefix_cache` on every backend its seats are started together, then its episodes are
stepped `batch_size` at a time, with the prefix caches emptied again between batches (a finished
batch's conversations are not needed again). So its float rounding does not depend on what its
worker played before (float32 on CPU: the same records, bit for bit, whatever the executor;
tested). Workers build their agents once.

An executor yields `Finished` results as episodes end; it never writes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from runs.config import RunConfig
from runs.plan import EpisodeSpec

__all__ = [
    "Executor",
    "ExecutorError",
    "Finished",
    "LocalExecutor",
    "UNIT_BATCHES",
    "episode_groups",
    "play_unit",
    "unit_cap",
    "work_units",
]


class ExecutorError(RuntimeError):
    """Workers are gone (every worker died) or failed in a way a retry elsewhere cannot mend: the
    run stops with exit status 1, finished episodes kept, resumable."""


@dataclass(frozen=True)
class Finished:
    """One played episode: its spec and its records (runs/episodes.py), ready for the store."""

    spec: EpisodeSpec
    episode: dict[str, Any]
    decisions: list[dict[str, Any]]


def episode_groups(pending: Sequence[EpisodeSpec]) -> list[list[EpisodeSpec]]:
    """The pending episodes in groups of one (agent, instrument or scenario), plan order kept: the
    episodes that may share a unit (its trials' cells, see `work_units`)."""
    groups: dict[tuple[str, str], list[EpisodeSpec]] = {}
    for e in pending:
        groups.setdefault((e.agent, e.instrument), []).append(e)
    return list(groups.values())


#: Batches per unit: a unit holds whole cells of one agent and instrument (from any trials), up to
#: this many batches of episodes. Its seats are started together (value induction and goal calls
#: for all its cells in one generation call each, so decoding steps several conversations at once),
#: then its decisions are stepped a batch at a time. Measured on the default run in one process
#: (2-core VM, cProfile): with one batch per unit every induction and goal reply was decoded alone,
#: 8 generation calls of 1 row (85 s of 161 s); two batches per unit make 4 calls of 2 rows, as the
#: code before the one runner did. Not more: the default run's 16 episodes must still make 2 units,
#: one per worker. The prefix caches are emptied between a unit's batches: left in the store, the
#: first batch's finished conversations grew its cap (to 9/8 of their working set) and lifted the
#: peak to 1.98 GB; emptied, 1.87 GB, for about 3 s of recomputed setup prefixes per unit.
UNIT_BATCHES = 2


def unit_cap(group_size: int, batch_size: int) -> int:
    """The most episodes a unit of a group of `group_size` holds: `UNIT_BATCHES` batches, but at
    most half the group (rounded up) unless one batch is larger, so that any group of two batches
    or more gives two workers work (the smallest machine a run targets has 2 cores). The default run
    (16 episodes, batch 4): 8; `--paper` (80 episodes, batch 40): 40, not one unit of 80."""
    return min(UNIT_BATCHES * batch_size, max(batch_size, -(-group_size // 2)))


def work_units(groups: Sequence[Sequence[EpisodeSpec]], batch_size: int) -> list[list[EpisodeSpec]]:
    """The groups cut into units (see the module doc), each in plan order. A cell is the episodes of
    one (agent, instrument, trial, value, prompt set, framing): a value's goal conditions and orders,
    which share the episode seed. Within each group (one agent and instrument), whole cells (in the
    order of their first episode, so a trial's cells stay together) join one unit while it holds at
    most `unit_cap` episodes (a larger cell is a unit alone), so no cell is split between workers.
    Trials share units: the `--paper` preset's trials are 8 episodes each, and a free-text call
    decodes until its longest reply ends, so the more episodes step together, the fewer decoding
    steps the run takes (docs/benchmarks.md)."""
    units: list[list[EpisodeSpec]] = []
    for group in groups:
        cap = unit_cap(len(group), batch_size)
        cells: dict[tuple, list[EpisodeSpec]] = {}
        for e in sorted(group, key=lambda e: e.seq):
            cells.setdefault((e.agent, e.instrument, e.trial, e.value, e.prompt_set, e.framing), []).append(e)
        current: list[EpisodeSpec] = []
        for cell in cells.values():
            if current and len(current) + len(cell) > cap:
                units.append(sorted(current, key=lambda e: e.seq))
                current = []
            current = current + cell
        if current:
            units.append(sorted(current, key=lambda e: e.seq))
    return units


def play_unit(
    unit: Sequence[EpisodeSpec],
    config: RunConfig,
    agents: Mapping[str, Any],
    backends: Sequence[Any] = (),
    on_steps: Callable[[int], None] | None = None,
) -> Iterator[list[Finished]]:
    """Play one unit: reset every backend's prefix cache, start every seat of the unit together,
    then step its episodes `config.batch_size` at a time, resetting the prefix caches between
    batches; yields each batch's finished episodes. The one way every executor plays."""
    from runs.episodes import build_game, records
    from runs.rollout import play, start

    for b in backends:
        b.reset_prefix_cache()
    built = [build_game(e, config, agents) for e in unit]
    started = start([g for g, _ in built], on_decisions=on_steps)
    size = config.batch_size
    for i in range(0, len(unit), size):
        if i:  # the finished batch's conversations are not needed again: their memory goes now
            for b in backends:
                b.reset_prefix_cache()
        part = built[i : i + size]
        played = play([g for g, _ in part], on_decisions=on_steps, started=started[i : i + size])
        out = []
        for e, (_, seats), p in zip(unit[i : i + size], part, played, strict=True):
            ep, decs = records(e, p, seats)
            out.append(Finished(e, ep, decs))
        yield out


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

    def usage(self) -> tuple[int, int] | None:
        """Model calls and cache hits made by the executor's own workers; None: the runner counts
        them on the agents it built (the executor plays with those)."""
        return None

    def close(self) -> None:  # noqa: B027 - a documented default: most executors hold nothing
        """Release workers (nothing for the local executor)."""


class LocalExecutor(Executor):
    """This process: the units in plan order (see `play_unit`), with the agents the runner built."""

    name = "local"

    def __init__(
        self,
        config: RunConfig,
        agents: Mapping[str, Any],
        backends: Sequence[Any] = (),
        choice: Mapping[str, Any] | None = None,
    ) -> None:
        self.config, self.agents, self.backends = config, dict(agents), list(backends)
        self.choice = dict(choice or {})

    def results(
        self, groups: Sequence[Sequence[EpisodeSpec]], on_steps: Callable[[int], None] | None = None
    ) -> Iterator[Finished]:
        for unit in work_units(groups, self.config.batch_size):
            for batch in play_unit(unit, self.config, self.agents, self.backends, on_steps):
                yield from batch

    def close(self) -> None:
        """Empty every backend's prefix store (up to a few hundred MB of keys and values), so the
        reports written after the run do not add their memory on top of it."""
        for b in self.backends:
            b.reset_prefix_cache()

    def describe(self) -> dict[str, Any]:
        return {
            "executor": self.name,
            "mode": "this process",
            **self.choice,
            "workers": 1,
            "batch_size": self.config.batch_size,
        }
