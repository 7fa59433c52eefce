"""The strict reply parser on held-out realistic replies in every shipped language, and properties.

tests/data/replies*.yaml hold one language each (key `prompt_set`); each reply is read with that
prompt set's answer phrases, as the policy does.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from agents.llm.parsing import default_phrases, is_refusal, normalise_reply, parse_choice
from scenarios.loading import ScenarioError, parse_model
from scenarios.phrases import AnswerPhrases
from scenarios.prompts import load_prompt_set, prompt_set_ids

NINE = "ABCDEFGHI"
FILES = sorted((Path(__file__).parent / "data").glob("replies*.yaml"))
SETS = {f.stem: yaml.safe_load(f.read_text(encoding="utf-8")) for f in FILES}
CASES = [(data["prompt_set"], r) for data in SETS.values() for r in data["replies"]]


def phrases(prompt_set: str) -> AnswerPhrases:
    return load_prompt_set(prompt_set).answer_phrases


def test_every_shipped_prompt_set_has_a_held_out_set():
    assert sorted(d["prompt_set"] for d in SETS.values()) == sorted(prompt_set_ids())


@pytest.mark.parametrize("name", sorted(SETS))
def test_held_out_set_is_large_and_varied(name):
    replies = SETS[name]["replies"]
    assert len(replies) >= 30
    expected = [r["expected"] for r in replies]
    assert expected.count(None) >= 8  # refusals, hedges, self-corrections
    assert len({e for e in expected if e}) >= 6  # many different letters
    assert any("\n" in r["reply"] for r in replies)  # a chain-of-thought reply, last line "Answer: X"


@pytest.mark.parametrize("prompt_set,case", CASES, ids=[f"{ps}:{r['reply'][:30]!r}" for ps, r in CASES])
def test_held_out_reply(prompt_set, case):
    letters = case.get("letters", NINE)
    assert parse_choice(case["reply"], letters, phrases(prompt_set)) == case["expected"], case.get("note", "")


def test_the_replies_of_issue_12():
    nine = "ABCDEFGHI"
    assert parse_choice("My answer: I choose E", nine) == "E"
    assert parse_choice("Answer: I believe C is best", nine) == "C"
    assert parse_choice("Final answer: I think it is E.", nine) == "E"
    assert parse_choice("Answer: I", nine) == "I"
    assert parse_choice("I.", nine) == "I"
    assert parse_choice("C. Wait, no - E is better.", nine) is None
    assert parse_choice("C. Wait, no - E is better.\nFinal answer: E", nine) == "E"
    assert parse_choice("Final answer: E. Wait, actually C.", nine) is None
    assert parse_choice("I would select option A, but I cannot in good conscience do so.", nine) is None
    assert parse_choice("A good choice is C", nine) == "C"
    assert parse_choice("Je choisis l'option C.", nine, phrases("paper-fr")) == "C"
    assert parse_choice("Ich wähle Option C.", nine, phrases("paper-de")) == "C"
    assert parse_choice("Elijo la opción C.", nine, phrases("paper-es")) == "C"


def test_english_is_the_default():
    assert default_phrases() == phrases("paper")
    assert parse_choice("Je choisis l'option C.", NINE) is None  # French phrases are not English ones


def test_result_is_always_an_allowed_letter_or_none():
    for prompt_set, r in CASES:
        letters = r.get("letters", NINE)
        got = parse_choice(r["reply"], letters, phrases(prompt_set))
        assert got is None or got in letters


def test_none_and_empty():
    assert parse_choice(None, "ABC") is None
    assert parse_choice("   \n ", "ABC") is None


def test_letters_may_be_any_iterable_and_case_insensitive():
    assert parse_choice("b", ["A", "B"]) == "B"
    assert parse_choice("C", ["a", "b", "c"]) == "C"


def test_a_refusal_anywhere_is_invalid_unless_a_final_marker_follows():
    assert is_refusal("As an AI language model, I cannot choose.")
    assert is_refusal("Als KI kann ich das nicht.", phrases("paper-de"))
    assert is_refusal("Je refuse de choisir.", phrases("paper-fr"))
    assert is_refusal("No puedo elegir.", phrases("paper-es"))
    assert not is_refusal("I choose E.")
    assert parse_choice("As an AI, I would choose E.", NINE) is None
    assert parse_choice("E. As an AI I find this choice easy.", NINE) is None  # a disclaimer is one
    assert parse_choice("As an AI I have no values.\nFinal answer: E", NINE) == "E"
    assert parse_choice("Final answer: E. But I cannot really choose.", NINE) is None


def test_normalise_strips_markdown_quotes_and_abbreviations():
    assert normalise_reply("  **Answer:** `C`  ") == "Answer: C"
    assert normalise_reply("\u201cC\u201d") == '"C"'
    assert normalise_reply("R\u00e9ponse\u00a0: \u00abC\u00bb") == 'R\u00e9ponse : "C"'
    assert "B" not in normalise_reply("Ich wähle C, z. B. weil", phrases("paper-de"))


# --- data: every phrase of every language does what its list says --------------------------------


def _fill(phrase: str) -> str:
    return phrase.replace(" ... ", " ")


@pytest.mark.parametrize("prompt_set", prompt_set_ids())
def test_every_choosing_phrase_and_label_names_its_letter(prompt_set):
    ph = phrases(prompt_set)
    for p in ph.choose:
        text = p.replace("{letter}", "F") if "{letter}" in p else f"{p} F"
        assert parse_choice(text + ".", NINE, ph) == "F", text
    for label in ph.labels + ph.final_labels:
        assert parse_choice(f"{label}: F", NINE, ph) == "F", label
        assert parse_choice(f"{label} {ph.copulas[0]} F.", NINE, ph) == "F", label


@pytest.mark.parametrize("prompt_set", prompt_set_ids())
def test_every_refusal_invalidates_and_a_final_label_after_it_decides(prompt_set):
    ph = phrases(prompt_set)
    for r in ph.refusals:
        text = f"{ph.choose[0]} C. {_fill(r)}."
        assert parse_choice(text, NINE, ph) is None, r
        assert parse_choice(f"{text}\n{ph.final_labels[0]}: E", NINE, ph) == "E", r


@pytest.mark.parametrize("prompt_set", prompt_set_ids())
def test_every_alternative_hedges_and_every_correction_needs_a_final_label(prompt_set):
    ph = phrases(prompt_set)
    for alt in ph.alternatives:
        assert parse_choice(f"{ph.choose[0]} C {alt} D.", NINE, ph) is None, alt
    for c in ph.corrections + ph.hedges:
        text = f"{ph.choose[0]} C. {_fill(c)} D."
        assert parse_choice(text, NINE, ph) is None, c
        assert parse_choice(f"{text}\n{ph.final_labels[0]}: D", NINE, ph) == "D", c


@pytest.mark.parametrize("prompt_set", prompt_set_ids())
def test_negation_cancels_a_statement(prompt_set):
    ph = phrases(prompt_set)
    label = ph.labels[1]
    for n in ph.negations:
        neg = "isn't" if n.startswith("-") else n
        # "So <negation> <label> <copula> A. <label>: D" - only D is stated
        assert parse_choice(f"So {neg} {label} {ph.copulas[0]} A. {label}: D", NINE, ph) == "D", n


def test_bad_phrases_are_refused_with_field_and_reason():
    good = default_phrases().model_dump()
    for field, value, reason in [
        ("letter_words", ["AB"], "one letter"),
        ("labels", ["my {letter}"], "only `choose`"),
        ("choose", ["I {letter} and {letter}"], "once"),
        ("labels", ["my ... answer"], "'...' is allowed"),
        ("hedges", ["... or"], "between words"),
        ("labels", [" answer"], "outer blanks"),
        ("labels", [], "at least 1"),
    ]:
        with pytest.raises(ScenarioError, match=re.escape(reason)) as err:
            parse_model({**good, field: value}, AnswerPhrases, "x.yaml")
        assert "x.yaml" in str(err.value)


# --- properties ----------------------------------------------------------------------------------

LANGS = st.sampled_from(sorted(prompt_set_ids()))


@given(
    LANGS,
    st.sampled_from(NINE),
    st.sampled_from(["", "(", "[", '"', "'", "**"]),
    st.sampled_from(["", ".", "!", ":"]),
    st.text(" \t\n", max_size=3),
    st.text(" \t\n", max_size=3),
    st.booleans(),
)
def test_bare_letter_parses_to_itself(prompt_set, letter, wrap, punct, left, right, lower):
    close = {"(": ")", "[": "]"}.get(wrap, wrap)
    c = letter.lower() if lower else letter
    assert parse_choice(f"{left}{wrap}{c}{close}{punct}{right}", NINE, phrases(prompt_set)) == letter


def _pool(prompt_set: str) -> list[str]:
    return [r["reply"] for ps, r in CASES if ps == prompt_set]


@given(LANGS, st.data())
def test_any_reply_with_a_refusal_and_no_final_label_is_none(prompt_set, data):
    ph = phrases(prompt_set)
    pool = _pool(prompt_set)
    before = data.draw(st.sampled_from(pool))
    after = data.draw(st.sampled_from(pool))
    refusal = _fill(data.draw(st.sampled_from(ph.refusals)))
    text = f"{before} {refusal}. {after}"
    finals = re.compile("|".join(re.escape(f) for f in ph.final_labels) + r"|\n", re.IGNORECASE)
    if finals.search(after):  # a final label (or a last answer line) after the refusal may decide
        return
    assert parse_choice(text, NINE, ph) is None


@given(LANGS, st.data())
def test_two_different_stated_letters_without_final_label_are_none(prompt_set, data):
    ph = phrases(prompt_set)
    a, b = data.draw(st.lists(st.sampled_from("BCDEFGH"), min_size=2, max_size=2, unique=True))
    first = data.draw(st.sampled_from([p for p in ph.choose if "{letter}" not in p]))
    second = data.draw(st.sampled_from(ph.labels))
    assert parse_choice(f"{first} {a}. {second}: {b}", NINE, ph) is None
    assert parse_choice(f"{first} {a}. {ph.final_labels[0]}: {b}", NINE, ph) == b


@given(LANGS, st.text(max_size=200), st.sampled_from(["AB", "ABC", NINE, "ABCDEFGHIJKLMNO"]))
def test_never_raises_and_returns_an_allowed_letter_or_none(prompt_set, text, letters):
    got = parse_choice(text, letters, phrases(prompt_set))
    assert got is None or got in letters
