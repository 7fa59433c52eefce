"""RL training on our envs with Stable-Baselines3 (CI-sized budgets), saved-model round trips, and
RL agents mixed with LLM and scripted agents in runs.evaluate and in a runs.multi population."""

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")

from agents.rl import PolicyAgent, SpaceMismatchError, load_policy_agent, make_model  # noqa: E402
from envs.svo import SVOEnv  # noqa: E402
from runs.train import evaluate_slider, train_dilemma, train_slider  # noqa: E402

CI_STEPS = 12_288  # about 20-40 s per value on 2 idle cores


def _save(model, path: Path, **card) -> Path:
    model.save(path)
    path.with_suffix(".json").write_text(json.dumps({"algo": "ppo", **card}))
    return path


@pytest.fixture(scope="module")
def torch_one_thread():
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.slow
@pytest.mark.parametrize("value", ["prosocial", "individualistic"])
def test_brief_training_lands_in_target_category(value, torch_one_thread):
    model, curve = train_slider(value, steps=CI_STEPS, seed=0, order="permuted")
    agent = PolicyAgent({value: model}, name=f"ppo-{value}")
    for row in evaluate_slider(agent, value, ("fixed", "permuted"), episodes=10, seed=1):
        assert row["answered"] == row["asked"] == 60
        assert row["category"] == value and row["hit_rate"] >= 0.9, row
    assert curve["angles"] and len(curve["returns"]) >= CI_STEPS // 6 - 1


@pytest.mark.slow
def test_same_seed_same_model_and_saved_zip_round_trip(tmp_path, torch_one_thread):
    a, _ = train_slider("competitive", steps=1024, seed=5, eval_every=512)
    b, _ = train_slider("competitive", steps=1024, seed=5, eval_every=512)
    c, _ = train_slider("competitive", steps=1024, seed=6, eval_every=512)
    pa, pb, pc = (m.policy.state_dict() for m in (a, b, c))
    assert all(np.array_equal(pa[k].numpy(), pb[k].numpy()) for k in pa)
    assert not all(np.array_equal(pa[k].numpy(), pc[k].numpy()) for k in pa)

    path = _save(
        a, tmp_path / "competitive.zip", value="competitive", siblings={"competitive": "competitive.zip"}
    )
    loaded = load_policy_agent(str(path), env_id="SVO/Slider-v0")
    live = PolicyAgent({"competitive": a})
    env = SVOEnv(option_order="permuted")
    obs, _ = env.reset(seed=2)
    d1, _ = loaded.act(obs, loaded.start(_ctx("competitive")))
    d2, _ = live.act(obs, live.start(_ctx("competitive")))
    assert d1.action == d2.action and d1.record["probs"] == d2.record["probs"]
    assert loaded.card["value"] == "competitive"
    with pytest.raises(SpaceMismatchError, match="Discrete\\(3\\)"):
        load_policy_agent(str(path), env_id="SVO/TripleDominance-v0")


def _ctx(value):
    from agents.base import EpisodeContext

    return EpisodeContext("slider", 6, 9, seed=0, value=value)


@pytest.mark.slow
def test_mixed_llm_rl_scripted_in_one_evaluate_run(tmp_path, torch_one_thread):
    from runs.evaluate import main

    model = make_model("ppo", SVOEnv(reward="utility", target_angle=45.0, option_order="permuted"), seed=0)
    model.learn(512)
    zp = _save(model, tmp_path / "prosocial.zip", value="prosocial", siblings={"prosocial": "prosocial.zip"})
    agents = ["llm:fake:I value fairness.|A", f"rl:{zp}", "scripted:ideal:prosocial"]
    run = tmp_path / "run"
    rc = main(
        [
            "--run-dir",
            str(run),
            "--no-progress",
            "--cache",
            "off",
            "--agents",
            *agents,
            "--values",
            "prosocial",
            "--goal",
            "off",
            "--trials",
            "2",
            "--orders",
            "fixed",
            "permuted",
            "--mode",
            "generate",
        ]
    )
    assert rc == 0
    episodes = [json.loads(x) for x in (run / "episodes.jsonl").read_text().splitlines()]
    assert {e["agent"] for e in episodes} == set(agents)
    assert all(e["score"]["asked"] == 6 for e in episodes)
    rl = [e for e in episodes if e["agent"].startswith("rl:")]
    assert len(rl) == 4 and all(e["score"]["answered"] == 6 for e in rl)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["agents"][f"rl:{zp}"]["card"]["value"] == "prosocial"
    summary = json.loads((run / "summary.json").read_text())
    assert {c["agent"] for c in summary["cells"]} == set(agents)


