"""Agents for the social dilemmas (envs/dilemmas): scripted references and an LLM adapter.

Every agent reads the structured observation: "payoffs" ((n_actions, 2) expected [self, other] per
own action), "history" (simultaneous games) or "previous" and "action_mask" (sequential games).
Per-episode facts come in `EpisodeContext.extra`, set by runs/multi.py:
"cooperation" (per action, 0..1; sequential games: one list per stage), "intro" (the framed game
text), "action_labels" (per stage for sequential games), "player", "framing".

Spec strings (scenario YAML `agents`, `make_agent`):
- "scripted:always_cooperate" / "scripted:always_defect": the most / least cooperative action;
- "scripted:tit_for_tat": most cooperative first, then the action closest in cooperation to what
  the partners did last (sequential games: to the previous stage's move);
- "scripted:utility(angle=DEG, temperature=T)": maximises cos(t) * self + sin(t) * other over the
  observation's payoffs; T > 0 chooses with a softmax at temperature T (payoff units), seeded by
  the episode seed; T = 0 (default) is the deterministic maximiser (ties: lowest index);
- "scripted:ideal(value=NAME)": the ideal type of a value (scenarios/data/values.yaml);
- "llm:BACKEND" (e.g. llm:embedded, llm:openai-compatible:MODEL@URL): `DilemmaLLMAgent` over
  agents.llm.factory.make_backend(BACKEND), reading letter log-probabilities; "llm:BACKEND#generate"
  generates a short reply and reads it strictly instead (for chat models without logprobs);
  "rl:..." goes to agents.rl.from_spec.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from agents.base import Agent, Decision, EpisodeContext
from scenarios.dilemmas import parse_agent_spec

__all__ = [
    "AlwaysAgent",
    "DilemmaLLMAgent",
    "IdealDilemmaAgent",
    "TitForTatAgent",
    "UtilityAgent",
    "make_agent",
]

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _options(obs: Mapping[str, Any]) -> np.ndarray:
    """The legal options' [self, other] payoffs (masked rows dropped)."""
    pay = np.asarray(obs["payoffs"], dtype=np.float64)
    if "action_mask" in obs:
        n = int(np.asarray(obs["action_mask"]).sum())
        if n == 0:
            raise ValueError("asked to act with no legal action (action_mask all zero)")
        pay = pay[:n]
    return pay


def _coop(context_extra: Mapping[str, Any], obs: Mapping[str, Any]) -> np.ndarray:
    coop = context_extra.get("cooperation")
    if coop is None:
        raise ValueError(
            "this agent needs per-action cooperation scores in EpisodeContext.extra['cooperation']"
        )
    if "stage" in obs:
        return np.asarray(coop[int(obs["stage"])], dtype=np.float64)
    return np.asarray(coop, dtype=np.float64)


class AlwaysAgent(Agent):
    """Always the most (cooperate=True) or least cooperative action."""

    def __init__(self, cooperate: bool) -> None:
        self.cooperate = cooperate
        self.name = "always_cooperate" if cooperate else "always_defect"

    def start(self, context: EpisodeContext) -> Mapping[str, Any]:
        return context.extra

    def act(self, observation: Mapping[str, Any], state: Any) -> tuple[Decision, Any]:
        c = _coop(state, observation)
        k = int(np.argmax(c) if self.cooperate else np.argmin(c))
        return Decision(k, {"method": self.name}), state


class TitForTatAgent(Agent):
    """Starts cooperative, then matches the partners' last cooperation level."""

    name = "tit_for_tat"

    def start(self, context: EpisodeContext) -> Mapping[str, Any]:
        return context.extra

    def act(self, observation: Mapping[str, Any], state: Any) -> tuple[Decision, Any]:
        c = _coop(state, observation)
        if "history" in observation:
            last = np.asarray(observation["history"])[-1, 1]  # partners' action shares last round
            target = float(last @ c) if last.sum() > 0 else float(c.max())
        else:
            prev = np.asarray(observation["previous"])
            st = int(observation["stage"])
            if st == 0 or prev[st - 1] < 0:
                target = float(c.max())
            else:
                target = float(np.asarray(state["cooperation"][st - 1])[prev[st - 1]])
        k = int(np.argmin(np.abs(c - target) - 1e-9 * c))  # ties: the more cooperative
        return Decision(k, {"method": "tit_for_tat", "target": round(target, 6)}), state


