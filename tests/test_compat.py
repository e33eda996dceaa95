"""The library patches in skuaudit.compat: version checks, bounded bookkeeping, the tfjs lock."""

from __future__ import annotations

import importlib.util
import sys
import threading

import pytest

from skuaudit import compat


def test_run_counts_of_ended_sessions_are_dropped(monkeypatch):
    """The completed-run table does not grow for ever: sessions that ended are pruned."""
    from streamlit.runtime import Runtime

    class FakeRuntime:
        def is_active_session(self, session_id):
            return session_id.startswith("live")

    monkeypatch.setattr(compat, "_completed_runs", {f"gone-{i}": 3 for i in range(70)})
    monkeypatch.setattr(compat, "_pruned_at", 0)
    compat._completed_runs["live-1"] = 2
    monkeypatch.setattr(Runtime, "exists", classmethod(lambda cls: True))
    monkeypatch.setattr(Runtime, "instance", classmethod(lambda cls: FakeRuntime()))
    compat._prune_ended_sessions()
    assert compat._completed_runs == {"live-1": 2}


def test_version_mismatch_is_logged_once(monkeypatch, caplog):
    monkeypatch.setitem(compat.WRITTEN_FOR, "aioice", "0.0.1")
    monkeypatch.setattr(compat, "_warned", set())
    with caplog.at_level("WARNING", logger="skuaudit.compat"):
        assert not compat.check_version("aioice", "use_loopback_ice_candidates")
        assert not compat.check_version("aioice", "use_loopback_ice_candidates")
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert "use_loopback_ice_candidates was written for aioice 0.0.1" in warnings[0]
    assert compat.check_version("streamlit-webrtc", "install_webrtc_fixes")


def test_tensorflowjs_conversions_take_turns():
    """The stand-in modules and the bias-add patch are process-wide: one conversion at a time,
    and the patch is undone when a conversion ends."""
    if importlib.util.find_spec("tensorflowjs") is None:
        pytest.skip("tensorflowjs is not installed")
    inside, second_entered, release = threading.Event(), threading.Event(), threading.Event()

    def first():
        with compat.tensorflowjs_converter():
            inside.set()
            release.wait(30)

    def second():
        with compat.tensorflowjs_converter():
            second_entered.set()

    a = threading.Thread(target=first)
    a.start()
    assert inside.wait(120)
    b = threading.Thread(target=second)
    b.start()
    assert not second_entered.wait(0.5)  # waits for the first conversion
    release.set()
    a.join(30)
    assert second_entered.wait(30)
    b.join(30)
    from tensorflowjs.converters import normalize_bias_add

    assert normalize_bias_add.normalize_bias_add_op.__name__ == "normalize_bias_add_op"
    for name in compat._TFJS_OPTIONAL_IMPORTS:  # the stand-ins are gone again
        assert sys.modules.get(name) is None or sys.modules[name].__spec__ is not None
