"""Token-level batched inference for a Hugging Face causal LM, with shared-prefix KV reuse.

`PrefixCachingEngine` takes token-id sequences (no tokenizer), so the GPU benchmark can drive it
with random ids. Two operations:

- `end_logprobs(rows, read_ids)`: one forward pass per batch; the log-softmax over the full
  vocabulary at each row's last position, read at `read_ids`;
- `generate(rows, samplings, eos_ids)`: batched decoding with per-row seeds.

Batches are padded *in two segments*: each row's reused prefix cache is left-padded to the batch's
longest prefix P, its new tokens are left-padded to the longest new segment S. Positions are the
rows' true positions and a boolean 4D mask hides the padding, so a row's result does not depend on
which rows share its batch (up to float rounding). Padding queries attend to themselves only, so
no attention row is empty (no NaN). Rows are sorted by (reused, total) length before chunking, so
rows of the same trial round share batches and padding stays small.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
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
    extra: dict[str, Any] = field(default_factory=dict)

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


def _sdpa_gqa(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attention_mask: Any, **kw: Any):  # noqa: ANN202
    """transformers' "sdpa" attention, except for grouped-query attention with a mask on CPU.

    There transformers repeats the keys and values to the query heads (it avoids SDPA's `enable_gqa`
    because CUDA kernels fall back to the math kernel with a mask). On CPU, `enable_gqa` gives the
    same numbers (bit-identical in our checks) and skips copying the whole padded cache per layer.
    Measured on the embedded model (CPU benchmark, item phase of 4 episodes, one thread): attention
    plus copies 4.7 s -> 4.1 s, the phase 13.6 s -> 12.8 s.
    """
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    groups = getattr(module, "num_key_value_groups", 1)
    plain = kw.get("dropout", 0.0) == 0.0 and kw.get("position_bias") is None and kw.get("softcap") is None
    if groups > 1 and attention_mask is not None and query.shape[2] > 1 and query.device.type == "cpu" and plain:
        out = torch.nn.functional.scaled_dot_product_attention(
            query, key, value, attn_mask=attention_mask, scale=kw.get("scaling"), enable_gqa=True
        )
        return out.transpose(1, 2).contiguous(), None
    return sdpa_attention_forward(module, query, key, value, attention_mask, **kw)


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
    """Layout of one padded batch: rows' reused prefix lengths p, new lengths s, and the KV buffer."""

    def __init__(
        self,
        p: list[int],
        s: list[int],
        extra: int,
        dims: tuple[int, int, int],
        dtype: torch.dtype,
        device: Any,
    ) -> None:
        self.p, self.s = p, s
        self.P, self.S = max(p), max(s)
        self.cur = self.P + self.S  # columns filled after the prefill
        self.cap = self.cur + extra
        n_layers, n_heads, head_dim = dims
        # Uninitialised: every column a forward reads is written first (prefixes are copied in, new
        # and generated tokens are written by the cache update) except the prefix padding, zeroed
        # here so that masked columns hold finite numbers (a masked NaN would still poison SDPA).
        self.buf = torch.empty(n_layers, 2, len(p), n_heads, self.cap, head_dim, dtype=dtype, device=device)
        valid = torch.zeros(len(p), self.cap, dtype=torch.bool)
        for i, (pi, si) in enumerate(zip(p, s, strict=True)):
            if pi < self.P:
                self.buf[:, :, i, :, : self.P - pi] = 0
            valid[i, self.P - pi : self.P] = True
            valid[i, self.cur - si : self.cur] = True
        self.valid = valid.to(device)

    def row_kv(self, i: int, upto: int) -> torch.Tensor:
        """A contiguous copy of row i's real KV columns, in order, up to buffer column `upto`.

        Two slices and one concatenation (the reused prefix, then the new and generated tokens):
        about a third faster than gathering the columns with index_select.
        """
        pre = self.buf[:, :, i, :, self.P - self.p[i] : self.P]
        new = self.buf[:, :, i, :, self.cur - self.s[i] : upto]
        return torch.cat([pre, new], dim=-2)


