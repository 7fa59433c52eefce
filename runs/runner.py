"""The runner behind `python -m runs.evaluate` (runs/evaluate.py is the command line's entry):
run the study's grid or a dilemma scenario, record everything durably, resume after any crash.

One runner for every environment: the SVO instruments (agents x values x goal prompt x trials x
instruments x option orders x prompt sets x framings) and any social-dilemma scenario (its
population, or the players `--agents TARGET=SPEC` replaces, over the same conditions). The order
of work: the config is resolved and checked (runs/checks.py) before anything is written; the run
directory is claimed (runs/store.py: created atomically, locked, config hash checked, verified);
only then do models load; episodes are played in batches (runs/rollout.py) and each finished
episode is written in one transaction. Reports and plots come from runs/report.py, which also
re-scores finished runs offline.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runs.agents import BuiltAgent, build
from runs.checks import check_run, check_writable, uses_llm
from runs.config import CONFIG_DIR, ConfigError, RunConfig, apply_overrides, preset_path, read_yaml, validate
from runs.executors import Executor, ExecutorError, LocalExecutor, episode_groups, work_units
from runs.plan import EPISODE_SEED_RULE, EpisodeSpec, plan
from runs.store import RunStore, StoreError, code_version, environment

__all__ = [
    "EXIT_BUDGET",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "RunOutcome",
    "main",
    "run",
]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_BUDGET, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


@dataclass
class RunOutcome:
    """How a call to `run` ended."""

    done: int
    planned: int
    new: int
    interrupted: bool = False
    error: str | None = None
    budget: bool = False
    model_calls: int = 0
    cache_hits: int = 0


class _Progress:
    """A rich progress bar with ETA over steps (one per seat's setup, one per decision)."""

    def __init__(self, enabled: bool, total: int, label: str) -> None:
        self.bar = None
        if enabled and total:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("steps"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[note]}"),
                console=Console(stderr=True),
            )
            self.task = self.bar.add_task(label, total=total, note="")
            self.bar.start()

    def advance(self, n: int) -> None:
        if self.bar is not None:
            self.bar.advance(self.task, n)

    def note(self, text: str) -> None:
        if self.bar is not None:
            self.bar.update(self.task, note=text)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _steps(spec: EpisodeSpec, config: RunConfig) -> int:
    """Progress steps of one episode: setup per seat plus decisions (scenarios: an estimate)."""
    if spec.kind == "instrument":
        from scenarios import load_instrument

        inst = load_instrument(spec.instrument)
        n = len(inst.subset(spec.items).items) if inst.scoring == "slider" else len(inst.items)
        return n + 1
    from scenarios.dilemmas import load_dilemma

    d = load_dilemma(config.scenario)
    rounds = config.rounds or d.rounds
    moves = len(d.stages) if d.game == "sequential" else d.n_players()
    return d.n_players() + rounds * moves


def run(
    config: RunConfig,
    store: RunStore,
    agents: Mapping[str, BuiltAgent],
    *,
    progress: bool = True,
    executor: Executor | None = None,
) -> RunOutcome:
    """Play the missing episodes of the plan into `store` (claimed): an executor plays them in
    groups and streams them back; each is written here, in one transaction, as it arrives."""
    from agents.llm.backend import BackendError
    from agents.llm.cache import BudgetExceeded

    episodes = plan(config)
    done = store.completed()
    pending = [e for e in episodes if e.key not in done]
    bar = _Progress(progress, sum(_steps(e, config) for e in pending), "evaluating")
    outcome = RunOutcome(done=len(done), planned=len(episodes), new=0)
    executor = executor or LocalExecutor(
        config, {s: b.agent for s, b in agents.items()}, [b.backend for b in agents.values() if b.backend]
    )
    try:
        for finished in executor.results(episode_groups(pending), on_steps=bar.advance):
            store.add_episode(finished.spec.seq, finished.episode, finished.decisions)
            outcome.done += 1
            outcome.new += 1
            bar.note(_calls_note(agents, executor))
    except KeyboardInterrupt:
        outcome.interrupted = True
    except BudgetExceeded as err:
        outcome.budget, outcome.error = True, str(err)
    except (BackendError, ExecutorError) as err:
        outcome.error = str(err)
    finally:
        bar.stop()
        outcome.model_calls, outcome.cache_hits = _usage(agents, executor)
    return outcome


