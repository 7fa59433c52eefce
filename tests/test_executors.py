"""Executors (runs/executors.py, runs/pool.py, runs/ray_executor.py) and the core choice
(runs/cores.py): units, the same records whoever plays them, budgets through the driver's store,
a killed worker, the response cache under concurrent writers, and that a local run never imports
Ray. Runs with scripted agents and the scripted chat model (seconds); the embedded model's records
under every executor are compared in tests/test_ray_cluster.py (slow). Every wait is bounded.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from probes import stored_episodes

from runs.config import load_config, preset_path
from runs.cores import GENERATE_EPISODE_BYTES, WORKER_MEMORY_BYTES, choose_cores, usable_cores, worker_memory
from runs.executors import UNIT_BATCHES, episode_groups, work_units
from runs.plan import plan
from runs.store import DB, DECISIONS, EPISODES, RunStore

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
SCRIPTED = [
    "--agents", "scripted:random", "scripted:ideal:prosocial", "--goal", "both", "--orders", "fixed", "permuted",
    "--trials", "6", "--seed", "3", "--cache", "off", "--batch-size", "3",
]  # fmt: skip  # 192 episodes
FAKE = "llm:fake:A|B|C"
# long enough (about 3 s of worker time) that a kill lands while workers are busy: 1280 episodes,
# one per batch
KILL_GRID = [*SCRIPTED, "--trials", "40", "--batch-size", "1"]


def _evaluate(run: Path, *argv: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "runs.evaluate", "--run-dir", str(run), "--no-progress", *argv],
        cwd=run.parent,
        env={**ENV, "SVO_CACHE_DIR": str(run.parent / ".cache")},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _records(run: Path) -> tuple[bytes, bytes]:
    return (run / EPISODES).read_bytes(), (run / DECISIONS).read_bytes()


# -- units and the core choice ---------------------------------------------------------------------


def test_units_are_whole_cells_up_to_unit_batches_in_plan_order():
    cfg = load_config(None, {"trials": 2, "goal": "both", "orders": ["fixed", "reversed", "permuted"]})
    eps = plan(cfg)
    groups = episode_groups(eps)
    assert UNIT_BATCHES == 2
    # cells of 6 episodes, trials of 24: whole cells up to 2 batches, across trials
    for size, per_unit in ((3, 6), (6, 12), (12, 24), (1, 6), (4, 6), (5, 6), (8, 12), (100, 48)):
        units = work_units(groups, size)
        assert sorted(e.seq for u in units for e in u) == list(range(len(eps)))
        assert {len(u) for u in units} == {per_unit}, size
        for u in units:
            assert [e.seq for e in u] == sorted(e.seq for e in u)
            assert len({e.agent for e in u}) == len({e.instrument for e in u}) == 1
        cells = {(e.trial, e.value) for e in eps}
        for cell in cells:  # a cell (a value's goals x orders, one seed) is never split
            assert sum(any((e.trial, e.value) == cell for e in u) for u in units) == 1
    # the default run: 2 units of 8 (two values each: one per worker of a 2-core machine)
    d = load_config(None, {})
    assert [len(u) for u in work_units(episode_groups(plan(d)), d.batch_size)] == [8, 8]
    # --paper: 2 units of 40 (5 trials each), not 1 unit of 2 batches
    p = load_config(preset_path("paper"), {})
    units = work_units(episode_groups(plan(p)), p.batch_size)
    assert [len(u) for u in units] == [40, 40] and p.batch_size == 40
    assert [sorted({e.trial for e in u}) for u in units] == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]


def test_who_plays_a_run_is_not_part_of_its_resume_view():
    base = load_config(None, {}).resume_view()
    for over in (
        {"executor": "ray", "ray_address": "127.0.0.1:6379", "ray_actors": 3, "gpus_per_actor": 0.5},
        {"workers": 7},
        {"workers": 1},
    ):
        assert load_config(None, over).resume_view() == base, over
    assert load_config(None, {"threads": 2}).resume_view() != base  # threads change float rounding


def _cores(monkeypatch, n: int, mem: float | None = 64e9) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(n)))
    monkeypatch.setattr("runs.cores.available_memory", lambda: None if mem is None else int(mem))


def test_core_choice_uses_the_affinity_and_prefers_single_thread_processes(monkeypatch):
    _cores(monkeypatch, 8)
    cfg = load_config(None, {"threads": "auto", "workers": "auto"})
    c = choose_cores(cfg, ["llm:embedded"])
    assert (c.workers, c.threads, c.cores) == (8, 1, 8) and "processes" in c.why
    assert (choose_cores(cfg, ["llm:embedded"], units=3).workers) == 3
    c = choose_cores(load_config(None, {"threads": 2}), ["llm:embedded"])
    assert (c.workers, c.threads) == (4, 2)
    c = choose_cores(load_config(None, {"workers": 2, "threads": "auto"}), ["llm:embedded"])
    assert (c.workers, c.threads) == (2, 4)
    c = choose_cores(load_config(None, {"workers": 3, "threads": 3}), ["llm:embedded"])
    assert (c.workers, c.threads) == (3, 3)
    # no local model: this process, whatever the cores
    for specs in (["scripted:random"], ["llm:fake:A"], ["llm:openai:gpt-4o-mini"]):
        assert choose_cores(cfg, specs).workers == 1
    # memory bounds the workers
    _cores(monkeypatch, 8, mem=2.5 * WORKER_MEMORY_BYTES)
    c = choose_cores(cfg, ["llm:embedded"])
    assert c.workers == 2 and "memory" in c.why


def test_generate_mode_sets_aside_a_batch_of_conversations_per_worker(monkeypatch):
    """Free-text episodes hold their whole conversations while they step together: the memory set
    aside per worker grows with the batch, so a machine short of it runs fewer workers."""
    assert worker_memory(load_config(None, {})) == WORKER_MEMORY_BYTES  # log-prob mode
    paper = load_config(preset_path("paper"), {})
    need = worker_memory(paper)
    assert need == 1_000_000_000 + paper.batch_size * GENERATE_EPISODE_BYTES > WORKER_MEMORY_BYTES
    assert worker_memory(load_config(preset_path("paper"), {"batch_size": 2})) == WORKER_MEMORY_BYTES
    _cores(monkeypatch, 2, mem=1.5 * need)
    c = choose_cores(paper, ["llm:embedded"])
    assert c.workers == 1 and f"of {need / 1e9:.1f} GB" in c.why
    _cores(monkeypatch, 2, mem=2.5 * need)
    assert choose_cores(paper, ["llm:embedded"]).workers == 2


def test_usable_cores_follow_the_cpu_affinity_not_the_machine():
    if shutil.which("taskset") is None or not hasattr(os, "sched_getaffinity"):
        pytest.skip("needs taskset")
    r = subprocess.run(
        [
            "taskset",
            "-c",
            "0",
            sys.executable,
            "-c",
            "from runs.cores import usable_cores; print(usable_cores())",
        ],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.stdout.strip() == "1", r.stderr
    assert usable_cores() == len(os.sched_getaffinity(0))


def test_a_local_run_never_imports_ray(tmp_path):
    code = (
        "import sys; import runs.runner; from runs.evaluate import main; "
        f"rc = main(['--run-dir', {str(tmp_path / 'r')!r}, '--no-progress', '--agents', 'scripted:random', "
        "'--workers', '2', '--cache', 'off']); print(rc, 'ray' in sys.modules)"
    )
    r = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=300)
    assert r.stdout.split()[-2:] == ["0", "False"], r.stderr[-2000:]


# -- the process pool ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("ref") / "local"
    r = _evaluate(run, *SCRIPTED, "--workers", "1")
    assert r.returncode == 0, r.stderr[-2000:]
    return run


@pytest.fixture(scope="module")
def kill_reference(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("kref") / "local"
    r = _evaluate(run, *KILL_GRID, "--workers", "1")
    assert r.returncode == 0, r.stderr[-2000:]
    return run


def test_worker_processes_write_the_records_of_one_process(tmp_path, reference):
    r = _evaluate(tmp_path / "pool", *SCRIPTED, "--workers", "2")
    assert r.returncode == 0, r.stderr[-2000:]
    assert _records(tmp_path / "pool") == _records(reference)
    ex = json.loads((tmp_path / "pool" / "manifest.json").read_text())["execution"]
    assert ex["mode"] == "processes" and ex["workers"] == 2 and ex["lost"] == []


def _execution(run: Path) -> dict | None:
    try:
        return RunStore.read(run).meta("execution")
    except Exception:  # not there yet
        return None


def test_a_killed_worker_costs_only_its_unit_and_nothing_is_duplicated(tmp_path, kill_reference):
    run = tmp_path / "killed"
    argv = [*KILL_GRID, "--workers", "2"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "runs.evaluate", "--run-dir", str(run), "--no-progress", *argv],
        cwd=tmp_path,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    t0 = time.monotonic()
    while (ex := _execution(run) if (run / DB).is_file() else None) is None or stored_episodes(run) < 3:
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        assert time.monotonic() - t0 < 120, "timed out"
        time.sleep(0.005)
    victim = ex["worker_pids"][0]
    os.kill(victim, signal.SIGKILL)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    assert _records(run) == _records(kill_reference)  # scripted agents: the same records, none twice
    ex = RunStore.read(run).meta("execution")
    assert any(f"pid {victim}" in x for x in ex["lost"]), ex


def test_no_worker_left_is_a_clear_error_and_the_run_resumes(tmp_path, kill_reference):
    run = tmp_path / "all-dead"
    argv = [*KILL_GRID, "--workers", "2"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "runs.evaluate", "--run-dir", str(run), "--no-progress", *argv],
        cwd=tmp_path,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    t0 = time.monotonic()
    while (ex := _execution(run) if (run / DB).is_file() else None) is None or stored_episodes(run) < 2:
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        assert time.monotonic() - t0 < 120, "timed out"
        time.sleep(0.005)
    for pid in ex["worker_pids"]:
        os.kill(pid, signal.SIGKILL)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, err[-2000:]
    assert "no worker left" in err and "--resume" in err and "Traceback" not in err
    assert 0 < stored_episodes(run) < 1280
    r = _evaluate(run.parent / "x", "--resume", str(run))
    assert r.returncode == 0, r.stderr[-2000:]
    assert _records(run) == _records(kill_reference)


def _gone(pid: int, timeout: float = 30) -> bool:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as f:
                if f.read().split(") ")[-1].startswith("Z"):
                    return True  # a zombie has ended (its parent has not reaped it yet)
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_stopped_driver_takes_its_workers_with_it_and_the_run_resumes(tmp_path, kill_reference, sig):
    run = tmp_path / "stopped"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "runs.evaluate",
            "--run-dir",
            str(run),
            "--no-progress",
            *KILL_GRID,
            "--workers",
            "2",
        ],
        cwd=tmp_path,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    t0 = time.monotonic()
    while (ex := _execution(run) if (run / DB).is_file() else None) is None or stored_episodes(run) < 3:
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        assert time.monotonic() - t0 < 120, "timed out"
        time.sleep(0.005)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    if sig == signal.SIGTERM:
        assert proc.returncode == 130 and "Traceback" not in err, err[-2000:]
    assert all(_gone(pid) for pid in ex["worker_pids"])
    r = _evaluate(run.parent / "x", "--resume", str(run))
    assert r.returncode == 0, r.stderr[-2000:]
    assert _records(run) == _records(kill_reference)


def test_a_budget_is_never_exceeded_by_parallel_workers_and_resume_finishes(tmp_path):
    argv = ["--agents", FAKE, "--mode", "generate", "--values", "prosocial", "competitive", "--goal", "both"]
    argv += ["--trials", "3", "--batch-size", "1", "--workers", "2", "--cache", "off"]
    run = tmp_path / "b"
    r = _evaluate(run, *argv, "--max-calls", "25")
    assert r.returncode == 3, r.stderr[-2000:]
    assert "budget.max_calls=25" in r.stderr
    store = RunStore.read(run)
    calls, _ = store.spent(FAKE)
    assert calls <= 25
    done = len(store.completed())
    assert 0 < done < 24
    r = _evaluate(run.parent / "y", "--resume", str(run), "--max-calls", "1000")
    assert r.returncode == 0, r.stderr[-2000:]
    assert len(RunStore.read(run).completed()) == 24


def test_workers_that_cannot_build_their_agents_exit_2_and_write_nothing(tmp_path):
    r = _evaluate(tmp_path / "bad", "--agents", "llm:hf:/nonexistent/model", "--workers", "2")
    assert r.returncode == 2 and not (tmp_path / "bad").exists(), r.stderr[-2000:]


# -- the response cache under concurrent writers -------------------------------------------------------


def _hammer(path: str, worker: int, n: int) -> None:
    from agents.llm.cache import ResponseStore

    store = ResponseStore(path)
    for i in range(n):
        # shared keys (every writer writes the same value) and keys of this writer alone
        store.put_many({f"shared-{i}": {"v": i}, f"own-{worker}-{i}": {"v": worker}})
        got = store.get_many([f"shared-{i}", f"own-{worker}-{i}"])
        assert got == {f"shared-{i}": {"v": i}, f"own-{worker}-{i}": {"v": worker}}


def test_the_response_cache_takes_concurrent_writers(tmp_path):
    path = str(tmp_path / "responses.sqlite")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_hammer, args=(path, w, 150)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
        assert p.exitcode == 0
    from agents.llm.cache import ResponseStore

    assert len(ResponseStore(path)) == 150 + 4 * 150


# -- Ray on this machine (a local Ray, inside a loopback-only network namespace) ------------------------


def _in_netns(run: Path, *argv: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "runs.evaluate", "--run-dir", str(run), "--no-progress", *argv]
    script = "ip link set lo up && exec " + " ".join(f"'{a}'" for a in cmd)
    return subprocess.run(
        ["unshare", "-n", "-p", "-f", "--mount-proc", "bash", "-c", script],
        cwd=run.parent,
        env={**ENV, "SVO_CACHE_DIR": str(run.parent / ".cache")},
        capture_output=True,
        text=True,
        timeout=600,
    )


def _ray_ready() -> None:
    pytest.importorskip("ray")
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs unshare and ip")
    r = subprocess.run(["unshare", "-n", "-p", "-f", "--mount-proc", "true"], capture_output=True, timeout=30)
    if r.returncode:
        pytest.skip("unshare -n -p cannot run here")


@pytest.mark.ray
def test_ray_actors_write_the_records_of_one_process_and_keep_the_budget(tmp_path, reference):
    _ray_ready()
    r = _in_netns(tmp_path / "ray", *SCRIPTED, "--executor", "ray", "--ray-actors", "2")
    assert r.returncode == 0, r.stderr[-3000:]
    assert _records(tmp_path / "ray") == _records(reference)
    ex = RunStore.read(tmp_path / "ray").meta("execution")
    assert ex["executor"] == "ray" and ex["cpu_actors"] == 2 and len(ex["actors"]) == 2
    argv = ["--agents", FAKE, "--mode", "generate", "--values", "prosocial", "competitive", "--goal", "both"]
    argv += ["--trials", "3", "--batch-size", "1", "--cache", "off", "--executor", "ray", "--ray-actors", "2"]
    r = _in_netns(tmp_path / "rb", *argv, "--max-calls", "25")
    assert r.returncode == 3 and "budget.max_calls=25" in r.stderr, r.stderr[-3000:]
    assert RunStore.read(tmp_path / "rb").spent(FAKE)[0] <= 25


def test_ray_settings_need_the_ray_executor(tmp_path):
    r = _evaluate(tmp_path / "r", "--agents", "scripted:random", "--ray-actors", "2")
    assert r.returncode == 2 and "--executor ray" in r.stderr and not (tmp_path / "r").exists()
    r = _evaluate(
        tmp_path / "r", "--agents", "scripted:random", "--executor", "ray", "--ray-address", "nohost"
    )
    assert r.returncode == 2 and "not a Ray address" in r.stderr
