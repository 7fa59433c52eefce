"""The whole dilemma registry: every shipped scenario loads, builds an env, runs and is scored;
ids are unique, references resolve, and every kind of authoring mistake names file and field."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from agents.registry import check_spec
from envs.dilemmas import DILEMMA_ENV_IDS, make_env
from runs.evaluate import main
from scenarios import ScenarioError
from scenarios.dilemmas import DILEMMA_DIR, dilemma_ids, load_dilemma, load_dilemma_file

IDS = dilemma_ids()
DOC = Path(__file__).resolve().parents[1] / "docs" / "scenario-authoring.md"


def test_registry_ids_unique_and_complete() -> None:
    assert len(IDS) >= 10
    assert sorted(DILEMMA_ENV_IDS.values()) == IDS
    assert len(set(DILEMMA_ENV_IDS)) == len(IDS)
    kinds = {load_dilemma(i).game for i in IDS}
    assert kinds == {"matrix", "slider", "public_goods", "sequential"}


@pytest.mark.parametrize("sid", IDS)
def test_every_scenario_loads_runs_and_is_scored(tmp_path, sid: str) -> None:
    d = load_dilemma(sid)
    assert d.agents, f"{sid} ships no default agents"
    for g in d.agents:  # every group's spec acts in this game (the registry says so)
        check_spec(g.agent, {d.game}, [2])
    make_env(sid)
    assert main([f"--scenario={sid}", "--results-dir", str(tmp_path), "--name", "r", "--no-progress"]) == 0
    run = tmp_path / "r"
    s = json.loads((run / "summary.json").read_text())["dilemma"]
    assert set(s["players"]) == set(d.player_names())
    for res in s["players"].values():
        fit = res["fit"]
        assert fit["status"] in ("identified", "separated", "unidentified")
        assert fit["angle"] is not None or fit["reason"]
    pop = s["population"]
    assert pop["invalid"]["n"] > 0 and pop["invalid"]["k"] == 0
    assert {c["order"] for c in s["cells"]} == {"fixed", "reversed"} and s["position_bias"]
    lines = (run / "decisions.jsonl").read_text().splitlines()
    assert len(lines) == pop["invalid"]["n"]
    assert json.loads(lines[0])["instrument"] == sid
    assert (run / "graph.png").stat().st_size > 1000
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["config"]["scenario"] == sid and manifest["seeds"]


def _write(tmp_path: Path, base: str, **changes) -> Path:
    data = yaml.safe_load((DILEMMA_DIR / f"{base}.yaml").read_text())
    for k, v in changes.items():
        if v is None:
            data.pop(k, None)
        else:
            data[k] = v
    p = tmp_path / f"{base}_bad.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


@pytest.mark.parametrize(
    ("base", "changes", "pattern"),
    [
        (
            "prisoners_dilemma",
            {"cooperative_action": "betray"},
            r"cooperative_action: unknown action 'betray'",
        ),
        ("prisoners_dilemma", {"payoffs": {"matrix": [["R", "S"], ["T"]]}}, r"payoffs\.matrix: wrong shape"),
        (
            "prisoners_dilemma",
            {"payoffs": {"matrix": [["R", "S"], ["T", "Q"]]}},
            r"payoffs\.matrix\[1\]\[1\]: .*undefined variable\(s\) \['Q'\]",
        ),
        (
            "prisoners_dilemma",
            {"payoffs": {"matrix": [["R", "S"], ["T", "__import__('os')"]]}},
            r"payoffs\.matrix\[1\]\[1\]: .*not allowed",
        ),
        (
            "prisoners_dilemma",
            {"payoffs": {"matrix": [[[3, 3], [0, 4]], [[5, 0], [1, 1]]]}},
            r"not symmetric",
        ),
        (
            "public_goods",
            {"payoffs": {"self": "endowment - contribution + bonus"}},
            r"payoffs\.self: .*\['bonus'\]",
        ),
        (
            "ultimatum",
            {"payoffs": {"proposer": "endowment - offer"}},
            r"payoffs: need one expression per role",
        ),
        (
            "population_ring_pd",
            {"graph": {"kind": "edges", "edges": [[0, 1], [1, 2]], "n": 4}},
            r"graph: player node\(s\) \['3'\] have no neighbour",
        ),
        ("population_ring_pd", {"graph": {"kind": "ring", "n": 20, "k": 4, "oops": 1}}, r"graph\.oops"),
        (
            "prisoners_dilemma",
            {"agents": [{"name": "x", "agent": "scripted:sometimes", "count": 2}]},
            r"unknown scripted agent 'sometimes'",
        ),
        (
            "prisoners_dilemma",
            {"agents": [{"name": "x", "agent": "scripted:tit_for_tat", "count": 3}]},
            r"the groups cover 3 players, the scenario has 2",
        ),
        ("prisoners_dilemma", {"text": {"intro": "Win {prize} now"}}, r"text\.intro: unknown placeholder"),
        ("prisoners_dilemma", {"framing_set": "relations"}, r"framing_set"),
        (
            "prisoners_dilemma",
            {"agents": [{"name": "x", "agent": "scripted:cooperate", "count": 2, "framing": "martians"}]},
            r"framing \['martians'\] unknown",
        ),
        (
            "prisoners_dilemma",
            {"agents": [{"name": "x", "agent": "scripted:utility(angle=30)", "count": 2}]},
            r"parentheses are not part of the spec syntax",
        ),
        (
            "prisoners_dilemma",
            {"text": {"intro": "{persona}Play."}},
            r"text\.intro: placeholder \{persona\} was removed",
        ),
        ("prisoners_dilemma", {"text": {"intro": "Play.", "decision": "x"}}, r"text\.decision was removed"),
        (
            "prisoners_dilemma",
            {"text": {"intro": {"en": "Play {units}.", "fr": "Joue {pièces}."}}},
            r"text\.intro\.fr: unknown placeholder",
        ),
        ("prisoners_dilemma", {"rounds": 0}, r"field rounds: "),
        ("prisoners_dilemma", {"actions": ["cooperate", "cooperate"]}, r"duplicate action names"),
        ("paired_slider", {"instrument": "ring"}, r"instrument: unknown 'ring'"),
    ],
)
def test_mistakes_name_file_and_field(tmp_path, base: str, changes: dict, pattern: str) -> None:
    path = _write(tmp_path, base, **changes)
    with pytest.raises(ScenarioError) as err:
        load_dilemma_file(path)
    msg = str(err.value)
    assert str(path) in msg
    assert re.search(pattern, msg), msg


def test_unknown_scenario_lists_allowed() -> None:
    with pytest.raises(ScenarioError, match="allowed"):
        load_dilemma("no_such_game")


def _doc_yaml() -> str:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), flags=re.S)
    assert blocks, "docs/scenario-authoring.md has no yaml block"
    return blocks[0]


def test_walkthrough_yaml_works(tmp_path) -> None:
    path = tmp_path / "snowdrift.yaml"
    path.write_text(_doc_yaml())
    d = load_dilemma_file(path)
    args = [
        "--scenario",
        str(path),
        "--results-dir",
        str(tmp_path),
        "--name",
        "run",
        "--trials",
        "2",
        "--no-progress",
    ]
    assert main(args) == 0
    s = json.loads((tmp_path / "run" / "summary.json").read_text())["dilemma"]
    assert s["scenario"] == d.id and s["population"]["invalid"]["n"] > 0
