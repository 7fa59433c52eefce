"""Local backend: batched == unbatched, prefix reuse == none, seeded sampling, the KV store.

Most tests run a random-weight tiny Llama built from a config (fast, no weights); the slow ones load
the embedded SmolLM2 GGUF.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage  # noqa: E402

from agents.llm._engine import PrefixCachingEngine, RowSampling  # noqa: E402
from agents.llm._kvstore import BLOCK, GROWTH, WINDOW, PrefixKVStore  # noqa: E402
from agents.llm.backend import BackendError, Sampling  # noqa: E402
from agents.llm.local import LocalBackend, embedded_model_path  # noqa: E402

TOL = 1e-4
LETTERS = list("ABCDEFGHI")


def tiny_llama(vocab: int = 300, seed: int = 0) -> object:
    torch.manual_seed(seed)
    cfg = transformers.LlamaConfig(
        vocab_size=vocab,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        attn_implementation="sdpa",
    )
    return transformers.LlamaForCausalLM(cfg).eval()


@pytest.fixture(scope="module")
def model():
    return tiny_llama()


@pytest.fixture(scope="module")
def rows():
    rng = np.random.default_rng(0)
    base = rng.integers(3, 300, 40)
    out = [np.concatenate([base, rng.integers(3, 300, int(rng.integers(3, 30)))]) for _ in range(7)]
    out.append(rng.integers(3, 300, 12))  # no shared prefix
    out.append(out[0].copy())  # exact duplicate
    return out


def reference_logprobs(model, row) -> np.ndarray:
    with torch.no_grad():
        logits = model(torch.as_tensor(row)[None]).logits[0, -1].float()
    return torch.log_softmax(logits, -1).double().numpy()


def extend(rows, rng, n=10):
    return [np.concatenate([r, rng.integers(3, 300, n)]) for r in rows]


# --------------------------------------------------------------------------- KV store
def seq(*blocks: int, extra: tuple[int, ...] = ()) -> np.ndarray:
    """Token ids made of whole 16-token blocks (block value v -> 16 x v) plus `extra` tokens."""
    return np.array([v for b in blocks for v in [b] * BLOCK] + list(extra), dtype=np.int64)


def test_store_longest_prefix_supersede_and_cap():
    store = PrefixKVStore(max_bytes=100)
    a = seq(1, 2, 3, 4)
    store.put(a, "kv-a", 40)
    entry, n = store.longest_prefix(seq(1, 2, extra=(3, 3, 9)), limit=100)
    assert entry.kv == "kv-a" and n == 2 * BLOCK + 2  # exact common prefix, not only whole blocks
    _, n = store.longest_prefix(seq(1, 2, 3, 4, 5), limit=50)
    assert n == 50  # capped by the limit (at least one token must stay new)
    assert store.longest_prefix(seq(7, 1), limit=100) == (None, 0)
    store.release()
    # a longer sequence with `a` as prefix replaces it
    assert store.put(seq(1, 2, 3, 4, 5, 6), "kv-b", 60)
    assert len(store) == 1 and store.bytes == 60
    store.release()  # each put below is a call of its own
    # redundant: already covered
    assert not store.put(seq(1, 2, 3), "kv-c", 30)
    store.release()
    # eviction: one-shot entries first (kv-d), though kv-b, which continues a conversation (it
    # extended kv-a), is older
    assert store.put(seq(8, 8), "kv-d", 40)
    store.release()
    assert len(store) == 2 and store.bytes == 100
    assert store.put(seq(9, 9), "kv-e", 30)
    store.release()
    assert store.bytes <= 100 and store.evictions == 1
    assert store.longest_prefix(seq(8, 8), limit=100) == (None, 0)  # kv-d was evicted
    assert store.longest_prefix(seq(1, 2, 3), limit=100)[0].kv == "kv-b"
    store.release()
    # a conversation goes too when the one-shot entries do not free enough
    assert store.put(seq(10, 10), "kv-f", 50, continues=True)
    assert store.evictions == 3 and len(store) == 1 and store._entries[store._next_key].lasting
    assert store.longest_prefix(seq(1, 2, 3), limit=100) == (None, 0)  # kv-b was evicted


def test_store_protects_entries_used_in_the_current_call():
    store = PrefixKVStore(max_bytes=100)
    store.put(seq(1, 2, 3), "a", 60)
    store.release()
    store.longest_prefix(seq(1, 2, 3, 4), limit=100)  # protected until release()
    big = GROWTH * 100 - 10
    assert not store.put(seq(5, 6), "b", big)  # would need to evict "a" (the cap grows GROWTH x at most)
    assert store.rejected == 1 and len(store) == 1
    store.release()
    assert store.put(seq(5, 6), "b", big)
    assert len(store) == 1


def test_store_discard_frees_now_but_keeps_the_calls_working_set():
    """Ragged decoding takes a conversation's entry out once its prefill has read it: the memory
    goes at once, but the cap still counts it for this call, up to max_bytes per call (headroom
    beyond the conversations for the one-shot prompts that the next rounds reuse)."""
    store = PrefixKVStore(max_bytes=100)
    store.put(seq(1, 2), "a", 80)
    store.put(seq(3, 4), "c", 70)
    store.release()
    a, _ = store.longest_prefix(seq(1, 2, 3), limit=100)
    c, _ = store.longest_prefix(seq(3, 4, 5), limit=100)
    store.discard(a.key)
    store.discard(a.key)  # gone already: nothing happens
    store.discard(c.key)
    assert store.bytes == 0 and len(store) == 0
    assert store.put(seq(1, 2, 3), "b", 90)
    store.release()
    assert store.cap == 190 + 190 // 8  # 90 new + 100 of the 150 discarded


def test_store_keeps_the_conversations_in_use_whole_and_evicts_finished_ones():
    """Conversations stepped together that outgrow max_bytes stay whole (evicting one would only
    recompute it next call); a one-shot prompt does not evict them; finished ones go."""
    store = PrefixKVStore(max_bytes=100)
    convs = [seq(10 + i) for i in range(4)]
    for c in convs:
        assert store.put(c, "kv", 30)
    store.release()
    for step in range(3):  # each call looks every conversation up and stores its extension
        for c in convs:
            assert store.longest_prefix(c, limit=len(c))[1] == len(c)
        convs = [np.concatenate([c, seq(50 + step)]) for c in convs]
        for c in convs:
            assert store.put(c, "kv", 30 + 10 * (step + 1))
        store.release()
        assert len(store) == 4 and store.bytes == 4 * (40 + 10 * step) and store.evictions == 0
    assert store.cap == 270  # 9/8 of the last working set
    assert store.put(seq(99), "one-shot", 20)
    store.release()
    assert store.evictions == 0
    for c in convs:
        assert store.longest_prefix(c, limit=len(c))[1] == len(c)
    store.release()
    new = [seq(20 + i) for i in range(4)]  # the next conversations push the finished ones out
    for step in range(3):
        for c in new:
            store.longest_prefix(c, limit=len(c))
        new = [np.concatenate([c, seq(60 + step)]) for c in new]
        for c in new:
            assert store.put(c, "kv", 30 + 10 * (step + 1))
        store.release()
        assert store.bytes <= store.cap <= GROWTH * store.max_bytes
    assert all(store.longest_prefix(c, limit=len(c))[1] == len(c) for c in new)
    assert not any(store.longest_prefix(c, limit=len(c))[1] for c in convs)


def test_store_put_compares_few_entries_whatever_the_store_holds(monkeypatch):
    """Storing a conversation's next step must not compare it with every entry sharing its first
    block (that made each engine step quadratic in the rows: 65,792 comparisons for 256 rows)."""
    from agents.llm import _kvstore

    store = PrefixKVStore(1 << 30)
    rows = [seq(1, 2, 100 + i) for i in range(300)]  # 300 conversations sharing 2 blocks
    for r in rows:
        assert store.put(r, "kv", 1)
    calls = []
    real = _kvstore.common_prefix_len
    monkeypatch.setattr(_kvstore, "common_prefix_len", lambda a, b: calls.append(1) or real(a, b))
    longer = np.concatenate([rows[7], seq(9, extra=(5,))])
    assert store.put(longer, "kv2", 1)
    assert len(calls) <= 2 and len(store) == 300  # rows[7] is superseded by its extension
    assert store.longest_prefix(rows[7], limit=10_000)[1] == len(rows[7])
    assert not store.put(rows[7], "kv", 1)  # covered by the extension
    short = np.array([1, 2, 3])
    assert store.put(short, "s", 1) and store.put(np.array([1, 2, 3, 4]), "s2", 1)
    assert len(store) == 301  # the 3-token entry was superseded (entries shorter than a block too)


def test_store_evicts_a_re_asks_earlier_reply_before_a_live_conversation():
    """Two conversations; the second is re-asked (its prompt answered again, differently). When room
    is needed, the earlier reply (a dead branch) goes, not the first conversation, although that
    one was touched longer ago."""
    store = PrefixKVStore(max_bytes=130)
    live = seq(1, 2, 3, extra=(7,))
    first = seq(4, 5, 6, extra=(8,))  # conversation 2: prompt 4 5 6, first reply 8
    assert store.put(live, "live", 40) and store.put(first, "first", 40)
    store.release()
    second = seq(4, 5, 6, extra=(9,))  # the same prompt answered again
    assert store.longest_prefix(second, limit=len(second) - 1)[1] == len(second) - 1
    assert store.put(second, "second", 40)
    store.release()
    for _ in range(WINDOW):  # let the cap shrink back to max_bytes
        store.release()
    assert len(store) == 3
    assert store.put(seq(11), "new", 20) and store.evictions == 1
    assert store.longest_prefix(live, limit=len(live))[1] == len(live)
    assert store.longest_prefix(first, limit=len(first))[1] == len(first) - 1  # via `second` only


# --------------------------------------------------------------------------- engine (tiny model)
@pytest.mark.parametrize("prefix_cache", [False, True])
@pytest.mark.parametrize("max_batch_tokens", [60, 100_000])
def test_end_logprobs_match_full_forward(model, rows, prefix_cache, max_batch_tokens):
    engine = PrefixCachingEngine(model, max_batch_tokens=max_batch_tokens, prefix_cache=prefix_cache)
    read = list(range(300))
    rng = np.random.default_rng(1)
    for _ in range(3):  # grow the conversations: later calls reuse earlier prefixes
        got = engine.end_logprobs(rows, read)
        want = np.stack([reference_logprobs(model, r) for r in rows])
        assert np.abs(got - want).max() < 1e-5
        rows = extend(rows, rng)
    stats = engine.stats
    assert stats.prompt_tokens == stats.computed_tokens + stats.reused_tokens + stats.deduplicated_tokens
    if prefix_cache:
        assert stats.reused_tokens > stats.computed_tokens  # most of each call was cached
    else:
        assert stats.reused_tokens == 0


def test_batched_equals_one_at_a_time(model, rows):
    batched = PrefixCachingEngine(model, max_batch_tokens=100_000).end_logprobs(rows, range(300))
    single = PrefixCachingEngine(model, max_batch_tokens=100_000, prefix_cache=False)
    alone = np.concatenate([single.end_logprobs([r], range(300)) for r in rows])
    assert np.abs(batched - alone).max() < 1e-5
    assert (batched.argmax(1) == alone.argmax(1)).all()


def test_tiny_cache_cap_changes_speed_not_results(model, rows):
    rng = np.random.default_rng(2)
    big = PrefixCachingEngine(model, max_batch_tokens=100_000)
    small = PrefixCachingEngine(model, max_batch_tokens=100_000, max_cache_bytes=60 * big.kv_bytes_per_token)
    for _ in range(3):
        assert np.abs(big.end_logprobs(rows, range(300)) - small.end_logprobs(rows, range(300))).max() < 1e-5
        assert small.store.bytes <= small.store.cap <= GROWTH * small.store.max_bytes
        rows = extend(rows, rng)
    assert small.stats.computed_tokens > big.stats.computed_tokens


@pytest.mark.parametrize("ragged", [False, True])
@pytest.mark.parametrize("prefix_cache", [False, True])
def test_greedy_generate_batched_equals_alone_and_hf_generate(model, rows, prefix_cache, ragged):
    samp = [RowSampling(temperature=0.0, max_new_tokens=8 + i, seed=i) for i in range(len(rows))]
    engine = PrefixCachingEngine(
        model, max_batch_tokens=100_000, prefix_cache=prefix_cache, ragged_decode=ragged
    )
    batched = engine.generate(rows, samp, eos_ids=[2])
    alone_engine = PrefixCachingEngine(model, max_batch_tokens=100_000, prefix_cache=False)
    alone = [alone_engine.generate([r], [s], eos_ids=[2])[0] for r, s in zip(rows, samp, strict=True)]
    assert batched == alone
    with torch.no_grad():
        hf = [
            model.generate(
                torch.as_tensor(r)[None],
                max_new_tokens=s.max_new_tokens,
                do_sample=False,
                eos_token_id=2,
                pad_token_id=0,
            )[0, len(r) :].tolist()
            for r, s in zip(rows, samp, strict=True)
        ]
    assert batched == [[t for t in h if t != 2] for h in hf]
    assert [len(b) for b in batched] == [s.max_new_tokens for s in samp] or any(2 in h for h in hf)


@pytest.mark.parametrize("ragged", [False, True])
@pytest.mark.parametrize("top_p", [0.9, 1.0])
def test_sampling_is_seeded_per_row_and_independent_of_batching(model, rows, top_p, ragged):
    samp = [
        RowSampling(temperature=1.0, top_p=top_p, max_new_tokens=10, seed=100 + i) for i in range(len(rows))
    ]
    engine = PrefixCachingEngine(model, max_batch_tokens=100_000, ragged_decode=ragged)
    batched = engine.generate(rows, samp, eos_ids=[2])
    again = PrefixCachingEngine(model, max_batch_tokens=150, ragged_decode=not ragged).generate(
        rows, samp, eos_ids=[2]
    )
    alone = [
        PrefixCachingEngine(model, max_batch_tokens=100_000).generate([r], [s], eos_ids=[2])[0]
        for r, s in zip(rows, samp, strict=True)
    ]
    assert batched == again == alone
    # the duplicate row (same prompt) gets a different draw with a different seed
    assert batched[0] != batched[-1]
    other = engine.generate(rows, [RowSampling(1.0, top_p, 10, seed=7) for _ in rows], eos_ids=[2])
    assert other != batched


def test_generated_tokens_are_reused_by_the_next_call(model, rows):
    engine = PrefixCachingEngine(model, max_batch_tokens=100_000)
    samp = [RowSampling(temperature=1.0, max_new_tokens=6, seed=i) for i in range(len(rows))]
    outs = engine.generate(rows, samp, eos_ids=[])
    follow = [
        np.concatenate([r, np.asarray(o, dtype=np.int64), [5, 6, 7]]) for r, o in zip(rows, outs, strict=True)
    ]
    engine.reset_stats()
    got = engine.end_logprobs(follow, range(300))
    want = np.stack([reference_logprobs(model, r) for r in follow])
    assert np.abs(got - want).max() < 1e-5
    # everything but the last generated token and the 3 new ones came from the cache
    assert engine.stats.computed_tokens <= 4 * len(set(map(bytes, follow)))


@pytest.mark.parametrize("ragged", [False, True])
@pytest.mark.parametrize("temperature,top_p", [(0.0, 1.0), (1.0, 1.0), (1.3, 0.9)])
def test_multi_turn_generate_with_reuse_equals_without(model, rows, temperature, top_p, ragged):
    """A conversation per row grows by its own reply and a new prompt each turn (the paper's
    generate mode). With prefix reuse, several prefill chunks decoding as one group, duplicate
    rows and mixed reply lengths, every turn gives the tokens that each row gets alone without
    reuse (and with the other decoding layout), and only the new suffix is computed."""
    rng = np.random.default_rng(3)
    reuse = PrefixCachingEngine(model, max_batch_tokens=150, max_decode_tokens=100_000, ragged_decode=ragged)
    alone = PrefixCachingEngine(model, max_batch_tokens=100_000, prefix_cache=False, ragged_decode=not ragged)
    for turn in range(4):
        samp = [
            RowSampling(temperature, top_p, max_new_tokens=4 + (i % 3) * 5, seed=10 * turn + i)
            for i in range(len(rows))
        ]
        before = reuse.stats.computed_tokens
        got = reuse.generate(rows, samp, eos_ids=[2])
        want = [alone.generate([r], [s], eos_ids=[2])[0] for r, s in zip(rows, samp, strict=True)]
        assert got == want
        if turn:  # the previous reply (all but its last token) came from the store
            assert reuse.stats.computed_tokens - before <= sum(5 + 1 for _ in set(map(bytes, rows)))
        rows = [
            np.concatenate([r, np.asarray(o, dtype=np.int64), rng.integers(3, 300, 5)])
            for r, o in zip(rows, got, strict=True)
        ]
    assert reuse.stats.forward_calls < alone.stats.forward_calls
    lp = reuse.end_logprobs(rows, range(300))
    assert np.abs(lp - np.stack([reference_logprobs(model, r) for r in rows])).max() < 1e-5


def test_ragged_decoding_frees_the_conversations_it_extends_before_decoding(model, rows, monkeypatch):
    """Each row's cache moves out of the store once its prefill has read it (the row will store its
    prompt + reply, which covers it), so the old and new copies of a conversation are not held
    together; the finished rows' caches are stored as views of the rows' own tensors."""
    engine = PrefixCachingEngine(model, max_batch_tokens=150, max_decode_tokens=100_000)
    assert engine.ragged
    samp = [RowSampling(1.0, 1.0, max_new_tokens=5, seed=i) for i in range(len(rows))]
    outs = engine.generate(rows, samp, eos_ids=[])
    assert engine.store.bytes > 0
    held: list[int] = []
    decode = engine._decode_ragged
    monkeypatch.setattr(
        engine, "_decode_ragged", lambda *a, **k: (held.append(engine.store.bytes), decode(*a, **k))[1]
    )
    follow = [
        np.concatenate([r, np.asarray(o, dtype=np.int64), [5, 6]]) for r, o in zip(rows, outs, strict=True)
    ]
    engine.reset_stats()
    engine.generate(follow, samp, eos_ids=[])
    assert held == [0]  # every stored conversation was a whole prefix of a new row: all freed
    assert engine.stats.computed_tokens <= 3 * len(follow)  # and all were reused first
    entries = list(engine.store._entries.values())
    assert len(entries) == len(follow)
    # views of the rows' own tensors (which have room for the 5th token, never fed back), not copies
    assert all(e.kv.untyped_storage().nbytes() > e.kv.numel() * e.kv.element_size() for e in entries)


@pytest.mark.parametrize("max_batch_tokens", [20, 100_000])
def test_packed_ragged_prefill_logits_match_a_plain_forward(model, rows, monkeypatch, max_batch_tokens):
    """The ragged path prefills the new tokens of several rows as one packed sequence, each row
    attending over its own reused prefix and new tokens only. The last-position logits it hands to
    decoding must be those of a plain full forward of each row (no cache, no packing), whether the
    rows share a forward or not, on a first call (store empty: shared prefixes, a duplicate row)
    and on a second call (each row's conversation reused from the store)."""
    engine = PrefixCachingEngine(model, max_batch_tokens=max_batch_tokens, max_decode_tokens=100_000)
    assert engine.ragged
    seen: list[tuple[torch.Tensor, list[np.ndarray]]] = []
    decode = engine._decode_ragged

    def spy(kvs, logits, prompts, *rest):  # noqa: ANN001, ANN202
        seen.append((logits.clone(), list(prompts)))
        return decode(kvs, logits, prompts, *rest)

    monkeypatch.setattr(engine, "_decode_ragged", spy)
    samp = [RowSampling(1.0, 1.0, max_new_tokens=4, seed=i) for i in range(len(rows))]
    outs = engine.generate(rows, samp, eos_ids=[])
    follow = [
        np.concatenate([r, np.asarray(o, dtype=np.int64), [5, 6, 7]]) for r, o in zip(rows, outs, strict=True)
    ]
    engine.reset_stats()
    engine.generate(follow, samp, eos_ids=[])
    assert engine.stats.reused_tokens > 0 and engine.stats.padded_tokens == 0
    assert engine.stats.computed_tokens < 0.15 * engine.stats.prompt_tokens  # conversations reused
    assert len(seen) == 2  # one decode group per call
    for (logits, prompts), batch in zip(seen, [rows, follow], strict=True):
        assert len(prompts) == len(batch)  # every output row, the duplicate included
        assert sorted(map(bytes, prompts)) == sorted(map(bytes, batch))
        for lg, prompt in zip(logits, prompts, strict=True):
            want = reference_logprobs(model, prompt)
            assert np.abs(torch.log_softmax(lg.float(), -1).double().numpy() - want).max() < 1e-5


def test_ragged_decoding_needs_the_engines_cpu_attention():
    eager = tiny_llama()
    eager.set_attn_implementation("eager")
    assert not PrefixCachingEngine(eager, max_batch_tokens=100).ragged
    with pytest.raises(ValueError, match="ragged_decode needs a CPU model with sdpa attention"):
        PrefixCachingEngine(eager, max_batch_tokens=100, ragged_decode=True)


def test_decoding_together_takes_fewer_steps_than_prefill_chunks(model, rows):
    """Rows prefilled in separate chunks decode as one group: one forward per step, not per chunk."""
    samp = [RowSampling(0.0, 1.0, max_new_tokens=6, seed=i) for i in range(len(rows))]
    split = PrefixCachingEngine(model, max_batch_tokens=150, max_decode_tokens=150, prefix_cache=False)
    joint = PrefixCachingEngine(model, max_batch_tokens=150, max_decode_tokens=100_000, prefix_cache=False)
    assert split.generate(rows, samp, eos_ids=[]) == joint.generate(rows, samp, eos_ids=[])
    prefills = joint.stats.forward_calls - 6
    assert prefills > 1 and split.stats.forward_calls > joint.stats.forward_calls


def test_sampler_top_p_and_greedy():
    from agents.llm._engine import _sample

    logits = torch.log(torch.tensor([[0.5, 0.3, 0.2], [0.5, 0.3, 0.2], [0.1, 0.2, 0.7]]))
    temps = torch.tensor([1.0, 1.0, 0.0])
    top_p = torch.tensor([0.5, 1.0, 1.0])
    u = torch.tensor([0.99, 0.99, 0.5])
    assert _sample(logits, temps, top_p, u).tolist() == [0, 2, 2]  # nucleus keeps only token 0 in row 0
    # top_p = 1: u below 0.5 -> token 0, 0.5-0.8 -> 1, above -> 2
    ones = torch.ones(3)
    assert _sample(logits[[0, 0, 0]], ones, ones, torch.tensor([0.49, 0.51, 0.81])).tolist() == [0, 1, 2]
    # a row's draw does not depend on the other rows (nucleus and full rows mixed or alone)
    mixed = _sample(logits[[0, 1]], torch.ones(2), torch.tensor([0.6, 1.0]), torch.tensor([0.7, 0.7]))
    alone = [
        _sample(logits[[i]], torch.ones(1), torch.tensor([p]), torch.tensor([0.7])).item()
        for i, p in ((0, 0.6), (1, 1.0))
    ]
    assert mixed.tolist() == alone == [1, 1]
    # empirical frequencies match the distribution (top_p = 1)
    draws = _sample(
        logits[[1] * 20000],
        torch.ones(20000),
        torch.ones(20000),
        torch.rand(20000, generator=torch.Generator().manual_seed(0)),
    )
    freq = torch.bincount(draws, minlength=3).double() / 20000
    assert torch.allclose(freq, torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64), atol=0.015)


