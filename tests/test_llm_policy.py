"""GoalPromptedPolicy, ChatBackend, make_backend and the prompt data, driven by LangChain fake chat models."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from langchain_core.language_models.chat_models import SimpleChatModel
from langchain_core.language_models.fake_chat_models import FakeListChatModel, GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

import envs  # noqa: F401  (registers the ids)
from agents.base import EpisodeContext
from agents.llm import (
    PARSE_METHODS,
    Backend,
    BackendError,
    BackendSpecError,
    ChatBackend,
    GoalPromptedPolicy,
    Sampling,
    call_seed,
    letter_logprobs,
    make_backend,
)
from agents.llm.context import drop_oldest_exchange, is_kept, keep
from runs.rollout import single as run_episodes
from scenarios import ScenarioError, load_yaml_model
from scenarios.prompts import (
    PromptSet,
    framing_ids,
    load_framings,
    load_prompt_set,
    prompt_set_ids,
    render_context,
    render_item,
)

pytestmark = pytest.mark.filterwarnings("ignore:.*takes no seed")

LETTERS = "ABCDEFGHI"
REQUIRED = {
    "messages",
    "reply",
    "choice",
    "method",
    "probabilities",
    "valid",
    "reask_count",
    "dropped_messages",
    "shown_option",
    "canonical_option",
    "letters",
    "item",
    "mode",
}


def chat(replies: Sequence[str]) -> ChatBackend:
    """A ChatBackend over LangChain's GenericFakeChatModel, one call at a time (replies in order)."""
    return ChatBackend(
        GenericFakeChatModel(messages=iter([AIMessage(r) for r in replies])), max_concurrency=1
    )


def ctx(value: str | None = "prosocial", goal: bool = False, seed: int = 7, **extra: Any) -> EpisodeContext:
    return EpisodeContext("slider", 6, 9, seed=seed, value=value, goal_prompt=goal, extra=extra)


def slider(order: str = "fixed") -> gym.Env:
    return gym.make("SVO/Slider-v0", option_order=order).unwrapped


def run(policy: GoalPromptedPolicy, contexts: list[EpisodeContext], order: str = "fixed"):
    return run_episodes(policy, [slider(order) for _ in contexts], contexts)


class Picker(SimpleChatModel):
    """A content-aware fake: answers the letter of the shown option with the highest own payoff
    (ties: the highest other payoff), so its canonical choices must not depend on the order shown.
    Anything that is not an item prompt gets a fixed sentence."""

    def _call(self, messages: list[BaseMessage], stop=None, run_manager=None, **kwargs: Any) -> str:
        lines = re.findall(r"^([A-I]): (\d+), (\d+)$", messages[-1].text, flags=re.M)
        if not lines:
            return "A person with this value system weighs both outcomes."
        best = max(lines, key=lambda t: (int(t[1]), int(t[2])))
        return f"I choose {best[0]}."

    @property
    def _llm_type(self) -> str:
        return "picker"


class SeededChat(SimpleChatModel):
    """A fake that declares `seed` and `temperature` fields (as ChatOpenAI does) and draws its reply
    from the seed it receives, so reproducibility of the whole chain can be checked."""

    seed: int | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    calls: list = []

    def _call(self, messages: list[BaseMessage], stop=None, run_manager=None, **kwargs: Any) -> str:
        self.calls.append(dict(kwargs))
        rng = np.random.default_rng(kwargs["seed"])
        if "choice question" in messages[-1].text:
            return str(LETTERS[int(rng.integers(9))])
        return f"text {int(rng.integers(10**6))}"

    @property
    def _llm_type(self) -> str:
        return "seeded"


class FixedLogprobs(Backend):
    """A backend whose choice_logprobs returns a known table (None: letter not among its tokens)."""

    model_id = "fixed-logprobs"

    def __init__(self, table: dict[str, float | None]) -> None:
        self.table = table
        self.seen: list[list[BaseMessage]] = []

    def generate(self, conversations, sampling):
        from agents.llm import Generation

        return [Generation(f"description {s.seed}") for s in sampling]

    def choice_logprobs(self, conversations, choices):
        self.seen.extend(list(c) for c in conversations)
        return [{c: self.table.get(c) for c in choices} for _ in conversations]


# --- decision branches ---------------------------------------------------------------------------