def _usage(agents: Mapping[str, BuiltAgent], executor: Executor) -> tuple[int, int]:
    """Model calls and cache hits so far: the executor's workers', or the runner's own agents'."""
    counted = executor.usage()
    if counted is not None:
        return counted
    calls = sum(b.stats.conversations for b in agents.values() if b.stats is not None)
    hits = sum(b.cache.hits for b in agents.values() if b.cache is not None)
    return calls, hits


def _calls_note(agents: Mapping[str, BuiltAgent], executor: Executor) -> str:
    if executor.usage() is None and not any(b.stats for b in agents.values()):
        return ""
    calls, hits = _usage(agents, executor)
    return f"model calls {calls}, cache hits {hits}"


# -- command line -------------------------------------------------------------------------------


def _help_epilog() -> str:
    from agents.llm.factory import LOCAL_OPTIONS, SPEC_FORMS
    from agents.registry import AGENT_KINDS
    from runs.config import Budget, Limits, LLMSettings

    lines = ["config keys (YAML file, or --set KEY=VALUE; defaults in brackets):"]
    for model, prefix in ((RunConfig, ""), (LLMSettings, "llm."), (Budget, "budget."), (Limits, "limits.")):
        for name, f in model.model_fields.items():
            if name in ("llm", "budget", "limits"):
                continue
            default = f.default_factory() if f.default_factory is not None else f.default
            lines.append(f"  {prefix + name:22s} {f.description or ''} [{default}]")
    lines += ["", "agent specs (every environment):"] + [f"  {k}" for k in AGENT_KINDS]
    lines += [
        "  backend specs: " + "; ".join(SPEC_FORMS),
        "  local backend options after '?' (llm:embedded?dtype=bfloat16&max_batch_tokens=2048): "
        + ", ".join(LOCAL_OPTIONS),
        "",
        f"presets (runs/configs): {', '.join(sorted(p.stem for p in CONFIG_DIR.glob('*.yaml')))}",
        "",
        "examples:",
        "  python -m runs.evaluate                      # default: paper protocol, embedded model, small",
        "  python -m runs.evaluate --paper --name paper # the paper's settings (10 trials, generate)",
        "  python -m runs.evaluate --agents scripted:random scripted:ideal:prosocial --trials 50",
        "  python -m runs.evaluate --scenario prisoners_dilemma_repeated --agents '*=llm:embedded'",
        "  python -m runs.evaluate --scenario my_game.yaml --agents cooperators=scripted:random",
        "  python -m runs.evaluate --resume results/paper  # finish a killed run",
        "  python -m runs.report results/paper           # re-score and re-plot, no model",
        "",
        "exit status: 0 done, 1 model/backend failure (finished episodes kept), 2 bad config, arguments",
        "or run directory (nothing written), 3 budget reached (finished episodes kept; raise --max-calls",
        "and --resume), 130 interrupted (finished episodes kept).",
    ]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m runs.evaluate",
        description="Evaluate agents on SVO instruments and social dilemmas told to hold a value (arXiv "
        "2305.17147), with resume, response cache, statistics and plots. Without arguments: the default "
        "preset (runs/configs/default.yaml, the paper's protocol on the embedded model at a small size).",
        epilog=_help_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("-c", "--config", metavar="FILE", help="YAML config file")
    src.add_argument("--paper", action="store_true", help="the paper's settings (runs/configs/paper.yaml)")
    src.add_argument(
        "--preset", metavar="NAME", help="a shipped config in runs/configs (default, paper, scripted...)"
    )
    src.add_argument(
        "--resume", metavar="DIR", help="finish the run in DIR with the config it was started with"
    )
    p.add_argument("--agents", nargs="+", metavar="SPEC", help="agent specs (scenario runs: TARGET=SPEC)")
    p.add_argument(
        "--values", nargs="+", metavar="VALUE", help="altruistic prosocial individualistic competitive"
    )
    p.add_argument("--goal", help="goal prompt: on, off or both")
    p.add_argument("--trials", type=int, help="trials per cell")
    p.add_argument("--instruments", nargs="+", metavar="ID", help="instrument ids (slider, triple_dominance)")
    p.add_argument("--items", help="slider items: primary or all")
    p.add_argument("--orders", nargs="+", metavar="ORDER", help="option orders: fixed reversed permuted")
    p.add_argument("--seed", type=int, help="base seed")
    p.add_argument("--mode", help="LLM decision mode: generate or logprob (= --set llm.mode=...)")
    p.add_argument("--temperature", type=float, help="LLM sampling temperature (= --set llm.temperature=...)")
    p.add_argument("--timeout", type=float, metavar="S", help="chat backends: seconds per attempt of a call")
    p.add_argument("--retries", type=int, help="chat backends: retries after a failed attempt")
    p.add_argument(
        "--max-calls", type=int, help="budget: model calls per agent, over every session of the run"
    )
    p.add_argument("--max-tokens", type=int, help="budget: tokens per agent")
    p.add_argument("--cache", help="response cache: shared, run or off")
    p.add_argument("--batch-size", type=int, help="episodes stepped together")
    p.add_argument(
        "--threads",
        type=_count_or_auto,
        metavar="N|auto",
        help="torch CPU threads per process for local models (auto: 1 per worker process)",
    )
    p.add_argument(
        "--workers",
        type=_count_or_auto,
        metavar="N|auto",
        help="local worker processes (auto: one per usable core for local models; see docs/scale.md)",
    )
    p.add_argument("--executor", choices=("local", "ray"), help="who plays the episodes: local or ray")
    p.add_argument(
        "--ray-address", metavar="HOST:PORT", help="executor ray: an existing cluster (default: a local Ray)"
    )
    p.add_argument("--ray-actors", type=int, metavar="N", help="executor ray: single-thread CPU actors")
    p.add_argument("--gpus-per-actor", type=float, metavar="G", help="executor ray: GPUs per GPU actor [1]")
    p.add_argument("--scenario", metavar="ID_OR_PATH", help="play a dilemma scenario (id or YAML path)")
    p.add_argument("--rounds", type=int, help="scenario runs: rounds per episode")
    p.add_argument("--name", help="run name: results/<name> (an existing run of that name is resumed)")
    p.add_argument("--results-dir", metavar="DIR", help="parent folder of run directories [results]")
    p.add_argument("--run-dir", metavar="DIR", help="exact run directory (resumed if it holds a run)")
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="any config key (YAML value)"
    )
    p.add_argument("--dry-run", action="store_true", help="print the plan and exit; nothing is written")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _count_or_auto(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number >= 1 or auto") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number >= 1 or auto")
    return n


