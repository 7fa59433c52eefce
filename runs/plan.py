"""The grid of a run: its episodes (keys, seeds, conditions) and, for a scenario, who sits where.

An instrument run is agents x trials x instruments x option orders x prompt sets x framings x
values x goal conditions. A scenario run plays the scenario's own population (or the players an
`agents` entry "TARGET=SPEC" replaces) over trials x action orders x prompt sets x framings x
values (for players whose group sets no value) x goal conditions. Plans are pure: nothing is
built, no model is loaded, so everything here runs before a run writes anything.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from typing import NamedTuple

from runs.config import ConfigError, RunConfig
from scenarios import VALUE_NAMES
from scoring.stats import stable_seed

__all__ = [
    "EPISODE_SEED_RULE",
    "EpisodeSpec",
    "SeatPlan",
    "episode_key",
    "episode_seed",
    "axis_sizes",
    "overrides",
    "plan",
    "scenario_seats",
]

#: How episode seeds derive from the config, recorded in each run's manifest; a run planned under
#: another rule (earlier versions also hashed the option order) cannot be resumed by this version.
EPISODE_SEED_RULE = "stable_seed('episode', base, instrument, trial)"


def episode_seed(base_seed: int, instrument: str, trial: int) -> int:
    """Episode seed shared by all agents, values, goal conditions and option orders of one trial
    (common random numbers): the option orders of a trial are a paired comparison (an LLM gets
    the same value-induction and goal draws under the fixed and the reversed order, so the
    position-bias index measures the order alone, and the response cache serves the repeats)."""
    return stable_seed("episode", base_seed, instrument, trial) % (2**31)


def episode_key(
    agent: str,
    value: str | None,
    goal: bool,
    order: str,
    instrument: str,
    items: str,
    trial: int,
    seed: int,
    prompt_set: str = "paper",
    framing: str = "none",
) -> str:
    """Stable id of one episode of the grid (16 hex digits)."""
    parts: list = [agent, value, goal, order, instrument, items, trial, seed]
    if (prompt_set, framing) != ("paper", "none"):
        parts += [prompt_set, framing]
    blob = json.dumps(parts, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class EpisodeSpec:
    """One episode of the grid. kind "instrument": `agent` answers `instrument`; kind "scenario":
    `instrument` is the scenario id and the seats come from `scenario_seats` (`agent` is "")."""

    seq: int
    key: str
    kind: str
    agent: str
    instrument: str
    items: str
    order: str
    value: str | None
    goal: bool
    trial: int
    seed: int
    prompt_set: str = "paper"
    framing: str = "none"

    def framings(self) -> list[str]:
        return [] if self.framing == "none" else self.framing.split("+")


class _Cell(NamedTuple):
    """The grid axes inside one agent, trial-major (a partial run covers every cell evenly)."""

    trial: int
    instrument: str
    order: str
    prompt_set: str
    framing: str
    value: str | None
    goal: bool


def _values(config: RunConfig, scenario_values: bool) -> list[str | None]:
    if config.scenario is None:
        return list(config.values or VALUE_NAMES)
    return list(config.values) if scenario_values and config.values else [None]


def _axes(config: RunConfig) -> tuple[list[str], list[str], list[str | None]]:
    """The agent, instrument and value axes (a scenario run has one 'agent': its population)."""
    if config.scenario is not None:
        from scenarios.dilemmas import load_dilemma

        d = load_dilemma(config.scenario)
        values = _values(config, any(g.value is None for g in d.agents) or not d.agents)
        return [""], [d.id], values
    return list(config.agents), list(config.instruments), _values(config, False)


def axis_sizes(config: RunConfig) -> list[int]:
    """The length of every grid axis (their product is the number of episodes)."""
    agents, instruments, values = _axes(config)
    axes = (agents, instruments, config.orders, config.prompt_sets, config.framings, values, config.goals())
    return [config.trials, *map(len, axes)]


def plan(config: RunConfig) -> list[EpisodeSpec]:
    """Every episode of the grid, in a stable order (seq)."""
    agents, instruments, values = _axes(config)
    kind = "instrument" if config.scenario is None else "scenario"
    out: list[EpisodeSpec] = []
    for agent in agents:
        axes = itertools.product(
            range(config.trials),
            instruments,
            config.orders,
            config.prompt_sets,
            config.framings,
            values,
            config.goals(),
        )
        for c in map(_Cell._make, axes):
            seed = episode_seed(config.seed, c.instrument, c.trial)
            key = episode_key(
                agent,
                c.value,
                c.goal,
                c.order,
                c.instrument,
                config.items,
                c.trial,
                seed,
                c.prompt_set,
                c.framing,
            )
            out.append(
                EpisodeSpec(
                    len(out),
                    key,
                    kind,
                    agent,
                    c.instrument,
                    config.items,
                    c.order,
                    c.value,
                    c.goal,
                    c.trial,
                    seed,
                    c.prompt_set,
                    c.framing,
                )  # fmt: skip
            )
    return out


# -- scenario seats -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeatPlan:
    """Who plays one player of a scenario episode: the agent spec, its group, value and framing."""

    player: str
    group: str
    spec: str
    value: str | None
    framing: str


def overrides(config: RunConfig) -> dict[str, str]:
    """The `agents` entries of a scenario run as {target: spec} (target: player, group or "*")."""
    out: dict[str, str] = {}
    for entry in config.agents:
        target, eq, spec = entry.partition("=")
        if not eq or not target or not spec:
            raise ConfigError(
                f"agents: {entry!r}: in a scenario run say which players an agent replaces: "
                "TARGET=SPEC, where TARGET is a group name, a player name or '*' (every player), "
                "e.g. --agents '*=llm:embedded' or --agents cooperators=scripted:random"
            )
        if target in out:
            raise ConfigError(f"agents: {target!r} is given twice")
        out[target.strip()] = spec.strip()
    return out


def scenario_seats(d, config: RunConfig, episode: EpisodeSpec) -> dict[str, SeatPlan]:
    """Each player's seat: the scenario's group, unless an override names the player, its group or
    '*' (most specific first). Value: the group's, else the episode's (the run's values axis).
    Framing: the group's, else the episode's framing condition."""
    over = overrides(config)
    groups = d.groups_by_player()
    seats = {}
    for p in d.player_names():
        g = groups.get(p)
        gname = g.name if g is not None else "-"
        spec = over.get(p) or (over.get(g.name) if g is not None else None) or over.get("*")
        if spec is None:
            if g is None:
                raise ConfigError(
                    f"scenario {d.id!r}: no agent for player {p!r} (the scenario has no agent groups); "
                    "give one with --agents '*=SPEC' or --agents PLAYER=SPEC"
                )
            spec = g.agent
        value = g.value if g is not None and g.value is not None else episode.value
        framing = g.framing if g is not None and g.framing else episode.framing
        seats[p] = SeatPlan(p, gname, spec, value, framing)
    return seats