def test_clean_letters_are_strict_and_records_are_complete():
    policy = GoalPromptedPolicy(
        backend=chat(["Prosocial people share.", "C", "C", "(C)", "C.", "c", "**C**"])
    )
    (res,) = run(policy, [ctx()])
    assert [d.action for d in res.decisions] == [2] * 6
    for d in res.decisions:
        assert REQUIRED <= set(d.record)
        assert d.record["method"] == "strict" and d.record["valid"] and d.record["reask_count"] == 0
        assert d.record["canonical_option"] == 2
    assert res.score["answered"] == 6
    json.dumps([d.record for d in res.decisions])  # JSON-ready evidence


def test_messy_text_is_parsed_strictly():
    replies = [
        "desc",
        "**Answer: F**\n\nIt keeps us equal; A would be too generous.",
        "I'd go with option E because it is fair.",
        "My choice is B.",
        "G) 76, 89",
        "E - equal",
        "I",
    ]
    policy = GoalPromptedPolicy(backend=chat(replies))
    (res,) = run(policy, [ctx()])
    assert [d.record["choice"] for d in res.decisions] == ["F", "E", "B", "G", "E", "I"]
    assert {d.record["method"] for d in res.decisions} == {"strict"}


def test_extractor_success():
    main = chat(["desc"] + ["I want both of us to do well."] * 6)
    extractor = chat(["E"] * 6)
    policy = GoalPromptedPolicy(backend=main, extractor=extractor)
    (res,) = run(policy, [ctx()])
    for d in res.decisions:
        assert d.record["method"] == "extractor" and d.action == 4
        att = d.record["attempts"][0]
        assert att["strict_choice"] is None and att["extractor_choice"] == "E"
        assert "Only based on the robot answer: 'I want both of us to do well.'" in att["extractor_prompt"]
        assert "[A, B, C, D, E, F, G, H, I], eg: E" in att["extractor_prompt"]
    assert policy.describe()["extractor"]["backend"] == "ChatBackend"


def test_extractor_failure_then_reask_succeeds():
    # per item: prose reply, extractor fails, re-ask answered "B"
    main = chat(["desc"] + ["Hard to say, fairness matters.", "B"] * 6)
    extractor = chat(["I am not sure."] * 6)
    policy = GoalPromptedPolicy(backend=main, extractor=extractor, max_reasks=2)
    (res,) = run(policy, [ctx()])
    for d in res.decisions:
        assert d.record["method"] == "reask" and d.record["reask_count"] == 1 and d.action == 1
        assert d.record["attempts"][0]["extractor_choice"] is None
        assert d.record["attempts"][1]["strict_choice"] == "B"
    # the re-ask exchange stays in the conversation, as in the paper
    msgs = res.decisions[1].record["messages"]
    assert "please replay me ONLY one word from 'A', 'B'" in msgs[-3]["content"]
    assert msgs[-2]["content"] == "B"


def test_invalid_after_bounded_reasks_is_recorded_never_defaulted():
    main = chat(["desc"] + ["I refuse to put a price on people."] * 6 * 3)
    extractor = chat(["no idea"] * 6 * 3)
    policy = GoalPromptedPolicy(backend=main, extractor=extractor, max_reasks=2)
    (res,) = run(policy, [ctx()])
    for d in res.decisions:
        assert d.action is None and not d.valid
        assert d.record["method"] == "invalid" and d.record["reask_count"] == 2
        assert d.record["choice"] is None and d.record["canonical_option"] is None
        assert len(d.record["attempts"]) == 3
    assert res.score["answered"] == 0 and res.score["angle"] is None
    assert all(info["option"] is None for info in res.infos)


def test_without_extractor_goes_straight_to_reask():
    policy = GoalPromptedPolicy(backend=chat(["desc"] + ["whatever", "D"] * 6), extractor=None, max_reasks=1)
    (res,) = run(policy, [ctx()])
    assert {d.record["method"] for d in res.decisions} == {"reask"}
    assert "extractor_reply" not in res.decisions[0].record["attempts"][0]


