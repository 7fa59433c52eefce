"""Fitting a conversation into a model's context the way the paper did: drop the oldest exchanges.

The paper kept the value induction, role and goal and removed the oldest item exchange (the item
prompt and the reply) until the dialogue fit. Here the protected prefix is explicit: a policy marks
the messages that must stay with `keep()` (system messages always stay), and any backend calls
`drop_oldest_exchange` until the conversation fits, counting the messages removed
(Generation.dropped_messages). The mark lives in `additional_kwargs`, which chat APIs do not send.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

__all__ = ["KEEP_KEY", "drop_oldest_exchange", "fit_messages", "is_kept", "keep"]

KEEP_KEY = "svo_keep"


def keep(message: BaseMessage) -> BaseMessage:
    """A copy of `message` marked as part of the protected prefix."""
    return message.model_copy(update={"additional_kwargs": {**message.additional_kwargs, KEEP_KEY: True}})


def is_kept(message: BaseMessage) -> bool:
    return isinstance(message, SystemMessage) or bool(message.additional_kwargs.get(KEEP_KEY))


def drop_oldest_exchange(messages: Sequence[BaseMessage]) -> tuple[list[BaseMessage], int]:
    """Remove the oldest unprotected exchange: a user message and the replies up to the next one.

    The last message (the question being asked) is never removed. Returns the new list and the
    number of messages removed (0 when nothing can go).
    """
    msgs = list(messages)
    last = len(msgs) - 1
    start = next((i for i, m in enumerate(msgs[:last]) if not is_kept(m)), None)
    if start is None:
        return msgs, 0
    end = start + 1
    while end < last and not isinstance(msgs[end], HumanMessage) and not is_kept(msgs[end]):
        end += 1
    return msgs[:start] + msgs[end:], end - start


def fit_messages(
    messages: Sequence[BaseMessage], fits: Callable[[Sequence[BaseMessage]], bool]
) -> tuple[list[BaseMessage], int]:
    """Drop oldest exchanges until `fits(messages)`; returns the messages and how many were dropped.

    Raises ValueError when even the protected prefix and the last message do not fit.
    """
    msgs, dropped = list(messages), 0
    while not fits(msgs):
        msgs, n = drop_oldest_exchange(msgs)
        if n == 0:
            raise ValueError(
                f"the conversation does not fit even after dropping {dropped} messages: its protected prefix "
                f"({sum(map(is_kept, msgs))} messages) and the question are too long"
            )
        dropped += n
    return msgs, dropped
