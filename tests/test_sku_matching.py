"""Product matching (``skuaudit.sku_matching``) on generated packs: closed set, unknown products,
empty galleries, feature blobs."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from skuaudit.datasets.synth import make_catalogue, reference_packs, render_shelf
from skuaudit.detections import PRODUCT
from skuaudit.images import crop_xyxy
from skuaudit.recognition import Recognizer
from skuaudit.sku_matching import (
    UNKNOWN,
    CropFeatures,
    MatchSettings,
    ProductMatcher,
    colour_histogram,
    describe,
    keypoints,
    trim_background,
)

N_PRODUCTS = 8


@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    return Recognizer.load()


@pytest.fixture(scope="module")
def packs():
    """``N_PRODUCTS`` generated products (ids 100, 101, ...): 3 reference facings each, and
    the product crops of 2 generated shelves stocked with them (labels)."""
    catalogue = make_catalogue(N_PRODUCTS, seed=5151)
    rng = np.random.default_rng(3)
    references = reference_packs(catalogue, 3, 56, 110, rng, first_id=100, variants=False)
    index = {name: i for i, name in enumerate(catalogue.names)}
    queries, labels = [], []
    for seed in (11, 12):
        shelf = render_shelf(seed, catalogue=catalogue)
        for box, cls, brand in zip(shelf.boxes_xyxy, shelf.class_ids, shelf.brands, strict=True):
            if cls == PRODUCT:
                queries.append(crop_xyxy(shelf.image_bgr, box))
                labels.append(100 + index[brand])
    return references, queries, np.array(labels)


@pytest.fixture(scope="module")
def matcher(recognizer, packs) -> ProductMatcher:
    references, _, _ = packs
    return ProductMatcher.build(references, embed=recognizer.embed, settings=recognizer.matching)


@pytest.mark.parametrize("fast", [False, True])
def test_closed_set_names_most_facings(matcher, packs, fast):
    _, queries, labels = packs
    found, scores = matcher.match(queries, fast=fast, threshold=0.0)
    assert found.dtype == np.int64 and scores.dtype == np.float32
    assert np.all((scores >= 0) & (scores <= 1))
    assert (found == labels).mean() >= 0.8  # 1 / 8 by chance


def test_products_not_enrolled_come_out_unknown(recognizer, packs):
    references, queries, labels = packs
    enrolled = {100 + b for b in range(N_PRODUCTS // 2)}
    half = ProductMatcher.build(
        [(label, crop) for label, crop in references if label in enrolled],
        embed=recognizer.embed,
        settings=recognizer.matching,
    )
    found, _ = half.match(queries)
    unknown = ~np.isin(labels, list(enrolled))
    called_unknown = found == UNKNOWN
    assert called_unknown[unknown].mean() >= 0.6  # recall of unknown
    assert unknown[called_unknown].mean() >= 0.6  # precision of unknown
    assert set(found[~called_unknown]) <= enrolled


def test_empty_gallery_and_empty_crops(recognizer, matcher):
    empty = ProductMatcher.build([], embed=recognizer.embed)
    labels, scores = empty.match([np.zeros((40, 30, 3), np.uint8)])
    assert labels.tolist() == [UNKNOWN] and scores.tolist() == [0.0]
    labels, scores = matcher.match([])
    assert labels.shape == (0,) and scores.shape == (0,)
    labels, _ = matcher.match([np.zeros((0, 0, 3), np.uint8), np.zeros((3, 2, 3), np.uint8)])
    assert labels.tolist() == [UNKNOWN, UNKNOWN]


def test_feature_blobs_round_trip_and_rebuild_the_same_matcher(recognizer, matcher, packs):
    _, queries, _ = packs
    blob = matcher.features[0].to_bytes()
    again = CropFeatures.from_bytes(blob)
    assert np.array_equal(again.embedding, matcher.features[0].embedding)
    assert np.array_equal(again.colour, matcher.features[0].colour)
    assert np.array_equal(again.descriptors, matcher.features[0].descriptors)
    assert np.allclose(again.points_xy, matcher.features[0].points_xy, atol=0.1)
    assert len(again.descriptors) > 10
    rebuilt = ProductMatcher.build_from_features(
        matcher.labels,
        [f.to_bytes() for f in matcher.features],
        embed=recognizer.embed,
        settings=matcher.settings,
    )
    first, _ = matcher.match(queries[:20])
    second, _ = rebuilt.match(queries[:20])
    assert np.array_equal(first, second)


@pytest.mark.parametrize(
    "blob, message",
    [(b"", "not a skufeat-1"), (b"garbage", "not a skufeat-1"), (b"SKUF1\nbroken", "damaged")],
)
def test_a_damaged_blob_is_refused(blob, message):
    with pytest.raises(ValueError, match=message):
        CropFeatures.from_bytes(blob)


def test_settings_round_trip_and_bad_settings():
    settings = replace(MatchSettings(), shortlist=2, weights=(1.0, 2.0, 3.0, 4.0, 5.0))
    assert MatchSettings.from_dict(settings.to_dict()) == settings
    with pytest.raises(ValueError, match="unknown matching settings: colour"):
        MatchSettings.from_dict({"colour": 1})
    with pytest.raises(ValueError, match="weights need 5 values"):
        MatchSettings(weights=(1.0,))


def test_bad_galleries_are_refused(recognizer):
    crop = np.random.default_rng(0).integers(0, 255, (60, 40, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="label -1 means unknown"):
        ProductMatcher.build([(-1, crop)], embed=recognizer.embed)
    with pytest.raises(ValueError, match="2 labels for 1 references"):
        ProductMatcher([1, 2], describe([crop], recognizer.embed, MatchSettings()))
    no_embedding = ProductMatcher.build([(1, crop)], embed=None)
    query = describe([crop], recognizer.embed, MatchSettings())
    with pytest.raises(ValueError, match="another model"):
        no_embedding.match_features(query)


def test_keypoint_verification_counts_inliers_of_the_same_pack(recognizer, packs):
    references, _, _ = packs
    settings = recognizer.matching
    matcher = ProductMatcher.build(references, embed=recognizer.embed, settings=settings)
    crop = references[0][1]
    # the same pack, seen a little larger and rotated: many inliers with itself, few elsewhere
    h, w = crop.shape[:2]
    rotation = np.array([[1.1, 0.05, -3], [-0.05, 1.1, -2]], np.float32)
    import cv2

    seen = cv2.warpAffine(crop, rotation, (w + 6, h + 10), borderMode=cv2.BORDER_REPLICATE)
    cues = matcher.cues(matcher.describe([seen]))
    own = int(np.flatnonzero(matcher.products == references[0][0])[0])
    assert cues["inliers"][0, own] >= 10
    assert cues["inliers"][0, own] == cues["inliers"][0].max()
    assert cues["inlier_share"][0, own] == 1.0
    assert len(keypoints(np.zeros((2, 2, 3), np.uint8), settings)[0]) == 0


def test_colour_histogram_is_a_unit_vector():
    crop = np.full((50, 30, 3), (0, 0, 255), np.uint8)
    hist = colour_histogram(crop)
    assert np.isclose(np.linalg.norm(hist), 1.0)
    assert hist @ colour_histogram(crop) == pytest.approx(1.0)
    assert hist @ colour_histogram(np.full((50, 30, 3), (255, 0, 0), np.uint8)) < 0.5
    assert not colour_histogram(np.zeros((0, 0, 3), np.uint8)).any()


def test_trim_background_cuts_a_plain_border_only():
    rng = np.random.default_rng(1)
    shot = np.full((200, 200, 3), 255, np.uint8)
    shot[20:190, 70:130] = rng.integers(0, 200, (170, 60, 3), dtype=np.uint8)
    assert trim_background(shot).shape == (170, 60, 3)
    photo = rng.integers(0, 255, (120, 100, 3), dtype=np.uint8)
    assert trim_background(photo) is photo
