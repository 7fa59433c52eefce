"""Population runs: cooperation ordering with mixed scripted agents, the angle plot, breakdown by
framing in mixed-culture populations, and the LLM adapter on a scripted backend."""

from __future__ import annotations

import json

import numpy as np
import pytest

from agents.base import Agent
from agents.dilemma import DilemmaLLMAgent, make_agent
from agents.llm.backend import Backend, Generation
from runs.multi import evaluate_scenario

PRO = "scripted:utility(angle=60, temperature=0.5)"
COMP = "scripted:utility(angle=-30, temperature=0.5)"


def _run(tmp_path, name: str, agents: dict) -> dict:
    return evaluate_scenario(
        "population_ring_pd",
        agents,
        tmp_path / name,
        seed=3,
        config={"episodes": 3, "plot": True, "bootstrap": 200},
    )


def test_cooperation_ordering_prosocial_mixed_competitive(tmp_path) -> None:
    all_pro = _run(tmp_path, "pro", {"*": PRO})
    mixed = _run(tmp_path, "mixed", {"prosocial": PRO, "reciprocators": PRO, "competitive": COMP})
    all_comp = _run(tmp_path, "comp", {"*": COMP})
    rates = [s["population"]["cooperation_rate"] for s in (all_pro, mixed, all_comp)]
    assert rates[0] > rates[1] > rates[2], rates
    # the plot of the graph coloured by fitted angle exists for each run
    for s in (all_pro, mixed, all_comp):
        with open(s["files"]["plot"], "rb") as fh:
            assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    # in the mixed run the pooled fits separate the groups: prosocial players are identified above
    # the PD's cooperation threshold (23.2 degrees at the first-round belief); competitive players
    # never cooperate, which identifies no angle, only that it lies below the threshold
    groups = mixed["by_group"]
    assert groups["prosocial"]["svo_fit"]["angle"] > 23.2
    comp = groups["competitive"]["svo_fit"]
    assert comp["angle"] is None and comp["feasible"][0][1] <= 24.0
    assert groups["prosocial"]["cooperation_rate"] > groups["competitive"]["cooperation_rate"]
    spread = mixed["population"]["spread"]
    assert spread["players"] == 20 and spread["unidentified_reasons"]


def test_angles_recovered_and_spread_over_scale_free_graph(tmp_path) -> None:
    truth = {"altruistic": 75, "prosocial": 40, "individualistic": 5, "competitive": -30}
    agents = {g: f"scripted:utility(angle={t}, temperature=3)" for g, t in truth.items()}
    s = evaluate_scenario(
        "population_scale_free_slider", agents, tmp_path, seed=0, config={"episodes": 5, "bootstrap": 0}
    )
    spread = s["population"]["spread"]
    assert spread["identified"] == 30 and spread["angles"]["sd"] > 20
    assert "assortativity" in spread and "mean_gap_to_neighbours" in spread
    for g, t in truth.items():
        assert abs(s["by_group"][g]["svo_fit"]["angle"] - t) <= 6.0
        assert abs(s["by_group"][g]["player_angles"]["mean"] - t) <= 8.0
    assert (tmp_path / "graph_angles.png").stat().st_size > 10_000


def test_mixed_cultures_breakdown_by_framing(tmp_path) -> None:
    s = evaluate_scenario("population_cultures", {}, tmp_path, seed=0, config={"episodes": 2, "plot": False})
    fr = s["by_framing"]
    assert set(fr) == {"collectivist", "individualist"}
    assert fr["collectivist"]["players"] == fr["individualist"]["players"] == 12
    assert fr["collectivist"]["cooperation_rate"] > fr["individualist"]["cooperation_rate"]
    ci = fr["collectivist"]["player_cooperation"]["ci95"]
    assert ci is not None and ci[0] <= fr["collectivist"]["player_cooperation"]["mean"] <= ci[1]
    # framing text reached each player's context (visible in the records)
    rows = [json.loads(x) for x in (tmp_path / "records.jsonl").read_text().splitlines()]
    assert {r["framing"] for r in rows} == {"collectivist", "individualist"}


def test_framings_as_conditions_same_payoffs(tmp_path) -> None:
    s = evaluate_scenario(
        "prisoners_dilemma_repeated",
        {"*": "scripted:tit_for_tat"},
        tmp_path,
        seed=0,
        config={"framings": ["family", "stranger"], "plot": False},
    )
    assert set(s["by_framing"]) == {"family", "stranger"}
    # scripted agents ignore text: identical behaviour and payoffs under both framings
    assert s["by_framing"]["family"]["mean_payoff"] == s["by_framing"]["stranger"]["mean_payoff"]


class _LetterBackend(Backend):
    """Scripted backend: prefers one letter; returns None for everything when `blind`."""

    model_id = "scripted-letters"

    def __init__(self, letter: str, blind: bool = False) -> None:
        self.letter, self.blind, self.calls = letter, blind, 0

    def generate(self, conversations, sampling):
        return [Generation("A") for _ in conversations]

    def choice_logprobs(self, conversations, choices):
        self.calls += 1
        if self.blind:
            return [{c: None for c in choices} for _ in conversations]
        return [{c: (0.0 if c == self.letter else -5.0) for c in choices} for _ in conversations]


