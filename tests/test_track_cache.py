"""The live path's per-stream embedding cache (``TrackCache``) and the batched colour histograms:
the same answers as the uncached fast path, reuse on repeated and panned frames, misses on boxes
that moved or packs that changed, the per-frame embedding budget and its pending facings
(generated shelves and the shipped model)."""

from __future__ import annotations

import numpy as np
import pytest

from skuaudit.datasets.synth import make_catalogue, reference_packs, render_shelf
from skuaudit.detections import PRODUCT, Detections
from skuaudit.live import LivePipeline, count_by_brand, count_by_product, smooth_counts
from skuaudit.metrics import ProductInfo
from skuaudit.recognition import DEFAULT_EMBED_BUDGET, Gallery, Recognizer, TrackCache
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
    references = reference_packs(catalogue, 3, 48, 96, rng)
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
    cache = TrackCache(budget=None)
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
    cache = TrackCache(budget=None)  # every box embedded when needed
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
    cache = TrackCache(budget=None)  # every box embedded when needed
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
    cache = TrackCache(budget=None)  # every box embedded when needed
    recognizer.assign_products(image, det, gallery, fast=True, cache=cache)
    recognizer.assign_products(changed, det, gallery, fast=True, cache=cache)
    assert (cache.embedded, cache.reused) == (1, len(det) - 1)


def test_embeddings_are_refreshed_in_staggered_turns(recognizer, scene):
    gallery, shelf = scene
    image, det = _frame(shelf, 0)
    n, refresh = len(det), 4
    cache = TrackCache(refresh_frames=refresh, budget=None)
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
    cache = TrackCache(budget=None)  # every box embedded when needed
    recognizer.assign_products(image, det, gallery, fast=True, cache=cache)
    bigger = np.zeros((image.shape[0] + 10, image.shape[1], 3), np.uint8)
    bigger[: image.shape[0]] = image
    recognizer.assign_products(bigger, det, gallery, fast=True, cache=cache)
    assert cache.reused == 0
    with pytest.raises(ValueError, match="fast"):
        recognizer.assign_products(image, det, gallery, cache=cache)
    with pytest.raises(ValueError, match="refresh_frames"):
        TrackCache(refresh_frames=0)
    with pytest.raises(ValueError, match="budget"):
        TrackCache(budget=0)


def _recognition_only_pipeline(recognizer, gallery) -> LivePipeline:
    """A live pipeline with the real recognizer and no detector (the tests give the boxes)."""
    return LivePipeline(
        detector=None,
        dense_detector=None,
        recognizer=recognizer,
        gallery=gallery,
        brand_names={},
        brand_colours={},
        model_name="test",
    )


def test_each_live_analyser_has_its_own_cache(recognizer, scene):
    gallery, _ = scene
    pipeline = _recognition_only_pipeline(recognizer, gallery)
    first, second = pipeline.analyser(), pipeline.analyser()
    assert isinstance(first.keywords["cache"], TrackCache)
    assert first.keywords["cache"] is not second.keywords["cache"]
    assert pipeline.analyser(cache=False).keywords["cache"] is None


@pytest.fixture(scope="module")
def dense_frame(scene):
    """A 640x480 frame of a 4-row generated shelf: 93 facings, more than the budget."""
    gallery, _ = scene
    shelf = render_shelf(19, 640, 480, catalogue=make_catalogue(12, seed=505))  # 94 facings
    det = shelf.to_detections()
    return shelf.image_bgr, det[np.flatnonzero(det.class_id == PRODUCT)[:93]]


