"""Fault injection on the run store (runs/store.py), through real runner processes: SIGKILL at
random instants (the first 100 ms and report writing included) then resume; runners racing for one
run; deleted files; a flipped byte and a deleted row; conversion of a JSONL-store run. Every
wait is bounded."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from probes import stored_episodes

from runs.evaluate import main
from runs.report import main as report_main
from runs.store import DB, DECISIONS, EPISODES, RunStore
from runs.store import main as store_main

ROOT = Path(__file__).resolve().parents[1]
GRID = [
    "--agents", "scripted:random", "scripted:ideal:prosocial", "--goal", "both", "--orders", "fixed", "permuted",
    "--trials", "10", "--batch-size", "3", "--seed", "5", "--cache", "off",
]  # fmt: skip  # 320 episodes
N = 320
EXPORTS = (EPISODES, DECISIONS, "summary.json", "summary.csv", "summary.md")


def _cli(run_dir: Path, *argv: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "runs.evaluate", "--run-dir", str(run_dir), "--no-progress", *argv],
        cwd=run_dir.parent,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(run_dir: Path, n: int, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if stored_episodes(run_dir) >= n:
            return
        if proc.poll() is not None:
            raise AssertionError(f"run ended before {n} episodes: {proc.stderr.read()}")
        time.sleep(0.01)
    raise AssertionError("timed out")


def _resume(run_dir: Path) -> subprocess.CompletedProcess:
    """Finish a run after a kill: --resume if the kill left a run, else the same command again."""
    argv = ["--resume", str(run_dir)] if (run_dir / DB).exists() else ["--run-dir", str(run_dir), *GRID]
    return subprocess.run(
        [sys.executable, "-m", "runs.evaluate", *argv, "--no-progress"],
        cwd=run_dir.parent,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def _same_exports(a: Path, b: Path) -> None:
    for name in EXPORTS:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, float, float]:
    """An uninterrupted run, how long its process took and when its last episode was stored."""
    run = tmp_path_factory.mktemp("ref") / "full"
    t0 = time.time()
    proc = _cli(run, *GRID)
    _wait_for(run, N, proc, timeout=300)
    stored = time.time() - t0
    assert proc.wait(timeout=300) == 0, proc.stderr.read()
    return run, time.time() - t0, stored


@pytest.mark.slow
def test_sigkill_at_twenty_instants_then_resume_equals_uninterrupted(tmp_path, reference):
    """Four kills in the first 100 ms (interpreter start, imports), twelve while episodes are being
    stored (after a drawn number of them, so a busy machine cannot move them out of the run), four
    after the last episode (reports and exports being written)."""
    full, total, stored = reference
    rng = np.random.default_rng(2026)
    kills = [("at", t) for t in (0.005, 0.03, 0.06, 0.09)]
    kills += [("after", int(k)) for k in sorted(rng.integers(1, int(N * 0.9), 12))]
    kills += [("end", (total - stored) * f) for f in (0.05, 0.3, 0.6, 0.9)]
    mid_run = 0
    for k, (when, x) in enumerate(kills):
        run = tmp_path / f"k{k}"
        proc = _cli(run, *GRID)
        if when == "at":
            time.sleep(x)
        else:
            _wait_for(run, x if when == "after" else N, proc, timeout=300)
            time.sleep(x if when == "end" else 0)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        before = stored_episodes(run)
        r = _resume(run)
        assert r.returncode == 0, (when, x, r.stderr)
        mid_run += 0 < before < N
        _same_exports(run, full)
        store = RunStore.read(run)
        assert store.verify().damaged == {} and len(store.completed()) == N
        store.close()
        assert not list(tmp_path.glob(f".k{k}.creating-*")) or (run / DB).exists()
    assert mid_run >= 8  # the drawn kills landed with part of the episodes stored


def test_kill_during_report_writing_then_report_again(tmp_path, reference):
    full = reference[0]
    run = tmp_path / "r"
    proc = _cli(run, *GRID)
    _wait_for(run, N, proc)
    proc.send_signal(signal.SIGKILL)  # all episodes stored; exports and reports may be half written
    proc.wait(timeout=30)
    assert report_main([str(run), "--quiet"]) == 0
    _same_exports(run, full)


def test_two_runners_on_one_name_different_configs(tmp_path):
    run = tmp_path / "r"
    other = [("6" if x == "5" else x) for x in GRID]  # another seed: another config
    a, b = _cli(run, *GRID), _cli(run, *other)
    ra, rb = a.wait(timeout=300), b.wait(timeout=300)
    assert sorted([ra, rb]) == [0, 2], (a.stderr.read(), b.stderr.read())
    loser = (b if rb == 2 else a).stderr.read()
    assert "another runner" in loser or "different config" in loser
    store = RunStore.read(run)
    assert len(store.completed()) == N and store.verify().damaged == {}
    assert [s["outcome"]["new_episodes"] for s in store.sessions()] == [N]  # only one writer
    store.close()


def test_two_runners_on_one_name_same_config(tmp_path, reference):
    full = reference[0]
    run = tmp_path / "r"
    a, b = _cli(run, *GRID), _cli(run, *GRID)
    ra, rb = a.wait(timeout=300), b.wait(timeout=300)
    assert {ra, rb} <= {0, 2} and 0 in (ra, rb), (a.stderr.read(), b.stderr.read())
    store = RunStore.read(run)
    new = [s["outcome"]["new_episodes"] for s in store.sessions() if s["outcome"]]
    assert sorted(new)[-1] == N and sum(new) == N  # exactly one wrote; the other waited or was refused
    store.close()
    _same_exports(run, full)


def test_deleting_files_does_not_let_two_writers_in(tmp_path):
    run = tmp_path / "r"
    proc = _cli(run, *GRID)
    _wait_for(run, 5, proc)
    assert not list(run.glob("*.lock")) and not (run / ".lock").exists()  # no lock file to delete
    for f in run.iterdir():
        if not f.name.startswith(DB):
            f.unlink()
    second = _cli(run, *GRID)
    assert second.wait(timeout=120) == 2
    assert "another runner" in second.stderr.read()
    assert proc.wait(timeout=300) == 0
    store = RunStore.read(run)
    assert len(store.completed()) == N and store.verify().damaged == {}
    store.close()


def _finished(tmp_path: Path) -> Path:
    run = tmp_path / "r"
    assert main(["--run-dir", str(run), "--no-progress", *GRID]) == 0
    return run


def test_flipped_byte_is_detected_and_repair_keeps_every_intact_episode(tmp_path, reference, capsys):
    full = reference[0]
    run = _finished(tmp_path)
    data = bytearray((run / DB).read_bytes())
    at = data.find(b'"method":"ideal"')
    assert at > 0
    data[at + 11] ^= 0x01  # "ideal" -> "iee..": a record's content changes, the b-tree does not
    (run / DB).write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["--resume", str(run), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "cannot be proven whole" in err and "digest mismatch" in err and "runs.store repair" in err
    assert store_main(["verify", str(run)]) == 2
    assert store_main(["repair", str(run)]) == 0
    store = RunStore.read(run)
    assert len(store.completed()) == N - 1 and store.verify().damaged == {}
    store.close()
    assert list(run.glob(f"{DB}.damaged-*"))  # the damaged database is kept
    assert main(["--resume", str(run), "--no-progress"]) == 0
    _same_exports(run, full)


def test_repair_leaves_an_intact_store_untouched(tmp_path, capsys):
    run = _finished(tmp_path)

    def state() -> tuple[bytes, list[str]]:  # SQLite's -wal/-shm files come and go with any reader
        return (run / DB).read_bytes(), sorted(
            p.name for p in run.iterdir() if not p.name.endswith(("-wal", "-shm"))
        )

    before = state()
    assert store_main(["repair", str(run)]) == 0
    assert "nothing damaged (320 episode(s) intact)" in capsys.readouterr().out
    assert state() == before  # no damaged-* copy, the database not rewritten


def test_deleted_decision_row_is_detected_and_repaired(tmp_path, reference, capsys):
    full = reference[0]
    run = _finished(tmp_path)
    conn = sqlite3.connect(run / DB)
    key = conn.execute("SELECT key FROM episodes ORDER BY seq LIMIT 1 OFFSET 7").fetchone()[0]
    conn.execute("DELETE FROM decisions WHERE episode=? AND idx=2", (key,))
    conn.commit()
    conn.close()
    capsys.readouterr()
    assert main(["--resume", str(run), "--no-progress"]) == 2
    assert f"{key}: 5 decision rows for 6" in capsys.readouterr().err
    assert store_main(["repair", str(run)]) == 0
    assert main(["--resume", str(run), "--no-progress"]) == 0
    _same_exports(run, full)


def test_jsonl_store_run_is_refused_with_conversion_then_converted(tmp_path, reference, capsys):
    full = reference[0]
    run = _finished(tmp_path)
    for suffix in ("", "-wal", "-shm"):
        (run / f"{DB}{suffix}").unlink(missing_ok=True)
    capsys.readouterr()
    assert report_main([str(run)]) == 2
    assert f"python -m runs.store convert {run}" in capsys.readouterr().err
    assert store_main(["convert", str(run)]) == 0
    assert main(["--resume", str(run), "--no-progress"]) == 0
    assert (run / EPISODES).read_bytes() == (full / EPISODES).read_bytes()


def test_bad_run_directories_exit_2_and_write_nothing(tmp_path, capsys):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("mine")
    assert main(["--run-dir", str(tmp_path / "junk"), "--no-progress", *GRID]) == 2
    assert sorted(p.name for p in (tmp_path / "junk").iterdir()) == ["notes.txt"]
    assert report_main([str(tmp_path / "missing")]) == 2
    assert report_main([str(tmp_path / "junk")]) == 2
    assert main(["--resume", str(tmp_path / "missing"), "--no-progress"]) == 2
    assert not (tmp_path / "missing").exists()
    err = capsys.readouterr().err
    assert "not a run directory" in err and "no such directory" in err
