"""Everything about a run that can be checked before it writes anything or loads a model.

`check_run` raises ConfigError (exit status 2) naming the key, file or flag and what is allowed:
agent specs against the games they would play (agents.registry), a scenario file and its
players, the values axis, prompt-set languages against the scenario's text and the framings.
"""

from __future__ import annotations

import os
from pathlib import Path

from runs.config import ConfigError, RunConfig
from scenarios import ScenarioError, load_instrument

__all__ = ["check_run", "check_writable", "uses_llm"]


def uses_llm(specs: list[str]) -> bool:
    return any(s.startswith("llm:") for s in specs)


def _agent_error(err: Exception, where: str) -> ConfigError:
    from agents.registry import AGENT_KINDS

    return ConfigError(f"{where}: {err}\n  agent specs allowed: {', '.join(AGENT_KINDS)}")


def _check_languages(config: RunConfig, extra_framings: set[str], scenario_langs: set[str] | None) -> None:
    """Every prompt set's language must be one the framings (and the scenario's text) are written in."""
    from scenarios.prompts import load_framing, load_prompt_set

    framings = {f for entry in config.framings if entry != "none" for f in entry.split("+")} | extra_framings
    for ps in config.prompt_sets:
        lang = load_prompt_set(ps).language
        for fid in sorted(framings):
            if lang not in load_framing(fid).languages():
                raise ConfigError(
                    f"framings: {fid!r} has no text in {lang!r} (prompt set {ps!r}); it is written in "
                    f"{sorted(load_framing(fid).languages())}"
                )
        if scenario_langs is not None and "*" not in scenario_langs and lang not in scenario_langs:
            raise ConfigError(
                f"prompt_sets: {ps!r} is in {lang!r} but scenario {config.scenario!r} has text in "
                f"{sorted(scenario_langs)} only; add text.intro.{lang} (and stage prompts) to the scenario, "
                "or use a prompt set in one of its languages"
            )


def _check_instruments(config: RunConfig) -> None:
    from agents.registry import AgentSpecError, check_spec

    if config.rounds is not None:
        raise ConfigError("rounds: only scenario runs have rounds (set scenario, or remove rounds)")
    if not config.agents:
        raise ConfigError("agents: at least one agent spec is needed for an instrument run")
    n_opts = [load_instrument(i).n_options for i in config.instruments]
    for spec in config.agents:
        try:
            check_spec(
                spec,
                {"instrument"},
                n_opts,
                where=f"instruments {config.instruments}",
                backend_options=config.llm.backend_options,
            )
        except AgentSpecError as err:
            raise _agent_error(err, "agents") from None
        if spec.startswith("rl:"):
            _check_policy_values(spec, config)
    if uses_llm(config.agents):
        _check_languages(config, set(), None)


def _check_policy_values(spec: str, config: RunConfig) -> None:
    """A trained policy acts for the values it (or its sibling models) was trained for: read from
    its card, before anything is written or loaded."""
    from agents.registry import parse_spec
    from agents.rl import read_card
    from runs.plan import _values

    try:
        card = read_card(parse_spec(spec).name)
    except ValueError as err:
        raise ConfigError(f"agents: {spec}: {err}") from None
    trained = sorted(card.get("siblings") or ([card["value"]] if card.get("value") else []))
    if not trained:  # no card or no value: one policy for whatever value an episode asks
        return
    missing = [v for v in _values(config, False) if v not in trained]
    if missing:
        raise ConfigError(
            f"agents: {spec} was trained for {trained}, and the run asks for {missing} too: "
            f"add --values {' '.join(trained)}, or train the others "
            f"(python -m runs.train slider --value {missing[0]})"
        )


