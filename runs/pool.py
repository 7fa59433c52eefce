"""PoolExecutor: worker processes on this machine (executor: local with more than one worker).

Each worker is a spawned process that builds its agents once (runs/workers.py), then plays the
units it is sent, one at a time, and streams every finished batch back over its pipe. The driver
(this process) writes them through the run store, answers the workers' budget questions from it,
and hands the next unit to whichever worker is free, so no worker waits for the slowest.

A worker that dies (killed, out of memory) costs only its unit's episodes not yet written: they go
back to the front of the queue for the remaining workers. The run stops with ExecutorError (exit 1,
finished episodes kept, resumable) only when no worker is left. Workers ignore Ctrl-C (the driver
handles it and stops them) and die with the driver (Linux: PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import collections
import multiprocessing as mp
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any

from runs.config import RunConfig
from runs.executors import Executor, ExecutorError, Finished, work_units
from runs.plan import EpisodeSpec
from runs.workers import BudgetDesk, RemoteLedger, UnitWorker, WorkerSetup, WorkerStartError, raise_error

__all__ = ["PoolExecutor"]

#: How long a worker may take to import and build its agents (the embedded model loads in about
#: 17 s the very first time, 0.5 s after; a loaded machine is slower).
START_TIMEOUT_S = 900.0


def _die_with_parent() -> None:
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass


def _worker_main(conn: Connection, setup: WorkerSetup) -> None:
    """A worker process: build, say ready (or why not), then play units until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _die_with_parent()

    def ask(request: tuple) -> Any:
        conn.send(("ledger", request))
        return conn.recv()

    try:
        worker = UnitWorker(setup, lambda spec: RemoteLedger(spec, ask))
    except WorkerStartError as err:
        conn.send(("failed", str(err)))
        return
    conn.send(("ready", worker.info()))
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg[0] == "stop":
            return
        for out in worker.play(msg[1]):
            conn.send(out)
        conn.send(("idle",))


class _Worker:
    def __init__(self, ctx: Any, setup: WorkerSetup, index: int) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(
            target=_worker_main, args=(child, setup), name=f"svo-worker-{index}", daemon=True
        )
        self.proc.start()
        child.close()
        self.index = index
        self.info: dict[str, Any] | None = None
        self.unit: list[EpisodeSpec] | None = None
        self.usage = (0, 0)


