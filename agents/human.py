"""People as agents (spec `human:<id>`): the goal-prompted policy's presentation, answered by a person.

A person sees exactly what an LLM agent is sent: `HumanPolicy` is agents.llm.GoalPromptedPolicy with
the model replaced by a person. The value induction and goal steps (when the episode has them)
become questions the person answers in their own words, and each item or move is the policy's own
item text (same prompt set, language, framings and shown option order), answered by choosing one
of the lettered options. The records have the LLM policy's schema (prompt messages, reply, parse
method "click", the letter, shown and canonical option), so reports put people and models in one
table.

The person is reached through a `Channel`: the episode runs in its own thread (runs/rollout.py's
ordinary loop), and each question blocks until the person answers through the play server
(runs/play.py). A channel can be given the answers of an earlier, interrupted session: they are
replayed first, each checked against the question it answers, so a resumed session continues
exactly where it stopped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from langchain_core.messages import AIMessage, HumanMessage

from agents.base import Decision
from agents.llm.backend import Backend, BackendError, Conversation, Generation, Reproducibility, Sampling
from agents.llm.policy import ChatState, GoalPromptedPolicy, _legal, serialise_messages
from scenarios.prompts import LETTERS, letters_for, render_options

__all__ = ["Abandoned", "Answer", "AnswerError", "Channel", "HumanPolicy", "PersonBackend", "Question"]

#: Longest free-text answer accepted (characters).
MAX_TEXT = 4000


class Abandoned(RuntimeError):
    """The session was closed before the person finished (the episode is not recorded)."""


class AnswerError(ValueError):
    """An answer that does not fit the open question (wrong index, kind, letter or text)."""


@dataclass(frozen=True)
class Question:
    """What the person is asked: the whole conversation so far (the last message is the new
    question), and for a choice the letters and the option lines as the model sees them."""

    index: int
    kind: str  # "text" or "choice"
    messages: list[dict[str, str]]
    letters: str = ""
    options: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "kind": self.kind,
            "messages": self.messages,
            "letters": self.letters,
            "options": self.options,
        }


@dataclass(frozen=True)
class Answer:
    """The person's answer: a letter (choice) or text, and the seconds it took (None: replayed)."""

    kind: str
    value: str
    seconds: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "value": self.value, "seconds": self.seconds}


def check_answer(question: Question, payload: Mapping[str, Any]) -> Answer:
    """The answer `payload` gives to `question`, or AnswerError saying what is allowed."""
    if not isinstance(payload, Mapping):
        raise AnswerError("the answer must be a JSON object")
    if payload.get("index") != question.index:
        raise AnswerError(
            f"this answer is for question {payload.get('index')!r}, the open question is {question.index}"
        )
    if question.kind == "choice":
        letter = payload.get("choice")
        if not isinstance(letter, str) or letter not in question.letters or len(letter) != 1:
            raise AnswerError(f"choice must be one of {', '.join(question.letters)}, got {letter!r}")
        return Answer("choice", letter)
    text = payload.get("text")
    if not isinstance(text, str) or not text.strip():
        raise AnswerError("text must be a non-empty string")
    if len(text) > MAX_TEXT:
        raise AnswerError(f"text is {len(text)} characters; at most {MAX_TEXT}")
    return Answer("text", text.strip())


