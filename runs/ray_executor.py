"""RayExecutor (executor: ray): Ray actors play the run's units, on one machine or a cluster.

- Where: `ray_address` (`--ray-address HOST:PORT`) joins an existing cluster; without it a local
  Ray is started on this machine's usable cores, bound to 127.0.0.1, and stopped at the end.
- Who: one actor per GPU (`num_gpus=gpus_per_actor`, default 1) when the cluster has GPUs, else
  `ray_actors` single-thread CPU actors (default: one per cluster CPU). Each actor builds its
  agents and backend once (runs/workers.py), then plays one unit at a time (runs.executors.play_unit,
  the same units, played the same way, as every executor: the same records as a local run).
- Streaming: an actor's `play` is a Ray generator that yields each finished batch; the driver
  waits on all of them at once (`ray.wait`) and writes whatever arrives first through the run
  store, so no actor waits for the slowest and a free actor gets the next unit at once.
- Budget: the actors' BudgetGuards spend through the run store: their ledgers ask a small async
  actor (`_Desk`, no CPU), which the driver serves from its store (runs.workers.BudgetDesk) as
  part of the same `ray.wait` loop; a spend that would pass the budget is refused.
- Response cache: a SQLite file shared by path (WAL, a 60 s busy timeout; concurrent writers of the
  same key write the same answer). On a cluster, put it on a filesystem every node sees
  (`SVO_CACHE_DIR`), or each node keeps its own cache at that path.
- Failures: an actor or node that dies costs only its unit's episodes not yet written; they go to
  the remaining actors. With no actor left, ExecutorError (exit 1; finished episodes kept; resume).

The project must be importable on every node (installed, or on PYTHONPATH when `ray start` runs).
"""

from __future__ import annotations

import asyncio
import collections
import os
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import ray

from runs.config import RunConfig
from runs.cores import usable_cores
from runs.executors import Executor, ExecutorError, Finished, work_units
from runs.plan import EpisodeSpec
from runs.workers import BudgetDesk, RemoteLedger, UnitWorker, WorkerSetup, WorkerStartError, raise_error

__all__ = ["RayExecutor"]

#: How long actors may take to be placed and to build their agents (a model load on a busy node).
START_TIMEOUT_S = 900.0


@ray.remote(num_cpus=0)
class _Desk:
    """The actors' budget questions, queued for the driver, and the driver's answers."""

    def __init__(self) -> None:
        self.waiting: dict[int, tuple[Any, asyncio.Future]] = {}
        self.fresh: list[int] = []
        self.event = asyncio.Event()
        self.next = 0

    async def ask(self, request: tuple) -> Any:
        fut = asyncio.get_running_loop().create_future()
        self.next += 1
        self.waiting[self.next] = (request, fut)
        self.fresh.append(self.next)
        self.event.set()
        return await fut

    async def take(self) -> list[tuple[int, Any]]:
        while not self.fresh:
            self.event.clear()
            await self.event.wait()
        out = [(i, self.waiting[i][0]) for i in self.fresh]
        self.fresh = []
        return out

    async def reply(self, answers: list[tuple[int, Any]]) -> None:
        for i, a in answers:
            self.waiting.pop(i)[1].set_result(a)


@ray.remote(max_restarts=0)
class _Player:
    """One actor: builds its agents once (`start`), then plays units (`play`, a Ray generator)."""

    def __init__(self, setup: WorkerSetup, desk: Any) -> None:
        self.setup, self.desk = setup, desk
        self.worker: UnitWorker | None = None

    def _ask(self, request: tuple) -> Any:
        return ray.get(self.desk.ask.remote(request))

    def start(self) -> tuple[str, Any]:
        try:
            self.worker = UnitWorker(self.setup, lambda spec: RemoteLedger(spec, self._ask))
        except WorkerStartError as err:
            return ("failed", str(err))
        ctx = ray.get_runtime_context()
        return ("ready", {**self.worker.info(), "node": ctx.get_node_id(), "actor": ctx.get_actor_id()})

    def pid(self) -> int:
        return os.getpid()

    def play(self, unit: list[EpisodeSpec]):  # noqa: ANN201 - a Ray generator of worker messages
        assert self.worker is not None, "start() first"
        yield from self.worker.play(unit)


