"""How big report.html gets and how fast it opens in headless Chromium.

    python bench/bench_report.py                      # default-shaped run + a 50,000-decision run
    python bench/bench_report.py --decisions 10000    # a smaller large run

Both runs are real runs through the runner and the run store, with LLM-shaped records: the LLM
policy on the fake chat backend (`llm:fake:...`, free-text answers, the paper's prompts, every
prompt message and reply recorded), so the page carries what a model run carries. The default-shaped
run is the default preset's grid (4 values x goal on/off x 1 trial x fixed and reversed order =
16 episodes, 96 decisions). The large run repeats that grid over trials until it has the asked
number of decisions (6 per episode).

Measured in Chromium (Debian's package, through Playwright): the time from navigation start until
the page has rendered its summary (body[data-ready]), to draw the plots tab (one dot per episode),
to open the first episode (which decodes the lazily parsed decisions block) and to search all
replies. Each page load is repeated
(--repeats) and the median is printed. The numbers depend on the machine and its load: run it on an
idle machine for figures to quote.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FAKE = "llm:fake:I would choose C, since it keeps things fair for both of us.|C|Option B seems best to me.|D"


def make_run(run_dir: Path, trials: int) -> float:
    """A run of the default preset's grid (fake LLM, generate mode) over `trials`; seconds taken."""
    from runs.evaluate import main as evaluate

    t0 = time.perf_counter()
    rc = evaluate(["--run-dir", str(run_dir), "--agents", FAKE, "--mode", "generate", "--trials", str(trials),
                   "--cache", "off", "--no-progress", "--batch-size", "256"])  # fmt: skip
    if rc != 0:
        raise SystemExit(f"runs.evaluate exited {rc}")
    return time.perf_counter() - t0


def chromium() -> str:
    for c in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser"):
        if c and shutil.which(c):
            return shutil.which(c)
    raise SystemExit("no chromium on PATH (apt-get install -y chromium)")


def measure(path: Path, repeats: int) -> dict[str, float]:
    """Median seconds: page ready, the plots tab drawn (a dot per episode), the first episode open,
    a search over every reply."""
    from playwright.sync_api import sync_playwright

    ready, plots, episode, search = [], [], [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox", "--disable-gpu"])
        for _ in range(repeats):
            page = browser.new_context(viewport={"width": 1360, "height": 900}).new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))  # noqa: B023 - one page per loop
            page.goto(path.resolve().as_uri())
            page.wait_for_selector("body[data-ready='1']", timeout=120_000)
            ready.append(page.evaluate("window.__readyAt") / 1000)
            t0 = time.perf_counter()
            page.click("nav.tabs button[data-tab=plots]")
            page.wait_for_selector(".ep-dot")
            plots.append(time.perf_counter() - t0)
            page.click("nav.tabs button[data-tab=episodes]")
            t0 = time.perf_counter()
            page.locator("#t-episodes tbody tr").first.click()
            page.wait_for_selector("#episode-view .decision")
            episode.append(time.perf_counter() - t0)
            page.click("#close-episode")
            t0 = time.perf_counter()
            page.fill("#search", "fair for both")
            page.wait_for_function(
                "document.getElementById('count').textContent.includes('with')", timeout=120_000
            )
            search.append(time.perf_counter() - t0 - 0.25)  # the box waits 250 ms for typing to stop
            if errors:
                raise SystemExit(f"{path}: page errors: {errors}")
            page.context.close()
        browser.close()
    runs = (("ready", ready), ("plots", plots), ("episode", episode), ("search", search))
    return {k: statistics.median(v) for k, v in runs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--decisions", type=int, default=50_000, help="decisions of the large run [50000]")
    ap.add_argument("--repeats", type=int, default=3, help="page loads per run [3]")
    ap.add_argument("--keep", metavar="DIR", help="keep the runs in DIR (default: a temporary folder)")
    args = ap.parse_args()
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-report-"))
    per_trial = 16 * 6  # the default grid: 16 episodes of 6 decisions
    rows = []
    for name, trials in (("default-shaped", 1), ("large", -(-args.decisions // per_trial))):
        run = base / name
        if not (run / "report.html").is_file():
            secs = make_run(run, trials)
            print(f"{name}: {trials * per_trial} decisions run and reported in {secs:.1f} s", file=sys.stderr)
        size = (run / "report.html").stat().st_size
        t = measure(run / "report.html", args.repeats)
        rows.append((name, trials * 16, trials * per_trial, size, t))
    print(
        f"load: {os.getloadavg()[0]:.1f} (1-minute load average, {os.cpu_count()} CPUs); medians of {args.repeats} loads"
    )
    print(
        "| run | episodes | decisions | report.html | page ready | plots tab | open an episode | search all replies |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, n_ep, n_dec, size, t in rows:
        print(f"| {name} | {n_ep:,} | {n_dec:,} | {size / 1e6:.2f} MB | {t['ready']:.2f} s | {t['plots']:.2f} s "
              f"| {t['episode']:.2f} s | {t['search']:.2f} s |")  # fmt: skip
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
