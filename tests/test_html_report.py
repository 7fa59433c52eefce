"""report.html in a real browser (headless Chromium): it opens offline with no console errors, a
click on a cell shows its episodes, a click on an episode shows its transcript, filters and the
reply search change what is shown, plot points name and open episodes; the dilemma view and the
comparison of two runs; the embedded data is the store's, losslessly; bad run directories."""

from __future__ import annotations

import base64
import gzip
import json
import re
from pathlib import Path

import pytest

from runs.evaluate import main as evaluate
from runs.report import main as report_main
from runs.store import RunStore

FAKE = "llm:fake:I choose C because it is fair to both of us.|C"


def _run(run_dir: Path, *argv: str) -> Path:
    assert evaluate(["--run-dir", str(run_dir), "--no-progress", "--cache", "off", *argv]) == 0
    return run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A scripted run, a tiny LLM run (fake backend, generate mode) and a scenario run."""
    base = tmp_path_factory.mktemp("runs")
    return {
        "scripted": _run(
            base / "scripted",
            "--agents",
            "scripted:random",
            "scripted:ideal:prosocial",
            "--values",
            "prosocial",
            "competitive",
            "--goal",
            "both",
            "--orders",
            "fixed",
            "reversed",
            "--trials",
            "3",
        ),  # fmt: skip
        "llm": _run(
            base / "llm",
            "--agents",
            FAKE,
            "--mode",
            "generate",
            "--values",
            "prosocial",
            "competitive",
            "--goal",
            "on",
            "--orders",
            "fixed",
            "permuted",
        ),  # fmt: skip
        "llm2": _run(
            base / "llm2",
            "--agents",
            FAKE,
            "--mode",
            "generate",
            "--values",
            "prosocial",
            "competitive",
            "--goal",
            "on",
            "--orders",
            "fixed",
            "permuted",
            "--seed",
            "7",
            "--trials",
            "2",
        ),  # fmt: skip
        "scenario": _run(
            base / "scenario",
            "--scenario",
            "population_ring_pd",
            "--orders",
            "fixed",
            "reversed",
            "--rounds",
            "4",
        ),  # fmt: skip
    }


def _open(new_page, path: Path, shots: Path, name: str):
    p = new_page()
    p.page.goto(path.resolve().as_uri())
    p.page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    p.page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
    return p


def _summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


def _decode_blocks(html: str) -> dict[str, object]:
    """The page's data blocks, decoded as the page's script decodes them."""
    out = {}
    for name, enc, body in re.findall(
        r'<script type="application/json" id="block-([a-z]+)" data-enc="([a-z0-9]+)">(.*?)</script>',
        html,
        re.S,
    ):
        text = gzip.decompress(base64.b64decode(body)).decode() if enc == "gzip64" else body
        out[name] = json.loads(text)
    return out


def test_runner_writes_a_self_contained_report(runs):
    html = (runs["llm"] / "report.html").read_text()
    assert "<script src" not in html and "<link" not in html and "@import" not in html
    assert not re.search(r"""(src|href)=["']?https?:|url\((?!#)|fetch\(""", html)  # nothing from a network
    blocks = _decode_blocks(html)
    assert set(blocks) == {"meta", "decisions"}


def test_embedded_data_is_the_store_losslessly(runs):
    """Rebuild every decision record from the page's interned blocks: they equal the store's."""
    run = runs["llm"]
    blocks = _decode_blocks((run / "report.html").read_text())
    meta, dec = blocks["meta"], blocks["decisions"]
    store = RunStore.read(run)
    episodes, decisions = store.episodes(), list(store.decisions())
    store.close()
    cols = meta["episodes"]["cols"]
    rows = [dict(zip(cols, r, strict=True)) for r in meta["episodes"]["rows"]]
    assert [r["key"] for r in rows] == [e["key"] for e in episodes]
    rebuilt = []
    for e, decs in zip(episodes, dec["episodes"], strict=True):
        for d in decs:
            rec = dict(d["record"])
            rec["messages"] = [
                {"role": dec["messages"][i][0], "content": dec["messages"][i][1]} for i in rec["messages"]
            ]
            full = {
                **d,
                "record": rec,
                "options": dec["options"][d["options"]],
                "shown_order": dec["orders"][d["shown_order"]],
            }
            full.update(
                {k: e[k] for k in ("value", "goal", "order", "instrument", "trial")},
                episode=e["key"],
                agent=e["agent"],
            )
            rebuilt.append(full)
    strip = lambda d: {k: v for k, v in d.items() if v is not None}  # noqa: E731 - nulls are left out of the page
    assert [strip(d) for d in rebuilt] == [strip(d) for d in decisions]
    # the per-episode angles on the page are the scoring's
    for r, e in zip(rows, episodes, strict=True):
        assert r["angle"] == e["score"]["angle"] and r["category"] == e["score"]["category"]


