"""LLM agents: the paper's goal-prompted policy over pluggable model backends.

- GoalPromptedPolicy (agents.llm.policy): value induction, role, goal, items; "generate" or
  "logprob" decisions with full evidence records.
- make_backend (agents.llm.factory): "embedded", "hf:PATH", "openai-compatible:MODEL@URL",
  "vllm:PATH_OR_NAME", "PROVIDER:MODEL", "fake:...".
- ChatBackend (agents.llm.chat): any LangChain chat model as a Backend.
- parse_choice (agents.llm.parsing): the strict reply parser.
The local Hugging Face backend is agents.llm.local.LocalBackend (imported lazily: it needs torch);
the vLLM backend is agents.llm.vllm_backend.VLLMBackend (vllm imported when one is built).
"""

from agents.llm.backend import Backend, BackendError, Conversation, Generation, Sampling
from agents.llm.chat import ChatBackend, letter_logprobs
from agents.llm.context import drop_oldest_exchange, fit_messages, keep
from agents.llm.factory import SPEC_FORMS, BackendSpecError, make_backend
from agents.llm.parsing import parse_choice
from agents.llm.policy import MODES, PARSE_METHODS, ChatState, GoalPromptedPolicy, call_seed

__all__ = [
    "MODES",
    "PARSE_METHODS",
    "SPEC_FORMS",
    "Backend",
    "BackendError",
    "BackendSpecError",
    "ChatBackend",
    "ChatState",
    "Conversation",
    "Generation",
    "GoalPromptedPolicy",
    "Sampling",
    "call_seed",
    "drop_oldest_exchange",
    "fit_messages",
    "keep",
    "letter_logprobs",
    "make_backend",
    "parse_choice",
]
