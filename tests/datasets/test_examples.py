"""Training examples and batches: crops, mosaics, padding, class masks; the tile layout."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from skuaudit.datasets.base import DatasetError, LabeledImage
from skuaudit.datasets.batches import TrainingBatches, ValidationBatches
from skuaudit.datasets.examples import (
    TileSpec,
    crop_boxes_xyxy,
    encode_example,
    load_training_example,
    make_mosaic,
    mosaic_partners,
    random_tile_xyxy,
)
from skuaudit.datasets.synth import render_shelf
from skuaudit.detections import IGNORE_CLASS, IGNORE_ID
from skuaudit.detector.tiling import tile_grid


@pytest.mark.parametrize(
    "width, height, tile, overlap, expected",
    [
        (100, 80, 320, 0.2, [(0, 0, 100, 80)]),
        (1000, 500, 500, 0.2, [(0, 0, 500, 500), (250, 0, 750, 500), (500, 0, 1000, 500)]),
        (
            640,
            640,
            320,
            0.0,
            [(0, 0, 320, 320), (320, 0, 640, 320), (0, 320, 320, 640), (320, 320, 640, 640)],
        ),
        (700, 300, (400, 300), 0.5, [(0, 0, 400, 300), (150, 0, 550, 300), (300, 0, 700, 300)]),
    ],
)
def test_tile_grid(width, height, tile, overlap, expected):
    assert tile_grid(width, height, tile, overlap) == expected


@pytest.mark.parametrize("args", [(0, 10, 5, 0.1), (10, 10, 0, 0.1), (10, 10, 5, 1.0)])
def test_tile_grid_rejects(args):
    with pytest.raises(ValueError):
        tile_grid(*args)


def test_tile_grid_covers_large_photo():
    tiles = tile_grid(1600, 1200, 640, 0.25)
    covered = np.zeros((1200, 1600), bool)
    for x1, y1, x2, y2 in tiles:
        covered[y1:y2, x1:x2] = True
    assert covered.all()


@pytest.mark.parametrize(
    "boxes, window, expected_kept",
    [
        (np.empty((0, 4)), (0, 0, 10, 10), []),
        ([[0, 0, 10, 10], [8, 0, 18, 10], [50, 50, 60, 60]], (0, 0, 12, 12), [0]),
        ([[0, 0, 10, 10], [4, 0, 14, 10]], (0, 0, 12, 12), [0, 1]),
    ],
)
def test_crop_boxes(boxes, window, expected_kept):
    cropped, kept = crop_boxes_xyxy(boxes, window, 0.5)
    assert kept.tolist() == expected_kept
    assert cropped.shape == (len(expected_kept), 4)


def test_random_tile_small_photo_is_whole():
    rng = np.random.default_rng(0)
    assert random_tile_xyxy(640, 480, TileSpec(), rng) == (0, 0, 640, 480)
    x1, y1, x2, y2 = random_tile_xyxy(1600, 1200, TileSpec((0.3, 0.5)), rng)
    assert 480 <= x2 - x1 <= 800 and x1 >= 0 and x2 <= 1600 and y2 <= 1200


def test_random_tile_zooms_into_small_photos_keeping_their_shape():
    rng = np.random.default_rng(0)
    spec = TileSpec(small_photo_fraction=(0.45, 1.0))
    windows = np.array([random_tile_xyxy(416, 312, spec, rng) for _ in range(200)])
    widths, heights = windows[:, 2] - windows[:, 0], windows[:, 3] - windows[:, 1]
    assert windows[:, :2].min() >= 0 and windows[:, 2].max() <= 416 and windows[:, 3].max() <= 312
    assert widths.min() >= round(0.45 * 416) and widths.max() <= 416 and widths.min() < 250
    np.testing.assert_allclose(widths / heights, 416 / 312, rtol=0.02)


@pytest.mark.parametrize(
    "aspect, low, high",
    [((1.0, 1.0), 1.0, 1.0), ((0.75, 1.333), 0.74, 1.34), ((1.5, 2.0), 1.49, 2.01)],
)
def test_random_tile_aspect_of_large_photos(aspect, low, high):
    rng = np.random.default_rng(1)
    spec = TileSpec((0.3, 0.4), aspect=aspect)
    windows = np.array([random_tile_xyxy(3000, 3000, spec, rng) for _ in range(300)])
    ratios = (windows[:, 2] - windows[:, 0]) / (windows[:, 3] - windows[:, 1])
    assert low <= ratios.min() and ratios.max() <= high
    if low < 1 < high:  # drawn on both sides of square
        assert ratios.min() < 0.9 and ratios.max() > 1.1
    assert windows[:, :2].min() >= 0 and windows[:, 2:].max() <= 3000


@pytest.mark.parametrize("aspect", [(0.0, 1.0), (1.3, 0.8)])
def test_tile_spec_rejects_bad_aspect(aspect):
    with pytest.raises(ValueError, match="aspect"):
        TileSpec(aspect=aspect)


def test_image_cache_keeps_decoded_photos_within_its_budget(tmp_path):
    from skuaudit.datasets.examples import ImageCache

    paths = []
    for i in range(3):
        paths.append(tmp_path / f"{i}.png")
        cv2.imwrite(str(paths[-1]), np.full((100, 100, 3), i * 50, np.uint8))
    cache = ImageCache(max_bytes=2 * 100 * 100 * 3)  # room for two
    first = cache.read(paths[0])
    assert cache.read(paths[0]) is first and not first.flags.writeable
    cache.read(paths[1])
    cache.read(paths[0])  # 0 is now the most recently used
    cache.read(paths[2])  # evicts 1
    assert cache.read(paths[0]) is first
    assert int(cache.read(paths[1])[0, 0, 0]) == 50  # decoded again
    assert cache.read(tmp_path / "missing.png") is None
    assert ImageCache(10).read(paths[0]).flags.writeable  # too big to keep: a plain array


def test_cached_training_examples_match_uncached(tmp_path):
    """The cache changes where the pixels come from, not the example; the cached photo stays
    untouched by augmentation."""
    from skuaudit.datasets.examples import ImageCache, build_augmenter

    path = tmp_path / "shelf.jpg"
    shelf = render_shelf(seed=3, width=1200, height=900)
    cv2.imwrite(str(path), shelf.image_bgr)
    item = shelf.to_labeled_image(path)
    cache = ImageCache(2**26)
    spec = TileSpec(aspect=(0.75, 1.333))
    for seed in range(3):
        args = (item, ["product", "gap"], (96, 96), 50, spec)
        plain = load_training_example(*args, None, np.random.default_rng(seed))
        cached = load_training_example(*args, None, np.random.default_rng(seed), (), cache)
        for a, b in zip(plain, cached, strict=True):
            np.testing.assert_array_equal(a, b)
        load_training_example(*args, build_augmenter(seed), np.random.default_rng(seed), (), cache)
    np.testing.assert_array_equal(cache.read(path), cv2.imread(str(path)))


@pytest.mark.parametrize("fraction", [(0.0, 1.0), (0.8, 0.5), (0.5, 1.2)])
def test_tile_spec_rejects_bad_small_photo_fraction(fraction):
    with pytest.raises(ValueError, match="small_photo_fraction"):
        TileSpec(small_photo_fraction=fraction)


@pytest.mark.parametrize("mosaic", [-0.1, 1.5])
def test_tile_spec_rejects_bad_mosaic(mosaic):
    with pytest.raises(ValueError, match="mosaic must be a probability"):
        TileSpec(mosaic=mosaic)


def test_make_mosaic_places_each_part_in_its_quadrant():
    """Four flat-coloured 100x80 parts, each with one box around its centre: the 200x160 mosaic
    shows every colour in its own quadrant and every box moved with its part; a quadrant is
    filled without scaling a part up, and a box cut below the visibility limit is dropped."""
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)]
    parts = [
        (np.full((80, 100, 3), c, np.uint8), np.array([[45, 35, 55, 45]], np.float32), [k])
        for k, c in enumerate(colours)
    ]
    rng = np.random.default_rng(0)
    for _ in range(20):
        seed = int(rng.integers(1 << 30))
        canvas, boxes, ids = make_mosaic(parts, (200, 160), 0.5, np.random.default_rng(seed))
        assert canvas.shape == (160, 200, 3)
        corners = [canvas[0, 0], canvas[0, -1], canvas[-1, 0], canvas[-1, -1]]
        assert [tuple(c) for c in corners] == colours
        for box, k in zip(boxes, ids, strict=True):
            x1, y1, x2, y2 = box.astype(int)
            assert tuple(canvas[(y1 + y2) // 2, (x1 + x2) // 2]) == colours[k]
            assert x2 - x1 >= 5 and y2 - y1 >= 5  # at least half of each 10 px side kept
    # a split point at 25-75 % keeps each 100x80 part at its scale (quadrants <= 150x120 need
    # scaling up; the 10 px boxes keep their size)
    canvas, boxes, _ = make_mosaic(parts, (120, 100), 0.5, np.random.default_rng(1))
    sizes = boxes[:, 2:] - boxes[:, :2]
    assert np.all(sizes <= 10 + 1e-4)
    with pytest.raises(ValueError, match="4 parts"):
        make_mosaic(parts[:3], (200, 160), 0.5, rng)


def test_make_mosaic_scales_up_parts_smaller_than_their_quadrant():
    small = (np.full((20, 20, 3), 200, np.uint8), np.array([[0, 0, 20, 20]], np.float32), [1])
    canvas, boxes, ids = make_mosaic([small] * 4, (200, 200), 0.5, np.random.default_rng(0))
    assert (canvas == 200).all()  # every quadrant covered, no black border
    assert len(boxes) >= 1 and (boxes[:, 2:] - boxes[:, :2]).min() > 20  # boxes scaled with it


def _small_photos(tmp_path, n, annotated=("gap",), size=(120, 100), step=10):
    """``n`` flat grey photos (levels ``step``, ``2 * step``, ...), one box each."""
    items = []
    for i in range(n):
        path = tmp_path / f"{annotated[0]}{i}.png"
        cv2.imwrite(str(path), np.full((size[1], size[0], 3), step * (i + 1), np.uint8))
        items.append(
            LabeledImage(path, size[0], size[1], [[50, 40, 70, 60]], [annotated[-1]], annotated)
        )
    return items


def test_mosaic_partners_group_small_photos_by_annotated_classes(tmp_path):
    gaps = _small_photos(tmp_path, 4)
    full = _small_photos(tmp_path, 2, annotated=("product", "gap"))
    large = LabeledImage(tmp_path / "large.png", 1600, 1200, [], [], ("gap",))
    items = [*gaps, gaps[0], *full, large]  # gaps[0] repeated, as dataset_repeats does
    classes = ["product", "gap"]
    partners = mosaic_partners(items, classes, TileSpec(mosaic=0.5))
    assert [p.path for p in partners[0]] == [g.path for g in gaps]  # distinct paths
    assert partners[0] is partners[3] is partners[4]
    assert [p.path for p in partners[5]] == [f.path for f in full]
    assert partners[-1] == ()
    assert mosaic_partners(items, classes, TileSpec()) == [()] * len(items)
    assert mosaic_partners(items, classes, None) == [()] * len(items)


def test_load_training_example_mosaic(tmp_path):
    """With ``mosaic=1`` a small photo becomes a mosaic of four distinct photos of its group
    (their grey levels show in the image, their boxes in the targets); without partners, or
    with ``mosaic=0``, it is the photo alone."""
    items = _small_photos(tmp_path, 5)
    classes = ["product", "gap"]
    spec = TileSpec(mosaic=1.0)
    partners = mosaic_partners(items, classes, spec)
    levels = set()
    for seed in range(10):
        image, _, ids, mask = load_training_example(
            items[0], classes, (100, 120), 16, spec, None, np.random.default_rng(seed), partners[0]
        )
        shown = set(np.unique(image.astype(np.uint8)).tolist())
        assert 10 in shown and len(shown) == 4  # itself and three others, never itself twice
        levels |= shown
        assert mask.tolist() == [0, 1] and (ids >= 0).sum() >= 1
    assert levels == {10, 20, 30, 40, 50}
    for tile, given in [(spec, ()), (TileSpec(), partners[0])]:
        image, yxyx, ids, _ = load_training_example(
            items[0], classes, (100, 120), 16, tile, None, np.random.default_rng(0), given
        )
        assert np.unique(image).tolist() == [10.0]
        np.testing.assert_allclose(yxyx[0], [0.4, 50 / 120, 0.6, 70 / 120], atol=1e-6)


def test_mosaics_in_augmented_training_batches_only(tmp_path):
    """Validation passes (no augmentation) show each flat photo alone; augmented training
    passes show four grey levels 40 apart, which colour jitter, noise and blur do not fake
    (measured on a median-filtered green channel, black affine borders left out)."""
    items = _small_photos(tmp_path, 5, step=40)

    def spreads(tile: TileSpec, augment: bool) -> list[float]:
        batches = TrainingBatches(
            items,
            ["product", "gap"],
            image_size=100,
            batch_size=5,
            augment=augment,
            max_boxes=16,
            tile=tile,
        )
        out = []
        for image in batches[0][0]:
            green = cv2.medianBlur(np.clip(image, 0, 255).astype(np.uint8), 5)[..., 1]
            lit = green[green > 8]
            out.append(float(np.percentile(lit, 95) - np.percentile(lit, 5)))
        return out

    assert spreads(TileSpec(mosaic=1.0), augment=False) == [0.0] * 5
    assert max(spreads(TileSpec(), augment=True)) < 30
    assert min(spreads(TileSpec(mosaic=1.0), augment=True)) > 60


@pytest.mark.parametrize("n_boxes", [0, 3, 12])
def test_encode_example_pads(n_boxes):
    image = np.zeros((100, 200, 3), np.uint8)
    boxes = np.tile([[20, 10, 60, 50]], (n_boxes, 1)).astype(np.float32)
    img, yxyx, ids, mask = encode_example(
        image, boxes, np.zeros(n_boxes, np.int32), np.array([1, 0], np.float32), (64, 64), 8
    )
    assert img.shape == (64, 64, 3) and img.dtype == np.float32
    assert (ids >= 0).sum() == min(n_boxes, 8) and (ids[min(n_boxes, 8) :] == -1).all()
    if n_boxes:
        assert np.allclose(yxyx[0], [0.1, 0.1, 0.5, 0.3])
    assert mask.tolist() == [1, 0]


def test_validation_batches_shapes_and_masks(tmp_path):
    items = []
    for i, annotated in enumerate([("product", "gap"), ("gap",)]):
        path = tmp_path / f"{i}.jpg"
        cv2.imwrite(str(path), np.full((1200, 1600, 3), 90, np.uint8))
        items.append(
            LabeledImage(
                path,
                1600,
                1200,
                [[100, 100, 300, 400], [800, 600, 900, 700]],
                ["product", "gap"] if i == 0 else ["gap", "gap"],
                annotated,
            )
        )
    batches = ValidationBatches(
        items, ["product", "gap"], image_size=96, batch_size=2, max_boxes=16, tile=TileSpec()
    )
    assert len(batches) == 1
    images, targets = batches[0]
    assert images.shape == (2, 96, 96, 3) and images.dtype == np.float32
    assert targets["boxes_yxyx_norm"].shape == (2, 16, 4)
    assert targets["class_ids"].shape == (2, 16) and targets["class_ids"].dtype == np.int32
    assert targets["class_mask"].tolist() == [[1, 1], [0, 1]]
    with pytest.raises(IndexError):
        batches[1]
    assert len(ValidationBatches(items * 5, ["product"], batch_size=2, max_batches=3)) == 3
    with pytest.raises(DatasetError, match="no training images"):
        TrainingBatches([], ["product"])


def test_validation_passes_repeat_the_same_crops(tmp_path):
    """Validation batches give the same crops in the same order on every pass (validation
    losses then compare models, not draws); training batches draw new crops and visit every
    image once per pass."""
    rng = np.random.default_rng(3)
    items = []
    for i in range(6):
        path = tmp_path / f"{i}.jpg"
        cv2.imwrite(str(path), rng.integers(0, 255, (1200, 1600, 3), dtype=np.uint8))
        boxes = [[x, 200, x + 150, 500] for x in range(0, 1500, 160)]
        items.append(LabeledImage(path, 1600, 1200, boxes, ["product"] * len(boxes)))
    shared = {"image_size": 64, "batch_size": 3, "max_boxes": 16, "tile": TileSpec()}
    validation = ValidationBatches(items, ["product", "gap"], **shared)
    first, second = ([validation[i][1]["boxes_yxyx_norm"] for i in range(2)] for _ in range(2))
    np.testing.assert_array_equal(np.concatenate(first), np.concatenate(second))
    training = TrainingBatches(items, ["product", "gap"], augment=True, **shared)
    first, second = (
        np.concatenate([training[0][1]["boxes_yxyx_norm"], training[1][1]["boxes_yxyx_norm"]])
        for _ in range(2)
    )
    assert not np.array_equal(first, second)
    plain = TrainingBatches(items * 2, ["product"], augment=False, **{**shared, "batch_size": 4})
    sizes = [len(plain[i][0]) for i in range(3)]  # 12 items: one pass in 3 batches
    assert sizes == [4, 4, 4]


def test_load_training_example_keeps_ignore_boxes_as_ignore_ids(tmp_path):
    """``IGNORE_CLASS`` boxes reach the targets as ``IGNORE_ID``; names of no detector class
    are dropped."""
    path = tmp_path / "shelf.png"
    cv2.imwrite(str(path), np.full((100, 120, 3), 90, np.uint8))
    boxes = [[10, 10, 30, 40], [50, 10, 70, 40], [80, 10, 100, 40]]
    item = LabeledImage(path, 120, 100, boxes, ["product", IGNORE_CLASS, "price tag"], ("product",))
    _, yxyx, ids, mask = load_training_example(
        item, ["product", "gap"], (100, 120), 8, None, None, np.random.default_rng(0)
    )
    assert ids.tolist() == [0, IGNORE_ID, -1, -1, -1, -1, -1, -1]
    np.testing.assert_allclose(yxyx[1], [0.1, 50 / 120, 0.4, 70 / 120], atol=1e-6)
    assert mask.tolist() == [1, 0]
