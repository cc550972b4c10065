"""End to end in a real browser: Debian's chromium driven by playwright against `streamlit run`.

The server runs as a subprocess on a free localhost port with its own cache folder.
The test opens every page, generates on ``digits``, traces a pixel by clicking the
canvas and by coordinates, downloads the record and checks its provenance, and runs
the ablation columns.  Every request the browser makes must go to the app's own host
(an offline classroom has nothing else), no page shows an absolute server path, and on a
phone-sized window the sidebar folds away after a page switch.  Screenshots go to ``test-output/e2e/``.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
SHOTS = ROOT / "test-output" / "e2e"
BOOT_TIMEOUT = 90
PAGE_TIMEOUT = 120_000  # ms; the first generation imports torch and fits PCA on 2 shared cores

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason=f"no browser: {CHROMIUM} is absent "
                       "(apt-get install chromium to run the end-to-end test)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    """`streamlit run streamlit_app.py` on a free port; yields the base URL."""
    port = _free_port()
    cache = tmp_path_factory.mktemp("e2e-cache")
    log_path = tmp_path_factory.mktemp("e2e-log") / "server.log"
    env = dict(os.environ, NPS_CACHE_DIR=str(cache), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "streamlit", "run", str(ROOT / "streamlit_app.py"), "--server.port", str(port),
           "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + BOOT_TIMEOUT
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"streamlit did not start (exit {proc.poll()}):\n{log_path.read_text()[-3000:]}")
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


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright for Python is not installed")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield b
        b.close()


FOREIGN: list[str] = []  # requests that left the app's host, in this test


def _new_page(browser, server: str, **context):
    """A page in a fresh context that records every request not addressed to ``server``'s host."""
    host = urlparse(server).netloc
    ctx = browser.new_context(**context)
    pg = ctx.new_page()
    pg.set_default_timeout(PAGE_TIMEOUT)

    def check(request) -> None:
        url = urlparse(request.url)
        if url.scheme not in ("data", "blob", "about") and url.netloc != host:
            FOREIGN.append(request.url)

    ctx.on("request", check)  # the context's: every page, worker and download it makes, not only this tab's
    return ctx, pg


@pytest.fixture
def page(browser, server):
    FOREIGN.clear()
    ctx, pg = _new_page(browser, server, viewport={"width": 1400, "height": 1500}, accept_downloads=True)
    yield pg
    ctx.close()


def _settle(page, quiet_polls: int = 4) -> None:
    """Wait until the script run is over: the app reports 'notRunning' on several polls in a row.

    (A run can rerun itself, e.g. the entry guard or a stop, so one 'notRunning' is not enough.)
    """
    deadline = time.monotonic() + PAGE_TIMEOUT / 1000
    quiet = 0
    while quiet < quiet_polls:
        state = page.get_attribute('[data-testid="stApp"]', "data-test-script-state")
        quiet = quiet + 1 if state == "notRunning" else 0
        assert time.monotonic() < deadline, f"the app kept running (state {state})"
        page.wait_for_timeout(250)


