"""python -m runs.evaluate: run the study's grid, record everything, resume after any crash.

The grid is agents x values x goal prompt x trials x instruments x option orders (a YAML config
plus command-line overrides; see --help). Each finished episode is written durably to the run
directory (runs/store.py); a restarted run with the same directory does exactly the missing
episodes. Reports and plots come from runs/report.py, which also re-scores finished runs offline.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.base import Agent, EpisodeContext
from runs.agents import AGENT_KINDS, AgentSpecError, BuiltAgent, build_agent, is_deterministic
from runs.config import CONFIG_DIR, ConfigError, RunConfig, apply_overrides, preset_path, read_yaml, validate
from runs.store import RunStore, StoreError, code_version, environment, episode_key
from scoring.stats import stable_seed

__all__ = ["EpisodeSpec", "RunOutcome", "main", "plan", "run"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


@dataclass(frozen=True)
class EpisodeSpec:
    """One cell-trial of the grid."""

    agent: str
    instrument: str
    items: str
    order: str
    value: str
    goal: bool
    trial: int
    seed: int
    key: str
    prompt_set: str = "paper"
    framing: str = "none"

    def framings(self) -> list[str]:
        return [] if self.framing == "none" else self.framing.split("+")


#: How episode seeds derive from the config, recorded in each run's manifest; a run planned under
#: another rule (earlier versions also hashed the option order) cannot be resumed by this version.
EPISODE_SEED_RULE = "stable_seed('episode', base, instrument, trial)"


def episode_seed(base_seed: int, instrument: str, trial: int) -> int:
    """Episode seed shared by all agents, values, goal conditions and option orders of one trial
    (common random numbers). A permuted order is then the same across the conditions it compares,
    and the option orders of a trial are a paired comparison: an LLM gets the same value-induction
    and goal draws under the fixed and the reversed order, so the position-bias index measures the
    order alone (and the response cache serves the repeated induction and goal calls)."""
    return stable_seed("episode", base_seed, instrument, trial) % (2**31)


def plan(config: RunConfig) -> list[EpisodeSpec]:
    """Every episode of the grid, trial-major, so a partial run covers every cell evenly."""
    out = []
    for agent in config.agents:
        for trial in range(config.trials):
            for instrument in config.instruments:
                for order in config.orders:
                    seed = episode_seed(config.seed, instrument, trial)
                    for ps in config.prompt_sets:
                        for fr in config.framings:
                            for value in config.values:
                                for goal in config.goals():
                                    key = episode_key(
                                        agent,
                                        value,
                                        goal,
                                        order,
                                        instrument,
                                        config.items,
                                        trial,
                                        seed,
                                        ps,
                                        fr,
                                    )
                                    out.append(
                                        EpisodeSpec(
                                            agent,
                                            instrument,
                                            config.items,
                                            order,
                                            value,
                                            goal,
                                            trial,
                                            seed,
                                            key,
                                            ps,
                                            fr,
                                        )
                                    )
    return out


class _Tracked(Agent):
    """Delegates to an agent and reports each batch of decisions (progress bar)."""

    def __init__(self, inner: Agent, on_decisions: Callable[[int], None]) -> None:
        self.inner, self.on_decisions = inner, on_decisions
        self.name, self.observation_kind = inner.name, inner.observation_kind

    def start(self, context: EpisodeContext) -> Any:
        return self.inner.start(context)

    def start_batch(self, contexts: Sequence[EpisodeContext]) -> list[Any]:
        out = self.inner.start_batch(contexts)
        self.on_decisions(len(contexts))  # the setup (value induction, goal) counts as one step
        return out

    def act(self, observation: Mapping[str, Any], state: Any):
        return self.inner.act(observation, state)

    def act_batch(self, observations, states):
        out = self.inner.act_batch(observations, states)
        self.on_decisions(len(out))
        return out

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()


def _records(spec: EpisodeSpec, result: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The episode line and its decision lines (no timestamps: a rerun writes identical records)."""
    decisions = []
    choices: dict[str, int | None] = {}
    for t, (d, info) in enumerate(zip(result.decisions, result.infos, strict=True)):
        choices[str(info["item_id"])] = info["option"]
        decisions.append(
            {
                "episode": spec.key,
                "agent": spec.agent,
                "value": spec.value,
                "goal": spec.goal,
                "order": spec.order,
                "instrument": spec.instrument,
                "trial": spec.trial,
                "step": t,
                "item_id": info["item_id"],
                "shown_option": info["shown_option"],
                "option": info["option"],
                "valid": d.valid,
                "record": dict(d.record),
            }
        )
    episode = {
        "key": spec.key,
        "agent": spec.agent,
        "instrument": spec.instrument,
        "items": spec.items,
        "order": spec.order,
        "value": spec.value,
        "goal": spec.goal,
        "trial": spec.trial,
        "seed": spec.seed,
        "prompt_set": spec.prompt_set,
        "framing": spec.framing,
        "shown_orders": result.order,
        "choices": choices,
        "n_decisions": len(decisions),
        "n_invalid": sum(not d["valid"] for d in decisions),
        "total_reward": result.total_reward,
        "score": result.score,
    }
    return episode, decisions