def test_extractor_same_backend_by_default():
    # item 1: prose, then the same model acts as extractor and answers "H"
    replies = ["desc", "Something vague.", "H"] + ["A"] * 5
    policy = GoalPromptedPolicy(backend=chat(replies))
    (res,) = run(policy, [ctx()])
    assert res.decisions[0].record["method"] == "extractor" and res.decisions[0].record["choice"] == "H"
    assert policy.describe()["extractor"] == "same"


# --- the chain -----------------------------------------------------------------------------------


def test_chain_follows_the_paper_with_goal():
    replies = ["Hyper-competitive people want to beat others.", "Win by as much as possible."] + ["I"] * 6
    policy = GoalPromptedPolicy(backend=chat(replies))
    (res,) = run(policy, [ctx("competitive", goal=True)])
    msgs = res.decisions[2].record["messages"]
    roles = [m["role"] for m in msgs]
    assert roles[:5] == [
        "human",
        "ai",
        "human",
        "human",
        "ai",
    ]  # induction, reply, role (no reply), goal, reply
    assert msgs[0]["content"].startswith("Do you know hyper-competitive value system?")
    assert msgs[2]["content"].startswith("Now you need to pretend that you are a person")
    assert "6 multiple choice questions, each with 9 options A to I" in msgs[3]["content"]
    item = msgs[-1]["content"]
    assert item.startswith("This is the third choice question.")
    assert item.endswith(
        "Based on the above goals: 'Win by as much as possible.', please give me your choice."
    )
    assert "A: 50, 100\nB: 54, 98" in item
    assert len(msgs) == 5 + 2 * 2 + 1  # prefix, two answered items, this item
    setup = res.decisions[0].record["setup"]
    assert setup["goal"]["reply"] == "Win by as much as possible." and setup["steps"] == [
        "induction",
        "role",
        "goal",
    ]


def test_no_goal_sentence_uses_the_plain_value_name():
    policy = GoalPromptedPolicy(backend=chat(["desc"] + ["A"] * 6))
    (res,) = run(policy, [ctx("competitive")])
    item = res.decisions[0].record["messages"][-1]["content"]
    assert (
        "'I should pretend to have competitive value system and answer briefly within 2 sentences.'" in item
    )


def test_no_value_skips_induction():
    policy = GoalPromptedPolicy(backend=chat(["A"] * 6))
    (res,) = run(policy, [ctx(None)])
    msgs = res.decisions[0].record["messages"]
    assert len(msgs) == 1 and "'I should answer briefly within 2 sentences.'" in msgs[0]["content"]


def test_prefix_is_protected_and_items_are_not():
    policy = GoalPromptedPolicy(backend=chat(["desc", "goal"] + ["A"] * 6))
    state = policy.start(ctx(goal=True))
    assert len(state.messages) == 5 and all(is_kept(m) for m in state.messages)
    obs, _ = slider().reset(seed=1)
    _, state2 = policy.act(obs, state)
    assert [is_kept(m) for m in state2.messages] == [True] * 5 + [False, False]
    assert state.messages == state2.messages[:5]  # the old state is untouched (explicit state)


def test_chain_of_thought_suffix_and_final_answer_line():
    replies = ["desc"] + ["Option A gives others most. Option I is equal.\nAnswer: I"] * 6
    policy = GoalPromptedPolicy(backend=chat(replies), chain_of_thought=True)
    (res,) = run(policy, [ctx()])
    assert {d.record["choice"] for d in res.decisions} == {"I"}
    assert "Answer: X" in res.decisions[0].record["messages"][-1]["content"]


def test_other_language_and_framings():
    policy = GoalPromptedPolicy(
        backend=chat(["desc"] + ["C"] * 6),
        prompt_set="paper-fr",
        framings=["collectivist", "family", "high_stakes_dollars"],
    )
    (res,) = run(policy, [ctx("altruistic")])
    msgs = res.decisions[0].record["messages"]
    assert msgs[0]["role"] == "system" and "collectiviste" in msgs[0]["content"]
    assert msgs[1]["content"].startswith("Connais-tu le système de valeurs altruiste ?")
    assert "A: 8500, 8500" in msgs[-1]["content"] and "pour un membre de ta famille" in msgs[-1]["content"]
    assert res.decisions[0].record["framings"] == ["collectivist", "family", "high_stakes_dollars"]
    # the episode context overrides the policy's defaults (mixed populations)
    policy2 = GoalPromptedPolicy(backend=chat(["desc"] + ["C"] * 6))
    (res2,) = run(policy2, [ctx("altruistic", prompt_set="paper-de", framings=["stranger"])])
    assert "einen Fremden, den du nie treffen wirst" in res2.decisions[0].record["messages"][-1]["content"]


