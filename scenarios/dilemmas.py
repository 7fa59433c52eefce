"""Social-dilemma scenarios as validated YAML data (scenarios/data/dilemmas/*.yaml).

A scenario is everything needed to build a PettingZoo env and a population of agents without
Python: the game kind, players, actions, payoffs (a literal matrix or expressions over named
variables, see scenarios/expr.py), rounds, the belief model used to score choices, the graph,
framing text, and which agents play. `docs/scenario-authoring.md` walks through writing one.

Game kinds (each is one env class in envs/dilemmas, variants are data):
- "matrix": a symmetric two-person game (prisoner's dilemma, stag hunt, chicken...), one-shot or
  repeated, played by every pair of neighbours on the graph (a single pair by default);
- "slider": the paired SVO slider: both players allocate on each item and payoffs add up;
- "public_goods": an N-player linear public goods game (all players in one group);
- "sequential": a turn-based game of stages (dictator, ultimatum, trust).

Built-in expression variables (besides the scenario's `variables`):
- matrix `payoffs.self`: `me`, `partner` (the two actions' values);
- public_goods `payoffs.self`: `contribution` (mine), `others` (sum of the others'), `total`, `n`;
- sequential `payoffs.<role>`: each stage's name (the value of the action chosen there).

Text an LLM sees (`text.intro`, `stages[].prompt`) is a template per language (a plain string is
English); its placeholders are the prompt set's variables ({other}, {others}, {unit}, {units},
changed by partner and stakes framings), {rounds}, {n_players}, {n_neighbours}, the scenario's
variables (shown times the stakes' scale) and, in stage prompts, earlier stages' names. Personas,
partners and stakes are the framings of scenarios/data/framings.yaml, the same vocabulary as the
SVO instruments; the decision prompt itself comes from the prompt set (`move`).

Agent specs are those of agents/registry.py (one syntax for every environment).

Every mistake raises `ScenarioError` naming the file and the field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import networkx as nx
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from scenarios.expr import ExprError, compile_expr
from scenarios.loading import DATA_DIR, ScenarioError, parse_model, read_yaml

__all__ = [
    "ActionSpec",
    "AgentGroup",
    "Dilemma",
    "GraphSpec",
    "Stage",
    "GameText",
    "build_graph",
    "dilemma_ids",
    "game_text",
    "format_text",
    "load_dilemma",
    "load_dilemma_file",
    "parse_dilemma",
]

DILEMMA_DIR = DATA_DIR / "dilemmas"
#: Largest population and interaction graph a scenario may declare (raise deliberately with the
#: environment variables SVO_MAX_PLAYERS / SVO_MAX_EDGES): every edge is played every round.
MAX_PLAYERS = 10_000
MAX_EDGES = 200_000


def _max(env: str, default: int) -> int:
    import os

    try:
        return int(os.environ.get(env, default))
    except ValueError:
        raise ValueError(f"environment variable {env}={os.environ[env]!r} is not a whole number") from None


GameKind = Literal["matrix", "slider", "public_goods", "sequential"]
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_BUILTINS = {
    "matrix": {"me", "partner"},
    "public_goods": {"contribution", "others", "total", "n"},
}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ActionSpec(_Frozen):
    """One action: its name (shown to LLMs, used in matrices), numeric value (used in expressions),
    an optional label for text, and how cooperative it is (0..1, for cooperation rates)."""

    name: str
    value: float
    label: str | None = None
    cooperation: float | None = Field(default=None, ge=0.0, le=1.0)


def _actions(raw: Any) -> Any:
    """Accept "name", a number, or a mapping per action; fill value (index, or the number)."""
    if not isinstance(raw, list):
        return raw
    out = []
    for i, a in enumerate(raw):
        if isinstance(a, str):
            out.append({"name": a, "value": i})
        elif isinstance(a, (int, float)) and not isinstance(a, bool):
            out.append({"name": f"{a:g}", "value": a})
        elif isinstance(a, dict):
            out.append({"value": i, **a})
        else:
            out.append(a)
    return out


def _check_actions(actions: tuple[ActionSpec, ...], where: str = "actions") -> None:
    names = [a.name for a in actions]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"{where}: duplicate action names {dup}; each action needs its own name")
    if len(actions) < 2:
        raise ValueError(f"{where}: a decision needs at least 2 actions, got {len(actions)}")


class Stage(_Frozen):
    """One move of a sequential game: who moves, the variable it sets, and the actions."""

    player: str
    name: str
    actions: tuple[ActionSpec, ...]
    #: The situation text of this move, per language (a plain string is English).
    prompt: str | dict[str, str] | None = None

    @field_validator("actions", mode="before")
    @classmethod
    def _norm(cls, v: Any) -> Any:
        return _actions(v)

    @model_validator(mode="after")
    def _check(self) -> Stage:
        if not _IDENT.match(self.name):
            raise ValueError(f"stage name {self.name!r} must be an identifier (letters, digits, _)")
        _check_actions(self.actions, f"stage {self.name!r} actions")
        return self


class GraphSpec(_Frozen):
    """Who plays whom. kind: pair (2 players), complete, ring, small_world (Watts-Strogatz: k, p),
    scale_free (Barabasi-Albert: m), edges (a list of [u, v]) or edgelist (a file, relative to the
    scenario file, one "u v" pair per line). `seed` fixes random graphs (same graph every run)."""

    kind: Literal["pair", "complete", "ring", "small_world", "scale_free", "edges", "edgelist"] = "pair"
    n: int | None = Field(default=None, ge=2)
    k: int = Field(default=4, ge=2)
    p: float = Field(default=0.1, ge=0.0, le=1.0)
    m: int = Field(default=2, ge=1)
    edges: tuple[tuple[int | str, int | str], ...] | None = None
    path: str | None = None
    seed: int = 0

    def edge_count(self) -> int:
        """How many edges the graph will have (an upper bound for scale-free), computed without
        building it, so an oversized graph is refused before it is built."""
        n = self.n or 0
        return {
            "pair": 1,
            "complete": n * (n - 1) // 2,
            "ring": n,
            "small_world": n * self.k // 2,
            "scale_free": self.m * n,
            "edges": len(self.edges or ()),
        }.get(self.kind, 0)

    @model_validator(mode="after")
    def _check(self) -> GraphSpec:
        limit = _max("SVO_MAX_PLAYERS", MAX_PLAYERS)
        if self.n is not None and self.n > limit:
            raise ValueError(
                f"graph: n={self.n:,} players; the limit is {limit:,} (raise it deliberately with the environment "
                "variable SVO_MAX_PLAYERS)"
            )
        edges, elimit = self.edge_count(), _max("SVO_MAX_EDGES", MAX_EDGES)
        if edges > elimit:
            raise ValueError(
                f"graph: a {self.kind} graph of {self.n:,} players has {edges:,} edges; the limit is {elimit:,} "
                "(raise it deliberately with the environment variable SVO_MAX_EDGES)"
            )
        if self.kind in ("complete", "ring", "small_world", "scale_free") and self.n is None:
            raise ValueError(f"graph kind {self.kind!r} needs n (number of players)")
        if self.kind == "pair" and self.n not in (None, 2):
            raise ValueError(f"graph kind 'pair' has exactly 2 players, got n={self.n}")
        if self.kind == "edges" and not self.edges:
            raise ValueError("graph kind 'edges' needs a non-empty `edges` list of [u, v] pairs")
        if self.kind == "edgelist" and not self.path:
            raise ValueError("graph kind 'edgelist' needs `path` (a file of 'u v' lines)")
        if self.kind == "small_world" and self.n is not None and self.k >= self.n:
            raise ValueError(f"small_world needs k < n, got k={self.k}, n={self.n}")
        if self.kind == "scale_free" and self.n is not None and self.m >= self.n:
            raise ValueError(f"scale_free needs m < n, got m={self.m}, n={self.n}")
        return self


def build_graph(spec: GraphSpec, base_dir: Path | None = None) -> nx.Graph:
    """The networkx graph of a GraphSpec (deterministic: random graphs use spec.seed)."""
    if spec.kind == "pair":
        g = nx.Graph([(0, 1)])
    elif spec.kind == "complete":
        g = nx.complete_graph(spec.n)
    elif spec.kind == "ring":
        g = nx.cycle_graph(spec.n)
    elif spec.kind == "small_world":
        g = nx.connected_watts_strogatz_graph(spec.n, spec.k, spec.p, tries=100, seed=spec.seed)
    elif spec.kind == "scale_free":
        g = nx.barabasi_albert_graph(spec.n, spec.m, seed=spec.seed)
    elif spec.kind == "edges":
        g = nx.Graph()
        g.add_edges_from(spec.edges)
        if spec.n is not None:
            g.add_nodes_from(range(spec.n))
    else:
        path = Path(spec.path)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        if not path.is_file():
            raise ValueError(f"graph edgelist file {path} not found")
        g = nx.read_edgelist(path, nodetype=str, data=False)
    g.remove_edges_from(nx.selfloop_edges(g))
    return g


class AgentGroup(_Frozen):
    """Players who share an agent spec (agents/registry.py), and optionally a value and framing
    (framing ids of scenarios/data/framings.yaml, joined by "+"): `count` of them, or the named
    `players`. Groups fill the players in order; `assignment: shuffled` in the scenario shuffles
    the order with the graph seed. A group without a value takes the run's `values` axis."""

    name: str
    agent: str
    count: int | None = Field(default=None, ge=1)
    players: tuple[str, ...] | None = None
    value: str | None = None
    framing: str | None = None

    @model_validator(mode="after")
    def _check(self) -> AgentGroup:
        from agents.registry import AgentSpecError, parse_spec  # the one spec syntax

        if not _IDENT.match(self.name):
            raise ValueError(f"agent group name {self.name!r} must be an identifier (letters, digits, _)")
        try:
            parse_spec(self.agent)
        except AgentSpecError as err:
            raise ValueError(str(err)) from None
        if (self.count is None) == (self.players is None):
            raise ValueError(f"agent group {self.name!r} needs exactly one of count or players")
        if self.value is not None:
            from scenarios.instruments import VALUE_NAMES

            if self.value not in VALUE_NAMES:
                raise ValueError(
                    f"agent group {self.name!r}: value {self.value!r} unknown; allowed: {list(VALUE_NAMES)}"
                )
        if self.framing is not None:
            from scenarios.prompts import framing_ids

            bad = [f for f in self.framing.split("+") if f not in framing_ids()]
            if bad:
                raise ValueError(
                    f"agent group {self.name!r}: framing {bad} unknown; allowed: ids of "
                    f"scenarios/data/framings.yaml joined by +: {framing_ids()}"
                )
        return self