@dataclass
class RunOutcome:
    """How a call to `run` ended."""

    done: int
    planned: int
    new: int
    interrupted: bool = False
    error: str | None = None
    model_calls: int = 0
    cache_hits: int = 0


class _Progress:
    """A rich progress bar with ETA over steps: one per episode setup (value induction, goal) and one
    per decision (silent when disabled)."""

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


def run(
    config: RunConfig,
    store: RunStore,
    agents: Mapping[str, BuiltAgent],
    *,
    progress: bool = True,
    session: int = 0,
) -> RunOutcome:
    """Run the missing episodes of the grid into `store` (already opened), batch by batch."""
    import envs  # noqa: F401  (registers the Gymnasium ids)
    from envs.rollout import run_episodes
    from envs.svo import SVOEnv

    episodes = plan(config)
    done = set(store.completed())
    pending = [e for e in episodes if e.key not in done]
    n_items = {i: SVOEnv(instrument=i, items=config.items).n_items for i in config.instruments}
    bar = _Progress(progress, sum(n_items[e.instrument] + 1 for e in pending), "evaluating")
    outcome = RunOutcome(done=len(done), planned=len(episodes), new=0)
    try:
        for spec_str in config.agents:
            built = agents[spec_str]
            todo = [e for e in pending if e.agent == spec_str]
            tracked = _Tracked(built.agent, bar.advance)
            for i in range(0, len(todo), config.batch_size):
                batch = todo[i : i + config.batch_size]
                envs_ = [SVOEnv(instrument=e.instrument, items=e.items, option_order=e.order) for e in batch]
                contexts = [
                    EpisodeContext(
                        instrument=e.instrument,
                        n_items=env.n_items,
                        n_options=env.n_options,
                        seed=e.seed,
                        value=e.value,
                        goal_prompt=e.goal,
                        extra={
                            "trial": e.trial,
                            "order": e.order,
                            "prompt_set": e.prompt_set,
                            "framings": e.framings(),
                        },
                    )
                    for e, env in zip(batch, envs_, strict=True)
                ]
                results = run_episodes(tracked, envs_, contexts)
                for e, res in zip(batch, results, strict=True):
                    ep, decs = _records(e, res)
                    ep["session"] = session
                    store.append_episode(ep, decs)
                    outcome.done += 1
                    outcome.new += 1
                if built.stats is not None:
                    hits = built.cache.hits if built.cache is not None else 0
                    bar.note(f"model calls {built.stats.conversations}, cache hits {hits}")
    except KeyboardInterrupt:
        outcome.interrupted = True
    except Exception as err:
        from agents.llm.backend import BackendError

        if not isinstance(err, BackendError):
            raise
        outcome.error = str(err)
    finally:
        bar.stop()
        for b in agents.values():
            if b.stats is not None:
                outcome.model_calls += b.stats.conversations
            if b.cache is not None:
                outcome.cache_hits += b.cache.hits
    return outcome


# -- command line -------------------------------------------------------------------------------


