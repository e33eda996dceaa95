"""The pages in a real browser (headless Chromium) on a freshly started server.

- Every page opens from its own address and survives a reload, for each role; a page of
  another role says which role it needs; an analyst page asks for the sign-in and then shows.
- Activating a model that was not compared with the active one asks for a confirmation, and
  the model before is one click away.
- An export downloads as a zip.
- A stores CSV imports from the Catalogue page.

The first request goes to a page address (not the root) on purpose: a fresh server used to run
that page without the router.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from skuaudit.chromium import HEADLESS_FLAGS
from skuaudit.navigation import PAGES, ROLES, pages_for_role, requires_login
from tests.e2e.conftest import streamlit_server

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PASSWORD = "correct horse battery"

if CHROMIUM is None:
    pytest.skip(
        "the browser tests need Debian's chromium (`make system-deps` installs it)",
        allow_module_level=True,
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_detector):
    """``(base_url, db_url, models_dir)``: demo data, an analyst account, a trained version."""
    work = tmp_path_factory.mktemp("pages_server")
    db_url = f"sqlite:///{work / 'skuaudit.db'}"
    env = {
        **os.environ,
        "SKUAUDIT_DB_URL": db_url,
        "SKUAUDIT_MEDIA_DIR": str(work / "media"),
        "SKUAUDIT_MODELS_DIR": str(work / "models"),  # exports go there
        "SKUAUDIT_MODEL_DIR": str(REPO_ROOT / "models" / "default"),
        "SKUAUDIT_RECOGNITION_DIR": str(REPO_ROOT / "models" / "recognition"),
        "PYTHONUNBUFFERED": "1",
    }
    skuaudit = str(Path(sys.executable).parent / "skuaudit")
    subprocess.run([skuaudit, "seed-demo"], env=env, check=True, cwd=REPO_ROOT, capture_output=True)
    subprocess.run(
        [skuaudit, "user", "add", "ann", "--password-stdin"],
        input=f"{PASSWORD}\n",
        text=True,
        env=env,
        check=True,
        cwd=REPO_ROOT,
        capture_output=True,
    )
    from skuaudit.model_registry import register_model_version

    register_model_version(tiny_detector[0], name="tiny", url=db_url)
    command = [sys.executable, "-m", "streamlit", "run", "app.py"]
    with streamlit_server(command, env, work / "streamlit.log", REPO_ROOT) as base_url:
        yield base_url, db_url, work / "models"


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=HEADLESS_FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 1000}, accept_downloads=True)
    try:
        yield context.new_page()
    finally:
        context.close()


def _heading(page, title: str, timeout_ms: int = 180_000) -> None:
    page.get_by_role("heading", name=title, exact=True).wait_for(timeout=timeout_ms)


def _sign_in(page) -> None:
    page.get_by_role("textbox", name="User name").fill("ann")
    page.get_by_role("textbox", name="Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def _url(base: str, spec, role: str) -> str:
    # The default role (the first) is not written in the URL: no role means that one.
    query = "" if role == ROLES[0] else f"?role={role.replace(' ', '+')}"
    return f"{base}/{spec.url_path}{query}"


def test_a_fresh_servers_first_request_for_a_page_goes_through_the_router(server, page):
    base, _, _ = server
    page.goto(f"{base}/stockouts")
    _heading(page, "Stockouts")
    page.get_by_text("Stockouts is a page for the category manager or analyst role").wait_for()
    page.get_by_role("button", name="Switch to the category manager role").click()
    page.get_by_text("To act on", exact=True).wait_for(timeout=120_000)
    assert "role=category+manager" in page.url
    page.reload()
    page.get_by_text("To act on", exact=True).wait_for(timeout=120_000)
    assert page.url.endswith("/stockouts?role=category+manager")


@pytest.mark.parametrize("role", ROLES)
def test_every_page_opens_from_its_address_and_survives_a_reload(server, page, role):
    base, _, _ = server
    for spec in pages_for_role(role):
        page.goto(_url(base, spec, role))
        if requires_login(role):
            _heading(page, "Analyst sign-in")
            page.get_by_text(f"{spec.title} needs an analyst sign-in.").wait_for()
            _sign_in(page)
        _heading(page, spec.title)
        page.reload()  # a new session: the role comes back from the URL
        if requires_login(role):
            _heading(page, "Analyst sign-in")
            _sign_in(page)
        _heading(page, spec.title)
        assert page.url == _url(base, spec, role), page.url
        assert not page.get_by_text("Page not found").count()
        assert not page.get_by_text("went wrong on our side").count()
    others = [p for p in PAGES if role not in p.roles]
    for spec in others:
        page.goto(_url(base, spec, role))
        _heading(page, spec.title)
        page.get_by_text(f"{spec.title} is a page for the").wait_for(timeout=60_000)


def _open_as_analyst(page, base: str, url_path: str, title: str) -> None:
    page.goto(f"{base}/{url_path}?role=analyst")
    _heading(page, "Analyst sign-in")
    _sign_in(page)
    _heading(page, title)


def _choose(page, key: str, option: str) -> None:
    """Pick ``option`` in the selectbox with widget key ``key`` (the page may still be
    rerunning when the box is first clicked, or redraw the open list: try again)."""
    box = page.locator(f".st-key-{key}")
    choice = page.get_by_role("option", name=option, exact=True)
    for _ in range(5):
        box.scroll_into_view_if_needed()
        box.click()
        try:
            choice.wait_for(timeout=5_000)
            choice.click(timeout=5_000)
        except Exception:  # noqa: BLE001 - the list did not open or was redrawn: click again
            page.keyboard.press("Escape")
            continue
        return
    raise AssertionError(f"{option!r} never appeared in {key}")


def _pick_version(page, name: str) -> None:
    page.get_by_role("tab", name="Models").click()
    _choose(page, "lab_version", name)


def test_activation_asks_first_and_the_model_before_is_one_click_away(server, page):
    base, db_url, _ = server
    from skuaudit.model_registry import active_model_dir, use_default_model

    _open_as_analyst(page, base, "model_lab", "Model lab")
    _pick_version(page, "tiny")
    page.get_by_text("tiny has not been evaluated next to the active model").wait_for(
        timeout=60_000
    )
    activate = page.get_by_role("button", name="Activate", exact=True)
    assert activate.is_disabled()
    page.get_by_test_id("stCheckbox").filter(has_text="Activate tiny anyway").locator(
        "label"
    ).click()
    activate.click()
    page.get_by_text("tiny is now the active model").wait_for(timeout=60_000)
    assert active_model_dir(db_url).resolve().name == "tiny"
    page.get_by_role("button", name="Go back to Shipped default model").click()
    page.get_by_text("Shipped default model is the active model again").wait_for(timeout=60_000)
    assert active_model_dir(db_url).resolve() == (REPO_ROOT / "models" / "default").resolve()
    use_default_model(db_url)


def test_an_export_downloads_as_a_zip(server, page):
    base, _, _ = server
    _open_as_analyst(page, base, "model_lab", "Model lab")
    _pick_version(page, "tiny")
    _choose(page, "lab_export_format", "tflite")
    page.get_by_role("button", name="Export", exact=True).click()
    page.get_by_text(re.compile(r"Exported tiny as tflite \(")).wait_for(timeout=300_000)
    with page.expect_download(timeout=60_000) as info:
        page.get_by_role("button", name="Download tflite (zip)").click()
    download = info.value
    assert download.suggested_filename == "tiny-tflite.zip"
    with zipfile.ZipFile(io.BytesIO(Path(download.path()).read_bytes())) as archive:
        names = archive.namelist()
    assert "tiny-tflite/model.tflite" in names and "tiny-tflite/export.json" in names


def test_a_stores_csv_imports_from_the_catalogue_page(server, page, tmp_path):
    base, db_url, _ = server
    from skuaudit.storage.queries import list_stores

    csv_file = tmp_path / "new-stores.csv"
    csv_file.write_text("name;region\nLakeside Corner;East\nHarbour Foods;Coast\n")
    _open_as_analyst(page, base, "catalogue", "Catalogue")
    page.get_by_role("tab", name="Import / export (CSV)").click()
    page.locator(".st-key-csv_stores_0 input[type=file]").set_input_files(str(csv_file))
    page.get_by_role("button", name="Import new-stores.csv").click()
    page.get_by_text("new-stores.csv: stores: 1 added, 1 updated, 0 unchanged.").wait_for(
        timeout=60_000
    )
    regions = {s.name: s.region for s in list_stores(db_url)}
    assert regions["Lakeside Corner"] == "East" and regions["Harbour Foods"] == "Coast"
    # the new store is offered at once in the sidebar
    page.get_by_test_id("stSidebar").get_by_test_id("stSelectbox").filter(has_text="Store").click()
    page.get_by_role("option", name="Lakeside Corner").wait_for()
