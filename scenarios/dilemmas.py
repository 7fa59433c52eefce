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

Every mistake raises `ScenarioError` naming the file and the field.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any, Literal

import networkx as nx
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from scenarios.expr import ExprError, compile_expr
from scenarios.loading import DATA_DIR, ScenarioError, parse_model, read_yaml

__all__ = [
    "AGENT_KINDS",
    "SCRIPTED_AGENTS",
    "ActionSpec",
    "AgentGroup",
    "Dilemma",
    "Framing",
    "FramingSet",
    "GraphSpec",
    "Stage",
    "build_graph",
    "dilemma_ids",
    "format_text",
    "framing_set_ids",
    "load_dilemma",
    "load_dilemma_file",
    "load_framing_set",
    "parse_agent_spec",
    "parse_dilemma",
]

DILEMMA_DIR = DATA_DIR / "dilemmas"
FRAMING_DIR = DATA_DIR / "framings"
GameKind = Literal["matrix", "slider", "public_goods", "sequential"]
#: Agent spec prefixes: "scripted:NAME(k=v,...)", "llm:BACKEND_SPEC" (agents/llm/factory.py, e.g.
#: llm:embedded, llm:openai:gpt-4o-mini), "rl:NAME(k=v,...)".
AGENT_KINDS = ("scripted", "llm", "rl")
#: Scripted agent names and the parameters each accepts (agents/dilemma.py implements them).
SCRIPTED_AGENTS: dict[str, set[str]] = {
    "always_cooperate": set(),
    "always_defect": set(),
    "tit_for_tat": set(),
    "utility": {"angle", "temperature"},
    "ideal": {"value"},
}
_SPEC = re.compile(r"^(?P<kind>[a-z]+):(?P<name>[A-Za-z0-9_./\-]+)(?:\((?P<args>.*)\))?$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_BUILTINS = {
    "matrix": {"me", "partner"},
    "public_goods": {"contribution", "others", "total", "n"},
}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def parse_agent_spec(spec: str) -> tuple[str, str, dict[str, str]]:
    """Split "kind:name(k=v, ...)" into (kind, name, params); ValueError says what is allowed."""
    if spec.strip().startswith("llm:") and len(spec.strip()) > 4:
        # everything after "llm:" is a backend spec (agents/llm/factory.py), e.g. llm:embedded
        return "llm", spec.strip()[4:], {}
    m = _SPEC.match(spec.strip())
    if not m:
        raise ValueError(f"agent spec {spec!r} is not 'kind:name' or 'kind:name(key=value,...)'")
    kind, name, args = m["kind"], m["name"], m["args"]
    if kind not in AGENT_KINDS:
        raise ValueError(f"agent spec {spec!r}: kind {kind!r} unknown; allowed: {list(AGENT_KINDS)}")
    params: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in (args or "").split(","))):
        if "=" not in part:
            raise ValueError(f"agent spec {spec!r}: parameter {part!r} is not key=value")
        k, v = (s.strip() for s in part.split("=", 1))
        params[k] = v
    if kind == "scripted":
        if name not in SCRIPTED_AGENTS:
            raise ValueError(
                f"agent spec {spec!r}: scripted agent {name!r} unknown; allowed: {sorted(SCRIPTED_AGENTS)}"
            )
        extra = set(params) - SCRIPTED_AGENTS[name]
        if extra:
            raise ValueError(
                f"agent spec {spec!r}: unknown parameter(s) {sorted(extra)}; allowed: {sorted(SCRIPTED_AGENTS[name])}"
            )
        if name == "utility" and "angle" not in params:
            raise ValueError(f"agent spec {spec!r}: scripted:utility needs angle=DEGREES")
        if name == "ideal" and "value" not in params:
            raise ValueError(f"agent spec {spec!r}: scripted:ideal needs value=NAME")
    return kind, name, params


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