_FLAG_KEYS = {
    "agents": "agents",
    "values": "values",
    "goal": "goal",
    "trials": "trials",
    "instruments": "instruments",
    "items": "items",
    "orders": "orders",
    "seed": "seed",
    "mode": "llm.mode",
    "temperature": "llm.temperature",
    "timeout": "llm.backend_options.timeout_s",
    "retries": "llm.backend_options.retries",
    "max_calls": "budget.max_calls",
    "max_tokens": "budget.max_tokens",
    "cache": "cache",
    "batch_size": "batch_size",
    "threads": "threads",
    "workers": "workers",
    "executor": "executor",
    "ray_address": "ray_address",
    "ray_actors": "ray_actors",
    "gpus_per_actor": "gpus_per_actor",
    "scenario": "scenario",
    "rounds": "rounds",
    "name": "name",
    "results_dir": "results_dir",
}


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    import yaml

    out: dict[str, Any] = {}
    for attr, key in _FLAG_KEYS.items():
        v = getattr(args, attr)
        if v is not None:
            out[key] = v
    for item in args.set:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE (e.g. --set llm.mode=logprob)")
        k, _, v = item.partition("=")
        try:
            out[k.strip()] = yaml.safe_load(v)
        except yaml.YAMLError as err:
            raise ConfigError(f"--set {item!r}: value is not valid YAML: {err}") from None
    return out


def resolve(args: argparse.Namespace) -> tuple[RunConfig, Path, str]:
    """Config, run directory and a sentence saying where the config came from."""
    if args.resume:
        store = RunStore.read(args.resume)
        base, source = store.config(), f"the run in {args.resume}"
        store.close()
    elif args.config:
        base, source = read_yaml(args.config), args.config
    else:
        name = "paper" if args.paper else (args.preset or ("scenario" if args.scenario else "default"))
        path = preset_path(name)
        base, source = read_yaml(path), f"preset {name} ({path.relative_to(CONFIG_DIR.parents[1])})"
    over = _overrides(args)
    data = apply_overrides(base, over, f"{source} + command line") if over else base
    config = validate(data, source + (" + command line" if over else ""))
    if args.resume:
        run_dir = Path(args.resume)
    elif args.run_dir:
        run_dir = Path(args.run_dir)
    else:
        run_dir = Path(config.results_dir) / (config.name or time.strftime("%Y%m%d-%H%M%S"))
    return config, run_dir, source


