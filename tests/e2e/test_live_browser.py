"""The live audit in a real browser: Chromium's fake camera plays a generated shelf over WebRTC.

One Streamlit server (loopback only, temporary demo database) and one headless Chromium serve the
whole module. The test STARTs the stream 20 times; every START must stream (the server's
processed-frame counter keeps rising), the smoothed facings must match the generator's truth, and
"Save audit" must store them. It also fails on streamlit-webrtc's "not rendered ... resetting stale
state" log line, one of the two races ``skuaudit.compat.install_webrtc_fixes`` removes.

``SKUAUDIT_E2E_WITHOUT_WEBRTC_FIXES=1`` runs the server without those fixes, to measure the races:
the test then lists every START that did not stream.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import pytest

from skuaudit.chromium import HEADLESS_FLAGS
from tests.e2e.conftest import streamlit_server

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
STARTS = 20
RACE_LOG = "was not rendered for"
TOLERANCE = 0.3
STATUS = re.compile(
    r"Camera (live|stopped) · (Dense shelf|one pass) · facings (\d+) · gaps (\d+) · "
    r"processed frames (\d+) · ([\d.]+) fps · "
    r"latency (\d+) ms"
)
IFRAME = 'iframe[title="streamlit_webrtc.component.webrtc_streamer"]'

if CHROMIUM is None:
    pytest.skip(
        "the live browser test needs Debian's chromium (`make system-deps` installs it)",
        allow_module_level=True,
    )

# The server is launched through this snippet instead of `-m streamlit run` to route
# streamlit-webrtc's debug log (where both races announce themselves) to stderr, which Streamlit's
# --logger.level does not cover, and to switch the fixes off on request. It imports no TensorFlow.
LAUNCH = """
import logging, os, sys
if os.environ.get("SKUAUDIT_E2E_WITHOUT_WEBRTC_FIXES") == "1":
    import skuaudit.compat
    skuaudit.compat.install_webrtc_fixes = lambda: None
handler = logging.StreamHandler()
handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
webrtc_log = logging.getLogger("streamlit_webrtc")
webrtc_log.setLevel(logging.DEBUG)
webrtc_log.addHandler(handler)
from streamlit.web.cli import main
sys.argv = ["streamlit", "run", *sys.argv[1:]]
main()
"""


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    """``(base_url, db_url, log_path)`` of a Streamlit server on a fresh demo database."""
    work = tmp_path_factory.mktemp("live_server")
    db_url = f"sqlite:///{work / 'skuaudit.db'}"
    env = {
        **os.environ,
        "SKUAUDIT_DB_URL": db_url,
        "SKUAUDIT_MEDIA_DIR": str(work / "media"),
        "SKUAUDIT_ICE_LOOPBACK_ONLY": "1",
        "SKUAUDIT_ICE_SERVERS": "[]",
        "PYTHONUNBUFFERED": "1",
    }
    bin_dir = Path(sys.executable).parent
    subprocess.run(
        [str(bin_dir / "skuaudit"), "seed-demo"],
        env=env,
        check=True,
        cwd=REPO_ROOT,
        capture_output=True,
    )
    log_path = work / "streamlit.log"
    command = [sys.executable, "-c", LAUNCH, "app.py", "--server.fileWatcherType", "none"]
    command += ["--browser.gatherUsageStats", "false"]
    try:
        with streamlit_server(command, env, log_path, REPO_ROOT) as base_url:
            yield base_url, db_url, log_path
    finally:
        # kept for failures: the server's side of every START (worker creation, resets)
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copy(log_path, ARTIFACTS / "live_server.log")


@pytest.fixture(scope="module")
def browser_page(shelf_video):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                *HEADLESS_FLAGS,
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-video-capture={shelf_video.path}",
            ],
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1100})
            yield page
        finally:
            browser.close()


class Status(NamedTuple):
    """The page's status line."""

    live: bool
    dense: bool
    facings: int
    gaps: int
    processed: int
    fps: float
    latency_ms: int