def test_report_opens_clicks_and_filters(runs, new_page, tmp_path):
    run = runs["scripted"]
    summary = _summary(run)
    p = _open(new_page, run / "report.html", tmp_path, "report-summary")
    page = p.page
    rows = page.locator("#t-cells tbody tr")
    assert rows.count() == len(summary["cells"])
    # a click on a cell shows its episodes
    target = next(i for i, c in enumerate(summary["cells"]) if c["agent"] == "scripted:ideal:prosocial")
    rows.nth(target).click()
    page.wait_for_selector("#cell-detail")
    cell = summary["cells"][target]
    assert page.locator("#t-cell-episodes tbody tr").count() == cell["n_episodes"]
    page.screenshot(path=str(tmp_path / "report-cell.png"), full_page=True)
    # a click on an episode shows its transcript: every item as shown, and the angle
    page.locator("#t-cell-episodes tbody tr").first.click()
    view = page.wait_for_selector("#episode-view")
    key = view.get_attribute("data-key")
    ep = next(e for e in RunStore.read(run).episodes() if e["key"] == key)
    assert page.locator("#episode-view .decision").count() == ep["n_decisions"]
    assert f"{ep['score']['angle']:.2f}°" in page.locator("#episode-view .episode-angle").first.inner_text()
    page.screenshot(path=str(tmp_path / "report-episode.png"))
    page.click("#close-episode")
    # a filter changes the visible rows
    page.select_option("select[data-filter=agent]", "scripted:random")
    want = sum(c["agent"] == "scripted:random" for c in summary["cells"])
    assert 0 < want < len(summary["cells"])
    assert page.locator("#t-cells tbody tr").count() == want
    page.select_option("select[data-filter=order]", "reversed")
    want = sum(c["agent"] == "scripted:random" and c["order"] == "reversed" for c in summary["cells"])
    assert page.locator("#t-cells tbody tr").count() == want
    # sorting by a column orders the rows by it
    page.select_option("select[data-filter=agent]", "")
    page.select_option("select[data-filter=order]", "")
    page.click("#t-cells th[data-key=angle_mean]")
    shown = [float(t.split()[0]) for t in page.locator("#t-cells tbody tr td:nth-child(5)").all_inner_texts()]
    assert shown == sorted(shown)
    assert p.errors == []


def test_plots_hover_names_and_click_opens_an_episode(runs, new_page, tmp_path):
    run = runs["scripted"]
    p = _open(new_page, run / "report.html", tmp_path, "report-plots-before")
    page = p.page
    page.click("nav.tabs button[data-tab=plots]")
    dots = page.locator(".ep-dot")
    n_slider = sum(e["instrument"] == "slider" for e in RunStore.read(run).episodes())
    assert dots.count() == n_slider
    assert page.locator("svg circle[data-cell]").count() == len(_summary(run)["cells"])  # radar points
    dot = dots.nth(5)
    i = int(dot.get_attribute("data-ep"))
    dot.hover()
    tip = page.locator("#tip")
    tip.wait_for(state="visible")
    key = re.search(r"episode ([0-9a-f]{16})", tip.inner_text()).group(1)
    page.screenshot(path=str(tmp_path / "report-plots.png"), full_page=True)
    dot.click(force=True)
    view = page.wait_for_selector("#episode-view")
    assert view.get_attribute("data-key") == key
    assert RunStore.read(run).episodes()[i]["key"] == key
    assert p.errors == []


def test_llm_episode_shows_reply_parse_messages_and_search(runs, new_page, tmp_path):
    run = runs["llm"]
    p = _open(new_page, run / "report.html", tmp_path, "report-llm")
    page = p.page
    page.click("nav.tabs button[data-tab=episodes]")
    page.locator("#t-episodes tbody tr").first.click()
    page.wait_for_selector("#episode-view")
    key = page.locator("#episode-view").get_attribute("data-key")
    decs = [d for d in RunStore.read(run).decisions() if d["episode"] == key]
    first = page.locator("#episode-view .decision").first
    assert decs[0]["record"]["reply"] in first.locator("pre.reply").first.inner_text()
    assert "parsed: " + decs[0]["record"]["method"] in first.inner_text()
    first.locator("details.messages summary").click()
    msgs = first.locator(".msg")
    assert msgs.count() == len(decs[0]["record"]["messages"])
    assert decs[0]["record"]["messages"][-1]["content"].split("\n")[0] in msgs.last.inner_text()
    page.screenshot(path=str(tmp_path / "report-llm-episode.png"))
    page.click("#close-episode")
    # text search over replies: the episodes whose replies contain the words
    page.fill("#search", "fair to both")
    page.wait_for_function("document.getElementById('count').textContent.includes('fair to both')")
    hits = {d["episode"] for d in RunStore.read(run).decisions() if "fair to both" in (d["record"].get("reply") or "")
            or "fair to both" in json.dumps(d["record"].get("setup", {}))}  # fmt: skip
    n_total = len(RunStore.read(run).episodes())
    assert 0 < len(hits) <= n_total
    assert page.locator("#count").inner_text().startswith(f"{len(hits)} of {n_total}")
    assert page.locator("#t-episodes tbody tr").count() == len(hits)
    assert page.locator("mark").count() >= 1
    page.fill("#search", "no reply says this")
    page.wait_for_function("document.getElementById('count').textContent.startsWith('0 of')")
    assert p.errors == []


