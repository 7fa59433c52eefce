"""The run configuration: a validated pydantic model, read from YAML and command-line overrides.

Errors name the file (or flag) and field and list what is allowed; the runner turns them into
exit status 2 before it writes anything.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agents.registry import AGENT_KINDS
from scenarios import ScenarioError, instrument_ids, parse_model
from scenarios.loading import read_yaml as _read_yaml_file

__all__ = [
    "CONFIG_DIR",
    "RESUME_KEYS",
    "Budget",
    "ConfigError",
    "LLMSettings",
    "RunConfig",
    "apply_overrides",
    "load_config",
    "preset_path",
]

CONFIG_DIR = Path(__file__).parent / "configs"
ORDERS = ("fixed", "reversed", "permuted")


class ConfigError(ValueError):
    """A bad run configuration (file, key, value or flag); the message says what is allowed."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


#: GoalPromptedPolicy keyword arguments llm.options may set (the others have their own keys).
POLICY_OPTIONS = (
    "induction_tokens",
    "goal_tokens",
    "max_reasks",
    "extractor",
    "extractor_temperature",
    "extractor_tokens",
    "chain_of_thought",
    "name",
)


class LLMSettings(_Strict):
    """How LLM agents decide (passed to agents.llm.GoalPromptedPolicy)."""

    mode: Literal["generate", "logprob"] = Field(
        "generate", description="generate: free text + parser; logprob: distribution over the option letters"
    )
    temperature: float = Field(
        1.0,
        ge=0.0,
        le=10.0,
        allow_inf_nan=False,
        description="sampling temperature (0: greedy; trials then repeat)",
    )
    top_p: float = Field(1.0, gt=0.0, le=1.0, allow_inf_nan=False, description="nucleus sampling")
    max_new_tokens: int = Field(64, ge=1, le=32_768, description="reply length limit for item answers")
    options: dict[str, Any] = Field(
        default_factory=dict, description="further GoalPromptedPolicy keyword arguments (e.g. max_reasks)"
    )
    backend_options: dict[str, Any] = Field(
        default_factory=dict,
        description="model backend options, checked per backend (timeout_s, retries, backoff_s, ...; "
        "local: dtype, device, ...); see agents/llm/factory.py",
    )

    @field_validator("options")
    @classmethod
    def _options(cls, v: dict[str, Any]) -> dict[str, Any]:
        owned = {
            "backend": "agents",
            "backend_options": "llm.backend_options",
            "mode": "llm.mode",
            "sampling": "llm.temperature/top_p/max_new_tokens",
            "prompt_set": "prompt_sets",
            "framings": "framings",
        }
        bad = {k: owned[k] for k in v if k in owned}
        if bad:
            raise ValueError(
                "set these with their own keys, not llm.options: "
                + ", ".join(f"{k} -> {w}" for k, w in bad.items())
            )
        unknown = sorted(k for k in v if k not in POLICY_OPTIONS)
        if unknown:
            raise ValueError(
                f"unknown option(s) {unknown}; llm.options takes: {', '.join(POLICY_OPTIONS)} "
                "(YAML needs a space after ':' in an inline mapping: {induction_tokens: 24})"
            )
        return v


class Budget(_Strict):
    """Limits for API models, checked before each call (None: no limit)."""

    max_calls: int | None = Field(None, ge=0, description="model calls (conversations sent) per agent")
    max_tokens: int | None = Field(None, ge=0, description="prompt + completion tokens per agent")