class _Actor:
    def __init__(self, handle: Any, kind: str, index: int) -> None:
        self.handle, self.kind, self.index = handle, kind, index
        self.info: dict[str, Any] | None = None
        self.unit: list[EpisodeSpec] | None = None
        self.usage = (0, 0)


class RayExecutor(Executor):
    """Ray actors (see the module doc); `start()` connects and builds, `close()` releases them."""

    name = "ray"

    def __init__(self, config: RunConfig, setup: WorkerSetup, desk: BudgetDesk) -> None:
        self.config, self.setup, self.desk = config, setup, desk
        self.actors: list[_Actor] = []
        self.lost: list[str] = []
        self.started_ray = False
        self.cluster: dict[str, Any] = {}
        self._desk: Any = None
        self._dead_usage = (0, 0)

    # -- start ------------------------------------------------------------------------------------
    def _connect(self) -> None:
        if ray.is_initialized():
            return
        common = {"log_to_driver": False, "configure_logging": False, "namespace": "svo-eval"}
        if self.config.ray_address:
            ray.init(address=self.config.ray_address, **common)
        else:
            ray.init(
                num_cpus=usable_cores(),
                include_dashboard=False,
                object_store_memory=200 * 1024**2,
                _node_ip_address="127.0.0.1",
                **common,
            )
            self.started_ray = True

    def _plan_actors(self) -> list[tuple[str, dict[str, Any]]]:
        res = ray.cluster_resources()
        cpus, gpus = float(res.get("CPU", 0)), float(res.get("GPU", 0))
        per = self.config.gpus_per_actor
        n_gpu = int(gpus // per) if per > 0 else 0
        threads = max(1, self.setup.threads)
        room = int(max(0.0, cpus - n_gpu) // threads)
        want = self.config.ray_actors if self.config.ray_actors is not None else (0 if n_gpu else room)
        n_cpu = min(want, room)
        self.cluster = {
            "cpus": cpus,
            "gpus": gpus,
            "nodes": len([n for n in ray.nodes() if n.get("Alive")]),
            "gpu_actors": n_gpu,
            "cpu_actors": n_cpu,
            "threads_per_cpu_actor": threads,
            "gpus_per_actor": per,
        }
        if want > n_cpu:
            self.cluster["note"] = f"ray_actors: {want} asked, {n_cpu} fit the cluster's free CPUs"
        plan = [("gpu", {"num_cpus": 1, "num_gpus": per})] * n_gpu
        return plan + [("cpu", {"num_cpus": threads, "num_gpus": 0})] * n_cpu

    def start(self) -> dict[str, Any]:
        """Connect (or start a local Ray), place the actors, and wait (bounded) until each has
        built its agents; returns the first one's info. WorkerStartError: agents cannot be built."""
        self._connect()
        plan = self._plan_actors()
        if not plan:
            raise ExecutorError(
                f"the Ray cluster has no room for an actor ({self.cluster}); add nodes, or lower "
                "gpus_per_actor / threads"
            )
        self._desk = _Desk.remote()
        gpu_setup = WorkerSetup(self.setup.config, self.setup.specs, self.setup.cache_path, 1)
        for i, (kind, opts) in enumerate(plan):
            handle = _Player.options(**opts).remote(gpu_setup if kind == "gpu" else self.setup, self._desk)
            self.actors.append(_Actor(handle, kind, i))
        pending = {a.handle.start.remote(): a for a in self.actors}
        t0 = time.monotonic()
        take = self._desk.take.remote()
        while pending:
            left = START_TIMEOUT_S - (time.monotonic() - t0)
            if left <= 0:
                for a in pending.values():
                    self.lost.append(
                        f"actor {a.index} ({a.kind}) did not start within {START_TIMEOUT_S:.0f} s"
                    )
                    ray.kill(a.handle)
                    self.actors.remove(a)
                break
            ready, _ = ray.wait([*pending, take], num_returns=1, timeout=min(left, 1.0))
            for ref in ready:
                if ref == take:
                    take = self._serve(take)
                    continue
                a = pending.pop(ref)
                try:
                    status, info = ray.get(ref)
                except ray.exceptions.RayError as err:
                    self.lost.append(f"actor {a.index} ({a.kind}) died while starting: {type(err).__name__}")
                    self.actors.remove(a)
                    continue
                if status == "failed":
                    raise WorkerStartError(info)
                a.info = info
        self._take = take
        if not self.actors:
            raise ExecutorError("no Ray actor started: " + "; ".join(self.lost))
        return self.actors[0].info or {}

    def _serve(self, take: Any) -> Any:
        """Answer the budget questions `take` returned; returns the next `take`."""
        requests = ray.get(take)
        self._desk.reply.remote([(i, self.desk.answer(q)) for i, q in requests])
        return self._desk.take.remote()

    # -- results ----------------------------------------------------------------------------------
    def results(
        self, groups: Sequence[Sequence[EpisodeSpec]], on_steps: Callable[[int], None] | None = None
    ) -> Iterator[Finished]:
        if not self.actors:
            self.start()
        queue = collections.deque(work_units(groups, self.config.batch_size))
        written: set[str] = set()
        idle = list(self.actors)
        busy: dict[Any, _Actor] = {}
        while queue or busy:
            while queue and idle:
                a = idle.pop(0)
                a.unit = queue.popleft()
                busy[a.handle.play.remote(a.unit)] = a
            if not busy:
                raise ExecutorError(
                    f"no Ray actor left to play {sum(map(len, queue))} episode(s) ({'; '.join(self.lost)}); "
                    "finished episodes are kept"
                )
            ready, _ = ray.wait([*busy, self._take], num_returns=1, timeout=1.0)  # Ctrl-C between waits
            for gen in ready:
                if gen == self._take:
                    self._take = self._serve(self._take)
                    continue
                a = busy[gen]
                try:
                    ref = next(gen)
                except StopIteration:
                    busy.pop(gen)
                    a.unit = None
                    idle.append(a)
                    continue
                try:
                    msg = ray.get(ref)
                except ray.exceptions.RayError as err:
                    busy.pop(gen)
                    self._lose(a, err, written, queue)
                    continue
                if msg[0] == "error":
                    raise_error(msg[1], msg[2])
                _, batch, steps, a.usage = msg
                if on_steps is not None and steps:
                    on_steps(steps)
                for f in batch:
                    if f.spec.key not in written:
                        written.add(f.spec.key)
                        yield f

    def _lose(self, a: _Actor, err: Exception, written: set[str], queue: collections.deque) -> None:
        """Actor `a` died: its unit's unwritten episodes go back to the front of the queue."""
        self.actors.remove(a)
        self._dead_usage = (self._dead_usage[0] + a.usage[0], self._dead_usage[1] + a.usage[1])
        pid = (a.info or {}).get("pid")
        self.lost.append(f"actor {a.index} ({a.kind}, pid {pid}) lost: {type(err).__name__}")
        rest = [e for e in (a.unit or []) if e.key not in written]
        if rest:
            queue.appendleft(rest)
        try:
            ray.kill(a.handle)
        except ray.exceptions.RayError:  # pragma: no cover - already gone
            pass

    def usage(self) -> tuple[int, int]:
        calls = sum(a.usage[0] for a in self.actors) + self._dead_usage[0]
        hits = sum(a.usage[1] for a in self.actors) + self._dead_usage[1]
        return calls, hits

    def actor_pids(self) -> list[int]:
        """The worker processes' pids (as each actor reported it)."""
        return [int(a.info["pid"]) for a in self.actors if a.info]

    def describe(self) -> dict[str, Any]:
        return {
            "executor": self.name,
            "address": self.config.ray_address or "local (started for this run, 127.0.0.1)",
            **self.cluster,
            "batch_size": self.config.batch_size,
            "actors": [
                {"kind": a.kind, "pid": (a.info or {}).get("pid"), "host": (a.info or {}).get("host")}
                for a in self.actors
            ],
            "lost": list(self.lost),
        }

    def close(self) -> None:
        if not ray.is_initialized():
            return
        for a in self.actors:
            try:
                ray.kill(a.handle)
            except ray.exceptions.RayError:  # pragma: no cover
                pass
        self.actors = []
        ray.shutdown()
