"""The runner's edges: a budget is state (it holds across any number of resumes, stops cleanly with
exit status 3, can be raised on a resume, and every change is recorded); timeouts and retries set on
the command line are honoured against a server that hangs; the manifest's reproducibility claim
comes from each backend; every start of a run is in its history. Servers run on 127.0.0.1 and
every wait is bounded."""

from __future__ import annotations

import json
import time
from pathlib import Path

from runs.evaluate import main
from runs.store import RunStore
from tests.test_llm_faults import FaultServer

FAKE = "llm:fake:C"


def _run(run: Path, *argv: str) -> int:
    return main(["--run-dir", str(run), "--no-progress", "--cache", "off", *argv])


def _manifest(run: Path) -> dict:
    return json.loads((run / "manifest.json").read_text())


def test_a_budget_of_five_calls_holds_across_any_number_of_resumes(tmp_path, capsys):
    run = tmp_path / "r"
    argv = ["--agents", FAKE, "--values", "prosocial", "competitive", "--goal", "on", "--orders", "fixed",
            "--mode", "generate", "--batch-size", "1", "--max-calls", "5"]  # fmt: skip
    assert _run(run, *argv) == 3  # exit status 3: budget reached, finished episodes kept
    assert "budget.max_calls=5" in capsys.readouterr().err
    for _ in range(6):
        assert main(["--resume", str(run), "--no-progress", "--cache", "off"]) == 3
    store = RunStore.read(run)
    calls, _ = store.spent(FAKE)
    made = sum(s["outcome"]["model_calls"] for s in store.sessions() if s["outcome"])
    store.close()
    assert calls <= 5 and made <= 5, (calls, made)
    assert _manifest(run)["config"]["budget"]["max_calls"] == 5
    # raising the limit on a resume finishes the run; the change is recorded
    assert main(["--resume", str(run), "--no-progress", "--cache", "off", "--max-calls", "100"]) == 0
    m = _manifest(run)
    assert [h["max_calls"] for h in m["budget_history"]] == [5, 100]
    store = RunStore.read(run)
    # the 5 calls of the stopped episode count (with the cache off they are made again), then
    # 2 episodes x (induction + goal + 6 items)
    assert store.spent(FAKE)[0] == 5 + 2 * 8 and len(store.completed()) == 2
    store.close()
    assert len(m["sessions"]) == 8 and all(s["ended"] for s in m["sessions"])


def test_a_hung_server_gives_up_within_timeout_times_attempts_plus_backoff(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key-not-a-secret-0123")
    with FaultServer("hang") as server:
        spec = f"llm:openai-compatible:m@{server.url}"
        run = tmp_path / "r"
        t0 = time.monotonic()
        code = _run(run, "--agents", spec, "--values", "prosocial", "--goal", "off", "--orders", "fixed",
                    "--timeout", "1", "--retries", "2", "--set", "llm.backend_options.backoff_s=0.1")  # fmt: skip
        took = time.monotonic() - t0
        err = capsys.readouterr().err
    assert code == 1, err
    assert server.requests == 3  # retries + 1 attempts
    assert took < 3 * 1.0 + (0.1 + 0.2) + 15.0  # attempts x timeout + backoff, generous for a loaded machine
    assert server.url in err and "sk-test-key-not-a-secret-0123" not in err
    assert "--resume" in err


def test_reproducibility_claims_come_from_each_backend(tmp_path):
    run = tmp_path / "r"
    assert (
        _run(
            run,
            "--agents",
            FAKE,
            "scripted:random",
            "--values",
            "prosocial",
            "--goal",
            "off",
            "--orders",
            "fixed",
            "--mode",
            "generate",
        )
        == 0
    )
    claims = _manifest(run)["reproducible"]
    assert claims[FAKE]["reproducible"] is True and "scripted replies" in claims[FAKE]["reason"]
    assert claims["scripted:random"] == {
        "reproducible": True,
        "reason": "scripted: seeded by the episode seed",
    }
    run2 = tmp_path / "server"
    spec = "llm:openai-compatible:m@http://127.0.0.1:9/v1?dummy_key=1"
    assert (
        _run(
            run2,
            "--agents",
            spec,
            "--values",
            "prosocial",
            "--goal",
            "off",
            "--orders",
            "fixed",
            "--retries",
            "0",
        )
        == 1
    )
    claim = _manifest(run2)["reproducible"][spec]
    assert claim["reproducible"] is False and claim["reason"]


def test_every_start_is_in_the_history_even_a_killed_one(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    run = tmp_path / "r"
    argv = [
        "--agents",
        "scripted:random",
        "--trials",
        "40",
        "--orders",
        "fixed",
        "permuted",
        "--cache",
        "off",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "runs.evaluate", "--run-dir", str(run), "--no-progress", *argv],
        env={**os.environ, "PYTHONPATH": str(root)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    t0 = time.time()
    while not (run / "run.sqlite").exists() and time.time() - t0 < 60:
        time.sleep(0.01)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert main(["--resume", str(run), "--no-progress"]) == 0
    sessions = _manifest(run)["sessions"]
    assert [s["session"] for s in sessions] == [1, 2]
    assert sessions[0]["ended"] is None and sessions[1]["ended"] is not None  # the killed start is visible