def cache_path_for(config: RunConfig, run_dir: Path) -> Path | None:
    """The response cache's file for this config and run (None: no cache)."""
    import os

    if config.cache == "off":
        return None
    if config.cache == "run":
        return run_dir / "responses.sqlite"
    return Path(os.environ.get("SVO_CACHE_DIR", ".cache")) / "responses.sqlite"


def llm_kwargs(config: RunConfig) -> dict[str, Any]:
    """GoalPromptedPolicy keyword arguments (besides the backend) of this config."""
    from agents.llm.backend import Sampling

    s = config.llm
    return {
        "mode": s.mode,
        "sampling": Sampling(temperature=s.temperature, top_p=s.top_p, max_new_tokens=s.max_new_tokens),
        **s.options,
    }


def _set_threads(threads: int, specs: Sequence[str]) -> None:
    """Set torch's threads in this process when a model agent will use it (a speed setting, and a
    rounding one: records depend on it, so it is part of the resume view)."""
    if not any(a.startswith(("llm:", "rl:")) for a in specs):
        return
    try:
        import torch
    except ImportError:
        return  # the agents that need torch say so themselves when they are built
    torch.set_num_threads(threads)


def _specs(config: RunConfig) -> list[str]:
    """Every distinct agent spec the run will build."""
    if config.scenario is None:
        return list(config.agents)
    from runs.episodes import seat_specs

    return list(dict.fromkeys(s.spec for s in seat_specs(config).values()))


def _describe_plan(config: RunConfig, n: int) -> str:
    llm = uses_llm(_specs(config))
    tail = f"; LLM mode {config.llm.mode}, temperature {config.llm.temperature}" if llm else ""
    if config.scenario:
        who = ", ".join(config.agents) if config.agents else "its own population"
        return (
            f"scenario {config.scenario} with {who} x goal {config.goal} x {config.trials} trial(s) x orders "
            f"{config.orders} = {n} episodes{tail}"
        )
    return (
        f"{len(config.agents)} agent(s) {config.agents} x {len(config.values or [1] * 4)} values x goal {config.goal} x "
        f"{config.trials} trial(s) x {config.instruments} x orders {config.orders} = {n} episodes{tail}"
    )


def _manifest(config: RunConfig, argv: Sequence[str]) -> dict[str, Any]:
    from agents.registry import is_deterministic

    return {
        "config": config.model_dump(mode="json"),
        "seeds": {"base": config.seed, "episode_seed": EPISODE_SEED_RULE},
        "code": code_version(),
        "environment": environment(),
        "deterministic": {s: is_deterministic(s, config.llm.temperature) for s in _specs(config)},
        "command": ["python", "-m", "runs.evaluate", *argv],
    }


def _build_agents(config: RunConfig, run_dir: Path, store: RunStore) -> dict[str, BuiltAgent]:
    cache_path = cache_path_for(config, run_dir)
    specs = _specs(config)
    llm = llm_kwargs(config) if uses_llm(specs) else None
    budget = config.budget.model_dump()
    built = {
        s: build(
            s,
            llm=llm,
            cache_path=cache_path,
            budget=budget,
            backend_options=config.llm.backend_options,
            ledger=store.ledger(s),
        )
        for s in specs
    }
    _check_policy_spaces(config, built)
    return built


def _check_policy_spaces(config: RunConfig, built: Mapping[str, BuiltAgent]) -> None:
    """Refuse a trained policy whose spaces don't fit the envs it would play."""
    from agents.rl import PolicyAgent

    rl = {s: b.agent for s, b in built.items() if isinstance(b.agent, PolicyAgent)}
    if not rl:
        return
    if config.scenario is None:
        from envs.svo import SVOEnv

        for agent in rl.values():
            for instrument in config.instruments:
                agent.check_env(SVOEnv(instrument=instrument, items=config.items))
        return
    from envs.dilemmas import make_env
    from runs.episodes import seat_specs
    from scenarios.dilemmas import load_dilemma

    env = make_env(load_dilemma(config.scenario), **({"rounds": config.rounds} if config.rounds else {}))
    for p, seat in seat_specs(config).items():
        if seat.spec in rl:
            rl[seat.spec].check_env(env, p)


