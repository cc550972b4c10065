"""Time the Streamlit lab the way a visitor meets it (figures, not a test).

Starts ``streamlit run streamlit_app.py`` on a free port with the project's own
``cache/``, drives Debian's chromium through playwright, and prints:

* cold start: process start to the first page's heading on screen;
* a 4x4 full-constraint MNIST grid (encoder auto = shipped SimCLR): the first one
  (semantic index loaded) and a second with another RNG seed (warm resources);
* an ablation column (full model) run, re-run (results cache) and run with a new seed
  (warm indexes);
* the server's peak RSS (VmHWM).

Usage: ``.venv/bin/python tools/app_bench.py [--corpus mnist]``.  Needs the test
extras (playwright, /usr/bin/chromium) that ``./lab.sh test`` installs.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _settle(page) -> None:
    quiet = 0
    while quiet < 4:
        state = page.get_attribute('[data-testid="stApp"]', "data-test-script-state")
        quiet = quiet + 1 if state == "notRunning" else 0
        page.wait_for_timeout(100)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", default="mnist")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "streamlit", "run", str(ROOT / "streamlit_app.py"), "--server.port", str(port),
           "--server.address", "127.0.0.1", "--server.headless", "true"]
    figures: dict[str, float] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                    args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 1500})
        page.set_default_timeout(600_000)
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        try:
            while True:
                try:
                    with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                        break
                except OSError:
                    time.sleep(0.2)
            q = f"?corpus={args.corpus}&subset=all&encoder=auto&seed=0"
            page.goto(f"{url}/welcome{q}")
            page.get_by_role("heading", name="NPS lab", exact=True).wait_for()
            figures["cold start to first page (s)"] = time.perf_counter() - t0

            def grid(seed: int) -> float:
                page.goto(f"{url}/generate?corpus={args.corpus}&subset=all&encoder=auto&seed={seed}")
                page.get_by_role("heading", name="Generate", exact=True).wait_for()
                _settle(page)  # the page's defaults: n = 16, all three constraints
                start = time.perf_counter()
                page.get_by_role("button", name="Generate", exact=True).click()
                page.get_by_text("ms/image").wait_for()
                return time.perf_counter() - start

            figures["4x4 full-model grid, first (s)"] = grid(0)
            figures["4x4 full-model grid, new seed (s)"] = grid(1)

            def column(seed: int) -> float:
                page.goto(f"{url}/ablations?corpus={args.corpus}&subset=all&encoder=auto&seed={seed}")
                page.get_by_role("heading", name="Ablations side by side", exact=True).wait_for()
                _settle(page)  # the page's defaults: 3 columns of 16 samples, the third the full model
                button = page.get_by_role("button", name="Run", exact=True).nth(2)  # column 3: the full model
                start = time.perf_counter()
                button.click()
                page.get_by_text("time per image").first.wait_for()
                _settle(page)
                return time.perf_counter() - start

            figures["ablation column (full model), first run (s)"] = column(2)
            figures["ablation column, re-run (s)"] = column(2)
            figures["ablation column, new seed, warm indexes (s)"] = column(3)
            figures["server peak RSS (MB)"] = _peak_rss_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            browser.close()
    for name, value in figures.items():
        print(f"{name:48s} {value:8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
