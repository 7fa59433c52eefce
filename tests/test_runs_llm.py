"""runs.evaluate with the real goal-prompted policy on LangChain's fake chat model: the response
cache makes a repeated run free, the budget guard stops a run before the call that would pass it,
and the records keep the policy's evidence."""

import json

import pytest

from runs.evaluate import main
from runs.store import DECISIONS, EPISODES

pytest.importorskip("agents.llm.policy")

FAKE = "llm:fake:C"  # every reply is "C": induction, goal and items (parsed strictly)


def _sessions(run):
    """Each session's outcome (manifest.json exports the run's sessions)."""
    return [s["outcome"] for s in json.loads((run / "manifest.json").read_text())["sessions"]]


def _evaluate(run, *argv):
    return main(["--run-dir", str(run), "--no-progress", "--mode", "generate", "--orders", "fixed", *argv])


def test_second_identical_run_makes_zero_model_calls(tmp_path, monkeypatch):
    monkeypatch.setenv("SVO_CACHE_DIR", str(tmp_path / "cache"))
    argv = ["--agents", FAKE, "--values", "prosocial", "competitive", "--goal", "both", "--trials", "2"]
    assert _evaluate(tmp_path / "a", *argv) == 0
    (first,) = _sessions(tmp_path / "a")
    # per value and trial: goal on = induction + goal + 6 items; goal off shares the induction
    # (same messages, same seed: common random numbers) and asks 6 items
    assert first["model_calls"] == 2 * 2 * (8 + 6) and first["cache_hits"] == 2 * 2
    assert _evaluate(tmp_path / "b", *argv) == 0
    (second,) = _sessions(tmp_path / "b")
    assert second["model_calls"] == 0 and second["cache_hits"] == 60
    assert (tmp_path / "a" / DECISIONS).read_bytes() == (tmp_path / "b" / DECISIONS).read_bytes()
    assert (tmp_path / "a" / "summary.json").read_bytes() == (tmp_path / "b" / "summary.json").read_bytes()
    # other sampling settings are other requests
    assert _evaluate(tmp_path / "c", *argv, "--temperature", "0.5") == 0
    assert _sessions(tmp_path / "c")[0]["model_calls"] == 56


def test_option_orders_are_paired_and_share_the_induction_calls(tmp_path, monkeypatch):
    """Fixed and reversed order of one trial get the same episode seed: the same induction and goal
    requests, which the response cache serves; only the items (their option order) are new calls."""
    monkeypatch.setenv("SVO_CACHE_DIR", str(tmp_path / "cache"))
    argv = ["--agents", FAKE, "--values", "prosocial", "--goal", "on", "--orders", "fixed", "reversed"]
    assert _evaluate(tmp_path / "r", *argv) == 0
    (session,) = _sessions(tmp_path / "r")
    assert session["model_calls"] == 8 + 6 and session["cache_hits"] == 2
    episodes = [json.loads(x) for x in (tmp_path / "r" / EPISODES).read_text().splitlines()]
    assert {e["order"] for e in episodes} == {"fixed", "reversed"}
    assert len({e["seed"] for e in episodes}) == 1


def test_records_keep_the_policy_evidence(tmp_path, monkeypatch):
    monkeypatch.setenv("SVO_CACHE_DIR", str(tmp_path / "cache"))
    assert _evaluate(tmp_path / "r", "--agents", FAKE, "--values", "altruistic", "--goal", "on") == 0
    decisions = [json.loads(x) for x in (tmp_path / "r" / DECISIONS).read_text().splitlines()]
    assert len(decisions) == 6
    rec = decisions[0]["record"]
    assert rec["method"] == "strict" and rec["choice"] == "C" and rec["valid"] is True
    assert rec["messages"][0]["content"].startswith("Do you know altruistic value system?")
    assert decisions[0]["option"] == 2
    (cell,) = json.loads((tmp_path / "r" / "summary.json").read_text())["cells"]
    assert cell["answer_methods"] == {"strict": {"k": 6, "n": 6}}
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    agent = manifest["agents"][FAKE]
    assert agent["mode"] == "generate" and agent["model_id"] == "fake:C"
    assert manifest["deterministic"] == {FAKE: False}  # temperature 1.0: trials are draws


