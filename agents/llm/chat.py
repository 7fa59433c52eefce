"""ChatBackend: any LangChain chat model as a Backend (OpenAI-compatible servers, hosted APIs, fakes).

- generate: one call per conversation through the model's `.batch` with bounded concurrency.
  Sampling settings are passed only where the model declares them (its pydantic fields:
  temperature, top_p, a max-tokens field, seed), so any BaseChatModel works; `describe()` records
  which were passed. With `seed` (ChatOpenAI and OpenAI-compatible servers) a sampled reply is
  reproducible; without it a rerun at temperature > 0 may differ, and `describe()` says so.
- choice_logprobs: one call with logprobs=True, top_logprobs=k and one new token; the first
  token's top list gives each choice's log-probability (token variants such as " A" are summed);
  a choice not in the list is None. Needs a model with `logprobs`/`top_logprobs` fields (ChatOpenAI).
- Robustness: transient failures (connection, timeout, rate limit, 5xx) get bounded retries with
  exponential backoff, then BackendError naming the model and URL; client errors (401, 403, 404,
  400) fail at once. A context-length error (or a conversation over `max_context_tokens`) drops
  the oldest unprotected exchange (agents.llm.context) and tries again; the count is recorded.
  API keys never appear in messages: known secrets are redacted from every error text.
"""

from __future__ import annotations

import math
import re
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import RunnableLambda

from agents.llm.backend import Backend, BackendError, Conversation, Generation, Sampling
from agents.llm.context import drop_oldest_exchange

__all__ = ["ChatBackend", "letter_logprobs"]

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

    Arguments: model: any BaseChatModel. model_id: identity for records (default: the model's
    name). url: named in errors (default: the model's base URL). max_concurrency: parallel calls in
    a batch. retries / backoff_s / max_backoff_s: bounded retries of transient failures.
    max_context_tokens + token_counter: drop oldest exchanges before a call that would not fit
    (token_counter defaults to model.get_num_tokens_from_messages). top_logprobs: list length asked
    for in logprob mode (OpenAI allows up to 20). secrets: strings redacted from error messages.
    """

    def __init__(
        self,
        model: BaseChatModel,
        *,
        model_id: str | None = None,
        url: str | None = None,
        max_concurrency: int = 4,
        retries: int = 4,
        backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
        max_context_tokens: int | None = None,
        token_counter: Callable[[Sequence[BaseMessage]], int] | None = None,
        top_logprobs: int = 20,
        max_tokens_in_body: bool = False,
        reproducible: bool | None = None,
        secrets: Sequence[str] = (),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency={max_concurrency} must be >= 1")
        if retries < 0:
            raise ValueError(f"retries={retries} must be >= 0")
        self.model = model
        self.model_id = model_id or _model_name(model)
        self.url = url or _model_url(model)
        self.max_concurrency = max_concurrency
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
        #: whether a rerun gives the same replies: a seeded model, or one declared deterministic (a fake)
        self.reproducible = self.supports_seed if reproducible is None else reproducible
        self.supports_logprobs = {"logprobs", "top_logprobs"} <= fields
        self._warned_seed = False

    # -- identity -----------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "chat_model": type(self.model).__name__,
            "url": self.url,
            "passes": list(self._passes),
            "seeded": self.supports_seed,
            "reproducible": self.reproducible,
            "logprobs": self.supports_logprobs,
            "max_concurrency": self.max_concurrency,
            "retries": self.retries,
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
        attempt = 0
        while True:
            try:
                reply = self.model.invoke(msgs, **kwargs)
                return reply, dropped
            except Exception as err:  # noqa: BLE001 - classified below, re-raised as BackendError
                text = self._redact(f"{type(err).__name__}: {err}")
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
                if status in _FATAL_STATUS or isinstance(err, (TypeError, ValueError, NotImplementedError)):
                    raise BackendError(f"{self._where()}: request failed (status {status}): {text}") from None
                if attempt >= self.retries:
                    raise BackendError(
                        f"{self._where()}: failed after {attempt + 1} attempts: {text}"
                    ) from None
                self._sleep(min(self.max_backoff_s, self.backoff_s * 2**attempt))
                attempt += 1

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
        if not self.reproducible and any(s.temperature > 0 for s in sampling) and not self._warned_seed:
            warnings.warn(
                f"{self._where()} takes no seed: sampled replies will not be reproducible", stacklevel=2
            )
            self._warned_seed = True
        jobs = [
            (list(c), self._kwargs(s), s.max_new_tokens) for c, s in zip(conversations, sampling, strict=True)
        ]
        out = []
        for reply, dropped in self._batch(jobs):
            usage = getattr(reply, "usage_metadata", None) or {}
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
