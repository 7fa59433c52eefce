"""ChatBackend: any LangChain chat model as a Backend (OpenAI-compatible servers, hosted APIs, fakes).

- generate: one call per conversation through the model's `.batch` with bounded concurrency.
  Sampling settings are passed only where the model declares them (its pydantic fields:
  temperature, top_p, a max-tokens field, seed), so any BaseChatModel works; `describe()` records
  which were passed. With `seed` (ChatOpenAI and OpenAI-compatible servers) the server is asked
  for a reproducible sample (best-effort there); a model without it warns once at temperature > 0.
- choice_logprobs: one call with logprobs=True, top_logprobs=k and one new token; the first
  token's top list gives each choice's log-probability (token variants such as " A" are summed);
  a choice not in the list is None. Needs a model with `logprobs`/`top_logprobs` fields (ChatOpenAI).
- Time limits: every attempt of a call has a wall-clock limit, enforced here for any chat model
  (an HTTP client's own timeout only bounds the wait between two bytes, so a server that trickles
  bytes would never time out). `timeout_s` fixes it; the default is proportionate to the answer
  asked for: `default_timeout_s(n) = min(300, 20 + 0.1 * n)` seconds for a call of n =
  `max_new_tokens` new tokens (20.1 s for a log-prob call, 26.4 s for a 64-token answer, 45.6 s for
  a 256-token value description). An attempt past its limit is abandoned (its worker thread ends
  when the HTTP client's own timeout or the server closes the connection) and counts as a transient
  failure.
- Retries: transient failures (connection, time limit, rate limit, 5xx, unreadable reply) get
  `retries` more attempts (total attempts = retries + 1; the chat model's own retries must be off,
  as make_backend sets them) with exponential backoff `min(max_backoff_s, backoff_s * 2**k)` before
  retry k+1, then BackendError naming the model and URL; client errors (401, 403, 404, 400) fail at
  once. So a server that never answers costs at most `(retries + 1) * limit + sum of the backoffs`.
  A context-length error (or a conversation over `max_context_tokens`) drops the oldest unprotected
  exchange (agents.llm.context) and tries again; the count is recorded. API keys never appear in
  messages: known secrets are redacted from every error text.
- Reproducibility (`reproducibility()`): a server or API is not declared reproducible (seeds are
  best-effort there: two uninterrupted runs through a llama.cpp server gave different
  probabilities and texts) unless the caller says so with `reproducible=True`.
"""

from __future__ import annotations

import contextvars
import json
import math
import re
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout  # not the builtin before 3.11
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import RunnableLambda

from agents.llm.backend import Backend, BackendError, Conversation, Generation, Reproducibility, Sampling
from agents.llm.context import drop_oldest_exchange

__all__ = [
    "DEFAULT_RETRIES",
    "MAX_DEFAULT_TIMEOUT_S",
    "TIMEOUT_BASE_S",
    "TIMEOUT_PER_TOKEN_S",
    "ChatBackend",
    "default_timeout_s",
    "letter_logprobs",
]

#: Default per-attempt time limit: TIMEOUT_BASE_S + TIMEOUT_PER_TOKEN_S per new token asked for,
#: at most MAX_DEFAULT_TIMEOUT_S (see default_timeout_s).
TIMEOUT_BASE_S = 20.0
TIMEOUT_PER_TOKEN_S = 0.1
MAX_DEFAULT_TIMEOUT_S = 300.0
#: Default number of retries of a transient failure (3 attempts in all, as the openai client).
DEFAULT_RETRIES = 2

_MAX_TOKEN_FIELDS = (
    "max_tokens",
    "max_completion_tokens",
    "max_new_tokens",
    "max_output_tokens",
    "num_predict",
)
_CONTEXT_ERROR = re.compile(
    r"context[_ ](?:length|window|size)|maximum context|too many tokens|prompt is too long|"
    r"exceeds? (?:the )?(?:model'?s? )?(?:context|maximum)|requested tokens .* exceed",
    re.IGNORECASE,
)
_FATAL_STATUS = {400, 401, 403, 404, 405, 422}


def default_timeout_s(max_new_tokens: int) -> float:
    """The default wall-clock limit of one attempt asking for `max_new_tokens` new tokens, in seconds:
    `min(MAX_DEFAULT_TIMEOUT_S, TIMEOUT_BASE_S + TIMEOUT_PER_TOKEN_S * max_new_tokens)`.

    The base covers the connection, queueing and the prompt; 0.1 s per token is 10 tokens/s, slower
    than hosted APIs and local servers of small models decode. Set `timeout_s` for a slower model.
    """
    return min(MAX_DEFAULT_TIMEOUT_S, TIMEOUT_BASE_S + TIMEOUT_PER_TOKEN_S * max(0, int(max_new_tokens)))


