"""Token-level batched inference for a Hugging Face causal LM, with shared-prefix KV reuse.

`PrefixCachingEngine` takes token-id sequences (no tokenizer), so the GPU benchmark can drive it
with random ids. Two operations:

- `end_logprobs(rows, read_ids)`: one forward pass per batch; the log-softmax over the full
  vocabulary at each row's last position, read at `read_ids`;
- `generate(rows, samplings, eos_ids)`: batched decoding with per-row seeds.

Prefill chunks are padded *in two segments*: each row's reused prefix cache is left-padded to the
chunk's longest prefix P, its new tokens are left-padded to the longest new segment S. Positions
are the rows' true positions and a boolean 4D mask hides the padding, so a row's result does not
depend on which rows share its batch (up to float rounding). Padding queries attend to themselves
only, so no attention row is empty (no NaN). Rows are sorted by (reused, total) length before
chunking, so rows of the same trial round share chunks and padding stays small.

Decoding is bound by reading the weights once per step whatever the number of rows (on a CPU, and
for small batches on a GPU), so `generate` decodes every row of a call together: the rows of a
*decode group* (as many as `max_decode_tokens` of KV allows, usually the whole call) share one
buffer, each prefill chunk writing its rows right-aligned into it, and each step is one forward for
all of them. A finished row's prompt plus reply goes into the prefix store (so the next call, which
extends the conversation with that reply, starts after it) and, once a quarter of the group has
finished, the finished rows are compacted out of the buffer.

On a CPU (`ragged_decode`, the default there) `generate` runs ragged instead: each row owns a
tensor for its keys and values, with room for its reply. Its reused prefix is copied in once; the
new tokens of several rows run as one packed sequence, each row attending over its own columns
(`_ragged_prefill_attention`); decoding steps the rows together, each attending over its own
columns (`_ragged_attention`). No padding is computed, copied or read, a finished row stops costing
work at once, and its tensor becomes its store entry (a view, not a copy). The padded buffer stays
for `end_logprobs` and for GPUs, where the row loop would cost more than the padding.
"""

from __future__ import annotations

import contextvars
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from agents.llm._kvstore import PrefixKVStore, block_digests

__all__ = ["EngineStats", "PrefixCachingEngine", "RowSampling"]


@dataclass(frozen=True)
class RowSampling:
    """Per-row decoding settings: temperature 0 is greedy; the seed drives this row's draws only."""

    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 64
    seed: int = 0


@dataclass
class EngineStats:
    """Work counters: prompt tokens asked for, tokens actually run through the model, and more."""

    prompt_tokens: int = 0  # tokens of all prompts handed in (duplicates included)
    computed_tokens: int = 0  # prompt tokens run through the model (not reused, not deduplicated)
    reused_tokens: int = 0  # prompt tokens whose KV came from the prefix store
    deduplicated_tokens: int = 0  # prompt tokens of exact duplicate rows within one call
    padded_tokens: int = 0  # padding positions run through the model (wasted work)
    generated_tokens: int = 0
    forward_calls: int = 0
    rows: int = 0

    @property
    def savings(self) -> float:
        """Fraction of prompt tokens not recomputed."""
        return 1.0 - self.computed_tokens / self.prompt_tokens if self.prompt_tokens else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "computed_tokens": self.computed_tokens,
            "reused_tokens": self.reused_tokens,
            "deduplicated_tokens": self.deduplicated_tokens,
            "padded_tokens": self.padded_tokens,
            "generated_tokens": self.generated_tokens,
            "forward_calls": self.forward_calls,
            "rows": self.rows,
            "savings": round(self.savings, 4),
        }


#: transformers attention implementation registered by the engine for CPU models using "sdpa".
GQA_SDPA = "svo_sdpa_gqa"


def _sdpa_gqa(
    module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attention_mask: Any, **kw: Any
):  # noqa: ANN202
    """transformers' "sdpa" attention, except for grouped-query attention with a mask on CPU.

    There transformers repeats the keys and values to the query heads (it avoids SDPA's `enable_gqa`
    because CUDA kernels fall back to the math kernel with a mask). On CPU, `enable_gqa` gives the
    same numbers (bit-identical in our checks) and skips copying the whole padded cache per layer.
    Measured on the embedded model (CPU benchmark, item phase of 4 episodes, one thread): attention
    plus copies 4.7 s -> 4.1 s, the phase 13.6 s -> 12.8 s.
    """
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    step = _RAGGED.get()
    if step is not None:
        if step.s is not None:
            return _ragged_prefill_attention(module, query, key, value, step, kw.get("scaling")), None
        if query.shape[2] == 1:
            return _ragged_attention(module, query, key, value, step, kw.get("scaling")), None
    groups = getattr(module, "num_key_value_groups", 1)
    plain = kw.get("dropout", 0.0) == 0.0 and kw.get("position_bias") is None and kw.get("softcap") is None
    if (
        groups > 1
        and attention_mask is not None
        and query.shape[2] > 1
        and query.device.type == "cpu"
        and plain
    ):
        out = torch.nn.functional.scaled_dot_product_attention(
            query, key, value, attn_mask=attention_mask, scale=kw.get("scaling"), enable_gqa=True
        )
        return out.transpose(1, 2).contiguous(), None
    return sdpa_attention_forward(module, query, key, value, attention_mask, **kw)


@dataclass
class _RaggedStep:
    """One forward over rows that each own their keys and values: kv[b] is row b's
    [layers, 2, kv_heads, capacity, head_dim], whose first n[b] columns hold its tokens so far.

    Decoding (s is None): a batch of rows, one token each, written to column n[b].
    Prefill (s given): one packed sequence (batch 1) holding row 0's s[0] new tokens, then row 1's,
    and so on, written to columns [n[b], n[b] + s[b]); masks[b] is row b's causal mask over its
    n[b] + s[b] columns (None: plain causal, or a single token that sees every column)."""

    kv: list[torch.Tensor]
    n: list[int]
    s: list[int] | None = None
    masks: list[torch.Tensor | None] | None = None


