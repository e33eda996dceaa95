"""Screenshots of the two dashboards on demo data, for the README.

Seeds a throwaway SQLite database, serves the app on a free loopback port in the "category manager"
role, opens each dashboard from the sidebar with headless Chromium (Debian's, never a downloaded
one) and saves a full-page screenshot of it:

    .venv/bin/python scripts/screenshot_dashboards.py   # -> docs/images/dashboard_*.png
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from PIL import Image

from skuaudit.chromium import CHROMIUM, HEADLESS_FLAGS
from skuaudit.demo import seed_demo

REPO = Path(__file__).resolve().parent.parent
PAGES = {"Share of shelf": "dashboard_share.png", "Stockouts": "dashboard_stockouts.png"}
MAX_BYTES = 400 * 1024
PAGE_TIMEOUT_MS = 240_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(url: str, server: subprocess.Popen, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"streamlit did not answer on {url} within {timeout_s:.0f} s")


def _shrink_png(path: Path) -> None:
    """Quantise to a palette when the PNG is over the README budget (charts have few colours)."""
    if path.stat().st_size <= MAX_BYTES:
        return
    with Image.open(path) as img:
        img.convert("RGB").quantize(colors=128).save(path, optimize=True)


def shoot(out_dir: Path, width_px: int = 1400) -> list[Path]:
    from playwright.sync_api import sync_playwright

    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        db_url = f"sqlite:///{Path(tmp) / 'demo.db'}"
        seed_demo(db_url)
        port = _free_port()
        env = {**os.environ, "SKUAUDIT_DB_URL": db_url}
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                str(REPO / "app.py"),
                "--server.headless=true",
                "--server.address=127.0.0.1",
                f"--server.port={port}",
                "--browser.gatherUsageStats=false",
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_until_up(url, server)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=HEADLESS_FLAGS)
                page = browser.new_page(viewport={"width": width_px, "height": 1000})
                saved = []
                for title, name in PAGES.items():
                    # Each dashboard's own address, in the category manager role (no detector
                    # to load first, as the merchandiser's first page would).
                    path_part = title.lower().replace(" ", "_")
                    page.goto(f"{url}/{path_part}?role=category+manager")
                    page.get_by_role("heading", name=title).wait_for(timeout=PAGE_TIMEOUT_MS)
                    page.set_viewport_size({"width": width_px, "height": 1000})
                    page.locator(".js-plotly-plot").first.wait_for(timeout=PAGE_TIMEOUT_MS)
                    page.wait_for_timeout(2500)  # let plotly finish drawing every chart
                    # The main area scrolls inside the page: grow the window to all of it.
                    height_px = page.evaluate(
                        "document.querySelector('[data-testid=stMain]').scrollHeight"
                    )
                    page.set_viewport_size({"width": width_px, "height": int(height_px)})
                    page.wait_for_timeout(1500)
                    path = out_dir / name
                    page.screenshot(path=str(path), full_page=True)
                    _shrink_png(path)
                    saved.append(path)
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
    return saved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images")
    args = parser.parse_args(argv)
    for path in shoot(args.out):
        print(
            f"{path.relative_to(REPO) if path.is_relative_to(REPO) else path}: "
            f"{path.stat().st_size / 1024:.0f} KiB"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