def test_option_order_permuted_keeps_canonical_choice():
    fixed = run(GoalPromptedPolicy(backend=ChatBackend(Picker())), [ctx(seed=s) for s in (1, 2)])
    perm = run(
        GoalPromptedPolicy(backend=ChatBackend(Picker())), [ctx(seed=s) for s in (1, 2)], order="permuted"
    )
    for f, p in zip(fixed, perm, strict=True):
        assert [d.record["canonical_option"] for d in f.decisions] == [
            d.record["canonical_option"] for d in p.decisions
        ]
        assert [i["option"] for i in p.infos] == [d.record["canonical_option"] for d in p.decisions]
        assert f.score["angle"] == pytest.approx(p.score["angle"])
    shown = [d.action for d in perm[0].decisions]
    assert shown != [d.action for d in fixed[0].decisions]  # the display really changed
    # the letters in the prompt follow the shown order
    d = perm[0].decisions[0]
    pay = perm[0].order[0]
    assert d.record["canonical_option"] == pay[d.action]


# --- seeds and determinism -----------------------------------------------------------------------


def _seeded_policy(**kw: Any) -> tuple[GoalPromptedPolicy, SeededChat]:
    model = SeededChat(calls=[])
    return GoalPromptedPolicy(backend=ChatBackend(model, max_concurrency=3), **kw), model


def test_seeds_derive_from_the_episode_and_reruns_are_identical():
    contexts = [ctx(v, goal=True, seed=s) for v in ("altruistic", "competitive") for s in (11, 12)]
    p1, m1 = _seeded_policy()
    p2, _ = _seeded_policy()
    r1, r2 = run(p1, contexts), run(p2, contexts)
    recs1 = [[d.record for d in r.decisions] for r in r1]
    recs2 = [[d.record for d in r.decisions] for r in r2]
    assert json.dumps(recs1, sort_keys=True) == json.dumps(recs2, sort_keys=True)
    assert r1[0].decisions[0].record["seed"] == call_seed(11, "item", 0)
    assert r1[0].decisions[3].record["seed"] == call_seed(11, "item", 3)
    assert r1[0].decisions[0].record["setup"]["induction"]["seed"] == call_seed(11, "induction")
    # different episode seeds give different draws (trials are independent)
    assert [d.action for d in r1[0].decisions] != [d.action for d in r1[1].decisions]
    # the model received the seeds, the temperature and the token limit
    assert all({"seed", "temperature", "max_tokens"} <= set(c) for c in m1.calls)
    assert {c["temperature"] for c in m1.calls} == {1.0}


def test_temperature_zero_is_an_option_and_marks_trials_dependent():
    policy, model = _seeded_policy(sampling={"temperature": 0.0, "max_new_tokens": 8})
    run(policy, [ctx()])
    assert {c["temperature"] for c in model.calls} == {0.0}
    d = policy.describe()
    assert d["independent_trials"] is False and d["sampling"]["temperature"] == 0.0
    json.dumps(d)


def test_call_seed_is_stable_and_distinct():
    assert call_seed(5, "item", 2) == call_seed(5, "item", 2)
    seeds = {
        call_seed(5, st, step, a)
        for st in ("induction", "goal", "item", "reask")
        for step in range(6)
        for a in range(3)
    }
    assert len(seeds) == 4 * 6 * 3 and all(0 <= s < 2**31 for s in seeds)


# --- logprob mode --------------------------------------------------------------------------------


