"""A store of computed key/value caches, keyed by the token ids they cover (prefix reuse).

Each entry holds the keys and values of one token sequence as one tensor [layers, 2, kv_heads, tokens,
head_dim]. Because attention is causal, the first n positions of an entry are exactly the cache of
its first n tokens, so a lookup returns the entry sharing the longest common prefix with a query,
not only entries that are whole prefixes of it: trials of one value share the value-induction
question, items of one trial share everything before the new item. Lookups cost O(query length):
an index of hashed 16-token blocks finds the entries sharing the most whole blocks, then the exact
common prefix is measured on those (prefixes shorter than one block are not worth reusing).

Memory stays bounded: an entry that is a prefix of a newly stored one is dropped (the new one covers
it), and least-recently-used entries are evicted beyond the cap. Entries looked up or stored during
the current call are protected from eviction until `release()`. The cap is `max_bytes`, raised to
9/8 of the largest working set (the bytes of the entries a call looked up or stored, and still held)
of the last `WINDOW` calls, and at most `GROWTH` x `max_bytes`: the conversations a run steps
together stay whole even when they outgrow `max_bytes` (evicting one only to recompute it in the
next call is all cost), while what they no longer use (finished conversations, one-shot prompts) is
evicted beyond that; so are, first, the entries that do not continue a conversation (one-shot
prompts such as the extractor's, and the entries that a new one branches off near their end: a
re-ask's earlier reply), oldest first, and only then the conversations. A new entry that does not fit without evicting protected ones is not stored
(its rows reuse their older, shorter prefix next time instead of thrashing the whole store).
Storing is also O(query length), not O(entries): a second index maps the digest of each entry's last
whole block to the entry, which finds the entries a new one extends.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["KVEntry", "PrefixKVStore"]


@dataclass(eq=False)
class KVEntry:
    """The cache of one token sequence."""

    key: int
    tokens: np.ndarray  # int64 [T]
    kv: Any  # torch.Tensor [layers, 2, kv_heads, T, head_dim]
    nbytes: int
    digests: list[bytes] = field(default_factory=list)
    lasting: bool = False  # continues a conversation (see `put`)


#: Lookups go through hashes of whole blocks of this many tokens, then refine token by token.
BLOCK = 16
#: Calls whose working sets raise the cap (a trial's item step is at most 8 calls: item, then up to
#: 3 x (extractor, re-ask), then the last extractor), and the most the cap may grow over max_bytes.
WINDOW = 32
#: 16: a --paper worker's 40 conversations reach about 5 GB by the last item, 13x the CPU default of
#: 384 MiB (agents/llm/local.py); the batch bounds what the store actually holds.
GROWTH = 16
#: An entry sharing at least this share of its tokens with a new one that branches off it is a sibling.
SIBLING = 0.9


def block_digests(tokens: np.ndarray) -> list[bytes]:
    """Digest of tokens[: BLOCK * k] for k = 1 .. len // BLOCK (incremental, O(len))."""
    h = hashlib.blake2b(digest_size=16)
    out = []
    data = np.ascontiguousarray(tokens, dtype=np.int64)
    for k in range(len(data) // BLOCK):
        h.update(data[k * BLOCK : (k + 1) * BLOCK].tobytes())
        out.append(h.copy().digest())
    return out


def common_prefix_len(a: np.ndarray, b: np.ndarray) -> int:
    """Length of the longest common prefix of two int arrays."""
    n = min(len(a), len(b))
    if n == 0:
        return 0
    diff = np.flatnonzero(a[:n] != b[:n])
    return int(diff[0]) if diff.size else n


class PrefixKVStore:
    """LRU store of KV caches with a byte cap; see the module docstring."""

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = int(max_bytes)
        self.bytes = 0
        self._entries: OrderedDict[int, KVEntry] = OrderedDict()
        self._protected: set[int] = set()
        self._blocks: dict[bytes, set[int]] = {}  # block digest -> entries holding that block
        self._ends: dict[bytes, set[int]] = {}  # digest of an entry's last whole block -> entries
        self._short: set[int] = set()  # entries shorter than one block
        self._recent: deque[int] = deque(maxlen=WINDOW)  # working-set bytes of the last calls
        self._working = 0  # bytes of the protected entries
        self._discarded = 0  # bytes of this call's discarded entries still counted in _working
        self._next_key = 0
        self.evictions = 0
        self.rejected = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def cap(self) -> int:
        """The byte cap now: max_bytes, or 9/8 of the largest recent working set (see module doc)."""
        working = max(max(self._recent, default=0), self._working)
        return min(max(self.max_bytes, working + working // 8), GROWTH * self.max_bytes)

    def _protect(self, key: int) -> None:
        if key not in self._protected:
            self._protected.add(key)
            self._working += self._entries[key].nbytes

    def clear(self) -> None:
        self._entries.clear()
        self._protected.clear()
        self._recent.clear()
        self._working = 0
        self._discarded = 0
        self._blocks.clear()
        self._ends.clear()
        self._short.clear()
        self.bytes = 0

    def _candidates(self, tokens: np.ndarray, digests: list[bytes] | None = None) -> set[int]:
        """Keys of the entries sharing the most whole leading blocks with `tokens` (empty: none)."""
        found: set[int] = set()
        for d in digests if digests is not None else block_digests(tokens):
            keys = self._blocks.get(d)
            if not keys:
                break
            found = keys
        return set(found)

    def _remove(self, key: int) -> None:
        entry = self._entries.pop(key)
        self.bytes -= entry.nbytes
        if key in self._protected:
            self._protected.discard(key)
            self._working -= entry.nbytes
        for d in entry.digests:
            keys = self._blocks.get(d)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._blocks[d]
        if entry.digests:
            ends = self._ends[entry.digests[-1]]
            ends.discard(key)
            if not ends:
                del self._ends[entry.digests[-1]]
        else:
            self._short.discard(key)

    def longest_prefix(
        self, tokens: np.ndarray, limit: int, digests: list[bytes] | None = None
    ) -> tuple[KVEntry | None, int]:
        """The entry sharing the longest prefix with `tokens` (at most `limit` tokens) and that length.

        The entry is marked used (LRU) and protected until `release()`.
        """
        best: KVEntry | None = None
        best_n = 0
        if len(tokens) == 0 or limit <= 0:
            return None, 0
        for key in self._candidates(tokens, digests):
            entry = self._entries[key]
            n = min(common_prefix_len(entry.tokens, tokens), limit)
            if n > best_n:
                best, best_n = entry, n
        if best is not None:
            self._entries.move_to_end(best.key)
            self._protect(best.key)
        return best, best_n

    def put(
        self,
        tokens: np.ndarray,
        kv: Any,
        nbytes: int,
        digests: list[bytes] | None = None,
        continues: bool = False,
    ) -> bool:
        """Store the cache of `tokens`; False when it was redundant or did not fit.

        `digests` (block_digests(tokens)) may be passed when already computed. The entry continues
        a conversation (it is evicted after the one-shot entries) when it extends a stored entry or
        `continues` says that its prompt did (an engine that took that entry out already).
        """
        superseded: list[int] = []
        digests = block_digests(tokens) if digests is None else digests
        # Only a few entries are compared, whatever the store holds: an entry covering `tokens`
        # holds all of its whole blocks; an entry that `tokens` extends ends (its last whole block)
        # at one of `tokens`' block digests, or is shorter than one block.
        covering = self._blocks.get(digests[-1], set()) if digests else set(self._entries)
        extended = set(self._short).union(*(self._ends.get(d, ()) for d in digests))
        for key in sorted(covering | extended):
            entry = self._entries[key]
            n = common_prefix_len(entry.tokens, tokens)
            if n == len(tokens):  # an existing entry already covers these tokens
                self._entries.move_to_end(key)
                return False
            if n == len(entry.tokens):
                superseded.append(key)
        self._demote_siblings(tokens, digests, superseded)
        freed = sum(self._entries[k].nbytes for k in superseded)
        working = self._working - sum(self._entries[k].nbytes for k in superseded if k in self._protected)
        cap = max(self.cap, min(working + nbytes + (working + nbytes) // 8, GROWTH * self.max_bytes))
        need = self.bytes - freed + nbytes - cap
        evict: list[int] = []
        if need > 0:
            one_shot = [k for k, e in self._entries.items() if not e.lasting]
            for key in [*one_shot, *(k for k, e in self._entries.items() if e.lasting)]:  # each oldest first
                entry = self._entries[key]
                if key in self._protected or key in superseded:
                    continue
                evict.append(key)
                need -= entry.nbytes
                if need <= 0:
                    break
            if need > 0:
                self.rejected += 1
                return False
        for key in superseded + evict:
            self._remove(key)
        self.evictions += len(evict)
        self._next_key += 1
        entry = KVEntry(
            key=self._next_key,
            tokens=tokens,
            kv=kv,
            nbytes=nbytes,
            digests=digests,
            lasting=continues or bool(superseded),
        )
        self._entries[entry.key] = entry
        for d in digests:
            self._blocks.setdefault(d, set()).add(entry.key)
        if digests:
            self._ends.setdefault(digests[-1], set()).add(entry.key)
        else:
            self._short.add(entry.key)
        self.bytes += nbytes
        self._protect(entry.key)
        return True

    def _demote_siblings(self, tokens: np.ndarray, digests: list[bytes], superseded: list[int]) -> None:
        """Make the entries that `tokens` branches off near their end the first to evict.

        Such a sibling is the same prompt answered before, differently: a re-ask's earlier reply,
        whose conversation has moved on to this one. Left in LRU order it would outlive the
        conversations that were only answered once (and so touched earlier), and evict them.
        """
        for key in self._candidates(tokens, digests) - set(superseded):
            entry = self._entries[key]
            n = common_prefix_len(entry.tokens, tokens)
            if n < len(entry.tokens) and n < len(tokens) and n >= SIBLING * len(entry.tokens):
                self._entries.move_to_end(key, last=False)
                entry.lasting = False

    def discard(self, key: int) -> None:
        """Drop entry `key` now (if still held): its tokens are about to be covered by a new entry.

        An entry this call looked up still counts in the call's working set (it was used), up to
        `max_bytes` per call, so the cap keeps some headroom beyond the conversations: measured on
        16 `--paper` episodes, a cap counting only the new entries evicted the extractor prompts
        that the next rounds reuse (59,622 tokens computed against 36,593 with room to spare),
        while counting every discarded entry (the old + new headroom of the padded path) lifted the
        peak from 3.5 to 4.5 GB."""
        if key in self._entries:
            used = self._entries[key].nbytes if key in self._protected else 0
            self._remove(key)
            used = min(used, self.max_bytes - self._discarded)
            self._discarded += used
            self._working += used

    def release(self) -> None:
        """End of a call: entries looked up or stored so far may be evicted again."""
        self._recent.append(self._working)
        self._protected.clear()
        self._working = 0
        self._discarded = 0