def _check_actions(actions: tuple[ActionSpec, ...]) -> None:
    names = [a.name for a in actions]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"duplicate action names {dup}")
    if len(actions) < 2:
        raise ValueError(f"a decision needs at least 2 actions, got {len(actions)}")


class Stage(_Frozen):
    """One move of a sequential game: who moves, the variable it sets, and the actions."""

    player: str
    name: str
    actions: tuple[ActionSpec, ...]
    prompt: str | None = None

    @field_validator("actions", mode="before")
    @classmethod
    def _norm(cls, v: Any) -> Any:
        return _actions(v)

    @model_validator(mode="after")
    def _check(self) -> Stage:
        if not _IDENT.match(self.name):
            raise ValueError(f"stage name {self.name!r} must be an identifier (letters, digits, _)")
        _check_actions(self.actions)
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

    @model_validator(mode="after")
    def _check(self) -> GraphSpec:
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
    """Players who share an agent spec (and optionally a value, framing): `count` of them, or the
    named `players`. Groups fill the players in order; `assignment: shuffled` in the scenario
    shuffles the order with the graph seed."""

    name: str
    agent: str
    count: int | None = Field(default=None, ge=1)
    players: tuple[str, ...] | None = None
    value: str | None = None
    framing: str | None = None

    @model_validator(mode="after")
    def _check(self) -> AgentGroup:
        parse_agent_spec(self.agent)
        if (self.count is None) == (self.players is None):
            raise ValueError(f"agent group {self.name!r} needs exactly one of count or players")
        if self.value is not None:
            from scenarios.instruments import VALUE_NAMES

            if self.value not in VALUE_NAMES:
                raise ValueError(
                    f"agent group {self.name!r}: value {self.value!r} unknown; allowed: {list(VALUE_NAMES)}"
                )
        return self


class Framing(_Frozen):
    """The text context of one condition: a persona (prefix), who the partner is, the currency,
    and a stake that multiplies the amounts shown in text only (payoffs never change)."""

    id: str
    persona: str = ""
    partner: str = "the other participant"
    partners: str = "the other participants"
    currency: str = "coins"
    stake: float = Field(default=1.0, gt=0)
    language: str = "en"


