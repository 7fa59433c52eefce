"""The paper's goal-prompted LLM policy, built from LangChain prompt templates over a Backend.

One episode is one conversation (one trial), as in the paper:

1. value induction: "Do you know {value} value system? ..." and the model's description;
2. the role prompt (no reply, as in the paper's code);
3. optionally the goal prompt, whose one-sentence reply is quoted in every item prompt; without
   it a fixed sentence stands in its place;
4. one item prompt per step, rendered from the observation (payoffs in the order shown, letters
   A.. in that order), each answer kept in the conversation.

The same policy plays social dilemmas (context.game != "instrument"): the goal prompt describes
the game (`game_goal`, the scenario's intro in the prompt set's language, framings applied) and
each decision is a `move` prompt: the intro on the first move, the round, what the player and its
partners chose last round, a sequential game's stage text, and the actions lettered A.. in the
shown order. Prompts, languages, personas, partners and stakes are the same data for both.

Decision modes:
- "generate": free text -> strict parser (agents.llm.parsing) -> the paper's LLM extractor (a
  configurable backend, the same one by default) -> at most `max_reasks` re-asks (each reply again
  through parser and extractor) -> invalid (action None). Never a default choice.
- "logprob": the backend's log-probabilities of the shown letters as the reply's first token (the
  item prompt then ends with the set's `letter_only` sentence); the renormalised distribution is
  recorded with its mass on the letters, the argmax is the choice, and the expected allocation and
  the probabilities per canonical option are recorded for an expected angle.

State is explicit (`ChatState`: the messages, the goal sentence, the episode seed and step).
Every model call gets a seed derived from (episode seed, stage, step, attempt), so a rerun is
identical; the default temperature is 1.0 (the paper's chat models used API defaults).
The prefix (persona, induction, role, goal) is marked with agents.llm.context.keep, so a backend
that must shorten the conversation drops the oldest item exchanges first, as the paper did.

Swapping parts: another prompt set (scenarios/data/prompts, any language), framings (persona,
partner, stakes), `chain_of_thought=True` (reason, then "Answer: X"), or a subclass overriding
`setup_steps` / `item_text`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder

from agents.base import Agent, Decision, EpisodeContext
from agents.llm.backend import Backend, Generation, Sampling
from agents.llm.context import keep
from agents.llm.parsing import parse_choice
from scenarios.prompts import (
    LETTERS,
    RenderContext,
    letters_for,
    load_prompt_set,
    render_context,
    render_options,
)

__all__ = ["ChatState", "GoalPromptedPolicy", "MODES", "PARSE_METHODS", "call_seed", "serialise_messages"]

MODES = ("generate", "logprob")
PARSE_METHODS = ("strict", "extractor", "reask", "logprob", "invalid")
_STAGES = {"induction": 1, "goal": 2, "item": 3, "extractor": 4, "reask": 5}


def call_seed(episode_seed: int, stage: str, step: int = 0, attempt: int = 0) -> int:
    """The seed of one model call, derived from the episode seed (a 31-bit int, fine for APIs)."""
    ss = np.random.SeedSequence([int(episode_seed) & 0xFFFFFFFF, _STAGES[stage], step, attempt])
    return int(ss.generate_state(1, dtype=np.uint32)[0] >> 1)


def serialise_messages(messages: Sequence[BaseMessage]) -> list[dict[str, str]]:
    """Messages as JSON-ready {"role", "content"} dicts for the record."""
    return [{"role": m.type, "content": m.text} for m in messages]


@dataclass(frozen=True)
class ChatState:
    """One episode's conversation and what it needs to continue (returned, never hidden).

    game: the dilemma's text (scenarios.dilemmas.GameText) for a player of a game; None for an
    instrument. intro: its description rendered in this episode's language and framings."""

    messages: tuple[BaseMessage, ...]
    render: RenderContext
    goal: str
    seed: int
    value: str | None
    step: int = 0
    setup: Mapping[str, Any] = field(default_factory=dict)
    game: Any = None
    intro: str = ""


def _msg(template: str) -> ChatPromptTemplate:
    return ChatPromptTemplate.from_messages([MessagesPlaceholder("history"), ("human", template)])


