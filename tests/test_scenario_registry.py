"""The whole dilemma registry: every shipped scenario loads, builds an env, runs and is scored;
ids are unique, references resolve, and every kind of authoring mistake names file and field."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from envs.dilemmas import DILEMMA_ENV_IDS, make_env
from runs.multi import evaluate_scenario
from scenarios import ScenarioError
from scenarios.dilemmas import (
    DILEMMA_DIR,
    dilemma_ids,
    framing_set_ids,
    load_dilemma,
    load_dilemma_file,
    load_framing_set,
)

IDS = dilemma_ids()
DOC = Path(__file__).resolve().parents[1] / "docs" / "scenario-authoring.md"


def test_registry_ids_unique_and_complete() -> None:
    assert len(IDS) >= 10
    assert sorted(DILEMMA_ENV_IDS.values()) == IDS
    assert len(set(DILEMMA_ENV_IDS)) == len(IDS)
    kinds = {load_dilemma(i).game for i in IDS}
    assert kinds == {"matrix", "slider", "public_goods", "sequential"}


@pytest.mark.parametrize("sid", framing_set_ids())
def test_framing_sets_load(sid: str) -> None:
    fs = load_framing_set(sid)
    assert fs.framings


@pytest.mark.parametrize("sid", IDS)
def test_every_scenario_loads_runs_and_is_scored(tmp_path, sid: str) -> None:
    d = load_dilemma(sid)
    assert d.agents, f"{sid} ships no default agents"
    make_env(sid)
    s = evaluate_scenario(sid, {}, tmp_path, seed=0, config={"episodes": 1, "plot": True, "bootstrap": 50})
    assert set(s["per_agent"]) == set(d.player_names())
    for res in s["per_agent"].values():
        fit = res["svo_fit"]
        assert fit is not None and fit["status"] in ("identified", "deterministic", "unidentified")
        assert fit["angle"] is not None or fit["reason"]
    assert s["population"]["decisions"] > 0 and s["population"]["invalid"] == 0
    assert s["by_framing"] and s["by_group"]
    lines = (tmp_path / "records.jsonl").read_text().splitlines()
    assert len(lines) == s["population"]["decisions"]
    assert json.loads(lines[0])["scenario"] == sid
    assert (tmp_path / "graph_angles.png").stat().st_size > 1000
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["scenario"]["id"] == sid and run["seeds"]


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
            r"scripted agent 'sometimes' unknown",
        ),
        (
            "prisoners_dilemma",
            {"agents": [{"name": "x", "agent": "scripted:tit_for_tat", "count": 3}]},
            r"the groups cover 3 players, the scenario has 2",
        ),
        ("prisoners_dilemma", {"text": {"intro": "Win {prize} now"}}, r"text\.intro: unknown placeholder"),
        ("prisoners_dilemma", {"framing_set": "martians"}, r"framing_set: unknown 'martians'"),
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
    s = evaluate_scenario(str(path), {}, tmp_path / "run", seed=0, config={"episodes": 2, "plot": False})
    assert s["scenario"] == d.id and s["population"]["decisions"] > 0