def _check_scenario(config: RunConfig) -> None:
    from agents.registry import AgentSpecError, check_spec
    from runs.plan import overrides, plan, scenario_seats
    from scenarios.dilemmas import load_dilemma

    try:
        d = load_dilemma(config.scenario)
    except ScenarioError as err:
        raise ConfigError(f"scenario: {err}") from None
    except OSError as err:
        raise ConfigError(f"scenario: {config.scenario}: {err}") from None
    _check_scenario_size(config, d)
    over = overrides(config)
    targets = set(d.player_names()) | {g.name for g in d.agents} | {"*"}
    bad = sorted(set(over) - targets)
    if bad:
        groups = [g.name for g in d.agents]
        raise ConfigError(
            f"agents: {bad} are not players or groups of scenario {d.id!r}; groups: {groups}, "
            f"players: {d.player_names()[:6]}{'...' if len(d.player_names()) > 6 else ''}, or '*'"
        )
    free = [g.name for g in d.agents if g.value is None]
    if config.values is not None and d.agents and not free:
        raise ConfigError(
            f"values: every group of scenario {d.id!r} sets its own value; the values axis applies to "
            "players whose group sets none (remove values)"
        )
    seats = scenario_seats(d, config, plan(config)[0])
    if d.game == "sequential":
        sizes = {p: [len(s.actions) for s in d.stages if s.player == p] or [0] for p in d.player_names()}
    else:
        sizes = {p: [len(d.actions)] if d.actions else [9] for p in d.player_names()}
    for p, seat in seats.items():
        try:
            check_spec(
                seat.spec,
                {d.game},
                [n for n in sizes[p] if n] or [2],
                where=f"scenario {d.id!r} ({p})",
                backend_options=config.llm.backend_options,
            )
        except AgentSpecError as err:
            raise _agent_error(err, f"agents ({seat.group} / {p})") from None
    specs = [s.spec for s in seats.values()]
    if uses_llm(specs):
        group_framings = {f for g in d.agents if g.framing for f in g.framing.split("+")}
        _check_languages(config, group_framings, d.languages())


def _check_size(config: RunConfig) -> None:
    n, limit = config.n_episodes(), config.limits.max_episodes
    if n > limit:
        raise ConfigError(
            f"the plan has {n:,} episodes; limits.max_episodes is {limit:,} (fewer trials or conditions, or "
            f"raise it deliberately: --set limits.max_episodes={n})"
        )


def _check_scenario_size(config: RunConfig, d) -> None:
    rounds = config.rounds or d.rounds
    if rounds > config.limits.max_rounds:
        raise ConfigError(
            f"rounds: {rounds:,} per episode; limits.max_rounds is {config.limits.max_rounds:,} (raise it "
            f"deliberately: --set limits.max_rounds={rounds})"
        )
    players = d.n_players()
    if players > config.limits.max_players:
        raise ConfigError(
            f"scenario {d.id!r} has {players:,} players; limits.max_players is {config.limits.max_players:,} "
            f"(raise it deliberately: --set limits.max_players={players})"
        )


def check_writable(run_dir: Path) -> None:
    """The run directory, or the folder it will be created in, must be a directory we can write."""
    if run_dir.exists():
        if not run_dir.is_dir():
            raise ConfigError(f"run directory {run_dir}: exists and is not a directory")
        target = run_dir
    else:
        target = run_dir.parent
        while not target.exists() and target != target.parent:
            target = target.parent
        if not target.is_dir():
            raise ConfigError(f"results directory {target}: is a file, not a directory (for {run_dir})")
    if not os.access(target, os.W_OK | os.X_OK):
        raise ConfigError(
            f"results directory {target}: not writable (for {run_dir}); choose another --results-dir"
        )


def check_run(config: RunConfig) -> None:
    """Raise ConfigError unless the run can start (see the module docstring)."""
    if config.scenario is not None:
        _check_scenario(config)
    else:
        _check_instruments(config)
    _check_size(config)
    _check_executor(config)


def _check_executor(config: RunConfig) -> None:
    """executor: ray needs Ray installed; Ray settings without it are a mistake worth naming."""
    import importlib.util

    if config.executor == "ray":
        if importlib.util.find_spec("ray") is None:
            raise ConfigError('executor: ray needs Ray, which is not installed: pip install -e ".[ray]"')
        return
    given = [k for k in ("ray_address", "ray_actors") if getattr(config, k) is not None]
    if given:
        raise ConfigError(f"{', '.join(given)} set, but executor is {config.executor!r}: add --executor ray")
