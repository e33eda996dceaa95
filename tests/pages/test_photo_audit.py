"""Photo audit page: uploads, camera, review, save; the detector is the generator's ground truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
import streamlit as st
from streamlit.testing.v1 import AppTest

from skuaudit import audit
from skuaudit.datasets.synth import render_shelf
from skuaudit.demo import demo_catalogue
from skuaudit.images import encode_jpeg, encode_png
from skuaudit.recognition import Gallery
from skuaudit.storage import models as m
from skuaudit.storage.db import session_scope
from tests.shelf_fakes import GroundTruthDetector, OracleRecognizer, generated_counts

APP = str(Path(__file__).resolve().parents[2] / "app.py")


@pytest.fixture(scope="module")
def shelf():
    return render_shelf(21, catalogue=demo_catalogue())


def _use_the_generators_answers(monkeypatch, url, shelf, product_ids=None) -> None:
    """The page's models become ``shelf``'s ground truth: its boxes, and the brands (and
    products, given ``product_ids``) of the database at ``url``; the gallery is empty."""
    with session_scope(url) as s:
        ids = {n: i for i, n in s.execute(sa.select(m.Brand.id, m.Brand.name)).all()}
    st.cache_resource.clear()
    monkeypatch.setattr(
        audit,
        "load_models",
        lambda *_a, **_k: (GroundTruthDetector([shelf]), OracleRecognizer(ids, product_ids)),
    )
    monkeypatch.setattr(
        Gallery,
        "from_database",
        classmethod(lambda cls, *_a, **_k: Gallery(np.zeros(0), np.zeros((0, 64)))),
    )


@pytest.fixture
def page(demo_db_url, shelf, monkeypatch):
    _use_the_generators_answers(monkeypatch, demo_db_url, shelf)
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["role"] = "merchandiser"
    return at.switch_page("pages/photo_audit.py").run()


def _open_with_upload(shelf) -> AppTest:
    """The app opened afresh (a first run, then the photo audit page) with ``shelf`` uploaded."""
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["role"] = "merchandiser"
    at.run()
    at.switch_page("pages/photo_audit.py").run()
    at.file_uploader(key="photo_uploads").set_value(
        ("shelf.png", encode_png(shelf.image_bgr), "image/png")
    ).run()
    return at


def _audits(url) -> list[m.Audit]:
    with session_scope(url) as s:
        return s.scalars(sa.select(m.Audit).where(m.Audit.is_demo.is_(False))).all()


@pytest.mark.expected_errors("notes.jpg: not a readable image")
def test_upload_review_and_save(page, shelf, demo_db_url):
    assert not page.exception
    # A photo's limit, not the server's (which takes dataset zips): refused in the browser.
    assert page.file_uploader(key="photo_uploads").proto.max_upload_size_mb == 25
    page.file_uploader(key="photo_uploads").set_value(
        [
            ("shelf.png", encode_png(shelf.image_bgr), "image/png"),
            ("notes.jpg", b"not a photo", "image/jpeg"),
        ]
    ).run()
    assert not page.exception, page.exception
    assert "notes.jpg: not a readable image" in page.error[0].value
    assert page.metric[0].value == str(sum(generated_counts(shelf).values()))
    assert len(page.get("image")) == 1
    brands = page.dataframe[-1]  # the figures per brand, under the photos
    assert dict(zip(brands.value["name"], brands.value["facings"], strict=True)) == {
        **{name: 0 for name in brands.value["name"]},
        **generated_counts(shelf),
    }
    assert brands.proto.column_order[:2] == ["name", "facings"]
    assert "brand_id" not in brands.proto.column_order  # a merchandiser reads names, not ids
    # the sidebar field (AppTest hides the sidebar)
    page.session_state["merchandiser_name"] = " Ana "
    page.button(key="photo_save").click().run()
    saved = _audits(demo_db_url)
    assert len(saved) == 1 and saved[0].source == "photo"
    assert saved[0].user_name == "Ana"  # who saved it, from the sidebar
    assert f"Audit {saved[0].id} saved" in page.success[0].value
    assert page.button(key="photo_save").disabled  # at once, not after the next click
    with session_scope(demo_db_url) as s:
        facings = dict(
            s.execute(
                sa.select(m.Brand.name, m.BrandMetric.facings)
                .join(m.Brand)
                .where(m.BrandMetric.audit_id == saved[0].id, m.BrandMetric.facings > 0)
            ).all()
        )
    assert facings == generated_counts(shelf)
    page.run()  # a rerun must not save twice
    assert len(_audits(demo_db_url)) == 1


@pytest.mark.expected_errors("Nothing was saved")
def test_photo_without_shelf_needs_confirmation(page, demo_db_url):
    blank = encode_png(np.full((240, 320, 3), 200, np.uint8))
    page.file_uploader(key="photo_uploads").set_value(("wall.png", blank, "image/png")).run()
    assert "wall.png: blurred" in page.warning[0].value  # a flat wall has no sharp edges
    page.button(key="photo_analyse_anyway").click().run()
    assert any("No products or gaps were found" in w.value for w in page.warning)
    page.button(key="photo_save").click().run()
    assert "Nothing was saved" in page.error[0].value and not _audits(demo_db_url)
    page.checkbox(key="photo_allow_empty").check().run()
    page.button(key="photo_save").click().run()
    assert len(_audits(demo_db_url)) == 1


@pytest.mark.expected_errors("is too small to show a shelf")
def test_tiny_image_is_refused_not_audited(page):
    dot = encode_png(np.full((1, 1, 3), 200, np.uint8))
    page.file_uploader(key="photo_uploads").set_value(("dot.png", dot, "image/png")).run()
    assert not page.exception, page.exception
    assert "dot.png: 1x1 pixels is too small to show a shelf" in page.error[0].value
    assert not page.metric  # no figures, no stockout list for a non-photo


def test_camera_photo_is_analysed(page):
    page.toggle(key="photo_use_camera").set_value(True).run()
    photo = encode_jpeg(np.full((240, 320, 3), 90, np.uint8))
    page.camera_input(key="photo_camera").set_value(("shot.jpg", photo, "image/jpeg")).run()
    assert not page.exception, page.exception
    page.button(key="photo_analyse_anyway").click().run()
    assert any("No products or gaps were found" in w.value for w in page.warning)


@pytest.mark.expected_errors("model folder not found")
def test_missing_model_is_an_error_not_a_traceback(demo_db_url, shelf, monkeypatch, tmp_path):
    st.cache_resource.clear()
    monkeypatch.setenv("SKUAUDIT_MODEL_DIR", str(tmp_path / "no_model"))
    at = _open_with_upload(shelf)
    assert not at.exception
    assert "model folder not found" in at.error[0].value


def test_products_are_reviewed_counted_and_saved(demo_db_url, monkeypatch):
    """A shelf of demo products: the review table names each facing's product, the figures count
    per product and per brand (their sums), and the saved audit keeps the products."""
    from skuaudit.demo import render_demo_shelf
    from tests.shelf_fakes import product_ids_by_label

    shelf = render_demo_shelf(3, 640, 480)
    products = product_ids_by_label(demo_db_url)
    _use_the_generators_answers(monkeypatch, demo_db_url, shelf, products)
    at = _open_with_upload(shelf)
    assert not at.exception, at.exception
    review = next(d for d in at.dataframe if "detection" in d.value.columns).value
    assert sorted(review["product"]) == sorted(p for p in shelf.products if p)
    per_product = next(d for d in at.dataframe if "label" in d.value.columns).value
    counted = dict(zip(per_product["label"], per_product["facings"], strict=True))
    assert {k: v for k, v in counted.items() if v} == shelf.counts()
    per_brand = at.dataframe[-1].value
    for brand, facings in zip(per_brand["name"], per_brand["facings"], strict=True):
        assert facings == sum(v for k, v in counted.items() if k.startswith(f"{brand} ·"))
    at.button(key="photo_save").click().run()
    (saved,) = _audits(demo_db_url)
    with session_scope(demo_db_url) as s:
        stored = s.execute(
            sa.select(m.Detection.product_id, sa.func.count())
            .where(m.Detection.audit_id == saved.id, m.Detection.class_name == "product")
            .group_by(m.Detection.product_id)
        ).all()
    label_of = {v: k for k, v in products.items()}
    assert {label_of[p]: n for p, n in stored} == shelf.counts()


def test_a_blurred_photo_is_flagged_before_it_is_analysed(page, shelf, demo_db_url):
    import cv2

    blurred = encode_jpeg(cv2.GaussianBlur(shelf.image_bgr, (0, 0), 4))
    page.file_uploader(key="photo_uploads").set_value([("blurry.jpg", blurred, "image/jpeg")]).run()
    assert not page.exception, page.exception
    assert page.warning[0].value.startswith("blurry.jpg: blurred (sharpness")
    assert not page.get("data_editor")  # not analysed yet
    page.button(key="photo_analyse_anyway").click().run()
    assert page.get("data_editor")  # analysed as it is
    assert not [w for w in page.warning if "blurred" in w.value]


def test_the_limit_and_the_store_are_on_the_page(page):
    assert "up to 25 MB each" in page.file_uploader(key="photo_uploads").label
    assert "Store: **Central Superstore**" in " ".join(md.value for md in page.markdown)