def _shot(page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 5000
    return path


#: An absolute server path in the page's text (the app shows only names, e.g. a corpus or cache entry).
SERVER_PATH = re.compile(r"(?<![\w.:/])/(usr|work|home|tmp|root|opt|var|srv|mnt)/")


def _no_errors(page) -> None:
    assert not FOREIGN, f"the browser requested {len(FOREIGN)} URL(s) outside the app's host: {FOREIGN[:5]}"
    shown = SERVER_PATH.search(page.inner_text("body"))
    assert shown is None, f"the page shows a server path: {page.inner_text('body')[max(shown.start() - 80, 0):][:200]}"
    exc = page.locator('[data-testid="stException"]')
    assert exc.count() == 0, f"a page shows an exception: {exc.first.inner_text()[:2000]}"
    assert page.locator('[data-testid="stAlertContentError"]').count() == 0, \
        page.locator('[data-testid="stAlertContentError"]').first.inner_text()


@pytest.mark.slow
def test_lab_in_a_browser(server, page):
    from nps.corpora import load_corpus
    from nps.provenance import check_provenance
    from nps.record import ProvenanceRecord

    if SHOTS.exists():
        shutil.rmtree(SHOTS)
    q = "?corpus=digits&subset=all&encoder=pca&seed=0"
    # Every page renders.
    for path, title in (("", "NPS lab"), ("corpus", "Corpus & encoder"), ("generate", "Generate"),
                        ("ablations", "Ablations side by side"), ("analysis", "Analysis & tracing"),
                        ("complete", "Complete")):
        page.goto(f"{server}/{path}{q}")
        page.get_by_role("heading", name=title, exact=True).wait_for()
        _settle(page)
        _no_errors(page)
        _shot(page, f"page-{path or 'welcome'}")
        assert page.locator('[data-testid="stDialog"]').count() == 0  # e.g. "Page not found"

    # A tiny generation on digits, then download its record and grid.
    page.goto(f"{server}/generate{q}")
    page.get_by_role("heading", name="Generate", exact=True).wait_for()
    _settle(page)
    page.get_by_role("button", name="Generate", exact=True).click()
    page.get_by_text("ms/image").wait_for()
    _settle(page)
    _no_errors(page)
    _shot(page, "generate-result")
    assert "seed=0" in page.url and "corpus=digits" in page.url  # settings mirrored in the URL
    with page.expect_download() as dl:
        page.get_by_role("button", name="Download record (.npz)", exact=True).click()
    saved = Path(dl.value.path())
    rec = ProvenanceRecord.load(saved.rename(saved.with_suffix(".npz")))
    assert rec.images.shape == (16, 8, 8)
    assert check_provenance(rec, load_corpus("digits").train) == 0
    page.get_by_text("ms/image").wait_for()  # the download kept the page state

    # Click a digit in the result grid: it becomes the selected sample (row 1, column 2 of 4x4 -> 6).
    grid = page.locator('[class*="st-key-sel_gen_grid"] [data-testid="stPlotlyChart"] .nsewdrag').first
    grid.scroll_into_view_if_needed()
    gbox = grid.bounding_box()
    assert gbox is not None
    page.mouse.click(gbox["x"] + gbox["width"] * 2.5 / 4, gbox["y"] + gbox["height"] * 1.5 / 4)
    pick = page.get_by_label("sample (row-major in the grid)")
    page.wait_for_function("() => [...document.querySelectorAll('input')].some(i => i.value === '6')",
                           timeout=30_000)
    _settle(page)
    assert pick.input_value() == "6"
    _shot(page, "generate-grid-click")
    pick.fill("0")
    pick.press("Enter")
    _settle(page)

    # Open a sample in Analysis and trace one pixel, by clicking the canvas and by coordinates.
    page.get_by_role("button", name="Open in Analysis", exact=True).click()
    page.get_by_role("heading", name="Analysis & tracing", exact=True).wait_for()
    page.get_by_text("Copied from").first.wait_for()
    _settle(page)
    _no_errors(page)
    assert "corpus=digits" in page.url  # the shared settings survived the page switch
    from app_support.display import stroke_pixel
    sy, sx = stroke_pixel(rec, 0)
    before = page.get_by_text("Pixel (").first.inner_text()
    assert before.startswith(f"Pixel ({sy}, {sx})")  # the default: a stroke pixel, not background
    ty, tx = (1, 6) if (sy, sx) != (1, 6) else (6, 1)  # click a pixel other than the default
    # The overlay canvas (keyed sel_canvas_*), not the sample grid beside the replay.
    plot_area = page.locator('[class*="st-key-sel_canvas"] [data-testid="stPlotlyChart"] .nsewdrag').first
    plot_area.scroll_into_view_if_needed()
    box = plot_area.bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + box["width"] * (tx + 0.5) / 8, box["y"] + box["height"] * (ty + 0.5) / 8)
    page.wait_for_function(f"() => !document.body.innerText.includes('Pixel ({sy}, {sx})')", timeout=30_000)
    _settle(page)
    clicked = page.get_by_text("Pixel (").first.inner_text()
    assert clicked.startswith(f"Pixel ({ty}, {tx})"), clicked
    _shot(page, "analysis-clicked-pixel")
    row = page.get_by_label("pixel row y")
    row.fill("6")
    row.press("Enter")
    _settle(page)
    col = page.get_by_label("pixel column x")
    col.fill("1")
    col.press("Enter")
    page.get_by_text("Pixel (6, 1)").wait_for()
    _settle(page)
    _no_errors(page)
    assert page.get_by_text("provenance is exact, not a similarity guess", exact=False).count() == 1
    _shot(page, "analysis-traced-pixel")

    # The address bar is a permalink: a fresh browser (no session) opens the same record, sample and pixel.
    link = page.url
    assert "rec=gen" in link and "sample=0" in link and "y=6" in link and "x=1" in link
    ctx2, fresh = _new_page(page.context.browser, server, viewport={"width": 1400, "height": 1500})
    try:
        fresh.goto(link)
        fresh.get_by_text("Pixel (6, 1)").first.wait_for()
        _settle(fresh)
        _no_errors(fresh)
        assert fresh.get_by_text("Copied from").count() >= 1
        assert fresh.get_by_text(f"training image #{int(rec.source_index[0, 6, 1])}").count() >= 1  # the same trace
        _shot(fresh, "analysis-permalink-fresh-browser")
    finally:
        ctx2.close()
    page.get_by_text("Candidate windows surviving each constraint").first.scroll_into_view_if_needed()
    page.get_by_text("g: Gaussian weights", exact=False).first.wait_for()
    _shot(page, "analysis-funnel")

    # Replay: back to the start, one step forward.
    page.get_by_role("button", name="Start", exact=True).click()
    page.get_by_text("step 0/64").wait_for()
    page.get_by_role("button", name="Step", exact=True).click()
    page.get_by_text("step 1/64").wait_for()
    page.get_by_role("button", name="Play", exact=True).click()
    page.get_by_text("step 64/64").first.wait_for()
    _settle(page)
    _shot(page, "analysis-replay")

    # The three ablations side by side (classifier scores off to keep the test short).
    page.goto(f"{server}/ablations{q}")
    page.get_by_role("heading", name="Ablations side by side", exact=True).wait_for()
    _settle(page)
    page.get_by_text("Score IS / FID with the corpus classifier").click()
    _settle(page)
    page.get_by_role("button", name="Run all columns", exact=True).click()
    page.get_by_text("image-ID entropy").nth(2).wait_for()
    _settle(page)
    _no_errors(page)
    assert page.get_by_text("class entropy").count() == 3
    _shot(page, "ablations")
    # The metrics table under the grids exports: one CSV row and one Markdown row per column.
    with page.expect_download() as dl:
        page.get_by_role("button", name="Download the table (.csv)", exact=True).click()
    csv_rows = Path(dl.value.path()).read_text().splitlines()
    assert csv_rows[0].startswith("column,record,corpus") and len(csv_rows) == 4, csv_rows
    with page.expect_download() as dl:
        page.get_by_role("button", name="Download the table (.md)", exact=True).click()
    md_rows = Path(dl.value.path()).read_text().splitlines()
    assert md_rows[0].startswith("| column | record") and len(md_rows) == 5, md_rows
    _no_errors(page)  # includes: no request left the app's host during the whole visit