def _status(page) -> Status | None:
    texts = page.locator("[data-testid='stMarkdownContainer']").all_inner_texts()
    match = STATUS.search("\n".join(texts))
    if match is None:
        return None
    stream, mode, facings, gaps, processed, fps, latency = match.groups()
    return Status(
        stream == "live",
        mode == "Dense shelf",
        int(facings),
        int(gaps),
        int(processed),
        float(fps),
        int(latency),
    )


def _wait_status(page, predicate, timeout_s: float) -> tuple[bool, Status | None]:
    """``(True, status)`` once ``predicate(status)`` holds, ``(False, last status)`` on timeout."""
    deadline = time.monotonic() + timeout_s
    status = None
    while time.monotonic() < deadline:
        status = _status(page)
        if status is not None and predicate(status):
            return True, status
        page.wait_for_timeout(200)
    return False, status


def _stream_once(page, component) -> tuple[Status | None, str]:
    """START, then require a live stream whose processed-frame count rises twice.

    Returns:
        ``(status, "")`` when it streamed, ``(None, why)`` when not.
    """
    component.get_by_role("button", name="START").click()
    component.get_by_role("button", name="STOP").wait_for(timeout=60_000)
    # "live" is drawn by runs after the one in which the server saw the stream start and
    # on_change reset the counter: a count seen with it belongs to this START.
    ok, first = _wait_status(page, lambda s: s.live and s.processed >= 3, 30)
    if not ok:
        return None, f"no frames processed: {first}"
    # Still rising seconds later, past the start-up reruns in which the race resets a stream.
    page.wait_for_timeout(1000)
    ok, second = _wait_status(page, lambda s: s.live and s.processed >= first.processed + 5, 15)
    if not ok:
        return None, f"processed frames stopped rising at {first.processed}: {second}"
    return second, ""