#: Placeholders a scenario text may use besides its variables and the prompt set's variables.
_PLACEHOLDERS = {"rounds", "n_players", "n_neighbours"}
#: Placeholders of earlier versions -> what replaced them.
_RENAMED = {
    "persona": "personas are framings sent as a system message (remove {persona})",
    "partner": "use {other} (one partner) or {others} (several), set by partner framings",
    "currency": "use {units} (or {unit}), set by stakes framings",
}


def text_for(text: str | dict[str, str], language: str, where: str) -> str:
    """The template of `language` (a plain string is English), or ScenarioError naming `where`."""
    if isinstance(text, str):
        if language != "en":
            raise ScenarioError(
                f"{where}: has English text only; add a {language!r} entry to use this language"
            )
        return text
    if language not in text:
        raise ScenarioError(f"{where}: no text in {language!r}; available: {sorted(text)}")
    return text[language]


def text_languages(text: str | dict[str, str] | None) -> set[str]:
    if text is None:
        return set()
    return {"en"} if isinstance(text, str) else set(text)


def format_text(
    template: str, d: Dilemma, variables: dict[str, str], scale: float = 1.0, **fields: Any
) -> str:
    """Fill a scenario text template: the prompt set's resolved variables (framings applied), the
    scenario's variables times the stakes' `scale`, {rounds}, {n_players}, and `fields`
    ({n_neighbours}, stage names...). An unknown placeholder raises ScenarioError naming it."""
    values: dict[str, Any] = dict(variables)
    values.update({k: f"{v * scale:g}" for k, v in d.variables.items()})
    values.update(rounds=d.rounds, n_players=d.n_players())
    values.update(fields)
    try:
        return template.format(**values)
    except KeyError as err:
        raise ScenarioError(
            f"{d.source or d.id}: text template uses unknown placeholder {{{err.args[0]}}}; allowed: "
            f"{sorted(_PLACEHOLDERS | set(d.variables) | set(variables) | {s.name for s in d.stages or ()})}"
        ) from None


