"""Product recognition with the shipped model and matcher, on generated brands it never saw."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import sqlalchemy as sa

from skuaudit.datasets.synth import make_catalogue, render_product, render_shelf
from skuaudit.demo import demo_catalogue
from skuaudit.detections import PRODUCT
from skuaudit.enrolment import enrol_from_detection, enrol_reference
from skuaudit.images import ImageError, crop_xyxy, encode_png
from skuaudit.recognition import Gallery, RecognitionModelError, Recognizer, default_model_dir
from skuaudit.storage import models as m
from skuaudit.storage.db import session_scope

# lowest figures accepted on 20 generated brands no training or fitting saw (the model card
# reports the matcher on real photos; scripts/fit_matching.py prints generated-pack figures)
TOP1_AT_1, TOP1_AT_5, UNKNOWN_RECALL, UNKNOWN_PRECISION = 0.8, 0.9, 0.8, 0.8
HELD_OUT_SEED = 4004  # training used 1001, matcher fitting 2002, the training script's test 3003


@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    return Recognizer.load()


@pytest.fixture(scope="module")
def held_out():
    """20 unseen brands: 5 reference facings each, and product crops from 4 generated shelves."""
    catalogue = make_catalogue(20, HELD_OUT_SEED)
    rng = np.random.default_rng(0)
    refs = []
    for brand in catalogue.brands:
        refs.append(
            [
                render_product(
                    brand, brand.families[i % len(brand.families)], 48, 90, rng, variant=i
                )
                for i in range(5)
            ]
        )
    index = {n: i for i, n in enumerate(catalogue.names)}
    queries, labels = [], []
    for seed in range(4):
        shelf = render_shelf(seed, catalogue=catalogue)
        for box, cls, brand in zip(shelf.boxes_xyxy, shelf.class_ids, shelf.brands, strict=True):
            if cls == PRODUCT:
                queries.append(crop_xyxy(shelf.image_bgr, box))
                labels.append(index[brand])
    return refs, queries, np.array(labels)


def test_shipped_model_is_small_and_documented():
    model_dir = default_model_dir()
    assert (model_dir / "model.keras").stat().st_size < 2 * 1024 * 1024
    assert "top-1" in (model_dir / "MODEL_CARD.md").read_text()
    matching = json.loads((model_dir / "config.json").read_text())["matching"]
    assert 0 < matching["threshold"] < 1 and 0 < matching["fast_threshold"] < 1


def test_embeddings_are_unit_vectors(recognizer):
    crops = [
        np.random.default_rng(i).integers(0, 255, (30 + i, 20 + 2 * i, 3), dtype=np.uint8)
        for i in range(5)
    ]
    emb = recognizer.embed(crops + [np.zeros((0, 0, 3), np.uint8)])
    assert emb.shape == (6, recognizer.embedding_dim) and emb.dtype == np.float32
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-4)
    assert recognizer.embed([]).shape == (0, recognizer.embedding_dim)


@pytest.mark.parametrize("k, expected", [(1, TOP1_AT_1), (5, TOP1_AT_5)])
@pytest.mark.parametrize("fast", [False, True])
def test_top1_on_held_out_brands(recognizer, held_out, k, expected, fast):
    refs, queries, labels = held_out
    gallery = Gallery.from_references(
        [(b, crop) for b, r in enumerate(refs) for crop in r[:k]], recognizer
    )
    found, _ = gallery.match(queries, recognizer, threshold=0.0, fast=fast)
    assert (found == labels).mean() >= expected


@pytest.mark.parametrize("fast", [False, True])
def test_brands_not_enrolled_are_rejected(recognizer, held_out, fast):
    refs, queries, labels = held_out
    enrolled = np.arange(len(refs)) < len(refs) // 2
    gallery = Gallery.from_references(
        [(b, crop) for b, r in enumerate(refs) if enrolled[b] for crop in r], recognizer
    )
    found, scores = gallery.match(queries, recognizer, fast=fast)
    unknown, rejected = ~enrolled[labels], found == -1
    assert (rejected & unknown).sum() / unknown.sum() >= UNKNOWN_RECALL
    assert (rejected & unknown).sum() / rejected.sum() >= UNKNOWN_PRECISION
    assert np.all((scores >= 0) & (scores <= 1))


def test_a_gallery_of_embeddings_only_cannot_match(recognizer, held_out):
    refs, queries, _ = held_out
    gallery = Gallery(np.zeros(2), recognizer.embed(refs[0][:2]))
    with pytest.raises(ValueError, match="embeddings only"):
        gallery.match(queries[:1], recognizer)
    assert (
        Gallery(np.zeros(0), np.zeros((0, 64))).match(queries[:3], recognizer)[0].tolist()
        == [-1] * 3
    )


def test_demo_brands_are_recognised_on_a_generated_shelf(recognizer, demo_db_url):
    gallery = Gallery.from_database(demo_db_url, recognizer)
    with session_scope(demo_db_url) as s:
        names = dict(s.execute(sa.select(m.Brand.id, m.Brand.name)).all())
        assert all(
            (r.features_model, r.embedding_model) == (recognizer.feature_name, recognizer.name)
            for r in s.scalars(sa.select(m.ReferenceImage))
        )
    # every pack type and flavour of the demo brands, enrolled as products or not
    shelf = render_shelf(5, catalogue=demo_catalogue())
    det = recognizer.assign_products(shelf.image_bgr, shelf.to_detections(), gallery)
    products = det.class_id == PRODUCT
    assert np.all(det.data["brand_id"][~products] == -1)
    named = np.array([names.get(int(b), "") for b in det.data["brand_id"]])
    truth = np.array(shelf.brands)
    assert (named[products] == truth[products]).mean() >= 0.85


def test_gallery_describes_once_and_caches(recognizer, demo_db_url, monkeypatch):
    first = Gallery.from_database(demo_db_url, recognizer)
    monkeypatch.setattr(recognizer, "embed", lambda crops: pytest.fail("embedded again"))
    monkeypatch.setattr(recognizer, "describe", lambda crops: pytest.fail("described again"))
    second = Gallery.from_database(demo_db_url, recognizer)
    assert np.array_equal(first.embeddings, second.embeddings) and len(first) == 48
    assert all(
        np.array_equal(a.descriptors, b.descriptors)
        for a, b in zip(first.features, second.features, strict=True)
    )
    assert sum(len(f.descriptors) for f in second.features) > 48 * 10


def test_a_damaged_feature_cache_is_described_again(recognizer, demo_db_url):
    Gallery.from_database(demo_db_url, recognizer)
    with session_scope(demo_db_url) as s:
        ref = s.scalars(sa.select(m.ReferenceImage).limit(1)).one()
        ref_id, ref.features = ref.id, b"damaged"
    gallery = Gallery.from_database(demo_db_url, recognizer)
    with session_scope(demo_db_url) as s:
        assert s.get(m.ReferenceImage, ref_id).features.startswith(b"SKUF1")
    assert len(gallery) == 48


def _product_id(url) -> int:
    with session_scope(url) as s:
        return s.scalar(sa.select(m.Product.id).limit(1))


def _ref_count(url) -> int:
    with session_scope(url) as s:
        return s.scalar(sa.select(sa.func.count()).select_from(m.ReferenceImage))


@pytest.mark.parametrize(
    "image, error, message",
    [
        (encode_png(np.full((80, 50, 3), 128, np.uint8)), ValueError, "blank"),
        (np.full((10, 40, 3), 30, np.uint8), ValueError, "at least 16 pixels"),
        (
            np.random.default_rng(0).integers(0, 255, (20, 400, 3), dtype=np.uint8),
            ValueError,
            "elongated",
        ),
        (b"GIF89a nonsense", ImageError, "not a readable image"),
    ],
)
def test_a_reference_that_is_not_a_product_is_refused(demo_db_url, image, error, message):
    before = _ref_count(demo_db_url)
    with pytest.raises(error, match=message):
        enrol_reference(_product_id(demo_db_url), image, "upload", demo_db_url)
    assert _ref_count(demo_db_url) == before


def test_enrol_reference_and_from_a_past_audit(recognizer, demo_db_url):
    from skuaudit import audit
    from tests.shelf_fakes import GroundTruthDetector, OracleRecognizer

    product_id = _product_id(demo_db_url)
    crop = render_product(
        demo_catalogue().brands[0],
        demo_catalogue().brands[0].families[0],
        40,
        80,
        np.random.default_rng(1),
    )
    ref_id = enrol_reference(
        product_id, encode_png(crop), "upload", demo_db_url, recognizer=recognizer
    )
    with session_scope(demo_db_url) as s:
        ref = s.get(m.ReferenceImage, ref_id)
        assert (ref.features_model, ref.embedding_model) == (
            recognizer.feature_name,
            recognizer.name,
        )
        store_id = s.scalar(sa.select(m.Store.id).limit(1))
    with pytest.raises(ValueError, match="does not exist"):
        enrol_reference(99_999, crop, "upload", demo_db_url)

    shelf = render_shelf(8, catalogue=demo_catalogue())
    analysis = audit.analyse_image(
        shelf.image_bgr,
        GroundTruthDetector([shelf]),
        OracleRecognizer({}),
        Gallery(np.zeros(0), np.zeros((0, 64))),
    )
    audit_id = audit.save_audit(store_id, [analysis], source="photo", url=demo_db_url)
    with session_scope(demo_db_url) as s:
        detection_id = s.scalar(
            sa.select(m.Detection.id).where(
                m.Detection.audit_id == audit_id, m.Detection.class_name == "product"
            )
        )
    before = _ref_count(demo_db_url)
    enrol_from_detection(detection_id, product_id, demo_db_url)
    assert _ref_count(demo_db_url) == before + 1


def test_missing_or_corrupt_model_is_a_clear_error(tmp_path):
    with pytest.raises(RecognitionModelError, match="folder not found"):
        Recognizer.load(tmp_path / "nothing")
    broken = tmp_path / "broken"
    shutil.copytree(default_model_dir(), broken)
    (broken / "model.keras").write_bytes(b"not a keras file")
    with pytest.raises(RecognitionModelError, match="does not load"):
        Recognizer.load(broken)
    (broken / "config.json").write_text("{")
    with pytest.raises(RecognitionModelError, match="corrupt"):
        Recognizer.load(broken)


def test_recognition_folder_follows_its_setting(tmp_path, monkeypatch):
    from skuaudit.recognition import default_model_dir

    shipped = default_model_dir()
    # a models folder of its own (e.g. for trained versions) without a recognition model
    monkeypatch.setenv("SKUAUDIT_MODELS_DIR", str(tmp_path))
    with pytest.raises(RecognitionModelError, match="SKUAUDIT_RECOGNITION_DIR"):
        Recognizer.load()
    monkeypatch.setenv("SKUAUDIT_RECOGNITION_DIR", str(shipped))
    assert default_model_dir() == shipped
    assert Recognizer.load().embed([np.zeros((40, 30, 3), np.uint8)]).shape[0] == 1
