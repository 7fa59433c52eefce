"""Every command shown in README.md and docs/*.md runs, unmocked, so the docs cannot rot.

Commands are read from the docs themselves: every line of a ```bash block (backslash
continuations joined, comments dropped) and every inline `python ...` span in the prose. Each one
must match a rule below, which sizes it small through its documented flags (appended: argparse
takes the last value) or says, with the reason, why it is not run here (it needs an API key, a GPU,
is the install itself, which CI runs, or is a syntax sketch with placeholders such as DIR or
`slider|dilemma`). A command that matches no rule fails the test, so adding a command to the docs
means saying how it is tested. Indented code blocks count as shown commands too. Every document's
commands run in order in one scratch folder shared by all documents (README.md first; a later
command may use an earlier one's results), each distinct command once, with the repository's code
on PYTHONPATH and a private response cache. Servers (runs.play) are started, asked for their page
and stopped. Each command's wall time is printed (`-s` shows it).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SMALL_LLM = ["--values", "prosocial", "--goal", "off", "--orders", "fixed", "reversed"]


@dataclass(frozen=True)
class Rule:
    """How a documented command is run: `extra` flags appended, or `skip` with the reason."""

    pattern: str
    extra: tuple[str, ...] = ()
    skip: str | None = None
    serve: bool = False
    timeout: int = 900


RULES = [
    Rule(r"\b(DIR|NAME|FOLDER|PATH|SPEC|REV)\b|\w\|\w|\.\.\.", skip="a syntax sketch with placeholders"),
    Rule(
        r"^python -m venv .*vllm",
        skip="vLLM's own environment, made by hand: tests/test_vllm.py runs there (not in CI: 12 min)",
    ),
    Rule(
        r"^ray start|--ray-address",
        skip="needs a Ray cluster: tests/test_ray_cluster.py runs one (two nodes, loopback namespace)",
    ),
    Rule(r"^pip install ", skip="the installation itself: .ci/run runs it on a clean checkout"),
    Rule(r"^python -m pytest", skip="the test suite itself"),
    Rule(
        r"vllm\.entrypoints|^vllm ",
        skip="needs the [vllm] extra in its own environment (tests/test_vllm.py runs it)",
    ),
    Rule(r"llm:(openai|anthropic|google|mistral|groq)[a-z_-]*:", skip="needs an API key"),
    Rule(r"^python bench/bench_llm_gpu\.py$", extra=("--cpu-smoke",)),
    Rule(r"^python bench/bench_llm_gpu\.py", skip="needs a GPU (its --cpu-smoke form runs here)"),
    Rule(r"--device cuda", skip="needs a GPU"),
    Rule(r"^python bench/bench_scoring\.py", extra=("--n", "20000", "--loop-n", "2000", "--episodes", "20")),
    Rule(r"^python bench/bench_engine_overhead\.py", extra=("--rows", "16", "--steps", "2")),
    Rule(r"^python bench/bench_llm_cpu\.py", extra=("--smoke",)),
    Rule(r"^python bench/bench_paper\.py", extra=("--smoke",)),
    Rule(r"^python bench/bench_report\.py", extra=("--decisions", "600", "--repeats", "1")),
    # no Ray row: a local Ray outside a loopback namespace binds the machine's address
    # (tests/test_ray_cluster.py runs Ray inside one)
    Rule(r"^python bench/bench_scale\.py", extra=("--smoke", "--skip-ray")),
    Rule(r"^python bench/bench_default_run\.py", skip="two full default runs back to back: a benchmark"),
    Rule(r"^python bench/validity\.py", extra=("--smoke",)),
    Rule(r"^python docs/screenshots\.py", extra=("--img", "shots")),
    Rule(r"^python -m runs\.play", serve=True),
    Rule(
        r"^python -m runs\.train slider",
        extra=("--value", "prosocial", "--steps", "256", "--eval-every", "128"),
    ),
    Rule(
        r"^python -m runs\.train dilemma",
        extra=(
            "--angles",
            "45",
            "--phases",
            "1",
            "--steps",
            "128",
            "--q-episodes",
            "0",
            "--eval-episodes",
            "1",
        ),
    ),  # fmt: skip
    Rule(r"^python -m runs\.evaluate --help", extra=()),
    Rule(r"^python -m runs\.evaluate --resume", extra=()),
    Rule(r"^python -m runs\.evaluate.*(--paper|--preset paper)", extra=(*SMALL_LLM[:4], "--trials", "1")),
    Rule(r"^python -m runs\.evaluate.*--scenario", extra=("--trials", "1", "--rounds", "2")),
    # the docs-sized runs.train above trains the prosocial policy only
    Rule(
        r"^python -m runs\.evaluate.*rl:", extra=("--values", "prosocial", "--goal", "off", "--trials", "1")
    ),
    Rule(r"^python -m runs\.evaluate.*scripted:", extra=("--trials", "2")),
    Rule(r"^python -m runs\.evaluate.*--preset scripted", extra=("--trials", "2")),
    Rule(r"^python -m runs\.evaluate.*prompt_sets", extra=(*SMALL_LLM[:4], "--orders", "fixed")),
    Rule(r"^python -m runs\.evaluate", extra=tuple(SMALL_LLM)),
    Rule(r"^python -m runs\.(report|store|multi)", extra=()),
    Rule(r"^python -c ", extra=()),
]


def _commands(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    out = []
    for block in re.findall(r"```(?:bash|sh|shell)\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line and not line.startswith("#"):
                out.append(line)
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    for block in re.findall(r"(?:^|\n\n)((?: {4}[^\n]*\n?)+)", prose):  # indented code blocks
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if re.match(r"(python|pip) ", line):
                out.append(line)
    out += [" ".join(m.split()) for m in re.findall(r"`(python (?:-m |bench/|docs/)[^`]+)`", prose)]
    return list(dict.fromkeys(out))


def _rule(cmd: str) -> Rule | None:
    return next((r for r in RULES if re.search(r.pattern, cmd)), None)


def test_every_documented_command_has_a_rule():
    missing = [(p.name, c) for p in DOCS for c in _commands(p) if _rule(c) is None]
    assert not missing, f"commands in the docs with no test rule (add one to RULES): {missing}"


def _argv(cmd: str, rule: Rule) -> list[str]:
    argv = shlex.split(cmd)
    if argv[0] == "python":
        argv[0] = sys.executable
    for i, a in enumerate(argv[1:], start=1):  # repository files: bench/x.py, docs/x.py
        if a.endswith(".py") and (ROOT / a).is_file():
            argv[i] = str(ROOT / a)
    return argv + list(rule.extra)


def _serve(argv: list[str], cwd: Path, env: dict[str, str]) -> None:
    port = _free_port()
    proc = subprocess.Popen([*argv, "--port", str(port)], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        t0 = time.time()
        while time.time() - t0 < 120:
            if proc.poll() is not None:
                raise AssertionError(f"{argv} ended: {proc.stdout.read()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                    assert r.status == 200 and b"<html" in r.read(20000).lower()
                    return
            except OSError:
                time.sleep(0.3)
        raise AssertionError(f"{argv}: no page within 120 s")
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _prepare(doc: Path, work: Path) -> None:
    """Files a document's commands refer to by name (the walkthrough's YAML)."""
    if doc.name == "scenario-authoring.md":
        block = re.findall(r"```yaml\n(.*?)```", doc.read_text(), flags=re.S)[0]
        (work / "snowdrift.yaml").write_text(block)


_RAN: dict[str, float] = {}  # command -> seconds, over every document (each distinct command runs once)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("docs")


@pytest.mark.slow
@pytest.mark.parametrize("doc", DOCS, ids=[p.name for p in DOCS])
def test_documented_commands_run(doc: Path, scratch: Path):
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SVO_CACHE_DIR": str(scratch / ".cache"),
        "PYTHONUNBUFFERED": "1",
    }
    _prepare(doc, scratch)
    for cmd in _commands(doc):
        rule = _rule(cmd)
        assert rule is not None, cmd
        if rule.skip or cmd in _RAN:
            continue
        argv = _argv(cmd, rule)
        t0 = time.time()
        if rule.serve:
            _serve(argv, scratch, env)
        else:
            r = subprocess.run(
                argv, cwd=scratch, env=env, capture_output=True, text=True, timeout=rule.timeout
            )
            assert r.returncode == 0, (
                f"{cmd}\n(run as {argv})\nexit {r.returncode}\n{r.stdout[-1500:]}\n{r.stderr[-3000:]}"
            )
        _RAN[cmd] = time.time() - t0
        print(f"{_RAN[cmd]:7.1f} s  {doc.name}: {cmd}")
    shutil.rmtree(scratch / "shots", ignore_errors=True)
