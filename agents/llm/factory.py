"""make_backend: one string in config or on the command line picks the model.

Spec grammar:

    embedded                              the embedded SmolLM2-135M-Instruct GGUF (agents.llm.local)
    hf:PATH                               a local Hugging Face causal LM (folder or .gguf file)
    embedded?KEY=VALUE&...                local options after "?", e.g. embedded?dtype=bfloat16
                                          (keys: LOCAL_OPTIONS; also after hf:PATH)
    vllm:PATH_OR_NAME[?KEY=VALUE&...]     vLLM's offline engine (agents.llm.vllm_backend; the [vllm]
                                          extra): "embedded", a .gguf, a Hugging Face folder or a
                                          model name, e.g. vllm:embedded?dtype=float32
                                          (keys: VLLM_BACKEND_OPTIONS)
    openai-compatible:MODEL@URL           any OpenAI-compatible server (vLLM, llama.cpp, Ollama,
                                          hosted APIs) through langchain-openai's ChatOpenAI,
                                          e.g. openai-compatible:smollm2@http://127.0.0.1:8080/v1
    PROVIDER:MODEL                        a LangChain provider via init_chat_model,
                                          e.g. openai:gpt-4o-mini, anthropic:claude-3-5-haiku-latest
    fake:REPLY[|REPLY...]                 a scripted chat model cycling through the replies (tests,
                                          dry runs of the pipeline; never a measurement)

API keys come from the environment only. openai-compatible reads OPENAI_API_KEY, or the variable
named by `api_key_env=`. A local server that needs no key must be told so explicitly with
`dummy_key=True` (or `?dummy_key=1` after the URL); otherwise a missing key is an error raised
before any call, naming the variable. Known providers are checked the same way.

Options are keyword arguments of make_backend, declared per kind of backend in BACKEND_OPTIONS
(each with what it allows): LOCAL_OPTIONS for embedded / hf:, VLLM_BACKEND_OPTIONS for vllm:, CHAT_OPTIONS (timeout_s, retries,
backoff_s, max_backoff_s, max_concurrency, max_context_tokens, top_logprobs, reproducible) for the
chat backends, plus dummy_key / api_key_env for openai-compatible and api_key_env for providers.
`check_backend_options(spec, options)` checks a spec and its options without building anything,
so a runner can refuse bad input before it writes or loads anything; make_backend runs the same
check first. An option a backend does not take is refused, never ignored.

Timeouts and retries of chat backends are enforced by agents.llm.chat.ChatBackend (a wall-clock
limit per attempt, retries + 1 attempts in all); the chat model's own retries are turned off, and
its HTTP client timeout is set to timeout_s (default MAX_DEFAULT_TIMEOUT_S) so that an abandoned
attempt's connection is closed too.
"""

from __future__ import annotations

import math
import numbers
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from agents.llm.backend import Backend
from agents.llm.chat import MAX_DEFAULT_TIMEOUT_S, TIMEOUT_BASE_S, TIMEOUT_PER_TOKEN_S
from agents.llm.local import DTYPES

__all__ = [
    "BACKEND_OPTIONS",
    "CHAT_OPTIONS",
    "LOCAL_OPTIONS",
    "PROVIDER_KEYS",
    "SPEC_FORMS",
    "BackendSpecError",
    "Option",
    "backend_kind",
    "check_backend_options",
    "VLLM_BACKEND_OPTIONS",
    "local_options",
    "make_backend",
]

SPEC_FORMS = (
    "embedded",
    "hf:PATH",
    "openai-compatible:MODEL@URL",
    "vllm:PATH_OR_NAME",
    "PROVIDER:MODEL (LangChain init_chat_model, e.g. openai:gpt-4o-mini)",
    "fake:REPLY[|REPLY...]",
)

#: Environment variable each provider's key is read from (checked before any call).
PROVIDER_KEYS = {
    "openai": "OPENAI_API_KEY",
    "azure_openai": "AZURE_OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "google_genai": "GOOGLE_API_KEY",
    "mistralai": "MISTRAL_API_KEY",
    "groq": "GROQ_API_KEY",
    "together": "TOGETHER_API_KEY",
    "fireworks": "FIREWORKS_API_KEY",
    "cohere": "COHERE_API_KEY",
    "deepseek": "DEEPSEEK_API_KEY",
    "xai": "XAI_API_KEY",
    "perplexity": "PPLX_API_KEY",
}