class _AttemptTimeout(TimeoutError):
    """One attempt passed its wall-clock limit (a transient failure: retried)."""


def _model_name(model: BaseChatModel) -> str:
    for attr in ("model_name", "model", "model_id"):
        v = getattr(model, attr, None)
        if isinstance(v, str) and v:
            return v
    return type(model).__name__


def _model_url(model: BaseChatModel) -> str | None:
    for attr in ("openai_api_base", "base_url", "anthropic_api_url", "endpoint"):
        v = getattr(model, attr, None)
        if isinstance(v, str) and v:
            return v
    return None


def letter_logprobs(message: AIMessage, choices: Sequence[str]) -> dict[str, float | None]:
    """Each choice's log-probability as the first reply token, from OpenAI-style logprobs metadata.

    Reads message.response_metadata["logprobs"]["content"][0] (its token and top_logprobs). Token
    variants that equal the choice after stripping blanks (" A", "A") are summed; choices absent
    from the list map to None. Raises BackendError when the reply carries no logprobs.
    """
    lp = (message.response_metadata or {}).get("logprobs")
    content = lp.get("content") if isinstance(lp, dict) else None
    if not content:
        raise BackendError(
            "the model returned no token logprobs (response_metadata['logprobs'] is empty); "
            "use decision mode 'generate' with this model or server"
        )
    first = content[0]
    seen: dict[str, float] = {}
    for entry in [first, *(first.get("top_logprobs") or [])]:
        tok, val = entry.get("token"), entry.get("logprob")
        if tok is None or val is None:
            continue
        seen.setdefault(tok, float(val))  # the sampled token also appears in the top list
    out: dict[str, float | None] = {}
    for c in choices:
        vals = [v for tok, v in seen.items() if tok.strip() == c and math.isfinite(v)]
        out[c] = None if not vals else float(math.log(sum(math.exp(v) for v in vals)))
    return out


