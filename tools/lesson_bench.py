"""Time each lesson and constraint toggle to its first result, the way a visitor meets it (figures, not a test).

For every case a *fresh* ``streamlit run streamlit_app.py`` is started with an *empty*
cache folder (cold: no embeddings, no index, nothing imported yet) and Debian's
chromium (playwright) opens the Welcome page on MNIST; once it is drawn (its preset grid
included: ``page_drawn_s`` from the address being opened) the clock starts at the click
(Start lesson, or Generate after a toggle) and stops when the first result is on
screen.  The same case is then repeated in a new browser session on the same server
(warm: the server process has the corpus loaded), and each lesson once more in the
same tab after going back to Welcome (what a class sees from its second lesson on:
the browser has already loaded plotly's script).  Two times per visit: the server's
answer on screen (the result's caption) and the result grid drawn.  Screenshots of each first result
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

SHIPPED = "shipped with the lab and checked"  # only in the caption under a result opened from a shipped record
GEN_GRID = '.st-key-sel_gen_grid .main-svg'  # the Generate page's result grid, drawn
# key: (how to start it, text that marks its first result, a selector that must be drawn too, or None)
CASES = {
    "no-locality": ("lesson", f"Precomputed (locality off): {SHIPPED}", GEN_GRID),
    "ssd-only": ("lesson", f"Precomputed (appearance alone): {SHIPPED}", GEN_GRID),
    "three-ablations": ("lesson", f"Precomputed (appearance alone): {SHIPPED}", None),  # column 1, under its grid
    "multi-scale": ("lesson", f"Precomputed (full model + multi-scale): {SHIPPED}", None),  # column 2
    "trace-pixel": ("lesson", "The pixel was drawn uniformly", None),  # the funnel's SSD rule at the traced pixel
    "toggle-loc-off": ("gen_loc", f"Precomputed (locality off): {SHIPPED}", GEN_GRID),
    "toggle-ssl-off": ("gen_ssl", f"Precomputed (representation off): {SHIPPED}", GEN_GRID),
    "toggle-ssd-off": ("gen_ssd", f"Precomputed (appearance off): {SHIPPED}", GEN_GRID),
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _settle(page) -> None:
    quiet = 0
    while quiet < 4:
        state = page.get_attribute('[data-testid="stApp"]', "data-test-script-state")
        quiet = quiet + 1 if state == "notRunning" else 0
        page.wait_for_timeout(100)


DRAWN = ("() => [...document.querySelectorAll('[data-testid=\"stPlotlyChart\"]')]"
         ".every(c => c.querySelector('.main-svg'))")  # every plotly chart on the page is drawn


def _start(page, url: str, key: str):
    """Open the case's starting page, wait until it is drawn, and return the button whose click starts the clock.

    "Drawn" includes the page's plotly charts (Welcome's preset grid), as a visitor sees the
    page before reading a lesson card; the seconds to that point are ``page_drawn_s``.
    """
    how = CASES[key][0]
    if how == "lesson":
        page.get_by_role("heading", name="NPS lab", exact=True).wait_for()
        _settle(page)
        page.wait_for_function(DRAWN)
        return page.locator(f".st-key-btn_lesson_{key} button")
    page.get_by_role("heading", name="Generate", exact=True).wait_for()
    _settle(page)
    page.locator(f".st-key-{how} label").click()  # the toggle
    _settle(page)
    return page.locator(".st-key-btn_generate button")


def _timed(page, button, key: str) -> tuple[float, float]:
    """(seconds to the server's answer on screen, seconds until its result grid is drawn too)."""
    _, marker, drawn = CASES[key]
    t0 = time.perf_counter()
    button.click()
    page.get_by_text(marker).first.wait_for()
    answered = time.perf_counter() - t0
    if drawn:
        page.locator(drawn).first.wait_for()
    return answered, time.perf_counter() - t0


def _visit(browser, url: str, key: str, shot: str) -> dict:
    """A new browser session: the case's first result, and for a lesson the same lesson again in the same tab."""
    ctx = browser.new_context(viewport={"width": 1440, "height": 900})
    page = ctx.new_page()
    page.set_default_timeout(600_000)
    try:
        t0 = time.perf_counter()
        page.goto(f"{url}/{'' if CASES[key][0] == 'lesson' else 'generate'}?{QUERY}")
        button = _start(page, url, key)
        page_drawn = time.perf_counter() - t0
        answered, drawn = _timed(page, button, key)
        _settle(page)
        page.get_by_text(CASES[key][1]).first.scroll_into_view_if_needed()
        page.screenshot(path=str(OUT / f"{shot}.png"), full_page=False)
        out = {"page_drawn_s": round(page_drawn, 2), "answered_s": round(answered, 2), "drawn_s": round(drawn, 2)}
        if CASES[key][0] == "lesson":  # back to Welcome in the same tab (no reload), start it again
            page.locator('[data-testid="stSidebarNav"] a', has_text="Welcome").click()
            out["same_tab_s"] = round(_timed(page, _start(page, url, key), key)[1], 2)
        return out
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
            rows.append({"case": key, "cold": cold, "warm": warm})
            print(f"{key}: cold {cold}, warm {warm}", flush=True)
        browser.close()
    doc = {"load_average_before": [round(v, 2) for v in load],
           "load_average_after": [round(v, 2) for v in os.getloadavg()], "rows": rows}
    (OUT / "times.json").write_text(json.dumps(doc, indent=2) + "\n")
    print("\n| case | cold: answer / grid drawn (s) | warm: answer / grid drawn (s) | again in the same tab (s) "
          "| first page drawn, cold / warm (s) |")
    print("|---|---|---|---|---|")
    for r in rows:
        c, w = r["cold"], r["warm"]
        again = " / ".join(str(v[k]) for v in (c, w) for k in ("same_tab_s",) if k in v) or "-"
        print(f"| {r['case']} | {c['answered_s']} / {c['drawn_s']} | {w['answered_s']} / {w['drawn_s']} | {again} "
              f"| {c['page_drawn_s']} / {w['page_drawn_s']} |")
    print(f"\nload average {doc['load_average_before']} -> {doc['load_average_after']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
