"""Prompt sets and framings for LLM agents, as validated data (scenarios/data/prompts/).

A prompt set is the text of the paper's chain in one language: value induction, role prompt, goal
prompt, the fixed sentence used without a goal, the item prompt, the re-ask and the extractor
question; and, for social dilemmas, the goal prompt around a game's description and the move
prompt (round, last round, lettered options). Framings (scenarios/data/framings.yaml) change the
context of the same choice for cross-cultural runs, on the instruments and in every dilemma: a
persona (system message), who the partner is, the currency and stakes.

Templates use `{name}` fields; the loader checks that every field a template uses is one the
policy provides (TEMPLATE_FIELDS), so a typo fails at load time with file and field named.
The item text is rendered from the environment's observation (payoffs in the shown order, letters
A.. in that order), so counterbalanced option orders are what the model sees.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from scenarios.instruments import VALUE_NAMES
from scenarios.instruments import value as load_value
from scenarios.loading import DATA_DIR, ScenarioError, load_yaml_model
from scenarios.phrases import AnswerPhrases

__all__ = [
    "LETTERS",
    "TEMPLATE_FIELDS",
    "Framing",
    "PromptSet",
    "RenderContext",
    "framing_ids",
    "letters_for",
    "load_framing",
    "load_framings",
    "load_prompt_set",
    "prompt_set_ids",
    "render_context",
    "render_item",
    "render_options",
]

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
PROMPT_DIR = DATA_DIR / "prompts"
FRAMINGS_FILE = DATA_DIR / "framings.yaml"

#: Variables every template may use (framing variables are added per prompt set: `variables`).
_COMMON = {
    "value",
    "value_name",
    "n_items",
    "n_options",
    "first_letter",
    "last_letter",
    "letters",
    "letters_quoted",
    "example_letter",
}
TEMPLATE_FIELDS: dict[str, set[str]] = {
    "induction": _COMMON,
    "role": _COMMON,
    "goal": _COMMON,
    "no_goal": _COMMON,
    "no_value": _COMMON,
    "item": _COMMON | {"ordinal", "options", "goal", "item_number"},
    "option_line": {"letter", "self", "other_amount"},
    "reask": _COMMON,
    "extractor": _COMMON | {"reply"},
    "letter_only": _COMMON,
    "chain_of_thought": _COMMON,
    "game_goal": _COMMON | {"game"},
    "move": _COMMON | {"situation", "options", "goal"},
    "move_option": {"letter", "label"},
    "round_line": _COMMON | {"round", "rounds"},
    "history_line": _COMMON | {"mine", "theirs"},
}


def _fields(template: str) -> set[str]:
    try:
        return {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as err:
        raise ValueError(f"malformed template ({err}); write literal braces as {{{{ and }}}}") from None


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PromptSet(_Frozen):
    """The texts of the goal-prompted chain in one language (see module docstring)."""

    id: str
    language: str = Field(min_length=2, description="BCP-47 language code, e.g. en, fr")
    source: str
    description: str = ""
    value_names: dict[str, str] | None = None
    variables: dict[str, str] = Field(default_factory=dict)
    ordinals: tuple[str, ...] = Field(min_length=15)
    answer_phrases: AnswerPhrases = Field(description="how replies are read (scenarios.phrases)")
    induction: str
    role: str
    goal: str
    no_goal: str
    no_value: str
    item: str
    option_line: str
    reask: str
    extractor: str
    letter_only: str
    chain_of_thought: str
    game_goal: str
    move: str
    move_option: str
    round_line: str
    history_line: str

    @model_validator(mode="after")
    def _check(self) -> PromptSet:
        if self.value_names is not None and sorted(self.value_names) != sorted(VALUE_NAMES):
            raise ValueError(
                f"value_names must name exactly {list(VALUE_NAMES)}, got {sorted(self.value_names)}"
            )
        if self.value_names is None and self.language != "en":
            raise ValueError("value_names is required for a non-English prompt set")
        for name, allowed in TEMPLATE_FIELDS.items():
            allowed = allowed | set(self.variables) if name not in ("option_line", "move_option") else allowed
            used = _fields(getattr(self, name))
            bad = sorted(used - allowed)
            if bad:
                raise ValueError(f"template {name!r} uses unknown fields {bad}; allowed: {sorted(allowed)}")
        for name in ("item", "move"):
            if "{options}" not in getattr(self, name):
                raise ValueError(f"template {name!r} must contain {{options}}")
        if "{reply}" not in self.extractor:
            raise ValueError("template 'extractor' must contain {reply}")
        return self

    def value_label(self, value_name: str) -> str:
        """How this set names a value in its prompts (values.yaml `prompt_name` by default)."""
        if self.value_names is not None:
            return self.value_names[value_name]
        return load_value(value_name).prompt_name


class Framing(_Frozen):
    """A context change for the same allocation: a persona, a partner, or the stakes.

    system: per language, a persona text sent as a system message before the chain.
    variables: per language, overrides of the prompt set's variables (e.g. `other`, `unit`).
    scale: displayed amounts are payoffs * scale (stakes); the choice and its scoring are unchanged.
    """

    id: str
    kind: Literal["persona", "partner", "stakes"]
    description: str
    system: dict[str, str] = Field(default_factory=dict)
    variables: dict[str, dict[str, str]] = Field(default_factory=dict)
    scale: float = Field(default=1.0, gt=0)

    def languages(self) -> set[str]:
        langs = set(self.system) | set(self.variables)
        return langs


class _Framings(_Frozen):
    framings: tuple[Framing, ...]

    @model_validator(mode="after")
    def _check(self) -> _Framings:
        ids = [f.id for f in self.framings]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"duplicate framing ids {dup}")
        return self


def prompt_set_ids() -> list[str]:
    """Ids of the shipped prompt sets (file names in scenarios/data/prompts, framings live in scenarios/data/framings.yaml)."""
    return sorted(p.stem for p in PROMPT_DIR.glob("*.yaml") if p != FRAMINGS_FILE)


@cache
def load_prompt_set(prompt_set_id: str) -> PromptSet:
    """Load a shipped prompt set by id (e.g. "paper", "paper-fr")."""
    if prompt_set_id not in prompt_set_ids():
        raise ScenarioError(f"unknown prompt set {prompt_set_id!r}; allowed: {prompt_set_ids()}")
    path = PROMPT_DIR / f"{prompt_set_id}.yaml"
    ps = load_yaml_model(path, PromptSet)
    if ps.id != prompt_set_id:
        raise ScenarioError(f"{path}: field id is {ps.id!r}, must match the file name")
    return ps


@cache
def load_framings() -> dict[str, Framing]:
    """All framings of scenarios/data/framings.yaml, by id, checked against the prompt sets' languages and variables."""
    data = load_yaml_model(FRAMINGS_FILE, _Framings)
    sets = [load_prompt_set(i) for i in prompt_set_ids()]
    langs = {s.language for s in sets}
    for k, f in enumerate(data.framings):
        extra = sorted(f.languages() - langs)
        if extra:
            raise ScenarioError(
                f"{FRAMINGS_FILE}: field framings[{k}] ({f.id}): languages {extra} have no "
                f"prompt set; known: {sorted(langs)}"
            )
        for lang, overrides in f.variables.items():
            for s in (s for s in sets if s.language == lang):
                bad = sorted(set(overrides) - set(s.variables))
                if bad:
                    raise ScenarioError(
                        f"{FRAMINGS_FILE}: field framings[{k}].variables.{lang} ({f.id}): {bad} are not "
                        f"variables of prompt set {s.id!r}; allowed: {sorted(s.variables)}"
                    )
    return {f.id: f for f in data.framings}


