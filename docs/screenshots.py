"""Make docs/img/report.png and docs/img/play.png with the README's commands (headless Chromium).

    python docs/screenshots.py [--keep DIR] [--img DIR]

Runs, in a temporary folder: the scripted preset with 5 trials and an LLM agent on the fake
backend (`python -m runs.evaluate --preset scripted ...`), `python -m runs.report DIR --html`, then
`python -m runs.play --run-dir DIR --values prosocial --orders fixed`; photographs report.html
(the summary with a cell's episodes open, and an episode) and the play page at its first item.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMG = ROOT / "docs" / "img"


def sh(*argv: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, *argv], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keep", metavar="DIR", help="keep the run folder here")
    ap.add_argument(
        "--img", metavar="DIR", default=str(IMG), help=f"where the PNGs go [{IMG.relative_to(ROOT)}]"
    )
    args = ap.parse_args()
    img = Path(args.img)
    base = Path(args.keep or tempfile.mkdtemp(prefix="shots-"))
    run = base / "study"
    cmds = [
        ["-m", "runs.evaluate", "--preset", "scripted", "--trials", "5", "--run-dir", str(run), "--no-progress",
         "--agents", "scripted:random", "scripted:ideal:prosocial", "scripted:always:0",
         "llm:fake:I would choose C, since it is fair to both of us.|C|A", "--mode", "generate", "--cache", "off"],
        ["-m", "runs.report", str(run), "--html", "--quiet"],
    ]  # fmt: skip
    for c in cmds:
        p = sh(*c)
        _, err = p.communicate()
        if p.returncode:
            raise SystemExit(err)
    from playwright.sync_api import sync_playwright

    chromium = next(shutil.which(c) for c in ("chromium", "chromium-browser") if shutil.which(c))
    img.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        page = b.new_page(viewport={"width": 1440, "height": 1000}, device_scale_factor=1)
        page.goto((run / "report.html").as_uri())
        page.wait_for_selector("body[data-ready='1']")
        page.click("nav.tabs button[data-tab=plots]")
        page.select_option("select[data-filter=agent]", "scripted:random")
        page.locator(".ep-dot").nth(7).click(force=True)
        page.wait_for_selector("#episode-view .decision")
        page.mouse.move(700, 5)  # the tooltip goes
        page.screenshot(path=str(img / "report.png"))
        server = sh(
            "-m",
            "runs.play",
            "--run-dir",
            str(run),
            "--values",
            "prosocial",
            "--orders",
            "fixed",
            "--port",
            "0",
        )
        url = re.search(r"http://127\.0\.0\.1:\d+/", server.stderr.readline()).group(0)
        try:
            page = b.new_page(viewport={"width": 1100, "height": 1000})
            page.goto(url)
            page.fill("#participant", "P017")
            page.check("#consent")
            page.click("#start")
            page.wait_for_selector("#question[data-kind=text]")
            page.fill("#text", "Someone who cares about good outcomes for others as well as for themselves.")
            page.click("#send")
            page.wait_for_selector("#question[data-kind=choice]")
            page.screenshot(path=str(img / "play.png"))
        finally:
            server.send_signal(signal.SIGINT)
            server.communicate(timeout=120)
        b.close()
    print(f"wrote {img / 'report.png'} and {img / 'play.png'}")
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
