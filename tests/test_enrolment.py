"""Reference enrolment: duplicates refused, weak references graded, look-alike products listed,
boxes numbered for the visual picker. Packs come from the demo products (generated)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import sqlalchemy as sa

from skuaudit import catalogue, enrolment
from skuaudit.demo import demo_products
from skuaudit.images import encode_jpeg, encode_png
from skuaudit.recognition import Gallery
from skuaudit.storage import models as m
from skuaudit.storage.db import session_scope


def _pack(index: int = 0, height: int = 120, seed: int = 0) -> np.ndarray:
    return demo_products()[index].render(height, np.random.default_rng(seed))


@pytest.fixture
def products(db_url) -> dict[str, int]:
    """Two products of one brand and one of another: ``a``, ``b`` (Kapku cans), ``c``."""
    kapku = catalogue.add_brand("Kapku", url=db_url)
    other = catalogue.add_brand("Dyvi", url=db_url)
    return {
        "a": catalogue.add_product(kapku, "Blue can", url=db_url),
        "b": catalogue.add_product(kapku, "White can", url=db_url),
        "c": catalogue.add_product(other, "Blue box", url=db_url),
    }


def _variants(image: np.ndarray) -> dict[str, bytes | np.ndarray]:
    h, w = image.shape[:2]
    return {
        "same file": encode_png(image),
        "JPEG copy": encode_jpeg(image),
        "half size": cv2.resize(image, (w // 2, h // 2), interpolation=cv2.INTER_AREA),
        "twice the size": cv2.resize(image, (w * 2, h * 2)),
    }


@pytest.mark.parametrize("variant", ["same file", "JPEG copy", "half size", "twice the size"])
def test_a_copy_of_a_reference_is_refused(db_url, products, variant):
    pack = _pack(0)
    first = enrolment.enrol_reference(products["a"], encode_png(pack), url=db_url)
    with pytest.raises(enrolment.DuplicateReferenceError, match=f"#{first} of this product"):
        enrolment.enrol_reference(products["a"], _variants(pack)[variant], url=db_url)
    with pytest.raises(
        enrolment.DuplicateReferenceError, match=f"#{first} of another product, Kapku / Blue can"
    ):
        enrolment.enrol_reference(products["c"], _variants(pack)[variant], url=db_url)


def test_other_shots_and_other_products_are_not_duplicates(db_url, products):
    enrolment.enrol_reference(products["a"], _pack(0, seed=1), url=db_url)
    enrolment.enrol_reference(products["a"], _pack(0, seed=2), url=db_url)  # another shot
    enrolment.enrol_reference(products["b"], _pack(2, seed=1), url=db_url)  # a sibling
    with session_scope(db_url) as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(m.ReferenceImage)) == 3


def test_reference_report_grades_small_blurred_and_duplicates(db_url, products):
    from skuaudit.recognition import Recognizer

    good = enrolment.enrol_reference(products["a"], _pack(0, 120, seed=1), url=db_url)
    small = enrolment.enrol_reference(products["a"], _pack(0, 30, seed=2), url=db_url)
    blurred = enrolment.enrol_reference(
        products["a"], cv2.GaussianBlur(_pack(0, 120, seed=3), (0, 0), 3), url=db_url
    )
    other = enrolment.enrol_reference(products["c"], _pack(15, 120, seed=1), url=db_url)
    # the same picture stored twice (written directly: enrol_reference would refuse it)
    with session_scope(db_url) as s:
        png = s.get(m.ReferenceImage, good).image_png
        copy = m.ReferenceImage(product_id=products["b"], image_png=png)
        s.add(copy)
        s.flush()
        copy = copy.id
    checks = {c.reference_id: c for c in enrolment.reference_report(db_url)}
    assert checks[good].issues == () and not checks[good].is_weak
    assert checks[other].issues == ()
    assert checks[small].issues[0].startswith("small (") and "40 px" in checks[small].issues[0]
    assert checks[blurred].issues[0].startswith("blurred (sharpness")
    assert checks[blurred].sharpness < enrolment.MIN_SHARPNESS < checks[good].sharpness
    assert checks[copy].issues == (f"near-duplicate of #{good} (Kapku / Blue can)",)
    # one product's references only, and one brand's
    assert {
        c.reference_id for c in enrolment.reference_report(db_url, product_id=products["a"])
    } == {
        good,
        small,
        blurred,
    }
    kapku = {c.reference_id for c in enrolment.reference_report(db_url, brand_id=1)}
    assert kapku == {good, small, blurred, copy}
    # a 15 % brighter copy is another picture, but the recognizer cannot tell it apart: once
    # the gallery has embedded it, it is a near-duplicate by its embedding
    brighter = np.clip(_pack(0, 120, seed=1) * 1.15, 0, 255).astype(np.uint8)
    brighter = enrolment.enrol_reference(products["a"], brighter, url=db_url)
    assert enrolment.reference_report(db_url, product_id=products["a"])[-1].issues == ()
    Gallery.from_database(db_url, Recognizer.load())
    checks = {c.reference_id: c for c in enrolment.reference_report(db_url)}
    assert checks[brighter].issues == (f"near-duplicate of #{good} (same product)",)
    assert checks[other].issues == ()


def test_delete_reference(db_url, products):
    ref = enrolment.enrol_reference(products["a"], _pack(0), url=db_url)
    enrolment.delete_reference(ref, db_url)
    assert enrolment.reference_report(db_url) == []
    with pytest.raises(ValueError, match=f"reference image {ref} does not exist"):
        enrolment.delete_reference(ref, db_url)


def _unit(vectors) -> np.ndarray:
    v = np.asarray(vectors, np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.mark.parametrize(
    "product_ids, embeddings, accuracy, first_pair",
    [
        # two products far apart, each with two references close together
        (
            [1, 1, 2, 2],
            [[1, 0, 0], [0.99, 0.1, 0], [0, 1, 0], [0.1, 0.99, 0]],
            1.0,
            ("A", "B", 0, False),
        ),
        # the second reference of product 1 lies next to product 3: one confusion
        (
            [1, 1, 2, 3],
            [[1, 0, 0], [0, 0.1, 1], [0, 1, 0], [0, 0, 1]],
            0.5,
            ("A", "C", 1, True),
        ),
    ],
)
def test_gallery_separation(product_ids, embeddings, accuracy, first_pair):
    brand_ids = [{1: 7, 2: 8, 3: 7}[p] for p in product_ids]  # A and C: one brand
    gallery = Gallery(product_ids, _unit(embeddings), brand_ids=brand_ids)
    result = enrolment.gallery_separation(gallery, {1: "A", 2: "B", 3: "C"})
    assert result.leave_one_out_accuracy == pytest.approx(accuracy)
    top = result.pairs.iloc[0]
    assert (top.product_a, top.product_b, top.confusions, top.same_brand) == first_pair
    assert result.references == len(product_ids)


@pytest.mark.parametrize(
    "product_ids, embeddings",
    [([], np.zeros((0, 3))), ([1, 1], _unit([[1, 0, 0], [0, 1, 0]]))],
)
def test_gallery_separation_needs_two_products(product_ids, embeddings):
    result = enrolment.gallery_separation(Gallery(product_ids, embeddings), {})
    assert result.pairs.empty and result.leave_one_out_accuracy is None


def test_picker_images_number_the_boxes_in_shelf_order(db_url, products):
    from skuaudit import audit
    from skuaudit.detections import Detections
    from skuaudit.storage.queries import brand_colours

    image = np.full((200, 300, 3), 180, np.uint8)
    boxes = [[10, 10, 60, 90], [70, 10, 120, 90], [10, 110, 60, 190]]

    store = catalogue.add_store("Harbour", url=db_url)
    detections = Detections(
        boxes + [[130, 10, 200, 90]],
        class_id=[0, 0, 0, 1],  # the last is a gap: not offered
        data={
            "product_id": np.array([products["a"], -1, -1, -1]),
            "brand_id": np.array([1, 1, -1, -1]),
            "shelf_row": np.array([0, 0, 1, 0]),
        },
    )
    audit_id = audit.save_audit(
        store, [audit.ImageAnalysis(image, detections)], source="photo", url=db_url
    )
    (picked,) = enrolment.picker_images(audit_id, db_url)
    assert picked.labels == ("Kapku · Blue can", "Kapku · unknown product", "unknown")
    assert len(picked.detection_ids) == 3 and picked.image_bgr.shape == image.shape
    # the one drawing of an analysis: the review's boxes and numbers
    (stored,) = audit.stored_analyses(audit_id, db_url)
    assert np.array_equal(picked.image_bgr, audit.draw_analysis(stored, brand_colours(db_url)))
    assert not np.array_equal(picked.image_bgr, image)
    crop = enrolment.detection_crop(picked.detection_ids[2], db_url)
    assert crop.shape[:2] == (80, 50)  # box 3: the one on the lower shelf row
    with pytest.raises(ValueError, match="audit 999 does not exist"):
        enrolment.picker_images(999, db_url)