def framing_ids() -> list[str]:
    return sorted(load_framings())


def load_framing(framing_id: str) -> Framing:
    fr = load_framings()
    if framing_id not in fr:
        raise ScenarioError(f"unknown framing {framing_id!r}; allowed: {sorted(fr)}")
    return fr[framing_id]


def letters_for(n_options: int) -> str:
    """The option letters A.. for n options."""
    if not 1 <= n_options <= len(LETTERS):
        raise ValueError(f"n_options={n_options} outside 1..{len(LETTERS)}")
    return LETTERS[:n_options]


class RenderContext(_Frozen):
    """Everything fixed for one episode's prompts: the set, its resolved variables, persona, scale."""

    prompt_set: PromptSet
    variables: dict[str, str]
    system: tuple[str, ...] = ()
    scale: float = 1.0
    framings: tuple[str, ...] = ()

    def fill(self, template_name: str, **extra: Any) -> str:
        """Fill one of the set's templates with the episode variables and `extra`."""
        return getattr(self.prompt_set, template_name).format(**{**self.variables, **extra})


def render_context(
    prompt_set: PromptSet | str,
    *,
    value_name: str | None,
    n_items: int,
    n_options: int,
    framings: Sequence[str] = (),
) -> RenderContext:
    """Resolve an episode's prompt variables (value, letters, counts, framing overrides)."""
    ps = load_prompt_set(prompt_set) if isinstance(prompt_set, str) else prompt_set
    letters = letters_for(n_options)
    variables: dict[str, str] = dict(ps.variables)
    system: list[str] = []
    scale = 1.0
    kinds: dict[str, str] = {}
    for fid in framings:
        f = load_framing(fid)
        if f.kind in kinds:
            raise ScenarioError(
                f"framings {kinds[f.kind]!r} and {fid!r} are both of kind {f.kind!r}; pick one"
            )
        kinds[f.kind] = fid
        if ps.language not in f.languages():
            raise ScenarioError(
                f"framing {fid!r} has no text for language {ps.language!r} (prompt set {ps.id!r}); "
                f"available: {sorted(f.languages())}"
            )
        if ps.language in f.system:
            system.append(f.system[ps.language])
        variables.update(f.variables.get(ps.language, {}))
        scale *= f.scale
    variables.update(
        value=ps.value_label(value_name) if value_name else "",
        value_name=value_name or "",
        n_items=str(n_items),
        n_options=str(n_options),
        first_letter=letters[0],
        last_letter=letters[-1],
        letters=", ".join(letters),
        letters_quoted=", ".join(f"'{c}'" for c in letters),
        example_letter=letters[(n_options - 1) // 2],
    )
    return RenderContext(
        prompt_set=ps, variables=variables, system=tuple(system), scale=scale, framings=tuple(framings)
    )


def _num(x: float) -> str:
    return f"{float(x):g}"


def render_options(ctx: RenderContext, payoffs: Any) -> str:
    """One line per shown option, lettered A.. in the shown order; amounts scaled by the stakes."""
    lines = []
    for k, (s, o) in enumerate(payoffs):
        lines.append(
            ctx.prompt_set.option_line.format(
                letter=LETTERS[k], self=_num(s * ctx.scale), other_amount=_num(o * ctx.scale)
            )
        )
    return "\n".join(lines)


def render_item(ctx: RenderContext, payoffs: Any, item_index: int, goal: str) -> str:
    """The item prompt for an observation: payoffs (n_options, 2) as shown, 0-based item position."""
    ordinals: Mapping[int, str] = dict(enumerate(ctx.prompt_set.ordinals))
    if item_index not in ordinals:
        raise ScenarioError(f"prompt set {ctx.prompt_set.id!r} has no ordinal for item {item_index + 1}")
    return ctx.fill(
        "item",
        ordinal=ordinals[item_index],
        item_number=str(item_index + 1),
        options=render_options(ctx, payoffs),
        goal=goal,
    )