@dataclass(frozen=True)
class GameText:
    """What a player of one episode is told about the game, before a prompt set (language) and
    framings are applied: templates per language, the values to fill them with (numbers as played:
    `rounds` is the episode's, not the file's), and the canonical action labels of each decision
    point (one list for simultaneous games, one per stage for sequential ones)."""

    scenario: str
    intro: str | dict[str, str]
    stage_prompts: tuple[str | dict[str, str] | None, ...]
    stage_names: tuple[str, ...]
    labels: tuple[tuple[str, ...], ...]
    variables: tuple[tuple[str, float], ...]
    rounds: int
    n_players: int
    n_neighbours: int

    def _fill(self, template: str, variables: Mapping[str, str], scale: float, **fields: Any) -> str:
        values: dict[str, Any] = dict(variables)
        values.update({k: f"{v * scale:g}" for k, v in self.variables})
        values.update(rounds=self.rounds, n_players=self.n_players, n_neighbours=self.n_neighbours)
        values.update(fields)
        return template.format(**values)

    def intro_text(self, language: str, variables: Mapping[str, str], scale: float = 1.0) -> str:
        """The game's description in `language`, filled with the episode's prompt variables."""
        return self._fill(text_for(self.intro, language, f"{self.scenario}: text.intro"), variables, scale)

    def stage_text(
        self,
        stage: int,
        previous: Sequence[int],
        language: str,
        variables: Mapping[str, str],
        scale: float = 1.0,
    ) -> str:
        """A sequential game's move text for `stage`, earlier stages named by the labels chosen."""
        t = self.stage_prompts[stage]
        if t is None:
            return ""
        done = {self.stage_names[i]: self.labels[i][k] for i, k in enumerate(previous[:stage]) if k >= 0}
        where = f"{self.scenario}: stages[{stage}].prompt"
        return self._fill(text_for(t, language, where), variables, scale, **done)