def _help_epilog() -> str:
    from runs.config import Budget, LLMSettings

    lines = ["config keys (YAML file, or --set KEY=VALUE; defaults in brackets):"]
    for model, prefix in ((RunConfig, ""), (LLMSettings, "llm."), (Budget, "budget.")):
        for name, f in model.model_fields.items():
            if name in ("llm", "budget"):
                continue
            default = f.default_factory() if f.default_factory is not None else f.default
            lines.append(f"  {prefix + name:22s} {f.description or ''} [{default}]")
    lines += ["", "agent specs:"] + [f"  {k}" for k in AGENT_KINDS]
    from agents.llm.factory import LOCAL_OPTIONS, SPEC_FORMS

    lines += [
        "  backend specs: " + "; ".join(SPEC_FORMS),
        "  local backend options after '?' (llm:embedded?dtype=bfloat16&max_batch_tokens=2048): "
        + ", ".join(LOCAL_OPTIONS),
    ]
    lines += [
        "",
        f"presets (runs/configs): {', '.join(sorted(p.stem for p in CONFIG_DIR.glob('*.yaml')))}",
        "",
        "examples:",
        "  python -m runs.evaluate                      # default: paper protocol, embedded model, small",
        "  python -m runs.evaluate --paper --name paper # the paper's settings (10 trials, generate)",
        "  python -m runs.evaluate --agents scripted:random scripted:ideal:prosocial --trials 50",
        "  python -m runs.evaluate --orders fixed reversed permuted --set llm.mode=logprob",
        "  python -m runs.evaluate --resume results/paper  # finish a killed run",
        "  python -m runs.report results/paper           # re-score and re-plot, no model",
        "",
        "exit status: 0 done, 1 model/backend failure (finished episodes kept), 2 bad config or",
        "arguments (nothing written), 130 interrupted (finished episodes kept).",
    ]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m runs.evaluate",
        description="Evaluate agents on SVO instruments told to hold a value (arXiv 2305.17147), with "
        "resume, response cache, statistics and plots. Without arguments: the default preset "
        "(runs/configs/default.yaml, the paper's protocol on the embedded model at a small size).",
        epilog=_help_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("-c", "--config", metavar="FILE", help="YAML config file")
    src.add_argument("--paper", action="store_true", help="the paper's settings (runs/configs/paper.yaml)")
    src.add_argument(
        "--preset", metavar="NAME", help="a shipped config in runs/configs (default, paper, scripted...)"
    )
    src.add_argument("--resume", metavar="DIR", help="finish the run in DIR with the config in its manifest")
    p.add_argument("--agents", nargs="+", metavar="SPEC", help="agent specs (see below)")
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
    p.add_argument("--max-calls", type=int, help="budget: model calls per agent")
    p.add_argument("--max-tokens", type=int, help="budget: tokens per agent")
    p.add_argument("--cache", help="response cache: shared, run or off")
    p.add_argument("--batch-size", type=int, help="episodes stepped together")
    p.add_argument(
        "--threads", type=int, help="torch CPU threads for local models (1 is fastest on a busy CPU)"
    )
    p.add_argument(
        "--scenario", metavar="ID", help="run a multi-agent scenario (runs.multi) instead of the grid"
    )
    p.add_argument("--name", help="run name: results/<name> (an existing run of that name is resumed)")
    p.add_argument("--results-dir", metavar="DIR", help="parent folder of run directories [results]")
    p.add_argument("--run-dir", metavar="DIR", help="exact run directory (resumed if it holds a run)")
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="any config key (YAML value)"
    )
    p.add_argument("--dry-run", action="store_true", help="print the plan and exit; nothing is written")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


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
    "max_calls": "budget.max_calls",
    "max_tokens": "budget.max_tokens",
    "cache": "cache",
    "batch_size": "batch_size",
    "threads": "threads",
    "scenario": "scenario",
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
        store = RunStore(Path(args.resume))
        if not store.exists():
            raise ConfigError(
                f"--resume {args.resume}: no {store.manifest_path.name} there (not a run directory)"
            )
        base = store.read_manifest()["config"]
        source = f"the manifest of {args.resume}"
    elif args.config:
        base, source = read_yaml(args.config), args.config
    else:
        name = "paper" if args.paper else (args.preset or "default")
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


def _cache_path(config: RunConfig, run_dir: Path) -> Path | None:
    import os

    if config.cache == "off":
        return None
    if config.cache == "run":
        return run_dir / "responses.sqlite"
    return Path(os.environ.get("SVO_CACHE_DIR", ".cache")) / "responses.sqlite"


