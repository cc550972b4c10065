"""The step explainer in a real browser: it plays client-side, never blanks, pauses, and steps.

Debian's chromium driven by playwright against `streamlit run` on a free port with its
own cache folder (as tests/test_e2e_browser.py).  Screenshots go to test-output/e2e/.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
SHOTS = ROOT / "test-output" / "e2e"
TIMEOUT_MS = 120_000

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason=f"no browser: {CHROMIUM} is absent"),
]

# The picture row of the figure: a layout image whose href changes each animation frame.
PICTURE_HREF = """(() => { const im = document.querySelector('[data-testid="stPlotlyChart"] .imagelayer image');
                   return im ? (im.getAttribute('href') || '').length : -1 })()"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    cache = tmp_path_factory.mktemp("e2e-explainer-cache")
    log_path = tmp_path_factory.mktemp("e2e-explainer-log") / "server.log"
    env = dict(os.environ, NPS_CACHE_DIR=str(cache), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "streamlit", "run", str(ROOT / "streamlit_app.py"), "--server.port", str(port),
           "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"streamlit did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        text = log_path.read_text(errors="replace")
        assert "Traceback" not in text, f"the server logged a traceback:\n{text[-3000:]}"


#: Visible length (px) of each funnel bar: its right end minus the funnel axis's left edge (bars on a log
#: axis start off the plot, so their own width says nothing). Trace 5 is the funnel (step_figure's order).
FUNNEL_BARS = """(() => { const gd = document.querySelector('[data-testid="stPlotlyChart"] .js-plotly-plot');
  const ax = gd._fullLayout.xaxis3, left = gd.querySelector('.main-svg').getBoundingClientRect().left + ax._offset;
  const bars = [...gd.querySelectorAll('.subplot.x3y3 .bars .point path')];
  return {counts: Array.from(gd._fullData[5].x), px: bars.map(b => b.getBoundingClientRect().right - left)}; })()"""


def _local_only(pg, server: str) -> list[str]:
    """Record every request of ``pg``'s context that is not to the app's own host (an offline classroom)."""
    from urllib.parse import urlparse
    host, foreign = urlparse(server).netloc, []
    pg.context.on("request", lambda r: foreign.append(r.url) if urlparse(r.url).scheme not in (
        "data", "blob", "about") and urlparse(r.url).netloc != host else None)
    return foreign


def test_explainer_plays_in_the_browser(server):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright for Python is not installed")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            pg = b.new_page(viewport={"width": 1440, "height": 900})
            pg.set_default_timeout(TIMEOUT_MS)
            foreign = _local_only(pg, server)
            pg.goto(f"{server}/explainer?corpus=digits")
            pg.get_by_role("button", name="Open preset: Digits, full model (8x8)").click()
            pg.wait_for_selector('[data-testid="stPlotlyChart"] .imagelayer image', state="attached")
            pg.wait_for_timeout(1000)
            chart = pg.get_by_test_id("stPlotlyChart")
            box = chart.bounding_box()
            assert box is not None and box["width"] == pytest.approx(980, abs=2)
            assert box["y"] + 420 < 900, "the picture row must be above the fold"
            pg.screenshot(path=str(SHOTS / "explainer-start.png"))
            bars = pg.evaluate(FUNNEL_BARS)  # every count >= 1 is a drawn bar (a pool of 1 too: log10(1) = 0)
            assert len(bars["px"]) == len(bars["counts"]), bars
            assert all(px >= 5 for c, px in zip(bars["counts"], bars["px"]) if c >= 1), bars
            chart.get_by_text("Play 4×").click()
            seen = []
            for _ in range(30):  # about 3 s at 175 ms a frame
                seen.append(pg.evaluate(PICTURE_HREF))
                pg.wait_for_timeout(100)
            assert min(seen) > 0, f"the picture blanked during play: {seen}"
            assert len(set(seen)) >= 4, f"the animation did not advance: {seen}"
            assert chart.bounding_box()["height"] == box["height"], "the figure changed size during play"
            chart.get_by_text("Pause").click()
            pg.wait_for_timeout(600)
            paused = pg.evaluate(PICTURE_HREF)
            pg.wait_for_timeout(900)
            assert pg.evaluate(PICTURE_HREF) == paused, "Pause did not stop the animation"
            pg.screenshot(path=str(SHOTS / "explainer-paused.png"))
            bars = pg.evaluate(FUNNEL_BARS)  # the paused step's funnel too (its pool is often a single window)
            assert all(px >= 5 for c, px in zip(bars["counts"], bars["px"]) if c >= 1), bars
            before = pg.get_by_text("the figure plays steps").inner_text()
            pg.get_by_role("button", name="Next").click()
            pg.wait_for_function("t => !document.body.innerText.includes(t)", arg=before)
            assert pg.get_by_text("the figure plays steps").inner_text() != before
            assert not foreign, f"the browser requested URLs outside the app's host: {foreign[:5]}"
        finally:
            b.close()


OVERFLOW = "() => document.documentElement.scrollWidth - window.innerWidth"


def test_explainer_fits_a_phone(server):
    """At 390 px: the sidebar folds after navigating here, nothing overflows the page, and the figure plays."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright for Python is not installed")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            pg = b.new_page(viewport={"width": 390, "height": 844})
            pg.set_default_timeout(TIMEOUT_MS)
            foreign = _local_only(pg, server)
            pg.goto(f"{server}/?corpus=digits")
            pg.get_by_role("heading", name="NPS lab", exact=True).wait_for()
            pg.wait_for_timeout(1500)
            opener = '[data-testid="stExpandSidebarButton"], [data-testid="stSidebarCollapsedControl"] button'
            pg.locator(opener).first.click()
            pg.locator('[data-testid="stSidebarNav"] a', has_text="Step explainer").click()
            pg.get_by_role("heading", name="Step explainer", exact=True).wait_for()
            pg.wait_for_function("() => document.querySelector('[data-testid=\"stSidebar\"]')"
                                 ".getAttribute('data-collapsed') === 'true'", timeout=10_000)
            pg.get_by_role("button", name="Open preset: Digits, full model (8x8)").click()
            # The page ticks its "Phone layout" toggle by itself on a narrow screen: the figure is 320 px wide.
            pg.wait_for_function("() => { const s = document.querySelector('[data-testid=\"stPlotlyChart\"] "
                                 ".main-svg'); return s && s.getAttribute('width') === '320'; }")
            pg.wait_for_selector('[data-testid="stPlotlyChart"] .imagelayer image', state="attached")
            pg.wait_for_timeout(1500)
            pg.screenshot(path=str(SHOTS / "explainer-phone.png"), full_page=True)
            assert pg.evaluate(OVERFLOW) <= 0, "the page scrolls sideways on a phone"
            chart = pg.get_by_test_id("stPlotlyChart")
            box = chart.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, box
            assert box["width"] >= 300, f"the figure is too small to read on a phone: {box}"
            svg = pg.locator('[data-testid="stPlotlyChart"] .main-svg').first.bounding_box()
            assert svg["x"] >= 0 and svg["x"] + svg["width"] <= 390, f"the figure is cut off: {svg}"
            titles = pg.locator('[data-testid="stPlotlyChart"] .x2title, [data-testid="stPlotlyChart"] .x3title')
            assert titles.count() == 2  # both charts' axis titles are drawn
            chart.get_by_text("▶ 4×", exact=True).click()
            seen = []
            for _ in range(20):
                seen.append(pg.evaluate(PICTURE_HREF))
                pg.wait_for_timeout(100)
            assert min(seen) > 0 and len(set(seen)) >= 3, f"the animation did not play on a phone: {seen}"
            chart.get_by_text("❚❚ Pause", exact=True).click()
            pg.set_viewport_size({"width": 390, "height": 1500})  # same width, tall enough to paint the whole figure
            pg.wait_for_timeout(500)
            chart.screenshot(path=str(SHOTS / "explainer-phone-figure.png"))
            assert not foreign, f"the browser requested URLs outside the app's host: {foreign[:5]}"
        finally:
            b.close()
