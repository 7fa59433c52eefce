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


def _converting_entry() -> int:
    """An entry whose library turns the KeyboardInterrupt into its own error (as pydantic-core did
    while building a schema during start-up imports)."""
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    except KeyboardInterrupt:
        raise ValueError("Error building `model` serializer: KeyboardInterrupt") from None
    return 0


def test_an_interrupt_a_library_turned_into_its_own_error_is_still_an_interrupt():
    # the runner, in this process: exit 130, and the signal handlers are put back
    from runs.runner import _interruptible

    before = [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)]
    assert _interruptible(_converting_entry) == 130
    assert [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)] == before
    # an error without an interrupt stays an error
    with pytest.raises(ValueError, match="plain"):
        _interruptible(lambda: (_ for _ in ()).throw(ValueError("plain")))
    # the command line's entry (it holds signals until exit, so in its own process)
    code = "import sys, test_signals; from runs.evaluate import cli; sys.exit(cli(test_signals._converting_entry))"
    r = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (r.returncode, "Traceback" in r.stderr) == (130, False), r.stderr[-2000:]
    assert "interrupted" in r.stderr


def test_an_interrupt_ends_with_130_even_when_cpython_kept_an_unhandled_interrupt_flag(tmp_path):
    """A KeyboardInterrupt raised in module code that C runs (PyRun_*) during start-up imports
    leaves CPython's unhandled-interrupt flag set; at exit CPython then kills the process by
    SIGINT (status -2) although the interrupt was handled, wherever a thread does not block it.
    Here the flag is set on purpose, then a real run is interrupted through
    `python -m runs.evaluate`'s own entry."""
    run = tmp_path / "r"
    grid = [*GRID]
    grid[grid.index("--trials") + 1] = "400"  # still running when the signal comes
    (tmp_path / "flagged.py").write_text(
        "import ctypes, os, runpy, signal, sys, threading\n"
        "def interrupt():  # once the run is under way (imports done: a later PyRun_* resets the flag)\n"
        "    ctypes.pythonapi.PyRun_SimpleString(b'raise KeyboardInterrupt')  # sets the flag\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "threading.Timer(1.5, interrupt).start()\n"
        "# a thread that does not block signals (libraries start such threads: BLAS pools, Ray...)\n"
        f"threading.Thread(target=signal.sigwait, args=({{signal.SIGUSR1}},), daemon=True).start()\n"
        f"sys.argv = ['runs.evaluate', '--run-dir', {str(run)!r}, '--no-progress', *{grid!r}]\n"
        "runpy.run_module('runs.evaluate', run_name='__main__', alter_sys=True)\n"
    )
    r = subprocess.run(
        [sys.executable, "-m", "flagged"],
        cwd=tmp_path,
        env={
            **os.environ,
            "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}",
            "SVO_CACHE_DIR": str(tmp_path / ".c"),
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 130, (r.returncode, r.stderr[-2000:])
    assert "interrupted" in r.stderr