def test_logprob_mode_records_the_distribution():
    table = {"A": math.log(0.1), "C": math.log(0.3), "E": math.log(0.4), "I": math.log(0.1), "B": None}
    backend = FixedLogprobs(table)
    policy = GoalPromptedPolicy(backend=backend, mode="logprob")
    (res,) = run(policy, [ctx()])
    d = res.decisions[0]
    rec = d.record
    assert d.action == 4 and rec["choice"] == "E" and rec["method"] == "logprob" and rec["valid"]
    probs = rec["probabilities"]
    assert probs["B"] is None and probs["E"] == pytest.approx(0.4 / 0.9)
    assert sum(p for p in probs.values() if p is not None) == pytest.approx(1.0)
    assert rec["letter_mass"] == pytest.approx(0.9)
    assert set(rec["unseen_letters"]) == {"B", "D", "F", "G", "H"}
    item1 = np.array(
        [[85, 85], [85, 76], [85, 68], [85, 59], [85, 50], [85, 41], [85, 33], [85, 24], [85, 15]]
    )
    p = np.array([0.1, 0, 0.3, 0, 0.4, 0, 0, 0, 0.1]) / 0.9
    assert rec["expected_allocation"] == pytest.approx(list(p @ item1))
    assert rec["canonical_probabilities"][4] == pytest.approx(0.4 / 0.9)
    # the item prompt asks for a bare letter; the chosen letter continues the conversation
    assert backend.seen[0][-1].text.endswith(
        "Reply with ONLY one letter from 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I' to show your choice."
    )
    assert res.decisions[1].record["messages"][-2] == {"role": "ai", "content": "E"}


def test_logprob_mode_with_permuted_order_maps_probabilities_to_canonical_options():
    table = {"A": math.log(0.7), "B": math.log(0.2), "C": math.log(0.1)}
    policy = GoalPromptedPolicy(backend=FixedLogprobs(table), mode="logprob")
    (res,) = run(policy, [ctx(seed=4)], order="permuted")
    for d, order in zip(res.decisions, res.order, strict=True):
        canon = d.record["canonical_probabilities"]
        assert canon[order[0]] == pytest.approx(0.7) and canon[order[1]] == pytest.approx(0.2)
        assert d.record["canonical_option"] == order[0]


def test_logprob_mode_without_any_letter_is_invalid():
    policy = GoalPromptedPolicy(backend=FixedLogprobs({}), mode="logprob")
    (res,) = run(policy, [ctx()])
    assert all(d.action is None and d.record["method"] == "invalid" for d in res.decisions)
    assert res.score["answered"] == 0


def test_letter_logprobs_from_openai_metadata():
    meta = {
        "logprobs": {
            "content": [
                {
                    "token": "C",
                    "logprob": -0.5,
                    "top_logprobs": [
                        {"token": "C", "logprob": -0.5},
                        {"token": " A", "logprob": -2.0},
                        {"token": "A", "logprob": -3.0},
                        {"token": "**", "logprob": -4.0},
                    ],
                }
            ]
        }
    }
    lp = letter_logprobs(AIMessage("C", response_metadata=meta), list("ABC"))
    assert lp["C"] == pytest.approx(-0.5) and lp["B"] is None
    assert lp["A"] == pytest.approx(math.log(math.exp(-2) + math.exp(-3)))
    with pytest.raises(BackendError, match="no token logprobs"):
        letter_logprobs(AIMessage("C"), list("ABC"))


def test_chat_backend_logprob_mode_end_to_end():
    meta = {
        "logprobs": {
            "content": [
                {
                    "token": "B",
                    "logprob": -0.1,
                    "top_logprobs": [{"token": "B", "logprob": -0.1}, {"token": "D", "logprob": -2.5}],
                }
            ]
        }
    }

    class LogprobChat(GenericFakeChatModel):
        logprobs: bool | None = None
        top_logprobs: int | None = None

    model = LogprobChat(messages=iter([AIMessage("Desc.")] + [AIMessage("B", response_metadata=meta)] * 6))
    policy = GoalPromptedPolicy(backend=ChatBackend(model, max_concurrency=1), mode="logprob")
    (res,) = run(policy, [ctx()])
    assert [d.action for d in res.decisions] == [1] * 6
    assert res.decisions[0].record["dropped_messages"] == 0
    with pytest.raises(BackendError, match="no token logprobs"):
        GoalPromptedPolicy(backend=chat(["d", "A"]), mode="logprob").act_batch(
            [slider().reset(seed=0)[0]], [GoalPromptedPolicy(backend=chat(["d"])).start(ctx())]
        )


# --- ChatBackend robustness ----------------------------------------------------------------------


class Flaky(SimpleChatModel):
    """Fails `fail` times with `exc`, then answers "A"."""

    fail: int = 0
    exc: Any = None
    n: int = 0

    def _call(self, messages, stop=None, run_manager=None, **kwargs):
        self.n += 1
        if self.n <= self.fail:
            raise self.exc
        return "A"

    @property
    def _llm_type(self) -> str:
        return "flaky"


