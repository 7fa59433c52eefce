"""make_backend: one string in config or on the command line picks the model.

Spec grammar:

    embedded                              the embedded SmolLM2-135M-Instruct GGUF (agents.llm.local)
    hf:PATH                               a local Hugging Face causal LM (folder or .gguf file)
    embedded?KEY=VALUE&...                local options after "?", e.g. embedded?dtype=bfloat16
                                          (keys: LOCAL_OPTIONS; also after hf:PATH)
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

Options (keyword arguments): for chat backends, ChatBackend's (max_concurrency, retries, backoff_s,
max_context_tokens, top_logprobs) plus timeout_s; for local backends they go to LocalBackend.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from agents.llm.backend import Backend
from agents.llm.local import DTYPES

__all__ = [
    "LOCAL_OPTIONS",
    "PROVIDER_KEYS",
    "SPEC_FORMS",
    "BackendSpecError",
    "local_options",
    "make_backend",
]

SPEC_FORMS = (
    "embedded",
    "hf:PATH",
    "openai-compatible:MODEL@URL",
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


def _choice(*allowed: str) -> Any:
    def parse(v: str) -> str:
        if v not in allowed:
            raise ValueError(v)
        return v

    parse.allowed = allowed  # type: ignore[attr-defined]
    return parse


#: Options a local spec may carry after "?" (LocalBackend keyword arguments), with their parsers.
LOCAL_OPTIONS: dict[str, Any] = {
    "device": str,
    "dtype": _choice(*DTYPES),
    "max_batch_tokens": int,
    "max_decode_tokens": int,
    "max_cache_bytes": int,
    "max_context_tokens": int,
    "prefix_cache": lambda v: {"1": True, "true": True, "0": False, "false": False}[v.lower()],
}

_CHAT_OPTS = (
    "max_concurrency",
    "retries",
    "backoff_s",
    "max_backoff_s",
    "max_context_tokens",
    "top_logprobs",
    "token_counter",
)


class BackendSpecError(ValueError):
    """A backend spec string or its options are malformed, or a key is missing."""


def _forms() -> str:
    return "allowed forms: " + "; ".join(SPEC_FORMS)


def _split_opts(opts: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    chat = {k: opts.pop(k) for k in list(opts) if k in _CHAT_OPTS}
    return chat, opts


def _key(env: str, spec: str) -> str:
    val = os.environ.get(env)
    if not val:
        raise BackendSpecError(
            f"backend {spec!r}: no API key: set the environment variable {env}"
            + (" (or pass dummy_key=True for a local server that needs none)" if "compatible" in spec else "")
        )
    return val


def local_options(spec: str, path_or_name: str) -> tuple[str, dict[str, Any]]:
    """Split "NAME?k=v&k=v" into the name and LocalBackend options (named errors for bad ones)."""
    name, sep, query = path_or_name.partition("?")
    if not sep:
        return name, {}
    out: dict[str, Any] = {}
    for key, val in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
        if key not in LOCAL_OPTIONS:
            raise BackendSpecError(
                f"backend {spec!r}: unknown local option {key!r}; allowed: {', '.join(LOCAL_OPTIONS)}"
            )
        try:
            out[key] = LOCAL_OPTIONS[key](val)
        except (KeyError, ValueError):
            allowed = getattr(LOCAL_OPTIONS[key], "allowed", None)
            hint = f"; allowed: {', '.join(allowed)}" if allowed else ""
            raise BackendSpecError(f"backend {spec!r}: option {key}={val!r} is not valid{hint}") from None
    if not out:
        raise BackendSpecError(f"backend {spec!r}: nothing after '?'; expected KEY=VALUE options")
    return name, out


def _local(path_or_name: str, opts: dict[str, Any], spec: str | None = None) -> Backend:
    path_or_name, query = local_options(spec or path_or_name, path_or_name)
    opts = {**query, **opts}
    from agents.llm.local import LocalBackend  # imported with DTYPES above; torch loads on first use

    try:
        return LocalBackend(path_or_name, **opts)
    except ValueError as err:  # a bad option value (dtype, device...)
        raise BackendSpecError(f"backend {spec or path_or_name!r}: {err}") from None


def _openai_compatible(spec: str, rest: str, opts: dict[str, Any]) -> Backend:
    from agents.llm.chat import ChatBackend

    model, sep, url = rest.partition("@")
    if not sep or not model or not url:
        raise BackendSpecError(f"backend {spec!r}: expected openai-compatible:MODEL@URL; {_forms()}")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BackendSpecError(f"backend {spec!r}: URL {url!r} must be http(s)://host[:port][/path]")
    query = dict(parse_qsl(parts.query))
    unknown = sorted(set(query) - {"dummy_key", "api_key_env"})
    if unknown:
        raise BackendSpecError(
            f"backend {spec!r}: unknown URL options {unknown}; allowed: dummy_key, api_key_env"
        )
    base_url = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    dummy = bool(opts.pop("dummy_key", False)) or query.get("dummy_key", "0").lower() in ("1", "true", "yes")
    env = opts.pop("api_key_env", None) or query.get("api_key_env") or "OPENAI_API_KEY"
    key = os.environ.get(env) or ("sk-no-key-required" if dummy else None)
    if key is None:
        _key(env, spec)
    chat, model_kw = _split_opts(opts)
    timeout = model_kw.pop("timeout_s", 120.0)
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(model=model, base_url=base_url, api_key=key, max_retries=0, timeout=timeout, **model_kw)
    chat.setdefault("max_tokens_in_body", True)
    return ChatBackend(llm, model_id=f"{model}@{base_url}", url=base_url, secrets=[key], **chat)


def _provider(spec: str, provider: str, model: str, opts: dict[str, Any]) -> Backend:
    from agents.llm.chat import ChatBackend

    env = opts.pop("api_key_env", None) or PROVIDER_KEYS.get(provider)
    key = _key(env, spec) if env else None
    chat, model_kw = _split_opts(opts)
    if "timeout_s" in model_kw:
        model_kw["timeout"] = model_kw.pop("timeout_s")
    from langchain.chat_models import init_chat_model

    try:
        llm = init_chat_model(model, model_provider=provider, max_retries=0, **model_kw)
    except ImportError as err:
        raise BackendSpecError(f"backend {spec!r}: provider {provider!r} needs a package: {err}") from None
    except ValueError as err:
        raise BackendSpecError(f"backend {spec!r}: {err}; {_forms()}") from None
    return ChatBackend(llm, model_id=spec, secrets=[key] if key else [], **chat)


def _fake(rest: str, opts: dict[str, Any]) -> Backend:
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    from agents.llm.chat import ChatBackend

    replies = rest.split("|")
    chat, extra = _split_opts(opts)
    if extra:
        raise BackendSpecError(
            f"backend 'fake:...': unknown options {sorted(extra)}; allowed: {list(_CHAT_OPTS)}"
        )
    chat.setdefault("max_concurrency", 1)
    return ChatBackend(
        FakeListChatModel(responses=replies), model_id=f"fake:{rest}", reproducible=True, **chat
    )


def make_backend(spec: str, **opts: Any) -> Backend:
    """Build the backend a spec names (grammar in the module docstring); errors list the allowed forms."""
    if not isinstance(spec, str) or not spec.strip():
        raise BackendSpecError(f"backend spec {spec!r} is empty; {_forms()}")
    spec = spec.strip()
    opts = dict(opts)
    if spec == "embedded" or spec.startswith("embedded?"):
        return _local(spec, opts)
    kind, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise BackendSpecError(f"unknown backend spec {spec!r}; {_forms()}")
    if kind == "hf":
        return _local(rest, opts, spec)
    if kind == "openai-compatible":
        return _openai_compatible(spec, rest, opts)
    if kind == "fake":
        return _fake(rest, opts)
    if not kind.replace("_", "").replace("-", "").isalnum():
        raise BackendSpecError(f"unknown backend spec {spec!r}; {_forms()}")
    return _provider(spec, kind, rest, opts)
