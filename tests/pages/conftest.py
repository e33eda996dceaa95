"""Page tests run under AppTest, which cannot run ``webrtc_streamer`` (no session manager).

Every page test gets a stand-in that records its arguments; tests that exercise the live path
(tests/pages/test_live_page.py) install their own and call the captured frame callback.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import streamlit_webrtc


@pytest.fixture(autouse=True)
def _no_webrtc_in_apptest(monkeypatch):
    def stand_in(**kwargs):
        return SimpleNamespace(state=SimpleNamespace(playing=False, signalling=False))

    monkeypatch.setattr(streamlit_webrtc, "webrtc_streamer", stand_in)