def game_text(d: Dilemma, rounds: int, n_neighbours: int) -> GameText:
    """The GameText of a scenario as played (rounds after any override; a player's neighbours)."""
    if d.game == "sequential":
        labels = tuple(tuple(a.label or a.name for a in st.actions) for st in d.stages)
        prompts = tuple(st.prompt for st in d.stages)
        names = tuple(st.name for st in d.stages)
    elif d.game == "slider":
        from scenarios.instruments import load_instrument

        n = load_instrument(d.instrument or "slider").n_options
        labels, prompts, names = (tuple(f"option {k + 1}" for k in range(n)),), (), ()
    else:
        labels, prompts, names = (tuple(a.label or a.name for a in d.actions),), (), ()
    return GameText(
        scenario=d.id,
        intro=d.text.intro,
        stage_prompts=prompts,
        stage_names=names,
        labels=labels,
        variables=tuple(sorted(d.variables.items())),
        rounds=rounds,
        n_players=d.n_players(),
        n_neighbours=n_neighbours,
    )


class Payoffs(_Frozen):
    """Payoffs: `matrix` (matrix games: n x n own payoffs, or n x n x [own, partner]; numbers or
    expressions), `self` (an expression for matrix or public_goods), or one expression per role
    (sequential games, as extra keys)."""

    model_config = ConfigDict(frozen=True, extra="allow")
    matrix: list | None = None
    self_: str | float | None = Field(default=None, alias="self")


class TextTemplates(_Frozen):
    """Text an LLM sees, per language (a plain string is English): `intro` describes the game. The
    decision prompt (round, history, lettered options) comes from the prompt set (`move`)."""

    intro: str | dict[str, str] = ""

    @model_validator(mode="before")
    @classmethod
    def _moved(cls, data: Any) -> Any:
        if isinstance(data, dict) and "decision" in data:
            raise ValueError(
                "text.decision was removed: the decision prompt comes from the prompt set "
                "(scenarios/data/prompts/*.yaml, template `move`), the same in every language"
            )
        return data