class Limits(_Strict):
    """Sizes a run may reach; a config beyond them is refused before anything is written. Raise a
    limit deliberately with --set limits.KEY=VALUE."""

    max_episodes: int = Field(200_000, ge=1, description="episodes in the plan")
    max_rounds: int = Field(10_000, ge=1, description="rounds of a scenario episode")
    max_players: int = Field(2_000, ge=2, description="players of a scenario")


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class RunConfig(_Strict):
    """One evaluation: the grid agents x values x goal x trials x instruments x option orders, or a
    scenario's population x the same conditions (runs/plan.py)."""

    name: str | None = Field(
        None, description="run name (letters, digits, _ . -); the run directory is <results_dir>/<name>"
    )
    results_dir: str = Field("results", description="parent folder of run directories (git-ignored)")
    agents: list[str] = Field(
        ["llm:embedded"],
        description="agent specs (see below); in a scenario run TARGET=SPEC entries replace players "
        "(TARGET: group, player or '*'), none = the scenario's population as written",
    )
    values: list[Literal["altruistic", "prosocial", "individualistic", "competitive"]] | None = Field(
        None,
        min_length=1,
        description="value orientations to induce and score against (instruments: all four when unset; "
        "scenarios: for players whose group sets no value)",
    )
    goal: Literal["on", "off", "both"] = Field("both", description="goal prompt condition(s)")
    trials: int = Field(1, ge=1, description="independent trials per cell")
    instruments: list[str] = Field(["slider"], min_length=1, description="instrument ids")
    items: Literal["primary", "all"] = Field("primary", description="slider items: 6 primary or all 15")
    orders: list[Literal["fixed", "reversed", "permuted"]] = Field(
        ["fixed"], min_length=1, description="option-order conditions (fixed = the paper's)"
    )
    prompt_sets: list[str] = Field(
        ["paper"], min_length=1, description="LLM prompt sets (scenarios/data/prompts: paper, paper-fr...)"
    )
    framings: list[str] = Field(
        ["none"], min_length=1, description="LLM framings per episode: none, or framing ids joined by +"
    )
    seed: int = Field(0, ge=0, description="base seed; episode seeds derive from it")
    llm: LLMSettings = Field(default_factory=LLMSettings)
    budget: Budget = Field(default_factory=Budget)
    cache: Literal["shared", "run", "off"] = Field(
        "shared", description="response cache: shared (.cache/responses.sqlite), run (in the run dir), off"
    )
    batch_size: int = Field(
        8, ge=1, le=100_000, description="episodes stepped together; a kill loses at most one batch"
    )
    threads: int | Literal["auto"] | None = Field(
        "auto",
        description="torch CPU threads per process for local models; auto (or None): 1 per worker "
        "process, or the usable cores divided among `workers` when that is set (runs/cores.py)",
    )
    workers: int | Literal["auto"] = Field(
        "auto",
        description="executor local: processes playing episodes; auto: one per usable core "
        "(os.sched_getaffinity) for local models, within memory, else 1 (this process)",
    )
    executor: Literal["local", "ray"] = Field(
        "local",
        description="who plays the episodes: local (this machine) or ray (Ray actors; the [ray] extra)",
    )
    ray_address: str | None = Field(
        None, description="executor ray: an existing cluster's address (HOST:PORT); none: a local Ray"
    )
    ray_actors: int | None = Field(
        None,
        ge=1,
        description="executor ray: single-thread CPU actors (none: one per cluster CPU when there are "
        "no GPU actors, else 0)",
    )
    gpus_per_actor: float = Field(
        1.0,
        ge=0.0,
        le=64.0,
        allow_inf_nan=False,
        description="executor ray: GPUs per GPU actor (one actor per GPU by default; 0: no GPU actors)",
    )
    ci_level: float = Field(0.95, gt=0.0, lt=1.0, description="interval level")
    convention: Literal["interval", "ideal"] = Field(
        "interval", description="value-rationality target used for the radar figure and goal effect"
    )
    scenario: str | None = Field(
        None, description="a dilemma scenario to play (id in scenarios/data/dilemmas, or a YAML path)"
    )
    rounds: int | None = Field(
        None, ge=1, description="scenario runs: rounds per episode (default: the scenario's)"
    )
    limits: Limits = Field(default_factory=Limits)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        if v is not None and (not _NAME.match(v) or ".." in v):
            raise ValueError(
                f"{v!r} is not a plain name: use 1-128 letters, digits, '_', '.', '-' (no path separators, "
                "no '..'); to choose the folder, use --results-dir or --run-dir"
            )
        return v

    @field_validator("threads", "workers")
    @classmethod
    def _positive(cls, v: int | str | None) -> int | str | None:
        if isinstance(v, int) and v < 1:
            raise ValueError(f"{v} must be a whole number >= 1, or auto")
        return v

    @field_validator("cache", mode="before")
    @classmethod
    def _cache_off(cls, v: Any) -> Any:
        # YAML reads an unquoted `off` (a config file's `cache: off`, or `--set cache=off`) as false.
        return "off" if v is False else v

    @field_validator("ray_address")
    @classmethod
    def _address(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^(ray://)?[A-Za-z0-9_.\[\]:-]+:\d{1,5}$", v.strip()):
            raise ValueError(
                f"{v!r} is not a Ray address: use HOST:PORT (e.g. 127.0.0.1:6379) or ray://HOST:PORT"
            )
        return None if v is None else v.strip()

    @field_validator("instruments")
    @classmethod
    def _instruments(cls, v: list[str]) -> list[str]:
        allowed = instrument_ids()
        bad = [x for x in v if x not in allowed]
        if bad:
            raise ValueError(f"unknown instrument(s) {bad}; allowed: {allowed}")
        return v

    @field_validator("prompt_sets")
    @classmethod
    def _prompt_sets(cls, v: list[str]) -> list[str]:
        from scenarios.prompts import prompt_set_ids

        allowed = prompt_set_ids()
        bad = [x for x in v if x not in allowed]
        if bad:
            raise ValueError(f"unknown prompt set(s) {bad}; allowed: {allowed}")
        return v

    @field_validator("framings")
    @classmethod
    def _framings(cls, v: list[str]) -> list[str]:
        from scenarios.prompts import framing_ids

        allowed = framing_ids()
        for entry in v:
            if entry == "none":
                continue
            bad = [x for x in entry.split("+") if x not in allowed]
            if bad:
                raise ValueError(
                    f"framing {entry!r}: unknown id(s) {bad}; allowed: none, or ids joined by +: {allowed}"
                )
        return v

    @field_validator("agents", "values", "instruments", "orders", "prompt_sets", "framings")
    @classmethod
    def _unique(cls, v: list | None) -> list | None:
        if v is None:
            return v
        dup = sorted({x for x in v if v.count(x) > 1})
        if dup:
            raise ValueError(f"duplicate entries {dup}")
        return v

    def goals(self) -> list[bool]:
        return {"on": [True], "off": [False], "both": [True, False]}[self.goal]

    def n_episodes(self) -> int:
        """Episodes in the plan, counted without building it (runs/plan.py builds the same grid)."""
        from runs.plan import axis_sizes

        n = 1
        for size in axis_sizes(self):
            n *= size
        return n

    def resume_view(self) -> dict[str, Any]:
        """The part of the config a resumed run must share with the manifest."""
        d = self.model_dump(mode="json")
        return {k: d[k] for k in RESUME_KEYS}


#: Keys that define the episodes and how agents act (threads included: another thread count
#: changes float rounding, hence sampled text); the others (where results go, budget, cache,
#: batch size, report settings, and who plays the episodes: executor, workers, Ray settings, since
#: every executor plays the same units the same way) may change when a run is resumed.
RESUME_KEYS = (
    "agents",
    "prompt_sets",
    "framings",
    "values",
    "goal",
    "trials",
    "instruments",
    "items",
    "orders",
    "seed",
    "llm",
    "threads",
    "scenario",
    "rounds",
)

_SECTIONS: dict[str, type[BaseModel]] = {"llm": LLMSettings, "budget": Budget, "limits": Limits}


def _check_keys(data: dict[str, Any], source: str) -> None:
    allowed = list(RunConfig.model_fields)
    bad = [k for k in data if k not in allowed]
    if bad:
        raise ConfigError(f"{source}: unknown key(s) {bad}; allowed: {allowed}")
    for sec, model in _SECTIONS.items():
        sub = data.get(sec)
        if isinstance(sub, dict):
            ok = list(model.model_fields)
            bad = [k for k in sub if k not in ok]
            if bad:
                raise ConfigError(
                    f"{source}: unknown key(s) {[f'{sec}.{k}' for k in bad]}; allowed in {sec}: {ok}"
                )


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if k in _SECTIONS and isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = {**out[k], **v}
        else:
            out[k] = v
    return out


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A config file's mapping (empty file: {})."""
    data = _read_yaml_file(path, ConfigError, "config file")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys, got {type(data).__name__}")
    _check_keys(data, str(path))
    return data


def preset_path(name: str) -> Path:
    """Path of a shipped config (runs/configs/<name>.yaml)."""
    p = CONFIG_DIR / f"{name}.yaml"
    if not p.is_file():
        raise ConfigError(
            f"unknown preset {name!r}; allowed: {sorted(q.stem for q in CONFIG_DIR.glob('*.yaml'))}"
        )
    return p


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any], source: str) -> dict[str, Any]:
    """Merge dotted-key overrides ("llm.mode": "logprob", "llm.backend_options.retries": 0) into a
    config mapping."""
    out = dict(data)
    for key, v in overrides.items():
        head, _, tail = key.partition(".")
        if tail:
            if head not in _SECTIONS:
                raise ConfigError(f"{source}: {key!r}: only llm.*, budget.* and limits.* take dotted keys")
            section = dict(out.get(head) or {})
            name, _, sub = tail.partition(".")
            if sub:  # a key inside a mapping field, e.g. llm.backend_options.timeout_s
                inner = section.get(name) or {}
                if not isinstance(inner, dict):
                    raise ConfigError(f"{source}: {key!r}: {head}.{name} is not a mapping")
                section[name] = {**inner, sub: v}
            else:
                section[name] = v
            out[head] = section
        else:
            out[head] = v
    _check_keys(out, source)
    return out


def validate(data: dict[str, Any], source: str) -> RunConfig:
    """Validate a merged mapping into a RunConfig, or raise ConfigError naming each bad field."""
    _check_keys(data, source)
    try:
        return parse_model(data, RunConfig, source)
    except ScenarioError as err:
        msg = str(err)
        if "agents" in msg:
            msg += f"\n  agent specs allowed: {', '.join(AGENT_KINDS)}"
        raise ConfigError(msg) from None


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Config from a YAML file (default: the shipped default.yaml) plus dotted-key overrides."""
    p = Path(path) if path is not None else preset_path("default")
    data = _merge({}, read_yaml(p))
    if overrides:
        data = apply_overrides(data, overrides, f"{p} + overrides")
    return validate(data, str(p))