class GoalPromptedPolicy(Agent):
    """The goal-prompted policy (see module docstring). All arguments are keyword-only and JSON-ready.

    backend: a Backend, or a spec for agents.llm.make_backend ("embedded", "hf:PATH",
      "openai-compatible:MODEL@URL", "PROVIDER:MODEL"); backend_options go to make_backend.
    mode: "generate" | "logprob".
    prompt_set: id in scenarios/data/prompts ("paper", "paper-fr", ...); an episode's
      context.extra["prompt_set"] overrides it. framings: framing ids (scenarios/data/framings.yaml); an episode's
      context.extra["framings"] overrides them.
    sampling: item answers (temperature, top_p, max_new_tokens; its seed is ignored: seeds derive
      from the episode). induction_tokens / goal_tokens: reply lengths of those steps (same
      temperature and top_p).
    max_reasks: re-asks after parser and extractor fail (the paper: unbounded).
    extractor: "same" (this backend), None (no extractor), a Backend or a spec;
      extractor_temperature (default 0: a deterministic judge), extractor_tokens.
    chain_of_thought: ask for reasoning before a final "Answer: X" line (generate mode).
    """

    def __init__(
        self,
        *,
        backend: Backend | str = "embedded",
        backend_options: Mapping[str, Any] | None = None,
        mode: str = "generate",
        prompt_set: str = "paper",
        framings: Sequence[str] = (),
        sampling: Sampling | Mapping[str, Any] | None = None,
        induction_tokens: int = 256,
        goal_tokens: int = 64,
        max_reasks: int = 3,
        extractor: Backend | str | None = "same",
        extractor_temperature: float = 0.0,
        extractor_tokens: int = 8,
        chain_of_thought: bool = False,
        name: str | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode={mode!r}; allowed: {list(MODES)}")
        if max_reasks < 0:
            raise ValueError(f"max_reasks={max_reasks} must be >= 0")
        if chain_of_thought and mode != "generate":
            raise ValueError(
                "chain_of_thought=True needs mode='generate' (logprob mode reads the first token)"
            )
        for k, v in (
            ("induction_tokens", induction_tokens),
            ("goal_tokens", goal_tokens),
            ("extractor_tokens", extractor_tokens),
        ):
            if v < 1:
                raise ValueError(f"{k}={v} must be >= 1")
        load_prompt_set(prompt_set)  # fail early on an unknown id
        if isinstance(sampling, Mapping):
            unknown = sorted(set(sampling) - {"temperature", "top_p", "max_new_tokens", "seed"})
            if unknown:
                raise ValueError(
                    f"sampling keys {unknown} unknown; allowed: temperature, top_p, max_new_tokens"
                )
            sampling = Sampling(**sampling)
        self.sampling = sampling or Sampling()
        if self.sampling.temperature < 0 or not 0 < self.sampling.top_p <= 1:
            raise ValueError(f"sampling {self.sampling}: temperature must be >= 0 and 0 < top_p <= 1")
        if isinstance(backend, str):
            from agents.llm.factory import make_backend

            self._backend_spec: str | None = backend
            backend = make_backend(backend, **dict(backend_options or {}))
        else:
            self._backend_spec = None
        self.backend: Backend = backend
        if extractor == "same":
            self.extractor: Backend | None = backend
        elif isinstance(extractor, str):
            from agents.llm.factory import make_backend

            self.extractor = make_backend(extractor)
        else:
            self.extractor = extractor
        self._extractor_spec = extractor if isinstance(extractor, str) or extractor is None else None
        self.mode = mode
        self.prompt_set = prompt_set
        self.framings = tuple(framings)
        self.induction_tokens, self.goal_tokens = induction_tokens, goal_tokens
        self.max_reasks = max_reasks
        self.extractor_temperature, self.extractor_tokens = extractor_temperature, extractor_tokens
        self.chain_of_thought = chain_of_thought
        self.name = name or f"goal-prompted:{self.backend.model_id}:{mode}"

    # -- identity -----------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        ext: Any
        if self.extractor is None:
            ext = None
        elif self.extractor is self.backend:
            ext = "same"
        else:
            ext = self.extractor.describe()
        return {
            **super().describe(),
            "model": self.backend.describe(),
            "model_id": self.backend.model_id,
            "backend_spec": self._backend_spec,
            "mode": self.mode,
            "prompt_set": self.prompt_set,
            "framings": list(self.framings),
            "sampling": {k: v for k, v in asdict(self.sampling).items() if k != "seed"},
            "seeds": "per call, derived from (episode seed, stage, step, attempt)",
            "independent_trials": self.sampling.temperature > 0,
            "induction_tokens": self.induction_tokens,
            "goal_tokens": self.goal_tokens,
            "max_reasks": self.max_reasks,
            "extractor": ext,
            "extractor_spec": self._extractor_spec,
            "extractor_temperature": self.extractor_temperature,
            "chain_of_thought": self.chain_of_thought,
        }

    # -- helpers ------------------------------------------------------------------------------
    def _sampling(self, seed: int, tokens: int, temperature: float | None = None) -> Sampling:
        t = self.sampling.temperature if temperature is None else temperature
        return Sampling(temperature=t, top_p=self.sampling.top_p, max_new_tokens=tokens, seed=seed)

    def _render(self, c: EpisodeContext) -> RenderContext:
        ps = c.extra.get("prompt_set", self.prompt_set)
        fr = c.extra.get("framings", self.framings)
        fr = (fr,) if isinstance(fr, str) else tuple(fr)
        return render_context(ps, value_name=c.value, n_items=c.n_items, n_options=c.n_options, framings=fr)

    def _ask(
        self, history: Sequence[BaseMessage], template: str, render: RenderContext, **extra: Any
    ) -> list:
        """history + the template's human message (a LangChain ChatPromptTemplate) as a list."""
        value = _msg(template).invoke({"history": list(history), **render.variables, **extra})
        return value.to_messages()

    # -- episode start: induction, role, goal -------------------------------------------------
    def setup_steps(self, render: RenderContext, context: EpisodeContext) -> list[str]:
        """The prefix steps in order: "induction" (asks, keeps the reply), "role" (no reply), "goal".

        Override to swap the chain (e.g. no induction, or another order).
        """
        steps = ["induction", "role"] if context.value is not None else []
        if context.goal_prompt:
            steps.append("goal")
        return steps

    def start(self, context: EpisodeContext) -> ChatState:
        return self.start_batch([context])[0]

    def _intro(self, c: EpisodeContext, r: RenderContext) -> str:
        game = c.extra.get("game_text")
        if c.game == "instrument":
            return ""
        if game is None:
            raise ValueError(f"{c.instrument}: a dilemma episode needs context.extra['game_text'] (GameText)")
        return game.intro_text(r.prompt_set.language, r.variables, r.scale)

    def _setup_template(self, step: str, r: RenderContext, c: EpisodeContext) -> str:
        return (
            r.prompt_set.game_goal
            if step == "goal" and c.game != "instrument"
            else getattr(r.prompt_set, step)
        )

    def start_batch(self, contexts: Sequence[EpisodeContext]) -> list[ChatState]:
        for c in contexts:
            self.check_game(c)
        renders = [self._render(c) for c in contexts]
        intros = [self._intro(c, r) for c, r in zip(contexts, renders, strict=True)]
        msgs: list[list[BaseMessage]] = [[keep(SystemMessage(s)) for s in r.system] for r in renders]
        steps = [self.setup_steps(r, c) for r, c in zip(renders, contexts, strict=True)]
        setup: list[dict[str, Any]] = [{"steps": s} for s in steps]
        goals: list[str | None] = [None] * len(contexts)
        depth = max((len(s) for s in steps), default=0)
        for k in range(depth):
            ask: list[int] = []
            for i, s in enumerate(steps):
                if k >= len(s):
                    continue
                step = s[k]
                template = self._setup_template(step, renders[i], contexts[i])
                asked = self._ask(msgs[i], template, renders[i], game=intros[i])
                msgs[i] = msgs[i] + [keep(asked[-1])]
                if step != "role":
                    ask.append(i)
            if not ask:
                continue
            samp = []
            for i in ask:
                stage = steps[i][k]
                tokens = self.induction_tokens if stage == "induction" else self.goal_tokens
                samp.append(self._sampling(call_seed(contexts[i].seed, stage), tokens))
            gens = self.backend.generate([msgs[i] for i in ask], samp)
            for i, g, s in zip(ask, gens, samp, strict=True):
                stage = steps[i][k]
                msgs[i].append(keep(AIMessage(g.text)))
                setup[i][stage] = {"reply": g.text, "seed": s.seed, **_gen_meta(g)}
                if stage == "goal":
                    goals[i] = g.text.strip()
        states = []
        for i, (c, r) in enumerate(zip(contexts, renders, strict=True)):
            goal = goals[i]
            if goal is None:
                goal = r.fill("no_goal" if c.value is not None else "no_value")
            states.append(
                ChatState(
                    messages=tuple(msgs[i]),
                    render=r,
                    goal=goal,
                    seed=c.seed,
                    value=c.value,
                    setup={**setup[i], "framings": list(r.framings), "prompt_set": r.prompt_set.id},
                    game=c.extra.get("game_text") if c.game != "instrument" else None,
                    intro=intros[i],
                )
            )
        return states

    # -- items ---------------------------------------------------------------------------------
    def item_text(self, state: ChatState, observation: Mapping[str, Any]) -> str:
        """The decision prompt for this observation (an instrument's item, or a dilemma's move;
        options as shown), plus mode-specific suffixes."""
        r = state.render
        if state.game is not None:
            text = self.move_text(state, observation)
        else:
            item = int(np.asarray(observation["item"]).item())
            ordinals = r.prompt_set.ordinals
            if item >= len(ordinals):
                raise ValueError(f"prompt set {r.prompt_set.id!r} has no ordinal for item {item + 1}")
            text = r.fill(
                "item",
                ordinal=ordinals[item],
                item_number=str(item + 1),
                options=render_options(r, observation["payoffs"]),
                goal=state.goal,
            )
        if self.mode == "logprob":
            text += "\n" + r.fill("letter_only")
        elif self.chain_of_thought:
            text += "\n" + r.fill("chain_of_thought")
        return text

    def move_text(self, state: ChatState, observation: Mapping[str, Any]) -> str:
        """A dilemma move: the intro (first move), the round, last round's choices, the stage's
        text (sequential games), and the legal actions lettered A.. in the shown order."""
        r, game = state.render, state.game
        lang = r.prompt_set.language
        stage = int(np.asarray(observation["stage"]).item()) if "stage" in observation else 0
        labels = game.labels[stage]
        order = np.asarray(observation["order"])[: len(_legal(observation))]
        parts = [state.intro] if state.step == 0 and state.intro else []
        if game.rounds > 1:
            rnd = int(np.asarray(observation["round"]).item()) + 1
            parts.append(r.fill("round_line", round=str(rnd), rounds=str(game.rounds)))
        if "history" in observation:
            last = np.asarray(observation["history"], dtype=np.float64)[-1]  # shown order
            if last[0].sum() > 0:
                full = np.asarray(observation["order"])
                mine = labels[int(full[int(np.argmax(last[0]))])]
                shares = {labels[int(full[j])]: x for j, x in enumerate(last[1]) if x > 0}
                theirs = (
                    next(iter(shares))
                    if len(shares) == 1
                    else ", ".join(f"{lab} {x:.0%}" for lab, x in sorted(shares.items(), key=lambda t: -t[1]))
                )
                parts.append(r.fill("history_line", mine=mine, theirs=theirs))
        if "previous" in observation:
            prev = [int(x) for x in np.asarray(observation["previous"])]
            parts.append(game.stage_text(stage, prev, lang, r.variables, r.scale))
        options = "\n".join(
            r.prompt_set.move_option.format(letter=LETTERS[j], label=labels[int(k)])
            for j, k in enumerate(order)
        )
        return r.fill("move", situation="\n".join(p for p in parts if p), options=options, goal=state.goal)

    def act(self, observation: Mapping[str, Any], state: ChatState) -> tuple[Decision, ChatState]:
        return self.act_batch([observation], [state])[0]

    def act_batch(
        self, observations: Sequence[Mapping[str, Any]], states: Sequence[ChatState]
    ) -> list[tuple[Decision, ChatState]]:
        if len(observations) != len(states):
            raise ValueError(f"{len(observations)} observations for {len(states)} states")
        if not observations:
            return []
        convs = [
            list(s.messages) + [HumanMessage(self.item_text(s, o))]
            for o, s in zip(observations, states, strict=True)
        ]
        if self.mode == "generate":
            return self._act_generate(observations, states, convs)
        return self._act_logprob(observations, states, convs)

    def _base_record(
        self, obs: Mapping[str, Any], state: ChatState, conv: Sequence[BaseMessage]
    ) -> dict[str, Any]:
        rec: dict[str, Any] = {
            "mode": self.mode,
            "step": state.step,
            "value": state.value,
            "prompt_set": state.render.prompt_set.id,
            "framings": list(state.render.framings),
            "letters": letters_for(len(_legal(obs))),
            "messages": serialise_messages(conv),
        }
        if "item" in obs:
            rec["item"] = int(np.asarray(obs["item"]).item())
        if state.step == 0:
            rec["setup"] = dict(state.setup)
        return rec

    @staticmethod
    def _finish(rec: dict[str, Any], obs: Mapping[str, Any], letter: str | None) -> Decision:
        action = None if letter is None else rec["letters"].index(letter)
        order = np.asarray(obs.get("order", np.arange(len(_legal(obs)))))
        rec["choice"] = letter
        rec["shown_option"] = action
        rec["canonical_option"] = None if action is None else int(order[action])
        rec["valid"] = action is not None
        return Decision(action, rec)

    # -- generate mode -----------------------------------------------------------------------
    def _extract(
        self,
        jobs: list[tuple[int, str]],
        states: Sequence[ChatState],
        letters: list[str],
        step_attempt: list[tuple[int, int]],
    ) -> dict[int, dict[str, Any]]:
        """Ask the extractor which letter each unparsed reply means; {job index: record}."""
        if self.extractor is None or not jobs:
            return {}
        convs, samp = [], []
        for (i, reply), (step, attempt) in zip(jobs, step_attempt, strict=True):
            r = states[i].render
            r_letters = letters[i]
            text = r.fill(
                "extractor",
                reply=reply,
                letters=", ".join(r_letters),
                example_letter=r_letters[(len(r_letters) - 1) // 2],
            )
            convs.append([HumanMessage(text)])
            samp.append(
                self._sampling(
                    call_seed(states[i].seed, "extractor", step, attempt),
                    self.extractor_tokens,
                    self.extractor_temperature,
                )
            )
        gens = self.extractor.generate(convs, samp)
        out = {}
        for j, ((i, _), g, s, conv) in enumerate(zip(jobs, gens, samp, convs, strict=True)):
            out[j] = {
                "extractor_prompt": conv[0].text,
                "extractor_reply": g.text,
                "extractor_seed": s.seed,
                "extractor_choice": parse_choice(
                    g.text, letters[i], states[i].render.prompt_set.answer_phrases
                ),
            }
        return out

    def _resolve(
        self,
        idx: list[int],
        replies: dict[int, str],
        states,
        letters,
        attempt: int,
        attempts: dict[int, list[dict[str, Any]]],
    ) -> dict[int, tuple[str, str]]:
        """Strict parse, then extractor, for the replies of episodes idx; {i: (letter, how)}."""
        found: dict[int, tuple[str, str]] = {}
        todo = []
        for i in idx:
            c = parse_choice(replies[i], letters[i], states[i].render.prompt_set.answer_phrases)
            attempts[i][-1]["strict_choice"] = c
            if c is not None:
                found[i] = (c, "strict")
            else:
                todo.append(i)
        ext = self._extract(
            [(i, replies[i]) for i in todo], states, letters, [(states[i].step, attempt) for i in todo]
        )
        for j, i in enumerate(todo):
            if j in ext:
                attempts[i][-1].update(ext[j])
                if ext[j]["extractor_choice"] is not None:
                    found[i] = (ext[j]["extractor_choice"], "extractor")
        return found

    def _act_generate(self, observations, states, convs) -> list[tuple[Decision, ChatState]]:
        n = len(states)
        letters = [letters_for(len(_legal(o))) for o in observations]
        samp = [
            self._sampling(call_seed(s.seed, "item", s.step), self.sampling.max_new_tokens) for s in states
        ]
        gens = self.backend.generate(convs, samp)
        first = {i: g.text for i, g in enumerate(gens)}
        attempts: dict[int, list[dict[str, Any]]] = {
            i: [{"reply": gens[i].text, "seed": samp[i].seed, **_gen_meta(gens[i])}] for i in range(n)
        }
        found = self._resolve(list(range(n)), first, states, letters, 0, attempts)
        tails: dict[int, list[BaseMessage]] = {i: [AIMessage(first[i])] for i in range(n)}
        reasked: dict[int, int] = {}
        pending = [i for i in range(n) if i not in found]
        for k in range(1, self.max_reasks + 1):
            if not pending:
                break
            rconvs, rsamp = [], []
            for i in pending:
                reask = HumanMessage(states[i].render.fill("reask"))
                rconvs.append(convs[i] + [AIMessage(first[i]), reask])
                rsamp.append(
                    self._sampling(
                        call_seed(states[i].seed, "reask", states[i].step, k), self.sampling.max_new_tokens
                    )
                )
            rgens = self.backend.generate(rconvs, rsamp)
            replies = {}
            for i, g, s, rc in zip(pending, rgens, rsamp, rconvs, strict=True):
                replies[i] = g.text
                attempts[i].append({"reask": k, "reply": g.text, "seed": s.seed, **_gen_meta(g)})
                tails[i] = [AIMessage(first[i]), rc[-1], AIMessage(g.text)]  # the paper keeps the last re-ask
                reasked[i] = k
            got = self._resolve(pending, replies, states, letters, k, attempts)
            for i, (c, _how) in got.items():
                found[i] = (c, "reask")
            pending = [i for i in pending if i not in got]
        out = []
        for i, (obs, st, conv) in enumerate(zip(observations, states, convs, strict=True)):
            rec = self._base_record(obs, st, conv)
            letter, how = found.get(i, (None, "invalid"))
            rec.update(
                reply=first[i],
                method=how,
                reask_count=reasked.get(i, 0),
                attempts=attempts[i],
                probabilities=None,
                dropped_messages=attempts[i][0]["dropped_messages"],
                seed=samp[i].seed,
                sampling={k: v for k, v in asdict(samp[i]).items() if k != "seed"},
            )
            decision = self._finish(rec, obs, letter)
            new = replace(st, messages=tuple(conv + tails[i]), step=st.step + 1)
            out.append((decision, new))
        return out

    # -- logprob mode --------------------------------------------------------------------------
    def _act_logprob(self, observations, states, convs) -> list[tuple[Decision, ChatState]]:
        letters = [letters_for(len(_legal(o))) for o in observations]
        results: list[tuple[dict[str, float | None], int | None]] = [({}, None)] * len(states)
        for ls in sorted(set(letters)):
            idx = [i for i, x in enumerate(letters) if x == ls]
            res = self.backend.choice_logprobs_with_drops([convs[i] for i in idx], list(ls))
            for i, r in zip(idx, res, strict=True):
                results[i] = r
        out = []
        for i, (obs, st, conv) in enumerate(zip(observations, states, convs, strict=True)):
            lp, dropped = results[i]
            rec = self._base_record(obs, st, conv)
            rec.update(
                _distribution(lp, letters[i], obs),
                method="logprob",
                reask_count=0,
                reply=None,
                attempts=[],
                dropped_messages=dropped,
                seed=None,
            )
            letter = rec.pop("_argmax")
            if letter is None:
                rec["method"] = "invalid"
            decision = self._finish(rec, obs, letter)
            tail = [AIMessage(letter)] if letter is not None else []
            new = replace(st, messages=tuple(conv + tail) if tail else st.messages, step=st.step + 1)
            out.append((decision, new))
        return out


def _legal(obs: Mapping[str, Any]) -> np.ndarray:
    """The legal shown options' payoffs (an action mask marks them; they come first)."""
    from agents.scripted import legal_options

    return legal_options(obs)


def _gen_meta(g: Generation) -> dict[str, Any]:
    return {
        "prompt_tokens": g.prompt_tokens,
        "completion_tokens": g.completion_tokens,
        "dropped_messages": g.dropped_messages,
    }


def _distribution(lp: Mapping[str, float | None], letters: str, obs: Mapping[str, Any]) -> dict[str, Any]:
    """Renormalised choice probabilities, their mass, argmax and expected (canonical) allocation."""
    known = {c: float(v) for c, v in lp.items() if c in letters and v is not None and math.isfinite(v)}
    rec: dict[str, Any] = {
        "logprobs": {c: lp.get(c) for c in letters},
        "unseen_letters": [c for c in letters if c not in known],
    }
    if not known:
        rec.update(
            probabilities=None,
            letter_mass=0.0,
            _argmax=None,
            expected_allocation=None,
            canonical_probabilities=None,
            invalid_reason="no option letter among the model's scored tokens",
        )
        return rec
    top = max(known.values())
    w = {c: math.exp(v - top) for c, v in known.items()}
    z = sum(w.values())
    probs = {c: (w[c] / z if c in w else None) for c in letters}
    pay = _legal(obs)
    order = np.asarray(obs.get("order", np.arange(len(pay))))
    exp_alloc = sum((probs[c] or 0.0) * pay[k] for k, c in enumerate(letters))
    canon: list[float | None] = [None] * len(letters)
    for k, c in enumerate(letters):
        canon[int(order[k])] = probs[c]
    argmax = max(letters, key=lambda c: (probs[c] if probs[c] is not None else -1.0, -letters.index(c)))
    rec.update(
        probabilities=probs,
        letter_mass=float(sum(math.exp(v) for v in known.values())),
        _argmax=argmax,
        expected_allocation=[float(exp_alloc[0]), float(exp_alloc[1])],
        canonical_probabilities=canon,
    )
    return rec