def reference_sample(logits, temps, top_ps, u):
    """The sampling rule written out on a full stable sort (the engine's definition, before its
    head shortcut): float64 probabilities, descending order, nucleus, inverse CDF of u."""
    t = torch.where(temps > 0, temps, torch.ones_like(temps)).double()
    probs = torch.softmax(logits.double() / t[:, None], dim=-1)
    sp, si = torch.sort(probs, dim=-1, descending=True, stable=True)
    before = torch.cumsum(sp, dim=-1) - sp
    sp = torch.where(before < top_ps[:, None], sp, torch.zeros_like(sp))
    cdf = torch.cumsum(sp, dim=-1)
    pick = torch.searchsorted(cdf, (u.double() * cdf[:, -1])[:, None], right=True).clamp(max=sp.shape[-1] - 1)
    return torch.where(temps > 0, si.gather(-1, pick).squeeze(-1), logits.argmax(dim=-1))


def test_sampler_shortcut_draws_exactly_what_the_full_sort_draws(monkeypatch):
    """The head shortcut must pick the full sort's token bit for bit: ties (inside the head and
    across its edge), flat and peaked rows, top_p < 1 and = 1, greedy rows, u near 0 and 1."""
    from agents.llm import _engine

    full = []
    real = _engine._sample_sorted
    monkeypatch.setattr(_engine, "_sample_sorted", lambda *a: full.append(len(a[0])) or real(*a))
    gen = torch.Generator().manual_seed(0)
    n = 0
    for trial in range(400):
        B, V = 12, int(torch.randint(70, 5000, (1,), generator=gen))
        logits = torch.randn(B, V, generator=gen) * float(torch.rand((), generator=gen)) * 15
        if trial % 4 == 0:
            logits[:, : V // 3] = logits[:, :1]  # a block of ties
        if trial % 6 == 0:
            logits = logits.round()  # many ties everywhere
        temps = torch.rand(B, generator=gen) * 2
        temps[torch.rand(B, generator=gen) < 0.15] = 0
        top_ps = torch.where(torch.rand(B, generator=gen) < 0.5, torch.ones(B), torch.rand(B, generator=gen))
        u = torch.rand(B, generator=gen)
        u[0], u[1] = 0.0, 1 - 2**-24
        assert torch.equal(
            _engine._sample(logits, temps, top_ps, u), reference_sample(logits, temps, top_ps, u)
        )
        n += B
    assert sum(full) < n / 2  # most rows were resolved by a head, not the full sort


def test_bad_rows_and_sampling_are_rejected(model):
    engine = PrefixCachingEngine(model, max_batch_tokens=1000)
    with pytest.raises(ValueError, match="row 0"):
        engine.end_logprobs([[]], [1])
    with pytest.raises(ValueError, match="temperature"):
        engine.generate([[1, 2]], [RowSampling(temperature=-1)], eos_ids=[2])
    with pytest.raises(ValueError, match="max_batch_tokens"):
        PrefixCachingEngine(model, max_batch_tokens=0)


def test_cpu_grouped_query_attention_equals_transformers_sdpa():
    """The engine's CPU attention (SDPA with enable_gqa under a mask) gives transformers' numbers."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from agents.llm._engine import _sdpa_gqa

    gen = torch.Generator().manual_seed(0)
    module = torch.nn.Module()
    module.num_key_value_groups, module.is_causal = 3, True
    q = torch.randn(2, 6, 5, 16, generator=gen)
    k, v = torch.randn(2, 2, 9, 16, generator=gen), torch.randn(2, 2, 9, 16, generator=gen)
    mask = torch.rand(2, 1, 5, 9, generator=gen) > 0.3
    mask[..., -5:] |= torch.eye(5, dtype=torch.bool)  # every query sees itself
    want, _ = sdpa_attention_forward(module, q, k, v, mask, scaling=0.25)
    got, _ = _sdpa_gqa(module, q, k, v, mask, scaling=0.25)
    assert got.shape == want.shape
    assert torch.allclose(got, want, atol=1e-6, rtol=0)


def test_engine_switches_cpu_sdpa_models_to_grouped_query_attention(model):
    from agents.llm._engine import GQA_SDPA

    PrefixCachingEngine(model, max_batch_tokens=100)
    assert model.config._attn_implementation == GQA_SDPA
    eager = tiny_llama()
    eager.set_attn_implementation("eager")
    PrefixCachingEngine(eager, max_batch_tokens=100)
    assert eager.config._attn_implementation == "eager"  # only "sdpa" models are switched


# --------------------------------------------------------------------------- backend (tiny model, real tokenizer)
@pytest.fixture(scope="module")
def tokenizer():
    path = embedded_model_path()
    return transformers.AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)


@pytest.fixture(scope="module")
def tiny_backend(tokenizer):
    return LocalBackend.from_model(
        tiny_llama(vocab=len(tokenizer)), tokenizer, "tiny-test", max_batch_tokens=4096
    )


def conversations(n_items: int = 2) -> list[list]:
    out = []
    for value in ["altruistic", "competitive"]:
        for trial in range(2):
            conv = [
                SystemMessage("You are a participant in a study."),
                HumanMessage(f"Do you know the {value} value system? Describe such a person."),
                AIMessage(f"A {value} person, trial {trial}, cares about outcomes."),
            ]
            for item in range(n_items):
                conv += [
                    HumanMessage(f"Item {item}: A gives you 85 and the other 85; B gives 85 and 15. Choose.")
                ]
                if item < n_items - 1:
                    conv += [AIMessage(LETTERS[(item + trial) % 9])]
            out.append(conv)
    return out


def test_choice_tokens_rule(tiny_backend, tokenizer):
    ids = tiny_backend.choice_token_ids("C")
    assert ids == [
        tokenizer.encode("C", add_special_tokens=False)[0],
        tokenizer.encode(" C", add_special_tokens=False)[0],
    ]
    with pytest.raises(ValueError, match="single token"):
        tiny_backend.choice_token_ids("Option C with words")


def test_backend_logprobs_batched_alone_and_reused_agree(tiny_backend, tokenizer):
    convs = conversations()
    fresh = LocalBackend.from_model(tiny_backend.model, tokenizer, "tiny-test", prefix_cache=False)
    short = [c[:-2] for c in convs]  # the previous step: reuse on the next call
    tiny_backend.clear_cache()
    tiny_backend.choice_logprobs(short, LETTERS)
    tiny_backend.reset_stats()
    batched = tiny_backend.choice_logprobs(convs, LETTERS)
    assert tiny_backend.stats["reused_tokens"] > 0
    alone = [fresh.choice_logprobs([c], LETTERS)[0] for c in convs]
    for b, a in zip(batched, alone, strict=True):
        assert set(b) == set(LETTERS)
        assert max(abs(b[k] - a[k]) for k in LETTERS) < TOL
        assert max(b, key=b.get) == max(a, key=a.get)
        assert all(isinstance(v, float) and v <= 0 for v in b.values())


def test_backend_generate_and_context_dropping(tiny_backend, tokenizer):
    convs = conversations(n_items=3)
    samp = [Sampling(temperature=0.0, max_new_tokens=5, seed=i) for i in range(len(convs))]
    gens = tiny_backend.generate(convs, samp)
    assert all(g.completion_tokens <= 5 and g.dropped_messages == 0 for g in gens)
    full = len(tiny_backend.encode(convs[0])[0])
    small = LocalBackend.from_model(tiny_backend.model, tokenizer, "tiny-test", max_context_tokens=full - 10)
    ids, dropped = small.encode(convs[0])
    assert dropped >= 2 and len(ids) <= full - 10
    g = small.generate([convs[0]], [samp[0]])[0]
    assert g.dropped_messages >= 1
    small.choice_logprobs([convs[0]], ["A"])
    assert small.last_dropped[0] >= 1
    tight = LocalBackend.from_model(tiny_backend.model, tokenizer, "tiny-test", max_context_tokens=8)
    with pytest.raises(BackendError, match="max_context_tokens"):
        tight.choice_logprobs([convs[0]], ["A"])
    with pytest.raises(ValueError, match="sampling"):
        tiny_backend.generate(convs, samp[:1])


def test_policy_generate_mode_with_reuse_equals_without(tokenizer):
    """The paper's generate mode (induction, goal, items, extractor, re-asks) on the tiny model:
    the same records with prefix reuse (and small prefill chunks) as one conversation at a time
    without it; the extractor and re-ask calls reuse prefixes too."""
    import gymnasium as gym

    import envs  # noqa: F401
    from agents.base import EpisodeContext
    from agents.llm import GoalPromptedPolicy
    from runs.rollout import single as run_episodes

    def run(backend, batched: bool):
        policy = GoalPromptedPolicy(
            backend=backend,
            mode="generate",
            induction_tokens=12,
            goal_tokens=6,
            max_reasks=2,
            extractor_tokens=3,
            sampling={"max_new_tokens": 5},
        )
        ctxs = [
            EpisodeContext("slider", 6, 9, seed=7 + k, value=v, goal_prompt=g)
            for k, (v, g) in enumerate([("altruistic", True), ("competitive", False), ("altruistic", False)])
        ]
        envs_ = [gym.make("SVO/Slider-v0").unwrapped for _ in ctxs]
        if batched:
            res = run_episodes(policy, envs_, ctxs)
        else:
            res = [run_episodes(policy, [e], [c])[0] for e, c in zip(envs_, ctxs, strict=True)]
        return [[d.record for d in r.decisions] for r in res]

    # A random tiny model's next-token distribution over 49,152 tokens is nearly flat, so float
    # rounding reorders it and any two layouts sample differently; sharpened, it is peaked like a
    # trained model's (with the lm_head x 20, one in a few hundred draws still differed).
    sharp = tiny_llama(vocab=len(tokenizer), seed=1)
    with torch.no_grad():
        sharp.lm_head.weight.mul_(60)
    reuse = LocalBackend.from_model(sharp, tokenizer, "tiny-test", max_batch_tokens=700)
    plain = LocalBackend.from_model(sharp, tokenizer, "tiny-test", prefix_cache=False)
    got, want = run(reuse, True), run(plain, False)
    assert got == want
    methods = {d["method"] for ep in got for d in ep}
    assert "invalid" in methods or "extractor" in methods or "reask" in methods  # the tiny model rambles
    assert sum(len(d["attempts"]) for ep in got for d in ep) > len(got) * 6  # re-asks happened
    s = reuse.stats
    assert s["reused_tokens"] > 2 * s["computed_tokens"]


def test_missing_torch_names_the_extra(monkeypatch):
    from agents.llm import local

    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ImportError, match=r'pip install -e "\.\[local\]"'):
        local._heavy()


# --------------------------------------------------------------------------- the embedded model (slow)
@pytest.mark.slow
def test_embedded_batched_vs_unbatched_greedy_with_and_without_reuse():
    reuse = LocalBackend()
    plain = LocalBackend(prefix_cache=False)
    assert reuse.model is plain.model  # loaded once per process
    assert reuse.model_id.startswith("local:SmolLM2-135M-Instruct.Q4_1.gguf:")
    convs = conversations(n_items=1)[1:3]  # two values, different lengths
    samp = [Sampling(temperature=0.0, max_new_tokens=8, seed=i) for i in range(len(convs))]
    batched = reuse.generate(convs, samp)
    alone = [plain.generate([c], [s])[0] for c, s in zip(convs, samp, strict=True)]
    assert [g.text for g in batched] == [g.text for g in alone]
    # the next step: each conversation grows by the answer and the next item (prefix reuse)
    nxt = [
        c + [AIMessage("A"), HumanMessage("Item 2: A gives you 100 and the other 50; B 50/100. Choose.")]
        for c in convs
    ]
    reuse.reset_stats()
    lp_batched = reuse.choice_logprobs(nxt, LETTERS)
    assert reuse.stats["reused_tokens"] > reuse.stats["computed_tokens"]
    lp_alone = [plain.choice_logprobs([c], LETTERS)[0] for c in nxt]
    for b, a in zip(lp_batched, lp_alone, strict=True):
        assert max(abs(b[k] - a[k]) for k in LETTERS) < TOL
        assert max(b, key=b.get) == max(a, key=a.get)
    greedy_b = reuse.generate(nxt, samp)
    greedy_a = [plain.generate([c], [s])[0] for c, s in zip(nxt, samp, strict=True)]
    assert [g.text for g in greedy_b] == [g.text for g in greedy_a]


@pytest.mark.slow
def test_embedded_multi_turn_sampled_with_reuse_equals_alone_without():
    """Free-text turns at temperature 1 (the paper's generate mode): batched with prefix reuse (each
    prompt starts after the previous reply's cached KV) gives the texts of one conversation at a
    time without reuse."""
    reuse = LocalBackend()
    plain = LocalBackend(prefix_cache=False)
    reuse.clear_cache()
    reuse.reset_stats()
    convs = [
        [HumanMessage(f"Do you know the {v} value system? Describe such a person.")]
        for v in ("altruistic", "competitive", "prosocial")
    ]
    for turn in range(3):
        samp = [Sampling(temperature=1.0, max_new_tokens=24, seed=100 * turn + i) for i in range(len(convs))]
        got = [g.text for g in reuse.generate(convs, samp)]
        want = [plain.generate([c], [s])[0].text for c, s in zip(convs, samp, strict=True)]
        assert got == want
        convs = [
            c
            + [
                AIMessage(t),
                HumanMessage(f"Item {turn + 1}: A gives you 85 and the other 15; B 50/50. Choose."),
            ]
            for c, t in zip(convs, got, strict=True)
        ]
    assert reuse.stats["reused_tokens"] > reuse.stats["computed_tokens"]


@pytest.mark.slow
def test_embedded_sampling_reproducible():
    backend = LocalBackend()
    conv = [HumanMessage("Describe a prosocial person in one sentence.")]
    samp = [Sampling(temperature=1.0, top_p=0.95, max_new_tokens=10, seed=s) for s in (1, 1, 2)]
    a = backend.generate([conv, conv, conv], samp)
    backend.clear_cache()
    b = backend.generate([conv], samp[:1])
    assert a[0].text == a[1].text == b[0].text
    assert a[2].text != a[0].text


def test_bfloat16_on_a_cpu_without_bf16_instructions_warns(monkeypatch):
    from agents.llm import local

    monkeypatch.setattr(local, "cpu_has_bf16_matmul", lambda: False)
    with pytest.warns(UserWarning, match="slower than float32 here"):
        assert local._pick_device_dtype("cpu", "bfloat16") == ("cpu", torch.bfloat16)
    monkeypatch.setattr(local, "cpu_has_bf16_matmul", lambda: True)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert local._pick_device_dtype("cpu", "auto") == ("cpu", torch.float32)
        local._pick_device_dtype("cpu", "bfloat16")
    with pytest.raises(ValueError, match="allowed are"):
        local._pick_device_dtype("cpu", "int8")


@pytest.mark.slow
def test_embedded_bfloat16_is_repeatable_and_close_to_unbatched():
    """bfloat16 (the fast preset) repeats exactly with the same batching; across layouts it is close."""
    if not local_cpu_bf16():
        pytest.skip("this CPU has no bfloat16 matrix instructions")
    fast = LocalBackend(dtype="bfloat16")
    assert fast.model_id.endswith(":bfloat16")
    nxt = [
        c + [AIMessage("A"), HumanMessage("Item 2: A gives you 100 and the other 50; B 50/100. Choose.")]
        for c in conversations(n_items=1)
    ]
    first = fast.choice_logprobs(nxt, LETTERS)
    fast.clear_cache()
    again = fast.choice_logprobs(nxt, LETTERS)
    assert first == again  # same calls, same batches: bit-identical
    alone = LocalBackend(dtype="bfloat16", prefix_cache=False)
    single = [alone.choice_logprobs([c], LETTERS)[0] for c in nxt]
    for b, a in zip(first, single, strict=True):
        assert max(abs(b[k] - a[k]) for k in LETTERS) < 0.5
        assert max(b, key=b.get) == max(a, key=a.get)


def local_cpu_bf16() -> bool:
    from agents.llm.local import cpu_has_bf16_matmul

    return cpu_has_bf16_matmul()


@pytest.mark.slow
def test_embedded_long_samples_batched_equal_alone():
    """Value-induction-length samples at temperature 1: batched decoding draws what decoding alone draws.

    (A sampler that walked the CDF in vocabulary order instead of descending probability failed this:
    one of the four texts diverged after about 250 tokens.)
    """
    backend = LocalBackend(prefix_cache=False)
    convs = [
        [HumanMessage(f"Do you know the {v} value system? Describe such a person.")]
        for v in ["altruistic", "prosocial", "individualistic", "competitive"]
    ]
    samp = [Sampling(temperature=1.0, top_p=1.0, max_new_tokens=256, seed=11 + i) for i in range(4)]
    batched = [g.text for g in backend.generate(convs, samp)]
    alone = [backend.generate([c], [s])[0].text for c, s in zip(convs, samp, strict=True)]
    assert batched == alone
    assert max(len(t) for t in batched) > 1000  # long enough to have caught the old failure