class UtilityAgent(Agent):
    """Maximises cos(t) * self + sin(t) * other; softmax at `temperature` (0 = argmax)."""

    def __init__(self, angle: float, temperature: float = 0.0) -> None:
        if temperature < 0:
            raise ValueError(f"temperature={temperature} must be >= 0")
        self.angle, self.temperature = float(angle), float(temperature)
        self.name = f"utility-{angle:g}" + (f"-T{temperature:g}" if temperature else "")

    def start(self, context: EpisodeContext) -> np.random.Generator:
        return np.random.default_rng([context.seed, 0xD11E])

    def act(self, observation: Mapping[str, Any], state: np.random.Generator) -> tuple[Decision, Any]:
        pay = _options(observation)
        t = np.radians(self.angle)
        u = np.cos(t) * pay[:, 0] + np.sin(t) * pay[:, 1]
        if self.temperature == 0:
            k = int(np.argmax(np.round(u, 9)))
            return Decision(k, {"method": "utility", "utilities": np.round(u, 6).tolist()}), state
        z = (u - u.max()) / self.temperature
        p = np.exp(z) / np.exp(z).sum()
        k = int(state.choice(len(p), p=p))
        return Decision(k, {"method": "softmax", "probs": np.round(p, 6).tolist()}), state

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "angle": self.angle, "temperature": self.temperature}


class IdealDilemmaAgent(Agent):
    """The ideal type of a value orientation applied to the observation's payoffs."""

    def __init__(self, value: str) -> None:
        from scenarios import VALUE_NAMES

        if value not in VALUE_NAMES:
            raise ValueError(f"unknown value {value!r}; allowed: {list(VALUE_NAMES)}")
        self.value = value
        self.name = f"ideal-{value}"

    def act(self, observation: Mapping[str, Any], state: Any) -> tuple[Decision, Any]:
        from scenarios import value as load_value
        from scoring.svo import ideal_choices

        v = load_value(self.value)
        k = int(ideal_choices(_options(observation), v.utility, v.tie_break))
        return Decision(k, {"method": "ideal", "value": self.value}), state

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "value": self.value}


class DilemmaLLMAgent(Agent):
    """An LLM choosing in a dilemma: the framed game text plus the decision as lettered options,
    answered by the backend's letter log-probabilities (one batched call per step).

    The conversation is [system: value instruction (if the context has a value), user: intro +
    history + options]. `order="reversed"` lists the actions from last to first (letters A.. then
    name them in reverse), to separate a letter-position bias from a preference; the record keeps
    the shown order and the action is always the env's index. The highest-probability letter among the legal options is the action; if
    the backend sees none of them (all None) the decision is invalid (action None), never a default.
    """

    observation_kind = "structured"

    def __init__(
        self,
        backend: Any,
        name: str = "llm",
        mode: str = "logprob",
        max_new_tokens: int = 16,
        order: str = "fixed",
    ) -> None:
        if mode not in ("logprob", "generate"):
            raise ValueError(f"mode={mode!r}; allowed: ['logprob', 'generate']")
        if order not in ("fixed", "reversed"):
            raise ValueError(
                f"order={order!r}; allowed: ['fixed', 'reversed'] (letters A.. in action order or reversed)"
            )
        self.backend, self.name, self.mode, self.max_new_tokens = backend, name, mode, max_new_tokens
        self.order = order

    def start(self, context: EpisodeContext) -> dict[str, Any]:
        return {"extra": dict(context.extra), "value": context.value, "seed": context.seed, "t": 0}

    def _messages(
        self, obs: Mapping[str, Any], state: Mapping[str, Any]
    ) -> tuple[list, list[str], list[int]]:
        from langchain_core.messages import HumanMessage, SystemMessage

        extra = state["extra"]
        pay = _options(obs)
        labels = extra.get("action_labels") or [str(k) for k in range(len(pay))]
        if "stage" in obs:
            labels = labels[int(obs["stage"])]
            stage_text = (extra.get("stage_prompts") or [""] * (int(obs["stage"]) + 1))[int(obs["stage"])]
            names = extra.get("stage_names") or []
            for i, k in enumerate(np.asarray(obs["previous"])):
                if k >= 0 and i < len(names):
                    stage_text = stage_text.replace(
                        "{" + names[i] + "}", str(extra["action_labels"][i][int(k)])
                    )
        else:
            stage_text = ""
        letters = list(LETTERS[: len(pay)])
        shown = list(range(len(pay)))[:: -1 if self.order == "reversed" else 1]  # action index per letter
        lines = [extra.get("intro", "")]
        hist = extra.get("history_text")
        if "history" in obs and np.asarray(obs["history"]).sum() > 0 and hist is not False:
            h = np.asarray(obs["history"])
            done = [r for r in h if r[0].sum() > 0]
            if done:
                mine = [labels[int(np.argmax(r[0]))] for r in done]
                theirs = [
                    ", ".join(f"{labels[j]} {r[1][j]:.0%}" for j in range(len(labels)) if r[1][j] > 0)
                    for r in done
                ]
                lines.append(
                    "Previous rounds (oldest first): "
                    + "; ".join(f"you {m}, partners {t}" for m, t in zip(mine, theirs, strict=True))
                )
        if stage_text:
            lines.append(stage_text)
        lines.append("Options:")
        lines += [f"{letter}) {labels[a]}" for letter, a in zip(letters, shown, strict=True)]
        lines.append("Answer with the letter of your choice only.")
        msgs = []
        if state["value"]:
            msgs.append(SystemMessage(f"You hold a {state['value']} social value orientation; act on it."))
        msgs.append(HumanMessage("\n".join(x for x in lines if x)))
        return msgs, letters, shown

    def act(self, observation: Mapping[str, Any], state: Any) -> tuple[Decision, Any]:
        return self.act_batch([observation], [state])[0]

    def act_batch(
        self, observations: Sequence[Mapping[str, Any]], states: Sequence[Any]
    ) -> list[tuple[Decision, Any]]:
        built3 = [self._messages(o, s) for o, s in zip(observations, states, strict=True)]
        if not built3:
            return []
        built = [(m, ls) for m, ls, _ in built3]
        shown_all = [sh for _, _, sh in built3]
        if self.mode == "generate":
            return self._generate(built, shown_all, states)
        letters_all = sorted({x for _, ls in built for x in ls})
        lps = self.backend.choice_logprobs([m for m, _ in built], letters_all)
        out = []
        for (msgs, letters), lp, st in zip(built, lps, states, strict=True):
            seen = {x: lp.get(x) for x in letters if lp.get(x) is not None}
            shown = shown_all[len(out)]
            k = None if not seen else shown[letters.index(max(seen, key=seen.get))]
            rec = {
                "method": "logprob",
                "prompt": [{"role": m.type, "content": m.content} for m in msgs],
                "logprobs": {x: lp.get(x) for x in letters},
                "parsed": None if not seen else max(seen, key=seen.get),
                "shown_order": shown,
            }
            out.append((Decision(k, rec), st))
        return out

    def _generate(self, built: list, shown_all: list, states: Sequence[Any]) -> list[tuple[Decision, Any]]:
        """Free-text replies read strictly (agents.llm.parsing); unreadable = invalid."""
        from agents.llm.backend import Sampling
        from agents.llm.parsing import parse_choice

        sampling = [
            Sampling(
                temperature=0.0, max_new_tokens=self.max_new_tokens, seed=int(st["seed"]) * 1000 + st["t"]
            )
            for st in states
        ]
        gens = self.backend.generate([m for m, _ in built], sampling)
        out = []
        for (msgs, letters), gen, st in zip(built, gens, states, strict=True):
            parsed = parse_choice(gen.text, letters)
            shown = shown_all[len(out)]
            k = None if parsed is None else shown[letters.index(parsed)]
            rec = {
                "method": "generate",
                "prompt": [{"role": m.type, "content": m.content} for m in msgs],
                "reply": gen.text,
                "parsed": parsed,
                "sampling": sampling[len(out)].as_dict(),
                "shown_order": shown,
            }
            out.append((Decision(k, rec), {**st, "t": st["t"] + 1}))
        return out

    def describe(self) -> dict[str, Any]:
        desc = getattr(self.backend, "describe", None)
        return {
            **super().describe(),
            "mode": self.mode,
            "order": self.order,
            "backend": desc() if callable(desc) else str(self.backend),
        }