class FramingSet(_Frozen):
    """A named set of framings (scenarios/data/framings/<id>.yaml)."""

    id: str
    description: str = ""
    framings: tuple[Framing, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> FramingSet:
        ids = [f.id for f in self.framings]
        if len(set(ids)) != len(ids):
            raise ValueError(f"framings: duplicate ids {ids}")
        return self

    def get(self, framing_id: str) -> Framing:
        for f in self.framings:
            if f.id == framing_id:
                return f
        raise ScenarioError(
            f"framing {framing_id!r} not in set {self.id!r}; allowed: {[f.id for f in self.framings]}"
        )


def framing_set_ids() -> list[str]:
    """Ids of the shipped framing sets."""
    return sorted(p.stem for p in FRAMING_DIR.glob("*.yaml"))


@cache
def load_framing_set(set_id: str) -> FramingSet:
    """A shipped framing set by id."""
    from scenarios.loading import load_yaml_model

    if set_id not in framing_set_ids():
        raise ScenarioError(f"unknown framing set {set_id!r}; allowed: {framing_set_ids()}")
    fs = load_yaml_model(FRAMING_DIR / f"{set_id}.yaml", FramingSet)
    if fs.id != set_id:
        raise ScenarioError(f"framings/{set_id}.yaml: field id is {fs.id!r}, must match the file name")
    return fs


_PLACEHOLDERS = {
    "persona",
    "partner",
    "currency",
    "rounds",
    "round",
    "n_players",
    "n_neighbours",
    "actions",
    "options",
    "history",
}


def format_text(template: str, d: Dilemma, framing: Framing, **fields: Any) -> str:
    """Fill a text template: framing fields, scenario variables (times the framing's stake), and
    `fields` (round, options, ...). An unknown placeholder raises ScenarioError naming it."""
    values: dict[str, Any] = {k: f"{v * framing.stake:g}" for k, v in d.variables.items()}
    n_partners = fields.get("n_neighbours", 1)
    values.update(
        persona=framing.persona.strip() + " " if framing.persona.strip() else "",
        partner=framing.partners if (n_partners or 1) > 1 or d.game == "public_goods" else framing.partner,
        currency=framing.currency,
        rounds=d.rounds,
        n_players=d.n_players(),
    )
    values.update(fields)
    try:
        return template.format(**values)
    except KeyError as err:
        raise ScenarioError(
            f"{d.source or d.id}: text template uses unknown placeholder {{{err.args[0]}}}; allowed: "
            f"{sorted(_PLACEHOLDERS | set(d.variables) | {s.name for s in d.stages or ()})}"
        ) from None


class Payoffs(_Frozen):
    """Payoffs: `matrix` (matrix games: n x n own payoffs, or n x n x [own, partner]; numbers or
    expressions), `self` (an expression for matrix or public_goods), or one expression per role
    (sequential games, as extra keys)."""

    model_config = ConfigDict(frozen=True, extra="allow")
    matrix: list | None = None
    self_: str | float | None = Field(default=None, alias="self")


class TextTemplates(_Frozen):
    """Text an LLM sees. Placeholders: {persona}, {partner}, {currency}, {rounds}, {round},
    {n_players}, {actions}, {options}, {history}, any scenario variable (shown times the stake)."""

    intro: str = ""
    decision: str = "Round {round} of {rounds}. Your options:\n{options}\nWhich do you choose?"


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
    framing_set: str | None = None
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
        allowed = _PLACEHOLDERS | set(self.variables) | {s.name for s in self.stages or ()}
        import string

        texts = {"text.intro": self.text.intro, "text.decision": self.text.decision}
        texts.update({f"stages[{i}].prompt": s.prompt for i, s in enumerate(self.stages or ()) if s.prompt})
        for where, t in texts.items():
            try:
                names = {f for _, f, _, _ in string.Formatter().parse(t) if f is not None}
            except ValueError as err:
                raise ValueError(f"{where}: not a valid template: {err}") from None
            bad = sorted(
                n for n in names if n.split(".")[0].split("[")[0] not in allowed or n != n.strip() or not n
            )
            if bad:
                raise ValueError(f"{where}: unknown placeholder(s) {bad}; allowed: {sorted(allowed)}")
        if self.framing_set is not None:
            if self.framing_set not in framing_set_ids():
                raise ValueError(f"framing_set: unknown {self.framing_set!r}; allowed: {framing_set_ids()}")
            fs = load_framing_set(self.framing_set)
            ids = [f.id for f in fs.framings]
            for i, g in enumerate(self.agents):
                if g.framing is not None and g.framing not in ids:
                    raise ValueError(
                        f"agents[{i}].framing: {g.framing!r} not in framing set {fs.id!r}; allowed: {ids}"
                    )
        elif any(g.framing for g in self.agents):
            raise ValueError("agents: a group sets `framing` but the scenario has no `framing_set`")

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
            raise ValueError("payoffs: the payoff table has non-finite entries (division by zero?)")
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
                    cell = m[i][j]
                    if pairs:
                        tab[i, j] = [compile_expr(cell[0])(env), compile_expr(cell[1])(env)]
                    else:
                        tab[i, j, 0] = compile_expr(cell)(env)
                        other = m[j][i]
                        tab[i, j, 1] = compile_expr(other)(env)
            return tab
        vals = np.array([a.value for a in acts])
        f = compile_expr(pay.self_)
        me, partner = np.meshgrid(vals, vals, indexing="ij")
        own = np.broadcast_to(f({**env, "me": me, "partner": partner}), (n, n))
        return np.stack([own, own.T], axis=-1).astype(np.float64)

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
