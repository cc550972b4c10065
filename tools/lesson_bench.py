"""Time each lesson and constraint toggle to its first result, the way a visitor meets it (figures, not a test).

For every case a *fresh* ``streamlit run streamlit_app.py`` is started with an *empty*
cache folder (cold: no embeddings, no index, nothing imported yet) and Debian's
chromium (playwright) opens the Welcome page on MNIST; the clock starts at the click
(Start lesson, or Generate after a toggle) and stops when the first result is on
screen.  The same case is then repeated in a new browser session on the same server
(warm: the server process has the corpus loaded).  Screenshots of each first result
go to ``test-output/lessons/``; the figures are printed as a Markdown table and
written to ``test-output/lessons/times.json``.

Usage: ``PYTHONPATH=. .venv/bin/python tools/lesson_bench.py [--only KEY ...]``.
Needs playwright and /usr/bin/chromium (``./lab.sh test`` installs them) and MNIST.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "test-output" / "lessons"
CHROMIUM = "/usr/bin/chromium"
QUERY = "corpus=mnist&subset=all&encoder=auto&seed=0"

# key: (how to start it, the text that marks its first result on screen)
CASES = {
    "no-locality": ("lesson", "Precomputed (locality off)"),
    "ssd-only": ("lesson", "Precomputed (appearance alone)"),
    "three-ablations": ("lesson", "Precomputed (appearance alone)"),  # the first column
    "trace-pixel": ("lesson", "Constraint funnel"),
    "toggle-loc-off": ("gen_loc", "Precomputed (locality off)"),
    "toggle-ssl-off": ("gen_ssl", "Precomputed (representation off)"),
    "toggle-ssd-off": ("gen_ssd", "Precomputed (appearance off)"),
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _settle(page) -> None:  # noqa: ANN001
    quiet = 0
    while quiet < 4:
        state = page.get_attribute('[data-testid="stApp"]', "data-test-script-state")
        quiet = quiet + 1 if state == "notRunning" else 0
        page.wait_for_timeout(100)


def _visit(browser, url: str, key: str, shot: str) -> float:  # noqa: ANN001
    """Seconds from the click to the case's first result on screen."""
    how, marker = CASES[key]
    ctx = browser.new_context(viewport={"width": 1440, "height": 900})
    page = ctx.new_page()
    page.set_default_timeout(600_000)
    try:
        if how == "lesson":
            page.goto(f"{url}/?{QUERY}")
            page.get_by_role("heading", name="NPS lab", exact=True).wait_for()
            _settle(page)
            button = page.locator(f'.st-key-btn_lesson_{key} button')
        else:
            page.goto(f"{url}/generate?{QUERY}")
            page.get_by_role("heading", name="Generate", exact=True).wait_for()
            _settle(page)
            page.locator(f'.st-key-{how} label').click()  # the toggle
            _settle(page)
            button = page.locator('.st-key-btn_generate button')
        t0 = time.perf_counter()
        button.click()
        page.get_by_text(marker).first.wait_for()
        seconds = time.perf_counter() - t0
        _settle(page)
        page.screenshot(path=str(OUT / f"{shot}.png"), full_page=False)
        return seconds
    finally:
        ctx.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", action="append", choices=sorted(CASES), help="only this case (repeatable)")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright
    OUT.mkdir(parents=True, exist_ok=True)
    rows = []
    load = os.getloadavg()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--headless", "--no-sandbox", "--disable-gpu"])
        for key in args.only or list(CASES):
            port = _free_port()
            url = f"http://127.0.0.1:{port}"
            with tempfile.TemporaryDirectory(prefix="nps-cold-cache-") as cache:
                env = dict(os.environ, NPS_CACHE_DIR=cache, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
                proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "streamlit_app.py"),
                                         "--server.port", str(port), "--server.address", "127.0.0.1",
                                         "--server.headless", "true", "--browser.gatherUsageStats", "false"],
                                        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                try:
                    while True:
                        try:
                            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                                break
                        except OSError:
                            time.sleep(0.3)
                    cold = _visit(browser, url, key, f"{key}-cold")
                    warm = _visit(browser, url, key, f"{key}-warm")
                finally:
                    proc.terminate()
                    proc.wait(timeout=30)
            rows.append({"case": key, "cold_s": round(cold, 2), "warm_s": round(warm, 2)})
            print(f"{key}: cold {cold:.2f} s, warm {warm:.2f} s", flush=True)
        browser.close()
    doc = {"load_average_before": [round(v, 2) for v in load],
           "load_average_after": [round(v, 2) for v in os.getloadavg()], "rows": rows}
    (OUT / "times.json").write_text(json.dumps(doc, indent=2) + "\n")
    print("\n| case | cold (s) | warm (s) |\n|---|---|---|")
    for r in rows:
        print(f"| {r['case']} | {r['cold_s']:.2f} | {r['warm_s']:.2f} |")
    print(f"\nload average {doc['load_average_before']} -> {doc['load_average_after']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