def _claim_dict(b: BuiltAgent) -> dict[str, Any]:
    ok, why = b.reproducibility()
    return {"reproducible": ok, "reason": why}


def _err(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)


DEFAULT_NOTE = (
    "No config file or preset given: running the default preset (runs/configs/default.yaml): the paper's protocol on the "
    "embedded SmolLM2-135M, 4 values x goal on/off x 1 trial, in the paper's fixed option order and "
    "reversed (the position-bias check), logprob answers; about 2 minutes and under 2 GB of memory on "
    "2 CPU cores (measured). --paper runs the paper's full settings (10 trials, fixed order, free text)."
)


def _prepare(args: argparse.Namespace, argv: Sequence[str]) -> tuple[RunConfig, Path, str]:
    """Resolve and check the config (ConfigError/StoreError: exit 2, nothing written)."""
    config, run_dir, source = resolve(args)
    check_run(config)
    check_writable(run_dir)
    plain = set(_overrides(args)) <= {"name", "results_dir", "cache", "batch_size", "threads", "workers"}
    if plain and not (args.config or args.paper or args.preset or args.resume or args.scenario):
        print(DEFAULT_NOTE, file=sys.stderr)
    n = len(plan(config))
    print(f"config: {source}\nplan: {_describe_plan(config, n)}\nrun directory: {run_dir}", file=sys.stderr)
    return config, run_dir, source


def _claim(config: RunConfig, run_dir: Path, argv: Sequence[str], resume: bool) -> tuple[RunStore, bool]:
    session = {
        "code": code_version(),
        "command": ["python", "-m", "runs.evaluate", *argv],
        "budget": config.budget.model_dump(),
        "batch_size": config.batch_size,
    }
    return RunStore.claim(
        run_dir,
        config=config.model_dump(mode="json"),
        resume_view=config.resume_view(),
        manifest=_manifest(config, argv),
        session=session,
        must_exist=resume,
    )


def _finish(store: RunStore, run_dir: Path, outcome: RunOutcome, elapsed: float) -> int:
    from runs.report import print_table, write_reports

    store.end_session(
        {
            "seconds": round(elapsed, 3),
            "new_episodes": outcome.new,
            "done": outcome.done,
            "planned": outcome.planned,
            "model_calls": outcome.model_calls,
            "cache_hits": outcome.cache_hits,
            "interrupted": outcome.interrupted,
            "budget_reached": outcome.budget,
            "error": outcome.error,
        }
    )
    store.export()
    summary = write_reports(run_dir, store=store, html=True)
    print_table(summary)
    print(
        f"{outcome.new} new episode(s) in {elapsed:.1f} s; {outcome.done}/{outcome.planned} done; "
        f"model calls {outcome.model_calls}, cache hits {outcome.cache_hits}; results in {run_dir}",
        file=sys.stderr,
    )
    if outcome.interrupted:
        print(
            f"interrupted: finished episodes are kept; finish with: python -m runs.evaluate --resume {run_dir}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    if outcome.budget:
        _err(
            f"{outcome.error}\nfinished episodes are kept; raise the budget and run: python -m runs.evaluate --resume {run_dir} --max-calls N"
        )
        return EXIT_BUDGET
    if outcome.error:
        _err(
            f"{outcome.error}\nfinished episodes are kept; fix the cause and run: python -m runs.evaluate --resume {run_dir}"
        )
        return EXIT_FAILED
    return EXIT_OK


def _interruptible(fn: Callable[[], int]) -> int:
    """Run `fn` with SIGINT and SIGTERM turned into KeyboardInterrupt (runs.evaluate.on_signal); an
    interrupt anywhere exits 130, also where a library turned it into an error of its own."""
    from runs.evaluate import interrupted, on_signal, reset_interrupt

    main_thread = threading.current_thread() is threading.main_thread()
    previous = [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)] if main_thread else []
    reset_interrupt()
    if main_thread:
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
    try:
        return fn()
    except Exception as err:
        if not interrupted(err):
            raise
    except KeyboardInterrupt:
        pass
    finally:
        for s, h in zip((signal.SIGINT, signal.SIGTERM), previous, strict=False):
            signal.signal(s, h)
    print("interrupted: nothing finished is lost (finish with --resume DIR, or run again)", file=sys.stderr)
    return EXIT_INTERRUPTED


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    return _interruptible(lambda: _main(args, argv))


