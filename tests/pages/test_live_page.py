"""Live audit page under AppTest: webrtc_streamer replaced, frames fed through the real callback.

AppTest cannot run ``webrtc_streamer`` (it needs Streamlit's session manager), so the stand-in
records its arguments; the test then calls the captured ``video_frame_callback`` with
``av.VideoFrame``s, as streamlit-webrtc's worker thread would.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import av
import numpy as np
import pytest
import streamlit as st
import streamlit_webrtc
from streamlit.testing.v1 import AppTest

from skuaudit import live
from skuaudit.detections import Detections
from tests.pages._apptest import open_page

PAGE = "pages/live_audit.py"


class _FakeDetector:
    """Three products and a gap in tiles (Dense shelf, the page's default); one pass misses the
    third product."""

    model_dir = None

    def __init__(self, config_changes=None):
        self.config_changes = config_changes

    def with_config(self, **changes):
        return _FakeDetector(changes)

    def detect(self, image_bgr, tiled=None):
        assert tiled is not None  # video modes choose one path, never the photo-size rule
        if tiled:
            assert self.config_changes == {
                "flip_classes": [],
                "multiscale_classes": [],
                "class_tile_fractions": {},
            }
        boxes = [[10, 10, 60, 120], [70, 10, 120, 120], [130, 10, 180, 120], [200, 10, 260, 120]]
        classes = [0, 0, 0, 1]
        if not tiled:
            boxes, classes = [*boxes[:2], boxes[3]], [*classes[:2], classes[3]]
        return Detections(boxes, class_id=classes)


class _FakeRecognizer:
    def assign_products(
        self, image_bgr, detections, gallery, threshold=None, *, fast=False, cache=None
    ):  # the live analysers pass their stream's TrackCache
        brands = [gallery[0], gallery[0], -1, -1, gallery[0]][: len(detections)]
        return detections.with_data(
            brand_id=np.array(brands), brand_score=np.full(len(detections), 0.9)
        )


@pytest.fixture
def captured(monkeypatch, demo_db_url):
    """Arguments of the page's webrtc_streamer call; the pipeline uses fake models."""
    from skuaudit.storage.queries import brand_names

    calls: list[dict] = []

    def fake_streamer(**kwargs):
        calls.append(kwargs)
        return SimpleNamespace(state=SimpleNamespace(playing=True, signalling=False))

    names = brand_names(demo_db_url)
    brand_id = min(names)

    def fake_load(cls, url=None, model_dir=None):
        return live.LivePipeline(
            detector=live.VideoDetector(_FakeDetector()),
            dense_detector=live.VideoDetector(_FakeDetector(), dense=True),
            recognizer=_FakeRecognizer(),
            gallery=[brand_id],
            brand_names=names,
            brand_colours={brand_id: (0, 255, 0)},
            model_name="fake",
        )

    # the page caches the pipeline per database URL; each test brings its own
    st.cache_resource.clear()
    monkeypatch.setattr(streamlit_webrtc, "webrtc_streamer", fake_streamer)
    monkeypatch.setattr(live.LivePipeline, "load", classmethod(fake_load))
    return SimpleNamespace(calls=calls, brand=names[brand_id], url=demo_db_url)


def _open_page() -> AppTest:
    return open_page(PAGE)


def _feed(at: AppTest, captured, frames: int) -> None:
    """Send ``frames`` grey camera frames through the page's callback, wait, rerun the page."""
    callback = captured.calls[-1]["video_frame_callback"]
    processor = at.session_state["live_processor"]
    frame = av.VideoFrame.from_ndarray(np.full((480, 640, 3), 90, np.uint8), format="bgr24")
    for i in range(frames):
        callback(frame)
        assert processor.wait_processed(i + 1)
    at.run()


def _status(at: AppTest) -> str:
    return " ".join(md.value for md in at.markdown)


def _brand_counts(at: AppTest) -> dict[str, int]:
    table = at.table[0].value
    return dict(zip(table["brand"], table["facings"], strict=True))


def test_streamer_configuration(captured):
    at = _open_page()
    kwargs = captured.calls[-1]
    assert kwargs["key"] == "live_audit"
    assert kwargs["rtc_configuration"] == {"iceServers": []}
    assert kwargs["media_stream_constraints"]["video"]["facingMode"] == {"ideal": "environment"}
    assert kwargs["async_processing"] is True
    assert at.title[0].value == "Live audit"


def test_frames_counts_and_save(captured):
    at = _open_page()
    callback = captured.calls[-1]["video_frame_callback"]
    frame = av.VideoFrame.from_ndarray(np.full((480, 640, 3), 90, np.uint8), format="bgr24")
    processor = at.session_state["live_processor"]
    for i in range(5):
        out = callback(frame)
        assert (out.width, out.height) == (640, 480)
        assert processor.wait_processed(i + 1)
    time.sleep(0.05)
    at.run()
    assert (
        "Camera **live** · Dense shelf · facings **3** · gaps **1** · processed frames **5**"
        in _status(at)
    )
    assert _brand_counts(at) == {captured.brand: 2, "unknown": 1}
    products = at.table[1].value  # per product; the fake recognizer names brands only
    assert list(zip(products["brand"], products["product"], products["facings"], strict=True)) == [
        (captured.brand, "unknown product", 2),
        ("unknown", "unknown", 1),
    ]

    at.button(key="live_save").click().run()
    assert not at.exception, at.exception
    # what the database holds, with the snapshot's size
    assert at.success[0].value.endswith(
        "saved for Central Superstore: 3 facings, 1 gaps (snapshot 640 x 480)."
    )

    from skuaudit.storage import models as m
    from skuaudit.storage.db import session_scope

    with session_scope(captured.url) as s:
        audit = s.query(m.Audit).filter_by(source="live").one()
        assert (audit.product_count, audit.gap_count, audit.model_name) == (3, 1, "fake")
        assert audit.store.name == "Central Superstore"
        assert [(i.width, i.height) for i in audit.images] == [(640, 480)]


def test_dense_shelf_is_the_default_and_one_pass_counts_afresh(captured):
    at = _open_page()
    assert at.toggle(key="live_dense").value is True  # tiles by default
    _feed(at, captured, 3)
    assert "facings **3**" in _status(at)

    at.toggle(key="live_dense").set_value(False).run()
    assert not at.exception, at.exception
    assert "Camera **live** · one pass · facings" in _status(at)
    # switching starts the counts afresh: nothing from the tiled frames is left
    assert "processed frames **0**" in _status(at)
    _feed(at, captured, 2)
    assert "facings **2** · gaps **1** · processed frames **2**" in _status(at)
    assert _brand_counts(at) == {captured.brand: 2}

    at.toggle(key="live_dense").set_value(True).run()
    _feed(at, captured, 1)
    assert "facings **3** · gaps **1** · processed frames **1**" in _status(at)


@pytest.mark.expected_errors("nothing was detected in the last frames")
def test_saving_an_empty_shelf_asks_first_and_says_why(captured):
    at = _open_page()
    processor = at.session_state["live_processor"]
    processor.set_analyser(lambda frame: Detections.empty().with_data(brand_id=np.zeros(0, int)))
    _feed(at, captured, 1)
    at.button(key="live_save").click().run()
    # the refusal outlives the fragment's next runs (it used to vanish unseen)
    at.run()
    assert "nothing was detected in the last frames" in at.error[0].value
    assert "save an empty shelf anyway" in at.error[0].value  # names the checkbox to tick
    assert not at.success

    at.checkbox(key="live_allow_empty").check().run()
    at.button(key="live_save").click().run()
    assert not at.exception, at.exception
    assert ": 0 facings, 0 gaps" in at.success[0].value
    assert not at.error

    from skuaudit.storage import models as m
    from skuaudit.storage.db import session_scope

    with session_scope(captured.url) as s:
        audit = s.query(m.Audit).filter_by(source="live").one()
        assert (audit.product_count, audit.gap_count) == (0, 0)


def test_save_before_any_frame_is_disabled(captured):
    at = _open_page()
    assert at.button(key="live_save").disabled


@pytest.mark.expected_errors("SKUAUDIT_ICE_SERVERS is not valid JSON")
def test_invalid_ice_servers_show_an_error(captured, monkeypatch):
    monkeypatch.setenv("SKUAUDIT_ICE_SERVERS", "[{not json")
    at = _open_page()
    assert "SKUAUDIT_ICE_SERVERS is not valid JSON" in at.error[0].value
    assert not captured.calls


@pytest.mark.expected_errors("model folder not found")
def test_missing_model_shows_an_error(captured, monkeypatch):
    def broken(cls, url=None, model_dir=None):
        raise live.PipelineLoadError("models/default: model folder not found")

    monkeypatch.setattr(live.LivePipeline, "load", classmethod(broken))
    at = _open_page()
    assert "model folder not found" in at.error[0].value
    assert not captured.calls


@pytest.mark.expected_errors("saved already as audit")
def test_one_save_per_stream_until_new_audit(captured):
    """Two clicks save one audit; 'New audit' starts the next one on the same stream."""
    at = _open_page()
    _feed(at, captured, 3)
    at.button(key="live_save").click().run()
    assert "3 facings, 1 gaps" in at.success[0].value
    assert at.button(key="live_save").disabled  # the fragment's next run
    processor = at.session_state["live_processor"]
    pipeline = live.LivePipeline.load(captured.url)
    with pytest.raises(live.AlreadySavedError, match="saved already as audit"):
        live.save_live_audit(processor, 1, pipeline, url=captured.url)

    at.button(key="live_new_audit").click().run()
    assert "processed frames **0**" in _status(at) and not at.success
    _feed(at, captured, 2)
    assert not at.button(key="live_save").disabled
    at.button(key="live_save").click().run()

    from skuaudit.storage import models as m
    from skuaudit.storage.db import session_scope

    with session_scope(captured.url) as s:
        assert s.query(m.Audit).filter_by(source="live").count() == 2


def test_a_new_brand_reaches_a_running_live_page(captured, monkeypatch):
    """The pipeline is keyed on the catalogue version: a brand added on the Catalogue page is
    loaded at the live page's next run, without a server restart."""
    from skuaudit import catalogue

    loads = []
    load = live.LivePipeline.load.__func__

    def counting_load(cls, url=None, model_dir=None):
        loads.append(url)
        return load(cls, url, model_dir)

    monkeypatch.setattr(live.LivePipeline, "load", classmethod(counting_load))
    at = _open_page()
    at.run()
    assert len(loads) == 1
    processor = at.session_state["live_processor"]
    catalogue.add_brand("Oakly", url=captured.url)
    at.run()
    assert len(loads) == 2
    assert at.session_state["live_processor"] is processor  # the stream keeps its processor


class _BudgetRecognizer(_FakeRecognizer):
    """With the stream's cache the first facing is pending (over the embedding budget); without
    one (what saving asks) every facing is named."""

    def assign_products(
        self, image_bgr, detections, gallery, threshold=None, *, fast=False, cache=None
    ):
        named = super().assign_products(image_bgr, detections, gallery, threshold, fast=fast)
        if cache is None:
            return named
        pending = np.zeros(len(detections), bool)
        pending[0] = True
        brands = np.where(pending, -1, named.data["brand_id"])
        return named.with_data(
            brand_id=brands,
            product_id=np.full(len(detections), -1),
            product_score=np.zeros(len(detections)),
            brand_score=np.zeros(len(detections)),
            pending=pending,
        )


def test_pending_facings_count_apart_and_are_named_when_saved(captured, monkeypatch):
    """A facing the live budget has not embedded yet counts as "pending", not as a brand nor as
    unknown; "Save audit" recognises it first, so the audit stores it named."""
    load = live.LivePipeline.load.__func__

    def budget_load(cls, url=None, model_dir=None):
        pipeline = load(cls, url, model_dir)
        pipeline.recognizer = _BudgetRecognizer()
        return pipeline

    monkeypatch.setattr(live.LivePipeline, "load", classmethod(budget_load))
    at = _open_page()
    processor = at.session_state["live_processor"]
    pipeline = live.LivePipeline.load(captured.url)
    _feed(at, captured, 3)
    assert _brand_counts(at) == {captured.brand: 1, "pending": 1, "unknown": 1}
    live.save_live_audit(processor, 1, pipeline, url=captured.url)

    from skuaudit.storage import models as m
    from skuaudit.storage.db import session_scope

    with session_scope(captured.url) as s:
        audit = s.query(m.Audit).filter_by(source="live").one()
        brands = sorted(
            (d.brand_id or -1)
            for d in s.query(m.Detection).filter_by(audit_id=audit.id)
            if d.class_name == "product"
        )
    assert brands == sorted([-1, *[min(pipeline.gallery)] * 2])
