"""The strict reply parser on a held-out set of realistic replies (tests/data/replies.yaml)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from agents.llm.parsing import is_refusal, normalise_reply, parse_choice

REPLIES = yaml.safe_load((Path(__file__).parent / "data" / "replies.yaml").read_text(encoding="utf-8"))[
    "replies"
]


def test_held_out_set_is_large_and_varied():
    assert len(REPLIES) >= 40
    expected = [r["expected"] for r in REPLIES]
    assert expected.count(None) >= 15  # refusals, hedges, prose, out of range
    assert len({e for e in expected if e}) >= 7  # many different letters


@pytest.mark.parametrize("case", REPLIES, ids=[f"{i}:{r['reply'][:30]!r}" for i, r in enumerate(REPLIES)])
def test_held_out_reply(case):
    letters = case.get("letters", "ABCDEFGHI")
    assert parse_choice(case["reply"], letters) == case["expected"], case.get("note", "")


def test_result_is_always_an_allowed_letter_or_none():
    for r in REPLIES:
        letters = r.get("letters", "ABCDEFGHI")
        got = parse_choice(r["reply"], letters)
        assert got is None or got in letters


def test_none_and_empty():
    assert parse_choice(None, "ABC") is None
    assert parse_choice("   \n ", "ABC") is None


def test_letters_may_be_any_iterable_and_case_insensitive():
    assert parse_choice("b", ["A", "B"]) == "B"
    assert parse_choice("C", ["a", "b", "c"]) == "C"


def test_refusal_blocks_only_replies_that_do_not_open_with_a_choice():
    assert is_refusal("As an AI language model, I cannot choose.")
    assert parse_choice("As an AI, I would choose E.", "ABCDEFGHI") is None
    assert parse_choice("E. As an AI I find this choice easy.", "ABCDEFGHI") == "E"


def test_normalise_strips_markdown_and_quotes():
    assert normalise_reply("  **Answer:** `C`  ") == "Answer: C"
    assert normalise_reply("\u201cC\u201d") == '"C"'