@pytest.mark.slow
def test_rl_agent_joins_a_dilemma_population(tmp_path, torch_one_thread, capsys):
    from agents.rl import DilemmaView
    from envs.dilemmas import make_parallel
    from runs.evaluate import main

    env = make_parallel("prisoners_dilemma_repeated")
    view = DilemmaView(env, "player_0", 0.0, {"player_1": lambda o, g: 1})
    model = make_model("ppo", view, seed=0, network="mlp", gamma=0.95, n_steps=256, batch_size=64)
    zp = _save(model, tmp_path / "pd.zip", scenario="prisoners_dilemma_repeated")
    common = ["--results-dir", str(tmp_path), "--no-progress", "--cache", "off", "--trials", "1"]
    argv = ["--scenario", "prisoners_dilemma_repeated", "--name", "pd", "--agents", f"maximisers=rl:{zp}"]
    assert main([*common, *argv]) == 0
    rows = [json.loads(x) for x in (tmp_path / "pd" / "decisions.jsonl").read_text().splitlines()]
    rl_rows = [r for r in rows if r["group"] == "maximisers"]
    assert len(rl_rows) == 40 and all(r["agent"] == f"rl:{zp}" and r["valid"] for r in rl_rows)
    assert all(r["record"]["method"] == "policy" and len(r["record"]["probs"]) == 2 for r in rl_rows)
    assert {r["agent"] for r in rows if r["group"] != "maximisers"} == {"scripted:tit_for_tat"}
    summary = json.loads((tmp_path / "pd" / "summary.json").read_text())["dilemma"]
    assert {c["group"] for c in summary["cells"]} == {"maximisers", "reciprocators"}
    # a policy trained for two actions cannot play a four-player public-goods game: refused up front
    capsys.readouterr()
    rc = main([*common, "--scenario", "public_goods", "--name", "pg", "--agents", f"*=rl:{zp}"])
    assert rc == 2 and "rl:" in capsys.readouterr().err
    assert not (tmp_path / "pg" / "decisions.jsonl").exists()


@pytest.mark.slow
def test_independent_learners_cooperate_only_when_the_reward_values_the_partner(torch_one_thread):
    from runs.train import _play

    coop = {}
    for angle in (45.0, -45.0):
        models, curves = train_dilemma("prisoners_dilemma_repeated", angle, phases=1, steps=1024, seed=0)
        assert set(curves) == {"player_0", "player_1"} and all(curves.values())
        coop[angle] = _play("prisoners_dilemma_repeated", models, 2, 0, sample=False)["cooperation"]
    assert coop[45.0] >= 0.9 and coop[-45.0] <= 0.1, coop


def test_evaluate_rejects_a_policy_for_other_spaces_before_writing(tmp_path, torch_one_thread, capsys):
    from runs.evaluate import main

    model = make_model("ppo", SVOEnv(reward="utility", target_angle=45.0), seed=0)
    zp = _save(model, tmp_path / "prosocial.zip", value="prosocial", siblings={"prosocial": "prosocial.zip"})
    run = tmp_path / "run"
    args = ["--run-dir", str(run), "--no-progress", "--cache", "off", "--agents", f"rl:{zp}"]
    rc = main([*args, "--values", "prosocial", "--goal", "off", "--instruments", "triple_dominance"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "Discrete(9)" in err and "Discrete(3)" in err
    assert not run.exists() or not any(run.iterdir())


def test_evaluate_rejects_values_the_policy_was_not_trained_for_before_writing(tmp_path, capsys):
    """A card that lists only a prosocial policy, asked for all four values: exit 2 up front, naming
    what it was trained for (not a worker failure after the run started)."""
    from runs.evaluate import main

    zp = tmp_path / "prosocial.zip"
    zp.write_bytes(b"not read: the check reads the card only")
    zp.with_suffix(".json").write_text(
        json.dumps({"value": "prosocial", "siblings": {"prosocial": "prosocial.zip"}})
    )
    run = tmp_path / "run"
    rc = main(["--run-dir", str(run), "--no-progress", "--agents", f"rl:{zp}", "--goal", "off"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "trained for ['prosocial']" in err and "'altruistic'" in err and "--values prosocial" in err
    assert not run.exists()
    capsys.readouterr()
    zp.with_suffix(".json").write_text("{not json")
    assert main(["--run-dir", str(run), "--no-progress", "--agents", f"rl:{zp}"]) == 2
    assert "prosocial.json: not valid JSON" in capsys.readouterr().err
