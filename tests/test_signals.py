"""Ctrl-C and SIGTERM at any moment of a run: start-up, model load, the episode loop, report writing,
and a second Ctrl-C during the reports. Each ends with exit status 130, no traceback, and a run
that resumes (or, killed before it existed, starts again) to the records of an uninterrupted run.
Every wait is bounded."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from probes import stored_episodes

from runs.store import DB, DECISIONS, EPISODES

ROOT = Path(__file__).resolve().parents[1]
GRID = [
    "--agents", "scripted:random", "scripted:ideal:prosocial", "scripted:always:0", "--goal", "both",
    "--orders", "fixed", "reversed", "permuted", "--trials", "12", "--batch-size", "4", "--seed", "9", "--cache", "off",
]  # fmt: skip
N = 3 * 4 * 2 * 3 * 12  # agents x values x goal x orders x trials


def _start(run: Path, *argv: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "runs.evaluate", "--run-dir", str(run), "--no-progress", *argv],
        cwd=run.parent,
        env={**os.environ, "PYTHONPATH": str(ROOT), "SVO_CACHE_DIR": str(run.parent / ".cache")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _until(cond, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    t0 = time.time()
    while not cond():
        if proc.poll() is not None:
            raise AssertionError(
                f"the run ended first (exit {proc.returncode}): {proc.stderr.read()[-2000:]}"
            )
        if time.time() - t0 > timeout:
            raise AssertionError("timed out")
        time.sleep(0.005)


def _stopped(proc: subprocess.Popen) -> str:
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (proc.returncode, err[-2000:])
    assert "Traceback" not in err, err[-3000:]
    return err


def _finish(run: Path, *argv: str) -> None:
    """Resume a run that exists, else start it again: it must complete."""
    args = ["--resume", str(run)] if (run / DB).exists() else ["--run-dir", str(run), *argv]
    r = subprocess.run(
        [sys.executable, "-m", "runs.evaluate", *args, "--no-progress"],
        cwd=run.parent,
        env={**os.environ, "PYTHONPATH": str(ROOT), "SVO_CACHE_DIR": str(run.parent / ".cache")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("ref") / "full"
    proc = _start(run, *GRID)
    assert proc.wait(timeout=300) == 0
    return run


def _same(run: Path, ref: Path) -> None:
    for name in (EPISODES, DECISIONS, "summary.json"):
        assert (run / name).read_bytes() == (ref / name).read_bytes(), name


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("delay", [0.15, 0.4, 0.8])
def test_interrupt_at_start_up(tmp_path, reference, sig, delay):
    run = tmp_path / "r"
    proc = _start(run, *GRID)
    time.sleep(delay)
    proc.send_signal(sig)
    _stopped(proc)
    _finish(run, *GRID)
    _same(run, reference)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_in_the_episode_loop(tmp_path, reference, sig):
    run = tmp_path / "r"
    proc = _start(run, *GRID)
    _until(lambda: stored_episodes(run) >= 20, proc)
    proc.send_signal(sig)
    err = _stopped(proc)
    assert f"--resume {run}" in err
    assert 20 <= stored_episodes(run) < N
    _finish(run, *GRID)
    _same(run, reference)


def test_interrupt_during_reports_and_a_second_ctrl_c(tmp_path, reference):
    run = tmp_path / "r"
    proc = _start(run, *GRID)
    _until(lambda: stored_episodes(run) >= N, proc)  # every episode stored: the process is in its reports
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # the impatient second Ctrl-C
    _stopped(proc)
    _finish(run, *GRID)
    _same(run, reference)


@pytest.mark.slow
def test_interrupt_during_model_load(tmp_path):
    pytest.importorskip("transformers")
    run = tmp_path / "r"
    argv = ["--values", "prosocial", "--goal", "off", "--orders", "fixed"]
    proc = _start(run, *argv)
    _until(lambda: (run / DB).is_file(), proc)  # claimed: the model loads next
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    _stopped(proc)
    assert stored_episodes(run) == 0
    _finish(run, *argv)
    assert stored_episodes(run) == 1
