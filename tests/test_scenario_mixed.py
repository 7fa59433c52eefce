"""A new dilemma written here (a YAML file, no Python), trained on by RL with runs.train, then played
through runs.evaluate --scenario by the embedded LLM, the trained RL policy and a scripted agent on
one graph, and reported by runs.report: the whole stack on one run."""

from __future__ import annotations

import json
import textwrap

import pytest

from runs.evaluate import main as evaluate
from runs.report import main as report
from runs.train import main as train

GAME = textwrap.dedent(
    """\
    id: lunch_share
    name: Shared lunch (3 colleagues on a triangle, 3 rounds)
    description: Each colleague brings a big or a small lunch to share with the two others.
    game: matrix
    actions:
      - {name: big, label: "Bring a big lunch"}
      - {name: small, label: "Bring a small lunch"}
    cooperative_action: big
    variables: {R: 4, S: 1, T: 5, P: 2}
    payoffs:
      matrix:
        - [R, S]
        - [T, P]
    rounds: 3
    memory: 1
    graph: {kind: complete, n: 3}
    text:
      intro: >-
        You and {others} ({n_neighbours} colleagues) share lunch for {rounds} days. Each day you bring
        a big or a small lunch. Both big: {R} {units} each; both small: {P}; a small lunch against a
        big one gets {T}, the big one {S}.
    agents:
      - {name: model, agent: "scripted:cooperate", players: [player_0], value: prosocial}
      - {name: learner, agent: "scripted:defect", players: [player_1]}
      - {name: reciprocator, agent: "scripted:tit_for_tat", players: [player_2]}
    """
)


@pytest.mark.slow
def test_new_yaml_dilemma_with_llm_rl_and_scripted_players(tmp_path, monkeypatch):
    pytest.importorskip("stable_baselines3")
    pytest.importorskip("transformers")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lunch.yaml").write_text(GAME)
    rl = tmp_path / "rl"
    assert train(["dilemma", "--game", "lunch.yaml", "--angles", "45", "--phases", "1", "--steps", "128",
                  "--q-episodes", "0", "--eval-episodes", "1", "--out", str(rl), "--no-progress"]) == 0  # fmt: skip
    policy = rl / "angle45_player_1.zip"
    assert policy.is_file()
    argv = [
        "--scenario", "lunch.yaml", "--name", "mixed", "--goal", "off", "--cache", "off", "--no-progress",
        "--agents", "model=llm:embedded", f"learner=rl:{policy}",
    ]  # fmt: skip
    assert evaluate(argv) == 0
    run = tmp_path / "results" / "mixed"
    decisions = [json.loads(x) for x in (run / "decisions.jsonl").read_text().splitlines()]
    kinds = {d["player"]: d["record"]["method"] for d in decisions}
    assert kinds["player_0"] in ("logprob", "invalid") and kinds["player_1"] == "policy"
    assert kinds["player_2"] == "tit_for_tat"
    assert len(decisions) == 3 * 3 * 2  # players x rounds x action orders
    llm = [d for d in decisions if d["player"] == "player_0"]
    assert all(
        "share lunch" in d["record"]["messages"][-1]["content"] for d in llm if d["record"]["step"] == 0
    )
    assert llm[0]["record"]["messages"][0]["content"].startswith("Do you know prosocial value system?")
    assert all(d["value"] == "prosocial" for d in llm)  # the group's value reached the LLM
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["config"]["agents"] == ["model=llm:embedded", f"learner=rl:{policy}"]
    for name in ("summary.json", "summary.md", "graph.png"):
        (run / name).unlink()
    assert report([str(run), "--quiet"]) == 0
    summary = json.loads((run / "summary.json").read_text())["dilemma"]
    assert {c["group"] for c in summary["cells"]} == {"model", "learner", "reciprocator"}
    assert {b["group"] for b in summary["position_bias"]} == {"model", "learner", "reciprocator"}
    assert (run / "graph.png").is_file()