class Dilemma(_Frozen):
    """A validated dilemma scenario (see the module docstring and docs/scenario-authoring.md)."""

    id: str
    name: str
    description: str = ""
    version: int = Field(default=0, ge=0)
    game: GameKind
    players: int | tuple[str, ...] = 2
    actions: tuple[ActionSpec, ...] | None = None
    cooperative_action: str | None = None
    variables: dict[str, float] = Field(default_factory=dict)
    payoffs: Payoffs | None = None
    instrument: str | None = None
    items: Literal["primary", "all"] = "primary"
    stages: tuple[Stage, ...] | None = None
    rounds: int = Field(default=1, ge=1, le=100_000)
    memory: int = Field(default=1, ge=1)
    belief: Literal["uniform", "empirical"] = "empirical"
    aggregate: Literal["mean", "sum"] = "mean"
    graph: GraphSpec = Field(default_factory=GraphSpec)
    assignment: Literal["ordered", "shuffled"] = "ordered"
    text: TextTemplates = Field(default_factory=TextTemplates)
    agents: tuple[AgentGroup, ...] = ()
    source: str = ""

    @field_validator("actions", mode="before")
    @classmethod
    def _norm(cls, v: Any) -> Any:
        return _actions(v)

    @model_validator(mode="after")
    def _check(self) -> Dilemma:
        if not _IDENT.match(self.id):
            raise ValueError(f"id {self.id!r} must be an identifier (letters, digits, _)")
        for name in self.variables:
            if not _IDENT.match(name):
                raise ValueError(f"variables: {name!r} is not a valid name")
            clash = _BUILTINS.get(self.game, set()) & {name}
            if clash:
                raise ValueError(f"variables: {name!r} is a built-in name of {self.game} games")
        _graph_check(self)
        getattr(self, f"_check_{self.game}")()
        self._check_agents()
        self._check_text()
        return self

    def _check_text(self) -> None:
        import string

        from scenarios.prompts import load_prompt_set, prompt_set_ids

        shared = set().union(*(load_prompt_set(i).variables for i in prompt_set_ids()))
        base = _PLACEHOLDERS | set(self.variables) | shared
        texts: dict[str, tuple[Any, set[str]]] = {"text.intro": (self.text.intro, base)}
        for i, st in enumerate(self.stages or ()):
            if st.prompt is not None:
                earlier = {x.name for x in self.stages[:i]}
                texts[f"stages[{i}].prompt"] = (st.prompt, base | earlier)
        languages = text_languages(self.text.intro) if self.text.intro else None
        for where, (text, allowed) in texts.items():
            langs = text_languages(text)
            if languages is not None and text and langs != languages:
                raise ValueError(
                    f"{where}: languages {sorted(langs)} differ from text.intro's {sorted(languages)}"
                )
            for lang, t in [("en", text)] if isinstance(text, str) else sorted(text.items()):
                at = where if isinstance(text, str) else f"{where}.{lang}"
                try:
                    names = {f for _, f, _, _ in string.Formatter().parse(t) if f is not None}
                except ValueError as err:
                    raise ValueError(f"{at}: not a valid template: {err}") from None
                renamed = sorted(n for n in names if n in _RENAMED)
                if renamed:
                    raise ValueError(
                        f"{at}: placeholder {{{renamed[0]}}} was removed: {_RENAMED[renamed[0]]}"
                    )
                bad = sorted(n for n in names if n not in allowed)
                if bad:
                    raise ValueError(f"{at}: unknown placeholder(s) {bad}; allowed: {sorted(allowed)}")

    def languages(self) -> set[str]:
        """Languages the scenario's text exists in (any, when it has no text)."""
        return text_languages(self.text.intro) if self.text.intro else {"*"}

    # -- per game kind -----------------------------------------------------------------------
    def _need(self, field: str) -> Any:
        v = getattr(self, field)
        if v is None:
            raise ValueError(f"{field}: required for game {self.game!r}")
        return v

    def _forbid(self, *fields: str) -> None:
        for f in fields:
            if getattr(self, f) is not None:
                raise ValueError(f"{f}: not used by game {self.game!r}; remove it")

    def _expr(self, src: Any, where: str, extra: set[str]) -> Any:
        try:
            return compile_expr(src, set(self.variables) | extra)
        except ExprError as err:
            raise ValueError(f"{where}: {err}") from None

    def _check_matrix(self) -> None:
        self._forbid("instrument", "stages")
        acts = self._need("actions")
        _check_actions(acts)
        pay = self._need("payoffs")
        n = len(acts)
        if (pay.matrix is None) == (pay.self_ is None):
            raise ValueError("payoffs: give exactly one of payoffs.matrix or payoffs.self (an expression)")
        if pay.model_extra:
            raise ValueError(f"payoffs: unknown key(s) {sorted(pay.model_extra)} for a matrix game")
        if pay.matrix is not None:
            m = pay.matrix
            rows_ok = (
                isinstance(m, list) and len(m) == n and all(isinstance(r, list) and len(r) == n for r in m)
            )
            if not rows_ok:
                raise ValueError(
                    f"payoffs.matrix: wrong shape; need {n} rows of {n} entries (one per action {[a.name for a in acts]})"
                )
            cells = [c for r in m for c in r]
            pairs = all(isinstance(c, list) for c in cells)
            if pairs and not all(len(c) == 2 for c in cells):
                raise ValueError(
                    "payoffs.matrix: each cell must be one number (own payoff) or a pair [own, partner]"
                )
            if not pairs and any(isinstance(c, list) for c in cells):
                raise ValueError("payoffs.matrix: mix of single numbers and pairs; use one form throughout")
            for i, r in enumerate(m):
                for j, c in enumerate(r):
                    for k, e in enumerate(c if pairs else [c]):
                        self._expr(e, f"payoffs.matrix[{i}][{j}]" + (f"[{k}]" if pairs else ""), set())
        else:
            self._expr(pay.self_, "payoffs.self", _BUILTINS["matrix"])
        tab = self.matrix_table()
        if not np.all(np.isfinite(tab)):
            bad = [f"[{i}][{j}]" for i, j in zip(*np.nonzero(~np.isfinite(tab).all(axis=-1)), strict=True)]
            raise ValueError(
                f"payoffs: not a finite number for action pair(s) {bad[:4]} (a division by zero?)"
            )
        if not np.allclose(tab[..., 1], tab[..., 0].T):
            raise ValueError(
                "payoffs.matrix: not symmetric (partner's payoff for [a][b] must equal own payoff for [b][a]); "
                "players on a graph are interchangeable"
            )
        if self.cooperative_action is not None and self.cooperative_action not in [a.name for a in acts]:
            raise ValueError(
                f"cooperative_action: unknown action {self.cooperative_action!r}; allowed: {[a.name for a in acts]}"
            )
        if self.n_players() < 2:
            raise ValueError("players: a matrix game needs at least 2 players")

    def _check_slider(self) -> None:
        self._forbid("actions", "payoffs", "stages", "cooperative_action")
        from scenarios.instruments import instrument_ids, load_instrument

        inst = self.instrument or "slider"
        if inst not in instrument_ids():
            raise ValueError(f"instrument: unknown {inst!r}; allowed: {instrument_ids()}")
        if load_instrument(inst).scoring != "slider":
            raise ValueError(f"instrument: {inst!r} is not a slider instrument")

    def _check_public_goods(self) -> None:
        self._forbid("instrument", "stages", "cooperative_action")
        acts = self._need("actions")
        _check_actions(acts)
        pay = self._need("payoffs")
        if pay.matrix is not None or pay.self_ is None or pay.model_extra:
            raise ValueError("payoffs: a public goods game needs exactly payoffs.self (an expression)")
        self._expr(pay.self_, "payoffs.self", _BUILTINS["public_goods"])
        n = self.n_players()
        v = np.array([a.value for a in acts], dtype=np.float64)
        c, others = np.meshgrid(v, v * (n - 1), indexing="ij")  # own level vs everyone else at one level
        env = {**self.variables, "contribution": c, "others": others, "total": c + others, "n": float(n)}
        if not np.all(np.isfinite(_evaluate(pay.self_, env, "payoffs.self"))):
            raise ValueError("payoffs.self: not a finite number for some contributions (a division by zero?)")
        if self.graph.kind != "pair" or self.graph.n is not None:
            raise ValueError("graph: a public goods game puts all `players` in one group; remove graph")
        if self.n_players() < 2:
            raise ValueError("players: a public goods game needs at least 2 players")

    def _check_sequential(self) -> None:
        self._forbid("actions", "instrument", "cooperative_action")
        stages = self._need("stages")
        if not isinstance(self.players, tuple):
            raise ValueError("players: a sequential game needs role names, e.g. [proposer, responder]")
        roles = self.players
        if len(set(roles)) != len(roles):
            raise ValueError(f"players: duplicate role names {list(roles)}")
        names = [s.name for s in stages]
        if len(set(names)) != len(names):
            raise ValueError(f"stages: duplicate stage names {names}")
        for i, s in enumerate(stages):
            if s.player not in roles:
                raise ValueError(f"stages[{i}].player: unknown role {s.player!r}; allowed: {list(roles)}")
            if s.name in self.variables:
                raise ValueError(f"stages[{i}].name: {s.name!r} clashes with a variable")
        pay = self._need("payoffs")
        extra = dict(pay.model_extra or {})
        if pay.matrix is not None or pay.self_ is not None:
            raise ValueError(f"payoffs: a sequential game needs one expression per role {list(roles)}")
        missing = [r for r in roles if r not in extra]
        unknown = [k for k in extra if k not in roles]
        if missing or unknown:
            raise ValueError(
                f"payoffs: need one expression per role {list(roles)}; missing {missing}, unknown {unknown}"
            )
        for r in roles:
            self._expr(extra[r], f"payoffs.{r}", set(names))
        self.sequential_table()
        if self.graph.kind != "pair" or self.graph.n is not None:
            raise ValueError("graph: sequential games are played by one group of roles; remove graph")

    def _check_agents(self) -> None:
        names = [g.name for g in self.agents]
        if len(set(names)) != len(names):
            raise ValueError(f"agents: duplicate group names {names}")
        if not self.agents:
            return
        counted = sum(g.count or 0 for g in self.agents)
        named = [p for g in self.agents for p in (g.players or ())]
        players = self.player_names()
        unknown = [p for p in named if p not in players]
        if unknown:
            raise ValueError(f"agents: unknown player(s) {unknown}; players are {players[:8]}...")
        if counted + len(named) != len(players):
            raise ValueError(
                f"agents: the groups cover {counted + len(named)} players, the scenario has {len(players)}"
            )

    # -- derived data ------------------------------------------------------------------------
    def graph_nodes(self) -> nx.Graph:
        """The interaction graph with nodes relabelled to player names (matrix and slider games)."""
        g = build_graph(self.graph, self._base_dir)
        nodes = sorted(g.nodes, key=lambda x: (str(type(x)), x))
        return nx.relabel_nodes(g, {v: f"player_{i}" for i, v in enumerate(nodes)})

    @property
    def _base_dir(self) -> Path | None:
        return Path(self.source).parent if self.source else None

    def n_players(self) -> int:
        if self.game in ("matrix", "slider"):
            return build_graph(self.graph, self._base_dir).number_of_nodes()
        return len(self.players) if isinstance(self.players, tuple) else int(self.players)

    def player_names(self) -> list[str]:
        if self.game == "sequential":
            return list(self.players)
        return [f"player_{i}" for i in range(self.n_players())]

    def action_names(self) -> list[str]:
        return [a.name for a in self.actions or ()]

    def matrix_table(self) -> np.ndarray:
        """Matrix games: (n, n, 2) table [my action, partner action] -> [my payoff, partner's]."""
        acts, pay = self.actions, self.payoffs
        n = len(acts)
        env = dict(self.variables)
        if pay.matrix is not None:
            m = pay.matrix
            pairs = isinstance(m[0][0], list)
            tab = np.zeros((n, n, 2))
            for i in range(n):
                for j in range(n):
                    if pairs:
                        for k in range(2):
                            tab[i, j, k] = _evaluate(m[i][j][k], env, f"payoffs.matrix[{i}][{j}][{k}]")
                    else:
                        tab[i, j, 0] = _evaluate(m[i][j], env, f"payoffs.matrix[{i}][{j}]")
                        tab[i, j, 1] = _evaluate(m[j][i], env, f"payoffs.matrix[{j}][{i}]")
            return tab
        vals = np.array([a.value for a in acts])
        me, partner = np.meshgrid(vals, vals, indexing="ij")
        own = np.broadcast_to(
            _evaluate(pay.self_, {**env, "me": me, "partner": partner}, "payoffs.self"), (n, n)
        )
        return np.stack([own, own.T], axis=-1).astype(np.float64)

    def sequential_table(self) -> np.ndarray:
        """Sequential games: every role's payoff for every complete play, shape (n_1, ..., n_S, roles)."""
        vals = [np.array([a.value for a in s.actions], dtype=np.float64) for s in self.stages]
        grids = np.meshgrid(*vals, indexing="ij")
        env = {**self.variables, **{s.name: g for s, g in zip(self.stages, grids, strict=True)}}
        extra = self.payoffs.model_extra
        out = [
            np.broadcast_to(_evaluate(extra[r], env, f"payoffs.{r}"), grids[0].shape).astype(np.float64)
            for r in self.players
        ]
        tab = np.stack(out, axis=-1)
        if not np.all(np.isfinite(tab)):
            role = self.players[
                int(np.nonzero(~np.isfinite(tab).reshape(-1, len(self.players)).all(axis=0))[0][0])
            ]
            raise ValueError(f"payoffs.{role}: not a finite number for some plays (a division by zero?)")
        return tab

    def cooperation_scores(self) -> np.ndarray:
        """Per action, how cooperative it is in [0, 1] (explicit `cooperation`, else
        `cooperative_action` = 1 and the rest 0, else the action value rescaled to [0, 1])."""
        acts = self.actions or ()
        if any(a.cooperation is not None for a in acts):
            return np.array([a.cooperation if a.cooperation is not None else 0.0 for a in acts])
        if self.cooperative_action is not None:
            return np.array([1.0 if a.name == self.cooperative_action else 0.0 for a in acts])
        v = np.array([a.value for a in acts], dtype=np.float64)
        span = v.max() - v.min()
        return (v - v.min()) / span if span > 0 else np.zeros_like(v)

    def groups_by_player(self) -> dict[str, AgentGroup]:
        """Which agent group plays each player (groups fill players in order, or shuffled)."""
        players = self.player_names()
        out: dict[str, AgentGroup] = {}
        for g in self.agents:
            for p in g.players or ():
                out[p] = g
        free = [p for p in players if p not in out]
        if self.assignment == "shuffled":
            rng = np.random.default_rng([self.graph.seed, 0xA551])
            free = [free[i] for i in rng.permutation(len(free))]
        it = iter(free)
        for g in self.agents:
            for _ in range(g.count or 0):
                out[next(it)] = g
        return out


