"""Token ids of chat conversations, shared by the backends that tokenize themselves (local, vLLM).

One home for three rules, so that two engines given the same conversation compute the same tokens:

- `encode_conversation`: the tokenizer's chat template with the generation prompt added, after
  dropping the oldest unprotected exchanges (agents.llm.context) until the prompt plus the reply's
  reserved tokens fits the context;
- `single_token_ids`: the distinct single tokens that spell a choice alone or after one space
  ("C" and " C"), the tokens whose probabilities make up a choice's log-probability;
- `logsumexp`: how those tokens' log-probabilities are summed.

Only the tokenizer is needed (any Hugging Face tokenizer with a chat template); no torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import convert_to_openai_messages

from agents.llm.backend import BackendError, Conversation

__all__ = ["CHOICE_RULE", "encode_conversation", "logsumexp", "single_token_ids"]

#: How a choice's log-probability is read (recorded in each backend's describe()).
CHOICE_RULE = "logsumexp over single tokens spelling the choice, bare or after one space"


def _template(tokenizer: Any, messages: list[dict[str, Any]]) -> list[int]:
    enc = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    ids = enc["input_ids"] if not isinstance(enc, list) else enc
    return [int(t) for t in ids]


def encode_conversation(
    tokenizer: Any,
    conversation: Conversation,
    *,
    max_context_tokens: int,
    reserve: int = 0,
    model_id: str = "model",
) -> tuple[list[int], int]:
    """Prompt token ids (chat template, generation prompt added) and how many old messages were dropped.

    The oldest unprotected exchanges go first (agents.llm.context: system messages and messages
    marked `keep` stay, the last message stays) until the prompt plus `reserve` new tokens fits
    `max_context_tokens`. Raises BackendError naming `model_id` when even the protected part does not.
    """
    from agents.llm.context import fit_messages

    cache: dict[int, list[int]] = {}

    def fits(msgs: Sequence[Any]) -> bool:
        cache[len(msgs)] = _template(tokenizer, convert_to_openai_messages(list(msgs)))
        return len(cache[len(msgs)]) + reserve <= max_context_tokens

    try:
        msgs, dropped = fit_messages(conversation, fits)
    except ValueError as err:
        raise BackendError(
            f"{model_id}: {err} (max_context_tokens {max_context_tokens}, {reserve} reserved for the reply)"
        ) from None
    return cache[len(msgs)], dropped


def single_token_ids(tokenizer: Any, choice: str, model_id: str = "model") -> list[int]:
    """The distinct single tokens that spell `choice` alone or after one space; ValueError if none."""
    ids: list[int] = []
    for variant in (choice, " " + choice):
        enc = tokenizer.encode(variant, add_special_tokens=False)
        if len(enc) == 1 and tokenizer.decode(enc).strip() == choice and enc[0] not in ids:
            ids.append(int(enc[0]))
    if not ids:
        raise ValueError(
            f"choice {choice!r} is not a single token of {model_id}; choice_logprobs needs "
            "single-token choices (option letters)"
        )
    return ids


def logsumexp(values: Sequence[float]) -> float:
    """log(sum(exp(v))), exact for -inf entries."""
    m = max(values)
    if m == -math.inf:
        return m
    return m + math.log(sum(math.exp(v - m) for v in values))
