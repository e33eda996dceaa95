"""Offline audit in headless Chromium: the page loads the TF.js model from the app and reports counts.

The picture comes from the component's test hook (``SKUAUDIT_OFFLINE_TEST_IMAGE``, a data URL of a
generated shelf) instead of the camera; the browser runs the model and sends the counts back.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest

from skuaudit.chromium import CHROMIUM, HEADLESS_FLAGS

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def offline_server(tiny_detector, db_url, tmp_path):
    from skuaudit.datasets.synth import render_shelf
    from skuaudit.model_registry import activate_model_version, register_model_version
    from skuaudit.web import BROWSER_MODELS_DIR, browser_model_key, prepare_browser_model

    if not Path(CHROMIUM).is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is required in CI")
        pytest.skip(f"needs Debian chromium at {CHROMIUM}")
    model_dir = tiny_detector[0]
    activate_model_version(register_model_version(model_dir, {}, url=db_url), db_url)
    try:
        prepare_browser_model(model_dir)
    except RuntimeError as exc:  # OfflineModeError: npm ci not run
        if os.environ.get("CI"):
            raise
        pytest.skip(str(exc))
    ok, jpeg = cv2.imencode(".jpg", render_shelf(seed=11, width=640, height=480).image_bgr)
    env = os.environ.copy()
    env["SKUAUDIT_OFFLINE_TEST_IMAGE"] = (
        "data:image/jpeg;base64," + base64.b64encode(jpeg.tobytes()).decode()
    )
    port = _free_port()
    with open(tmp_path / "server.log", "wb") as log:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                "pages/offline_audit.py",
                "--server.port",
                str(port),
                "--server.address",
                "127.0.0.1",
                "--server.headless",
                "true",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield f"http://127.0.0.1:{port}", tmp_path / "server.log"
    finally:
        server.kill()
        server.wait(timeout=30)
        shutil.rmtree(BROWSER_MODELS_DIR / browser_model_key(model_dir), ignore_errors=True)


def test_browser_runs_model_and_reports_counts(offline_server):
    from playwright.sync_api import sync_playwright

    url, log = offline_server
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=HEADLESS_FLAGS, headless=True)
        try:
            page = browser.new_page()
            deadline = time.monotonic() + 60
            while True:  # the server needs a few seconds to start
                try:
                    page.goto(url, timeout=10_000)
                    break
                except Exception:  # noqa: BLE001 - connection refused until Streamlit listens
                    if time.monotonic() > deadline:
                        raise AssertionError(log.read_text()[-3000:]) from None
                    time.sleep(1)
            reported = page.get_by_text("Counts from the browser")
            reported.wait_for(timeout=150_000)
            text = reported.inner_text()
        finally:
            browser.close()
    assert "products" in text and "gaps" in text
    assert "wasm" in text or "webgl" in text or "cpu" in text