@pytest.mark.slow
def test_phone_layout_folds_the_sidebar_after_navigation(server, browser):
    """A 390 px window (a phone Streamlit does not recognise by its user agent, or a narrow tablet)."""
    FOREIGN.clear()
    ctx, pg = _new_page(browser, server, viewport={"width": 390, "height": 844})
    try:
        pg.goto(f"{server}/?corpus=digits&subset=all&encoder=pca&seed=0")
        pg.get_by_role("heading", name="NPS lab", exact=True).wait_for()
        _settle(pg)
        bar = pg.locator('[data-testid="stSidebar"]')
        assert bar.get_attribute("data-collapsed") == "true"  # starts folded
        assert "pages on the left" not in pg.inner_text("body")  # wording that fits a phone too
        opener = '[data-testid="stExpandSidebarButton"], [data-testid="stSidebarCollapsedControl"] button'
        pg.locator(opener).first.click()
        pg.wait_for_function("() => document.querySelector('[data-testid=\"stSidebar\"]')"
                             ".getAttribute('data-collapsed') === 'false'")
        pg.locator('[data-testid="stSidebarNav"] a', has_text="Generate").click()
        pg.get_by_role("heading", name="Generate", exact=True).wait_for()
        _settle(pg)
        pg.wait_for_function("() => document.querySelector('[data-testid=\"stSidebar\"]')"
                             ".getAttribute('data-collapsed') === 'true'", timeout=10_000)
        _shot(pg, "phone-generate")
        _no_errors(pg)
    finally:
        ctx.close()