class StatusError(Exception):
    def __init__(self, msg: str, status_code: int) -> None:
        super().__init__(msg)
        self.status_code = status_code


def test_transient_errors_are_retried_with_exponential_backoff():
    sleeps: list[float] = []
    b = ChatBackend(
        Flaky(fail=3, exc=ConnectionError("refused")),
        retries=4,
        backoff_s=0.5,
        sleep=sleeps.append,
        url="http://127.0.0.1:9/v1",
    )
    (g,) = b.generate([[HumanMessage("q")]], [Sampling()])
    assert g.text == "A" and sleeps == [0.5, 1.0, 2.0]


def test_persistent_errors_raise_backend_error_naming_the_url_and_hide_secrets():
    sleeps: list[float] = []
    b = ChatBackend(
        Flaky(fail=99, exc=ConnectionError("refused, key sk-secret-123")),
        retries=2,
        backoff_s=1,
        sleep=sleeps.append,
        url="http://127.0.0.1:9/v1",
        secrets=["sk-secret-123"],
    )
    with pytest.raises(BackendError) as err:
        b.generate([[HumanMessage("q")]], [Sampling()])
    assert "http://127.0.0.1:9/v1" in str(err.value) and "3 attempts" in str(err.value)
    assert "sk-secret-123" not in str(err.value)
    assert sleeps == [1, 2]


def test_client_errors_fail_at_once():
    model = Flaky(fail=99, exc=StatusError("Incorrect API key", 401))
    b = ChatBackend(model, retries=5, sleep=lambda s: None, url="https://api.example/v1")
    with pytest.raises(BackendError, match="status 401"):
        b.generate([[HumanMessage("q")]], [Sampling()])
    assert model.n == 1


def _conversation(n_items: int) -> list[BaseMessage]:
    msgs = [keep(HumanMessage("induction")), keep(AIMessage("description")), keep(HumanMessage("role"))]
    for k in range(n_items):
        msgs += [HumanMessage(f"item {k}"), AIMessage(f"answer {k}")]
    return msgs + [HumanMessage("current item")]


class ContextLimited(SimpleChatModel):
    """Raises a llama.cpp-style context error while the conversation has more than `limit` messages."""

    limit: int = 6
    seen: list = []

    def _call(self, messages, stop=None, run_manager=None, **kwargs):
        if len(messages) > self.limit:
            raise StatusError(f"Requested tokens ({len(messages) * 400}) exceed context window of 2048", 400)
        self.seen.append([m.text for m in messages])
        return "B"

    @property
    def _llm_type(self) -> str:
        return "limited"


def test_context_overflow_drops_oldest_exchanges_and_keeps_the_prefix():
    model = ContextLimited(limit=6, seen=[])
    (g,) = ChatBackend(model).generate([_conversation(3)], [Sampling()])
    assert g.dropped_messages == 4
    assert model.seen[0] == ["induction", "description", "role", "item 2", "answer 2", "current item"]
    # proactive trimming with a token budget
    b = ChatBackend(
        ContextLimited(limit=99, seen=[]), max_context_tokens=70, token_counter=lambda ms: 10 * len(ms)
    )
    (g,) = b.generate([_conversation(3)], [Sampling(max_new_tokens=10)])
    assert g.dropped_messages == 4
    # nothing left to drop: a clear error
    with pytest.raises(BackendError, match="context"):
        ChatBackend(ContextLimited(limit=2, seen=[])).generate([_conversation(1)], [Sampling()])


def test_policy_records_dropped_messages():
    model = ContextLimited(limit=8, seen=[])
    policy = GoalPromptedPolicy(backend=ChatBackend(model, max_concurrency=1))
    (res,) = run(policy, [ctx()])
    dropped = [d.record["dropped_messages"] for d in res.decisions]
    assert dropped == [0, 0, 0, 2, 4, 6]
    assert all(d.action == 1 for d in res.decisions)


def test_drop_oldest_exchange_keeps_system_and_marked_messages():
    msgs = [SystemMessage("persona"), *_conversation(1)]
    out, n = drop_oldest_exchange(msgs)
    assert n == 2 and [m.text for m in out] == ["persona", "induction", "description", "role", "current item"]
    assert drop_oldest_exchange(out) == (out, 0)


