"""Offline audit in headless Chromium: the page loads the TF.js model from the app and reports counts.

The picture comes from the component's test hook (``SKUAUDIT_OFFLINE_TEST_IMAGE``, a data URL of a
generated shelf) instead of the camera; the browser runs the model and sends the counts back.
"""

from __future__ import annotations

import base64
import os
import shutil
import sys
from pathlib import Path

import cv2
import pytest

from skuaudit.chromium import CHROMIUM, HEADLESS_FLAGS
from tests.e2e.conftest import streamlit_server

ROOT = Path(__file__).resolve().parents[2]


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
    command = [sys.executable, "-m", "streamlit", "run", "pages/offline_audit.py"]
    try:
        with streamlit_server(command, env, tmp_path / "server.log", ROOT) as base_url:
            yield base_url
    finally:
        shutil.rmtree(BROWSER_MODELS_DIR / browser_model_key(model_dir), ignore_errors=True)


def test_browser_runs_model_and_reports_counts(offline_server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=HEADLESS_FLAGS, headless=True)
        try:
            page = browser.new_page()
            page.goto(offline_server)
            reported = page.get_by_text("Counts from the browser")
            reported.wait_for(timeout=150_000)
            text = reported.inner_text()
        finally:
            browser.close()
    assert "products" in text and "gaps" in text
    assert "wasm" in text or "webgl" in text or "cpu" in text
