"""runs.evaluate's config: bad input exits with status 2, says what is allowed, writes nothing."""

import subprocess
import sys
from pathlib import Path

import pytest

from runs.config import RESUME_KEYS, ConfigError, RunConfig, load_config, preset_path
from runs.evaluate import main
from runs.plan import plan

ROOT = Path(__file__).resolve().parents[1]


def _run(argv, tmp_path, capsys):
    code = main([*argv, "--results-dir", str(tmp_path / "results"), "--cache", "run"])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--values", "selfish"], "altruistic"),
        (["--instruments", "ring"], "allowed: ['slider', 'triple_dominance']"),
        (["--agents", "gpt5"], "scripted:ideal:<value>"),
        (["--agents", "scripted:ideal:selfish"], "values: altruistic"),
        (["--agents", "scripted:always:9"], "position 9 outside 0..8"),
        (["--agents", "rl:missing.zip"], "not found"),
        (["--set", "colour=blue"], "unknown key(s) ['colour']; allowed: ['name'"),
        (["--set", "llm.temp=0"], "allowed in llm: ['mode', 'temperature'"),
        (["--goal", "maybe"], "'on', 'off' or 'both'"),
        (["--orders", "sideways"], "'fixed', 'reversed' or 'permuted'"),
        (["--trials", "0"], "trials"),
        (["--set", "novalue"], "KEY=VALUE"),
        (["--config", "nope.yaml"], "nope.yaml: config file not found"),
    ],
)
def test_bad_config_exits_2_and_writes_nothing(argv, needle, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, err = _run(
        ["--agents", "scripted:random", *argv] if argv[0] != "--agents" else argv, tmp_path, capsys
    )
    assert code == 2
    assert needle in err
    assert list(tmp_path.iterdir()) == []


def test_bad_yaml_file_names_the_file_and_key(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("agents: [scripted:random]\nvalues: [prosocial]\ntrails: 3\n")
    code, err = _run(["--config", str(cfg)], tmp_path, capsys)
    assert code == 2 and f"{cfg}: unknown key(s) ['trails']" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]


def test_argparse_errors_exit_2():
    r = subprocess.run(
        [sys.executable, "-m", "runs.evaluate", "--trials", "x"], cwd=ROOT, capture_output=True
    )
    assert r.returncode == 2


def test_help_documents_keys_specs_and_presets():
    r = subprocess.run(
        [sys.executable, "-m", "runs.evaluate", "--help"], cwd=ROOT, capture_output=True, text=True
    )
    assert r.returncode == 0
    for word in (
        "llm.mode",
        "budget.max_calls",
        "orders",
        "scripted:ideal:<value>",
        "llm:<backend spec>",
        "paper",
        "--resume",
        "exit status",
    ):
        assert word in r.stdout


def test_presets_validate_and_paper_matches_the_paper():
    for p in preset_path("default").parent.glob("*.yaml"):
        load_config(p)
    paper = load_config(preset_path("paper"))
    assert (paper.trials, paper.orders, paper.goal, paper.llm.mode) == (10, ["fixed"], "both", "generate")
    assert paper.n_episodes() == 80
    assert load_config(preset_path("default")).agents == ["llm:embedded"]
    with pytest.raises(ConfigError):
        preset_path("nope")


def test_plan_is_complete_unique_and_trial_major():
    cfg = RunConfig(agents=["scripted:random"], trials=3, orders=["fixed", "permuted"], goal="both")
    eps = plan(cfg)
    assert len(eps) == cfg.n_episodes() == 4 * 2 * 3 * 2
    assert len({e.key for e in eps}) == len(eps)
    assert [e.trial for e in eps] == sorted(e.trial for e in eps)
    # conditions and option orders of one trial share the seed (common random numbers), trials differ
    assert len({e.seed for e in eps if e.trial == 0}) == 1
    assert len({e.seed for e in eps if e.order == "permuted"}) == 3
    assert plan(cfg) == eps
    assert set(RESUME_KEYS) <= set(RunConfig.model_fields)


def test_resume_with_another_config_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base = [
        "--agents",
        "scripted:random",
        "--values",
        "prosocial",
        "--no-progress",
        "--run-dir",
        str(tmp_path / "r"),
    ]
    assert main([*base, "--trials", "2", "--cache", "off"]) == 0
    before = (tmp_path / "r" / "episodes.jsonl").read_bytes()
    capsys.readouterr()
    assert main([*base, "--trials", "3", "--cache", "off"]) == 2
    err = capsys.readouterr().err
    assert "different config" in err and "trials: run has 2, now 3" in err
    assert (tmp_path / "r" / "episodes.jsonl").read_bytes() == before


def test_conversion_of_a_run_planned_with_other_episode_seeds_is_refused(tmp_path, capsys):
    """Runs from versions that hashed the option order into the episode seed cannot be converted
    (their episodes would not match this version's plan)."""
    import json

    from runs.store import DB
    from runs.store import main as store_main

    run = tmp_path / "r"
    base = ["--agents", "scripted:random", "--values", "prosocial", "--no-progress", "--run-dir", str(run)]
    assert main([*base, "--cache", "off"]) == 0
    (run / DB).unlink()
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["seeds"]["episode_seed"] = "stable_seed('episode', base, instrument, order, trial)"
    (run / "manifest.json").write_text(json.dumps(manifest))
    capsys.readouterr()
    assert store_main(["convert", str(run)]) == 2
    err = capsys.readouterr().err
    assert "planned with episode seeds stable_seed('episode', base, instrument, order, trial)" in err
    assert (manifest["code"]["commit"] or "the commit in its manifest") in err
    assert not (run / DB).exists()


def test_cache_off_unquoted_in_yaml_or_set_means_off(tmp_path):
    """YAML reads an unquoted `off` as false: `cache: off` in a file and `--set cache=off` both
    mean the cache is off, not a validation error."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("agents: [scripted:selfish]\ncache: off\n")
    assert load_config(cfg).cache == "off"
    assert load_config(None, {"cache": False}).cache == "off"
    with pytest.raises(ConfigError, match="cache"):
        load_config(None, {"cache": True})