def make_agent(spec: str | Agent, llm_backend: Callable[[str, dict], Any] | None = None) -> Agent:
    """Build an agent from a spec string (see the module docstring); an Agent passes through.

    llm: `llm_backend(name, params)` returns a Backend (agents/llm/backend.py); without it the
    backend comes from agents.llm.factory.make_backend(name). rl: agents.rl.from_spec(name,
    params) must exist (the RL package's loader).
    """
    if isinstance(spec, Agent):
        return spec
    kind, name, params = parse_agent_spec(spec)
    if kind == "scripted":
        if name == "always_cooperate":
            return AlwaysAgent(True)
        if name == "always_defect":
            return AlwaysAgent(False)
        if name == "tit_for_tat":
            return TitForTatAgent()
        if name == "utility":
            try:
                return UtilityAgent(float(params["angle"]), float(params.get("temperature", 0.0)))
            except ValueError as err:
                raise ValueError(
                    f"agent spec {spec!r}: angle and temperature must be numbers ({err})"
                ) from None
        return IdealDilemmaAgent(params["value"])
    if kind == "llm":
        if llm_backend is not None:
            return DilemmaLLMAgent(llm_backend(name, params), name=f"llm-{name}")
        from agents.llm.factory import make_backend

        backend_spec, _, mode = name.partition("#")
        return DilemmaLLMAgent(make_backend(backend_spec), name=f"llm-{backend_spec}", mode=mode or "logprob")
    try:
        from agents import rl  # noqa: PLC0415
    except ImportError as err:
        raise ImportError(f'agent spec {spec!r} needs the RL extra: pip install -e ".[rl]" ({err})') from None
    loader = getattr(rl, "from_spec", None)
    if loader is None:
        raise ImportError(f"agent spec {spec!r}: agents.rl has no from_spec(name, params) loader")
    return loader(name, params)
