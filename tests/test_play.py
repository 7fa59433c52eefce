"""python -m runs.play: people take the slider in a real browser (headless Chromium) and are recorded
as human:<id> beside the models, in the same schema and presentation.

The ideal prosocial person reads the options on the page and clicks the one the prosocial rule of
scenarios/data/values.yaml picks (least inequality, ties: most joint gain); their episode scores
37.48 degrees, the same as scripted:ideal:prosocial in the same run. A second person at the same
time clicks the largest joint gain (self + other): 41.04 degrees, the same as scripted:angle:45.
The first closes the tab midway and resumes. Also: the HTTP errors (4xx, run untouched), resume
after a server restart, the loopback rule, and a two-player dilemma against a scripted agent.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from runs.episodes import DecisionRecord, EpisodeRecord
from runs.evaluate import main as evaluate
from runs.store import RunStore

ROOT = Path(__file__).resolve().parents[1]


class Server:
    """python -m runs.play in a subprocess (the real command line), stopped with SIGINT."""

    def __init__(self, *argv: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "runs.play", "--port", "0", *argv],
            cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        line = self.proc.stderr.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        if m is None:
            self.proc.kill()
            raise AssertionError(f"runs.play did not start: {line}{self.proc.stderr.read()}")
        self.url = f"http://127.0.0.1:{m.group(1)}"

    def request(
        self, method: str, path: str, body: object = None, raw: bytes | None = None
    ) -> tuple[int, dict]:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        req = urllib.request.Request(self.url + path, data=data, method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGINT)
        _, err = self.proc.communicate(timeout=120)
        assert self.proc.returncode == 0, err
        return err


def _models(run: Path) -> Path:
    """The model run people join: the two reference agents and an LLM (fake backend) on the slider,
    prosocial, goal off, the paper's fixed order."""
    assert evaluate(["--run-dir", str(run), "--no-progress", "--cache", "off", "--mode", "generate",
                     "--agents", "scripted:ideal:prosocial", "scripted:angle:45", "llm:fake:A",
                     "--values", "prosocial", "--goal", "off", "--orders", "fixed"]) == 0  # fmt: skip
    return run


def _options(page) -> list[tuple[str, float, float]]:
    """The options as the person sees them: 'A: 85, 85' -> (letter, you, other)."""
    out = []
    for text in page.locator("#options button").all_inner_texts():
        m = re.match(r"\s*([A-Z]): ([\d.]+), ([\d.]+)", text)
        out.append((m.group(1), float(m.group(2)), float(m.group(3))))
    return out


def prosocial(opts):  # values.yaml: least inequality, then most joint gain, then the first shown
    return min(opts, key=lambda o: (abs(o[1] - o[2]), -(o[1] + o[2]), opts.index(o)))[0]


def joint(opts):  # the most for both together (self + other), then the first shown
    return max(opts, key=lambda o: (o[1] + o[2], -opts.index(o)))[0]


def _start(page, url: str, who: str, shots: Path | None = None) -> None:
    page.goto(url + "/")
    page.wait_for_selector("#consent-page")
    if shots:
        page.screenshot(path=str(shots / "play-consent.png"), full_page=True)
    page.fill("#participant", who)
    page.check("#consent")
    page.click("#start")
    page.wait_for_selector("#question")


def _answer_one(page, rule, shots: Path | None = None, name: str = "") -> int:
    """Answer the open question as the person would; returns its index."""
    q = page.locator("#question")
    index, kind = int(q.get_attribute("data-index")), q.get_attribute("data-kind")
    if shots:
        page.screenshot(path=str(shots / f"play-{name or kind}.png"), full_page=True)
    if kind == "text":
        page.fill("#text", "People with this value care about fair outcomes for everyone.")
        page.click("#send")
    else:
        page.click(f"#options button[data-letter={rule(_options(page))}]")
    page.wait_for_function(
        f"(document.querySelector('#question') && document.querySelector('#question').dataset.index != '{index}')"
        " || document.querySelector('#done')"
    )
    return index


