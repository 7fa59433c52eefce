"""executor: ray on a real two-node Ray cluster (issue 14's acceptance test).

tests/ray_cluster.py runs inside `unshare -n -p -f --mount-proc` (a network namespace with only
loopback, so every Ray address is 127.0.0.1, never the machine's interface; and a PID namespace, so
`ray stop --force` sees only the cluster started there and nothing survives the namespace). It
starts a head and a second node with 1 CPU each, runs a slider grid and a dilemma scenario on the
embedded model through `--ray-address`, and a third run in which one actor's worker process is
SIGKILLed mid-run. Here the records are compared with local-executor runs of the same configs
(equal, byte for byte: float32, one thread), and the killed run must be complete: every planned
episode once, every record whole. Every wait is bounded.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from runs.store import DECISIONS, EPISODES, RunStore

pytestmark = [pytest.mark.slow, pytest.mark.ray]

ROOT = Path(__file__).resolve().parents[1]
SHORT = [
    "--set",
    "llm.options={induction_tokens: 24, goal_tokens: 16}",
]  # shorter setup replies: a small test
SLIDER = [
    "--agents", "llm:embedded", "--values", "prosocial", "competitive", "--goal", "on",
    "--orders", "fixed", "reversed", "--cache", "run", "--batch-size", "1", *SHORT,
]  # fmt: skip  # 4 episodes in 2 units (one per value: a unit is up to 2 batches), 2 batches each
SCENARIO = [
    "--scenario", "prisoners_dilemma", "--agents", "*=llm:embedded", "--values", "prosocial", "competitive",
    "--cache", "run", "--batch-size", "1", *SHORT,
]  # fmt: skip  # 4 episodes in 2 units
KILL = SLIDER  # a unit's two episodes in two batches: one is written before the kill


def _usable() -> str | None:
    if shutil.which("unshare") is None or shutil.which("ip") is None or shutil.which("ray") is None:
        return "needs unshare, ip and the ray command"
    r = subprocess.run(["unshare", "-n", "-p", "-f", "--mount-proc", "true"], capture_output=True, timeout=30)
    return None if r.returncode == 0 else f"unshare -n -p cannot run here: {r.stderr.decode()[-200:]}"


def _local(run: Path, args: list[str]) -> None:
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "runs.evaluate",
            "--run-dir",
            str(run),
            "--no-progress",
            "--workers",
            "1",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=1200,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert r.returncode == 0, r.stderr[-3000:]


def _mine(tag: str) -> list[str]:
    """Processes anywhere on the machine whose command line names this test's Ray directory."""
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if tag in cmd:
            out.append(f"{pid}: {cmd[:160]}")
    return out


def test_two_node_cluster_matches_local_and_survives_a_killed_actor(tmp_path):
    pytest.importorskip("ray")
    pytest.importorskip("torch")
    why = _usable()
    if why:
        pytest.skip(why)
    ray_tmp = Path(tempfile.mkdtemp(prefix="svo-ray-", dir="/tmp"))  # short: Ray's socket paths
    spec = {
        "runs": {"slider": SLIDER, "scenario": SCENARIO},
        "kill": KILL,
        "kill_value": "prosocial",
    }
    try:
        r = subprocess.run(
            [
                "unshare",
                "-n",
                "-p",
                "-f",
                "--mount-proc",
                sys.executable,
                str(ROOT / "tests" / "ray_cluster.py"),
                str(tmp_path),
                json.dumps(spec),
            ],  # fmt: skip
            capture_output=True,
            text=True,
            timeout=3600,
            env={
                **os.environ,
                "PYTHONPATH": str(ROOT),
                "RAY_TMPDIR": str(ray_tmp),
                # the cluster's own token (Ray's token authentication), known to every process in
                # the namespace and nowhere else; ~/.ray is not touched
                "RAY_AUTH_MODE": "token",
                "RAY_AUTH_TOKEN": secrets.token_hex(32),
            },
        )
        assert r.returncode == 0, r.stderr[-4000:]
        report = json.loads(r.stdout.strip().splitlines()[-1])
        # the cluster it started is stopped, and nothing of it is left on the machine
        assert report["stop"]["exit"] == 0 and report["stop"]["left"] == [], report["stop"]
        assert _mine(str(ray_tmp)) == []
        for name in ("slider", "scenario"):
            assert report["runs"][name]["exit"] == 0, report["runs"][name]["stderr"]
            ex = RunStore.read(tmp_path / name).meta("execution")
            assert ex["executor"] == "ray" and ex["nodes"] == 2 and ex["cpu_actors"] == 2, ex
        # the same records as the local executor, byte for byte
        _local(tmp_path / "slider-local", SLIDER)
        _local(tmp_path / "scenario-local", SCENARIO)
        for name in ("slider", "scenario"):
            for f in (EPISODES, DECISIONS):
                assert (tmp_path / name / f).read_bytes() == (tmp_path / f"{name}-local" / f).read_bytes(), (
                    name,
                    f,
                )
        # the killed actor: the run completed, every planned episode exactly once, every record whole
        kill = report["kill"]
        assert kill["exit"] == 0, kill["stderr"]
        store = RunStore.read(tmp_path / "killed")
        ex = store.meta("execution")
        assert any(str(kill["pid"]) in lost for lost in ex["lost"]), ex
        v = store.verify()
        assert v.integrity == "ok" and not v.damaged and v.episodes == 4
        keys = [json.loads(x)["key"] for x in (tmp_path / "killed" / EPISODES).read_text().splitlines()]
        ref = [json.loads(x)["key"] for x in (tmp_path / "slider-local" / EPISODES).read_text().splitlines()]
        assert keys == ref  # none missing, none twice
        assert 1 <= len(kill["written_before"]) < 4  # killed mid-run, with a unit half written
        # the choices agree with the uninterrupted local run (the rescheduled episode's log-probs may
        # differ in float rounding: its worker's prefix cache and response cache differ)
        ch = [json.loads(x)["choices"] for x in (tmp_path / "killed" / EPISODES).read_text().splitlines()]
        ch_ref = [
            json.loads(x)["choices"] for x in (tmp_path / "slider-local" / EPISODES).read_text().splitlines()
        ]
        assert ch == ch_ref
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