def _llm_kwargs(config: RunConfig) -> dict[str, Any]:
    from agents.llm.backend import Sampling

    s = config.llm
    return {
        "mode": s.mode,
        "sampling": Sampling(temperature=s.temperature, top_p=s.top_p, max_new_tokens=s.max_new_tokens),
        **s.options,
    }


def _set_threads(config: RunConfig) -> None:
    """Apply `threads` to torch when a model agent will use it (a speed setting only: with 2 threads
    on a CPU shared with other jobs, torch's spinning threads run many times slower than 1)."""
    if config.threads is None or not any(a.startswith(("llm:", "rl:")) for a in config.agents):
        return
    try:
        import torch
    except ImportError:
        return  # the agents that need torch say so themselves when they are built
    torch.set_num_threads(config.threads)


def _check_resume(store: RunStore, config: RunConfig) -> None:
    manifest = store.read_manifest()
    rule = manifest.get("seeds", {}).get("episode_seed")
    if rule is not None and rule != EPISODE_SEED_RULE:
        commit = manifest.get("code", {}).get("commit") or "the commit in its manifest"
        raise ConfigError(
            f"{store.dir}: planned with episode seeds {rule}; this version uses {EPISODE_SEED_RULE} "
            f"(option orders of a trial are paired), so its episodes would not match: finish it with "
            f"the code that started it ({commit}), or start a new run"
        )
    old = manifest.get("config", {})
    new = config.resume_view()
    diff = [k for k in new if old.get(k) != new[k]]
    if diff:
        lines = [f"{store.dir}: holds a run with a different config; differing keys:"]
        lines += [f"  {k}: run has {old.get(k)!r}, now {new[k]!r}" for k in diff]
        lines.append("use another --name/--run-dir, or --resume DIR to finish that run as configured")
        raise ConfigError("\n".join(lines))


def _err(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)


def _describe_plan(config: RunConfig) -> str:
    if config.scenario:
        return f"multi-agent scenario {config.scenario!r} with agents {config.agents}, seed {config.seed}"
    return (
        f"{len(config.agents)} agent(s) {config.agents} x {len(config.values)} values x goal {config.goal} x "
        f"{config.trials} trial(s) x {config.instruments} x orders {config.orders} = {config.n_episodes()} episodes"
        + (
            f"; LLM mode {config.llm.mode}, temperature {config.llm.temperature}"
            if any(a.startswith("llm:") for a in config.agents)
            else ""
        )
    )


def _check_policy_spaces(config: RunConfig, built: dict[str, BuiltAgent]) -> None:
    """Refuse, before anything is written, a trained policy whose spaces don't fit an instrument."""
    from envs.svo import SVOEnv

    for spec, b in built.items():
        check = getattr(b.agent, "check_env", None)
        if spec.startswith("rl:") and check is not None:
            for instrument in config.instruments:
                check(SVOEnv(instrument=instrument, items=config.items))


