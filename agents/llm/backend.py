"""The contract between LLM policies and model backends.

A policy never talks to a model directly; it hands a backend whole batches of conversations
(LangChain message lists). Two operations cover both decision modes:

- `generate`: a free-text reply per conversation (value induction, goal, "generate" mode);
- `choice_logprobs`: for each conversation, the log-probability of each choice string (the option
  letters) as the first token of the assistant's reply ("logprob" mode; no generation, no parsing).

Backends: agents.llm.local (a Hugging Face causal LM, the embedded SmolLM2 GGUF by default; batched,
shared-prefix KV reuse) and agents.llm.chat (any LangChain chat model, OpenAI-compatible servers
included). Given `Sampling.seed` per conversation a backend samples reproducibly where it can;
whether a rerun really gives the same records is declared per backend by `reproducibility()`.

Optional capabilities are declared here with documented defaults, never probed with getattr:
`choice_logprobs_with_drops` (default: `choice_logprobs` with the dropped-message count None),
`reproducibility` (default: not reproducible, reason unknown) and `reset_prefix_cache` (default:
nothing kept between calls).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

from langchain_core.messages import BaseMessage

__all__ = ["Backend", "BackendError", "Conversation", "Generation", "Reproducibility", "Sampling"]

Conversation = Sequence[BaseMessage]


class BackendError(RuntimeError):
    """A model backend failed for good (after its bounded retries); the message names the model/URL."""


@dataclass(frozen=True)
class Sampling:
    """Sampling settings of one call; `seed` makes a sampled reply reproducible."""

    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 64
    seed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Generation:
    """One reply: its text, token counts, and whether the context was cut to fit (and how much)."""

    text: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    dropped_messages: int = 0


class Reproducibility(NamedTuple):
    """Whether a rerun of the same calls gives the same records, and why (for the run manifest).

    `reproducible` is True only where it has been shown (a test or a measurement the reason names);
    `reason` says what holds and what does not (e.g. "repeats only with the same batch layout").
    """

    reproducible: bool
    reason: str


class Backend(ABC):
    """A model that answers batches of conversations."""

    #: Identity for the run record and the response cache (model name/path, revision, dtype...).
    model_id: str = "unknown"

    @abstractmethod
    def generate(
        self, conversations: Sequence[Conversation], sampling: Sequence[Sampling]
    ) -> list[Generation]:
        """One reply per conversation; sampling[i] applies to conversations[i]."""

    @abstractmethod
    def choice_logprobs(
        self, conversations: Sequence[Conversation], choices: Sequence[str]
    ) -> list[dict[str, float | None]]:
        """Log-probability of each choice as the reply's first token, per conversation.

        A choice the backend cannot see (not among an API's top_logprobs) maps to None.
        """

    def choice_logprobs_with_drops(
        self, conversations: Sequence[Conversation], choices: Sequence[str]
    ) -> list[tuple[dict[str, float | None], int | None]]:
        """`choice_logprobs` plus, per conversation, how many old messages were dropped to fit.

        Default: `choice_logprobs` with the count None (unknown). Backends that fit conversations to
        their context (local, chat) override it with the real count; wrappers pass it through.
        """
        return [(lp, None) for lp in self.choice_logprobs(conversations, choices)]

    def reproducibility(self) -> Reproducibility:
        """Whether a rerun gives the same records, and why. Default: not reproducible, reason unknown."""
        return Reproducibility(False, "unknown: this backend does not declare it")

    def reset_prefix_cache(self) -> None:  # noqa: B027 - a documented default: most backends keep nothing
        """Forget what is kept between calls to compute later calls faster (a local model's prefix
        key/value cache), so what follows computes as in a freshly built backend. Answers keep their
        meaning; only float rounding can change with which prefixes are reused, so executors call
        this before each unit of work to make records independent of what a worker played before.
        Default: nothing is kept."""

    def describe(self) -> dict[str, Any]:
        """Identity, settings and the reproducibility claim for the run record (no secrets)."""
        r = self.reproducibility()
        return {
            "model_id": self.model_id,
            "backend": type(self).__name__,
            "reproducible": r.reproducible,
            "reproducibility": r.reason,
        }