# --- make_backend --------------------------------------------------------------------------------


def test_unknown_spec_lists_the_allowed_forms():
    for bad in ("", "gpt4", "no spaces allowed:x"):
        with pytest.raises(BackendSpecError, match="allowed forms: embedded; hf:PATH; openai-compatible"):
            make_backend(bad)


def test_missing_api_key_fails_before_any_call(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("MY_KEY", raising=False)
    with pytest.raises(BackendSpecError, match="OPENAI_API_KEY"):
        make_backend("openai-compatible:smol@http://127.0.0.1:1/v1")
    with pytest.raises(BackendSpecError, match="MY_KEY"):
        make_backend("openai-compatible:smol@http://127.0.0.1:1/v1", api_key_env="MY_KEY")
    with pytest.raises(BackendSpecError, match="OPENAI_API_KEY"):
        make_backend("openai:gpt-4o-mini")
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(BackendSpecError, match="ANTHROPIC_API_KEY"):
        make_backend("anthropic:claude-3-5-haiku-latest")


def test_openai_compatible_spec(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    b = make_backend("openai-compatible:smol@http://127.0.0.1:8080/v1", dummy_key=True, max_concurrency=2)
    assert isinstance(b, ChatBackend) and b.url == "http://127.0.0.1:8080/v1"
    assert b.model.model_name == "smol" and b.model.openai_api_base == "http://127.0.0.1:8080/v1"
    assert b.supports_seed and b.supports_logprobs and b.max_concurrency == 2
    assert b.max_tokens_in_body  # llama.cpp ignores ChatOpenAI's max_completion_tokens
    assert b._kwargs(Sampling(max_new_tokens=7, seed=3)) == {
        "temperature": 1.0,
        "seed": 3,
        "max_tokens": 7,
        "extra_body": {"max_tokens": 7},
    }
    b2 = make_backend("openai-compatible:smol@http://127.0.0.1:8080/v1?dummy_key=1")
    assert b2.url == "http://127.0.0.1:8080/v1"
    monkeypatch.setenv("MY_KEY", "sk-abc")
    b3 = make_backend("openai-compatible:smol@https://host/v1", api_key_env="MY_KEY")
    assert b3.model.openai_api_key.get_secret_value() == "sk-abc"
    assert "sk-abc" not in json.dumps(b3.describe())
    with pytest.raises(BackendSpecError, match="MODEL@URL"):
        make_backend("openai-compatible:http://127.0.0.1:8080/v1")
    with pytest.raises(BackendSpecError, match="unknown URL options"):
        make_backend("openai-compatible:m@http://h/v1?key=1")


def test_local_spec_options_are_parsed_and_checked(monkeypatch):
    from agents.llm import factory

    assert factory.local_options("embedded", "embedded") == ("embedded", {})
    name, opts = factory.local_options("x", "embedded?dtype=bfloat16&max_batch_tokens=2048&prefix_cache=0")
    assert name == "embedded" and opts == {
        "dtype": "bfloat16",
        "max_batch_tokens": 2048,
        "prefix_cache": False,
    }
    assert factory.local_options("hf:/m?dtype=bfloat16", "/m?dtype=bfloat16") == ("/m", {"dtype": "bfloat16"})
    with pytest.raises(
        BackendSpecError, match="unknown local option 'fast'; allowed: device, dtype, max_batch_tokens"
    ):
        make_backend("embedded?fast=1")
    with pytest.raises(BackendSpecError, match="max_batch_tokens='many' is not valid"):
        make_backend("embedded?max_batch_tokens=many")
    with pytest.raises(BackendSpecError, match="dtype='int8' is not valid; allowed: auto, float32, bfloat16"):
        make_backend("embedded?dtype=int8")
    with pytest.raises(BackendSpecError, match="nothing after"):
        make_backend("embedded?")
    seen = {}

    class Recorder:
        def __init__(self, name, **kw):
            seen.update(name=name, **kw)

    import agents.llm.local as local

    monkeypatch.setattr(local, "LocalBackend", Recorder)
    make_backend("embedded?dtype=bfloat16", max_cache_bytes=5)
    assert seen == {"name": "embedded", "dtype": "bfloat16", "max_cache_bytes": 5}


def test_provider_spec_goes_through_init_chat_model(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-real")
    b = make_backend("openai:gpt-4o-mini")
    assert isinstance(b, ChatBackend) and type(b.model).__name__ == "ChatOpenAI"
    assert b.model.model_name == "gpt-4o-mini" and b.model_id == "openai:gpt-4o-mini"


def test_unseeded_model_warns_once():
    with pytest.warns(UserWarning, match="takes no seed"):
        ChatBackend(FakeListChatModel(responses=["a"])).generate(
            [[HumanMessage("x")]], [Sampling(temperature=1.0)]
        )
    assert make_backend("fake:a").describe()["reproducible"]  # scripted: deterministic without a seed


def test_fake_spec_scripts_replies():
    b = make_backend("fake:one|two")
    assert [g.text for g in b.generate([[HumanMessage("x")]] * 3, [Sampling()] * 3)] == ["one", "two", "one"]


def test_policy_from_spec_strings_and_describe_is_json(monkeypatch):
    policy = GoalPromptedPolicy(backend="fake:desc|A", extractor="fake:B", max_reasks=1, mode="generate")
    d = policy.describe()
    json.dumps(d)
    assert d["backend_spec"] == "fake:desc|A" and d["extractor_spec"] == "fake:B"
    assert {"model", "sampling", "mode", "prompt_set", "max_reasks", "extractor"} <= set(d)
    with pytest.raises(TypeError):
        GoalPromptedPolicy("fake:a")  # keyword-only
    with pytest.raises(ValueError, match="mode"):
        GoalPromptedPolicy(backend="fake:a", mode="vote")
    with pytest.raises(ScenarioError, match="unknown prompt set"):
        GoalPromptedPolicy(backend="fake:a", prompt_set="klingon")
    assert set(PARSE_METHODS) == {"strict", "extractor", "reask", "logprob", "invalid"}


# --- prompt data ---------------------------------------------------------------------------------


def test_prompt_sets_and_framings_load():
    ids = prompt_set_ids()
    assert {"paper", "paper-fr", "paper-de", "paper-es"} <= set(ids)
    assert len({load_prompt_set(i).language for i in ids}) >= 4
    fr = load_framings()
    assert {"collectivist", "individualist", "in_group", "out_group", "family", "stranger"} <= set(fr)
    for i in ids:
        for f in framing_ids():
            r = render_context(i, value_name="competitive", n_items=15, n_options=9, framings=[f])
            for name in ("induction", "role", "goal", "no_goal", "reask", "letter_only", "chain_of_thought"):
                text = r.fill(name)
                assert "{" not in text and "}" not in text


def test_render_item_follows_the_shown_order_and_stakes():
    r = render_context("paper", value_name="prosocial", n_items=6, n_options=3, framings=["euros"])
    text = render_item(r, np.array([[50.0, 100.0], [85.0, 85.0], [100.0, 50.0]]), 1, "G")
    assert "A: 50, 100\nB: 85, 85\nC: 100, 50" in text and "euro number" in text
    assert text.startswith("This is the second choice question.")


def test_bad_prompt_file_names_file_and_field(tmp_path):
    good = load_prompt_set("paper").model_dump()
    bad = {**good, "item": "This is the {ordinal} question {optons}"}
    path = tmp_path / "bad.yaml"
    import yaml

    path.write_text(yaml.safe_dump(bad), encoding="utf-8")
    with pytest.raises(ScenarioError) as err:
        load_yaml_model(path, PromptSet)
    assert str(path) in str(err.value) and "optons" in str(err.value)
    path.write_text(yaml.safe_dump({**good, "ordinals": ["first"]}), encoding="utf-8")
    with pytest.raises(ScenarioError, match="field ordinals"):
        load_yaml_model(path, PromptSet)


def test_framing_errors_are_clear():
    with pytest.raises(ScenarioError, match="unknown framing 'aliens'"):
        render_context("paper", value_name="prosocial", n_items=6, n_options=9, framings=["aliens"])
    with pytest.raises(ScenarioError, match="both of kind 'partner'"):
        render_context(
            "paper", value_name="prosocial", n_items=6, n_options=9, framings=["family", "stranger"]
        )