DEFAULT_NOTE = (
    "No config file or preset given: running the default preset (runs/configs/default.yaml): the paper's protocol on the "
    "embedded SmolLM2-135M, 4 values x goal on/off x 1 trial, in the paper's fixed option order and "
    "reversed (the position-bias check), logprob answers; about 3 minutes and under 2 GB of memory on "
    "2 CPU cores (measured). --paper runs the paper's full settings (10 trials, fixed order, free text)."
)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config, run_dir, source = resolve(args)
        store = RunStore(run_dir)
        resuming = store.exists()
        if resuming:
            _check_resume(store, config)
        elif run_dir.exists() and any(run_dir.iterdir()):
            raise ConfigError(f"{run_dir}: exists, is not empty and holds no {store.manifest_path.name}")
    except (ConfigError, StoreError) as err:
        _err(str(err))
        return EXIT_USAGE
    plain = set(_overrides(args)) <= {"name", "results_dir", "cache", "batch_size", "threads"}
    if plain and not (args.config or args.paper or args.preset or args.resume):
        print(DEFAULT_NOTE, file=sys.stderr)
    print(f"config: {source}\nplan: {_describe_plan(config)}\nrun directory: {run_dir}", file=sys.stderr)
    if args.dry_run:
        return EXIT_OK
    _set_threads(config)
    try:
        cache_path = _cache_path(config, run_dir)
        llm = _llm_kwargs(config) if any(a.startswith("llm:") for a in config.agents) else None
        built = {
            s: build_agent(s, llm=llm, cache_path=cache_path, budget=config.budget.model_dump())
            for s in config.agents
        }
        if not config.scenario:
            _check_policy_spaces(config, built)
    except (AgentSpecError, ConfigError) as err:
        _err(str(err))
        return EXIT_USAGE
    except Exception as err:  # a backend that cannot start (missing key, missing file): nothing written
        from agents.llm.backend import BackendError

        if isinstance(err, (BackendError, ImportError, FileNotFoundError, ValueError)):
            _err(f"cannot build the agents: {err}")
            return EXIT_USAGE
        raise
    if config.scenario:
        return _run_scenario(config, run_dir, built)

    previous = signal.getsignal(signal.SIGTERM)

    def _term(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt

    try:
        store.lock()
    except StoreError as err:
        _err(str(err))
        return EXIT_USAGE
    signal.signal(signal.SIGTERM, _term)
    if not resuming:
        store.write_manifest(
            {
                "config": config.model_dump(mode="json"),
                "seeds": {
                    "base": config.seed,
                    "episode_seed": EPISODE_SEED_RULE,
                },
                "code": code_version(),
                "environment": environment(),
                "agents": {s: b.describe() for s, b in built.items()},
                "deterministic": {s: is_deterministic(s, config.llm.temperature) for s in config.agents},
                "command": ["python", "-m", "runs.evaluate", *argv],
            }
        )
    recovery = store.open()
    if recovery.torn_bytes or recovery.orphan_decisions:
        print(
            f"recovered: cut {recovery.torn_bytes} bytes of torn lines and {recovery.orphan_decisions} decision "
            "line(s) of an unfinished episode",
            file=sys.stderr,
        )
    sessions = (
        sum(1 for _ in (run_dir / "sessions.jsonl").open()) if (run_dir / "sessions.jsonl").is_file() else 0
    )
    t0 = time.time()
    try:
        outcome = run(config, store, built, progress=not args.no_progress, session=sessions)
    finally:
        store.close()
        signal.signal(signal.SIGTERM, previous)
    elapsed = time.time() - t0
    store.log_session(
        {
            "session": sessions,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t0)),
            "seconds": round(elapsed, 3),
            "code": code_version(),
            "new_episodes": outcome.new,
            "done": outcome.done,
            "planned": outcome.planned,
            "model_calls": outcome.model_calls,
            "cache_hits": outcome.cache_hits,
            "interrupted": outcome.interrupted,
            "error": outcome.error,
            "config": config.model_dump(mode="json"),
        }
    )
    from runs.report import print_table, write_reports

    summary = write_reports(run_dir)
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
    if outcome.error:
        _err(
            f"{outcome.error}\nfinished episodes are kept; fix the cause and run: python -m runs.evaluate "
            f"--resume {run_dir}"
        )
        return EXIT_FAILED
    return EXIT_OK


def _run_scenario(config: RunConfig, run_dir: Path, built: Mapping[str, BuiltAgent]) -> int:
    """Multi-agent hook: hand the agents to runs.multi.evaluate_scenario and save what it returns."""
    import json

    try:
        from runs.multi import evaluate_scenario
    except ImportError as err:
        _err(f"--scenario {config.scenario}: multi-agent scenarios need runs.multi.evaluate_scenario: {err}")
        return EXIT_USAGE
    existed = run_dir.exists()
    try:
        result = evaluate_scenario(
            config.scenario,
            {s: b.agent for s, b in built.items()},
            run_dir,
            config.seed,
            config.model_dump(mode="json"),
        )
    except ValueError as err:  # unknown scenario id or options (ScenarioError is a ValueError)
        if not existed and run_dir.is_dir() and not any(run_dir.iterdir()):
            run_dir.rmdir()
        _err(f"--scenario {config.scenario}: {err}")
        return EXIT_USAGE
    store = RunStore(run_dir)
    if not store.exists():
        store.write_manifest(
            {
                "config": config.model_dump(mode="json"),
                "code": code_version(),
                "environment": environment(),
                "agents": {s: b.describe() for s, b in built.items()},
            }
        )
    (run_dir / "scenario_summary.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps(result, indent=2, default=str))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
