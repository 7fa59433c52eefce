"""Malformed inputs, table-driven (issue: every bad input refused up front): CLI flags, config files
and scenario files. Each case, in its own process, must exit with status 2, name what is wrong,
write no file, and load no model (a guard makes any model load fail loudly). Each case is bounded
generously in time to catch hangs, not to time it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PD = yaml.safe_load((ROOT / "scenarios" / "data" / "dilemmas" / "prisoners_dilemma.yaml").read_text())

# Runs runs.evaluate in-process with every way of loading a model replaced by a loud failure.
GUARD = textwrap.dedent(
    """\
    import sys
    import agents.llm.local as local
    import agents.llm.factory as factory

    def refuse(*a, **k):
        raise SystemExit("MODEL LOADED: a malformed input got as far as loading a model")

    local.LocalBackend.__init__ = refuse
    factory.make_backend = refuse
    from runs.evaluate import cli, main
    code = cli(lambda: main(sys.argv[1:]))
    assert "transformers" not in sys.modules, "transformers was imported"
    sys.exit(code)
    """
)


def _scenario(tmp: Path, name: str, **changes) -> str:
    data = {**PD, **changes}
    data.pop("source", None)
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return str(path)


def _cases(tmp: Path) -> list[tuple[str, list[str], str]]:
    big = tmp / "big.yaml"
    big.write_text("agents: [scripted:random]\n" + "# padding\n" * 300_000)
    listy, broken, unknown = tmp / "list.yaml", tmp / "broken.yaml", tmp / "unknown.yaml"
    listy.write_text("- scripted:random\n")
    broken.write_text("agents: [scripted:random\nvalues: [\n")
    unknown.write_text("agents: [scripted:random]\ntrails: 3\n")
    a_file = tmp / "a_file"
    a_file.write_text("not a folder")
    huge = tmp / "huge.yaml"
    huge.write_text(yaml.safe_dump({**PD, "description": "x" * 60_000_000}))
    pd = ["--scenario", "prisoners_dilemma"]
    r = "scripted:random"
    return [
        ("trials 1e9", ["--agents", r, "--trials", "1000000000"], "limits.max_episodes"),
        ("temperature inf", ["--temperature", "inf"], "llm.temperature: Input should be a finite number"),
        ("temperature nan", ["--temperature", "nan"], "llm.temperature: Input should be a finite number"),
        ("temperature < 0", ["--temperature", "-1"], "llm.temperature"),
        ("top_p 0", ["--set", "llm.top_p=0"], "llm.top_p"),
        ("max_new_tokens huge", ["--set", "llm.max_new_tokens=10000000"], "llm.max_new_tokens"),
        ("name escapes", ["--agents", r, "--name", "../../escaped"], "not a plain name"),
        ("name with slash", ["--agents", r, "--name", "a/b"], "not a plain name"),
        ("results dir is a file", ["--agents", r, "--results-dir", str(a_file)], "is a file, not a directory"),
        ("unknown agent kind", ["--agents", "gpt5"], "expected '<kind>:<...>'"),
        ("unknown value", ["--agents", "scripted:ideal:selfish"], "unknown value 'selfish'"),
        ("position too large", ["--agents", "scripted:always:9"], "position 9 outside 0..8"),
        ("old spec syntax", ["--agents", "scripted:utility(angle=30)"], "parentheses are not part of the spec syntax"),
        ("dilemma agent on slider", ["--agents", "scripted:tit_for_tat"], "not in ['instrument']"),
        ("missing RL file", ["--agents", "rl:missing.zip"], "file missing.zip not found"),
        ("bad local option", ["--agents", "llm:embedded?fast=1"], "unknown local option 'fast'"),
        ("bad local value", ["--agents", "llm:embedded?dtype=float8"], "option dtype='float8' is not valid"),
        ("unknown key", ["--agents", r, "--set", "colour=blue"], "unknown key(s) ['colour']"),
        ("unknown llm key", ["--agents", r, "--set", "llm.temp=0"], "allowed in llm:"),
        ("bad goal", ["--agents", r, "--goal", "maybe"], "'on', 'off' or 'both'"),
        ("bad order", ["--agents", r, "--orders", "sideways"], "'fixed', 'reversed' or 'permuted'"),
        ("zero trials", ["--agents", r, "--trials", "0"], "field trials"),
        ("set without =", ["--agents", r, "--set", "novalue"], "KEY=VALUE"),
        ("unknown value axis", ["--agents", r, "--values", "selfish"], "field values"),
        ("unknown instrument", ["--agents", r, "--instruments", "ring"], "unknown instrument(s) ['ring']"),
        ("zero batch", ["--agents", r, "--batch-size", "0"], "field batch_size"),
        ("unknown framing", ["--agents", r, "--set", "framings=[nope]"], "unknown id(s) ['nope']"),
        ("unknown prompt set", ["--agents", r, "--set", "prompt_sets=[paper-xx]"], "unknown prompt set(s)"),
        ("policy key elsewhere", ["--agents", r, "--set", "llm.options={prompt_set: paper-fr}"], "prompt_set -> prompt_sets"),
        ("negative budget", ["--agents", r, "--max-calls", "-1"], "budget.max_calls"),
        ("policy option typo", ["--agents", r, "--set", "llm.options={induction_tokens:24}"], "unknown option(s) ['induction_tokens:24']"),
        ("bad backend option", ["--agents", "llm:embedded", "--retries", "3"], "unknown local option 'retries'"),
        ("rounds without scenario", ["--agents", r, "--rounds", "5"], "only scenario runs have rounds"),
        ("missing config", ["--config", str(tmp / "nope.yaml")], "config file not found"),
        ("config not a mapping", ["--config", str(listy)], "expected a mapping of config keys"),
        ("config not YAML", ["--config", str(broken)], "not valid YAML"),
        ("config unknown key", ["--config", str(unknown)], "unknown key(s) ['trails']"),
        ("config too large", ["--config", str(big)], "the limit is 1,000,000"),
        ("resume nothing", ["--resume", str(tmp / "nothing")], "no such directory"),
        ("unknown scenario", ["--scenario", "nope"], "unknown dilemma scenario 'nope'"),
        ("bare spec in scenario", [*pd, "--agents", r], "say which players an agent replaces"),
        ("unknown target", [*pd, "--agents", "hunters=scripted:random"], "['hunters'] are not players or groups"),
        ("rounds over limit", [*pd, "--rounds", "100000"], "limits.max_rounds"),
        ("language without text", [*pd, "--agents", "*=llm:embedded", "--set", "prompt_sets=[paper-fr]"], "has text in ['en'] only"),
        ("scenario too large", ["--scenario", str(huge)], "the limit is 1,000,000"),
        ("payoff overflow", ["--scenario", _scenario(tmp, "pow", payoffs={"matrix": [["9**9**9**9", "S"], ["T", "P"]]})], "payoffs.matrix[0][0]: expression '9**9**9**9': the result is too large"),
        ("duplicate actions", ["--scenario", _scenario(tmp, "dup", actions=["c", "c"])], "actions: duplicate action names ['c']"),
        ("graph too large", ["--scenario", _scenario(tmp, "graph", graph={"kind": "complete", "n": 100000})], "graph: n=100,000 players"),
        ("graph too many edges", ["--scenario", _scenario(tmp, "edges", graph={"kind": "complete", "n": 5000})], "12,497,500 edges"),
        ("old placeholder", ["--scenario", _scenario(tmp, "persona", text={"intro": "{persona}Play."})], "placeholder {persona} was removed"),
        ("unknown placeholder", ["--scenario", _scenario(tmp, "prize", text={"intro": "Win {prize}."})], "unknown placeholder(s) ['prize']"),
        ("scenario spec syntax", ["--scenario", _scenario(tmp, "spec", agents=[{"name": "x", "agent": "scripted:nice", "count": 2}])], "unknown scripted agent 'nice'"),
    ]  # fmt: skip


def _ids() -> list[str]:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        return [c[0] for c in _cases(Path(d))]


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> dict[str, tuple[list[str], str]]:
    tmp = tmp_path_factory.mktemp("inputs")
    return {name: (argv, needle) for name, argv, needle in _cases(tmp)}


def test_there_are_at_least_forty_cases():
    assert len(_ids()) >= 40


@pytest.mark.parametrize("name", _ids())
def test_malformed_input_exits_2_names_it_and_writes_nothing(name, cases, tmp_path):
    argv, needle = cases[name]
    work = tmp_path / "work"
    work.mkdir()
    r = subprocess.run(
        [sys.executable, "-c", GUARD, *argv, "--results-dir", str(work / "results"), "--no-progress"]
        if "--results-dir" not in argv
        else [sys.executable, "-c", GUARD, *argv, "--no-progress"],
        cwd=work,
        env={**os.environ, "PYTHONPATH": str(ROOT), "SVO_CACHE_DIR": str(work / ".cache")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert needle in r.stderr, r.stderr[-2000:]
    assert "Traceback" not in r.stderr and "MODEL LOADED" not in r.stderr
    assert list(work.iterdir()) == [], sorted(p.name for p in work.rglob("*"))