def test_a_cold_dense_frame_embeds_the_budget_and_names_every_facing_in_turns(
    recognizer, scene, dense_frame, embedded
):
    gallery, _ = scene
    image, det = dense_frame
    n, budget = len(det), DEFAULT_EMBED_BUDGET
    assert n == 93 > budget
    plain = recognizer.assign_products(image, det, gallery, fast=True)
    assert (plain.data["product_id"] >= 0).sum() >= 20  # answers worth comparing
    cache = TrackCache()
    embedded.clear()
    frames = []
    for _ in range(-(-n // budget)):
        frames.append(recognizer.assign_products(image, det, gallery, fast=True, cache=cache))
    # never more than the budget a frame (the last one spends what is left on refreshes)
    assert embedded[0] == budget and max(embedded) == budget and len(embedded) == len(frames)
    pending = [int(f.data["pending"].sum()) for f in frames]
    assert pending == [max(n - budget * (i + 1), 0) for i in range(len(frames))]
    first = frames[0]
    waiting = first.data["pending"]
    # pending facings are neither a product nor a brand, and not counted as one
    assert (first.data["product_id"][waiting] == -1).all()
    assert (first.data["brand_id"][waiting] == -1).all()
    assert (first.data["product_score"][waiting] == 0).all()
    # the budget goes to the facings nearest the frame's centre first
    centres = (det.xyxy[:, :2] + det.xyxy[:, 2:]) / 2
    distance = np.linalg.norm(centres - [320, 240], axis=1)
    assert distance[~waiting].max() <= distance[waiting].min()
    # the named ones got the uncached answer; after ceil(n / budget) frames all of them did
    np.testing.assert_array_equal(
        first.data["product_id"][~waiting], plain.data["product_id"][~waiting]
    )
    np.testing.assert_array_equal(_answers(frames[-1])[0], _answers(plain)[0])
    np.testing.assert_allclose(_answers(frames[-1])[1], _answers(plain)[1], atol=1e-6)

    brands = {b: f"brand {b}" for b in range(12)}
    products = {b: ProductInfo(b, f"product {b}") for b in range(12)}
    counts = count_by_brand(first, brands)
    assert counts["pending"] == pending[0] and sum(counts.values()) == n
    for name, k in count_by_brand(plain, brands).items():  # no brand gains a pending facing
        assert counts.get(name, 0) <= k
    # smoothed over the live window, the counts become the uncached ones within a few frames
    uncached = count_by_product(plain, brands, products)
    history = [count_by_product(f, brands, products) for f in frames]
    for _ in range(len(frames) - 1):
        history.append(
            count_by_product(
                recognizer.assign_products(image, det, gallery, fast=True, cache=cache),
                brands,
                products,
            )
        )
    assert smooth_counts(history) == uncached


def test_new_facings_are_not_starved_by_refreshes(recognizer, scene, dense_frame):
    gallery, _ = scene
    image, det = dense_frame
    n, budget = len(det), 10
    cache = TrackCache(budget=budget, refresh_frames=1)  # every embedding expires each frame
    pending = []
    for _ in range(-(-n // budget)):
        out = recognizer.assign_products(image, det, gallery, fast=True, cache=cache)
        pending.append(int(out.data["pending"].sum()))
        assert cache.embedded == budget or cache.pending == 0
    assert pending == [max(n - budget * (i + 1), 0) for i in range(len(pending))]
    # then the expired ones are refreshed, the budget at a time, the oldest first
    recognizer.assign_products(image, det, gallery, fast=True, cache=cache)
    assert (cache.embedded, cache.pending, cache.reused) == (budget, 0, n - budget)


def test_saving_names_the_pending_facings(recognizer, scene, dense_frame):
    gallery, _ = scene
    image, det = dense_frame
    pipeline = _recognition_only_pipeline(recognizer, gallery)
    first = recognizer.assign_products(image, det, gallery, fast=True, cache=TrackCache())
    assert first.data["pending"].any()
    saved = pipeline.name_pending(image, first)
    assert not saved.data["pending"].any()
    plain = recognizer.assign_products(image, det, gallery, fast=True)
    for key in ("product_id", "brand_id"):
        np.testing.assert_array_equal(saved.data[key], plain.data[key])
    np.testing.assert_allclose(saved.data["product_score"], plain.data["product_score"], atol=1e-6)
    assert pipeline.name_pending(image, plain) is plain  # nothing pending: unchanged