def _evaluate(source: Any, env: Mapping[str, Any], where: str) -> Any:
    """Evaluate one payoff expression, errors naming the field (`where`)."""
    try:
        return compile_expr(source)(env)
    except ExprError as err:
        raise ValueError(f"{where}: {err}") from None


def _graph_check(d: Dilemma) -> None:
    """Isolated players have no partner: refuse them for pairwise games."""
    if d.game not in ("matrix", "slider"):
        return
    try:
        g = build_graph(d.graph, d._base_dir)
    except Exception as err:  # networkx raises several kinds for bad parameters
        raise ValueError(f"graph: cannot build {d.graph.kind!r} graph: {err}") from None
    iso = sorted(map(str, nx.isolates(g)))
    if iso:
        raise ValueError(f"graph: player node(s) {iso[:10]} have no neighbour; the game needs partners")
    if g.number_of_nodes() < 2:
        raise ValueError("graph: needs at least 2 players")


def parse_dilemma(data: Any, source: str) -> Dilemma:
    """Validate loaded YAML data; `source` (a path) names the file in errors and anchors edgelists."""
    if isinstance(data, dict):
        data = {**data, "source": source}
    try:
        return parse_model(data, Dilemma, source)
    except ScenarioError as err:
        # Whole-model checks name their field at the start of the message.
        msg = str(err).replace("field (top level): Value error, ", "field ")
        raise ScenarioError(msg) from None


def load_dilemma_file(path: str | Path) -> Dilemma:
    """Load and validate one dilemma YAML file (anywhere on disk)."""
    return parse_dilemma(read_yaml(path), str(path))


def dilemma_ids() -> list[str]:
    """Ids of the shipped dilemma scenarios (file names in scenarios/data/dilemmas)."""
    return sorted(p.stem for p in DILEMMA_DIR.glob("*.yaml"))


@cache
def load_dilemma(scenario: str) -> Dilemma:
    """A shipped scenario by id, or a YAML file by path."""
    if scenario.endswith((".yaml", ".yml")) or "/" in scenario:
        return load_dilemma_file(scenario)
    if scenario not in dilemma_ids():
        raise ScenarioError(f"unknown dilemma scenario {scenario!r}; allowed: {dilemma_ids()}")
    path = DILEMMA_DIR / f"{scenario}.yaml"
    d = load_dilemma_file(path)
    if d.id != scenario:
        raise ScenarioError(f"{path}: field id is {d.id!r}, must match the file name")
    return d