def test_live_audit_in_browser(live_server, browser_page, shelf_video):
    base_url, db_url, log_path = live_server
    page = browser_page
    page.goto(base_url)
    page.get_by_text("merchandiser").first.click()
    page.get_by_role("link", name="Live audit").click()
    page.get_by_role("heading", name="Live audit").wait_for(timeout=120_000)
    component = page.frame_locator(IFRAME)
    # the first page run loads the models: give it time
    component.get_by_role("button", name="START").wait_for(timeout=300_000)

    # Dense shelf (tiles) is the page's default. The STARTs below stream in one pass: the
    # start-up races do not depend on the mode, and one pass leaves the CPU to the browser's
    # encoder (a starved stream is scaled down and blurred); Dense shelf is checked at the end.
    dense_switch = page.get_by_test_id("stCheckbox").filter(has_text="Dense shelf")
    ok, status = _wait_status(page, lambda s: True, 60)
    assert ok and status.dense, f"Dense shelf is not on by default: {status}"
    dense_switch.locator("label").click()
    ok, status = _wait_status(page, lambda s: not s.dense, 30)  # the server switched
    assert ok, f"switching Dense shelf off did not reach the server: {status}"

    truth_low, truth_high = shelf_video.products_min, shelf_video.products_max
    # The shipped detector (learned from real photos, not from generated shelves like this pan)
    # counts such shelves less exactly than real ones, and the browser's frames are re-encoded,
    # so the tolerance is the detector's, not the stream's.
    tolerance = round(TOLERANCE * truth_high)
    failures, retried, facings_seen = [], [], []
    start = component.get_by_role("button", name="START")
    stop = component.get_by_role("button", name="STOP")
    for attempt in range(1, STARTS + 1):
        status, why = _stream_once(page, component)
        if status is None and start.is_visible():
            # The browser gave the connection up before frames flowed and shows START again:
            # seen on a clean clone, when the other test worker exports TF.js beside this test
            # and starves both cores. A person presses START again; so does the test, once. The
            # streamlit-webrtc start-up race is caught apart (its log line, asserted below).
            retried.append(f"START {attempt}: {why}")
            status, why = _stream_once(page, component)
        if status is None:
            failures.append(f"START {attempt}: {why}")
        else:
            facings_seen.append(status.facings)
        if attempt < STARTS:
            if stop.is_visible():
                stop.click()
            start.wait_for(timeout=60_000)
            # The page keeps showing the last finished run's elements; runs cut short by a rerun
            # draw nothing. Waiting for "stopped" makes the next "live" line a new START's.
            _wait_status(page, lambda s: not s.live, 30)

    races = log_path.read_text().count(RACE_LOG)
    assert not failures, (
        f"{len(failures)} of {STARTS} STARTs did not stream, even when pressed again "
        f"({races} race resets): {failures}; pressed again: {retried}"
    )
    assert races == 0, "streamlit-webrtc reset a live stream (start-up race)"
    for facings in facings_seen:
        assert truth_low - tolerance <= facings <= truth_high + tolerance, (
            facings_seen,
            truth_low,
            truth_high,
        )

    # Dense shelf on again, on the same stream: the counts start afresh from tiles of each frame.
    before = _status(page)
    dense_switch.locator("label").click()
    ok, reset = _wait_status(page, lambda s: s.live and s.processed < before.processed, 30)
    assert ok, f"switching to Dense shelf did not restart the counts: {before} -> {reset}"
    ok, dense = _wait_status(page, lambda s: s.live and s.dense and s.processed >= 5, 60)
    assert ok, f"no frames processed in Dense shelf mode: {dense}"
    assert truth_low - tolerance <= dense.facings <= truth_high + tolerance, (dense, truth_high)
    # The page as a merchandiser sees it by default (the README's picture), once the returned
    # video has had time to show frames drawn with the new mode's boxes.
    ARTIFACTS.mkdir(exist_ok=True)
    page.wait_for_timeout(2000)
    page.screenshot(path=str(ARTIFACTS / "live_audit.png"), full_page=True)

    # Save while still streaming: the audit holds the smoothed counts and the snapshot frame.
    shown = _status(page)
    save = page.get_by_role("button", name="Save audit for Central Superstore")
    save.click()
    saved = page.get_by_text(re.compile(r"Audit \d+ saved"))
    saved.wait_for(timeout=60_000)
    message = saved.inner_text()
    audit_id = int(re.search(r"Audit (\d+) saved", message).group(1))
    # One save per stream: the button is disabled at once, and a second click 4 s later (the
    # walkthrough's double save) stores nothing.
    assert save.is_disabled()
    page.wait_for_timeout(4000)
    save.click(force=True)
    page.wait_for_timeout(2000)

    import sqlalchemy as sa

    from skuaudit.storage import models as m
    from skuaudit.storage.db import session_scope

    with session_scope(db_url) as s:
        audit = s.get(m.Audit, audit_id)
        assert audit.source == "live"
        live_audits = s.scalar(
            sa.select(sa.func.count()).select_from(m.Audit).where(m.Audit.source == "live")
        )
        assert live_audits == 1
        # the message reports what the database holds
        assert f": {audit.product_count} facings, {audit.gap_count} gaps" in message
        assert truth_low - tolerance <= audit.product_count <= truth_high + tolerance
        assert abs(audit.product_count - shown.facings) <= tolerance
        images = s.scalars(sa.select(m.AuditImage).where(m.AuditImage.audit_id == audit_id)).all()
        # one snapshot of the camera's 4:3 frames; WebRTC may scale them down when the CPU is busy
        assert len(images) == 1
        assert 160 <= images[0].width <= 640 and images[0].width * 3 == images[0].height * 4
        assert f"(snapshot {images[0].width} x {images[0].height})" in message
        branded = s.scalar(
            sa.select(sa.func.coalesce(sa.func.sum(m.BrandMetric.facings), 0)).where(
                m.BrandMetric.audit_id == audit_id, m.BrandMetric.brand_id.is_not(None)
            )
        )
    # the shelf shows only demo brands, enrolled by seed-demo: most facings must get one
    assert branded >= 0.5 * audit.product_count, (branded, audit.product_count, message)
