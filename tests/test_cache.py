"""agents.llm.cache: the response cache, call counter and budget guard in front of a fake backend."""

import time

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from agents.llm.backend import Backend, Generation, Sampling
from agents.llm.cache import (
    BudgetExceeded,
    BudgetGuard,
    CachedBackend,
    CountingBackend,
    ResponseStore,
    conversation_key,
)


class FakeBackend(Backend):
    """Deterministic replies from (messages, seed); counts every conversation it answers."""

    model_id = "fake-1"

    def __init__(self) -> None:
        self.seen = 0

    def generate(self, conversations, sampling):
        self.seen += len(conversations)
        return [
            Generation(
                f"reply {len(c)} {c[-1].content[:10]} seed={s.seed}", prompt_tokens=10, completion_tokens=3
            )
            for c, s in zip(conversations, sampling, strict=True)
        ]

    def choice_logprobs(self, conversations, choices):
        self.seen += len(conversations)
        return [{ch: -1.0 - i for i, ch in enumerate(choices)} for _ in conversations]


def _convs(n: int):
    return [[SystemMessage("be prosocial"), HumanMessage(f"item {i}: choose A-I")] for i in range(n)]


def test_second_identical_batch_makes_no_model_calls(tmp_path):
    inner = FakeBackend()
    counter = CountingBackend(inner)
    cached = CachedBackend(counter, ResponseStore(tmp_path / "r.sqlite"))
    samp = [Sampling(seed=i) for i in range(4)]
    first = cached.generate(_convs(4), samp)
    assert counter.stats.calls == 1 and counter.stats.conversations == 4
    assert counter.stats.tokens == 4 * 13
    again = cached.generate(_convs(4), samp)
    assert again == first
    assert counter.stats.conversations == 4 and inner.seen == 4
    assert (cached.hits, cached.misses) == (4, 4)


def test_cache_persists_across_processes_and_keys_on_sampling(tmp_path):
    path = tmp_path / "r.sqlite"
    CachedBackend(FakeBackend(), ResponseStore(path)).generate(_convs(2), [Sampling(seed=0)] * 2)
    inner = FakeBackend()
    cached = CachedBackend(inner, ResponseStore(path))
    cached.generate(_convs(2), [Sampling(seed=0)] * 2)
    assert inner.seen == 0  # a new store object on the same file: all hits
    cached.generate(_convs(2), [Sampling(seed=1)] * 2)  # another seed is another request
    cached.generate(_convs(2), [Sampling(seed=0, temperature=0.5)] * 2)
    assert inner.seen == 4
    # a partly cached batch sends only its misses, and keeps the batch order
    out = cached.generate(_convs(3), [Sampling(seed=0)] * 3)
    assert inner.seen == 5
    assert [g.text.split()[2] for g in out] == ["item", "item", "item"]


def test_logprob_cache_keys_on_choices_and_model(tmp_path):
    store = ResponseStore(tmp_path / "r.sqlite")
    inner = FakeBackend()
    cached = CachedBackend(inner, store)
    a = cached.choice_logprobs(_convs(2), list("ABC"))
    assert cached.choice_logprobs(_convs(2), list("ABC")) == a and inner.seen == 2
    cached.choice_logprobs(_convs(2), list("ABCD"))
    assert inner.seen == 4
    other = FakeBackend()
    other.model_id = "fake-2"
    CachedBackend(other, store).choice_logprobs(_convs(2), list("ABC"))
    assert other.seen == 2


def test_key_depends_on_message_role_and_text():
    s = Sampling().as_dict()
    k = conversation_key("m", "generate", [HumanMessage("hi")], s)
    assert k == conversation_key("m", "generate", [HumanMessage("hi")], s)
    assert k != conversation_key("m", "generate", [AIMessage("hi")], s)
    assert k != conversation_key("m", "generate", [HumanMessage("hi!")], s)
    assert k != conversation_key("m", "logprobs", [HumanMessage("hi")], s)


def test_budget_guard_refuses_before_the_call():
    inner = FakeBackend()
    guard = BudgetGuard(inner, max_calls=5)
    guard.generate(_convs(4), [Sampling()] * 4)
    with pytest.raises(BudgetExceeded, match="max_calls=5"):
        guard.generate(_convs(2), [Sampling()] * 2)
    assert inner.seen == 4  # the refused batch never reached the model
    guard.choice_logprobs(_convs(1), list("AB"))
    assert guard.stats.conversations == 5


def test_budget_guard_on_tokens_and_behind_the_cache(tmp_path):
    inner = FakeBackend()
    guard = BudgetGuard(inner, max_tokens=20)
    cached = CachedBackend(guard, ResponseStore(tmp_path / "r.sqlite"))
    cached.generate(_convs(2), [Sampling()] * 2)  # 26 tokens: the limit is reached after this call
    cached.generate(_convs(2), [Sampling()] * 2)  # cache hits cost nothing
    with pytest.raises(BudgetExceeded, match="max_tokens=20"):
        cached.generate(_convs(3), [Sampling()] * 3)
    assert inner.seen == 2
    with pytest.raises(ValueError):
        BudgetGuard(inner, max_calls=-1)


def test_repeats_within_a_batch_are_sent_once(tmp_path):
    inner = FakeBackend()
    cached = CachedBackend(inner, ResponseStore(tmp_path / "r.sqlite"))
    convs = _convs(2) + _convs(2)
    out = cached.generate(convs, [Sampling(seed=0)] * 4)
    assert inner.seen == 2 and (cached.hits, cached.misses) == (2, 2)
    assert out[0] == out[2] and out[1] == out[3]


class DropsBackend(FakeBackend):
    """A backend that also reports how many messages it dropped to fit its context."""

    def choice_logprobs_with_drops(self, conversations, choices):
        return [(lp, 1) for lp in self.choice_logprobs(conversations, choices)]


def test_detailed_logprobs_pass_through_every_wrapper(tmp_path):
    inner = DropsBackend()
    counter = CountingBackend(inner)
    cached = CachedBackend(BudgetGuard(counter, max_calls=2), ResponseStore(tmp_path / "r.sqlite"))
    first = cached.choice_logprobs_with_drops(_convs(2), list("AB"))
    assert [d for _, d in first] == [1, 1] and counter.stats.conversations == 2
    assert cached.choice_logprobs_with_drops(_convs(2), list("AB")) == first
    assert cached.choice_logprobs(_convs(2), list("AB")) == [lp for lp, _ in first]
    assert inner.seen == 2
    assert not hasattr(cached, "clear_cache")  # nothing reaches the model around the wrappers


def _open_and_write(path: str, i: int, start: float) -> dict:
    while time.time() < start:  # every process opens the brand-new file at the same instant
        pass
    store = ResponseStore(path)
    store.put_many({f"k{i}": i})
    return store.get_many([f"k{i}"])


def test_processes_creating_one_cache_at_once_all_succeed(tmp_path):
    """Pool workers and Ray actors share one cache file; SQLite refuses a concurrent journal-mode
    change without waiting ("database is locked"), which once failed a two-node Ray run."""
    import multiprocessing as mp

    with mp.get_context("fork").Pool(8) as pool:
        for rep in range(25):
            path, start = str(tmp_path / f"c{rep}.sqlite"), time.time() + 0.2
            got = [pool.apply_async(_open_and_write, (path, i, start)) for i in range(8)]
            assert [g.get(60) for g in got] == [{f"k{i}": i} for i in range(8)]
            assert len(ResponseStore(path)) == 8