def test_budget_guard_stops_the_run_and_resume_finishes_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SVO_CACHE_DIR", str(tmp_path / "cache"))
    run = tmp_path / "r"
    argv = ["--agents", FAKE, "--values", "prosocial", "--goal", "both", "--trials", "2", "--batch-size", "1"]
    # goal on: 8 calls, goal off: 6 (its induction is the goal-on episode's, from the cache);
    # the third episode's 5th item would be call 21
    assert _evaluate(run, *argv, "--max-calls", "20") == 3  # exit status 3: budget reached
    err = capsys.readouterr().err
    assert "budget.max_calls=20" in err and "--resume" in err
    assert len((run / EPISODES).read_text().splitlines()) == 2
    assert _sessions(run)[0]["model_calls"] == 20
    assert main(["--resume", str(run), "--no-progress", "--max-calls", "100"]) == 0
    assert len((run / EPISODES).read_text().splitlines()) == 4
    # the interrupted episode's calls were cached: the resumed session pays only for the rest
    assert _sessions(run)[1]["model_calls"] == 28 - 20 and _sessions(run)[1]["cache_hits"] == 6 + 1


def test_prompt_sets_and_framings_are_grid_axes(tmp_path, monkeypatch):
    monkeypatch.setenv("SVO_CACHE_DIR", str(tmp_path / "cache"))
    run = tmp_path / "r"
    argv = [
        "--agents",
        FAKE,
        "--values",
        "prosocial",
        "--goal",
        "off",
        "--set",
        "prompt_sets=[paper, paper-fr]",
        "--set",
        "framings=[none, collectivist]",
    ]
    assert _evaluate(run, *argv) == 0
    episodes = [json.loads(x) for x in (run / EPISODES).read_text().splitlines()]
    assert {(e["prompt_set"], e["framing"]) for e in episodes} == {
        ("paper", "none"),
        ("paper", "collectivist"),
        ("paper-fr", "none"),
        ("paper-fr", "collectivist"),
    }
    decisions = [json.loads(x) for x in (run / DECISIONS).read_text().splitlines() if '"step":0' in x]
    by = {
        (d["record"]["prompt_set"], tuple(d["record"]["framings"])): d["record"]["messages"]
        for d in decisions
    }
    assert by[("paper", ())][0]["role"] == "human"
    assert by[("paper", ("collectivist",))][0]["role"] == "system"
    assert by[("paper-fr", ())][0]["content"] != by[("paper", ())][0]["content"]
    summary = json.loads((run / "summary.json").read_text())
    assert len(summary["cells"]) == 4
    assert "| prompt set | framing |" in (run / "summary.md").read_text()


def test_policy_settings_have_one_home(tmp_path, capsys):
    assert (
        main(
            [
                "--run-dir",
                str(tmp_path / "r"),
                "--agents",
                FAKE,
                "--set",
                "llm.options={prompt_set: paper-fr}",
            ]
        )
        == 2
    )
    assert "prompt_set -> prompt_sets" in capsys.readouterr().err
    assert main(["--run-dir", str(tmp_path / "r"), "--agents", FAKE, "--set", "framings=[nope]"]) == 2
    assert "unknown id(s) ['nope']" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_default_protocol_on_the_embedded_model(tmp_path, monkeypatch):
    """The default preset's chain on the real embedded model, cut to one value (fixed and reversed
    order): records, evidence, and a repeated run answered wholly from the cache."""
    pytest.importorskip("torch")
    monkeypatch.setenv("SVO_CACHE_DIR", str(tmp_path / "cache"))
    argv = ["--preset", "default", "--values", "prosocial", "--no-progress"]
    assert main(["--run-dir", str(tmp_path / "a"), *argv]) == 0
    (s1,) = _sessions(tmp_path / "a")
    # one induction shared by goal on/off and both orders (one episode seed per trial), one goal
    # (the 3 other inductions and the other goal come from the cache); then 4 episodes x 6 items
    assert s1["new_episodes"] == 4 and s1["model_calls"] == 1 + 1 + 24 and s1["cache_hits"] == 3 + 1
    decisions = [json.loads(x) for x in (tmp_path / "a" / DECISIONS).read_text().splitlines()]
    assert len(decisions) == 24
    for d in decisions:
        rec = d["record"]
        assert rec["mode"] == "logprob" and rec["method"] in ("logprob", "invalid")
        if d["valid"]:
            assert abs(sum(rec["probabilities"].values()) - 1.0) < 1e-6
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["agents"]["llm:embedded"]["model_id"].startswith("local:")
    assert manifest["reproducible"]["llm:embedded"]["reproducible"] is True
    # SmolLM2-135M answers "A" whatever it is told: the summary itself says it follows the letter
    md = (tmp_path / "a" / "summary.md").read_text()
    assert "`llm:embedded`" in md and "letter-following" in md and "follow the letter shown" in md
    assert main(["--run-dir", str(tmp_path / "b"), *argv]) == 0
    (s2,) = _sessions(tmp_path / "b")
    assert s2["model_calls"] == 0
    assert (tmp_path / "a" / DECISIONS).read_bytes() == (tmp_path / "b" / DECISIONS).read_bytes()
