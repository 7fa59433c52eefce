"""How a local run uses the cores of one machine: worker processes or torch threads, and how many.

The choice, by measurement (bench/bench_scale.py; docs/scale.md has the tables, taken on the 2-core
development VM while other work shared it): for the local models (the embedded SmolLM2 and any
Hugging Face model on CPU), single-thread worker processes, one per core, not one process with a
thread per core. On the default run at load average 1-2, against one process on one thread:
2 processes 1.89x (2.02x in the episode loop), 2 threads 1.41x; at load average 3.4-4.3
(`--quick`): 2 processes 1.11x, 2 threads 0.29x (spinning threads collapse when another process
wants the core; processes slow down only in proportion). And only the processes gave the
one-process records: another thread count changes float rounding, the worker count does not
(every worker plays the same units the same way, runs/executors.py), so single-thread workers
also keep the records independent of the machine.

So `workers: auto` with `threads: auto` (or 1) gives one worker per core the process may use
(`os.sched_getaffinity`, not the machine's total: a container or `taskset` limits it), each on one
thread, capped by the memory available (each worker holds its own model and its conversations:
`worker_memory`) and by the number of work units. With `workers: auto`, runs without a local model (scripted agents, RL
policies, API models) use this process alone: their work is not CPU-bound.
Overrides: `threads: N` alone gives cores // N workers of N threads; `workers: N` alone gives N
workers of cores // N threads; both set are taken as given.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from runs.config import RunConfig

__all__ = [
    "GENERATE_EPISODE_BYTES",
    "WORKER_MEMORY_BYTES",
    "CoreChoice",
    "available_memory",
    "choose_cores",
    "local_model",
    "usable_cores",
    "worker_memory",
]

#: Memory set aside per worker: the default run's whole process peaked at 1.93 GB (README,
#: /usr/bin/time -v) and 2 workers with their driver at 3.3 GB (bench_scale.py); rounded up for
#: the prefix store's growth on longer conversations.
WORKER_MEMORY_BYTES = 2_500_000_000
#: In generate mode (free text), each episode stepped together holds its whole conversation's keys
#: and values until its last item: up to about 2,700 tokens x 46 KB for the embedded model in
#: float32 (`--paper`), plus its share of the extractor prompts and re-ask branches. Measured: a
#: `--paper` run (40 episodes per worker) peaked at 7.8 GB, so 1 GB + 40 x 175 MB = 8 GB is set aside.
GENERATE_EPISODE_BYTES = 175_000_000


def worker_memory(config: RunConfig) -> int:
    """Memory to set aside per worker: WORKER_MEMORY_BYTES, plus in generate mode the conversations
    of a batch (`batch_size` x GENERATE_EPISODE_BYTES) beyond the default run's."""
    if config.llm.mode != "generate":
        return WORKER_MEMORY_BYTES
    return max(WORKER_MEMORY_BYTES, 1_000_000_000 + config.batch_size * GENERATE_EPISODE_BYTES)


@dataclass(frozen=True)
class CoreChoice:
    """Worker processes and torch threads per worker for a local run, and why (for the manifest)."""

    workers: int
    threads: int
    cores: int
    why: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), not the machine's total."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def available_memory() -> int | None:
    """MemAvailable from /proc/meminfo in bytes (None where there is no such file)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def local_model(spec: str) -> bool:
    """Whether an agent spec runs a model on this machine's CPU or GPU through the local backend."""
    if not spec.startswith("llm:"):
        return False
    from agents.llm.factory import BackendSpecError, backend_kind

    try:
        return backend_kind(spec[4:]) == "local"
    except BackendSpecError:
        return False


def choose_cores(config: RunConfig, specs: Sequence[str], units: int | None = None) -> CoreChoice:
    """Workers and threads for `config` on this machine (see the module doc). `units`: the work
    units to play (None: unknown), which bounds the workers worth starting."""
    cores = usable_cores()
    threads = None if config.threads in (None, "auto") else int(config.threads)
    workers = None if config.workers == "auto" else int(config.workers)
    if workers is None and not any(local_model(s) for s in specs):
        why = "no local model among the agents: this process plays every episode"
        return CoreChoice(1, threads or 1, cores, why)
    if workers is not None and threads is not None:
        return CoreChoice(workers, threads, cores, f"workers: {workers} and threads: {threads} as configured")
    if workers is not None:
        t = max(1, cores // workers)
        return CoreChoice(
            workers, t, cores, f"workers: {workers} as configured, {cores} usable core(s) shared out"
        )
    t = threads or 1
    n = max(1, cores // t)
    why = [
        f"{cores} usable core(s) (CPU affinity) / {t} thread(s) per worker = {n} worker process(es); "
        "processes, not threads, by measurement (runs/cores.py, docs/scale.md)"
    ]
    mem = available_memory()
    if mem is not None and n > 1:
        need = worker_memory(config)
        fit = max(1, mem // need)
        if fit < n:
            n = int(fit)
            why.append(f"memory: {mem / 1e9:.1f} GB available holds {n} worker(s) of {need / 1e9:.1f} GB")
    if units is not None and 0 < units < n:
        n = units
        why.append(f"{units} work unit(s) to play")
    return CoreChoice(n, t, cores, "; ".join(why))