class ChatBackend(Backend):
    """A LangChain chat model behind the Backend contract (see module docstring).

    Arguments: model: any BaseChatModel (its own retries off). model_id: identity for records
    (default: the model's name). url: named in errors (default: the model's base URL).
    max_concurrency: parallel calls in a batch. timeout_s: wall-clock limit of one attempt (None:
    default_timeout_s of the call's max_new_tokens). retries / backoff_s / max_backoff_s: bounded
    retries of transient failures (retries + 1 attempts in all). max_context_tokens + token_counter:
    drop oldest exchanges before a call that would not fit (token_counter defaults to
    model.get_num_tokens_from_messages). top_logprobs: list length asked for in logprob mode (OpenAI
    allows up to 20). reproducible / reproducible_reason: the caller's claim that reruns repeat (a
    scripted model; a server the user has checked); default False. secrets: strings redacted from
    error messages. sleep: the backoff's sleep (tests).
    """

    def __init__(
        self,
        model: BaseChatModel,
        *,
        model_id: str | None = None,
        url: str | None = None,
        max_concurrency: int = 4,
        timeout_s: float | None = None,
        retries: int = DEFAULT_RETRIES,
        backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
        max_context_tokens: int | None = None,
        token_counter: Callable[[Sequence[BaseMessage]], int] | None = None,
        top_logprobs: int = 20,
        max_tokens_in_body: bool = False,
        reproducible: bool = False,
        reproducible_reason: str | None = None,
        secrets: Sequence[str] = (),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency={max_concurrency} must be >= 1")
        if retries < 0:
            raise ValueError(f"retries={retries} must be >= 0")
        if timeout_s is not None and not (math.isfinite(timeout_s) and timeout_s > 0):
            raise ValueError(f"timeout_s={timeout_s} must be a finite number > 0 (or None for the default)")
        for name, v in (("backoff_s", backoff_s), ("max_backoff_s", max_backoff_s)):
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name}={v} must be a finite number >= 0")
        self.model = model
        self.model_id = model_id or _model_name(model)
        self.url = url or _model_url(model)
        self.max_concurrency = max_concurrency
        self.timeout_s = timeout_s
        self.retries, self.backoff_s, self.max_backoff_s = retries, backoff_s, max_backoff_s
        self.max_context_tokens = max_context_tokens
        self._count = token_counter or model.get_num_tokens_from_messages
        self.top_logprobs = top_logprobs
        self.max_tokens_in_body = max_tokens_in_body
        self._secrets = [s for s in secrets if s]
        self._sleep = sleep
        fields = set(type(model).model_fields)
        self._max_field = next((f for f in _MAX_TOKEN_FIELDS if f in fields), None)
        self._passes = [f for f in ("temperature", "top_p", "seed") if f in fields]
        if self._max_field:
            self._passes.append(self._max_field)
        self.supports_seed = "seed" in fields
        self.supports_logprobs = {"logprobs", "top_logprobs"} <= fields
        self._reproducible, self._reproducible_reason = reproducible, reproducible_reason
        self._warned_seed = False

    def reproducibility(self) -> Reproducibility:
        """Declared reproducible only by the caller; otherwise not (seeds are best-effort on servers)."""
        if self._reproducible:
            return Reproducibility(
                True, self._reproducible_reason or "declared reproducible by the user; not verified here"
            )
        seed = (
            "seeds are passed, but servers and APIs honour them on a best-effort basis (two "
            "uninterrupted runs through a llama.cpp server gave different probabilities and texts)"
            if self.supports_seed
            else f"{type(self.model).__name__} takes no seed"
        )
        return Reproducibility(False, f"{self._where()}: {seed}")

    def attempt_timeout_s(self, max_new_tokens: int) -> float:
        """The wall-clock limit of one attempt asking for `max_new_tokens` new tokens."""
        return self.timeout_s if self.timeout_s is not None else default_timeout_s(max_new_tokens)

    # -- identity -----------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "chat_model": type(self.model).__name__,
            "url": self.url,
            "passes": list(self._passes),
            "seeded": self.supports_seed,
            "logprobs": self.supports_logprobs,
            "max_concurrency": self.max_concurrency,
            "timeout_s": self.timeout_s,
            "timeout_rule": (
                "fixed"
                if self.timeout_s is not None
                else f"min({MAX_DEFAULT_TIMEOUT_S:g}, {TIMEOUT_BASE_S:g} + {TIMEOUT_PER_TOKEN_S:g} * max_new_tokens) s"
            ),
            "retries": self.retries,
            "backoff_s": self.backoff_s,
            "max_backoff_s": self.max_backoff_s,
            "max_context_tokens": self.max_context_tokens,
            "max_tokens_in_body": self.max_tokens_in_body,
        }

    # -- one call, with retries and context fitting --------------------------------------------
    def _where(self) -> str:
        return f"model {self.model_id!r}" + (f" at {self.url}" if self.url else "")

    def _redact(self, text: str) -> str:
        for s in self._secrets:
            text = text.replace(s, "***")
        return text

    def _kwargs(self, s: Sampling) -> dict[str, Any]:
        kw: dict[str, Any] = {}
        if "temperature" in self._passes:
            kw["temperature"] = s.temperature
        if "top_p" in self._passes and s.top_p < 1.0:
            kw["top_p"] = s.top_p
        if "seed" in self._passes:
            kw["seed"] = int(s.seed)
        self._limit(kw, s.max_new_tokens)
        return kw

    def _limit(self, kw: dict[str, Any], n: int) -> None:
        if self._max_field:
            kw[self._max_field] = n
        if self.max_tokens_in_body:
            kw["extra_body"] = {**kw.get("extra_body", {}), "max_tokens": n}

    def _fits(self, messages: Sequence[BaseMessage], new_tokens: int) -> bool:
        if self.max_context_tokens is None:
            return True
        return self._count(messages) + new_tokens <= self.max_context_tokens

    def _call(
        self, messages: Sequence[BaseMessage], kwargs: dict[str, Any], new_tokens: int
    ) -> tuple[AIMessage, int]:
        msgs, dropped = list(messages), 0
        while not self._fits(msgs, new_tokens):
            msgs, n = drop_oldest_exchange(msgs)
            if n == 0:
                raise BackendError(
                    f"{self._where()}: the protected prefix and question exceed "
                    f"max_context_tokens={self.max_context_tokens}"
                )
            dropped += n
        attempt, limit = 0, self.attempt_timeout_s(new_tokens)
        while True:
            try:
                reply = self._invoke_within(msgs, kwargs, limit)
                return reply, dropped
            except Exception as err:  # noqa: BLE001 - classified below, re-raised as BackendError
                kind = "timeout" if isinstance(err, _AttemptTimeout) else type(err).__name__
                text = self._redact(f"{kind}: {err}")
                status = getattr(err, "status_code", None) or getattr(
                    getattr(err, "response", None), "status_code", None
                )
                if _CONTEXT_ERROR.search(str(err)):
                    msgs, n = drop_oldest_exchange(msgs)
                    if n == 0:
                        raise BackendError(
                            f"{self._where()}: context too long even with only the protected "
                            f"prefix and the question: {text}"
                        ) from None
                    dropped += n
                    continue
                fatal = isinstance(err, (TypeError, ValueError, NotImplementedError)) and not isinstance(
                    err, json.JSONDecodeError
                )
                if status in _FATAL_STATUS or fatal:
                    raise BackendError(f"{self._where()}: request failed (status {status}): {text}") from None
                if attempt >= self.retries:
                    raise BackendError(
                        f"{self._where()}: failed after {attempt + 1} attempts: {text}"
                    ) from None
                self._sleep(min(self.max_backoff_s, self.backoff_s * 2**attempt))
                attempt += 1

    def _invoke_within(self, msgs: list[BaseMessage], kwargs: dict[str, Any], limit: float) -> AIMessage:
        """model.invoke in a worker thread, given up after `limit` seconds (_AttemptTimeout)."""
        done: Future[AIMessage] = Future()
        ctx = contextvars.copy_context()  # LangChain callbacks and tracing follow the call

        def work() -> None:
            try:
                done.set_result(ctx.run(self.model.invoke, msgs, **kwargs))
            except BaseException as err:  # noqa: BLE001 - handed to the waiting thread
                done.set_exception(err)

        threading.Thread(target=work, name=f"chat-call {self.model_id}", daemon=True).start()
        try:
            failed = done.exception(timeout=limit)
        except FutureTimeout:
            raise _AttemptTimeout(f"no complete reply within {limit:g} s (timeout_s)") from None
        if failed is not None:
            raise failed
        return done.result()

    def _batch(
        self, jobs: list[tuple[Sequence[BaseMessage], dict[str, Any], int]]
    ) -> list[tuple[AIMessage, int]]:
        runner = RunnableLambda(lambda job: self._call(*job))
        return runner.batch(jobs, config={"max_concurrency": self.max_concurrency})

    # -- the contract -------------------------------------------------------------------------
    def generate(
        self, conversations: Sequence[Conversation], sampling: Sequence[Sampling]
    ) -> list[Generation]:
        if len(conversations) != len(sampling):
            raise ValueError(f"{len(conversations)} conversations for {len(sampling)} sampling settings")
        unseeded = not self.supports_seed and not self._reproducible
        if unseeded and any(s.temperature > 0 for s in sampling) and not self._warned_seed:
            warnings.warn(
                f"{self._where()} takes no seed: sampled replies will not be reproducible", stacklevel=2
            )
            self._warned_seed = True
        jobs = [
            (list(c), self._kwargs(s), s.max_new_tokens) for c, s in zip(conversations, sampling, strict=True)
        ]
        out = []
        for reply, dropped in self._batch(jobs):
            usage = reply.usage_metadata or {}
            out.append(
                Generation(
                    text=reply.text,
                    prompt_tokens=usage.get("input_tokens"),
                    completion_tokens=usage.get("output_tokens"),
                    dropped_messages=dropped,
                )
            )
        return out

    def choice_logprobs_with_drops(
        self, conversations: Sequence[Conversation], choices: Sequence[str]
    ) -> list[tuple[dict[str, float | None], int]]:
        """choice_logprobs plus the number of messages dropped to fit each conversation."""
        if not self.supports_logprobs:
            raise BackendError(
                f"{self._where()}: {type(self.model).__name__} exposes no token logprobs; "
                "use decision mode 'generate'"
            )
        kw: dict[str, Any] = {"logprobs": True, "top_logprobs": self.top_logprobs}
        self._limit(kw, 1)
        jobs = [(list(c), dict(kw), 1) for c in conversations]
        return [(letter_logprobs(reply, choices), dropped) for reply, dropped in self._batch(jobs)]

    def choice_logprobs(
        self, conversations: Sequence[Conversation], choices: Sequence[str]
    ) -> list[dict[str, float | None]]:
        return [lp for lp, _ in self.choice_logprobs_with_drops(conversations, choices)]
