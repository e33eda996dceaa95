"""The live path's per-stream embedding cache (``TrackCache``) and the batched colour histograms:
the same answers as the uncached fast path, reuse on repeated and panned frames, misses on boxes
that moved or packs that changed (generated shelves and the shipped model)."""

from __future__ import annotations

import numpy as np
import pytest

from skuaudit.datasets.synth import make_catalogue, render_product, render_shelf
from skuaudit.detections import PRODUCT, Detections
from skuaudit.live import LivePipeline
from skuaudit.recognition import Gallery, Recognizer, TrackCache
from skuaudit.sku_matching import colour_histogram, colour_histograms

PAN_PX = 12


@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    return Recognizer.load()


@pytest.fixture(scope="module")
def scene(recognizer):
    """A gallery of 12 generated brands (3 references each) and a shelf wider than a frame."""
    catalogue = make_catalogue(12, seed=505)
    rng = np.random.default_rng(0)
    references = [
        (b, render_product(brand, brand.families[i % len(brand.families)], 48, 96, rng, variant=i))
        for b, brand in enumerate(catalogue.brands)
        for i in range(3)
    ]
    gallery = Gallery.from_references(references, recognizer)
    shelf = render_shelf(3, 320 + PAN_PX, 240, catalogue=catalogue)
    return gallery, shelf


def _frame(shelf, x: int, width: int = 320) -> tuple[np.ndarray, Detections]:
    """The shelf seen from ``x``: the frame and the product boxes wholly inside it."""
    image = np.ascontiguousarray(shelf.image_bgr[:, x : x + width])
    det = shelf.to_detections()
    boxes = det.xyxy - np.array([x, 0, x, 0], np.float32)
    inside = (det.class_id == PRODUCT) & (boxes[:, 0] >= 0) & (boxes[:, 2] <= width)
    keep = np.flatnonzero(inside)
    return image, Detections(boxes[keep], det.confidence[keep], det.class_id[keep])


def _answers(det: Detections) -> tuple[np.ndarray, np.ndarray]:
    return det.data["product_id"], det.data["product_score"]


@pytest.fixture
def embedded(recognizer, monkeypatch) -> list[int]:
    """Crops embedded per ``Recognizer.embed`` call."""
    calls: list[int] = []
    embed = Recognizer.embed

    def counting(self, crops):
        calls.append(len(crops))
        return embed(self, crops)

    monkeypatch.setattr(Recognizer, "embed", counting)
    return calls


def test_batched_colour_histograms_equal_the_single_ones():
    rng = np.random.default_rng(1)
    crops = [
        rng.integers(0, 256, (int(rng.integers(1, 90)), int(rng.integers(1, 70)), 3), np.uint8)
        for _ in range(40)
    ]
    crops += [np.zeros((0, 4, 3), np.uint8), np.full((9, 5, 3), 255, np.uint8), None]
    single = np.stack([colour_histogram(c) for c in crops])
    batch = colour_histograms(crops)
    assert batch.shape == single.shape and batch.dtype == np.float32
    np.testing.assert_allclose(batch, single, atol=1e-6)
    assert not batch[-1].any() and np.isclose(np.linalg.norm(batch[0]), 1.0)
    assert colour_histograms([]).shape == (0, single.shape[1])


def test_a_cold_cache_gives_the_uncached_answers_and_a_repeated_frame_embeds_nothing(
    recognizer, scene, embedded
):
    gallery, shelf = scene
    image, det = _frame(shelf, 0)
    n = len(det)
    assert n >= 10
    plain = recognizer.assign_products(image, det, gallery, fast=True)
    assert (plain.data["product_id"] >= 0).sum() >= 5  # answers worth comparing
    cache = TrackCache()
    embedded.clear()
    cold = recognizer.assign_products(image, det, gallery, fast=True, cache=cache)
    assert embedded == [n] and (cache.embedded, cache.reused) == (n, 0)
    np.testing.assert_array_equal(_answers(cold)[0], _answers(plain)[0])
    np.testing.assert_allclose(_answers(cold)[1], _answers(plain)[1], atol=1e-6)

    embedded.clear()
    again = recognizer.assign_products(image, det, gallery, fast=True, cache=cache)
    assert embedded == [] and (cache.embedded, cache.reused) == (0, n)
    np.testing.assert_array_equal(_answers(again)[0], _answers(plain)[0])
    np.testing.assert_allclose(_answers(again)[1], _answers(plain)[1], atol=1e-6)


