"""One agent registry and one spec syntax for every environment.

A spec is `kind:rest`:

- `scripted:<name>[:<arg>]...`: a scripted agent (agents/scripted.py); arguments are positional
  or `key=value`, e.g. `scripted:ideal:prosocial`, `scripted:angle:60:temperature=0.5`;
- `llm:<backend spec>`: the goal-prompted LLM policy (agents/llm) on a backend, e.g. `llm:embedded`,
  `llm:embedded?dtype=bfloat16`, `llm:hf:/path`, `llm:openai-compatible:MODEL@URL`,
  `llm:openai:gpt-4o-mini`;
- `rl:<path.zip>`: a policy trained by `python -m runs.train` (or any SB3 zip);
- `human:<id>`: a person answering through `python -m runs.play`.

Every kind declares the game kinds it acts in (agents.base.GAME_KINDS); `check_spec` validates a
spec against the games of a run without building anything heavy (no model loads), so a bad spec
or a mismatch is refused before anything is written. `build_agent` builds the agent.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.base import ALL_GAMES, DILEMMA_GAMES, Agent
from scenarios import VALUE_NAMES

__all__ = [
    "AGENT_KINDS",
    "SCRIPTED",
    "AgentSpecError",
    "Spec",
    "build_agent",
    "check_spec",
    "is_deterministic",
    "parse_spec",
    "spec_games",
]


class AgentSpecError(ValueError):
    """An agent spec is malformed, names something that does not exist, or cannot act in a game."""


@dataclass(frozen=True)
class Param:
    """One argument of a scripted agent: its name, converter and whether it may be omitted."""

    name: str
    convert: Callable[[str], Any]
    required: bool = True
    default: Any = None


@dataclass(frozen=True)
class Scripted:
    """A scripted agent kind: its parameters, the games it acts in, and how to build it."""

    name: str
    params: tuple[Param, ...]
    games: frozenset[str]
    build: Callable[..., Agent]
    deterministic: Callable[[dict[str, Any]], bool]
    summary: str

    @property
    def usage(self) -> str:
        parts = [f"scripted:{self.name}"]
        for p in self.params:
            parts.append(f"<{p.name}>" if p.required else f"[{p.name}=<{p.name}>]")
        return ":".join(parts)


def _value(s: str) -> str:
    if s not in VALUE_NAMES:
        raise ValueError(f"unknown value {s!r}; values: {', '.join(VALUE_NAMES)}")
    return s


def _finite(s: str) -> float:
    x = float(s)
    if not math.isfinite(x):
        raise ValueError(f"{s!r} is not finite")
    return x


def _temperature(s: str) -> float:
    x = _finite(s)
    if x < 0:
        raise ValueError(f"temperature {s!r} must be >= 0")
    return x


def _position(s: str) -> int:
    k = int(s)
    if k < 0:
        raise ValueError(f"position {s!r} must be >= 0 (0-based)")
    return k


def _scripted() -> dict[str, Scripted]:
    from agents import scripted as sc

    always_same = lambda a: True  # noqa: E731
    return {
        s.name: s
        for s in (
            Scripted(
                "random", (), ALL_GAMES, sc.RandomAgent, lambda a: False, "uniform among the shown options"
            ),
            Scripted(
                "ideal",
                (Param("value", _value),),
                ALL_GAMES,
                lambda value: sc.UtilityAgent(value=value),
                always_same,
                "the value's ideal type (scenarios/data/values.yaml)",
            ),
            Scripted(
                "angle",
                (Param("degrees", _finite), Param("temperature", _temperature, False, 0.0)),
                ALL_GAMES,
                lambda degrees, temperature: sc.UtilityAgent(angle=degrees, temperature=temperature),
                lambda a: not a["temperature"],
                "maximises cos(t) self + sin(t) other; softmax at temperature T > 0",
            ),
            Scripted(
                "always",
                (Param("k", _position),),
                ALL_GAMES,
                lambda k: sc.FixedPositionAgent(k),
                always_same,
                "always the k-th shown option (0-based): a position-bias probe",
            ),
            Scripted(
                "cooperate",
                (),
                DILEMMA_GAMES,
                lambda: sc.CooperationAgent(True),
                always_same,
                "the most cooperative option",
            ),
            Scripted(
                "defect",
                (),
                DILEMMA_GAMES,
                lambda: sc.CooperationAgent(False),
                always_same,
                "the least cooperative option",
            ),
            Scripted(
                "tit_for_tat",
                (),
                DILEMMA_GAMES,
                sc.TitForTatAgent,
                always_same,
                "cooperates first, then matches the partners' last cooperation",
            ),
        )
    }


SCRIPTED: dict[str, Scripted] = {}


def _scripted_kinds() -> dict[str, Scripted]:
    if not SCRIPTED:
        SCRIPTED.update(_scripted())
    return SCRIPTED


#: Usage lines of every kind (for --help and error messages).
AGENT_KINDS = (
    "scripted:random",
    "scripted:ideal:<value>",
    "scripted:angle:<degrees>[:temperature=<T>]",
    "scripted:always:<k>",
    "scripted:cooperate",
    "scripted:defect",
    "scripted:tit_for_tat",
    "llm:<backend spec>",
    "rl:<path.zip>",
    "human:<id>",
)

#: Renamed spec forms of earlier versions -> what to write now (for a helpful error).
_OLD_FORMS = {
    "always_cooperate": "scripted:cooperate",
    "always_defect": "scripted:defect",
    "utility": "scripted:angle:<degrees>[:temperature=<T>]",
}
_HUMAN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class Spec:
    """A parsed spec: kind ("scripted", "llm", "rl", "human"), name and arguments."""

    text: str
    kind: str
    name: str
    args: Mapping[str, Any]


def _allowed() -> str:
    return "allowed: " + ", ".join(AGENT_KINDS) + f"; values: {', '.join(VALUE_NAMES)}"


def _parse_scripted(spec: str, rest: str) -> Spec:
    if "(" in rest or ")" in rest:
        raise AgentSpecError(
            f"agent {spec!r}: parentheses are not part of the spec syntax; arguments follow the name after "
            f"colons, e.g. scripted:angle:60:temperature=0.5 ({_allowed()})"
        )
    name, *raw = rest.split(":")
    kinds = _scripted_kinds()
    if name not in kinds:
        hint = f" (now {_OLD_FORMS[name]})" if name in _OLD_FORMS else ""
        raise AgentSpecError(f"agent {spec!r}: unknown scripted agent {name!r}{hint}; {_allowed()}")
    kind = kinds[name]
    args: dict[str, Any] = {}
    for i, a in enumerate(raw):
        key, eq, val = a.partition("=")
        if not eq:
            if i >= len(kind.params):
                raise AgentSpecError(f"agent {spec!r}: too many arguments; usage: {kind.usage}")
            key, val = kind.params[i].name, a
        param = next((p for p in kind.params if p.name == key), None)
        if param is None:
            raise AgentSpecError(
                f"agent {spec!r}: unknown argument {key!r}; usage: {kind.usage} "
                f"(arguments: {[p.name for p in kind.params] or 'none'})"
            )
        if key in args:
            raise AgentSpecError(f"agent {spec!r}: argument {key!r} given twice")
        try:
            args[key] = param.convert(val)
        except ValueError as err:
            raise AgentSpecError(
                f"agent {spec!r}: argument {key}={val!r}: {err}; usage: {kind.usage}"
            ) from None
    for p in kind.params:
        if p.name not in args:
            if p.required:
                raise AgentSpecError(f"agent {spec!r}: missing <{p.name}>; usage: {kind.usage}")
            args[p.name] = p.default
    return Spec(spec, "scripted", name, args)


def parse_spec(spec: str) -> Spec:
    """Parse a spec (see the module docstring) or raise AgentSpecError saying what is allowed."""
    if not isinstance(spec, str) or ":" not in spec:
        raise AgentSpecError(f"agent {spec!r}: expected '<kind>:<...>'; {_allowed()}")
    spec = spec.strip()
    kind, _, rest = spec.partition(":")
    if kind == "scripted":
        return _parse_scripted(spec, rest)
    if kind == "llm":
        if not rest:
            raise AgentSpecError(f"agent {spec!r}: missing backend spec after 'llm:' (e.g. llm:embedded)")
        return Spec(spec, "llm", rest, {})
    if kind == "rl":
        if not rest.endswith(".zip"):
            raise AgentSpecError(f"agent {spec!r}: expected rl:<path to a .zip saved by runs.train>")
        return Spec(spec, "rl", rest, {})
    if kind == "human":
        if not _HUMAN_ID.match(rest):
            raise AgentSpecError(
                f"agent {spec!r}: a human id is 1-64 letters, digits, '_', '.', '-' (no personal data)"
            )
        return Spec(spec, "human", rest, {})
    raise AgentSpecError(f"agent {spec!r}: unknown kind {kind!r}; {_allowed()}")


def spec_games(spec: str | Spec) -> frozenset[str]:
    """The game kinds the spec's agent acts in (RL policies: checked against each env's spaces)."""
    s = parse_spec(spec) if isinstance(spec, str) else spec
    if s.kind == "scripted":
        return _scripted_kinds()[s.name].games
    if s.kind == "human":
        return frozenset({"instrument", "matrix", "sequential", "slider"})
    return ALL_GAMES


def check_spec(
    spec: str,
    games: Iterable[str] = ("instrument",),
    n_options: Sequence[int] = (9,),
    *,
    where: str = "",
    backend_options: Mapping[str, Any] | None = None,
) -> Spec:
    """Validate `spec` for a run whose games are `games` (GAME_KINDS) and whose decisions offer
    `n_options` options; raise AgentSpecError naming the spec and what is allowed. Loads no model:
    LLM backend specs with `backend_options` (agents.llm.factory.check_backend_options: options,
    model file, API key) and RL files are checked, not opened."""
    s = parse_spec(spec)
    at = f" in {where}" if where else ""
    bad = sorted(set(games) - spec_games(s))
    if bad:
        raise AgentSpecError(
            f"agent {spec!r} acts in {sorted(spec_games(s))}, not in {bad}{at}; "
            "scripted:cooperate, scripted:defect and scripted:tit_for_tat need a dilemma's cooperation scores"
        )
    if s.kind == "scripted" and s.name == "always":
        small = [n for n in n_options if s.args["k"] >= n]
        if small:
            raise AgentSpecError(
                f"agent {spec!r}: position {s.args['k']} outside 0..{min(n_options) - 1}{at} "
                f"(a decision there has {min(small)} options)"
            )
    if s.kind == "llm":  # the backend spec, its options, model file and API key; nothing is built
        from agents.llm.factory import BackendSpecError, check_backend_options

        try:
            check_backend_options(s.name, backend_options or {})
        except BackendSpecError as err:
            raise AgentSpecError(f"agent {spec!r}: {err}") from None
    if s.kind == "rl" and not Path(s.name).is_file():
        raise AgentSpecError(f"agent {spec!r}: file {s.name} not found")
    return s


def is_deterministic(spec: str, temperature: float) -> bool:
    """Whether identical inputs give identical decisions (then identical trials count once)."""
    s = parse_spec(spec)
    if s.kind == "scripted":
        return _scripted_kinds()[s.name].deterministic(dict(s.args))
    if s.kind == "llm":
        return temperature == 0.0
    return s.kind == "rl"  # PolicyAgent acts greedily; people are not deterministic


def build_agent(spec: str, *, llm: Callable[[str], Agent] | None = None) -> Agent:
    """Build the agent a spec names. llm: builds the LLM policy from a backend spec (the runner
    passes one that puts its response cache and budget guard in front of the backend)."""
    s = parse_spec(spec)
    if s.kind == "scripted":
        return _scripted_kinds()[s.name].build(**s.args)
    if s.kind == "llm":
        if llm is None:
            from agents.llm import GoalPromptedPolicy

            return GoalPromptedPolicy(backend=s.name)
        return llm(s.name)
    if s.kind == "rl":
        try:
            from agents.rl import load_policy_agent
        except ImportError as err:
            raise AgentSpecError(
                f'agent {spec!r}: RL agents need the rl extra (pip install -e ".[rl]"): {err}'
            ) from None
        return load_policy_agent(s.name)
    raise AgentSpecError(f"agent {spec!r}: human agents answer through python -m runs.play, not a runner")