def test_people_take_the_slider_beside_the_models(tmp_path, new_page):
    run = _models(tmp_path / "run")
    shots = tmp_path
    server = Server("--run-dir", str(run))
    try:
        a, b = (
            new_page(bypass_csp=True),
            new_page(bypass_csp=True),
        )  # two people, two browsers, at the same time
        _start(a.page, server.url, "p1", shots)
        _start(b.page, server.url, "p2")
        for k in range(3):  # value induction, then two items each, interleaved
            _answer_one(a.page, prosocial, shots if k < 2 else None, ["text", "choice"][min(k, 1)])
            _answer_one(b.page, joint)
        answered = 3
        a.close()  # p1 closes the tab midway...
        c = new_page(bypass_csp=True)  # ...and comes back in a new tab with the same code
        _start(c.page, server.url, "p1")
        assert int(c.page.locator("#question").get_attribute("data-index")) == answered
        while not c.page.locator("#done").count():
            _answer_one(c.page, prosocial)
        while not b.page.locator("#done").count():
            _answer_one(b.page, joint)
        c.page.screenshot(path=str(shots / "play-done.png"), full_page=True)
        assert c.errors == [] and b.errors == []
        assert a.errors == []
    finally:
        err = server.stop()
    assert "2 episode(s) recorded" in err
    store = RunStore.read(run)
    episodes = {e["agent"]: e for e in store.episodes()}
    decisions = list(store.decisions())
    store.close()
    for e in episodes.values():
        EpisodeRecord.model_validate(e)
    for d in decisions:
        DecisionRecord.model_validate(d)
    p1, p2 = episodes["human:p1"], episodes["human:p2"]
    assert (
        round(p1["score"]["angle"], 2)
        == 37.48
        == round(episodes["scripted:ideal:prosocial"]["score"]["angle"], 2)
    )
    assert (
        round(p2["score"]["angle"], 2) == 41.04 == round(episodes["scripted:angle:45"]["score"]["angle"], 2)
    )
    assert p1["choices"] == episodes["scripted:ideal:prosocial"]["choices"]
    assert p1["key"] != p2["key"] and p1["n_invalid"] == 0
    # the same presentation as the model's: each item's prompt is the LLM's, message for message
    llm = [d for d in decisions if d["agent"] == "llm:fake:A"]
    human = [d for d in decisions if d["agent"] == "human:p1"]
    assert len(human) == len(llm) == 6
    for h, m in zip(human, llm, strict=True):
        assert h["shown_order"] == m["shown_order"] and h["options"] == m["options"]
        assert h["record"]["messages"][-1] == m["record"]["messages"][-1]
        assert [x["role"] for x in h["record"]["messages"]] == [x["role"] for x in m["record"]["messages"]]
        assert h["record"]["method"] == "click" and h["record"]["reply"] == h["record"]["choice"]
    # and runs.report puts people and models in one table (report.html written at shutdown)
    summary = json.loads((run / "summary.json").read_text())
    assert {c["agent"] for c in summary["cells"]} == {
        "scripted:ideal:prosocial", "scripted:angle:45", "llm:fake:A", "human:p1", "human:p2"
    }  # fmt: skip
    assert (run / "report.html").is_file()
    assert not list((run / ".play").glob("*.json"))  # finished sessions leave no journal


def test_bad_requests_get_4xx_and_leave_the_run_untouched(tmp_path):
    run = _models(tmp_path / "run")
    server = Server("--run-dir", str(run))
    try:
        code, st = server.request("POST", "/api/sessions", {"participant": "p9", "consent": True})
        assert code == 201 and st["question"]["index"] == 0
        tok = st["token"]
        cases = [
            ("GET", "/i/no_such_instrument", None, None, 404, "unknown instrument"),
            ("POST", "/api/sessions", {"participant": "p8", "consent": True, "instrument": "nope"}, None, 404, "unknown instrument"),
            ("POST", "/api/sessions", {"participant": "p8"}, None, 400, "consent"),
            ("POST", "/api/sessions", {"participant": "Jane Doe <jane@x.org>", "consent": True}, None, 400, "participant"),
            ("POST", "/api/sessions", None, b"{not json", 400, "not JSON"),
            ("POST", f"/api/sessions/{tok}/answer", None, b"[1, 2", 400, "not JSON"),
            ("POST", f"/api/sessions/{tok}/answer", {"index": 0, "choice": "A"}, None, 400, "text must be"),
            ("POST", f"/api/sessions/{tok}/answer", {"index": 3, "text": "hello"}, None, 409, "open question is 0"),
            ("POST", f"/api/sessions/{tok}/answer", {"index": 0, "text": "x" * 5000}, None, 400, "at most"),
            ("POST", "/api/sessions/nope/answer", {"index": 0, "text": "hi"}, None, 404, "unknown session"),
            ("GET", "/api/sessions/nope", None, None, 404, "unknown session"),
        ]  # fmt: skip
        for method, path, body, raw, status, words in cases:
            code, reply = server.request(method, path, body, raw)
            assert code == status and words in reply["error"], (path, code, reply)
        code, st = server.request("POST", f"/api/sessions/{tok}/answer", {"index": 0, "text": "fair shares"})
        assert code == 200 and st["question"]["kind"] == "choice"
        code, reply = server.request("POST", f"/api/sessions/{tok}/answer", {"index": 1, "choice": "Z"})
        assert code == 400 and "one of A, B" in reply["error"]
        store = RunStore.read(run)
        assert not any(e["agent"].startswith("human:") for e in store.episodes())
        store.close()
    finally:
        server.stop()
    store = RunStore.read(run)
    assert not any(
        e["agent"].startswith("human:") for e in store.episodes()
    )  # nothing recorded from bad input
    assert store.verify().damaged == {}
    store.close()


