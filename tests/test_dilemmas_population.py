"""Scenario runs through the one runner: populations of scripted agents (cooperation ordering,
fitted angles over a graph, framings as conditions and as group personas), explicit overrides, and
the goal-prompted LLM policy playing dilemma moves on scripted backends."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agents.llm.backend import Backend, Generation
from runs.evaluate import main

PRO = "scripted:angle:60:temperature=0.5"
COMP = "scripted:angle:-30:temperature=0.5"


def _run(tmp_path: Path, name: str, *argv: str) -> tuple[int, dict]:
    rc = main(["--results-dir", str(tmp_path), "--name", name, "--no-progress", *argv])
    path = tmp_path / name / "summary.json"
    return rc, (json.loads(path.read_text()) if path.is_file() else {})


def _cells(summary: dict, **match) -> list[dict]:
    return [c for c in summary["dilemma"]["cells"] if all(c[k] == v for k, v in match.items())]


def _decisions(tmp_path: Path, name: str) -> list[dict]:
    return [json.loads(x) for x in (tmp_path / name / "decisions.jsonl").read_text().splitlines()]


def test_cooperation_ordering_prosocial_mixed_competitive(tmp_path) -> None:
    common = ("--scenario", "population_ring_pd", "--trials", "3", "--seed", "3", "--orders", "fixed")
    rates = []
    for name, agents in (
        ("pro", [f"*={PRO}"]),
        ("mixed", [f"prosocial={PRO}", f"reciprocators={PRO}", f"competitive={COMP}"]),
        ("comp", [f"*={COMP}"]),
    ):
        rc, s = _run(tmp_path, name, *common, "--agents", *agents)
        assert rc == 0
        rates.append(s["dilemma"]["population"]["cooperation"]["mean"])
        assert (tmp_path / name / "graph.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert rates[0] > rates[1] > rates[2], rates
    _, mixed = _run(
        tmp_path,
        "mixed",
        *common,
        "--agents",
        f"prosocial={PRO}",
        f"reciprocators={PRO}",
        f"competitive={COMP}",
    )
    (pro,) = _cells(mixed, group="prosocial")
    (comp,) = _cells(mixed, group="competitive")
    assert pro["cooperation"]["mean"] > comp["cooperation"]["mean"]
    assert len(mixed["dilemma"]["players"]) == 20


def test_angles_recovered_over_scale_free_graph(tmp_path) -> None:
    truth = {"altruistic": 75, "prosocial": 40, "individualistic": 5, "competitive": -30}
    agents = [f"{g}=scripted:angle:{t}:temperature=3" for g, t in truth.items()]
    rc, s = _run(
        tmp_path,
        "sf",
        "--scenario",
        "population_scale_free_slider",
        "--trials",
        "5",
        "--orders",
        "fixed",
        "--agents",
        *agents,
    )
    assert rc == 0
    for g, t in truth.items():
        (cell,) = _cells(s, group=g)
        assert cell["n_players"] in (6, 8) and abs(cell["fit"]["angle"] - t) <= 6.0, (g, cell["fit"])
    assert (tmp_path / "sf" / "graph.png").stat().st_size > 10_000


def test_mixed_cultures_group_framings(tmp_path) -> None:
    rc, s = _run(tmp_path, "cult", "--scenario", "population_cultures", "--trials", "2", "--orders", "fixed")
    assert rc == 0
    cells = {c["framing"]: c for c in s["dilemma"]["cells"]}
    assert set(cells) == {"collectivist", "individualist"}
    assert cells["collectivist"]["n_players"] == cells["individualist"]["n_players"] == 12
    assert cells["collectivist"]["cooperation"]["mean"] > cells["individualist"]["cooperation"]["mean"]


def test_framings_as_conditions_same_payoffs(tmp_path) -> None:
    rc, s = _run(
        tmp_path, "fr", "--scenario", "prisoners_dilemma_repeated", "--agents", "*=scripted:tit_for_tat",
        "--orders", "fixed", "--set", "framings=[family, stranger]",
    )  # fmt: skip
    assert rc == 0
    cells = {c["framing"]: c for c in s["dilemma"]["cells"]}
    assert set(cells) == {"family", "stranger"}
    # scripted agents ignore text: identical behaviour and payoffs under both framings
    assert cells["family"]["mean_payoff"] == cells["stranger"]["mean_payoff"]


def test_overrides_are_explicit_and_checked(tmp_path) -> None:
    rc, s = _run(tmp_path, "ov", "--scenario", "stag_hunt", "--trials", "2", "--orders", "fixed",
                 "--agents", "prosocial=scripted:cooperate", "reciprocator=scripted:defect")  # fmt: skip
    assert rc == 0
    players = s["dilemma"]["players"]
    assert players["player_0"]["cooperation"] == 1.0 and players["player_1"]["cooperation"] == 0.0
    manifest = json.loads((tmp_path / "ov" / "manifest.json").read_text())
    assert manifest["config"]["agents"] == ["prosocial=scripted:cooperate", "reciprocator=scripted:defect"]
    # a bare spec does not silently replace the population; an unknown target is refused
    assert _run(tmp_path, "bare", "--scenario", "stag_hunt", "--agents", "scripted:random")[0] == 2
    assert _run(tmp_path, "who", "--scenario", "stag_hunt", "--agents", "hunters=scripted:random")[0] == 2
    assert not (tmp_path / "bare").exists() and not (tmp_path / "who").exists()


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

    def describe(self):
        return {"model_id": self.model_id}


def _run_policy(tmp_path: Path, backend: Backend, *argv: str) -> dict:
    """Run a scenario whose every player is the goal-prompted policy on `backend` (in-process)."""
    from agents.llm import GoalPromptedPolicy
    from runs.agents import BuiltAgent
    from runs.evaluate import resolve
    from runs.evaluate import run as run_grid
    from runs.report import write_reports
    from runs.store import RunStore

    args = ["--results-dir", str(tmp_path), "--name", "llm", "--agents", "*=llm:letters", *argv]
    from runs.evaluate import build_parser

    config, run_dir, _ = resolve(build_parser().parse_args(args))
    store, _ = RunStore.claim(
        run_dir,
        config=config.model_dump(mode="json"),
        resume_view=config.resume_view(),
        manifest={},
        session={},
    )
    policy = GoalPromptedPolicy(backend=backend, mode=config.llm.mode, max_reasks=0, extractor=None)
    try:
        run_grid(config, store, {"llm:letters": BuiltAgent("llm:letters", policy)}, progress=False)
        store.export()
        return write_reports(run_dir, plots=False, store=store)
    finally:
        store.close()


def test_llm_policy_batches_and_records_dilemma_prompts(tmp_path) -> None:
    backend = _LetterBackend("B")
    s = _run_policy(tmp_path, backend, "--scenario", "population_ring_pd", "--orders", "fixed", "--goal", "off",
                    "--set", "framings=[family]")  # fmt: skip
    assert backend.calls == 10  # one batched call per round for all 20 players
    assert s["dilemma"]["population"]["cooperation"]["mean"] == 0.0  # "B" = defect
    row = _decisions(tmp_path, "llm")[-1]
    prompt = row["record"]["messages"][-1]["content"]
    assert "your family" in prompt and "B: Defect" in prompt and "Last round you chose: Defect" in prompt
    assert "Round 10 of 10." in prompt


def test_llm_policy_invalid_is_recorded_not_replaced(tmp_path) -> None:
    s = _run_policy(
        tmp_path,
        _LetterBackend("A", blind=True),
        "--scenario",
        "ultimatum",
        "--orders",
        "fixed",
        "--goal",
        "off",
    )
    pop = s["dilemma"]["population"]
    assert pop["invalid"] == {"k": 1, "n": 1}  # the round is void after the proposer's invalid answer
    assert pop["mean_payoff"] == 0.0


def test_llm_policy_reversed_order_maps_back(tmp_path) -> None:
    s = _run_policy(
        tmp_path,
        _LetterBackend("B"),
        "--scenario",
        "prisoners_dilemma",
        "--orders",
        "reversed",
        "--goal",
        "off",
    )
    assert s["dilemma"]["population"]["cooperation"]["mean"] == 1.0  # "B" is Cooperate when reversed
    row = _decisions(tmp_path, "llm")[0]
    assert row["shown_order"] == [1, 0] and row["option"] == 0
    assert "B: Cooperate" in row["record"]["messages"][-1]["content"]


def test_rounds_in_prompt_are_the_rounds_played(tmp_path) -> None:
    _run_policy(tmp_path, _LetterBackend("A"), "--scenario", "prisoners_dilemma_repeated", "--rounds", "4",
                "--orders", "fixed", "--goal", "off")  # fmt: skip
    rows = _decisions(tmp_path, "llm")
    first = rows[0]["record"]["messages"][-1]["content"]
    assert "play 4 rounds" in first and "Round 1 of 4." in first
    assert max(r["round"] for r in rows) == 3


def test_llm_generate_mode_reads_strictly(tmp_path) -> None:
    rc, s = _run(
        tmp_path, "gen", "--scenario", "prisoners_dilemma_repeated", "--agents", "*=llm:fake:B|I am not sure|A",
        "--orders", "fixed", "--goal", "off", "--mode", "generate", "--cache", "off",
        "--set", "llm.options={max_reasks: 0, extractor: null}",
    )  # fmt: skip
    assert rc == 0
    rows = _decisions(tmp_path, "gen")
    assert {(r["record"]["reply"], r["option"]) for r in rows} == {
        ("B", 1),
        ("I am not sure", None),
        ("A", 0),
    }
    assert s["dilemma"]["population"]["invalid"]["k"] == sum(r["option"] is None for r in rows) > 0


@pytest.mark.slow
def test_embedded_model_in_framed_dilemma(tmp_path) -> None:
    """The embedded SmolLM2 plays the one-shot PD under every partner framing, both letter orders,
    through the runner. What it does is recorded and summarised (position bias), not asserted."""
    pytest.importorskip("transformers")
    rc, s = _run(
        tmp_path, "emb", "--scenario", "prisoners_dilemma", "--agents", "*=llm:embedded", "--goal", "off",
        "--set", "framings=[none, family, stranger, in_group, out_group]", "--cache", "off",
    )  # fmt: skip
    assert rc == 0
    dil = s["dilemma"]
    assert sum(c["invalid"]["n"] for c in dil["cells"]) == 2 * 5 * 2  # players x framings x orders
    assert {c["framing"] for c in dil["cells"]} == {"none", "family", "stranger", "in_group", "out_group"}
    assert all(b["cooperation_index"] is not None for b in dil["position_bias"])
    assert all(r["record"]["probabilities"] for r in _decisions(tmp_path, "emb"))