class PrefixCachingEngine:
    """Batched forward passes and decoding over token ids, reusing cached prefixes; see module doc.

    model: a transformers causal LM (already on its device, eval mode). max_batch_tokens: cap on
    rows x padded (prefix + new + generated) length per forward, which bounds the KV buffer and the
    activations. prefix_cache: reuse KV across calls. max_cache_bytes: the store's cap.
    pad_token_id: any valid id (padding is masked).
    """

    def __init__(
        self,
        model: Any,
        *,
        max_batch_tokens: int,
        prefix_cache: bool = True,
        max_cache_bytes: int = 1 << 30,
        pad_token_id: int = 0,
    ) -> None:
        if max_batch_tokens < 1:
            raise ValueError(f"max_batch_tokens must be >= 1, got {max_batch_tokens}")
        self.model = model
        cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
        self.n_layers = int(cfg.num_hidden_layers)
        self.n_kv_heads = int(getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads)
        self.head_dim = int(getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads)
        self.max_positions = int(getattr(cfg, "max_position_embeddings", 1 << 30))
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
        self.max_batch_tokens = int(max_batch_tokens)
        self.prefix_cache = prefix_cache
        self.store = PrefixKVStore(max_cache_bytes if prefix_cache else 0)
        self.pad_token_id = int(pad_token_id)
        self.stats = EngineStats()
        self._cache_kw = _cache_kwarg(model)
        _use_gqa_sdpa(model)
        self._digests: dict[int, list[bytes]] = {}  # block digests of this call's rows, by id()

    # ------------------------------------------------------------------ public
    @property
    def kv_bytes_per_token(self) -> int:
        return self.n_layers * 2 * self.n_kv_heads * self.head_dim * torch.finfo(self.dtype).bits // 8

    def reset_stats(self) -> None:
        self.stats = EngineStats()

    def clear_cache(self) -> None:
        self.store.clear()

    @torch.inference_mode()
    def end_logprobs(self, rows: Sequence[Sequence[int]], read_ids: Sequence[int]) -> np.ndarray:
        """Log-softmax (float32, full vocabulary) at each row's last position, read at `read_ids`.

        Returns float64 [rows, len(read_ids)]. Exact duplicate rows are computed once.
        """
        seqs, inverse, weights = self._dedup(rows)
        ids = torch.tensor(list(read_ids), dtype=torch.long, device=self.device)
        out = np.zeros((len(seqs), len(ids)), dtype=np.float64)
        try:
            for idx, plan in self._plan(seqs, [1] * len(seqs), [0] * len(seqs)):
                batch, logits = self._prefill([seqs[i] for i in idx], plan, extra=0)
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
        decode separately with their own seeds.
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
            for idx, plan in self._plan(seqs, weights, max_new):
                self._generate_batch(
                    [seqs[i] for i in idx], plan, [members[i] for i in idx], samplings, eos, results
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

    def _plan(self, seqs: list[np.ndarray], weights: list[int], extra: list[int]):  # noqa: ANN202
        """Yield (indices into seqs, [(entry, reused_len)]) batches under the token cap.

        A batch's cost is its buffer: (rows incl. duplicates) x (max reused + max new + max extra).
        """
        looked = []
        self._digests: dict[int, list[bytes]] = {}
        for i, a in enumerate(seqs):
            entry, n = None, 0
            if self.prefix_cache:
                self._digests[id(a)] = block_digests(a)
                entry, n = self.store.longest_prefix(a, limit=len(a) - 1, digests=self._digests[id(a)])
            looked.append((i, entry, n))
        looked.sort(key=lambda t: (t[2], len(seqs[t[0]])))
        batch: list[tuple[int, Any, int]] = []
        P = S = X = W = 0
        for i, entry, n in looked:
            nP, nS, nX, nW = max(P, n), max(S, len(seqs[i]) - n), max(X, extra[i]), W + weights[i]
            if batch and nW * (nP + nS + nX) > self.max_batch_tokens:
                yield [b[0] for b in batch], [(b[1], b[2]) for b in batch]
                batch = []
                nP, nS, nX, nW = n, len(seqs[i]) - n, extra[i], weights[i]
            batch.append((i, entry, n))
            P, S, X, W = nP, nS, nX, nW
        if batch:
            yield [b[0] for b in batch], [(b[1], b[2]) for b in batch]

    def _prefill(
        self, seqs: list[np.ndarray], plan: list[tuple[Any, int]], extra: int
    ) -> tuple[_Batch, torch.Tensor]:
        """Run the new tokens of a batch on top of their reused prefixes; last-position logits [B, V]."""
        p = [n for _, n in plan]
        s = [len(a) - n for a, (_, n) in zip(seqs, plan, strict=True)]
        dims = (self.n_layers, self.n_kv_heads, self.head_dim)
        batch = _Batch(p, s, extra, dims, self.dtype, self.device)
        B, P, S = len(seqs), batch.P, batch.S
        for i, (entry, n) in enumerate(plan):
            if n:
                batch.buf[:, :, i, :, P - n : P] = entry.kv[:, :, :, :n].to(self.device, non_blocking=True)
        ids = torch.full((B, S), self.pad_token_id, dtype=torch.long)
        pos = torch.zeros((B, S), dtype=torch.long)
        for i, (a, n) in enumerate(zip(seqs, p, strict=True)):
            ids[i, S - s[i] :] = torch.from_numpy(a[n:])
            pos[i, S - s[i] :] = torch.arange(n, len(a))
        ids, pos = ids.to(self.device), pos.to(self.device)
        dense = P == 0 and min(s) == S  # no padding, nothing reused: plain causal attention
        mask = None if dense else self._mask(batch.valid[:, : P + S], P, S)
        logits = self._forward(ids, pos, mask, batch.buf, P)
        self.stats.forward_calls += 1
        self.stats.computed_tokens += sum(s)
        self.stats.reused_tokens += sum(p)
        self.stats.padded_tokens += B * S - sum(s)
        return batch, logits

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

    def _generate_batch(
        self,
        seqs: list[np.ndarray],
        plan: list[tuple[Any, int]],
        members: list[list[int]],
        samplings: Sequence[RowSampling],
        eos: set[int],
        results: list[list[int]],
    ) -> None:
        extra = max(max(samplings[r].max_new_tokens for r in m) for m in members)
        batch, logits = self._prefill(seqs, plan, extra=extra)
        if self.prefix_cache:
            for j, a in enumerate(seqs):
                self._store_row(batch, j, a, batch.cur)
        # Expand duplicates: one buffer row per output row.
        owner = [j for j, m in enumerate(members) for _ in m]
        rows = [r for m in members for r in m]
        if len(rows) != len(seqs):
            sel = torch.tensor(owner, device=self.device)
            batch.buf = batch.buf.index_select(2, sel)
            batch.valid = batch.valid.index_select(0, sel)
            logits = logits.index_select(0, sel)
            batch.p = [batch.p[j] for j in owner]
            batch.s = [batch.s[j] for j in owner]
        prompts = [seqs[j] for j in owner]
        lengths = torch.tensor([len(a) for a in prompts], dtype=torch.long, device=self.device)
        gens = [torch.Generator().manual_seed(int(samplings[r].seed)) for r in rows]
        temps = torch.tensor([float(samplings[r].temperature) for r in rows], device=self.device)
        top_ps = torch.tensor([float(samplings[r].top_p) for r in rows], device=self.device)
        limits = [int(samplings[r].max_new_tokens) for r in rows]
        out: list[list[int]] = [[] for _ in rows]
        live = list(range(len(rows)))  # positions in the current buffer -> index in rows
        step = 0
        while live:
            # draw this step's token for every live row
            u = torch.tensor([float(torch.rand((), generator=gens[k])) for k in live], device=self.device)
            nxt = _sample(logits.float(), temps, top_ps, u).tolist()
            keep: list[int] = []
            for b, k in enumerate(live):
                if limits[k] == 0:
                    continue
                tok = int(nxt[b])
                if tok in eos:
                    done = True
                else:
                    out[k].append(tok)
                    done = len(out[k]) >= limits[k]
                if done:
                    if self.prefix_cache and step:  # prompt + the generated tokens fed back so far
                        toks = np.concatenate([prompts[k], np.asarray(out[k][:step], dtype=np.int64)])
                        self._store_row(batch, b, toks, batch.cur + step)
                else:
                    keep.append(b)
            if not keep:
                break
            if len(keep) != len(live):
                sel = torch.tensor(keep, device=self.device)
                batch.buf = batch.buf.index_select(2, sel)
                batch.valid = batch.valid.index_select(0, sel)
                batch.p = [batch.p[b] for b in keep]
                batch.s = [batch.s[b] for b in keep]
                temps, top_ps, lengths = temps[sel], top_ps[sel], lengths[sel]
                live = [live[b] for b in keep]
                nxt = [nxt[b] for b in keep]
            col = batch.cur + step
            ids = torch.tensor(nxt, dtype=torch.long, device=self.device)[:, None]
            pos = (lengths + step)[:, None]
            batch.valid[:, col] = True
            mask = batch.valid[:, None, None, : col + 1]
            logits = self._forward(ids, pos, mask, batch.buf, col)
            self.stats.forward_calls += 1
            self.stats.generated_tokens += len(live)
            step += 1
        for k, r in enumerate(rows):
            results[r] = out[k]


def _sample(logits: torch.Tensor, temps: torch.Tensor, top_ps: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """One token per row: greedy where temperature is 0, else nucleus sampling by inverse CDF of u.

    The CDF is walked in descending-probability order (a full sort of the vocabulary) even at
    top_p = 1. Walking it in vocabulary order would skip the sort (12% of a CPU decoding step) but
    was measured to break batch-invariance: on the embedded model, one of four 256-token samples
    diverged between batched and one-at-a-time decoding, where the sorted walk kept all four equal.
    """
    greedy = logits.argmax(dim=-1)
    if bool((temps <= 0).all()):
        return greedy
    t = torch.where(temps > 0, temps, torch.ones_like(temps)).double()
    # float64 so that the CDF's own rounding does not move draws between batch layouts
    probs = torch.softmax(logits.double() / t[:, None], dim=-1)
    sp, si = torch.sort(probs, dim=-1, descending=True, stable=True)
    before = torch.cumsum(sp, dim=-1) - sp  # mass of strictly more likely tokens
    sp = torch.where(before < top_ps[:, None], sp, torch.zeros_like(sp))
    cdf = torch.cumsum(sp, dim=-1)
    target = (u.double() * cdf[:, -1])[:, None]
    pick = torch.searchsorted(cdf, target, right=True).clamp(max=sp.shape[-1] - 1)
    sampled = si.gather(-1, pick).squeeze(-1)
    return torch.where(temps > 0, sampled, greedy)