def test_resume_after_a_server_restart(tmp_path):
    run = tmp_path / "people"
    server = Server("--run-dir", str(run), "--values", "prosocial")
    code, st = server.request("POST", "/api/sessions", {"participant": "r1", "consent": True})
    tok = st["token"]
    server.request("POST", f"/api/sessions/{tok}/answer", {"index": 0, "text": "Kind and fair."})
    code, st = server.request("POST", f"/api/sessions/{tok}/answer", {"index": 1, "choice": "A"})
    assert st["answered"] == 2
    assert "1 unfinished" in server.stop()
    server = Server("--run-dir", str(run))
    try:
        code, st = server.request("GET", f"/api/sessions/{tok}")
        assert code == 200 and st["answered"] == 2 and st["question"]["index"] == 2
        k = 2
        while st["status"] != "done":
            letters = st["question"]["letters"]
            code, st = server.request(
                "POST", f"/api/sessions/{tok}/answer", {"index": k, "choice": letters[0]}
            )
            assert code == 200
            k += 1
    finally:
        server.stop()
    store = RunStore.read(run)
    (ep,) = store.episodes()
    decs = list(store.decisions())
    assert ep["agent"] == "human:r1" and ep["n_decisions"] == 6 and ep["choices"]["1"] == 0
    assert decs[0]["record"]["setup"]["induction"]["reply"] == "Kind and fair."
    assert round(ep["score"]["angle"], 2) == 30.47  # always the first shown option, the paper's fixed order


def test_only_loopback_unless_allowed(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "runs.play", "--run-dir", str(tmp_path / "x"), "--host", "0.0.0.0"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert r.returncode == 2 and "--allow-remote" in r.stderr
    assert not (tmp_path / "x").exists()


def test_two_player_dilemma_against_an_agent(tmp_path):
    run = tmp_path / "pd"
    server = Server("--run-dir", str(run), "--scenario", "prisoners_dilemma_repeated",
                    "--opponent", "scripted:tit_for_tat", "--rounds", "3")  # fmt: skip
    try:
        code, st = server.request("POST", "/api/sessions", {"participant": "g1", "consent": True})
        assert code == 201
        tok, k = st["token"], 0
        while st["status"] != "done":
            q = st["question"]
            assert q["kind"] == "choice"
            if k == 0:
                assert (
                    "Cooperate" in " ".join(q["options"]) and "Round 1 of 3" in q["messages"][-1]["content"]
                )
            # defect in round 2 only
            pick = next(
                L for L, o in zip(q["letters"], q["options"], strict=True) if ("Defect" in o) == (k == 1)
            )
            code, st = server.request(
                "POST", f"/api/sessions/{tok}/answer", {"index": q["index"], "choice": pick}
            )
            assert code == 200, st
            k += 1
    finally:
        server.stop()
    store = RunStore.read(run)
    (ep,) = store.episodes()
    decs = list(store.decisions())
    store.close()
    assert ep["kind"] == "scenario" and ep["rounds"] == 3
    agents = {p["agent"] for p in ep["players"].values()}
    assert agents == {"human:g1", "scripted:tit_for_tat"}
    tft = [d["cooperation"] for d in decs if d["agent"] == "scripted:tit_for_tat"]
    assert tft == [1.0, 1.0, 0.0]  # tit for tat answers the person's defection in round 2