def test_llm_adapter_batches_and_records_prompts(tmp_path) -> None:
    backend = _LetterBackend("B")
    agent = DilemmaLLMAgent(backend)
    s = evaluate_scenario(
        "population_ring_pd", {"*": agent}, tmp_path, seed=0, config={"framings": ["family"], "plot": False}
    )
    assert backend.calls == 10  # one batched call per round for all 20 players
    assert s["population"]["cooperation_rate"] == 0.0  # "B" = defect
    row = json.loads((tmp_path / "records.jsonl").read_text().splitlines()[-1])
    prompt = row["decision"]["prompt"][-1]["content"]
    assert "your family members" in prompt and "B) Defect" in prompt and "Previous rounds" in prompt


def test_llm_adapter_invalid_is_recorded_not_replaced(tmp_path) -> None:
    agent = DilemmaLLMAgent(_LetterBackend("A", blind=True))
    s = evaluate_scenario("ultimatum", {"*": agent}, tmp_path, seed=0, config={"plot": False})
    assert s["population"]["invalid"] == s["population"]["decisions"] == 1  # round void after the first
    assert s["population"]["mean_payoff"] == 0.0


def test_make_agent_specs() -> None:
    assert isinstance(make_agent("scripted:utility(angle=30, temperature=1)"), Agent)
    with pytest.raises(ValueError, match="unknown"):
        make_agent("scripted:nice")
    with pytest.raises(ValueError, match="needs angle"):
        make_agent("scripted:utility(temperature=1)")
    with pytest.raises(ValueError, match="kind 'bot' unknown"):
        make_agent("bot:x")
    assert np.isfinite(make_agent("scripted:utility(angle=10)").angle)


def test_runs_evaluate_style_call(tmp_path) -> None:
    """runs.evaluate passes agents keyed by spec and its RunConfig dump (scenario_options inside)."""
    cfg = {
        "trials": 2,
        "n_boot": 100,
        "seed": 0,
        "scenario": "stag_hunt",
        "scenario_options": {"plot": False, "assign": {"prosocial": "a", "reciprocator": "b"}},
    }
    agents = {"a": "scripted:always_cooperate", "b": "scripted:always_defect"}
    s = evaluate_scenario("stag_hunt", agents, tmp_path, 0, cfg)
    assert s["episodes"] == 2
    assert s["per_agent"]["player_0"]["cooperation_rate"] == 1.0
    assert s["per_agent"]["player_1"]["cooperation_rate"] == 0.0
    one = evaluate_scenario("stag_hunt", {"x": "scripted:tit_for_tat"}, tmp_path / "one", 0, {"plot": False})
    assert one["population"]["cooperation_rate"] == 1.0
    with pytest.raises(ValueError, match="assign"):
        evaluate_scenario("stag_hunt", agents, tmp_path / "bad", 0, {"plot": False})
    with pytest.raises(ValueError, match="unknown key"):
        evaluate_scenario("stag_hunt", {}, tmp_path / "bad2", 0, {"episodes": 1, "colour": "red"})


def test_llm_adapter_reversed_order_maps_back(tmp_path) -> None:
    agent = DilemmaLLMAgent(_LetterBackend("B"), order="reversed")  # "B" is now Cooperate
    s = evaluate_scenario("prisoners_dilemma", {"*": agent}, tmp_path, seed=0, config={"plot": False})
    assert s["population"]["cooperation_rate"] == 1.0
    row = json.loads((tmp_path / "records.jsonl").read_text().splitlines()[0])
    assert (
        row["decision"]["shown_order"] == [1, 0]
        and "B) Cooperate" in row["decision"]["prompt"][-1]["content"]
    )


def test_llm_generate_mode_reads_strictly(tmp_path) -> None:
    s = evaluate_scenario(
        "prisoners_dilemma_repeated",
        {"*": "llm:fake:B|I am not sure|A#generate"},
        tmp_path,
        seed=0,
        config={"plot": False},
    )
    rows = [json.loads(x) for x in (tmp_path / "records.jsonl").read_text().splitlines()]
    assert {(r["decision"]["reply"], r["action"]) for r in rows} == {
        ("B", 1),
        ("I am not sure", None),
        ("A", 0),
    }
    assert s["population"]["invalid"] == sum(r["action"] is None for r in rows) > 0


@pytest.mark.slow
def test_embedded_model_in_framed_dilemma(tmp_path) -> None:
    """The embedded SmolLM2 plays the one-shot PD under every partner framing, both letter orders.
    What it does is recorded, not asserted. Observed when written: fixed order (A=cooperate) it
    answered B (defect) under all five framings; reversed (A=defect) it answered B (cooperate) for
    neutral and family and A (defect) for stranger, in-group and out-group: mostly a preference
    for the letter B, with a small framing effect on top."""
    pytest.importorskip("transformers")
    from agents.llm.factory import make_backend

    backend = make_backend("embedded")
    for order in ("fixed", "reversed"):
        s = evaluate_scenario(
            "prisoners_dilemma",
            {"*": DilemmaLLMAgent(backend, name="smollm2", order=order)},
            tmp_path / order,
            seed=0,
            config={"plot": False, "framings": ["neutral", "family", "stranger", "in_group", "out_group"]},
        )
        assert s["population"]["decisions"] == 10
        assert set(s["by_framing"]) == {"neutral", "family", "stranger", "in_group", "out_group"}
        rows = [json.loads(x) for x in (tmp_path / order / "records.jsonl").read_text().splitlines()]
        assert all(r["decision"]["logprobs"] for r in rows)
