"""Page tests run under AppTest, which cannot run ``webrtc_streamer`` (no session manager).

Every page test gets a stand-in that records its arguments; tests that exercise the live path
(tests/pages/test_live_page.py) install their own and call the captured frame callback.

Every run of the app also fails the test on an ``st.error`` it does not expect: a page that
catches a bug and shows it (``ui.user_errors``) must not pass as "no exception". A test that
provokes errors on purpose names them: ``@pytest.mark.expected_errors("pattern", ...)``
(regular expressions searched in each message).
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
import streamlit_webrtc
from streamlit.testing.v1 import AppTest


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "expected_errors(*patterns): st.error messages this page test provokes on purpose",
    )


@pytest.fixture(autouse=True)
def _no_webrtc_in_apptest(monkeypatch):
    def stand_in(**kwargs):
        return SimpleNamespace(state=SimpleNamespace(playing=False, signalling=False))

    monkeypatch.setattr(streamlit_webrtc, "webrtc_streamer", stand_in)


@pytest.fixture(autouse=True)
def _router_mode(monkeypatch):
    """Every run goes through the router (app.py), as on a server after its first request.

    AppTest resets ``PagesManager.uses_pages_directory`` before each run, so with a ``pages/``
    folder each run would start in Streamlit's pages-folder mode, which a server leaves for good
    at its first ``st.navigation`` call (``ui.ensure_routed`` and its browser test cover that
    first request).
    """
    from streamlit.runtime.pages_manager import PagesManager

    original = PagesManager.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init)


@pytest.fixture(autouse=True)
def _fail_on_unexpected_errors(request, monkeypatch):
    marker = request.node.get_closest_marker("expected_errors")
    expected = [re.compile(p) for p in (marker.args if marker else ())]
    original = AppTest._run

    def checked_run(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        unexpected = [e.value for e in self.error if not any(p.search(e.value) for p in expected)]
        if unexpected:
            pytest.fail(f"unexpected st.error on the page: {unexpected}")
        return result

    monkeypatch.setattr(AppTest, "_run", checked_run)