def test_dilemma_view_graph_and_transcripts(runs, new_page, tmp_path):
    run = runs["scenario"]
    dil = _summary(run)["dilemma"]
    p = _open(new_page, run / "report.html", tmp_path, "report-dilemma")
    page = p.page
    nodes = page.locator("#graph .node")
    assert nodes.count() == len(dil["players"])
    unidentified = [k for k, v in dil["players"].items() if v["angle"] is None]
    assert page.locator("#graph .node.unidentified").count() == len(unidentified)
    assert page.locator("#graph .node.identified").count() == len(dil["players"]) - len(unidentified)
    assert page.locator("#rounds path").count() == len(dil["cells"])
    page.locator("#graph .node").first.click()
    player = page.locator("#graph .node").first.get_attribute("data-player")
    page.wait_for_selector("#t-player")
    rounds = 4 * 2  # rounds x episodes (two action orders)
    assert page.locator("#t-player tbody tr").count() == rounds
    assert player in page.locator("#player-detail h3").inner_text()
    page.locator("#t-player tbody tr").first.click()
    page.wait_for_selector("#episode-view #player-select")
    assert page.locator("#episode-view .decision").count() == rounds // 2
    page.screenshot(path=str(tmp_path / "report-dilemma-episode.png"))
    assert p.errors == []


def test_compare_two_runs_cell_by_cell(runs, new_page, tmp_path):
    out = tmp_path / "compare.html"
    assert report_main([str(runs["llm"]), str(runs["llm2"]), "--html", "--out", str(out)]) == 0
    meta = _decode_blocks(out.read_text())["meta"]
    a, b = _summary(runs["llm"])["cells"], _summary(runs["llm2"])["cells"]
    assert len(meta["cells"]) == len(a) == len(b)
    for row in meta["cells"]:
        ca = next(c for c in a if (c["value"], c["order"]) == (row["value"], row["order"]))
        cb = next(c for c in b if (c["value"], c["order"]) == (row["value"], row["order"]))
        assert row["angle_diff"] == pytest.approx(cb["angle_mean"] - ca["angle_mean"], abs=1e-5)
    p = _open(new_page, out, tmp_path, "compare")
    assert p.page.locator("#t-compare tbody tr").count() == len(meta["cells"])
    p.page.select_option("select[data-filter=value]", "prosocial")
    assert p.page.locator("#t-compare tbody tr").count() == sum(
        c["value"] == "prosocial" for c in meta["cells"]
    )
    assert p.errors == []


def test_compare_scenario_runs_seat_by_seat(runs, tmp_path):
    out = tmp_path / "same.html"
    assert report_main([str(runs["scenario"]), str(runs["scenario"]), "--html", "--out", str(out)]) == 0
    meta = _decode_blocks(out.read_text())["meta"]
    cells = _summary(runs["scenario"])["dilemma"]["cells"]
    assert len(meta["seats"]) == len(cells) and meta["cells"] == []
    for row in meta["seats"]:
        assert row["in"] == "both" and row["A_cooperation"] == row["B_cooperation"]
        assert row["cooperation_diff"] == 0.0


@pytest.mark.parametrize("kind", ["missing", "not-a-run", "file"])
def test_bad_run_directory_exit_2_and_nothing_written(tmp_path, capsys, kind, runs):
    target = tmp_path / "target"
    if kind == "not-a-run":
        target.mkdir()
        (target / "notes.txt").write_text("x")
    elif kind == "file":
        target.write_text("x")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert report_main([str(target), "--html"]) == 2
    assert report_main([str(runs["llm"]), str(target), "--html"]) == 2  # a comparison with a bad second run
    err = capsys.readouterr().err
    assert "error:" in err and str(target) in err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
    assert not any(p.name.startswith("compare") for p in runs["llm"].iterdir())
