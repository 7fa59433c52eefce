"""runs.evaluate end to end with scripted agents: targets, a random baseline, determinism, position
bias, offline re-scoring, the manifest, and refusals before anything is written. Kills, races and
damage to the run store are in tests/test_store_faults.py."""

import json
from pathlib import Path

import numpy as np
import pytest

from runs.evaluate import main
from runs.report import main as report_main
from runs.store import DECISIONS, EPISODES
from scenarios import load_instrument
from scoring import svo

VALUES = ("altruistic", "prosocial", "individualistic", "competitive")
PUBLISHED_IDEAL = {"altruistic": 61.39, "prosocial": 37.48, "individualistic": -7.82, "competitive": -16.26}


def _evaluate(run_dir: Path, *argv: str) -> int:
    return main(["--run-dir", str(run_dir), "--no-progress", "--cache", "off", *argv])


def _summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def test_ideal_types_hit_their_targets_with_rationality_60(tmp_path):
    agents = [f"scripted:ideal:{v}" for v in VALUES]
    assert (
        _evaluate(
            tmp_path / "r",
            "--agents",
            *agents,
            "--goal",
            "off",
            "--trials",
            "2",
            "--orders",
            "fixed",
            "reversed",
            "permuted",
        )
        == 0
    )
    cells = _summary(tmp_path / "r")["cells"]
    assert len(cells) == 4 * 4 * 3
    for c in cells:
        own = c["agent"] == f"scripted:ideal:{c['value']}"
        assert c["angle_mean"] == pytest.approx(PUBLISHED_IDEAL[c["agent"].rsplit(":", 1)[1]], abs=0.01)
        assert c["invalid"]["k"] == 0
        if own:
            assert c["rationality_interval"] == c["rationality_ideal"] == 60.0
            assert c["hit"]["k"] == c["hit"]["n"] > 0
            assert c["category_of_mean"] == c["value"]
        else:
            assert c["rationality_ideal"] < 60.0 and c["hit"]["k"] == 0
    # a deterministic agent's identical trials count once; permuted orders are distinct inputs
    fixed = [c for c in cells if c["order"] == "fixed"]
    assert all(c["n_episodes"] == 2 and c["n_distinct"] == 1 and c["n_used"] == 1 for c in fixed)
    assert all(c["n_distinct"] == 2 for c in cells if c["order"] == "permuted")


def _random_angle_distribution() -> np.ndarray:
    """Every one of the 9^6 equally likely answer sheets of a uniform random agent."""
    pay = load_instrument("slider").subset("primary").payoffs()  # (6, 9, 2)
    grids = np.meshgrid(*[np.arange(9)] * 6, indexing="ij")
    idx = np.stack([g.ravel() for g in grids], axis=-1)  # (531441, 6)
    chosen = pay[np.arange(6), idx]  # (531441, 6, 2)
    return svo.svo_angle(chosen[..., 0], chosen[..., 1])


def test_random_agent_scores_as_its_distribution_predicts(tmp_path):
    angles = _random_angle_distribution()
    mu, sd = angles.mean(), angles.std()
    n = 400
    assert (
        _evaluate(
            tmp_path / "r",
            "--agents",
            "scripted:random",
            "--values",
            "prosocial",
            "--goal",
            "off",
            "--trials",
            str(n),
            "--orders",
            "fixed",
            "--batch-size",
            "50",
        )
        == 0
    )
    (cell,) = _summary(tmp_path / "r")["cells"]
    assert cell["n_episodes"] == cell["n_angle"] == n and not cell["deduplicated"]
    # mean of n independent draws: within 4 standard errors (seeded, so this is not flaky)
    assert abs(cell["angle_mean"] - mu) < 4 * sd / np.sqrt(n)
    assert cell["angle_ci"][0] < mu < cell["angle_ci"][1]
    assert cell["angle_sd"] == pytest.approx(sd, rel=0.15)
    p_pro = float(np.mean(svo.categorise(angles) == "prosocial"))
    k, nn = cell["hit"]["k"], cell["hit"]["n"]
    assert nn == n and abs(k / n - p_pro) < 4 * np.sqrt(p_pro * (1 - p_pro) / n)


def test_same_config_and_seed_give_identical_records_and_summaries(tmp_path):
    argv = [
        "--agents",
        "scripted:random",
        "scripted:always:0",
        "--orders",
        "fixed",
        "permuted",
        "--trials",
        "3",
        "--seed",
        "11",
    ]
    assert _evaluate(tmp_path / "a", *argv) == 0
    assert _evaluate(tmp_path / "b", *argv) == 0
    for name in ("summary.json", "summary.csv", "summary.md", EPISODES, DECISIONS):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert _evaluate(tmp_path / "c", *argv[:-1], "12") == 0
    assert (tmp_path / "c" / EPISODES).read_bytes() != (tmp_path / "a" / EPISODES).read_bytes()


def test_first_letter_agent_shows_position_bias(tmp_path):
    assert (
        _evaluate(
            tmp_path / "r",
            "--agents",
            "scripted:always:0",
            "--values",
            "prosocial",
            "--goal",
            "off",
            "--orders",
            "fixed",
            "reversed",
        )
        == 0
    )
    (b,) = _summary(tmp_path / "r")["position_bias"]
    assert b["means"] == {"fixed": pytest.approx(30.47, abs=0.01), "reversed": pytest.approx(14.74, abs=0.01)}
    assert b["index"] == pytest.approx(15.73, abs=0.02)


def test_report_rescores_without_any_model(tmp_path):
    run = tmp_path / "r"
    assert (
        _evaluate(run, "--agents", "scripted:random", "--trials", "3", "--orders", "fixed", "reversed") == 0
    )
    before = (run / "summary.json").read_bytes()
    for name in ("summary.json", "summary.csv", "summary.md", "radar.png", "angles.png"):
        (run / name).unlink()
    assert report_main([str(run), "--quiet"]) == 0
    assert (run / "summary.json").read_bytes() == before
    assert (run / "radar.png").stat().st_size > 10_000 and (run / "angles.png").is_file()
    assert _summary(run)["rescored_mismatches"] == 0
    assert report_main([str(tmp_path / "nothing")]) == 2


def test_manifest_records_code_packages_agents_and_no_secrets(tmp_path, monkeypatch):
    monkeypatch.setenv("SOME_API_KEY", "sk-very-secret-value-123")
    run = tmp_path / "r"
    assert (
        _evaluate(
            run,
            "--agents",
            "scripted:angle:30",
            "--values",
            "prosocial",
            "--name",
            "sk-very-secret-value-123",
        )
        == 0
    )
    m = json.loads((run / "manifest.json").read_text())
    assert m["config"]["agents"] == ["scripted:angle:30"]
    assert set(m["code"]) == {"commit", "dirty"}
    assert m["environment"]["packages"]["numpy"] == np.__version__
    assert m["agents"]["scripted:angle:30"]["angle"] == 30.0
    assert m["deterministic"] == {"scripted:angle:30": True}
    for f in run.iterdir():
        if f.suffix in (".json", ".jsonl", ".md", ".csv"):
            assert "sk-very-secret-value-123" not in f.read_text(), f.name


def test_unknown_scenario_exits_2_and_writes_nothing(tmp_path, capsys):
    assert _evaluate(tmp_path / "r", "--scenario", "nope") == 2
    assert "unknown dilemma scenario 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_bad_local_backend_option_exits_2_and_writes_nothing(tmp_path, capsys):
    assert _evaluate(tmp_path / "r", "--agents", "llm:embedded?fast=1") == 2
    assert "unknown local option 'fast'; allowed: device, dtype, max_batch_tokens" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
