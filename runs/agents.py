"""Agents from spec strings, so that a config file or a command line names them.

Specs:
- "scripted:random": uniform choice among the shown options;
- "scripted:ideal:<value>": the value's ideal type (altruistic, prosocial, individualistic, competitive);
- "scripted:angle:<degrees>": maximises cos(t) * self + sin(t) * other;
- "scripted:always:<k>": always the k-th shown option (0-based), a position-bias probe;
- "llm:<backend spec>": the goal-prompted LLM policy on a backend (agents.llm.make_backend), e.g.
  "llm:embedded" (SmolLM2-135M on CPU), "llm:hf:<path>", "llm:openai:<model>";
- "rl:<path.zip>": a trained RL policy (agents.rl).

`check_spec` validates a spec without building anything heavy (no model is loaded), so a bad spec
fails before a run writes anything. `build_agent` builds it; LLM backends get the response cache,
the call counter and the budget guard in front (agents/llm/cache.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.base import Agent
from scenarios import VALUE_NAMES

__all__ = ["AGENT_KINDS", "AgentSpecError", "BuiltAgent", "build_agent", "check_spec", "is_deterministic"]

AGENT_KINDS = (
    "scripted:random",
    "scripted:ideal:<value>",
    "scripted:angle:<degrees>",
    "scripted:always:<k>",
    "llm:<backend spec>",
    "rl:<path.zip>",
)


class AgentSpecError(ValueError):
    """An agent spec string is malformed or names something that does not exist."""


def _allowed() -> str:
    return "allowed: " + ", ".join(AGENT_KINDS) + f"; values: {', '.join(VALUE_NAMES)}"


def check_spec(spec: str, n_options: Sequence[int] = (9,)) -> None:
    """Raise AgentSpecError (naming the spec and what is allowed) if `spec` cannot be built.

    n_options: option counts of the instruments it will answer ("scripted:always:<k>" needs k below
    each of them).
    """
    if not isinstance(spec, str) or ":" not in spec:
        raise AgentSpecError(f"agent {spec!r}: expected '<kind>:<...>'; {_allowed()}")
    kind, _, rest = spec.partition(":")
    if kind == "scripted":
        sub, _, arg = rest.partition(":")
        if sub == "random" and not arg:
            return
        if sub == "ideal":
            if arg not in VALUE_NAMES:
                raise AgentSpecError(
                    f"agent {spec!r}: unknown value {arg!r}; values: {', '.join(VALUE_NAMES)}"
                )
            return
        if sub == "angle":
            try:
                a = float(arg)
            except ValueError:
                raise AgentSpecError(f"agent {spec!r}: angle {arg!r} is not a number (degrees)") from None
            if not math.isfinite(a):
                raise AgentSpecError(f"agent {spec!r}: angle must be finite")
            return
        if sub == "always":
            try:
                k = int(arg)
            except ValueError:
                raise AgentSpecError(
                    f"agent {spec!r}: position {arg!r} is not an integer (0-based)"
                ) from None
            bad = [n for n in n_options if not 0 <= k < n]
            if bad:
                raise AgentSpecError(
                    f"agent {spec!r}: position {k} outside 0..{min(n_options) - 1} for this grid"
                )
            return
        raise AgentSpecError(f"agent {spec!r}: unknown scripted agent {sub!r}; {_allowed()}")
    if kind == "llm":
        if not rest:
            raise AgentSpecError(f"agent {spec!r}: missing backend spec after 'llm:' (e.g. llm:embedded)")
        if rest.startswith(("embedded?", "hf:")):  # local options are checked before anything runs
            from agents.llm.factory import BackendSpecError, local_options

            try:
                local_options(rest, rest.removeprefix("hf:"))
            except BackendSpecError as err:
                raise AgentSpecError(f"agent {spec!r}: {err}") from None
        return
    if kind == "rl":
        if not rest.endswith(".zip"):
            raise AgentSpecError(f"agent {spec!r}: expected rl:<path to a .zip saved by runs.train>")
        if not Path(rest).is_file():
            raise AgentSpecError(f"agent {spec!r}: file {rest} not found")
        return
    raise AgentSpecError(f"agent {spec!r}: unknown kind {kind!r}; {_allowed()}")


def is_deterministic(spec: str, temperature: float) -> bool:
    """Whether identical inputs give identical decisions (then identical trials count once)."""
    if spec.startswith("scripted:"):
        return spec != "scripted:random"
    if spec.startswith("llm:"):
        return temperature == 0.0
    if spec.startswith("rl:"):
        return True  # PolicyAgent acts greedily (argmax), so identical inputs give identical actions
    return False


@dataclass
class BuiltAgent:
    """An agent with what the runner needs to account for it."""

    spec: str
    agent: Agent
    #: Backend wrappers (cache, counter, guard) of an LLM agent; None otherwise.
    cache: Any = None
    stats: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {"spec": self.spec, **self.agent.describe()}


def _build_backend(
    backend_spec: str, cache_path: Path | None, budget: Mapping[str, Any]
) -> tuple[Any, Any, Any]:
    try:
        from agents.llm import make_backend
    except ImportError as err:
        raise AgentSpecError(
            f"LLM agents need agents.llm.make_backend, which failed to import: {err}"
        ) from None
    from agents.llm.cache import BudgetGuard, CachedBackend, ResponseStore

    inner = make_backend(backend_spec)
    guard = BudgetGuard(inner, max_calls=budget.get("max_calls"), max_tokens=budget.get("max_tokens"))
    if cache_path is None:
        return guard, None, guard.stats
    cached = CachedBackend(guard, ResponseStore(cache_path))
    return cached, cached, guard.stats


def build_agent(
    spec: str,
    *,
    llm: Mapping[str, Any] | None = None,
    cache_path: Path | None = None,
    budget: Mapping[str, Any] | None = None,
) -> BuiltAgent:
    """Build the agent a spec names.

    llm: keyword arguments for GoalPromptedPolicy besides the backend (mode, sampling, ...).
    cache_path: sqlite file of the response cache (None: no cache). budget: max_calls/max_tokens.
    """
    check_spec(spec, n_options=(1 << 30,))
    kind, _, rest = spec.partition(":")
    if kind == "scripted":
        from agents.scripted import FixedOptionAgent, IdealTypeAgent, RandomAgent

        sub, _, arg = rest.partition(":")
        if sub == "random":
            return BuiltAgent(spec, RandomAgent())
        if sub == "ideal":
            return BuiltAgent(spec, IdealTypeAgent(value=arg))
        if sub == "angle":
            return BuiltAgent(spec, IdealTypeAgent(angle=float(arg)))
        return BuiltAgent(spec, FixedOptionAgent(int(arg)))
    if kind == "llm":
        try:
            from agents.llm import GoalPromptedPolicy
        except ImportError as err:
            raise AgentSpecError(
                f"LLM agents need agents.llm.GoalPromptedPolicy, which failed to import: {err}"
            ) from None
        backend, cache, stats = _build_backend(rest, cache_path, budget or {})
        policy = GoalPromptedPolicy(backend=backend, **dict(llm or {}))
        return BuiltAgent(spec, policy, cache=cache, stats=stats)
    # rl
    try:
        from agents import rl
    except ImportError as err:
        raise AgentSpecError(
            f'agent {spec!r}: RL agents need agents.rl (and the rl extra: pip install -e ".[rl]"): {err}'
        ) from None
    loader = getattr(rl, "load_policy", None) or getattr(rl, "load_agent", None)
    if loader is None:
        raise AgentSpecError(f"agent {spec!r}: agents.rl has no load_policy(path) to build the agent from")
    return BuiltAgent(spec, loader(rest))