@pytest.mark.slow
def test_drawing_on_complete(server, page):
    """Draw a stroke on Complete and fill half of it back (needs the optional drawing component)."""
    import importlib.util
    if importlib.util.find_spec("streamlit_drawable_canvas") is None:  # importing it outside a server fails
        pytest.skip("the optional streamlit-drawable-canvas is not installed")
    page.goto(f"{server}/complete?corpus=digits&subset=all&encoder=pca&seed=0")
    page.get_by_role("heading", name="Complete", exact=True).wait_for()
    _settle(page)
    page.get_by_text("draw", exact=True).click()
    _settle(page)
    canvas = page.locator("canvas").last
    canvas.wait_for()
    box = canvas.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + 40, box["y"] + 40)
    page.mouse.down()
    for i in range(20):  # a diagonal stroke (Fabric drops a perfectly straight vertical path)
        page.mouse.move(box["x"] + 40 + i * 5, box["y"] + 40 + i * 5)
    page.mouse.up()
    page.get_by_text("the image", exact=True).wait_for()
    _settle(page)
    page.get_by_role("button", name="Fill the unknown region").click()
    page.get_by_text("filled pixels tinted blue", exact=False).wait_for()
    _settle(page)
    _no_errors(page)
    _shot(page, "complete-drawing")


@pytest.mark.slow
def test_painting_the_mask_on_complete(server, page):
    """Paint the region to hide over a test image (the second canvas mode) and fill it back."""
    import importlib.util
    if importlib.util.find_spec("streamlit_drawable_canvas") is None:
        pytest.skip("the optional streamlit-drawable-canvas is not installed")
    page.goto(f"{server}/complete?corpus=digits&subset=all&encoder=pca&seed=0")
    page.get_by_role("heading", name="Complete", exact=True).wait_for()
    _settle(page)
    page.locator('[data-testid="stSelectbox"]', has_text="unknown region").click()
    page.get_by_role("option", name="paint it").click()
    page.get_by_text("Nothing painted yet").wait_for()
    canvas = page.locator("canvas").last
    canvas.wait_for()
    box = canvas.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + 10, box["y"] + 10)
    page.mouse.down()
    for i in range(30):  # a thick zig-zag over the top of the digit
        page.mouse.move(box["x"] + 10 + i * 6, box["y"] + 10 + (i % 2) * 30)
    page.mouse.up()
    page.get_by_text("pixels to synthesise", exact=False).wait_for()
    _settle(page)
    page.get_by_role("button", name="Fill the unknown region").click()
    page.get_by_text("filled pixels tinted blue", exact=False).wait_for()
    _settle(page)
    _no_errors(page)
    _shot(page, "complete-painted-mask")


@pytest.mark.slow
def test_lesson_opens_its_precomputed_result_and_times_it(server, page):
    """A lesson on MNIST from this server's empty cache: its first result is the shipped record, timed.

    The time is written to test-output/e2e/lesson-times.txt (a figure, not a limit: the
    assertion only guards against a live run, which takes over a minute for this lesson).
    """
    from nps.corpora import corpus_status
    if not any(s.name == "mnist" and s.available for s in corpus_status()):
        pytest.skip("MNIST is not installed here")
    page.goto(f"{server}/?corpus=mnist&subset=all&encoder=auto&seed=0")
    page.get_by_role("heading", name="NPS lab", exact=True).wait_for()
    _settle(page)
    assert page.get_by_text("Opens a precomputed record at once").count() == 4  # the cards say so before the click
    t0 = time.monotonic()
    page.locator(".st-key-btn_lesson_no-locality button").click()
    page.get_by_text("Precomputed (locality off): shipped with the lab").first.wait_for()
    page.locator(".st-key-sel_gen_grid .main-svg").first.wait_for()
    seconds = time.monotonic() - t0
    _settle(page)
    _no_errors(page)
    assert page.get_by_role("button", name="Re-run live (about").count() == 1
    assert page.get_by_text("Generating 16 samples").count() == 0  # opened, not sampled
    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS / "lesson-times.txt").write_text(f"no-locality lesson, cold server and browser: first result drawn "
                                           f"{seconds:.2f} s after the click (load average {os.getloadavg()[0]:.1f})\n")
    page.get_by_text("Precomputed (locality off): shipped with the lab").first.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "lesson-no-locality.png"))
    assert seconds < 60, f"the lesson took {seconds:.1f} s: it ran live instead of opening its record"