class BackendSpecError(ValueError):
    """A backend spec string or its options are malformed, or a key is missing."""


# -- declared options ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Option:
    """One backend option: what it allows (for messages and --help) and how a value is checked.

    check: a value from code or a parsed config -> the value passed on; raises TypeError/ValueError.
    parse: the text of a spec's "?KEY=VALUE" -> a value for check.
    """

    allowed: str
    check: Callable[[Any], Any]
    parse: Callable[[str], Any] = field(default=str)


def _integer(lo: int, hi: int | None = None, *, none: str | None = None) -> Option:
    def check(v: Any) -> int | None:
        if v is None and none is not None:
            return None
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise TypeError(v)
        if v < lo or (hi is not None and v > hi):
            raise ValueError(v)
        return int(v)

    allowed = f"an integer in [{lo}, {hi}]" if hi is not None else f"an integer >= {lo}"
    return Option(allowed + (f", or None ({none})" if none else ""), check, int)


def _seconds(lo: float, hi: float, *, lo_open: bool = False, none: str | None = None) -> Option:
    def check(v: Any) -> float | None:
        if v is None and none is not None:
            return None
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise TypeError(v)
        v = float(v)
        if not math.isfinite(v) or v > hi or v < lo or (lo_open and v == lo):
            raise ValueError(v)
        return v

    allowed = f"a number of seconds in {'(' if lo_open else '['}{lo:g}, {hi:g}]"
    return Option(allowed + (f", or None ({none})" if none else ""), check, float)


_TRUE, _FALSE = ("1", "true", "yes"), ("0", "false", "no")


def _flag_text(text: str) -> bool:
    if text.lower() not in _TRUE + _FALSE:
        raise ValueError(text)
    return text.lower() in _TRUE


def _flag(v: Any) -> bool:
    if not isinstance(v, bool):
        raise TypeError(v)
    return v


_FLAG = Option("true or false (after '?': 1/0, true/false, yes/no)", _flag, _flag_text)


def _matching(pattern: str, allowed: str) -> Option:
    rx = re.compile(pattern)

    def check(v: Any) -> str:
        if not isinstance(v, str) or not rx.fullmatch(v):
            raise ValueError(v)
        return v

    return Option(allowed, check)


def _one_of(*choices: str) -> Option:
    def check(v: Any) -> str:
        if v not in choices:
            raise ValueError(v)
        return v

    return Option(", ".join(choices), check)


def _callable(v: Any) -> Any:
    if not callable(v):
        raise TypeError(v)
    return v


#: Options of the local backends (LocalBackend keyword arguments), also accepted after "?" in the spec.
LOCAL_OPTIONS: dict[str, Option] = {
    "device": _matching(r"auto|cpu|mps|cuda(:\d+)?", "auto, cpu, cuda, cuda:N, mps"),
    "dtype": _one_of(*DTYPES),
    "max_batch_tokens": _integer(1, none="automatic"),
    "max_decode_tokens": _integer(1, none="CPU: 1 GiB of keys and values; CUDA: max_batch_tokens"),
    "max_cache_bytes": _integer(0, none="CPU 384 MiB, CUDA a quarter of the GPU's memory"),
    "max_context_tokens": _integer(1, none="the model's context"),
    "prefix_cache": _FLAG,
}