def test_a_camera_pan_reuses_every_box_with_the_uncached_answers(recognizer, scene, embedded):
    gallery, shelf = scene
    cache = TrackCache()
    first, first_det = _frame(shelf, 0)
    recognizer.assign_products(first, first_det, gallery, fast=True, cache=cache)
    image, det = _frame(shelf, PAN_PX)  # the camera moved 12 px: every box moved with it
    embedded.clear()
    panned = recognizer.assign_products(image, det, gallery, fast=True, cache=cache)
    both = int((det.xyxy[:, 2] <= 320 - PAN_PX).sum())  # boxes inside the first frame too
    assert cache.reused == both > 0 and cache.embedded == len(det) - both
    assert sum(embedded) == cache.embedded
    plain = recognizer.assign_products(image, det, gallery, fast=True)
    np.testing.assert_array_equal(_answers(panned)[0], _answers(plain)[0])
    np.testing.assert_allclose(_answers(panned)[1], _answers(plain)[1], atol=1e-6)


def test_moved_boxes_and_changed_packs_are_embedded_again(recognizer, scene, embedded):
    gallery, shelf = scene
    image, det = _frame(shelf, 0)
    cache = TrackCache()
    recognizer.assign_products(image, det, gallery, fast=True, cache=cache)

    moved = det.xyxy.copy()
    widths = moved[:3, 2] - moved[:3, 0]
    moved[:3, [0, 2]] += (0.6 * widths)[:, None]  # three boxes slid by 60 % of their width
    embedded.clear()
    recognizer.assign_products(
        image, Detections(moved, det.confidence, det.class_id), gallery, fast=True, cache=cache
    )
    assert (cache.embedded, cache.reused) == (3, len(det) - 3) and embedded == [3]

    changed = image.copy()
    x1, y1, x2, y2 = det.xyxy[5].astype(int)
    changed[y1:y2, x1:x2] = (255, 0, 255)  # another pack in the same place
    cache = TrackCache()
    recognizer.assign_products(image, det, gallery, fast=True, cache=cache)
    recognizer.assign_products(changed, det, gallery, fast=True, cache=cache)
    assert (cache.embedded, cache.reused) == (1, len(det) - 1)


def test_embeddings_are_refreshed_in_staggered_turns(recognizer, scene):
    gallery, shelf = scene
    image, det = _frame(shelf, 0)
    n, refresh = len(det), 4
    cache = TrackCache(refresh_frames=refresh)
    per_frame = []
    for _ in range(1 + 2 * refresh):
        recognizer.assign_products(image, det, gallery, fast=True, cache=cache)
        per_frame.append(cache.embedded)
    assert per_frame[0] == n
    steady = per_frame[1:]
    # an embedding serves at most `refresh` later frames; on a still scene every box is
    # embedded again within refresh + 1 frames, a share of them at a time
    assert steady[0] == 0 and sum(steady[: refresh + 1]) >= n and max(steady) <= n // 2


def test_another_frame_size_or_model_starts_cold(recognizer, scene):
    gallery, shelf = scene
    image, det = _frame(shelf, 0)
    cache = TrackCache()
    recognizer.assign_products(image, det, gallery, fast=True, cache=cache)
    bigger = np.zeros((image.shape[0] + 10, image.shape[1], 3), np.uint8)
    bigger[: image.shape[0]] = image
    recognizer.assign_products(bigger, det, gallery, fast=True, cache=cache)
    assert cache.reused == 0
    with pytest.raises(ValueError, match="fast"):
        recognizer.assign_products(image, det, gallery, cache=cache)
    with pytest.raises(ValueError, match="refresh_frames"):
        TrackCache(refresh_frames=0)


def test_each_live_analyser_has_its_own_cache(recognizer, scene):
    gallery, _ = scene
    pipeline = LivePipeline(
        detector=None,
        dense_detector=None,
        recognizer=recognizer,
        gallery=gallery,
        brand_names={},
        brand_colours={},
        model_name="test",
    )
    first, second = pipeline.analyser(), pipeline.analyser()
    assert isinstance(first.keywords["cache"], TrackCache)
    assert first.keywords["cache"] is not second.keywords["cache"]
    assert pipeline.analyser(cache=False).keywords["cache"] is None