class Channel:
    """The meeting point of one episode's thread (asks, blocks) and the server (answers).

    replay: answers of an earlier session of the same episode, given back in order before anyone
    is asked (each must fit its question, or the session stops with AnswerError). on_answer:
    called in the episode's thread after each answer is taken (replayed ones included), before
    the next question is asked: where the server keeps its journal.
    """

    def __init__(
        self, replay: Sequence[Answer] = (), on_answer: Callable[[list[Answer]], None] | None = None
    ) -> None:
        self._on_answer = on_answer
        self._cond = threading.Condition()
        self._replay = list(replay)
        self._question: Question | None = None
        self._answer: Answer | None = None
        self._asked_at = 0.0
        self._closed = False
        self.answers: list[Answer] = []
        self.asked = 0

    # -- the episode's side --------------------------------------------------------------------
    def ask(
        self, kind: str, messages: list[dict[str, str]], letters: str = "", options: Sequence[str] = ()
    ) -> Answer:
        """Put a question to the person and wait for the answer (replayed answers come first)."""
        q = Question(self.asked, kind, messages, letters, list(options))
        self.asked += 1
        if self._replay:
            a = self._replay.pop(0)
            check_answer(q, {"index": q.index, ("choice" if a.kind == "choice" else "text"): a.value})
            self.answers.append(a)
            return a
        a = self._wait(q)
        if self._on_answer is not None:
            self._on_answer(list(self.answers))
        return a

    def _wait(self, q: Question) -> Answer:
        with self._cond:
            self._question, self._answer, self._asked_at = q, None, time.monotonic()
            self._cond.notify_all()
            while self._answer is None and not self._closed:
                self._cond.wait()
            if self._answer is None:
                raise Abandoned("the session was closed before this question was answered")
            a, self._question = self._answer, None
            self.answers.append(a)
            self._cond.notify_all()
            return a

    # -- the server's side -----------------------------------------------------------------------
    @property
    def question(self) -> Question | None:
        with self._cond:
            return self._question

    def answer(self, payload: Mapping[str, Any]) -> Answer:
        """Answer the open question (AnswerError when none is open or the answer does not fit)."""
        with self._cond:
            q = self._question
            if q is None or self._answer is not None:
                raise AnswerError("no question is open (the last answer is being processed); reload the page")
            a = check_answer(q, payload)
            self._answer = replace(a, seconds=round(time.monotonic() - self._asked_at, 3))
            self._cond.notify_all()
            return self._answer

    def wait_next(self, after: int, timeout: float) -> None:
        """Wait until a question later than `after` is open, the channel closes, or `timeout` s."""
        end = time.monotonic() + timeout
        with self._cond:
            while not self._closed:
                q = self._question
                if q is not None and q.index > after and self._answer is None:
                    return
                left = end - time.monotonic()
                if left <= 0:
                    return
                self._cond.wait(left)

    def close(self) -> None:
        """Stop the episode (a blocked ask raises Abandoned); also called when it finishes."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class PersonBackend(Backend):
    """A 'backend' whose replies a person types: the value induction and goal steps."""

    model_id = "human"

    def __init__(self, channel: Channel) -> None:
        self.channel = channel

    def generate(
        self, conversations: Sequence[Conversation], sampling: Sequence[Sampling]
    ) -> list[Generation]:
        return [Generation(self.channel.ask("text", serialise_messages(c)).value) for c in conversations]

    def choice_logprobs(
        self, conversations: Sequence[Conversation], choices: Sequence[str]
    ) -> list[dict[str, float | None]]:
        raise BackendError("a person chooses an option; there are no log-probabilities to read")

    def reproducibility(self) -> Reproducibility:
        return Reproducibility(False, "a person")


class HumanPolicy(GoalPromptedPolicy):
    """The goal-prompted policy answered by a person (see module docstring).

    person: the id the person typed (the agent is `human:<person>`); prompt_mode: the decision
    mode of the run whose presentation to copy ("logprob" runs end each item with the prompt
    set's letter_only sentence); prompt_set, framings: defaults, overridden per episode as for
    LLM agents.
    """

    def __init__(
        self,
        channel: Channel,
        *,
        person: str,
        prompt_mode: str = "generate",
        prompt_set: str = "paper",
        framings: Sequence[str] = (),
    ) -> None:
        super().__init__(
            backend=PersonBackend(channel),
            mode="generate",
            prompt_set=prompt_set,
            framings=framings,
            max_reasks=0,
            extractor=None,
            name=f"human:{person}",
        )
        if prompt_mode not in ("generate", "logprob"):
            raise ValueError(f"prompt_mode={prompt_mode!r}; allowed: generate, logprob")
        self.channel, self.person, self.prompt_mode = channel, person, prompt_mode

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "class": type(self).__name__,
            "person": self.person,
            "prompt_mode": self.prompt_mode,
            "prompt_set": self.prompt_set,
            "framings": list(self.framings),
        }

    def item_text(self, state: ChatState, observation: Mapping[str, Any]) -> str:
        text = super().item_text(state, observation)
        if self.prompt_mode == "logprob":
            text += "\n" + state.render.fill("letter_only")
        return text

    def option_lines(self, state: ChatState, observation: Mapping[str, Any]) -> list[str]:
        """The lettered options as the item text shows them (one line each)."""
        r = state.render
        if state.game is None:
            return render_options(r, _legal(observation)).split("\n")
        stage = int(np.asarray(observation["stage"]).item()) if "stage" in observation else 0
        order = np.asarray(observation["order"])[: len(_legal(observation))]
        labels = state.game.labels[stage]
        return [
            r.prompt_set.move_option.format(letter=LETTERS[j], label=labels[int(k)])
            for j, k in enumerate(order)
        ]

    def act_batch(
        self, observations: Sequence[Mapping[str, Any]], states: Sequence[ChatState]
    ) -> list[tuple[Decision, ChatState]]:
        out = []
        for obs, st in zip(observations, states, strict=True):
            conv = list(st.messages) + [HumanMessage(self.item_text(st, obs))]
            letters = letters_for(len(_legal(obs)))
            answer = self.channel.ask("choice", serialise_messages(conv), letters, self.option_lines(st, obs))
            rec = self._base_record(obs, st, conv)
            rec.update(
                mode="human",
                prompt_mode=self.prompt_mode,
                reply=answer.value,
                method="click",
                reask_count=0,
                attempts=[],
                probabilities=None,
                seconds=answer.seconds,
                seed=None,
            )
            decision = self._finish(rec, obs, answer.value)
            out.append(
                (decision, replace(st, messages=tuple(conv + [AIMessage(answer.value)]), step=st.step + 1))
            )
        return out