#: Set by the engine around a ragged decoding forward (per thread: a ContextVar).
_RAGGED: contextvars.ContextVar[_RaggedStep | None] = contextvars.ContextVar("svo_ragged_step", default=None)


def _ragged_attention(
    module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, step: _RaggedStep, scaling: Any
) -> torch.Tensor:
    """Decoding attention row by row, each row over its own columns only: no padding and no finished
    rows are read. Decoding is bound by reading the keys and values on a CPU (measured: 40 rows of
    2,000 cached tokens, 30 layers, 0.5-0.6 s per step, about 7 GB/s), and a padded batch reads
    every row to the longest row's length. The query heads that share a key/value head are one
    query block (as SDPA's grouped-query path), so each row's cache is read once per layer.
    query [B, q_heads, 1, D], key/value [B, kv_heads, 1, D] (this step's): written to column n[b]."""
    layer = module.layer_idx
    B, hq, _, d = query.shape
    hkv = key.shape[1]
    outs = []
    for b in range(B):
        kv, n = step.kv[b][layer], step.n[b]
        kv[0, :, n] = key[b, :, 0]
        kv[1, :, n] = value[b, :, 0]
        q = query[b].reshape(1, hkv, hq // hkv, d)
        o = torch.nn.functional.scaled_dot_product_attention(
            q, kv[0, :, : n + 1].unsqueeze(0), kv[1, :, : n + 1].unsqueeze(0), scale=scaling
        )
        outs.append(o.reshape(1, hq, 1, d))
    return torch.cat(outs).transpose(1, 2).contiguous()


def _ragged_prefill_attention(
    module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, step: _RaggedStep, scaling: Any
) -> torch.Tensor:
    """Prefill attention of packed rows (`_RaggedStep` with s): each row's new tokens over its own
    columns only (its reused prefix, then its new tokens, causally), so no padding is computed,
    copied or masked. query [1, q_heads, sum(s), D], key/value [1, kv_heads, sum(s), D]."""
    layer = module.layer_idx
    assert step.s is not None and step.masks is not None
    outs = []
    off = 0
    for b, s in enumerate(step.s):
        kv, n = step.kv[b][layer], step.n[b]
        kv[0, :, n : n + s] = key[0, :, off : off + s]
        kv[1, :, n : n + s] = value[0, :, off : off + s]
        mask = step.masks[b]
        outs.append(
            torch.nn.functional.scaled_dot_product_attention(
                query[:, :, off : off + s],
                kv[0, :, : n + s].unsqueeze(0),
                kv[1, :, : n + s].unsqueeze(0),
                attn_mask=mask,
                is_causal=mask is None and n == 0 and s > 1,
                scale=scaling,
                enable_gqa=True,
            )
        )
        off += s
    return torch.cat(outs, dim=2).transpose(1, 2).contiguous()


def _use_gqa_sdpa(model: Any) -> None:
    """Switch a CPU model from "sdpa" to the same attention with CPU grouped-query SDPA (see above)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    if getattr(model.config, "_attn_implementation", None) != "sdpa":
        return
    if next(model.parameters()).device.type != "cpu":
        return
    AttentionInterface.register(GQA_SDPA, _sdpa_gqa)
    AttentionMaskInterface.register(GQA_SDPA, sdpa_mask)
    model.set_attn_implementation(GQA_SDPA)


def _cache_kwarg(model: Any) -> str:
    """transformers renamed `past_key_values` to `cache` in 5.x; use whichever forward takes."""
    import inspect

    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


_BUFFER_LAYER: Any = None


def _buffer_layer_class() -> Any:
    """A DynamicLayer that writes into a preallocated buffer instead of concatenating (built once)."""
    global _BUFFER_LAYER
    if _BUFFER_LAYER is None:
        from transformers.cache_utils import DynamicLayer

        class _BufferLayer(DynamicLayer):
            def __init__(self, kb: torch.Tensor, vb: torch.Tensor, n: int) -> None:
                super().__init__()
                self._kb, self._vb, self._n = kb, vb, n
                self.is_initialized = True
                self.device = kb.device
                self.keys, self.values = kb[:, :, :n], vb[:, :, :n]

            def update(self, key_states, value_states, *args, **kwargs):  # noqa: ANN001, ANN202
                m = key_states.shape[-2]
                self._kb[:, :, self._n : self._n + m] = key_states
                self._vb[:, :, self._n : self._n + m] = value_states
                self._n += m
                self.keys, self.values = self._kb[:, :, : self._n], self._vb[:, :, : self._n]
                return self.keys, self.values

            def get_seq_length(self) -> int:
                return self._n

        _BUFFER_LAYER = _BufferLayer
    return _BUFFER_LAYER


def _buffer_cache(buf: torch.Tensor, length: int) -> Any:
    """A transformers Cache whose layers write into the preallocated buffer [L, 2, B, H, cap, D]."""
    from transformers import DynamicCache

    layer = _buffer_layer_class()
    cache = DynamicCache()
    cache.layers = [layer(buf[i, 0], buf[i, 1], length) for i in range(buf.shape[0])]
    cache.layer_class_to_replicate = None
    return cache


class _Batch:
    """Rows' KV in one buffer [layers, 2, rows, kv_heads, cap, head_dim] and which columns hold what.

    Row i's reused prefix fills columns [pe[i] - p[i], pe[i]); its new tokens end at column `cur`
    (they start at cur - s[i]); generated tokens follow from `cur` on. Every other column is
    padding: `valid` is False there, and its values are finite (zeroed, or written by a padding
    token), because a masked NaN would still poison SDPA.
    """

    def __init__(
        self, buf: torch.Tensor, valid: torch.Tensor, p: list[int], s: list[int], pe: list[int], cur: int
    ) -> None:
        self.buf, self.valid = buf, valid
        self.p, self.s, self.pe, self.cur = p, s, pe, cur

    def row_kv(self, i: int, upto: int) -> torch.Tensor:
        """A contiguous copy of row i's real KV columns, in order, up to buffer column `upto`.

        Two slices and one concatenation (the reused prefix, then the new and generated tokens):
        about a third faster than gathering the columns with index_select.
        """
        pre = self.buf[:, :, i, :, self.pe[i] - self.p[i] : self.pe[i]]
        new = self.buf[:, :, i, :, self.cur - self.s[i] : upto]
        return torch.cat([pre, new], dim=-2)

    def keep(self, rows: list[int]) -> None:
        """Keep rows `rows` (in that order), any row any number of times: a new buffer."""
        sel = torch.tensor(rows, device=self.buf.device)
        self.buf = self.buf.index_select(2, sel)
        self.valid = self.valid.index_select(0, sel)
        self._reindex(rows)

    def compact(self, rows: list[int]) -> None:
        """Keep rows `rows` (increasing), moved to the front in place: later steps read less, and
        no second buffer is allocated."""
        for dst, src in enumerate(rows):
            if dst != src:
                self.buf[:, :, dst] = self.buf[:, :, src]
                self.valid[dst] = self.valid[src]
        self.buf = self.buf[:, :, : len(rows)]
        self.valid = self.valid[: len(rows)]
        self._reindex(rows)

    def _reindex(self, rows: list[int]) -> None:
        self.p = [self.p[b] for b in rows]
        self.s = [self.s[b] for b in rows]
        self.pe = [self.pe[b] for b in rows]


class _Chunk:
    """One prefill forward: rows [r0, r1) of a group, padded to their own P (prefix) and S (new)."""

    def __init__(self, r0: int, p: list[int], s: list[int]) -> None:
        self.r0, self.r1 = r0, r0 + len(p)
        self.p, self.s = p, s
        self.P, self.S = max(p), max(s)


def _allocate(
    chunks: list[_Chunk], extra: int, dims: tuple[int, int, int], dtype: torch.dtype, device: Any
) -> _Batch:
    """A buffer for all rows of `chunks`, each chunk right-aligned at a common column C, plus `extra`.

    Decoding then steps every row together whatever chunk it was prefilled in: the chunks bound the
    prefill's padding and memory, the group bounds the KV held for decoding.
    """
    n_layers, n_heads, head_dim = dims
    rows = chunks[-1].r1
    C = max(c.P + c.S for c in chunks)
    cap = C + extra
    # Uninitialised: every column a forward reads is written first (prefixes are copied in, new
    # and generated tokens are written by the cache update) except the columns left of each row's
    # prefix, zeroed here.
    buf = torch.empty(n_layers, 2, rows, n_heads, cap, head_dim, dtype=dtype, device=device)
    valid = torch.zeros(rows, cap, dtype=torch.bool)
    p: list[int] = []
    s: list[int] = []
    pe: list[int] = []
    for c in chunks:
        off = C - (c.P + c.S)
        for j, (pj, sj) in enumerate(zip(c.p, c.s, strict=True)):
            r = c.r0 + j
            left = off + c.P - pj
            if left:
                buf[:, :, r, :, :left] = 0
            valid[r, left : off + c.P] = True
            valid[r, C - sj : C] = True
            p.append(pj)
            s.append(sj)
            pe.append(off + c.P)
    return _Batch(buf, valid.to(device), p, s, pe, C)


def _cut(order: Sequence[int], costs: Sequence[int], cap: int) -> list[list[int]]:
    """`order` cut into consecutive runs whose costs add up to at most `cap` (an item costing more
    is a run alone)."""
    runs: list[list[int]] = []
    run: list[int] = []
    held = 0
    for i, c in zip(order, costs, strict=True):
        if run and held + c > cap:
            runs.append(run)
            run, held = [], 0
        run.append(i)
        held += c
    if run:
        runs.append(run)
    return runs


class PrefixCachingEngine:
    """Batched forward passes and decoding over token ids, reusing cached prefixes; see module doc.

    model: a transformers causal LM (already on its device, eval mode). max_batch_tokens: cap on
    rows x padded (prefix + new) length per prefill forward. max_decode_tokens: cap on rows x
    padded (prefix + new + generated) length of the rows that decode together (their KV buffer;
    default: max_batch_tokens). prefix_cache: reuse KV across calls. max_cache_bytes: the store's
    cap. pad_token_id: any valid id (padding is masked). ragged_decode: decode with each row's keys
    and values in a tensor of its own, attended row by row (`_ragged_attention`); default: on a CPU
    model with this module's attention (a GPU runs the padded batch: there the row loop would cost
    more than the padding). max_decode_tokens then caps the rows' own tokens, unpadded.
    """

    def __init__(
        self,
        model: Any,
        *,
        max_batch_tokens: int,
        max_decode_tokens: int | None = None,
        prefix_cache: bool = True,
        max_cache_bytes: int = 1 << 30,
        pad_token_id: int = 0,
        ragged_decode: bool | None = None,
    ) -> None:
        if max_batch_tokens < 1:
            raise ValueError(f"max_batch_tokens must be >= 1, got {max_batch_tokens}")
        if max_decode_tokens is not None and max_decode_tokens < 1:
            raise ValueError(f"max_decode_tokens must be >= 1, got {max_decode_tokens}")
        self.model = model
        cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
        self.n_layers = int(cfg.num_hidden_layers)
        self.n_kv_heads = int(getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads)
        self.head_dim = int(getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads)
        self.max_positions = int(getattr(cfg, "max_position_embeddings", 1 << 30))
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
        self.max_batch_tokens = int(max_batch_tokens)
        self.max_decode_tokens = None if max_decode_tokens is None else int(max_decode_tokens)
        self.prefix_cache = prefix_cache
        self.store = PrefixKVStore(max_cache_bytes if prefix_cache else 0)
        self.pad_token_id = int(pad_token_id)
        self.stats = EngineStats()
        self._cache_kw = _cache_kwarg(model)
        _use_gqa_sdpa(model)
        ours = getattr(model.config, "_attn_implementation", None) == GQA_SDPA
        if ragged_decode and not ours:
            raise ValueError(
                f"ragged_decode needs a CPU model with sdpa attention (this one: "
                f"{getattr(model.config, '_attn_implementation', None)!r} on {self.device})"
            )
        self.ragged = ours if ragged_decode is None else bool(ragged_decode)
        self._digests: dict[int, list[bytes]] = {}  # block digests of this call's rows, by id()

    # ------------------------------------------------------------------ public
    @property
    def kv_bytes_per_token(self) -> int:
        return self.n_layers * 2 * self.n_kv_heads * self.head_dim * torch.finfo(self.dtype).bits // 8

    @property
    def decode_tokens(self) -> int:
        """The cap on rows x padded length of the rows that decode together."""
        return self.max_batch_tokens if self.max_decode_tokens is None else self.max_decode_tokens

    def reset_stats(self) -> None:
        self.stats = EngineStats()

    def clear_cache(self) -> None:
        self.store.clear()

    @torch.inference_mode()
    def end_logprobs(self, rows: Sequence[Sequence[int]], read_ids: Sequence[int]) -> np.ndarray:
        """Log-softmax (float32, full vocabulary) at each row's last position, read at `read_ids`.

        Returns float64 [rows, len(read_ids)]. Exact duplicate rows are computed once.
        """
        seqs, inverse, _ = self._dedup(rows)
        ids = torch.tensor(list(read_ids), dtype=torch.long, device=self.device)
        out = np.zeros((len(seqs), len(ids)), dtype=np.float64)
        try:
            looked = self._lookup(seqs)
            for idx in self._chunks(seqs, looked, [1] * len(seqs), self.max_batch_tokens, 0):
                plan = [looked[i] for i in idx]
                chunk = self._chunk(0, [seqs[i] for i in idx], plan)
                batch = self._new_batch([chunk], extra=0)
                logits = self._prefill(batch, chunk, [seqs[i] for i in idx], plan)
                lp = torch.log_softmax(logits.float(), dim=-1)[:, ids]
                out[idx] = lp.double().cpu().numpy()
                if self.prefix_cache:
                    for j, i in enumerate(idx):
                        self._store_row(batch, j, seqs[i], batch.cur)
                del batch, logits
        finally:
            self.store.release()
        return out[inverse]

    @torch.inference_mode()
    def generate(
        self, rows: Sequence[Sequence[int]], samplings: Sequence[RowSampling], eos_ids: Sequence[int]
    ) -> list[list[int]]:
        """New token ids per row (EOS excluded); stops at an EOS id or the row's max_new_tokens.

        Rows with the same prompt share one prefill (value induction: every trial of a value), then
        decode separately with their own seeds. All rows decode together, up to `decode_tokens`
        of KV, whatever prefill forward they came from; a row that finishes stops costing work.
        """
        if len(samplings) != len(rows):
            raise ValueError(f"{len(rows)} rows but {len(samplings)} samplings")
        for i, s in enumerate(samplings):
            if s.temperature < 0 or not 0 < s.top_p <= 1 or s.max_new_tokens < 0:
                raise ValueError(
                    f"sampling[{i}]: temperature must be >= 0, top_p in (0, 1], max_new_tokens >= 0; got {s}"
                )
        seqs, inverse, weights = self._dedup(rows)
        members: list[list[int]] = [[] for _ in seqs]
        for r, u in enumerate(inverse):
            members[u].append(r)
        max_new = [max(samplings[r].max_new_tokens for r in m) for m in members]
        eos = {int(e) for e in eos_ids}
        results: list[list[int]] = [[] for _ in rows]
        try:
            looked = self._lookup(seqs)
            if self.ragged:
                refs: dict[int, int] = {}
                for e, _ in looked:
                    if e is not None:
                        refs[e.key] = refs.get(e.key, 0) + 1
                for group in self._ragged_groups(seqs, looked, weights, max_new):
                    self._generate_ragged(group, seqs, looked, refs, members, samplings, eos, results)
                return results
            for group in self._chunks(seqs, looked, weights, self.decode_tokens, max_new):
                self._generate_group(
                    [seqs[i] for i in group],
                    [looked[i] for i in group],
                    [members[i] for i in group],
                    samplings,
                    eos,
                    results,
                )
        finally:
            self.store.release()
        return results

    # ----------------------------------------------------------------- helpers
    def _dedup(self, rows: Sequence[Sequence[int]]) -> tuple[list[np.ndarray], np.ndarray, list[int]]:
        """Unique sequences, each row's index among them, and each unique sequence's row count."""
        seqs: list[np.ndarray] = []
        first: dict[bytes, int] = {}
        inverse = np.zeros(len(rows), dtype=np.int64)
        for r, row in enumerate(rows):
            a = np.asarray(row, dtype=np.int64)
            if a.ndim != 1 or len(a) == 0:
                raise ValueError(f"row {r} must be a non-empty 1-D sequence of token ids")
            if len(a) > self.max_positions:
                raise ValueError(f"row {r} has {len(a)} tokens; the model takes at most {self.max_positions}")
            k = a.tobytes()
            if k not in first:
                first[k] = len(seqs)
                seqs.append(a)
            inverse[r] = first[k]
        weights = np.bincount(inverse, minlength=len(seqs)).tolist()
        self.stats.rows += len(rows)
        total = sum(len(np.asarray(r)) for r in rows)
        self.stats.prompt_tokens += total
        self.stats.deduplicated_tokens += total - sum(len(a) for a in seqs)
        return seqs, inverse, weights

    def _lookup(self, seqs: list[np.ndarray]) -> list[tuple[Any, int]]:
        """(cached entry, reused length) per sequence; at least one token of each stays new."""
        self._digests = {}
        out: list[tuple[Any, int]] = []
        for a in seqs:
            entry, n = None, 0
            if self.prefix_cache:
                self._digests[id(a)] = block_digests(a)
                entry, n = self.store.longest_prefix(a, limit=len(a) - 1, digests=self._digests[id(a)])
            out.append((entry, n))
        return out

    @staticmethod
    def _chunks(
        seqs: list[np.ndarray],
        looked: list[tuple[Any, int]],
        weights: list[int],
        cap: int,
        extra: int | list[int],
    ) -> list[list[int]]:
        """Indices into seqs, sorted by (reused, total) length and cut under `cap` tokens per part.

        A part's cost is its buffer: (rows incl. duplicates) x (max reused + max new + max extra).
        """
        extras = [extra] * len(seqs) if isinstance(extra, int) else extra
        order = sorted(range(len(seqs)), key=lambda i: (looked[i][1], len(seqs[i])))
        parts: list[list[int]] = []
        part: list[int] = []
        P = S = X = W = 0
        for i in order:
            n = looked[i][1]
            nP, nS, nX, nW = max(P, n), max(S, len(seqs[i]) - n), max(X, extras[i]), W + weights[i]
            if part and nW * (nP + nS + nX) > cap:
                parts.append(part)
                part = []
                nP, nS, nX, nW = n, len(seqs[i]) - n, extras[i], weights[i]
            part.append(i)
            P, S, X, W = nP, nS, nX, nW
        if part:
            parts.append(part)
        return parts

    def _ragged_groups(
        self, seqs: list[np.ndarray], looked: list[tuple[Any, int]], weights: list[int], max_new: list[int]
    ) -> list[list[int]]:
        """Indices into seqs in `_chunks`' order, cut so that each group's rows (duplicates
        included) hold at most `decode_tokens` tokens of their own (prompt + reply, unpadded)."""
        order = sorted(range(len(seqs)), key=lambda i: (looked[i][1], len(seqs[i])))
        return _cut(order, [weights[i] * (len(seqs[i]) + max_new[i]) for i in order], self.decode_tokens)

    @staticmethod
    def _chunk(r0: int, seqs: list[np.ndarray], plan: list[tuple[Any, int]]) -> _Chunk:
        return _Chunk(r0, [n for _, n in plan], [len(a) - n for a, (_, n) in zip(seqs, plan, strict=True)])

    def _new_batch(self, chunks: list[_Chunk], extra: int) -> _Batch:
        dims = (self.n_layers, self.n_kv_heads, self.head_dim)
        return _allocate(chunks, extra, dims, self.dtype, self.device)

    def _prefill(
        self, batch: _Batch, chunk: _Chunk, seqs: list[np.ndarray], plan: list[tuple[Any, int]]
    ) -> torch.Tensor:
        """Run a chunk's new tokens on top of their reused prefixes; last-position logits [rows, V].

        The chunk's rows are rows [r0, r1) of `batch`; its forward sees the buffer from column
        C - (P + S) on, where its rows' prefixes end at P and their new tokens at P + S = C.
        """
        P, S, B = chunk.P, chunk.S, len(seqs)
        off = batch.cur - (P + S)
        for j, (entry, n) in enumerate(plan):
            if n:
                r = chunk.r0 + j
                batch.buf[:, :, r, :, off + P - n : off + P] = entry.kv[:, :, :, :n].to(
                    self.device, non_blocking=True
                )
        ids = torch.full((B, S), self.pad_token_id, dtype=torch.long)
        pos = torch.zeros((B, S), dtype=torch.long)
        for j, (a, n) in enumerate(zip(seqs, chunk.p, strict=True)):
            ids[j, S - chunk.s[j] :] = torch.from_numpy(a[n:])
            pos[j, S - chunk.s[j] :] = torch.arange(n, len(a))
        ids, pos = ids.to(self.device), pos.to(self.device)
        view = batch.buf[:, :, chunk.r0 : chunk.r1, :, off:]
        dense = P == 0 and min(chunk.s) == S  # no padding, nothing reused: plain causal attention
        mask = None if dense else self._mask(batch.valid[chunk.r0 : chunk.r1, off : off + P + S], P, S)
        logits = self._forward(ids, pos, mask, view, P)
        self.stats.forward_calls += 1
        self.stats.computed_tokens += sum(chunk.s)
        self.stats.reused_tokens += sum(chunk.p)
        self.stats.padded_tokens += B * S - sum(chunk.s)
        return logits

    def _mask(self, valid: torch.Tensor, past: int, q: int) -> torch.Tensor:
        """Boolean [B, 1, q, past+q]: causal over columns, padding hidden, each query sees itself."""
        total = past + q
        cols = torch.arange(total, device=valid.device)
        qcols = torch.arange(past, total, device=valid.device)
        causal = cols[None, :] <= qcols[:, None]  # [q, total]
        diag = cols[None, :] == qcols[:, None]
        return ((valid[:, None, :] & causal[None]) | diag[None])[:, None]

    def _forward(
        self, ids: torch.Tensor, pos: torch.Tensor, mask: torch.Tensor | None, buf: torch.Tensor, past: int
    ):  # noqa: ANN202
        cache = _buffer_cache(buf, past)
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=pos,
            use_cache=True,
            logits_to_keep=1,
            **{self._cache_kw: cache},
        )
        return out.logits[:, -1, :]

    def _store_row(self, batch: _Batch, j: int, tokens: np.ndarray, upto: int) -> None:
        """Put row j's real KV columns (up to buffer column `upto`) into the store under `tokens`."""
        n_cols = batch.p[j] + upto - (batch.cur - batch.s[j])
        if n_cols != len(tokens):
            raise AssertionError(f"KV columns ({n_cols}) != tokens ({len(tokens)})")
        nbytes = len(tokens) * self.kv_bytes_per_token
        if nbytes > self.store.max_bytes:
            return
        kv = batch.row_kv(j, upto)
        self.store.put(tokens, kv, nbytes, digests=self._digests.get(id(tokens)))

    def _generate_group(
        self,
        seqs: list[np.ndarray],
        plan: list[tuple[Any, int]],
        members: list[list[int]],
        samplings: Sequence[RowSampling],
        eos: set[int],
        results: list[list[int]],
    ) -> None:
        """Prefill a decode group chunk by chunk (under max_batch_tokens), then decode all its rows."""
        extra = max(max(samplings[r].max_new_tokens for r in m) for m in members)
        looked = list(plan)
        chunks: list[_Chunk] = []
        parts = self._chunks(seqs, looked, [1] * len(seqs), self.max_batch_tokens, 0)
        order = [i for part in parts for i in part]
        r0 = 0
        for part in parts:
            chunks.append(self._chunk(r0, [seqs[i] for i in part], [plan[i] for i in part]))
            r0 += len(part)
        seqs = [seqs[i] for i in order]
        plan = [plan[i] for i in order]
        members = [members[i] for i in order]
        batch = self._new_batch(chunks, extra)
        logits = torch.cat([self._prefill(batch, c, seqs[c.r0 : c.r1], plan[c.r0 : c.r1]) for c in chunks])
        if self.prefix_cache:
            for j, a in enumerate(seqs):
                self._store_row(batch, j, a, batch.cur)
        # Expand duplicates: one buffer row per output row.
        owner = [j for j, m in enumerate(members) for _ in m]
        rows = [r for m in members for r in m]
        if len(rows) != len(seqs):
            batch.keep(owner)
            logits = logits.index_select(0, torch.tensor(owner, device=self.device))
        prompts = [seqs[j] for j in owner]
        self._decode(batch, logits, prompts, [samplings[r] for r in rows], eos, rows, results)

    def _generate_ragged(
        self,
        group: list[int],
        seqs: list[np.ndarray],
        looked: list[tuple[Any, int]],
        refs: dict[int, int],
        members: list[list[int]],
        samplings: Sequence[RowSampling],
        eos: set[int],
        results: list[list[int]],
    ) -> None:
        """A decode group, ragged: each output row gets a tensor of its own with room for its reply
        and its reused prefix copied in; the new tokens of several rows then run as one packed
        forward (`_prefill_ragged`, cut by `_packed_parts`), each row attending over its own
        columns only, so no padding is computed, masked or copied; then all rows decode together
        (`_decode_ragged`). Duplicate rows are prefilled once and copied.

        After a part's prefill, a cached entry that its rows extend (a whole prefix of theirs) and
        that no later row of this call uses leaves the store: each row will store its prompt plus
        reply, which covers it, and its memory goes now instead of after the call. The rows'
        finished caches are stored as views of their own tensors, not copied."""
        dims = (self.n_layers, 2, self.n_kv_heads)
        kvs: list[torch.Tensor] = []
        prompts: list[np.ndarray] = []
        rows: list[int] = []
        continues: list[bool] = []
        logits_parts: list[torch.Tensor] = []
        for part in self._packed_parts(group, seqs, looked):
            heads: list[torch.Tensor] = []  # the tensor each unique sequence is prefilled into
            owner: list[int] = []
            for j, i in enumerate(part):
                entry, n = looked[i]
                for r in members[i]:
                    kv = torch.empty(
                        *dims,
                        len(seqs[i]) + samplings[r].max_new_tokens,
                        self.head_dim,
                        dtype=self.dtype,
                        device=self.device,
                    )
                    if len(heads) == j:
                        if n:
                            kv[:, :, :, :n] = entry.kv[:, :, :, :n].to(self.device, non_blocking=True)
                        heads.append(kv)
                    kvs.append(kv)
                    prompts.append(seqs[i])
                    rows.append(r)
                    continues.append(entry is not None and n == len(entry.tokens))
                    owner.append(j)
            logits = self._prefill_ragged(heads, [looked[i][1] for i in part], [seqs[i] for i in part])
            first = len(kvs) - len(owner)
            for k, j in enumerate(owner):
                kv = kvs[first + k]
                if kv is not heads[j]:  # a duplicate row: its prompt's columns, copied
                    kv[:, :, :, : len(prompts[first + k])] = heads[j][:, :, :, : len(prompts[first + k])]
            if owner != list(range(len(part))):
                logits = logits.index_select(0, torch.tensor(owner, device=self.device))
            logits_parts.append(logits)
            del logits, heads
            for i in part:
                entry, n = looked[i]
                looked[i] = (None, n)
                if entry is None:
                    continue
                refs[entry.key] -= 1
                if not refs[entry.key] and n == len(entry.tokens):
                    self.store.discard(entry.key)
            del entry  # the last entry's memory must not wait for the decoding to end
        logits = torch.cat(logits_parts) if len(logits_parts) > 1 else logits_parts[0]
        del logits_parts
        self._decode_ragged(kvs, logits, prompts, [samplings[r] for r in rows], eos, rows, results, continues)

    def _packed_parts(
        self, group: list[int], seqs: list[np.ndarray], looked: list[tuple[Any, int]]
    ) -> list[list[int]]:
        """The group's sequences (in its order) cut into packed prefill forwards of at most
        max_batch_tokens tokens, reused prefixes included (a longer sequence is a forward alone):
        a part's conversations are held twice until its prefill ends (the stored entries and the
        rows' own copies), so the cap bounds that overlap as the padded chunks did."""
        return _cut(group, [len(seqs[i]) for i in group], self.max_batch_tokens)

    def _prefill_ragged(self, kvs: list[torch.Tensor], ns: list[int], seqs: list[np.ndarray]) -> torch.Tensor:
        """Run the new tokens of rows that own their keys and values (kvs[b]: the first ns[b]
        columns hold row b's reused prefix) as one packed sequence; the keys and values of row b's
        tokens go to its columns [ns[b], len(seqs[b])). Last-position logits per row [rows, V]."""
        news = [a[n:] for a, n in zip(seqs, ns, strict=True)]
        s = [len(t) for t in news]
        ids = torch.from_numpy(np.concatenate(news)).to(self.device)[None]
        pos = torch.cat([torch.arange(n, n + k) for n, k in zip(ns, s, strict=True)]).to(self.device)[None]
        ends = torch.from_numpy(np.cumsum(s) - 1).to(self.device)
        masks = [
            None if n == 0 or k == 1 else torch.ones(k, n + k, dtype=torch.bool, device=self.device).tril(n)
            for n, k in zip(ns, s, strict=True)
        ]
        token = _RAGGED.set(_RaggedStep(kvs, list(ns), s, masks))
        try:
            out = self.model(input_ids=ids, position_ids=pos, use_cache=False, logits_to_keep=ends)
        finally:
            _RAGGED.reset(token)
        self.stats.forward_calls += 1
        self.stats.computed_tokens += sum(s)
        self.stats.reused_tokens += sum(ns)
        return out.logits[0]

    def _row_draws(
        self, samp: list[RowSampling]
    ) -> tuple[list[torch.Generator], torch.Tensor, torch.Tensor, list[int]]:
        """Per row: its seeded generator (one draw per step), temperature, top_p and reply limit."""
        gens = [torch.Generator().manual_seed(int(s.seed)) for s in samp]
        temps = torch.tensor([float(s.temperature) for s in samp], device=self.device)
        top_ps = torch.tensor([float(s.top_p) for s in samp], device=self.device)
        return gens, temps, top_ps, [int(s.max_new_tokens) for s in samp]

    def _decode_ragged(
        self,
        kvs: list[torch.Tensor | None],
        logits: torch.Tensor,
        prompts: list[np.ndarray],
        samp: list[RowSampling],
        eos: set[int],
        rows: list[int],
        results: list[list[int]],
        continues: list[bool],
    ) -> None:
        """Decode rows that own their keys and values (kvs[k]: the first len(prompts[k]) columns
        hold prompt k) until each one ends; a finished row stops costing work at once. Same draws and
        stopping rule as `_decode`. continues[k]: prompt k extended a stored conversation (its
        cache is stored as one, `PrefixKVStore.put`)."""
        gens, temps, top_ps, limits = self._row_draws(samp)
        out: list[list[int]] = [[] for _ in samp]
        live = list(range(len(samp)))  # rows still decoding, in the order of logits' rows
        step = 0
        while live:
            u = torch.tensor([float(torch.rand((), generator=gens[k])) for k in live], device=self.device)
            nxt = _sample(logits.float(), temps[live], top_ps[live], u).tolist()
            still: list[int] = []
            feed: list[int] = []
            for k, tok in zip(live, nxt, strict=True):
                done = limits[k] == 0 or tok in eos
                if not done:
                    out[k].append(tok)
                    done = len(out[k]) >= limits[k]
                if not done:
                    still.append(k)
                    feed.append(tok)
                    continue
                if self.prefix_cache:  # prompt + the generated tokens fed back so far
                    self._store_own(prompts[k], out[k][:step], kvs[k], continues[k])
                kvs[k] = None
            if not still:
                break
            ctx = _RaggedStep([kvs[k] for k in still], [len(prompts[k]) + step for k in still])
            ids = torch.tensor(feed, dtype=torch.long, device=self.device)[:, None]
            pos = torch.tensor(ctx.n, dtype=torch.long, device=self.device)[:, None]
            token = _RAGGED.set(ctx)
            try:
                logits = self.model(
                    input_ids=ids, position_ids=pos, use_cache=False, logits_to_keep=1
                ).logits[:, -1, :]
            finally:
                _RAGGED.reset(token)
            self.stats.forward_calls += 1
            self.stats.generated_tokens += len(still)
            live = still
            step += 1
        for k, r in enumerate(rows):
            results[r] = out[k]

    def _store_own(self, prompt: np.ndarray, generated: list[int], kv: Any, continues: bool) -> None:
        """Store a ragged row's cache (prompt + generated tokens) as a view of its own tensor."""
        toks = np.concatenate([prompt, np.asarray(generated, dtype=np.int64)]) if generated else prompt
        nbytes = len(toks) * self.kv_bytes_per_token
        if nbytes > self.store.max_bytes:
            return
        digests = None if generated else self._digests.get(id(prompt))
        self.store.put(toks, kv[:, :, :, : len(toks)], nbytes, digests=digests, continues=continues)

    def _decode(
        self,
        batch: _Batch,
        logits: torch.Tensor,
        prompts: list[np.ndarray],
        samp: list[RowSampling],
        eos: set[int],
        rows: list[int],
        results: list[list[int]],
    ) -> None:
        """Decode every row of `batch` (row k answers rows[k]) until each one ends.

        A finished row keeps its buffer row (fed padding, its logits ignored) until a quarter of the
        buffer's rows have finished; then the buffer is compacted, so that later steps read less.
        """
        lengths = torch.tensor([len(a) for a in prompts], dtype=torch.long, device=self.device)
        gens, temps, top_ps, limits = self._row_draws(samp)
        out: list[list[int]] = [[] for _ in samp]
        slot = list(range(len(samp)))  # buffer row -> index in samp, or -1 once finished
        step = 0
        while True:
            live = [b for b, k in enumerate(slot) if k >= 0]
            ks = [slot[b] for b in live]
            # draw this step's token for every live row (one draw per row and step, as alone)
            u = torch.tensor([float(torch.rand((), generator=gens[k])) for k in ks], device=self.device)
            sel = torch.tensor(live, device=self.device)
            nxt = _sample(logits.index_select(0, sel).float(), temps[ks], top_ps[ks], u).tolist()
            feed = [self.pad_token_id] * len(slot)
            for b, k, tok in zip(live, ks, nxt, strict=True):
                if limits[k] == 0:
                    slot[b] = -1
                    continue
                if tok in eos:
                    done = True
                else:
                    out[k].append(tok)
                    done = len(out[k]) >= limits[k]
                if done:
                    slot[b] = -1
                    if self.prefix_cache and step:  # prompt + the generated tokens fed back so far
                        toks = np.concatenate([prompts[k], np.asarray(out[k][:step], dtype=np.int64)])
                        self._store_row(batch, b, toks, batch.cur + step)
                else:
                    feed[b] = tok
            n_live = sum(k >= 0 for k in slot)
            if not n_live:
                break
            if len(slot) - n_live >= max(1, len(slot) // 4):
                keep = [b for b, k in enumerate(slot) if k >= 0]
                batch.compact(keep)
                slot = [slot[b] for b in keep]
                feed = [feed[b] for b in keep]
            ks = [max(k, 0) for k in slot]
            col = batch.cur + step
            ids = torch.tensor(feed, dtype=torch.long, device=self.device)[:, None]
            pos = (lengths[ks] + step)[:, None]
            batch.valid[:, col] = True
            mask = batch.valid[:, None, None, : col + 1]
            logits = self._forward(ids, pos, mask, batch.buf, col)
            self.stats.forward_calls += 1
            self.stats.generated_tokens += n_live
            step += 1
        for k, r in enumerate(rows):
            results[r] = out[k]


#: Sampling reads the most likely tokens first; this many, then this many, then the whole vocabulary.
_HEADS = (64, 1024)


def _sample(logits: torch.Tensor, temps: torch.Tensor, top_ps: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """One token per row: greedy where temperature is 0, else nucleus sampling by inverse CDF of u.

    The CDF is walked in descending-probability order (stable: ties by token id), in float64, even
    at top_p = 1. Walking it in vocabulary order would skip the sort but was measured to break
    batch-invariance: on the embedded model, one of four 256-token samples diverged between
    batched and one-at-a-time decoding, where the sorted walk kept all four equal.

    Most draws land among the few most likely tokens, so the rows are first resolved on the top
    64, then the top 1024, and only the rest on a sort of the whole vocabulary (`_sample_sorted`,
    the definition). A head resolves a row only when the draw provably picks the token that the
    full sort would pick: the head's CDF is the full CDF's first entries (same additions, same
    order), and the full CDF's total, which the draw scales, is bounded by the row's float64 sum
    plus the summation error bound; the row is resolved when the whole interval of possible targets
    falls into one head token. So the tokens are those of `_sample_sorted`, bit for bit (tested),
    at a fraction of the cost (the sort of 49,152 float64 took about 3.5 ms per row and step).
    """
    greedy = logits.argmax(dim=-1)
    if bool((temps <= 0).all()):
        return greedy
    t = torch.where(temps > 0, temps, torch.ones_like(temps)).double()
    probs = torch.softmax(logits.double() / t[:, None], dim=-1)
    out = greedy.clone()
    todo = (temps > 0).nonzero().flatten()
    for k in _HEADS:
        if not len(todo) or k >= probs.shape[-1]:
            break
        pick, ok = _sample_head(probs[todo], top_ps[todo].double(), u[todo].double(), k)
        out[todo[ok]] = pick[ok]
        todo = todo[~ok]
    if len(todo):
        out[todo] = _sample_sorted(probs[todo], top_ps[todo], u[todo])
    return out


def _sample_sorted(probs: torch.Tensor, top_ps: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """The sampling rule on a full stable sort of the vocabulary (probabilities in float64)."""
    sp, si = torch.sort(probs, dim=-1, descending=True, stable=True)
    before = torch.cumsum(sp, dim=-1) - sp  # mass of strictly more likely tokens
    sp = torch.where(before < top_ps[:, None], sp, torch.zeros_like(sp))
    cdf = torch.cumsum(sp, dim=-1)
    target = (u.double() * cdf[:, -1])[:, None]
    pick = torch.searchsorted(cdf, target, right=True).clamp(max=sp.shape[-1] - 1)
    return si.gather(-1, pick).squeeze(-1)


def _sample_head(
    probs: torch.Tensor, top_ps: torch.Tensor, u: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """`_sample_sorted` on the k most likely tokens: (token, whether that is provably its answer)."""
    V = probs.shape[-1]
    vals, idx = torch.topk(probs, k + 1, dim=-1, sorted=True)
    # The head must be exactly the first k entries of the stable sort: no tie across its edge, and
    # ties inside it ordered by token id.
    clean = vals[:, k] < vals[:, k - 1]
    idx, _ = torch.sort(idx[:, :k], dim=-1)
    hv = probs.gather(-1, idx)
    sp, order = torch.sort(hv, dim=-1, descending=True, stable=True)
    si = idx.gather(-1, order)
    cum = torch.cumsum(sp, dim=-1)
    tp = top_ps[:, None]
    kept = torch.where(cum - sp < tp, sp, torch.zeros_like(sp))
    cdf = torch.cumsum(kept, dim=-1)
    total = probs.sum(-1)
    # Summing V non-negative float64 numbers in any order errs by at most (V - 1) * 2^-53 * sum.
    eps = V * 2.0**-51 * total + 2.0**-1000  # twice the bound: the sorted sum errs too
    full = top_ps >= 1.0
    # top_p = 1: every token is kept but those (at the very end) whose preceding mass rounds to
    # >= 1, which hold at most about eps: the total is within [sum - 3 eps, sum + eps].
    # top_p < 1: resolved only if the nucleus closes inside the head with a margin, so that no
    # token beyond it can be kept; then the total is the head's last CDF value.
    closed = (kept == 0).any(-1) & (cum[:, -1] >= top_ps + 2 * eps)
    lo = torch.where(full, total - 3 * eps, cdf[:, -1])
    hi = torch.where(full, total + eps, cdf[:, -1])
    t_lo = u * lo * (1 - 2.0**-50)
    t_hi = u * hi * (1 + 2.0**-50)
    j_lo = torch.searchsorted(cdf, t_lo[:, None], right=True).squeeze(-1)
    j_hi = torch.searchsorted(cdf, t_hi[:, None], right=True).squeeze(-1)
    ok = clean & (full | closed) & (j_lo == j_hi) & (j_hi < k)
    pick = si.gather(-1, j_lo.clamp(max=k - 1)[:, None]).squeeze(-1)
    return pick, ok
