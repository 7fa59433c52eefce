"""Declared Backend capabilities (no getattr probes): dropped-message counts and reproducibility claims.

- `choice_logprobs_with_drops` is declared on Backend (default: the count is None); the cache,
  counter and guard pass the real count through, from the model and from the cache, so a logprob
  record behind the wrappers shows it (it showed None before).
- `reproducibility()` is declared on Backend (default: not reproducible, reason unknown); each
  backend states its own claim and the wrappers pass it on. The embedded model's claim is tested
  in test_local_backend.py (slow) and the server's in test_llm_server.py.
"""

from __future__ import annotations

import gymnasium as gym
import pytest
from langchain_core.messages import HumanMessage, SystemMessage

import envs  # noqa: F401  (registers the ids)
from agents.base import EpisodeContext
from agents.llm import GoalPromptedPolicy, make_backend
from agents.llm.backend import Backend, Generation, Reproducibility
from agents.llm.cache import BudgetGuard, CachedBackend, CountingBackend, ResponseStore
from runs.rollout import single as run_episodes


class Plain(Backend):
    """Declares nothing beyond the two abstract methods."""

    model_id = "plain"

    def generate(self, conversations, sampling):
        return [Generation("A") for _ in conversations]

    def choice_logprobs(self, conversations, choices):
        return [{c: -1.0 - i for i, c in enumerate(choices)} for _ in conversations]


class Dropping(Plain):
    """Reports dropping one message per 4 in the conversation; declares itself reproducible."""

    model_id = "dropping"

    def __init__(self) -> None:
        self.seen = 0

    def choice_logprobs_with_drops(self, conversations, choices):
        self.seen += len(conversations)
        return [
            (lp, len(c) // 4)
            for lp, c in zip(self.choice_logprobs(conversations, choices), conversations, strict=True)
        ]

    def reproducibility(self) -> Reproducibility:
        return Reproducibility(True, "a deterministic test double")


def _convs(lengths):
    return [[SystemMessage("s")] + [HumanMessage(f"m{k}") for k in range(n - 1)] for n in lengths]


def test_the_base_class_declares_defaults():
    b = Plain()
    assert b.choice_logprobs_with_drops(_convs([2]), list("AB")) == [({"A": -1.0, "B": -2.0}, None)]
    r = b.reproducibility()
    assert r == (False, "unknown: this backend does not declare it") and not r.reproducible
    d = b.describe()
    assert d["reproducible"] is False and d["reproducibility"].startswith("unknown")


def test_wrappers_pass_drop_counts_through_from_the_model_and_from_the_cache(tmp_path):
    inner = Dropping()
    store = ResponseStore(tmp_path / "r.sqlite")
    cached = CachedBackend(BudgetGuard(CountingBackend(inner), max_calls=10), store)
    convs = _convs([4, 9, 2])
    first = cached.choice_logprobs_with_drops(convs, list("AB"))
    assert [d for _, d in first] == [1, 2, 0]
    again = CachedBackend(BudgetGuard(Dropping(), max_calls=0), store)  # answers only from the cache
    assert again.choice_logprobs_with_drops(convs, list("AB")) == first and inner.seen == 3
    # a backend that does not know the count says so: None, not 0
    assert [d for _, d in CachedBackend(Plain(), store).choice_logprobs_with_drops(convs, list("AB"))] == [
        None
    ] * 3


def test_wrappers_pass_the_reproducibility_claim_on(tmp_path):
    wrapped = CachedBackend(BudgetGuard(Dropping()), ResponseStore(tmp_path / "r.sqlite"))
    assert wrapped.reproducibility() == (True, "a deterministic test double")
    assert wrapped.describe()["reproducible"] is True
    assert CountingBackend(Plain()).reproducibility().reproducible is False


def test_policy_logprob_records_show_drop_counts_behind_the_cache(tmp_path):
    """The run's stack (cache over guard over backend): every logprob record carries an int count."""
    store = ResponseStore(tmp_path / "r.sqlite")

    def episode(inner):
        backend = CachedBackend(BudgetGuard(inner, max_calls=100), store)
        policy = GoalPromptedPolicy(backend=backend, mode="logprob", induction_tokens=8)
        c = EpisodeContext("slider", 6, 9, seed=3, value="prosocial", goal_prompt=False)
        (res,) = run_episodes(policy, [gym.make("SVO/Slider-v0").unwrapped], [c])
        return [d.record["dropped_messages"] for d in res.decisions]

    inner = Dropping()
    first = episode(inner)
    assert all(isinstance(d, int) for d in first) and first[-1] > first[0]
    assert episode(Dropping()) == first  # replayed from the cache, counts included


def test_chat_backends_declare_their_claims(monkeypatch):
    fake = make_backend("fake:A")
    assert fake.reproducibility().reproducible and "scripted" in fake.reproducibility().reason
    server = make_backend("openai-compatible:m@http://127.0.0.1:9/v1", dummy_key=True)
    r = server.reproducibility()
    assert not r.reproducible and "best-effort" in r.reason and "http://127.0.0.1:9/v1" in r.reason
    assert server.describe()["reproducible"] is False
    declared = make_backend("openai-compatible:m@http://127.0.0.1:9/v1", dummy_key=True, reproducible=True)
    assert declared.reproducibility() == (True, "declared reproducible by the user; not verified here")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-real")
    assert not make_backend("openai:gpt-4o-mini").reproducibility().reproducible


@pytest.mark.parametrize(
    ("dtype", "device", "claim", "words"),
    [
        ("float32", "cpu", True, "batch layouts"),
        ("bfloat16", "cpu", False, "resumed run"),
        ("float32", "cuda", False, "not shown"),
        ("bfloat16", "cuda", False, "not shown"),
    ],
)
def test_local_backend_claim_follows_dtype_and_device(dtype, device, claim, words):
    from agents.llm.local import LocalBackend

    b = LocalBackend.__new__(LocalBackend)  # the claim reads only the load info: no model needed
    b.info = {"dtype": dtype, "device": device}
    r = b.reproducibility()
    assert r.reproducible is claim and words in r.reason and dtype in r.reason


@pytest.mark.slow
def test_embedded_claim_holds_identical_calls_repeat():
    """The embedded model (float32, CPU) claims reproducibility: identical calls give identical texts
    and log-probs, from a cold prefix cache exactly, and with prefix reuse to within 1e-4."""
    from agents.llm.backend import Sampling

    backend = make_backend("embedded", device="cpu", dtype="float32")
    assert backend.reproducibility().reproducible
    convs = [
        [HumanMessage(f"Do you know the {v} value system? Describe such a person in one sentence.")]
        for v in ("prosocial", "competitive")
    ]
    samp = [Sampling(temperature=1.0, top_p=0.95, max_new_tokens=12, seed=s) for s in (5, 6)]
    items = [
        c + [HumanMessage("Option A: 85 for you, 85 for the other. Option B: 100/50. A or B?")] for c in convs
    ]

    def once():
        texts = [g.text for g in backend.generate(convs, samp)]
        return texts, backend.choice_logprobs(items, ["A", "B"])

    backend.clear_cache()
    texts, lps = once()
    assert all(t.strip() for t in texts)
    backend.clear_cache()
    assert once() == (texts, lps)  # the same computation: bit-identical
    reused_texts, reused_lps = once()  # now served partly from the prefix cache
    assert reused_texts == texts
    for a, b in zip(reused_lps, lps, strict=True):
        assert max(abs(a[k] - b[k]) for k in a) < 1e-4
