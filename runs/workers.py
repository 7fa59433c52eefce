"""The two sides of a parallel executor (runs/pool.py: processes; runs/ray_executor.py: Ray actors).

Worker side: `UnitWorker` builds its agents once (from plain data, `WorkerSetup`, which crosses
process and machine boundaries), then plays the units it is sent (runs.executors.play_unit) and
reports each finished batch as a message. It never writes the run: the driver does.

Driver side: `BudgetDesk` answers the workers' budget ledgers from the run store. A worker's
BudgetGuard asks `spent()` and then `spend(n, 0)` before each model call; the desk answers one
request at a time and refuses a spend that would pass the budget (the check is made again at the
spend, so two workers can never both take the last calls). Spending is in the run store before the
call is sent, as in a local run: a kill can only over-count. A token limit can be passed by at most
one batch per worker (token counts are known after a call).

Messages from a worker (plain tuples and dataclasses, picklable):
- ("batch", [Finished...], steps, (model_calls, cache_hits)): a finished batch of a unit, the
  progress steps it took, and the worker's running totals;
- ("error", kind, message): the unit stopped; kind "budget" (exit 3), "backend" (exit 1) or
  "failure" (an exception in the worker, with its traceback: exit 1, not retried elsewhere).
"""

from __future__ import annotations

import os
import socket
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from runs.config import Budget, RunConfig, validate
from runs.plan import EpisodeSpec

__all__ = ["BudgetDesk", "RemoteLedger", "UnitWorker", "WorkerSetup", "WorkerStartError", "raise_error"]


class WorkerStartError(RuntimeError):
    """A worker could not build its agents (a bad spec, a missing model or key): exit status 2."""


@dataclass(frozen=True)
class WorkerSetup:
    """What a worker needs to build its agents: the config (JSON form), the agent specs, the
    response cache's absolute path (None: no cache) and its torch threads."""

    config: dict[str, Any]
    specs: tuple[str, ...]
    cache_path: str | None
    threads: int


class RemoteLedger:
    """A worker's budget ledger (agents.llm.cache.Ledger): every question goes to the driver's
    BudgetDesk through `ask`; a spend the desk refuses raises BudgetExceeded."""

    def __init__(self, agent: str, ask: Callable[[tuple], Any]) -> None:
        self.agent, self._ask = agent, ask

    def spent(self) -> tuple[int, int]:
        calls, tokens = self._ask(("spent", self.agent, 0, 0))
        return int(calls), int(tokens)

    def spend(self, calls: int, tokens: int) -> None:
        refused = self._ask(("spend", self.agent, int(calls), int(tokens)))
        if refused is not None:
            from agents.llm.cache import BudgetExceeded

            raise BudgetExceeded(refused)


class BudgetDesk:
    """The driver's answers to RemoteLedger questions, from the run store's ledgers (one per agent
    spec); `budget`: the run's limits."""

    def __init__(self, ledgers: Mapping[str, Any], budget: Budget) -> None:
        self.ledgers, self.budget = dict(ledgers), budget

    def answer(self, request: Sequence[Any]) -> Any:
        op, agent, calls, tokens = request
        ledger = self.ledgers[agent]
        if op == "spent":
            return ledger.spent()
        if calls:
            made, used = ledger.spent()
            limit = self.budget.max_calls
            if limit is not None and made + calls > limit:
                return f"budget: {agent}: {made} model calls made, {calls} more would pass budget.max_calls={limit}"
            if self.budget.max_tokens is not None and used >= self.budget.max_tokens:
                return (
                    f"budget: {agent}: {used} tokens used, budget.max_tokens={self.budget.max_tokens} reached"
                )
        ledger.spend(calls, tokens)
        return None


class UnitWorker:
    """Builds the agents of `setup` once (ledgers from `ledger_for(spec)`), then plays units."""

    def __init__(self, setup: WorkerSetup, ledger_for: Callable[[str], Any]) -> None:
        if setup.threads:
            try:
                import torch

                torch.set_num_threads(setup.threads)
            except ImportError:
                pass  # the agents that need torch say so when they are built
        self.config: RunConfig = validate(setup.config, "the run's config")
        self.setup = setup
        try:
            self.built = _build(self.config, setup, ledger_for)
        except Exception as err:
            raise WorkerStartError(f"{type(err).__name__}: {err}") from err
        self.agents = {s: b.agent for s, b in self.built.items()}
        self.backends = [b.backend for b in self.built.values() if b.backend is not None]

    def info(self) -> dict[str, Any]:
        """Who this worker is and what it built (the manifest's agents and reproducibility claims)."""
        import sys

        threads = None
        if "torch" in sys.modules:
            threads = sys.modules["torch"].get_num_threads()
        return {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "torch_threads": threads,
            "agents": {s: b.describe() for s, b in self.built.items()},
            "reproducible": {
                s: dict(zip(("reproducible", "reason"), b.reproducibility(), strict=True))
                for s, b in self.built.items()
            },
        }

    def usage(self) -> tuple[int, int]:
        calls = sum(b.stats.conversations for b in self.built.values() if b.stats is not None)
        hits = sum(b.cache.hits for b in self.built.values() if b.cache is not None)
        return calls, hits

    def play(self, unit: Sequence[EpisodeSpec]) -> Iterator[tuple]:
        """Play one unit; yield a message per finished batch, or one error message and stop."""
        from agents.llm.backend import BackendError
        from agents.llm.cache import BudgetExceeded
        from runs.executors import play_unit

        steps = [0]

        def count(n: int) -> None:
            steps[0] += n

        try:
            for batch in play_unit(unit, self.config, self.agents, self.backends, count):
                yield ("batch", batch, steps[0], self.usage())
                steps[0] = 0
        except BudgetExceeded as err:
            yield ("error", "budget", str(err))
        except BackendError as err:
            yield ("error", "backend", str(err))
        except Exception as err:  # a bug or a broken environment: reported whole, never retried
            yield ("error", "failure", f"{type(err).__name__}: {err}\n{traceback.format_exc()}")


def raise_error(kind: str, message: str) -> None:
    """Raise, in the driver, the error a worker reported (an ("error", kind, message) message)."""
    from agents.llm.backend import BackendError
    from agents.llm.cache import BudgetExceeded
    from runs.executors import ExecutorError

    if kind == "budget":
        raise BudgetExceeded(message)
    if kind == "backend":
        raise BackendError(message)
    raise ExecutorError(f"a worker failed: {message}")


def _build(config: RunConfig, setup: WorkerSetup, ledger_for: Callable[[str], Any]) -> dict[str, Any]:
    from pathlib import Path

    from runs.agents import build
    from runs.checks import uses_llm
    from runs.runner import _check_policy_spaces, llm_kwargs

    llm = llm_kwargs(config) if uses_llm(list(setup.specs)) else None
    built = {
        s: build(
            s,
            llm=llm,
            cache_path=None if setup.cache_path is None else Path(setup.cache_path),
            budget=config.budget.model_dump(),
            backend_options=config.llm.backend_options,
            ledger=ledger_for(s),
        )
        for s in setup.specs
    }
    _check_policy_spaces(config, built)
    return built