class PoolExecutor(Executor):
    """`workers` processes of `threads` torch threads each (see runs/cores.py for the choice)."""

    name = "local"

    def __init__(
        self, config: RunConfig, setup: WorkerSetup, desk: BudgetDesk, workers: int, choice: dict[str, Any]
    ) -> None:
        self.config, self.setup, self.desk = config, setup, desk
        self.n, self.choice = workers, choice
        self.workers: list[_Worker] = []
        self.lost: list[str] = []
        self._dead_usage = (0, 0)

    # -- start ----------------------------------------------------------------------------------
    def start(self) -> dict[str, Any]:
        """Spawn the workers and wait (bounded) until each has built its agents; returns the first
        one's info. Raises WorkerStartError if a worker cannot build them."""
        ctx = mp.get_context("spawn")
        self.workers = [_Worker(ctx, self.setup, i) for i in range(self.n)]
        waiting = {w.conn: w for w in self.workers}
        t0 = time.monotonic()
        while waiting:
            left = START_TIMEOUT_S - (time.monotonic() - t0)
            if left <= 0:
                raise ExecutorError(f"{len(waiting)} worker(s) did not start within {START_TIMEOUT_S:.0f} s")
            for conn in wait(list(waiting) + [w.proc.sentinel for w in waiting.values()], timeout=left):
                w = waiting.get(conn) if isinstance(conn, Connection) else None
                if w is None:  # a sentinel: the process ended
                    dead = [x for x in waiting.values() if x.proc.sentinel == conn]
                    for x in dead:
                        if x.conn.poll():
                            continue  # its last message is waiting: read it first
                        waiting.pop(x.conn, None)
                        self.lost.append(
                            f"worker {x.index} exited with status {x.proc.exitcode} while starting"
                        )
                    continue
                try:
                    msg = conn.recv()
                except EOFError:
                    waiting.pop(conn)
                    continue
                if msg[0] == "failed":
                    raise WorkerStartError(msg[1])
                w.info = msg[1]
                waiting.pop(conn)
        self.workers = [w for w in self.workers if w.info is not None]
        if not self.workers:
            raise ExecutorError("no worker started: " + "; ".join(self.lost))
        return self.workers[0].info

    # -- results ----------------------------------------------------------------------------------
    def results(
        self, groups: Sequence[Sequence[EpisodeSpec]], on_steps: Callable[[int], None] | None = None
    ) -> Iterator[Finished]:
        if not self.workers:
            self.start()
        queue = collections.deque(work_units(groups, self.config.batch_size))
        written: set[str] = set()
        idle = list(self.workers)
        busy: dict[Connection, _Worker] = {}
        while queue or busy:
            while queue and idle:
                w = idle.pop(0)
                w.unit = queue.popleft()
                busy[w.conn] = w
                try:
                    w.conn.send(("play", w.unit))
                except (OSError, ValueError):  # it died while idle
                    self._lose(w, written, busy, queue)
            if not busy:
                raise ExecutorError(
                    f"no worker left to play {sum(map(len, queue))} episode(s) ({'; '.join(self.lost)}); "
                    "finished episodes are kept"
                )
            ready = wait(list(busy) + [w.proc.sentinel for w in busy.values()])
            for obj in ready:
                if isinstance(obj, Connection):
                    w = busy.get(obj)
                    if w is not None:
                        yield from self._drain(w, written, busy, idle, queue, on_steps)
                else:
                    for w in [x for x in busy.values() if x.proc.sentinel == obj]:
                        yield from self._drain(w, written, busy, idle, queue, on_steps)
                        if w.conn in busy:
                            self._lose(w, written, busy, queue)

    def _drain(self, w, written, busy, idle, queue, on_steps) -> Iterator[Finished]:  # noqa: ANN001
        """Handle every message waiting from worker `w`."""
        while w.conn in busy:
            try:
                if not w.conn.poll():
                    return
                msg = w.conn.recv()
            except (EOFError, OSError):
                self._lose(w, written, busy, queue)
                return
            kind = msg[0]
            if kind == "ledger":
                w.conn.send(self.desk.answer(msg[1]))
            elif kind == "batch":
                _, batch, steps, w.usage = msg
                if on_steps is not None and steps:
                    on_steps(steps)
                for f in batch:
                    if f.spec.key not in written:
                        written.add(f.spec.key)
                        yield f
            elif kind == "idle":
                busy.pop(w.conn)
                w.unit = None
                idle.append(w)
            elif kind == "error":
                raise_error(msg[1], msg[2])

    def _lose(self, w: _Worker, written: set[str], busy: dict, queue: collections.deque) -> None:
        """Worker `w` died: its unit's unwritten episodes go back to the front of the queue."""
        busy.pop(w.conn, None)
        self.workers.remove(w)
        self._dead_usage = (self._dead_usage[0] + w.usage[0], self._dead_usage[1] + w.usage[1])
        w.proc.join(timeout=5)
        self.lost.append(f"worker {w.index} (pid {w.proc.pid}) died, exit status {w.proc.exitcode}")
        rest = [e for e in (w.unit or []) if e.key not in written]
        if rest:
            queue.appendleft(rest)
        w.conn.close()

    def usage(self) -> tuple[int, int]:
        calls = sum(w.usage[0] for w in self.workers)
        hits = sum(w.usage[1] for w in self.workers)
        return calls + self._dead_usage[0], hits + self._dead_usage[1]

    def describe(self) -> dict[str, Any]:
        return {
            "executor": self.name,
            "mode": "processes",
            **self.choice,
            "batch_size": self.config.batch_size,
            "worker_pids": [w.proc.pid for w in self.workers],
            "lost": list(self.lost),
        }

    def close(self) -> None:
        """Stop every worker: idle ones are told to, busy ones (the run stopped early) are ended."""
        for w in self.workers:
            try:
                if w.unit is None:
                    w.conn.send(("stop",))
                else:
                    w.proc.terminate()
            except (OSError, ValueError):
                pass
        deadline = time.monotonic() + 10
        for w in self.workers:
            w.proc.join(timeout=max(0.0, deadline - time.monotonic()))
            if w.proc.is_alive():
                w.proc.kill()
                w.proc.join(timeout=5)
            w.conn.close()
        self.workers = []