def _main(args: argparse.Namespace, argv: Sequence[str]) -> int:
    try:
        config, run_dir, _ = _prepare(args, argv)
    except (ConfigError, StoreError) as err:
        _err(str(err))
        return EXIT_USAGE
    if args.dry_run:
        return EXIT_OK
    try:
        store, created = _claim(config, run_dir, argv, bool(args.resume))
    except StoreError as err:
        _err(str(err))
        return EXIT_USAGE
    try:
        return _work(config, run_dir, store, created, progress=not args.no_progress)
    finally:
        store.close()


def _work(config: RunConfig, run_dir: Path, store: RunStore, created: bool, *, progress: bool) -> int:
    from agents.registry import AgentSpecError
    from runs.workers import WorkerStartError

    store.note_budget(config.budget.model_dump())
    executor: Executor | None = None
    try:
        try:
            executor, built, info = _executor(config, run_dir, store)
        except Exception as err:  # agents that cannot be built, workers that cannot start
            from agents.llm.backend import BackendError

            if isinstance(err, ExecutorError):
                _err(f"cannot start the workers: {err}")
                return EXIT_FAILED
            bad_agents = (AgentSpecError, BackendError, ConfigError, ImportError, OSError, ValueError)
            if not isinstance(err, (*bad_agents, WorkerStartError)):
                raise
            if created:
                shutil.rmtree(run_dir, ignore_errors=True)
            _err(
                f"cannot build the agents: {err}"
                + ("" if created else f"; the run in {run_dir} is unchanged")
            )
            return EXIT_USAGE
        if created:
            store.set_meta("agents", info["agents"])
            store.set_meta("reproducible", info["reproducible"])
        store.set_meta("execution", executor.describe())
        t0 = time.time()
        outcome = run(config, store, built, progress=progress, executor=executor)
        store.set_meta("execution", executor.describe())
        elapsed = time.time() - t0
        executor.close()  # workers and prefix stores go before the reports are written (peak memory)
        executor = None
        return _finish(store, run_dir, outcome, elapsed)
    finally:
        if executor is not None:
            executor.close()


def _executor(
    config: RunConfig, run_dir: Path, store: RunStore
) -> tuple[Executor, dict[str, BuiltAgent], dict[str, Any]]:
    """Who plays this run (config executor, workers and threads; runs/cores.py), started: the
    executor, the agents built here (none when workers build their own), and the agents'
    descriptions and reproducibility claims for the manifest."""
    from runs.cores import choose_cores
    from runs.workers import BudgetDesk, WorkerSetup

    specs = _specs(config)
    done = store.completed()
    units = len(work_units(episode_groups([e for e in plan(config) if e.key not in done]), config.batch_size))
    choice = choose_cores(config, specs, units=units)
    if config.executor == "local" and choice.workers == 1:
        _set_threads(choice.threads, specs)
        built = _build_agents(config, run_dir, store)
        backends = [b.backend for b in built.values() if b.backend is not None]
        executor = LocalExecutor(config, {s: b.agent for s, b in built.items()}, backends, choice.as_dict())
        info = {
            "agents": {s: b.describe() for s, b in built.items()},
            "reproducible": {s: _claim_dict(b) for s, b in built.items()},
        }
        return executor, built, info
    cache = cache_path_for(config, run_dir)
    threads = (
        choice.threads
        if config.executor == "local"
        else (config.threads if isinstance(config.threads, int) else 1)
    )
    setup = WorkerSetup(
        config.model_dump(mode="json"), tuple(specs), None if cache is None else str(cache.resolve()), threads
    )
    desk = BudgetDesk({s: store.ledger(s) for s in specs}, config.budget)
    if config.executor == "ray":
        from runs.ray_executor import RayExecutor

        executor = RayExecutor(config, setup, desk)
    else:
        from runs.pool import PoolExecutor

        executor = PoolExecutor(config, setup, desk, choice.workers, choice.as_dict())
    try:
        info = executor.start()
    except BaseException:
        executor.close()
        raise
    return executor, {}, {"agents": info["agents"], "reproducible": info["reproducible"]}
