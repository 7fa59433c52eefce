"""The runner's agents: built from specs (agents.registry), LLM backends behind the response cache,
the call counter and the budget guard (agents/llm/cache.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.base import Agent
from agents.registry import AgentSpecError, build_agent, parse_spec

__all__ = ["BuiltAgent", "build"]


@dataclass
class BuiltAgent:
    """An agent with what the runner needs to account for it (LLM agents: cache and call stats)."""

    spec: str
    agent: Agent
    cache: Any = None
    stats: Any = None
    backend: Any = None

    def describe(self) -> dict[str, Any]:
        return {"spec": self.spec, **self.agent.describe()}

    def reproducibility(self) -> tuple[bool, str]:
        """Whether a rerun gives the same records, and why (LLM agents: their backend's claim)."""
        if self.backend is not None:
            claim = self.backend.reproducibility()
            return bool(claim.reproducible), claim.reason
        s = parse_spec(self.spec)
        if s.kind == "scripted":
            return True, "scripted: seeded by the episode seed"
        if s.kind == "rl":
            return True, "trained policy acting greedily"
        return False, "a person"


def _backend(
    backend_spec: str,
    cache_path: Path | None,
    budget: Mapping[str, Any],
    options: Mapping[str, Any],
    ledger: Any,
) -> tuple[Any, Any, Any]:
    from agents.llm import make_backend
    from agents.llm.cache import BudgetGuard, CachedBackend, ResponseStore

    inner = make_backend(backend_spec, **options)
    guard = BudgetGuard(
        inner, max_calls=budget.get("max_calls"), max_tokens=budget.get("max_tokens"), ledger=ledger
    )
    if cache_path is None:
        return guard, None, guard.stats
    cached = CachedBackend(guard, ResponseStore(cache_path))
    return cached, cached, guard.stats


def build(
    spec: str,
    *,
    llm: Mapping[str, Any] | None = None,
    cache_path: Path | None = None,
    budget: Mapping[str, Any] | None = None,
    backend_options: Mapping[str, Any] | None = None,
    ledger: Any = None,
) -> BuiltAgent:
    """Build the agent a spec names. llm: GoalPromptedPolicy keyword arguments besides the backend
    (mode, sampling...); cache_path: the response cache (None: none); budget: max_calls/max_tokens,
    spent from `ledger` (agents.llm.cache.Ledger; the run store's, so it holds across resumes);
    backend_options: make_backend options (timeouts, retries...)."""
    s = parse_spec(spec)
    if s.kind != "llm":
        return BuiltAgent(spec, build_agent(spec))
    try:
        from agents.llm import GoalPromptedPolicy
    except ImportError as err:
        raise AgentSpecError(f"agent {spec!r}: LLM agents failed to import: {err}") from None
    backend, cache, stats = _backend(s.name, cache_path, budget or {}, backend_options or {}, ledger)
    policy = GoalPromptedPolicy(backend=backend, **dict(llm or {}))
    return BuiltAgent(spec, policy, cache=cache, stats=stats, backend=backend)
