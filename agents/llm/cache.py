"""Backend wrappers: a persistent response cache, a call counter and a budget guard.

They all implement `agents.llm.backend.Backend`, so they stack in front of any backend:

    CachedBackend(CountingBackend(BudgetGuard(make_backend("embedded"), max_calls=...)), store)

- `CachedBackend` answers a conversation it has seen before (same model id, same sampling
  settings including the seed, same messages; for logprob mode the same choices) from a sqlite
  file, and sends only the misses on, each distinct request once per batch. Backends are
  deterministic given the sampling seed, so a cached reply is the reply the model would give
  again. A repeated run therefore makes no calls.
- `CountingBackend` counts what reaches the model: calls (batches), conversations and tokens.
- `BudgetGuard` refuses a batch before it is sent when it would exceed a maximum number of
  model conversations, or when the tokens used so far have reached a maximum (token counts are
  known only after a call, so the token limit can be overshot by at most one batch).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from langchain_core.messages import BaseMessage

from agents.llm.backend import Backend, BackendError, Conversation, Generation, Reproducibility, Sampling

__all__ = [
    "BudgetExceeded",
    "BudgetGuard",
    "CachedBackend",
    "CallStats",
    "CountingBackend",
    "Ledger",
    "MemoryLedger",
    "ResponseStore",
    "conversation_key",
]


def _message_dict(m: BaseMessage) -> dict[str, Any]:
    d: dict[str, Any] = {"type": m.type, "content": m.content}
    if m.name:
        d["name"] = m.name
    return d


def conversation_key(model_id: str, kind: str, conversation: Conversation, settings: Any) -> str:
    """Hex digest identifying one request: model, kind ("generate"/"logprobs"), settings, messages."""
    payload = {
        "model": model_id,
        "kind": kind,
        "settings": settings,
        "messages": [_message_dict(m) for m in conversation],
    }
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ResponseStore:
    """A key -> JSON value table in one sqlite file (created on first use; safe across processes)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = self._open(self.path)
        return self._conn

    @staticmethod
    def _open(path: Path, wait: float = 60.0) -> sqlite3.Connection:
        """Open (and on first use create) the file. Processes sharing one cache (pool workers, Ray
        actors) may all create it at once; SQLite answers "database is locked" to the losers without
        calling its busy handler while the journal mode changes, so opening is retried (bounded)."""
        deadline = time.monotonic() + wait
        delay = 0.01
        while True:
            conn = sqlite3.connect(path, timeout=wait, check_same_thread=False)
            try:
                if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                    conn.execute("PRAGMA journal_mode=WAL")
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
                )
                conn.commit()
                return conn
            except sqlite3.OperationalError as e:
                conn.close()
                if "locked" not in str(e) and "busy" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.5)

    def get_many(self, keys: Sequence[str]) -> dict[str, Any]:
        """Values found for `keys` (missing keys are absent)."""
        if not keys:
            return {}
        with self._lock:
            db = self._db()
            out: dict[str, Any] = {}
            uniq = list(dict.fromkeys(keys))
            for i in range(0, len(uniq), 500):
                chunk = uniq[i : i + 500]
                q = f"SELECT key, value FROM responses WHERE key IN ({','.join('?' * len(chunk))})"
                for k, v in db.execute(q, chunk):
                    out[k] = json.loads(v)
            return out

    def put_many(self, items: dict[str, Any]) -> None:
        """Store values (one transaction, durable on return)."""
        if not items:
            return
        with self._lock:
            db = self._db()
            db.executemany(
                "INSERT OR REPLACE INTO responses (key, value) VALUES (?, ?)",
                [(k, json.dumps(v, ensure_ascii=False)) for k, v in items.items()],
            )
            db.commit()

    def __len__(self) -> int:
        with self._lock:
            return int(self._db().execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class _Wrapper(Backend):
    """Delegates identity to the wrapped backend. Nothing else is forwarded implicitly, so no
    call can reach the model around the cache, the counter or the guard."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.model_id = inner.model_id

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()

    def reproducibility(self) -> Reproducibility:
        """The wrapped backend's claim (a cache replays answers; it does not make a model repeatable)."""
        return self.inner.reproducibility()

    def reset_prefix_cache(self) -> None:
        self.inner.reset_prefix_cache()

    def choice_logprobs(
        self, conversations: Sequence[Conversation], choices: Sequence[str]
    ) -> list[dict[str, float | None]]:
        return [lp for lp, _ in self.choice_logprobs_with_drops(conversations, choices)]

    @abstractmethod
    def choice_logprobs_with_drops(
        self, conversations: Sequence[Conversation], choices: Sequence[str]
    ) -> list[tuple[dict[str, float | None], int | None]]:
        """Log-probabilities and the wrapped backend's dropped-message counts (None where unknown)."""


class CachedBackend(_Wrapper):
    """Answers repeated requests from a `ResponseStore`; only misses reach the wrapped backend."""

    def __init__(self, inner: Backend, store: ResponseStore) -> None:
        super().__init__(inner)
        self.store = store
        self.hits = 0
        self.misses = 0

    def _misses(self, keys: Sequence[str], found: dict[str, Any]) -> list[int]:
        """Indices to send: the first of each distinct key not in the store (a request repeated
        within one batch is sent once, and its repeats count as hits)."""
        todo, seen = [], set()
        for i, k in enumerate(keys):
            if k not in found and k not in seen:
                seen.add(k)
                todo.append(i)
        self.hits += len(keys) - len(todo)
        self.misses += len(todo)
        return todo

    def generate(
        self, conversations: Sequence[Conversation], sampling: Sequence[Sampling]
    ) -> list[Generation]:
        if len(conversations) != len(sampling):
            raise ValueError(f"{len(conversations)} conversations for {len(sampling)} sampling settings")
        keys = [
            conversation_key(self.model_id, "generate", c, s.as_dict())
            for c, s in zip(conversations, sampling, strict=True)
        ]
        found = self.store.get_many(keys)
        todo = self._misses(keys, found)
        if todo:
            fresh = self.inner.generate([conversations[i] for i in todo], [sampling[i] for i in todo])
            new = {keys[i]: asdict(g) for i, g in zip(todo, fresh, strict=True)}
            self.store.put_many(new)
            found.update(new)
        return [Generation(**found[k]) for k in keys]

    def choice_logprobs_with_drops(
        self, conversations: Sequence[Conversation], choices: Sequence[str]
    ) -> list[tuple[dict[str, float | None], int | None]]:
        keys = [conversation_key(self.model_id, "logprobs", c, list(choices)) for c in conversations]
        found = self.store.get_many(keys)
        todo = self._misses(keys, found)
        if todo:
            fresh = self.inner.choice_logprobs_with_drops([conversations[i] for i in todo], list(choices))
            new = {keys[i]: {"logprobs": lp, "dropped": d} for i, (lp, d) in zip(todo, fresh, strict=True)}
            self.store.put_many(new)
            found.update(new)
        return [(dict(found[k]["logprobs"]), found[k]["dropped"]) for k in keys]


@dataclass
class CallStats:
    """What reached a model: calls (batches), conversations, and tokens where reported."""

    calls: int = 0
    conversations: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class CountingBackend(_Wrapper):
    """Counts the calls and conversations that reach the wrapped backend."""

    def __init__(self, inner: Backend, stats: CallStats | None = None) -> None:
        super().__init__(inner)
        self.stats = stats if stats is not None else CallStats()

    def generate(
        self, conversations: Sequence[Conversation], sampling: Sequence[Sampling]
    ) -> list[Generation]:
        out = self.inner.generate(conversations, sampling)
        self.stats.calls += 1
        self.stats.conversations += len(conversations)
        for g in out:
            self.stats.prompt_tokens += g.prompt_tokens or 0
            self.stats.completion_tokens += g.completion_tokens or 0
        return out

    def choice_logprobs_with_drops(
        self, conversations: Sequence[Conversation], choices: Sequence[str]
    ) -> list[tuple[dict[str, float | None], int | None]]:
        out = self.inner.choice_logprobs_with_drops(conversations, choices)
        self.stats.calls += 1
        self.stats.conversations += len(conversations)
        return out


class BudgetExceeded(BackendError):
    """A model call was refused because it would exceed the run's budget."""


class Ledger(Protocol):
    """Where a budget's spending lives (a run store: the spending of every session of the run)."""

    def spent(self) -> tuple[int, int]:
        """Model calls (conversations) and tokens spent so far."""

    def spend(self, calls: int, tokens: int) -> None:
        """Add to the spending, durably."""


class MemoryLedger:
    """A ledger of this process only (no run store)."""

    def __init__(self) -> None:
        self.calls = self.tokens = 0

    def spent(self) -> tuple[int, int]:
        return self.calls, self.tokens

    def spend(self, calls: int, tokens: int) -> None:
        self.calls += calls
        self.tokens += tokens


class BudgetGuard(CountingBackend):
    """Refuses a batch, before sending it, that would pass `max_calls` conversations, or once the
    tokens used reach `max_tokens` (None: no limit). Spending is kept in `ledger` (default: this
    process); the calls of a batch are recorded there before the batch is sent, so a kill can only
    over-count and a budget is never exceeded, however often a run is resumed."""

    def __init__(
        self,
        inner: Backend,
        max_calls: int | None = None,
        max_tokens: int | None = None,
        stats: CallStats | None = None,
        ledger: Ledger | None = None,
    ) -> None:
        super().__init__(inner, stats)
        for name, v in (("max_calls", max_calls), ("max_tokens", max_tokens)):
            if v is not None and v < 0:
                raise ValueError(f"{name}={v} must be >= 0 or None")
        self.max_calls, self.max_tokens = max_calls, max_tokens
        self.ledger: Ledger = ledger if ledger is not None else MemoryLedger()

    def _reserve(self, n: int) -> None:
        calls, tokens = self.ledger.spent()
        if self.max_calls is not None and calls + n > self.max_calls:
            raise BudgetExceeded(
                f"budget: {self.model_id}: {calls} model calls made, {n} more would pass "
                f"budget.max_calls={self.max_calls}"
            )
        if self.max_tokens is not None and tokens >= self.max_tokens:
            raise BudgetExceeded(
                f"budget: {self.model_id}: {tokens} tokens used, budget.max_tokens={self.max_tokens} reached"
            )
        self.ledger.spend(n, 0)

    def generate(
        self, conversations: Sequence[Conversation], sampling: Sequence[Sampling]
    ) -> list[Generation]:
        self._reserve(len(conversations))
        before = self.stats.tokens
        out = super().generate(conversations, sampling)
        self.ledger.spend(0, self.stats.tokens - before)
        return out

    def choice_logprobs_with_drops(
        self, conversations: Sequence[Conversation], choices: Sequence[str]
    ) -> list[tuple[dict[str, float | None], int | None]]:
        self._reserve(len(conversations))
        return super().choice_logprobs_with_drops(conversations, choices)