def _fraction(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not 0 < float(v) <= 1:
        raise ValueError(v)
    return float(v)


#: Options of the vLLM backend (agents.llm.vllm_backend.VLLMBackend keyword arguments), also after "?".
VLLM_BACKEND_OPTIONS: dict[str, Option] = {
    "dtype": _one_of("auto", "float32", "bfloat16", "float16"),
    "max_model_len": _integer(1, none="the model's context"),
    "max_context_tokens": _integer(1, none="max_model_len"),
    "gpu_memory_utilization": Option("a fraction in (0, 1]", _fraction, float),
    "kv_cache_memory_bytes": _integer(1, none="vLLM's default"),
    "tensor_parallel_size": _integer(1, 64),
    "enforce_eager": _FLAG,
    "revision": _matching(r"[A-Za-z0-9._/-]+", "a model revision (branch, tag or commit)"),
}

#: Options of every chat backend (agents.llm.chat.ChatBackend keyword arguments); see its docstring.
CHAT_OPTIONS: dict[str, Option] = {
    "timeout_s": _seconds(
        0,
        3600,
        lo_open=True,
        none=f"the default: min({MAX_DEFAULT_TIMEOUT_S:g}, {TIMEOUT_BASE_S:g} + {TIMEOUT_PER_TOKEN_S:g} * "
        "max_new_tokens) s per attempt",
    ),
    "retries": _integer(0, 10),
    "backoff_s": _seconds(0, 300),
    "max_backoff_s": _seconds(0, 3600),
    "max_concurrency": _integer(1, 64),
    "max_context_tokens": _integer(1, none="no limit but the server's"),
    "top_logprobs": _integer(1, 20),
    "reproducible": Option("true or false (declare that reruns through this server repeat)", _flag),
    "token_counter": Option("a function of a message list (Python API only)", _callable),
}
_API_KEY_ENV = _matching(r"[A-Za-z_][A-Za-z0-9_]*", "an environment variable name")

#: The options each kind of backend takes (kinds: local, openai-compatible, provider, fake).
BACKEND_OPTIONS: dict[str, dict[str, Option]] = {
    "local": LOCAL_OPTIONS,
    "vllm": VLLM_BACKEND_OPTIONS,
    "openai-compatible": {**CHAT_OPTIONS, "dummy_key": _FLAG, "api_key_env": _API_KEY_ENV},
    "provider": {**CHAT_OPTIONS, "api_key_env": _API_KEY_ENV},
    "fake": {k: v for k, v in CHAT_OPTIONS.items() if k != "reproducible"},  # scripted: always reproducible
}
_URL_OPTIONS = ("dummy_key", "api_key_env")


def _forms() -> str:
    return "allowed forms: " + "; ".join(SPEC_FORMS)


def _check_value(spec: str, opt: Option, key: str, value: Any) -> Any:
    try:
        return opt.check(value)
    except (TypeError, ValueError):
        raise BackendSpecError(
            f"backend {spec!r}: option {key}={value!r} is not valid; allowed: {opt.allowed}"
        ) from None


def _parse_query(spec: str, query: str, table: Mapping[str, Option], label: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, text in parse_qsl(query, keep_blank_values=True):
        if key not in table:
            raise BackendSpecError(
                f"backend {spec!r}: unknown {label} option {key!r}; allowed: {', '.join(table)}"
            )
        try:
            value = table[key].parse(text)
        except (TypeError, ValueError):
            raise BackendSpecError(
                f"backend {spec!r}: option {key}={text!r} is not valid; allowed: {table[key].allowed}"
            ) from None
        out[key] = _check_value(spec, table[key], key, value)
    return out


def local_options(spec: str, path_or_name: str, kind: str = "local") -> tuple[str, dict[str, Any]]:
    """Split "NAME?k=v&k=v" into the name and the options of a `kind` backend (local or vllm),
    named errors for bad ones."""
    name, sep, query = path_or_name.partition("?")
    if not sep:
        return name, {}
    out = _parse_query(spec, query, BACKEND_OPTIONS[kind], kind)
    if not out:
        raise BackendSpecError(f"backend {spec!r}: nothing after '?'; expected KEY=VALUE options")
    return name, out


def _checked(spec: str, kind: str, options: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """`given` (from the spec) merged with `options` (keywords), every one declared and valid."""
    table = BACKEND_OPTIONS[kind]
    out = dict(given)
    for key, value in options.items():
        if key not in table:
            why = " (a local model makes no network calls)" if kind == "local" and key in CHAT_OPTIONS else ""
            what = f"local option {key!r}" if kind == "local" else f"option {key!r} for {kind} backends"
            raise BackendSpecError(f"backend {spec!r}: unknown {what}{why}; allowed: {', '.join(table)}")
        value = _check_value(spec, table[key], key, value)
        if key in given and given[key] != value:
            raise BackendSpecError(
                f"backend {spec!r}: option {key} given twice, {given[key]!r} in the spec and {value!r}"
            )
        out[key] = value
    return out


# -- the plan: a spec and its options, checked, nothing built --------------------------------------
@dataclass(frozen=True)
class _Plan:
    kind: str  # a key of BACKEND_OPTIONS
    target: str  # model name, path, or the scripted replies
    options: dict[str, Any]
    url: str | None = None
    provider: str | None = None
    key: str | None = field(default=None, repr=False)


def _key(spec: str, env: str, hint: str = "") -> str:
    val = os.environ.get(env)
    if not val:
        raise BackendSpecError(f"backend {spec!r}: no API key: set the environment variable {env}{hint}")
    return val


def _plan_local(spec: str, path_or_name: str, options: Mapping[str, Any]) -> _Plan:
    from agents.llm.local import _resolve  # paths only: no torch, no model

    name, query = local_options(spec, path_or_name)
    try:
        _resolve(name)
    except FileNotFoundError as err:
        raise BackendSpecError(f"backend {spec!r}: {err}") from None
    return _Plan("local", name, _checked(spec, "local", options, query))


def _plan_vllm(spec: str, rest: str, options: Mapping[str, Any]) -> _Plan:
    name, query = local_options(spec, rest, "vllm")
    return _Plan("vllm", name, _checked(spec, "vllm", options, query))


def _plan_openai_compatible(spec: str, rest: str, options: Mapping[str, Any], check_key: bool) -> _Plan:
    model, sep, url = rest.partition("@")
    if not sep or not model or not url:
        raise BackendSpecError(f"backend {spec!r}: expected openai-compatible:MODEL@URL; {_forms()}")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BackendSpecError(f"backend {spec!r}: URL {url!r} must be http(s)://host[:port][/path]")
    unknown = sorted({k for k, _ in parse_qsl(parts.query, keep_blank_values=True)} - set(_URL_OPTIONS))
    if unknown:
        raise BackendSpecError(
            f"backend {spec!r}: unknown URL options {unknown}; allowed: {', '.join(_URL_OPTIONS)}"
        )
    query = _parse_query(spec, parts.query, BACKEND_OPTIONS["openai-compatible"], "URL")
    opts = _checked(spec, "openai-compatible", options, query)
    env = opts.get("api_key_env") or "OPENAI_API_KEY"
    key = os.environ.get(env) or ("sk-no-key-required" if opts.get("dummy_key") else None)
    if key is None and check_key:
        _key(spec, env, " (or pass dummy_key=True for a local server that needs none)")
    base_url = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    return _Plan("openai-compatible", model, opts, url=base_url, key=key)


def _plan(spec: Any, options: Mapping[str, Any], check_key: bool = True) -> _Plan:
    if not isinstance(spec, str) or not spec.strip():
        raise BackendSpecError(f"backend spec {spec!r} is empty; {_forms()}")
    if not isinstance(options, Mapping):
        raise BackendSpecError(
            f"backend {spec!r}: options must be a mapping of names to values, not {options!r}"
        )
    bad_keys = [k for k in options if not isinstance(k, str)]
    if bad_keys:
        raise BackendSpecError(f"backend {spec!r}: option names must be strings, got {bad_keys!r}")
    spec = spec.strip()
    if spec == "embedded" or spec.startswith("embedded?"):
        return _plan_local(spec, spec, options)
    kind, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise BackendSpecError(f"unknown backend spec {spec!r}; {_forms()}")
    if kind == "hf":
        return _plan_local(spec, rest, options)
    if kind == "vllm":
        return _plan_vllm(spec, rest, options)
    if kind == "openai-compatible":
        return _plan_openai_compatible(spec, rest, options, check_key)
    if kind == "fake":
        return _Plan("fake", rest, _checked(spec, "fake", options, {}))
    if not kind.replace("_", "").replace("-", "").isalnum():
        raise BackendSpecError(f"unknown backend spec {spec!r}; {_forms()}")
    opts = _checked(spec, "provider", options, {})
    env = opts.get("api_key_env") or PROVIDER_KEYS.get(kind)
    key = _key(spec, env) if env and check_key else None
    return _Plan("provider", rest, opts, provider=kind, key=key)


def backend_kind(spec: str) -> str:
    """The kind of backend a spec names (a key of BACKEND_OPTIONS: "local", "vllm", "openai-compatible",
    "provider", "fake"), from the spec alone: nothing built, no key needed. Raises BackendSpecError
    for a malformed spec."""
    return _plan(spec, {}, check_key=False).kind


def check_backend_options(spec: str, options: Mapping[str, Any], *, check_key: bool = True) -> None:
    """Raise BackendSpecError unless `spec` is well formed and `options` are all declared and valid.

    Builds nothing and loads no model: it parses the spec (and its "?" / URL options), checks each
    option against BACKEND_OPTIONS for that kind of backend (unknown names and bad values are refused,
    naming the option and what is allowed), checks that a local model file exists, and, with
    `check_key`, that the API key's environment variable is set.
    """
    _plan(spec, options, check_key)


# -- building ---------------------------------------------------------------------------------
def _chat(opts: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in opts.items() if k in CHAT_OPTIONS}


def _build_local(spec: str, plan: _Plan) -> Backend:
    from agents.llm.local import LocalBackend  # torch loads on first use

    try:
        return LocalBackend(plan.target, **plan.options)
    except ValueError as err:  # a value only the backend can judge
        raise BackendSpecError(f"backend {spec!r}: {err}") from None


def _build_vllm(spec: str, plan: _Plan) -> Backend:
    from agents.llm.vllm_backend import VLLMBackend  # vllm itself loads when the engine is built

    try:
        return VLLMBackend(plan.target, **plan.options)
    except ValueError as err:  # a value only the backend can judge
        raise BackendSpecError(f"backend {spec!r}: {err}") from None


def _build_openai_compatible(plan: _Plan) -> Backend:
    from langchain_openai import ChatOpenAI

    from agents.llm.chat import ChatBackend

    timeout = plan.options.get("timeout_s") or MAX_DEFAULT_TIMEOUT_S
    llm = ChatOpenAI(model=plan.target, base_url=plan.url, api_key=plan.key, max_retries=0, timeout=timeout)
    chat = {"max_tokens_in_body": True, **_chat(plan.options)}  # llama.cpp ignores max_completion_tokens
    return ChatBackend(
        llm, model_id=f"{plan.target}@{plan.url}", url=plan.url, secrets=[plan.key or ""], **chat
    )


def _build_provider(spec: str, plan: _Plan) -> Backend:
    from langchain.chat_models import init_chat_model

    from agents.llm.chat import ChatBackend

    timeout = plan.options.get("timeout_s") or MAX_DEFAULT_TIMEOUT_S
    try:
        llm = init_chat_model(plan.target, model_provider=plan.provider, max_retries=0, timeout=timeout)
    except ImportError as err:
        raise BackendSpecError(
            f"backend {spec!r}: provider {plan.provider!r} needs a package: {err}"
        ) from None
    except ValueError as err:
        raise BackendSpecError(f"backend {spec!r}: {err}; {_forms()}") from None
    return ChatBackend(llm, model_id=spec, secrets=[plan.key or ""], **_chat(plan.options))


def _build_fake(plan: _Plan) -> Backend:
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    from agents.llm.chat import ChatBackend

    chat = {"max_concurrency": 1, **_chat(plan.options)}
    return ChatBackend(
        FakeListChatModel(responses=plan.target.split("|")),
        model_id=f"fake:{plan.target}",
        reproducible=True,
        reproducible_reason="scripted replies in a fixed cycle: the same calls in the same order repeat",
        **chat,
    )


def make_backend(spec: str, **options: Any) -> Backend:
    """Build the backend a spec names (grammar and options in the module docstring).

    Runs check_backend_options first: a malformed spec, an unknown or invalid option, a missing local
    model or API key raises BackendSpecError before anything is built.
    """
    plan = _plan(spec, options)
    spec = spec.strip()
    if plan.kind == "local":
        return _build_local(spec, plan)
    if plan.kind == "vllm":
        return _build_vllm(spec, plan)
    if plan.kind == "openai-compatible":
        return _build_openai_compatible(plan)
    if plan.kind == "fake":
        return _build_fake(plan)
    return _build_provider(spec, plan)
